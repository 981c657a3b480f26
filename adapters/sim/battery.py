"""Simulated batteries served over Modbus TCP with SunSpec registers.

Each battery is one Modbus unit id on a :class:`ModbusBatteryServer` (up to
247 units per server, as behind a real Modbus gateway; the same gateway may
also serve simulated meters, :mod:`adapters.sim.meters`). A battery's map, at ``base``
(40000 by default)::

    SunS | model 1 (common) | model 802 (battery, read-only) | model 704 (DER AC
    controls, writable) | 0xFFFF 0

Writes to 704 ``WSetEna/WSetMod/WSet/WSetRvrtTms`` command the battery: ``WSet``
in watts, by default positive = injected into the grid (DER convention, the
opposite of the adapters' ``power_kw``), scaled by ``WSet_SF`` (0 by default).
With ``WSetRvrtTms > 0`` the command reverts to ``WSetRvrt`` that many
wall-clock seconds after the last write, as a real inverter's revert timer
does. Physics (SoC integrating power with a round-trip efficiency, SoC
protection at 0 and 100 %) runs in simulated time, lazily, whenever a register
is read or written. 802 ``W`` is battery DC power, by default positive =
charging.

Every command is noted with the TCP peer (client address and port) that
wrote it (``BatteryModel.writers``), so a test can tell from the device's side
which process commanded it, and when.

A battery can play what field devices do (:class:`BatterySpec`): the other
sign convention for ``W`` or ``WSet``, a coarse or not implemented
``WSet_SF``; and at run time (``BatteryModel.fault``) a unit that is dead
behind its gateway: no answer at all, or Modbus exception 0x0B ("gateway
target device failed to respond").
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from adapters.sim._clock import SimClock
from adapters.sim.meters import MeterModel, meter_device
from adapters.sunspec import PowerSign, build_image, load_model
from adapters.sunspec.codec import Value, fitting_scale_factor
from adapters.sunspec.conventions import from_device_w, to_device_w

__all__ = ["BatteryModel", "BatterySpec", "Fault", "ModbusBatteryServer"]

M1, M802, M704 = load_model(1), load_model(802), load_model(704)
#: 802 ``State`` values used by the simulator.
STATE_CONNECTED, STATE_SOC_PROTECTION = 3, 5
#: 802 ``ChaSt`` values.
CHAST_EMPTY, CHAST_DISCHARGING, CHAST_CHARGING, CHAST_FULL, CHAST_HOLDING = 2, 3, 4, 5, 6
_SF = {"SoC_SF": -1, "AHRtg_SF": 0}
#: Modbus function 23: read/write multiple registers.
_READ_WRITE = 23
#: Commands each battery keeps with their writer (`BatteryModel.writers`).
WRITERS_KEPT = 10_000
#: The TCP peer of the request being served (set in the task that serves it).
_PEER: ContextVar[tuple[str, int] | None] = ContextVar("modbus_peer", default=None)


class _PeerHandler(ServerRequestHandler):
    """Serves one client connection, its peer known to the request's task."""

    async def handle_request(self) -> None:
        transport = self.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        _PEER.set((str(peer[0]), int(peer[1])) if peer else None)
        await super().handle_request()  # type: ignore[no-untyped-call]


class _TcpServer(ModbusTcpServer):
    """A Modbus TCP server whose handlers note each request's peer."""

    def callback_new_connection(self) -> _PeerHandler:
        return _PeerHandler(  # type: ignore[no-untyped-call]
            self, self.trace_packet, self.trace_pdu, self.trace_connect
        )


class Fault(StrEnum):
    """How a unit behind the simulated gateway fails."""

    #: the unit never answers: the client's request times out
    SILENT = "silent"
    #: the gateway answers for it with exception 0x0B (target device failed to respond)
    GATEWAY_NO_RESPONSE = "gateway_no_response"


@dataclass(frozen=True, slots=True, kw_only=True)
class BatterySpec:
    """One simulated battery.

    Attributes:
        asset_id: its id (also written to the common model's serial number).
        unit_id: its Modbus unit id (1..247).
        capacity_kwh: usable capacity.
        max_charge_kw: charge power limit.
        max_discharge_kw: discharge power limit (>= 0).
        soc: initial SoC 0..1.
        efficiency: round-trip efficiency (applied as its square root each way).
        base: register address of the SunS marker (40000, 0 or 50000).
        power_sign: the sign convention of its 802 ``W``.
        setpoint_sign: the sign convention of its 704 ``WSet``.
        wset_sf: its 704 ``WSet_SF`` (None: not implemented, 0x8000).
        function_23: whether it takes read/write requests (Modbus function 23);
            without, it answers them with exception 01 (illegal function), as a
            device that does not implement a function must.
    """

    asset_id: str
    unit_id: int = 1
    capacity_kwh: float = 200.0
    max_charge_kw: float = 100.0
    max_discharge_kw: float = 100.0
    soc: float = 0.5
    efficiency: float = 0.92
    base: int = 40000
    power_sign: PowerSign = PowerSign.CHARGE_POSITIVE
    setpoint_sign: PowerSign = PowerSign.DISCHARGE_POSITIVE
    wset_sf: int | None = 0
    function_23: bool = True


