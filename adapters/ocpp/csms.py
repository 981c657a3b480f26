"""The CSMS side of OCPP 2.0.1 / 2.1: chargers connect in, setpoints go out.

Charge points connect to ``ws://host:port/ocpp/{charge_point_id}`` offering
subprotocol ``ocpp2.1`` or ``ocpp2.0.1`` and authenticate with HTTP basic
auth as user ``{charge_point_id}`` (OCPP security profile 1; put TLS in front
for profile 2). Each charge point is one asset with one EVSE; its id is the
asset id.

In: BootNotification, Heartbeat, StatusNotification, TransactionEvent and
MeterValues (every sampled value through one decoder, :mod:`.meter`: units,
multipliers, phases, location, context, timestamps), NotifyEVChargingNeeds
(every AC / DC / V2X form, :mod:`.needs`): each becomes a
:class:`~adapters.types.Telemetry` carrying the EV session's flexibility.
Transactions follow :mod:`.state` (late, repeated and offline events never
touch the live session). Every field is checked alone: a bad one is dropped
and counted in ``stats.rejected_fields``, the rest is kept.

Out: SetChargingProfile (a TxProfile for the running transaction; in 2.1 with
V2G enrolled ``operationMode=CentralSetpoint`` and a negative ``setpoint`` to
discharge) from ``apply``; ClearChargingProfile from ``release``. Calls leave
only from those two methods, one at a time per connection, each bounded by
``call_timeout_s``. A message failing schema validation is answered with the
spec's CallError, counted and logged; the connection stays up. One charger's
faults (bad frames, a hung call, a dropped websocket) never reach another:
each connection is served on its own, and a charger that disconnects is
published unavailable at once. OCPP 1.6J is not served.

Connections: ``on_link`` (a `LinkHook`) is told when a charger is taken into
service and when its connection ends, so the service can record which of its
replicas holds each charger (`vpp.supervisor._links`); `holds` says whether
one is connected here.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from http import HTTPStatus

import websockets
from ocpp.exceptions import OCPPError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from adapters._base import AssetBook
from adapters.lifecycle import BackgroundService
from adapters.ocpp.profiles import (
    OCPP_SUBPROTOCOLS,
    V21,
    clear_profile_request,
    set_profile_request,
)
from adapters.ocpp.session import Session21, Session201
from adapters.ocpp.state import SessionState
from adapters.types import (
    AdapterStats,
    Confirmation,
    DeviceLimits,
    Setpoint,
    Telemetry,
    TelemetrySource,
)

__all__ = ["PATH_PREFIX", "ChargerSettings", "LinkHook", "OcppCsmsAdapter"]

log = logging.getLogger("adapters.ocpp")
wire_log = logging.getLogger("adapters.ocpp.wire")

#: URL path under which charge points connect: ``/ocpp/{charge_point_id}``.
PATH_PREFIX = "/ocpp/"
_PROFILE_ID = 1

#: Told ``(charge point id, connected)`` when a charger's websocket is taken
#: into service (after authentication and the subprotocol check) and when it
#: ends; a connection replaced by a newer one of the same charger ends without
#: a call (the charger stays connected). Synchronous: it must not block.
LinkHook = Callable[[str, bool], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerSettings:
    """One enrolled charge point.

    Attributes:
        password: its basic-auth password (security profile 1).
        limits: enrolled limits; a negative ``p_min_kw`` only counts with ``v2g``.
        v2g: whether discharge is enrolled (the charger must speak OCPP 2.1 too).
    """

    password: str
    limits: DeviceLimits
    v2g: bool = False


class OcppCsmsAdapter(BackgroundService):
    """A CSMS websocket endpoint serving many charge points on one event loop.

    Use as ``async with OcppCsmsAdapter(...) as csms:``; entering listens (the
    port is known then), leaving closes the listener and every connection.
    Each connection is served by the websocket library; the adapter's own task
    (``ocpp-csms-{host}:{port}``) only watches the listener.

    Args:
        host: address to listen on.
        port: TCP port (0 picks a free one; read :attr:`port` after entering).
        chargers: enrolled charge points by id.
        queue_size: bound on readings waiting for the consumer.
        call_timeout_s: how long a call to a charger may take.
        time_scale: device seconds per wall-clock second for the clamp (1.0 for real
            equipment; a simulated park on a compressed clock passes its speed-up).
        sample_max_age_s: the oldest a power sample may be (by its own timestamp,
            against receipt) and still be the charger's power now.
        clock_skew_s: how far ahead of receipt a charger's clock may run.
        on_link: told when a charger connects and disconnects (`LinkHook`).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 9000,
        chargers: Mapping[str, ChargerSettings],
        queue_size: int = 10_000,
        call_timeout_s: float = 10.0,
        time_scale: float = 1.0,
        sample_max_age_s: float = 300.0,
        clock_skew_s: float = 300.0,
        on_link: LinkHook | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.chargers = dict(chargers)
        self.call_timeout_s = call_timeout_s
        self.sample_max_age_s = sample_max_age_s
        self.clock_skew_s = clock_skew_s
        self._book = AssetBook(
            {cp: self._effective_limits(s, None) for cp, s in chargers.items()},
            queue_size=queue_size,
            log=log,
            time_scale=time_scale,
        )
        self._sessions: dict[str, Session201 | Session21] = {}
        self._seen: set[str] = set()
        self._states: dict[str, SessionState] = {}
        self._server: Server | None = None
        self._on_link = on_link

    @property
    def stats(self) -> AdapterStats:
        """Counters for the supervisor's metrics (``connected``: listening)."""
        return self._book.stats

    @property
    def connected_chargers(self) -> list[str]:
        """Ids of the charge points connected right now."""
        return sorted(self._sessions)

    def holds(self, cp_id: str) -> bool:
        """Whether charge point ``cp_id`` is connected to this listener right now."""
        return cp_id in self._sessions

    async def _open(self) -> None:
        self._server = await serve(
            self._serve,
            self.host,
            self.port,
            subprotocols=[websockets.Subprotocol(p) for p in OCPP_SUBPROTOCOLS],
            process_request=self._authenticate,
            ping_interval=20,
            # OCPP frames are small: deflating each costs both ends more CPU than it saves
            compression=None,
        )
        self.port = int(next(iter(self._server.sockets)).getsockname()[1])
        self._task_name = f"ocpp-csms-{self.host}:{self.port}"
        self.stats.connected = True
        log.info("CSMS listening on ws://%s:%d%s", self.host, self.port, PATH_PREFIX)

    async def _run(self) -> None:
        # Ends only if the listener closes by itself (wait_stopped then returns).
        assert self._server is not None
        await self._server.wait_closed()

    async def _close(self) -> None:
        server, self._server = self._server, None
        self.stats.connected = False
        if server is not None:
            server.close()
            await server.wait_closed()

    def telemetry(self) -> AsyncIterator[Telemetry]:
        """Readings from every charger as its messages arrive (one consumer)."""
        return self._book.readings()

    def telemetry_batches(self) -> AsyncIterator[list[Telemetry]]:
        """The same readings in the batches they were queued in (one consumer, instead)."""
        return self._book.batches()

    def last(self, asset_id: str) -> Telemetry | None:
        """The latest reading of one charger."""
        return self._book.latest.get(asset_id)

    def update_chargers(self, chargers: Mapping[str, ChargerSettings]) -> None:
        """Replace the enrolled charge points while listening.

        A new charger may connect (and take setpoints, and be released) at
        once; a retired one that is still connected stays connected, but no
        longer takes setpoints. Sessions and what they told us are kept.
        """
        self.chargers = dict(chargers)
        limits = self._book.limits
        for cp_id in [c for c in limits if c not in self.chargers]:
            del limits[cp_id]
        for cp_id, settings in self.chargers.items():
            session = self._sessions.get(cp_id)
            limits[cp_id] = self._effective_limits(
                settings, session.state.version if session else None
            )

    async def apply(self, setpoint: Setpoint) -> Confirmation:
        """Clamp and send a TxProfile for the charger's running transaction.

        Raises:
            UnknownAsset: the charger is not enrolled.
        """
        settings = self.chargers.get(setpoint.asset_id)
        session = self._sessions.get(setpoint.asset_id)
        version = session.state.version if session else None
        if settings is not None:
            self._book.limits[setpoint.asset_id] = self._effective_limits(settings, version)
        clamped = self._book.clamp(setpoint)
        if session is None or session.state.transaction_id is None:
            why = "charger not connected" if session is None else "no EV session"
            return self._book.confirm(
                setpoint, clamped, sent=False, confirmed=False, rtt_s=None, reason=why
            )
        assert settings is not None and version is not None
        request = set_profile_request(
            version=version,
            evse_id=session.state.evse_id,
            profile_id=_PROFILE_ID,
            transaction_id=session.state.transaction_id,
            power_w=clamped.power_kw * 1000.0,
            duration_s=max(1, int(setpoint.hold_s)),
            v2g=settings.v2g,
        )
        start = time.perf_counter()
        try:
            answer = await session.call_raw("SetChargingProfile", request)
        except (TimeoutError, websockets.ConnectionClosed, OCPPError) as exc:
            return self._book.confirm(
                setpoint, clamped, sent=True, confirmed=False, rtt_s=None, reason=_why(exc)
            )
        rtt = time.perf_counter() - start
        status = None if answer is None else answer.get("status")
        return self._book.confirm(
            setpoint, clamped, sent=True, confirmed=status == "Accepted", rtt_s=rtt,
            reason=(
                "" if status == "Accepted"
                else "charger answered with a CallError" if answer is None
                else f"charger answered {status}"
            ),
        )  # fmt: skip

    async def release(self, asset_id: str) -> bool:
        """Clear the TxProfile: the charger goes back to its own schedule."""
        self._book.limits_of(asset_id)
        session = self._sessions.get(asset_id)
        if session is None:
            return False
        try:
            answer = await session.call_raw(
                "ClearChargingProfile", clear_profile_request(profile_id=_PROFILE_ID)
            )
        except (TimeoutError, websockets.ConnectionClosed, OCPPError) as exc:
            log.warning("charger %s: release not acknowledged: %s", asset_id, _why(exc))
            return False
        return answer is not None and answer.get("status") in ("Accepted", "Unknown")

    @staticmethod
    def _effective_limits(settings: ChargerSettings, version: str | None) -> DeviceLimits:
        two_way = settings.v2g and version in (None, V21)
        return replace(settings.limits, bidirectional=two_way and settings.limits.bidirectional)

    def _authenticate(self, connection: ServerConnection, request: Request) -> Response | None:
        cp_id = request.path.removeprefix(PATH_PREFIX).strip("/")
        settings = self.chargers.get(cp_id) if request.path.startswith(PATH_PREFIX) else None
        header = request.headers.get("Authorization", "")
        user, password = "", ""
        if header.startswith("Basic "):
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        expected = settings.password if settings else "\0"
        if settings is None or not (
            hmac.compare_digest(user.encode(), cp_id.encode())
            & hmac.compare_digest(password.encode(), expected.encode())
        ):
            log.warning("rejected charge point %r from %s", cp_id, connection.remote_address)
            return connection.respond(HTTPStatus.UNAUTHORIZED, "unauthorized\n")
        return None

    async def _serve(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        cp_id = ws.request.path.removeprefix(PATH_PREFIX).strip("/")
        version = ws.subprotocol
        if version not in OCPP_SUBPROTOCOLS:
            await ws.close(1002, "an OCPP 2.0.1 or 2.1 subprotocol is required")
            return
        cls = Session21 if version == V21 else Session201
        # The EV session outlives a dropped websocket: keep what the charger told us.
        state = self._states.setdefault(cp_id, SessionState(version=version))
        state.version = version
        session = cls(
            cp_id, ws, owner=self, state=state, sample_max_age_s=self.sample_max_age_s,
            clock_skew_s=self.clock_skew_s, response_timeout=self.call_timeout_s, logger=wire_log,
        )  # fmt: skip
        previous = self._sessions.get(cp_id)
        if previous is not None:
            await previous._connection.close(1000, "replaced by a new connection")
        self._sessions[cp_id] = session
        if cp_id in self._seen:
            self.stats.reconnects += 1
        self._seen.add(cp_id)
        log.info("charge point %s connected (%s)", cp_id, version)
        self._link(cp_id, connected=True)
        try:
            async for raw in ws:
                if self._well_formed(cp_id, raw):
                    await self._route(session, cp_id, raw)
        except websockets.ConnectionClosed:
            pass
        finally:
            if self._sessions.get(cp_id) is session:
                del self._sessions[cp_id]
                self.session_changed(cp_id, available=False)
                self._link(cp_id, connected=False)
            log.info("charge point %s disconnected", cp_id)

    def _link(self, cp_id: str, *, connected: bool) -> None:
        if self._on_link is None:
            return
        try:
            self._on_link(cp_id, connected)
        except Exception:  # the hook's fault never ends a charger's connection
            log.exception("charge point %s: link hook failed", cp_id)

    async def _route(self, session: Session201 | Session21, cp_id: str, raw: str | bytes) -> None:
        """Handle one frame; a fault in it is this charger's alone and never ends the loop."""
        try:
            await session.route_message(raw)
        except websockets.ConnectionClosed:
            raise
        except Exception as exc:  # one bad frame must not end the connection
            log.exception("charge point %s: frame not handled", cp_id)
            self.session_bad_message(cp_id, f"frame not handled: {exc!r}")

    def _well_formed(self, cp_id: str, raw: str | bytes) -> bool:
        try:
            message = json.loads(raw)
            if not isinstance(message, list) or len(message) < 3:
                raise ValueError("not an OCPP-J array")
        except ValueError as exc:
            self.session_bad_message(cp_id, f"unparseable frame: {exc}")
            return False
        return True

    def session_bad_message(self, cp_id: str, detail: str) -> None:
        """Count a message from a charger that failed parsing or validation."""
        self._book.bad_payload(cp_id, detail)

    def session_field_rejected(self, cp_id: str, name: str, reason: str, value: object) -> None:
        """Count one field dropped from a charger's message (the rest is kept)."""
        self._book.reject_field(cp_id, name, reason, value)

    def session_changed(self, cp_id: str, *, available: bool = True) -> None:
        """Publish a charger's state as a reading (called by its session)."""
        session = self._sessions.get(cp_id)
        st = session.state if session else None
        if st is None:
            # Gone: unavailable at once, even if it never said anything before it went.
            last = self._book.latest.get(cp_id) or Telemetry(
                asset_id=cp_id, ts=0.0, power_kw=0.0, source=TelemetrySource.OCPP
            )
            self._book.publish(replace(last, ts=time.time(), available=False, power_kw=0.0))
            return
        connected = st.connected
        net_wh = st.net_wh
        self._book.publish(
            Telemetry(
                asset_id=cp_id,
                ts=time.time(),
                power_kw=st.power_kw,
                soc=st.soc if connected else None,
                energy_kwh=None if net_wh is None else net_wh / 1000.0,
                available=available,
                max_charge_kw=st.max_charge_kw if connected else None,
                max_discharge_kw=st.max_discharge_kw if connected else None,
                ev_connected=connected,
                departure_ts=st.departure_ts if connected else None,
                energy_needed_kwh=st.energy_needed_kwh(),
                source=TelemetrySource.OCPP,
            )
        )


def _why(exc: BaseException) -> str:
    """Why a call to a charger got no usable answer, in words (for a Confirmation's reason)."""
    if isinstance(exc, TimeoutError):
        return "no answer within the OCPP response timeout"
    if isinstance(exc, websockets.ConnectionClosed):
        return f"connection closed during the call ({exc})"
    if isinstance(exc, OCPPError):
        return f"the charger's answer breaks its schema: {type(exc).__name__}: {exc}"
    return repr(exc)
