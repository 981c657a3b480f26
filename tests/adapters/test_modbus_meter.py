"""SunSpec meters (models 201-204) read by the Modbus adapter from real pymodbus servers.

The simulated meter (model 203) reads the battery beside it on the same
gateway plus a base load and reports its secondary side (primary / multiplier);
the adapter reports what the meter says (the service applies the multiplier).
The other models are served as fixed register images.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from adapters.modbus import METER_REFUSAL, ModbusAdapter, ModbusUnit, UnitKind
from adapters.sim.battery import BatterySpec, ModbusBatteryServer
from adapters.sim.meters import MeterModel, MeterSpec
from adapters.sunspec import METER_MODEL_IDS, PowerSign, build_image, load_model
from adapters.sunspec.codec import Value
from adapters.types import DeviceLimits, Setpoint, Telemetry
from tests.support import eventually
from vpp.servers import free_port

pytestmark = pytest.mark.timeout(60)

BATTERY = DeviceLimits(p_min_kw=-50, p_max_kw=50, capacity_kwh=200, soc_min=0.1, soc_max=0.9)
NO_SETPOINT = DeviceLimits(p_min_kw=0.0, p_max_kw=0.0)
#: CT 250/5 A: the meter reads 1/50 of the primary current.
MULTIPLIER = 50.0
BASE_KW = 300.0


def _meter_unit(unit_id: int, sign: PowerSign = PowerSign.CHARGE_POSITIVE) -> ModbusUnit:
    return ModbusUnit(unit_id=unit_id, limits=NO_SETPOINT, power_sign=sign, kind=UnitKind.METER)


@contextlib.asynccontextmanager
async def _gateway(
    meter_sign: PowerSign, enrolled_sign: PowerSign
) -> AsyncIterator[tuple[MeterModel, ModbusAdapter]]:
    """A battery (unit 7) and the meter of its enterprise (unit 2) on one gateway, read."""
    srv = ModbusBatteryServer(
        port=free_port(), batteries=[BatterySpec(asset_id="b1", unit_id=7)], time_scale=360
    )
    spec = MeterSpec(
        asset_id="m1", unit_id=2, base_load_kw=BASE_KW, multiplier=MULTIPLIER,
        rated_kw=2000.0, power_sign=meter_sign,
    )  # fmt: skip
    meter = MeterModel(spec, [srv.models["b1"]], srv.clock)
    srv.add_meters([meter])
    units = {"b1": ModbusUnit(unit_id=7, limits=BATTERY), "m1": _meter_unit(2, enrolled_sign)}
    async with srv, ModbusAdapter(
        host=srv.host, port=srv.port, units=units, poll_s=0.05, backoff_base=0.05
    ) as adapter:  # fmt: skip
        yield meter, adapter


def _power(adapter: ModbusAdapter, asset: str) -> float | None:
    last = adapter.last(asset)
    return None if last is None or not last.available else last.power_kw


async def test_meter_reads_its_enterprise_scaled_and_signed() -> None:
    sign = PowerSign.CHARGE_POSITIVE
    async with _gateway(sign, sign) as (meter, adapter):
        # 300 kW primary through a 50:1 CT: 6 kW on the meter; W_SF 1 (10 W) for 2 MW / 50
        await eventually(lambda: _power(adapter, "m1") == pytest.approx(BASE_KW / MULTIPLIER))
        assert meter.values_203()["W_SF"] == 1
        conf = await adapter.apply(Setpoint(asset_id="b1", power_kw=40.0, hold_s=30))
        assert conf.confirmed
        # the battery charges: the enterprise imports 340 kW, the meter reads 6.8 kW
        await eventually(lambda: _power(adapter, "m1") == pytest.approx(340.0 / MULTIPLIER))
        await adapter.apply(Setpoint(asset_id="b1", power_kw=-40.0, hold_s=30))
        await eventually(lambda: _power(adapter, "m1") == pytest.approx(260.0 / MULTIPLIER))
        last = adapter.last("m1")
        assert last is not None and last.energy_kwh is not None and last.energy_kwh > 0
        assert adapter.health("m1").sign_disagreements == 0
        assert not adapter.stats.rejected_fields


async def test_a_setpoint_to_a_meter_is_refused_and_nothing_is_written() -> None:
    sign = PowerSign.CHARGE_POSITIVE
    async with _gateway(sign, sign) as (_, adapter):
        await eventually(lambda: _power(adapter, "m1") is not None)
        conf = await adapter.apply(Setpoint(asset_id="m1", power_kw=-100.0))
        assert not conf.confirmed and conf.sent_kw is None and conf.reason == METER_REFUSAL
        assert adapter.stats.setpoints_sent == 0
        assert not await adapter.release("m1")
        # the meter still reads its enterprise, untouched
        assert _power(adapter, "m1") == pytest.approx(BASE_KW / MULTIPLIER)


async def test_an_export_positive_meter_is_read_with_its_enrolled_sign() -> None:
    sign = PowerSign.DISCHARGE_POSITIVE
    async with _gateway(sign, sign) as (meter, adapter):
        await eventually(lambda: _power(adapter, "m1") == pytest.approx(BASE_KW / MULTIPLIER))
        raw_w = meter.values_203()["W"]
        assert isinstance(raw_w, float) and raw_w < 0  # an import, as this meter counts it
        await asyncio.sleep(0.5)  # the accumulators advance: no disagreement
        assert adapter.health("m1").sign_disagreements == 0


async def test_a_wrongly_enrolled_meter_sign_is_caught_by_its_energy_registers() -> None:
    async with _gateway(PowerSign.DISCHARGE_POSITIVE, PowerSign.CHARGE_POSITIVE) as (_, adapter):
        # read as an export of 6 kW while only TotWhImp advances
        await eventually(lambda: _power(adapter, "m1") == pytest.approx(-BASE_KW / MULTIPLIER))
        key = ("energy_registers", "disagrees_with_power_sign")
        await eventually(lambda: adapter.stats.rejected_fields[key] >= 2)
        assert adapter.health("m1").sign_disagreements >= 2


async def test_a_unit_without_a_meter_model_is_not_taken_for_a_meter() -> None:
    spec = BatterySpec(asset_id="b1", unit_id=7)
    async with ModbusBatteryServer(port=free_port(), batteries=[spec]) as srv, ModbusAdapter(
        host=srv.host, port=srv.port, units={"m1": _meter_unit(7)}, poll_s=0.05,
        backoff_base=0.05,
    ) as adapter:  # fmt: skip
        await eventually(lambda: "no meter model" in adapter.health("m1").last_error)
        last = adapter.last("m1")
        assert last is not None and not last.available


@contextlib.asynccontextmanager
async def _fixed_meter(
    model_id: int, values: Mapping[str, Value], raw: Mapping[str, int] | None = None
) -> AsyncIterator[int]:
    """A meter of SunSpec model ``model_id`` holding ``values``, unit 1 on a free port.

    ``raw`` overwrites single-register points with raw values after encoding.
    """
    common, meter = load_model(1), load_model(model_id)
    image = build_image([(common, {"Mn": "test", "SN": "m1"}), (meter, values)])
    for name, value in (raw or {}).items():
        image[2 + common.size + meter.points[name].offset] = value
    data = SimData(40000, values=image, datatype=DataType.REGISTERS, readonly=True)
    port = free_port()
    server = ModbusTcpServer([SimDevice(1, simdata=[data])], address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    try:
        yield port
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


async def _first_reading(adapter: ModbusAdapter) -> Telemetry:
    async with asyncio.timeout(10):
        async for reading in adapter.telemetry():
            return reading
    raise AssertionError("unreachable")


@pytest.mark.parametrize("model_id", METER_MODEL_IDS)
async def test_every_meter_model_is_found_and_read_with_its_scale_factors(model_id: int) -> None:
    # W -1234 x 10^-1 W: exporting 123.4 W; TotWh_SF 1: 50 kWh in, 20 kWh out
    values: dict[str, Value] = {
        "W_SF": -1, "W": -123.4, "TotWh_SF": 1, "TotWhImp": 50_000.0, "TotWhExp": 20_000.0,
    }  # fmt: skip
    async with _fixed_meter(model_id, values) as port, ModbusAdapter(
        host="127.0.0.1", port=port, units={"m1": _meter_unit(1)}, poll_s=0.05
    ) as adapter:  # fmt: skip
        reading = await _first_reading(adapter)
    assert reading.available
    assert reading.power_kw == pytest.approx(-0.1234)
    assert reading.energy_kwh == pytest.approx(30.0)


async def test_a_meter_without_energy_registers_still_gives_its_power() -> None:
    # accumulators not implemented (acc32 0): no energy, nothing counted against the meter
    async with _fixed_meter(201, {"W_SF": 2, "W": 15_000.0}) as port, ModbusAdapter(
        host="127.0.0.1", port=port, units={"m1": _meter_unit(1)}, poll_s=0.05
    ) as adapter:  # fmt: skip
        reading = await _first_reading(adapter)
        assert adapter.stats.rejected_fields == {}
    assert reading.power_kw == pytest.approx(15.0) and reading.energy_kwh is None


async def test_a_meter_whose_power_scale_factor_is_not_implemented_publishes_nothing() -> None:
    values: dict[str, Value] = {"W_SF": 0, "W": 1500.0, "TotWh_SF": 0, "TotWhImp": 10.0}
    async with _fixed_meter(203, values, raw={"W_SF": 0x8000}) as port, ModbusAdapter(
        host="127.0.0.1", port=port, units={"m1": _meter_unit(1)}, poll_s=0.05
    ) as adapter:  # fmt: skip
        key = ("power_kw", "scale_factor_not_implemented")
        await eventually(lambda: adapter.stats.rejected_fields[key] >= 2)
        assert adapter.last("m1") is None


def test_the_meter_models_share_the_points_the_adapter_reads() -> None:
    names = ("W", "W_SF", "TotWhExp", "TotWhImp", "TotWh_SF")
    layouts = {
        m: [(load_model(m).points[n].offset, load_model(m).points[n].type) for n in names]
        for m in METER_MODEL_IDS
    }
    assert len({tuple(v) for v in layouts.values()}) == 1
    assert {load_model(m).length for m in METER_MODEL_IDS} == {105}
