"""Modbus TCP / SunSpec adapter for batteries and meters (pymodbus 3.16).

One adapter serves every unit behind one host (a battery, a meter, or a
gateway with many unit ids) over a few TCP connections (``connections``; a
Modbus client carries one request at a time, a gateway takes several
clients). Requests borrow a connection per request; setpoints go before
waiting polls, and no poll starts while a setpoint is on the wire
(:class:`~adapters._pool.LendingPool`): a burst to every unit has the
connections, the gateway and the event loop to itself.

Each unit is served by its own loop, so one unit's failure never silences
another on the shared connection: it finds the ``SunS`` marker (40000, then
0, then 50000) and walks the model list. A battery (:attr:`UnitKind.BATTERY`)
remembers where models 802 (battery) and 704 (DER AC controls) start and
reads the 704 scale factors (static for a device); a meter
(:attr:`UnitKind.METER`) remembers the first of the meter models 201-204 its
map carries. Then the unit's block (802, or the meter model) is polled whole
every ``poll_s`` into a :class:`~adapters.types.Telemetry`. A unit that does not answer (a timeout,
a Modbus exception such as 0x0B "gateway target failed to respond", a block
that is not its model) costs that unit alone: it is published unavailable at
once and retried with a growing backoff (:mod:`adapters.backoff`), its map
re-discovered when it answers again. Only a lost TCP host (refused, closed
and not re-openable) takes every unit down and reconnects them together.

Setpoints go out through 704 in one write of ``WSetEna, WSetMod, WSet,
WSetRvrt, WSetPct, WSetPctRvrt, WSetEnaRvrt, WSetRvrtTms`` and are confirmed
by reading the 704 block back, equal within the device's resolution
(``10**WSet_SF`` W). Write and read-back go as one read/write request
(function 23, one round trip) to a unit that takes it, else as a write and a
read (a unit that refuses function 23 once is written and read apart from
then on; :attr:`UnitHealth.write_read_combined` says which). The pymodbus
client carries one request per connection at a time and gateways commonly
answer one at a time, so round trips are cut, not pipelined. A device whose
``WSet_SF`` is not implemented takes no setpoint ("setpoint not supported").
With a revert timer of ``revert_s`` the device drops a setpoint that is not
renewed, so the adapter rewrites every active setpoint each ``refresh_s``
until its hold ends: if the service dies, the battery falls back to idle by
itself.

Meters measure and take no setpoint: ``apply`` refuses one ("a meter takes
no setpoint", nothing is written) and ``release`` has nothing to hand back
(False). A meter's reading is ``W`` with its ``W_SF`` as ``power_kw`` and,
where the meter implements them, ``TotWhImp - TotWhExp`` with ``TotWh_SF``
as ``energy_kwh`` (kWh); both are the meter's own (secondary-side) values:
the enrolled multiplier (CT x VT) is the service's to apply.

Signs: 802 ``W``, 704 ``WSet`` and a meter's ``W`` are read and written in
the device's enrolled conventions (:class:`~adapters.sunspec.PowerSign`; by default ``W``
positive = charging, ``WSet`` positive = injected). Where the device reports
its charge state (802 ``ChaSt``), each reading checks the power's sign
against it, and, while a setpoint is active, the setpoint's direction too (a
``ChaSt`` against the setpoint for a few readings in a row means the enrolled
``WSet`` sign is wrong): a disagreement is counted (``charge_state`` /
``disagrees_with_power_sign`` or ``disagrees_with_setpoint_sign`` among the
rejected fields) and logged once per change. A meter's ``W`` is checked the
same way against its energy accumulators: between two readings in which only
``TotWhImp`` advanced it imported, only ``TotWhExp`` it exported
(``energy_registers`` / ``disagrees_with_power_sign``).

Registers are decoded point by point (:mod:`adapters.sunspec.codec`): a
point that is not implemented or out of range drops that field (counted per
field and reason), the rest of the reading is kept; a reading without a
usable power is not published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException

from adapters._base import AssetBook, BookedService
from adapters._pool import LendingPool
from adapters.backoff import Backoff, full_jitter_delay
from adapters.clamp import ClampResult
from adapters.errors import DeviceError, PayloadError, SunSpecError
from adapters.sunspec import (
    BASE_ADDRESSES,
    END_MODEL_ID,
    METER_MODEL_IDS,
    SUNS_MARKER,
    PowerSign,
    load_model,
)
from adapters.sunspec.codec import Block, EncodeError, Model, Value
from adapters.sunspec.conventions import from_device_w, to_device_w
from adapters.types import (
    Confirmation,
    DeviceLimits,
    Setpoint,
    Telemetry,
    TelemetrySource,
)

__all__ = ["METER_REFUSAL", "ModbusAdapter", "ModbusUnit", "PowerSign", "UnitHealth", "UnitKind"]

log = logging.getLogger("adapters.modbus")

M802, M704 = load_model(802), load_model(704)
#: 802 ``State`` values in which the battery takes setpoints.
_AVAILABLE_STATES = {3, 4, 5}
#: 802 ``ChaSt`` values that state a direction of power.
_DISCHARGING, _CHARGING = 3, 4
#: Modbus exception codes by which a gateway says its target unit is not there
#: (0x0A path unavailable, 0x0B target failed to respond; Modbus application
#: protocol v1.1b3, section 7).
_GATEWAY_CODES = frozenset({0x0A, 0x0B})
_MAX_WALK = 64
#: One past the last holding register address.
_LAST_ADDRESS = 0x10000
#: Extra seconds on pymodbus' own response timeout, so ours always fires first:
#: pymodbus closes a connection after a few of its own timeouts in a row, which
#: would take every unit on it down for one dead unit's silence.
_CLIENT_GRACE_S = 1.0
#: Retry delays remembered per unit (for health reports and tests).
_DELAYS_KEPT = 32
#: Why a setpoint to a meter is refused.
METER_REFUSAL = "a meter takes no setpoint"


class UnitKind(StrEnum):
    """What a unit behind the adapter is, and so which SunSpec models it is read with."""

    #: a battery: 802 polled for telemetry, 704 written for setpoints
    BATTERY = "battery"
    #: a meter: one of 201-204 polled for telemetry; takes no setpoint
    METER = "meter"


@dataclass(frozen=True, slots=True, kw_only=True)
class ModbusUnit:
    """One battery or meter behind the adapter's host.

    Attributes:
        unit_id: Modbus unit (device) id.
        limits: enrolled limits (a meter's are never used: it takes no setpoint).
        power_sign: the device's sign convention for 802 ``W`` or a meter's ``W`` (enrolled).
        setpoint_sign: the device's sign convention for 704 ``WSet`` (enrolled; batteries).
        kind: a battery or a meter.
    """

    unit_id: int
    limits: DeviceLimits
    power_sign: PowerSign = PowerSign.CHARGE_POSITIVE
    setpoint_sign: PowerSign = PowerSign.DISCHARGE_POSITIVE
    kind: UnitKind = UnitKind.BATTERY


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitHealth:
    """What the adapter decided about one unit.

    Attributes:
        answering: whether its last request was answered (None: not asked yet).
        failures: failed attempts in a row (0 once it answers).
        retry_delays_s: the backoff delays chosen after its recent failures, oldest first.
        last_error: why its last failed attempt failed.
        sign_disagreements: readings whose power sign contradicted ``ChaSt`` (a
            battery) or the energy accumulator that advanced (a meter).
        setpoint_sign_disagreements: readings in which ``ChaSt`` went against the
            active setpoint for ``_AGAINST_READINGS`` readings in a row or more.
        write_read_combined: whether its setpoints go out as one read/write
            request (function 23; True), as a write and a read (False), or it
            has taken none yet (None).
    """

    answering: bool | None
    failures: int
    retry_delays_s: tuple[float, ...]
    last_error: str
    sign_disagreements: int
    setpoint_sign_disagreements: int
    write_read_combined: bool | None = None


class _UnitFault(DeviceError):
    """One unit failed a request; the host is fine.

    Attributes:
        dead: the unit did not answer at all (a timeout, or its gateway said so).
    """

    def __init__(self, detail: str, *, dead: bool) -> None:
        self.dead = dead
        super().__init__(detail)


class _HostLost(DeviceError):
    """The TCP host is gone: every unit behind it is."""


class _Refused(DeviceError):
    """A setpoint the device cannot take (not supported, or not representable)."""


@dataclass(frozen=True, slots=True)
class _Map:
    """Where one unit's models start, and its 704 scale factors (read once)."""

    #: the model polled for readings (802, or the meter's 201-204) and where it starts
    model: Model
    at: int
    #: where 704 starts (None: a meter)
    at704: int | None
    sfs704: dict[str, Value]
    #: the device's WSet resolution in W (None: WSet_SF absent, or a meter)
    wset_step_w: float | None
    #: why WSet_SF is absent (``not_implemented``, ``out_of_range``), if it is
    wset_sf_absent: str = ""


@dataclass(slots=True)
class _Active:
    setpoint_kw: float
    until: float
    next_refresh: float


@dataclass(slots=True)
class _Unit:
    """One unit's serving state (touched only by its loop and by ``apply``)."""

    asset_id: str
    spec: ModbusUnit
    backoff: Backoff
    map: _Map | None = None
    answering: bool | None = None
    last_error: str = ""
    delays: deque[float] = field(default_factory=lambda: deque(maxlen=_DELAYS_KEPT))
    sign_disagrees: bool = False
    sign_disagreements: int = 0
    #: readings in a row in which ChaSt went against the active setpoint
    against: int = 0
    setpoint_disagrees: bool = False
    setpoint_disagreements: int = 0
    #: (field, reason) pairs dropped from its last reading, to log once per change
    dropped: set[tuple[str, str]] = field(default_factory=set)
    #: a meter's (TotWhImp, TotWhExp) at its last reading, in Wh
    energy_wh: tuple[float | None, float | None] = (None, None)
    #: setpoints as one function-23 request (True), as write + read (False), untried (None)
    combined: bool | None = None


class ModbusAdapter(BookedService):
    """Telemetry in and setpoints out for SunSpec batteries and meters on one Modbus TCP host.

    Args:
        host: device or gateway host.
        port: Modbus TCP port.
        units: the batteries and meters behind it, by asset id.
        poll_s: seconds between polls of each unit.
        timeout_s: per-request timeout.
        connections: TCP connections to open to the host (at least one must
            connect; fewer are used if the host refuses more).
        revert_s: revert timer written with every setpoint (0 = none).
        refresh_s: how often active setpoints are rewritten (default ``revert_s / 3``).
        queue_size: bound on readings waiting for the consumer.
        backoff_base: scale on reconnect and unit retry delays.
        time_scale: device seconds per wall-clock second for the clamp (1.0 for real
            equipment; a simulated park on a compressed clock passes its speed-up).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int = 502,
        units: Mapping[str, ModbusUnit],
        poll_s: float = 1.0,
        timeout_s: float = 2.0,
        connections: int = 4,
        revert_s: float = 60.0,
        refresh_s: float | None = None,
        queue_size: int = 10_000,
        backoff_base: float = 1.0,
        time_scale: float = 1.0,
    ) -> None:
        self.host, self.port = host, port
        self.units = dict(units)
        self.poll_s, self.timeout_s = poll_s, timeout_s
        self.revert_s = revert_s
        self.refresh_s = refresh_s if refresh_s is not None else max(0.5, revert_s / 3.0)
        self._book = AssetBook(
            {a: u.limits for a, u in units.items()},
            queue_size=queue_size,
            log=log,
            time_scale=time_scale,
        )
        self._backoff = Backoff(base=backoff_base)
        self._units = {a: _Unit(a, u, Backoff(base=backoff_base)) for a, u in self.units.items()}
        self.connections = max(1, connections)
        self._pool: LendingPool[AsyncModbusTcpClient] | None = None
        self._active: dict[str, _Active] = {}
        self._connected = asyncio.Event()
        self._task_name = f"modbus-adapter-{host}:{port}"

    def health(self, asset_id: str) -> UnitHealth:
        """What the adapter decided about one unit (answering, retries, sign checks).

        Raises:
            UnknownAsset: the asset is not behind this adapter.
        """
        self._book.limits_of(asset_id)
        unit = self._units[asset_id]
        return UnitHealth(
            answering=unit.answering,
            failures=unit.backoff.attempt,
            retry_delays_s=tuple(unit.delays),
            last_error=unit.last_error,
            sign_disagreements=unit.sign_disagreements,
            setpoint_sign_disagreements=unit.setpoint_disagreements,
            write_read_combined=unit.combined,
        )

    async def apply(self, setpoint: Setpoint) -> Confirmation:
        """Clamp, write through model 704, read back; keep refreshing until the hold ends.

        Never raises for the device's sake: a unit that is down, a setpoint the
        device cannot take (``WSet_SF`` not implemented: "setpoint not
        supported"; a meter: :data:`METER_REFUSAL`, nothing sent) or a
        read-back that differs by more than the device's resolution give an
        unconfirmed :class:`Confirmation` with its reason.

        Raises:
            UnknownAsset: the asset is not behind this adapter.
        """
        self._book.limits_of(setpoint.asset_id)
        unit = self._units[setpoint.asset_id]
        if unit.spec.kind is UnitKind.METER:
            untouched = ClampResult(setpoint.power_kw, clamped=False, reason="")
            return self._book.confirm(
                setpoint, untouched, sent=False, confirmed=False, rtt_s=None, reason=METER_REFUSAL
            )
        clamped = self._book.clamp(setpoint)
        now = time.monotonic()
        self._active[setpoint.asset_id] = _Active(
            clamped.power_kw, now + setpoint.hold_s, now + self.refresh_s
        )
        start = time.perf_counter()
        try:
            echoed, step_kw = await self._write_wset(unit, clamped.power_kw)
        except _Refused as exc:
            self._active.pop(setpoint.asset_id, None)
            return self._book.confirm(
                setpoint, clamped, sent=False, confirmed=False, rtt_s=None, reason=str(exc)
            )
        except (DeviceError, PayloadError) as exc:
            return self._book.confirm(
                setpoint, clamped, sent=False, confirmed=False, rtt_s=None, reason=str(exc)
            )
        rtt = time.perf_counter() - start
        # The device keeps WSet in steps of 10**WSet_SF W: equal within one step.
        ok = echoed is not None and abs(echoed - clamped.power_kw) <= step_kw * (1 + 1e-6)
        why = "" if ok else f"device reads back {echoed} kW (resolution {step_kw} kW)"
        return self._book.confirm(setpoint, clamped, sent=True, confirmed=ok, rtt_s=rtt, reason=why)

    async def release(self, asset_id: str) -> bool:
        """Disable the 704 active-power setpoint: the battery returns to its own mode.

        A meter has nothing to release: False, nothing is written.
        """
        self._book.limits_of(asset_id)
        if self._units[asset_id].spec.kind is UnitKind.METER:
            return False
        self._active.pop(asset_id, None)
        try:
            await self._write_wset(self._units[asset_id], None)
        except (DeviceError, PayloadError):
            return False
        return True

    async def _write_wset(
        self, unit: _Unit, power_kw: float | None, *, urgent: bool = True
    ) -> tuple[float | None, float]:
        """Write (or, with None, disable) the 704 setpoint and read it back.

        Returns:
            The setpoint the device reads back in kW (None if absent) and its
            resolution in kW.

        Raises:
            _Refused: the device cannot take this setpoint.
            DeviceError: not connected, or the unit failed the request.
            PayloadError: the read-back is not a 704 block.
        """
        where = unit.map
        if where is None:
            raise DeviceError(f"{unit.asset_id}: not connected or no SunSpec map yet")
        at704 = where.at704
        if at704 is None:
            raise _Refused(METER_REFUSAL)
        step_w = where.wset_step_w
        if step_w is None and power_kw is not None:
            why = where.wset_sf_absent.replace("_", " ")
            raise _Refused(f"setpoint not supported: WSet_SF {why}")
        sign = unit.spec.setpoint_sign
        scaled: dict[str, Value] = {
            "WSet": None if step_w is None else 0.0,
            "WSetRvrt": None if step_w is None else 0.0,
        }
        if power_kw is not None:
            scaled["WSet"] = to_device_w(power_kw, sign)
        values: dict[str, Value] = {
            **scaled,
            "WSetEna": 0 if power_kw is None else 1,
            "WSetMod": 1,
            "WSetEnaRvrt": 0,
            "WSetRvrtTms": int(self.revert_s),
        }
        try:
            offset, regs = M704.encode_range("WSetEna", "WSetRvrtTms", values, where.sfs704)
        except EncodeError as exc:
            raise _Refused(f"setpoint not supported: {exc}") from exc
        async with self._borrow(urgent=urgent) as client:
            # the whole block read back: decoded with the scale factors the device has now
            back = M704.read(await self._write_read(client, unit, at704, at704 + offset, regs))
        wset = back.number("WSet")
        if power_kw is not None and back.integer("WSetEna") == 0:
            wset = None  # the device kept the setpoint disabled: not taken, whatever WSet says
        step_kw = back.steps.get("WSet", step_w or 1.0) / 1000.0
        return (None if wset is None else from_device_w(wset, sign)), step_kw

    async def _write_read(
        self, client: AsyncModbusTcpClient, unit: _Unit, at704: int, at: int, regs: list[int]
    ) -> list[int]:
        """Write ``regs`` at ``at``, then read the 704 block back: one round trip where it can.

        A unit is first asked with one read/write request (function 23: the
        device writes, then reads, in one transaction). If that fails before
        it ever worked (exception 01 "illegal function", no answer, any unit
        fault) the unit is written and read separately from then on, the
        failed setpoint included; once function 23 has worked for a unit, its
        failures are the unit's like any other request's.

        Raises:
            _UnitFault: the unit failed the write or the read.
            _HostLost: the connection is gone.
        """
        uid, size = unit.spec.unit_id, M704.size
        if unit.combined is not False:
            try:
                regs_back = await self._request(
                    client,
                    lambda c: c.readwrite_registers(
                        read_address=at704, read_count=size, write_address=at,
                        values=regs, device_id=uid,
                    ),
                )  # fmt: skip
            except _UnitFault as exc:
                if unit.combined:
                    raise
                log.info("%s: no function 23 (%s); writing and reading apart", unit.asset_id, exc)
                unit.combined = False
            else:
                if len(regs_back) < size:
                    raise _UnitFault(f"{size} registers asked, {len(regs_back)} read", dead=False)
                unit.combined = True
                return regs_back
        await self._request(client, lambda c: c.write_registers(at, regs, device_id=uid))
        return await self._read_block(client, uid, at704, size)

    @contextlib.asynccontextmanager
    async def _borrow(self, *, urgent: bool) -> AsyncIterator[AsyncModbusTcpClient]:
        pool = self._pool
        if pool is None:
            raise DeviceError(f"{self.host}:{self.port} not connected")
        async with pool.lend(urgent=urgent) as client:
            yield client

    async def _request(
        self,
        client: AsyncModbusTcpClient,
        op: Callable[[AsyncModbusTcpClient], Awaitable[Any]],
    ) -> list[int]:
        """One request; tells a unit's failure (:class:`_UnitFault`) from the host's.

        Raises:
            _UnitFault: no answer in time, an exception response, a garbled frame.
            _HostLost: the connection is closed and cannot be reopened.
        """
        if not client.connected and not await self._reopen(client):
            raise _HostLost(f"{self.host}:{self.port} not connected")
        try:
            response = await asyncio.wait_for(op(client), self.timeout_s)
        except TimeoutError as exc:  # before OSError: TimeoutError is one
            raise _UnitFault(f"no answer within {self.timeout_s} s", dead=True) from exc
        except (ConnectionException, OSError) as exc:
            raise _HostLost(f"{self.host}:{self.port}: {exc!r}") from exc
        except ModbusException as exc:
            raise _UnitFault(f"{exc!r}", dead=False) from exc
        if response.isError():
            code = getattr(response, "exception_code", None)
            raise _UnitFault(f"exception response {response}", dead=code in _GATEWAY_CODES)
        registers = getattr(response, "registers", None)
        return [int(r) for r in registers] if isinstance(registers, list) else []

    async def _reopen(self, client: AsyncModbusTcpClient) -> bool:
        """Reconnect one pooled connection in place (a gateway may close an idle one)."""
        try:
            return bool(await asyncio.wait_for(client.connect(), self.timeout_s))
        except (TimeoutError, ModbusException, OSError):
            return False

    async def _read_block(
        self, client: AsyncModbusTcpClient, unit_id: int, address: int, count: int
    ) -> list[int]:
        regs = await self._request(
            client, lambda c: c.read_holding_registers(address, count=count, device_id=unit_id)
        )
        if len(regs) < count:
            raise _UnitFault(f"{count} registers asked, {len(regs)} read", dead=False)
        return regs

    async def _read(self, unit_id: int, address: int, count: int) -> list[int]:
        async with self._borrow(urgent=False) as client:
            return await self._read_block(client, unit_id, address, count)

    async def _discover(self, unit: _Unit) -> _Map:
        """Find one unit's SunSpec map.

        Raises:
            _UnitFault: the unit does not answer.
            SunSpecError: no marker; a battery without model 802 or 704; a
                meter without any of 201-204.
            PayloadError: the 704 block is not one.
        """
        asset_id, uid = unit.asset_id, unit.spec.unit_id
        for base in BASE_ADDRESSES:
            try:
                marker = await self._read(uid, base, 2)
            except _UnitFault as exc:
                if exc.dead:
                    raise  # not there at all: no use asking at other bases
                continue
            if tuple(marker) == SUNS_MARKER:
                break
        else:
            raise SunSpecError(f"{asset_id}: no SunS marker at {BASE_ADDRESSES}")
        found: dict[int, int] = {}
        address = base + 2
        for _ in range(_MAX_WALK):
            if address + 2 > _LAST_ADDRESS:
                break  # a garbled length walked off the register space
            model_id, length = await self._read(uid, address, 2)
            if model_id == END_MODEL_ID:
                break
            found.setdefault(model_id, address)
            address += 2 + length
        if unit.spec.kind is UnitKind.METER:
            meter = next((m for m in METER_MODEL_IDS if m in found), None)
            if meter is None:
                raise SunSpecError(
                    f"{asset_id}: no meter model (201-204)", model_id=METER_MODEL_IDS[0]
                )
            return _Map(load_model(meter), found[meter], None, {}, None)
        for needed in (802, 704):
            if needed not in found:
                raise SunSpecError(f"{asset_id}: model {needed} missing", model_id=needed)
        block = M704.read(await self._read(uid, found[704], M704.size))
        sfs = {name: block.values[name] for name, p in M704.points.items() if p.type == "sunssf"}
        return _Map(
            M802,
            found[802],
            found[704],
            sfs,
            _step(sfs, "WSet_SF"),
            block.absent.get("WSet_SF", ""),
        )

    async def _connect(self) -> list[AsyncModbusTcpClient]:
        """Open the connections; at least one must connect."""
        clients = [
            AsyncModbusTcpClient(
                self.host,
                port=self.port,
                timeout=self.timeout_s + _CLIENT_GRACE_S,
                retries=0,
                reconnect_delay=0,
            )
            for _ in range(self.connections)
        ]
        ok = await asyncio.gather(*(c.connect() for c in clients), return_exceptions=True)
        up = [c for c, good in zip(clients, ok, strict=True) if good is True]
        for client in clients:
            if client not in up:
                client.close()
        if not up:
            raise DeviceError(f"cannot connect to {self.host}:{self.port}")
        if len(up) < len(clients):
            log.warning(
                "Modbus %s:%d took %d of %d connections",
                self.host, self.port, len(up), len(clients),
            )  # fmt: skip
        return up

    async def _run(self) -> None:
        first = True
        while not self._closing:
            clients: list[AsyncModbusTcpClient] = []
            try:
                clients = await self._connect()
                self._pool = LendingPool(clients)
                self._backoff.reset()
                self.stats.connected = True
                self.stats.reconnects += 0 if first else 1
                first = False
                self._connected.set()
                log.info(
                    "Modbus connected to %s:%d (%d units, %d connections)",
                    self.host, self.port, len(self.units), len(clients),
                )  # fmt: skip
                await self._serve_units()
            except DeviceError as exc:
                log.warning("Modbus %s:%d: %s", self.host, self.port, exc)
            finally:
                pool, self._pool = self._pool, None
                if pool is not None:
                    pool.close(DeviceError(f"{self.host}:{self.port} connection lost"))
                self._connected.clear()
                self.stats.connected = False
                for client in clients:
                    client.close()
                for unit in self._units.values():
                    unit.map = None
                    self._unit_down(unit, f"{self.host}:{self.port} not connected")
            await self._backoff.wait()

    async def _serve_units(self) -> None:
        """Serve every unit in its own loop until the host is lost.

        Raises:
            DeviceError: the host was lost (why).
        """
        lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        tasks = [
            asyncio.create_task(
                self._serve_unit(unit, lost), name=f"{self._task_name}/{unit.spec.unit_id}"
            )
            for unit in self._units.values()
        ]
        try:
            why = await lost
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        raise DeviceError(why)

    async def _serve_unit(self, unit: _Unit, lost: asyncio.Future[str]) -> None:
        """Poll one unit and refresh its setpoint; its failures stay its own."""
        where = f"{self.host}:{self.port}/{unit.spec.unit_id}"
        while True:
            started = time.monotonic()
            try:
                if unit.map is None:
                    unit.map = await self._discover(unit)
                model = unit.map.model
                block = model.read(await self._read(unit.spec.unit_id, unit.map.at, model.size))
                if unit.spec.kind is UnitKind.METER:
                    reading = self._meter_reading(unit, block, where)
                else:
                    reading = self._reading(unit, block, where)
            except _HostLost as exc:
                if not lost.done():
                    lost.set_result(str(exc))
                return
            except (DeviceError, PayloadError) as exc:
                await asyncio.sleep(self._unit_failed(unit, exc, where))
                continue
            except Exception as exc:  # a bug must cost this unit, not its neighbours
                log.exception("Modbus %s: unexpected error", where)
                await asyncio.sleep(self._unit_failed(unit, exc, where))
                continue
            self._unit_up(unit, where)
            if reading is not None:
                self._book.publish(reading)
            try:
                await self._refresh(unit)
            except _HostLost as exc:
                if not lost.done():
                    lost.set_result(str(exc))
                return
            except (DeviceError, PayloadError) as exc:
                log.warning("Modbus %s: setpoint refresh failed: %s", where, exc)
            await asyncio.sleep(max(0.0, self.poll_s - (time.monotonic() - started)))

    def _unit_failed(self, unit: _Unit, exc: Exception, where: str) -> float:
        """Mark one unit down and choose the delay before its next attempt (seconds)."""
        unit.map = None  # re-discover when it answers: it may come back with another map
        unit.last_error = str(exc) or repr(exc)
        if isinstance(exc, PayloadError):
            self._book.bad_payload(where, exc.detail)
        elif unit.answering is not False:
            log.warning("Modbus %s (%s) failed: %s", where, unit.asset_id, unit.last_error)
        delay = full_jitter_delay(unit.backoff.attempt, base=unit.backoff.base)
        unit.backoff.attempt += 1
        unit.delays.append(delay)
        self._unit_down(unit, unit.last_error)
        return delay

    def _unit_down(self, unit: _Unit, why: str) -> None:
        """Publish one unit unavailable, once per outage, so the service stops counting it."""
        if unit.answering is False:
            return
        unit.answering = False
        last = self._book.latest.get(unit.asset_id)
        log.info("Modbus unit %s marked unavailable: %s", unit.asset_id, why)
        self._book.publish(
            Telemetry(
                asset_id=unit.asset_id,
                ts=time.time(),
                power_kw=0.0 if last is None else last.power_kw,
                soc=None if last is None else last.soc,
                available=False,
                source=TelemetrySource.MODBUS,
            )
        )

    def _unit_up(self, unit: _Unit, where: str) -> None:
        if unit.answering is False:
            log.info("Modbus %s (%s) answers again", where, unit.asset_id)
        unit.answering = True
        unit.backoff.reset()

    async def _refresh(self, unit: _Unit) -> None:
        active = self._active.get(unit.asset_id)
        now = time.monotonic()
        if active is None or now < active.next_refresh:
            return
        if now >= active.until:
            del self._active[unit.asset_id]
            return
        active.next_refresh = now + self.refresh_s
        try:
            await self._write_wset(unit, active.setpoint_kw, urgent=False)
        except _Refused as exc:
            self._active.pop(unit.asset_id, None)
            log.warning("Modbus %s: setpoint dropped: %s", unit.asset_id, exc)

    def _drop(
        self, unit: _Unit, seen: set[tuple[str, str]], key: tuple[str, str], value: object
    ) -> None:
        """Drop one field (name, reason): counted every time, logged once per change."""
        if key in unit.dropped:
            self.stats.record_rejected_field(*key)
        else:
            name, reason = key
            self._book.reject_field(
                f"{self.host}:{self.port}/{unit.spec.unit_id}", name, reason, value
            )
        seen.add(key)

    def _reading(self, unit: _Unit, block: Block, where: str) -> Telemetry | None:
        """One 802 block -> a reading, field by field; None without a usable power."""
        seen: set[tuple[str, str]] = set()
        for point, name in _FIELDS.items():
            why = block.absent.get(point)
            if why is not None and not (point in _OPTIONAL and why == "not_implemented"):
                self._drop(unit, seen, (name, why), block.values.get(point))
        soc = block.number("SoC")
        if soc is not None and not 0.0 <= soc <= 100.0:
            self._drop(unit, seen, ("soc", "out_of_range"), soc)
            soc = None
        cha, dis = block.number("WChaRteMax"), block.number("WDisChaRteMax")
        state, chast = block.integer("State"), block.integer("ChaSt")
        watts = block.number("W")
        power_kw = None if watts is None else from_device_w(watts, unit.spec.power_sign)
        unit.dropped = seen
        if power_kw is None:
            return None
        drawing = None if chast not in (_CHARGING, _DISCHARGING) else chast == _CHARGING
        step_kw = block.steps.get("W", 1.0) / 1000.0
        self._check_sign(unit, power_kw, drawing, step_kw, where, "charge_state")
        self._check_setpoint_sign(unit, chast, where)
        return Telemetry(
            asset_id=unit.asset_id,
            ts=time.time(),
            power_kw=power_kw,
            soc=None if soc is None else soc / 100.0,
            available=state in _AVAILABLE_STATES,
            max_charge_kw=None if cha is None else cha / 1000.0,
            max_discharge_kw=None if dis is None else dis / 1000.0,
            source=TelemetrySource.MODBUS,
        )

    def _meter_reading(self, unit: _Unit, block: Block, where: str) -> Telemetry | None:
        """One meter block (201-204) -> a reading, field by field; None without a usable power."""
        seen: set[tuple[str, str]] = set()
        for point, name in _METER_FIELDS.items():
            why = block.absent.get(point)
            # an accumulator at 0 reads as "not implemented" (SunSpec acc32): no fault
            if why is not None and not (point in _METER_OPTIONAL and why == "not_implemented"):
                self._drop(unit, seen, (name, why), block.values.get(point))
        imported, exported = block.number("TotWhImp"), block.number("TotWhExp")
        energy_kwh = None
        if imported is not None or exported is not None:
            energy_kwh = ((imported or 0.0) - (exported or 0.0)) / 1000.0
        watts = block.number("W")
        unit.dropped = seen
        before, unit.energy_wh = unit.energy_wh, (imported, exported)
        if watts is None:
            return None
        power_kw = from_device_w(watts, unit.spec.power_sign)
        step_kw = block.steps.get("W", 1.0) / 1000.0
        drawing = _direction(before, unit.energy_wh)
        self._check_sign(unit, power_kw, drawing, step_kw, where, "energy_registers")
        return Telemetry(
            asset_id=unit.asset_id,
            ts=time.time(),
            power_kw=power_kw,
            energy_kwh=energy_kwh,
            source=TelemetrySource.MODBUS,
        )

    def _check_sign(
        self,
        unit: _Unit,
        power_kw: float,
        drawing: bool | None,
        step_kw: float,
        where: str,
        evidence: str,
    ) -> None:
        """Check the enrolled power sign against what the device says of its direction.

        Args:
            unit: the unit read.
            power_kw: its power as read with the enrolled sign.
            drawing: True when the device says it draws from the grid (``ChaSt``
                charging, the import accumulator advanced), False when it feeds
                in, None when it says nothing.
            step_kw: the power's resolution.
            where: the unit's address, for the log.
            evidence: the field the direction came from (the rejected-field name).
        """
        # Below a few resolution steps the sign of a reading says nothing.
        if drawing is None or abs(power_kw) <= 2 * step_kw:
            return
        disagrees = drawing != (power_kw > 0)
        if disagrees:
            unit.sign_disagreements += 1
            self.stats.record_rejected_field(evidence, "disagrees_with_power_sign")
        if disagrees == unit.sign_disagrees:
            return
        unit.sign_disagrees = disagrees
        if disagrees:
            log.warning(
                "Modbus %s (%s): power %.3f kW read as %s disagrees with %s (%s);"
                " check the enrolled power_sign",
                where, unit.asset_id, power_kw, unit.spec.power_sign.value, _SHOWN[evidence],
                "drawing from the grid" if drawing else "feeding the grid",
            )  # fmt: skip
        else:
            log.info(
                "Modbus %s (%s): power sign agrees with %s again",
                where, unit.asset_id, _SHOWN[evidence],
            )  # fmt: skip

    def _check_setpoint_sign(self, unit: _Unit, chast: int | None, where: str) -> None:
        """Check the enrolled setpoint sign: ``ChaSt`` should go the way the setpoint asks."""
        active = self._active.get(unit.asset_id)
        step_w = unit.map.wset_step_w if unit.map is not None else None
        if active is None:
            unit.against = 0
            return
        if chast not in (_CHARGING, _DISCHARGING):
            return
        if abs(active.setpoint_kw) * 1000.0 <= 2 * (step_w or 1.0):
            return  # an idle setpoint asks for no direction
        against = (chast == _CHARGING) != (active.setpoint_kw > 0)
        unit.against = unit.against + 1 if against else 0
        disagrees = unit.against >= _AGAINST_READINGS
        if disagrees:
            unit.setpoint_disagreements += 1
            self.stats.record_rejected_field("charge_state", "disagrees_with_setpoint_sign")
        if disagrees == unit.setpoint_disagrees:
            return
        unit.setpoint_disagrees = disagrees
        if disagrees:
            log.warning(
                "Modbus %s (%s): ChaSt %s goes against the setpoint %.3f kW written as %s;"
                " check the enrolled setpoint_sign",
                where, unit.asset_id,
                "CHARGING" if chast == _CHARGING else "DISCHARGING",
                active.setpoint_kw, unit.spec.setpoint_sign.value,
            )  # fmt: skip
        else:
            log.info("Modbus %s (%s): ChaSt follows the setpoint again", where, unit.asset_id)


#: Readings in a row against the setpoint before a wrong setpoint sign is suspected
#: (a battery ramping over from the previous setpoint goes against it briefly).
_AGAINST_READINGS = 3

#: 802 points a reading uses -> the reading's field names (for rejected-field counts).
_FIELDS = {
    "SoC": "soc",
    "W": "power_kw",
    "WChaRteMax": "max_charge_kw",
    "WDisChaRteMax": "max_discharge_kw",
    "State": "available",
    "ChaSt": "charge_state",
}
#: Points a device may leave unimplemented without a word (only a check uses them).
_OPTIONAL = frozenset({"ChaSt"})
#: The registers each sign check's evidence comes from, as the log names them.
_SHOWN = {"charge_state": "ChaSt", "energy_registers": "TotWhImp/TotWhExp"}
#: Meter (201-204) points a reading uses -> the reading's field names.
_METER_FIELDS = {"W": "power_kw", "TotWhImp": "energy_imported", "TotWhExp": "energy_exported"}
#: Meter points that may be unimplemented without a word: an acc32 reads 0 as
#: "not implemented", which is also what a meter that never exported holds.
_METER_OPTIONAL = frozenset({"TotWhImp", "TotWhExp"})


def _direction(
    before: tuple[float | None, float | None], after: tuple[float | None, float | None]
) -> bool | None:
    """Which way a meter's energy moved between two readings of (TotWhImp, TotWhExp), Wh.

    True when only the import accumulator advanced, False when only the export
    one did, None otherwise (no change within the resolution, both, a wrap or
    reset, or a register that appeared or vanished). A register absent both
    times has not moved (an acc32 at 0 reads as "not implemented").
    """
    d_imp, d_exp = _delta(before[0], after[0]), _delta(before[1], after[1])
    if d_imp is None or d_exp is None or d_imp < 0 or d_exp < 0:
        return None
    if d_imp > 0 and d_exp == 0:
        return True
    if d_exp > 0 and d_imp == 0:
        return False
    return None


def _delta(a: float | None, b: float | None) -> float | None:
    if a is None and b is None:
        return 0.0
    return None if a is None or b is None else b - a


def _step(sfs: Mapping[str, Value], name: str) -> float | None:
    """The resolution ``10**sf`` of a present scale factor, None when it is absent."""
    sf = sfs.get(name)
    return 10.0**sf if isinstance(sf, int) else None
