"""Simulated meters: an enterprise's metering point, read over Modbus TCP (SunSpec 203) or MQTT.

A meter sees what flows through its metering point: the power of the
enterprise's simulated devices (anything with a ``power_kw``, positive =
drawn from the grid: :class:`Drawing`) plus the base load of the enterprise
that no asset is enrolled for. Like a real meter behind its current and
voltage transformers it reports its secondary side, the primary values
divided by its multiplier (CT x VT); the service multiplies them back by the
enrolled multiplier. Its energy accumulators integrate the primary power in
simulated time, imports and exports apart (SunSpec ``TotWhImp`` /
``TotWhExp``).

:class:`MeterModel` is the physics, free of I/O. A Modbus meter is one more
unit id on a :class:`~adapters.sim.battery.ModbusBatteryServer` (a gateway),
its map at ``base``::

    SunS | model 1 (common) | model 203 (wye three-phase meter) | 0xFFFF 0

An MQTT meter publishes through a :class:`~adapters.sim.loads.MqttLoadFleet`
gateway, ``p_kw`` and ``e_kwh`` (imported minus exported) on its secondary
side, and takes no command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

from adapters.sim._clock import SimClock
from adapters.sunspec import PowerSign, build_image, load_model
from adapters.sunspec.codec import Value, fitting_scale_factor
from adapters.sunspec.conventions import to_device_w

__all__ = ["Drawing", "MeterModel", "MeterSpec", "meter_device"]

M1, M203 = load_model(1), load_model(203)
#: Largest magnitude of an int16 point that is not its "not implemented" value.
_INT16_MAX = 32767
#: Registers from the marker to model 203's ID.
_OFF203 = 2 + M1.size
#: Energy accumulators start here (Wh, secondary): an acc32 at 0 reads as "not implemented".
_WH_START = 1000.0


class Drawing(Protocol):
    """A simulated device a meter sees: its present power, kW, positive = drawn from the grid."""

    @property
    def power_kw(self) -> float:
        """Present power (kW, positive = drawn from the grid)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterSpec:
    """One simulated meter.

    Attributes:
        asset_id: its id (the serial number of its common model; its MQTT topic level).
        base_load_kw: the enterprise's load no asset is enrolled for (primary kW).
        multiplier: its CT x VT ratio: it reports primary / multiplier.
        rated_kw: the largest primary power it expects: its ``W_SF`` is the finest
            (down to -2) that holds it on the secondary side.
        unit_id: its Modbus unit id (1..247; Modbus only).
        base: register address of its SunS marker (Modbus only).
        power_sign: the sign convention of its ``W`` (by default positive = import).
    """

    asset_id: str
    base_load_kw: float = 0.0
    multiplier: float = 1.0
    rated_kw: float = 1000.0
    unit_id: int = 1
    base: int = 40000
    power_sign: PowerSign = PowerSign.CHARGE_POSITIVE

    def __post_init__(self) -> None:
        if not self.multiplier > 0:
            raise ValueError(f"meter {self.asset_id}: multiplier must be positive")
        if not self.rated_kw > 0:
            raise ValueError(f"meter {self.asset_id}: rated_kw must be positive")


class MeterModel:
    """What one meter measures, stepped in simulated time.

    Args:
        spec: the meter.
        members: the enterprise's simulated devices behind it.
        clock: simulated time (its energy accumulators integrate over it).
        base_load: the base load (primary kW) at simulated time ``t`` (seconds
            since the clock started); ``spec.base_load_kw`` throughout when omitted.
    """

    def __init__(
        self,
        spec: MeterSpec,
        members: Sequence[Drawing],
        clock: SimClock,
        base_load: Callable[[float], float] | None = None,
    ) -> None:
        self.spec = spec
        self.members = list(members)
        self.clock = clock
        self._base_load = base_load
        #: primary power at the last step (kW, positive = imported)
        self.power_kw = 0.0
        #: primary energy imported and exported since the start (kWh)
        self.imported_kwh = 0.0
        self.exported_kwh = 0.0
        self._last_t: float | None = None

    def primary_kw(self, t: float) -> float:
        """The power through the metering point at simulated time ``t`` (kW)."""
        base = self._base_load(t) if self._base_load is not None else self.spec.base_load_kw
        return base + sum(m.power_kw for m in self.members)

    def step(self) -> float:
        """Advance to now: integrate the energy since the last step; return the power (kW)."""
        t = self.clock.now()
        if self._last_t is not None and t > self._last_t:
            hours = (t - self._last_t) / 3600.0
            # the power held since the last step (the devices' latest states)
            self.imported_kwh += max(self.power_kw, 0.0) * hours
            self.exported_kwh += max(-self.power_kw, 0.0) * hours
        self._last_t = t
        self.power_kw = self.primary_kw(t)
        return self.power_kw

    def secondary_kw(self) -> float:
        """The power the meter reports (primary / multiplier), as of the last step."""
        return self.power_kw / self.spec.multiplier

    def secondary_energy_kwh(self) -> float:
        """Its energy register, imported minus exported, on the secondary side (kWh)."""
        return (self.imported_kwh - self.exported_kwh) / self.spec.multiplier

    def values_203(self) -> dict[str, Value]:
        """Model 203's engineering values as of the last step (secondary side)."""
        m = self.spec.multiplier
        w_sf = fitting_scale_factor(self.spec.rated_kw * 1000.0 / m, _INT16_MAX, finest=-2)
        watts = to_device_w(self.secondary_kw(), self.spec.power_sign)
        top = _INT16_MAX * 10.0**w_sf
        return {
            "W_SF": w_sf,
            "W": min(max(watts, -top), top),
            "Hz_SF": -2,
            "Hz": 50.0,
            "TotWh_SF": 0,
            "TotWhImp": _WH_START + 1000.0 * self.imported_kwh / m,
            "TotWhExp": _WH_START + 1000.0 * self.exported_kwh / m,
            "Evt": 0,
        }


def meter_device(model: MeterModel) -> SimDevice:
    """The Modbus unit of one meter (read-only; its block is refreshed on every request)."""
    spec = model.spec
    image = build_image(
        [
            (M1, {"Mn": "park-vpp", "Md": "sim-meter-203", "Vr": "1", "SN": spec.asset_id}),
            (M203, model.values_203()),
        ]
    )
    simdata = SimData(spec.base, values=image, datatype=DataType.REGISTERS, readonly=True)

    async def action(
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        del function_code, address, count, set_values
        model.step()
        at = spec.base + _OFF203 - start_address
        block = M203.encode(model.values_203())
        registers[at : at + len(block)] = block
        return None

    return SimDevice(spec.unit_id, simdata=[simdata], action=action)