@dataclass
class BatteryModel:
    """The physics and control state of one simulated battery.

    Tests may set ``overrides`` (raw 802 registers by point name) and ``fault``
    (a dead unit) at any time. ``writers`` holds the last `WRITERS_KEPT`
    commands as ``(time.time(), peer)``, the peer the Modbus client's
    ``(host, port)`` (None where the server could not tell).
    """

    spec: BatterySpec
    clock: SimClock
    soc: float = 0.0
    power_kw: float = 0.0
    setpoint_kw: float | None = None
    revert_at: float | None = None
    writes: int = 0
    overrides: dict[str, int] = field(default_factory=dict)
    fault: Fault | None = None
    writers: deque[tuple[float, tuple[str, int] | None]] = field(
        default_factory=lambda: deque(maxlen=WRITERS_KEPT)
    )
    _last_t: float = 0.0

    def __post_init__(self) -> None:
        self.soc = self.spec.soc

    def command(self, wset_w: float | None, revert_s: float) -> None:
        """Apply a 704 active-power command (``spec.setpoint_sign``) with a revert timer."""
        self.writes += 1
        self.writers.append((time.time(), _PEER.get()))
        sign = self.spec.setpoint_sign
        self.setpoint_kw = None if wset_w is None else from_device_w(wset_w, sign)
        self.revert_at = time.monotonic() + revert_s if revert_s > 0 else None

    def step(self) -> None:
        """Advance the physics to now."""
        t = self.clock.now()
        dt, self._last_t = t - self._last_t, t
        if self.revert_at is not None and time.monotonic() >= self.revert_at:
            self.setpoint_kw, self.revert_at = None, None
        goal = self.setpoint_kw or 0.0
        goal = min(max(goal, -self.spec.max_discharge_kw), self.spec.max_charge_kw)
        if (goal > 0 and self.soc >= 1.0) or (goal < 0 and self.soc <= 0.0):
            goal = 0.0
        self.power_kw = goal
        if dt > 0 and goal != 0.0:
            eta = self.spec.efficiency**0.5
            stored = goal * eta if goal > 0 else goal / eta
            self.soc = min(1.0, max(0.0, self.soc + stored * dt / 3600.0 / self.spec.capacity_kwh))

    def values_802(self) -> dict[str, Value]:
        """The battery model's engineering values now."""
        full, empty = self.soc >= 1.0, self.soc <= 0.0
        if self.power_kw > 0:
            chast = CHAST_CHARGING
        elif self.power_kw < 0:
            chast = CHAST_DISCHARGING
        else:
            chast = CHAST_FULL if full else CHAST_EMPTY if empty else CHAST_HOLDING
        w_max = 1000.0 * max(self.spec.max_charge_kw, self.spec.max_discharge_kw)
        return {
            **_SF,
            # scale factors sized to the device, as a real battery's nameplate would be
            "WHRtg_SF": fitting_scale_factor(self.spec.capacity_kwh * 1000.0, 65535),
            "WChaDisChaMax_SF": fitting_scale_factor(w_max, 65535),
            "W_SF": fitting_scale_factor(w_max, 32767),
            "WHRtg": self.spec.capacity_kwh * 1000.0,
            "WChaRteMax": 0.0 if full else self.spec.max_charge_kw * 1000.0,
            "WDisChaRteMax": 0.0 if empty else self.spec.max_discharge_kw * 1000.0,
            "SoCMax": 100.0,
            "SoCMin": 0.0,
            "SoC": round(self.soc * 100.0, 1),
            "ChaSt": chast,
            "LocRemCtl": 0,
            "Typ": 4,
            "State": STATE_SOC_PROTECTION if (full or empty) else STATE_CONNECTED,
            "W": to_device_w(self.power_kw, self.spec.power_sign),
        }


def _layout() -> tuple[int, int]:
    """Offsets of model 802 and 704 from the marker."""
    off802 = 2 + M1.size
    return off802, off802 + M802.size


