"""Per-connection OCPP sessions: the CALLs a 2.0.1 or 2.1 charge point sends us.

Handlers only record state and return responses; they never make calls
(a call from inside a handler would deadlock the receive loop). A session
reports to its owner (the CSMS adapter that accepted the connection) through
the small :class:`SessionOwner` protocol given at construction; it knows
nothing else of it.

Each incoming CALL is checked against the OCPP JSON schema of its version.
A CALL that fails is answered with the spec's CALLERROR (OCPP-J 2.0.1 §4.3:
``FormatViolation`` for a payload that is not an object or has unknown
fields, ``TypeConstraintViolation``, ``OccurrenceConstraintViolation`` for a
missing field, ``PropertyConstraintViolation`` for a value outside its
range or enum) and counted; the connection stays up. A CALL that carries
readings (MeterValues, TransactionEvent, NotifyEVChargingNeeds) is still
read field by field: the bad field is dropped and counted, the rest is used,
so one impossible SoC never costs the power beside it or the charger's later
messages. A CALL with no handler is answered ``NotImplemented`` (or
``NotSupported`` for an action the version does not define), never left
without an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, TypeVar, cast

from jsonschema.exceptions import best_match
from ocpp.exceptions import (
    FormatViolationError,
    InternalError,
    NotImplementedError,
    NotSupportedError,
    OccurrenceConstraintViolationError,
    OCPPError,
    PropertyConstraintViolationError,
    TypeConstraintViolationError,
)
from ocpp.messages import Call, MessageType, get_validator
from ocpp.routing import on as _ocpp_on
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v201 import ChargePoint as ChargePoint201

from adapters.ocpp.fields import number, timestamp
from adapters.ocpp.meter import decode
from adapters.ocpp.needs import decode_needs
from adapters.ocpp.state import SessionState

__all__ = ["Session21", "Session201", "SessionOwner", "SessionState", "on", "schema_error"]

log = logging.getLogger("adapters.ocpp")

_Handler = TypeVar("_Handler", bound=Callable[..., Any])
_Payload = dict[str, Any]

#: CALLs whose readings are used field by field even when the schema rejects them.
_SALVAGED = frozenset({"MeterValues", "TransactionEvent", "NotifyEVChargingNeeds"})


def on(action: str) -> Callable[[_Handler], _Handler]:
    """The library's ``@on`` routing decorator, typed (the simulator's charge points use it)."""
    return cast(Callable[[_Handler], _Handler], _ocpp_on(action))


def schema_error(
    action: str, payload: object, version: str, *, message_type: int = MessageType.Call
) -> OCPPError | None:
    """Check a CALL (or CALLRESULT) payload against its OCPP JSON schema, in this thread.

    The ``ocpp`` package's own ``validate_payload`` hands every check to a
    thread pool (two loop wake-ups and a GIL hand-over per message, for a
    check that takes well under a millisecond); the sessions check here
    with the same cached validators instead.

    Args:
        action: e.g. ``MeterValues``.
        payload: the decoded JSON payload.
        version: ``2.0.1`` or ``2.1`` (the ``ocpp`` package's spelling).
        message_type: ``MessageType.Call`` (a request) or ``MessageType.CallResult``
            (the answer to ``action``).

    Returns:
        None when valid, else the OCPP-J error to answer (or raise) with.
    """
    if not isinstance(payload, dict):
        return FormatViolationError(details={"cause": "the payload is not a JSON object"})
    try:
        validator = get_validator(message_type, action, version)
    except OSError:
        return NotSupportedError(details={"cause": f"{action} is not an OCPP {version} action"})
    error = best_match(validator.iter_errors(payload))
    if error is None:
        return None
    kinds: dict[str, type[OCPPError]] = {
        "type": TypeConstraintViolationError,
        "required": OccurrenceConstraintViolationError,
        "additionalProperties": FormatViolationError,
    }
    where = "/".join(str(p) for p in error.absolute_path) or "payload"
    cause = f"{where}: {error.message}"[:500]
    return kinds.get(str(error.validator), PropertyConstraintViolationError)(
        details={"cause": cause}
    )


class SessionOwner(Protocol):
    """What a session reports to: the adapter that accepted its connection."""

    def session_bad_message(self, cp_id: str, detail: str) -> None:
        """Count a message from the charger that failed parsing or validation."""
        ...

    def session_field_rejected(self, cp_id: str, name: str, reason: str, value: object) -> None:
        """Count one field dropped from the charger's message (the rest is kept)."""
        ...

    def session_changed(self, cp_id: str) -> None:
        """Publish the charger's state (the session's ``state``) as a reading."""
        ...


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _SessionMixin:
    """Handlers shared by the 2.0.1 and 2.1 charge point classes."""

    #: action -> handler method name; each takes the wire payload, returns the response payload.
    _HANDLERS: ClassVar[dict[str, str]] = {
        "BootNotification": "_on_boot",
        "Heartbeat": "_on_heartbeat",
        "StatusNotification": "_on_status",
        "TransactionEvent": "_on_transaction",
        "MeterValues": "_on_meter_values",
        "NotifyEVChargingNeeds": "_on_needs",
        "NotifyEvent": "_on_ack",
        "SecurityEventNotification": "_on_ack",
    }

    id: str
    _ocpp_version: str
    _call_lock: asyncio.Lock
    _response_timeout: float

    def __init__(
        self,
        cp_id: str,
        connection: Any,
        *,
        owner: SessionOwner,
        state: SessionState,
        sample_max_age_s: float,
        clock_skew_s: float,
        **charge_point: Any,
    ) -> None:
        """Serve one charger's connection.

        Args:
            cp_id: the charge point id (the asset id).
            connection: its websocket.
            owner: what the session reports to.
            state: the charger's EV session, kept across its connections.
            sample_max_age_s: the oldest a power sample may be and still be the power now.
            clock_skew_s: how far ahead of receipt the charger's clock may run.
            **charge_point: passed on to ``ocpp``'s ``ChargePoint`` (``response_timeout``,
                ``logger``).
        """
        # The next class in the MRO is ocpp's ChargePoint (mypy sees object).
        super().__init__(cp_id, connection, **charge_point)  # type: ignore[call-arg]
        self.owner = owner
        self.state = state
        self.sample_max_age_s = sample_max_age_s
        self.clock_skew_s = clock_skew_s

    # Provided by ocpp.ChargePoint (annotations only: defining them would shadow it).
    _send: Callable[[str], Any]
    _get_specific_response: Callable[[str, float], Any]

    async def call_raw(self, action: str, payload: _Payload) -> _Payload | None:
        """Send a CALL whose payload is already in wire form; None on a CallError.

        The whole call (waiting for this connection's previous call, sending,
        the answer) is bounded by the response timeout, so a charger that
        stops reading cannot hold its caller.

        Both the request and the answer are checked against their schemas
        (:func:`schema_error`, in this thread).

        Raises:
            TimeoutError: no answer in time.
            websockets.ConnectionClosed: the connection is gone.
            OCPPError: the request or the answer fails its schema.
        """
        if (bad := schema_error(action, payload, self._ocpp_version)) is not None:
            raise bad
        message = Call(unique_id=f"{time.monotonic_ns():x}", action=action, payload=payload)
        async with asyncio.timeout(self._response_timeout), self._call_lock:
            await self._send(message.to_json())
            response = await self._get_specific_response(message.unique_id, self._response_timeout)
        if response.message_type_id == MessageType.CallError:
            log.warning("%s answered %s with %s", self.id, action, response)
            return None
        response.action = action
        answer = response.payload
        kind = MessageType.CallResult
        if (bad := schema_error(action, answer, self._ocpp_version, message_type=kind)) is not None:
            raise bad
        return cast(_Payload, answer)

    async def _handle_call(self, msg: Any) -> None:
        """Answer one CALL (replaces the library's routing: see the module docstring)."""
        name = self._HANDLERS.get(msg.action)
        if name is None:
            unknown = schema_error(msg.action, {}, self._ocpp_version)
            if isinstance(unknown, NotSupportedError):
                raise unknown
            raise NotImplementedError(details={"cause": f"{msg.action} is not served"})
        handler: Callable[[_Payload], _Payload] = getattr(self, name)
        error = schema_error(msg.action, msg.payload, self._ocpp_version)
        if error is not None:
            self.owner.session_bad_message(self.id, f"{msg.action}: {error.details}")
            if msg.action in _SALVAGED and isinstance(msg.payload, dict):
                # The charger is told its message was invalid whatever the salvage did.
                with contextlib.suppress(InternalError):
                    self._run(handler, msg)
            raise error
        response = self._run(handler, msg)
        await self._send(msg.create_call_result(response).to_json())

    def _run(self, handler: Callable[[_Payload], _Payload], msg: Any) -> _Payload:
        try:
            return handler(msg.payload)
        except Exception as exc:
            log.exception("%s: handling %s failed", self.id, msg.action)
            raise InternalError(details={"cause": type(exc).__name__}) from exc

    def _reject(self, name: str, reason: str, value: object) -> None:
        self.owner.session_field_rejected(self.id, name, reason, value)

    def _publish(self) -> None:
        self.owner.session_changed(self.id)

    def _on_boot(self, payload: _Payload) -> _Payload:
        self.state.boot()
        self._publish()
        return {"currentTime": _now_iso(), "interval": 300, "status": "Accepted"}

    def _on_heartbeat(self, payload: _Payload) -> _Payload:
        return {"currentTime": _now_iso()}

    def _on_ack(self, payload: _Payload) -> _Payload:
        return {}

    def _evse(self, value: object) -> int | None:
        evse = number(value, "evse_id", self._reject, lo=0, hi=1e6)
        return None if evse is None else int(evse)

    def _on_status(self, payload: _Payload) -> _Payload:
        status = payload.get("connectorStatus")
        self.state.status(
            status if isinstance(status, str) else None,
            timestamp(payload.get("timestamp"), "timestamp", self._reject),
            self._evse(payload.get("evseId")),
        )
        self._publish()
        return {}

    def _on_transaction(self, payload: _Payload) -> _Payload:
        info = payload.get("transactionInfo")
        tx_id = info.get("transactionId") if isinstance(info, dict) else None
        event_type = payload.get("eventType")
        if not isinstance(tx_id, str) or event_type not in ("Started", "Updated", "Ended"):
            # Nothing to attribute it to.
            bad = ("event_type", event_type) if isinstance(tx_id, str) else ("tx_id", tx_id)
            self._reject(bad[0], "invalid", bad[1])
            return {}
        seq = number(payload.get("seqNo"), "seq_no", self._reject, lo=0, hi=2**53)
        offline = payload.get("offline", False)
        if not isinstance(offline, bool):
            # Unreadable: read it as history, so it can never pose as live power.
            self._reject("offline", "not_a_boolean", offline)
            offline = True
        ts = timestamp(payload.get("timestamp"), "timestamp", self._reject)
        samples = decode(payload.get("meterValue"), self._reject)
        evse = payload.get("evse")
        live = self.state.transaction(
            tx_id=tx_id,
            event_type=event_type,
            seq_no=None if seq is None else int(seq),
            offline=offline,
            ts=ts,
            evse_id=self._evse(evse.get("id")) if isinstance(evse, dict) else None,
        )
        if live != "ignored":
            self._meter(samples, offline=offline, registers_only=live == "history")
        self._publish()
        return {}

    def _on_meter_values(self, payload: _Payload) -> _Payload:
        samples = decode(payload.get("meterValue"), self._reject)
        evse = self._evse(payload.get("evseId"))
        # evseId 0 is the station's main meter, not this EVSE: never its power.
        if evse != 0 and not self.state.elsewhere(evse):
            self._meter(samples, offline=False)
        self._publish()
        return {}

    def _on_needs(self, payload: _Payload) -> _Payload:
        evse = self._evse(payload.get("evseId"))
        needs = decode_needs(payload.get("chargingNeeds"), self._reject, now=time.time())
        if not self.state.elsewhere(evse):  # another EVSE's EV is not this session's
            if evse and not self.state.connected:
                self.state.evse_id = evse
            self.state.needs(needs)
        self._publish()
        return {"status": "Accepted"}

    def _meter(self, samples: list[Any], *, offline: bool, registers_only: bool = False) -> None:
        self.state.meter(
            samples,
            registers_only=registers_only,
            now=time.time(),
            offline=offline,
            reject=self._reject,
            max_age_s=self.sample_max_age_s,
            max_skew_s=self.clock_skew_s,
        )


class Session201(_SessionMixin, ChargePoint201):  # type: ignore[misc]
    """An OCPP 2.0.1 charge point connection."""


class Session21(_SessionMixin, ChargePoint21):  # type: ignore[misc]
    """An OCPP 2.1 charge point connection."""