_OFF802, _OFF704 = _layout()


class ModbusBatteryServer:
    """A Modbus TCP server (a gateway) with one SunSpec battery or meter per unit id.

    Use as ``async with``: entering listens, leaving shuts down. ``stop()`` and
    ``start()`` let a test restart it on the same port.

    Args:
        host: address to bind.
        port: TCP port.
        batteries: the batteries.
        time_scale: simulated seconds per wall-clock second.
        meters: the meters it also serves (their own clocks).

    Raises:
        ValueError: two units with one unit id, or more than 247 units.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int,
        batteries: Sequence[BatterySpec],
        time_scale: float = 1.0,
        meters: Sequence[MeterModel] = (),
    ) -> None:
        self.host, self.port = host, port
        self.clock = SimClock(time_scale=time_scale)
        self.models = {b.asset_id: BatteryModel(b, self.clock) for b in batteries}
        self.meters: dict[str, MeterModel] = {}
        self.add_meters(meters)
        self._server: _TcpServer | None = None

    def add_meters(self, meters: Sequence[MeterModel]) -> None:
        """Serve these meters too, from the next ``start``.

        Raises:
            ValueError: a unit id already served, or more than 247 units.
        """
        ids = [m.spec.unit_id for m in self.models.values()]
        ids += [m.spec.unit_id for m in (*self.meters.values(), *meters)]
        if len(set(ids)) != len(ids) or len(ids) > 247:
            raise ValueError("units need distinct unit ids, at most 247 per server")
        self.meters.update({m.spec.asset_id: m for m in meters})

    async def start(self) -> None:
        """Listen for Modbus TCP clients."""
        devices = [self._device(model) for model in self.models.values()]
        devices += [meter_device(model) for model in self.meters.values()]
        # ignore_missing_devices: a SILENT unit raises NoSuchIdException, which
        # the server then answers with nothing at all, as a dead unit would
        self._server = _TcpServer(
            devices, address=(self.host, self.port), ignore_missing_devices=True
        )
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        """Close the listener and every client connection."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]

    async def __aenter__(self) -> ModbusBatteryServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _device(self, model: BatteryModel) -> SimDevice:
        spec = model.spec
        image = build_image(
            [
                (M1, {"Mn": "park-vpp", "Md": "sim-battery", "Vr": "1", "SN": spec.asset_id}),
                (M802, model.values_802()),
                (M704, self._values_704(spec)),
            ]
        )
        ro_end = _OFF704
        simdata = [
            SimData(spec.base, values=image[:ro_end], datatype=DataType.REGISTERS, readonly=True),
            SimData(spec.base + ro_end, values=image[ro_end:], datatype=DataType.REGISTERS),
        ]

        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            if function_code == _READ_WRITE and not spec.function_23:
                return ExcCodes.ILLEGAL_FUNCTION
            if model.fault is Fault.SILENT:
                raise NoSuchIdException(f"unit {spec.unit_id} is silent")
            if model.fault is Fault.GATEWAY_NO_RESPONSE:
                return ExcCodes.GATEWAY_NO_RESPONSE
            model.step()
            at = spec.base + _OFF802 - start_address
            if address < spec.base + _OFF802 + M802.size and address + count > spec.base + _OFF802:
                # only a request that reads model 802 needs it encoded afresh
                block = M802.encode({**model.values_802()})
                for name, raw in model.overrides.items():
                    point = M802.points[name]
                    block[point.offset] = raw
                registers[at : at + len(block)] = block
            if set_values:
                off = address - start_address
                registers[off : off + len(set_values)] = [int(v) for v in set_values]
                self._on_write(model, registers, spec.base + _OFF704 - start_address)
            return None

        return SimDevice(spec.unit_id, simdata=simdata, action=action)

    @staticmethod
    def _values_704(spec: BatterySpec) -> dict[str, Value]:
        implemented = spec.wset_sf is not None
        return {
            "WSet_SF": spec.wset_sf,
            "WSetEna": 0,
            "WSetMod": 1,
            "WSet": 0 if implemented else None,
            "WSetRvrt": 0 if implemented else None,
        }

    @staticmethod
    def _on_write(model: BatteryModel, registers: list[int], at: int) -> None:
        values = M704.decode(registers[at : at + M704.size])
        enabled = values.get("WSetEna") == 1 and values.get("WSetMod") == 1
        wset = values.get("WSet")
        revert = values.get("WSetRvrtTms")
        model.command(
            float(wset) if enabled and isinstance(wset, int | float) else None,
            float(revert) if isinstance(revert, int | float) else 0.0,
        )
