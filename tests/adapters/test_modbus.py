"""Modbus/SunSpec adapter against the simulated battery server over loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.modbus import ModbusAdapter, ModbusUnit
from adapters.sim.battery import BatterySpec, ModbusBatteryServer
from adapters.types import DeviceLimits, Setpoint, Telemetry
from tests.support import eventually
from vpp.servers import free_port

pytestmark = pytest.mark.timeout(60)

LIMITS = DeviceLimits(p_min_kw=-50, p_max_kw=50, capacity_kwh=200, soc_min=0.1, soc_max=0.9)


async def _reading(
    adapter: ModbusAdapter, asset: str, *, after: float = 0.0, within: float = 10.0
) -> Telemetry:
    async with asyncio.timeout(within):
        async for reading in adapter.telemetry():
            if reading.asset_id == asset and reading.ts > after:
                return reading
    raise AssertionError("unreachable")


@pytest.fixture
async def battery() -> AsyncIterator[ModbusBatteryServer]:
    spec = BatterySpec(asset_id="b1", unit_id=7, capacity_kwh=200, soc=0.5)
    async with ModbusBatteryServer(port=free_port(), batteries=[spec], time_scale=360) as srv:
        yield srv


def _adapter(srv: ModbusBatteryServer, **kw: Any) -> ModbusAdapter:
    return ModbusAdapter(
        host=srv.host,
        port=srv.port,
        units={"b1": ModbusUnit(unit_id=7, limits=LIMITS)},
        poll_s=0.05,
        backoff_base=0.05,
        **kw,
    )


async def test_telemetry_setpoint_and_soc(battery: ModbusBatteryServer) -> None:
    async with _adapter(battery) as adapter:
        first = await _reading(adapter, "b1")
        assert first.soc == pytest.approx(0.5, abs=0.01)
        assert first.power_kw == 0.0 and first.available
        assert first.max_charge_kw == 100.0 and first.max_discharge_kw == 100.0
        conf = await adapter.apply(Setpoint(asset_id="b1", power_kw=-40, hold_s=30))
        assert conf.confirmed and not conf.clamped and conf.sent_kw == -40
        assert conf.rtt_s is not None
        # (a poll already under way during the write may still read the old power)
        await eventually(lambda: _power(adapter.last("b1")) == pytest.approx(-40))
        await asyncio.sleep(0.5)
        later = await _reading(adapter, "b1", after=time.time())
        # 0.5 s x 360 = 180 s of 40 kW discharge ~ 2 kWh ~ 1 % of 200 kWh.
        assert later.soc is not None and later.soc < 0.5 - 0.005
        assert battery.models["b1"].power_kw == pytest.approx(-40)
        assert await adapter.release("b1")
        await eventually(lambda: _power(adapter.last("b1")) == 0.0)


async def test_out_of_limit_setpoint_is_clamped(battery: ModbusBatteryServer) -> None:
    async with _adapter(battery) as adapter:
        await _reading(adapter, "b1")
        conf = await adapter.apply(Setpoint(asset_id="b1", power_kw=-500))
        assert conf.clamped and conf.sent_kw == -50 and conf.confirmed
        assert "p_min" in conf.reason
        assert battery.models["b1"].setpoint_kw == pytest.approx(-50)


async def test_setpoint_refreshed_before_revert_timer(battery: ModbusBatteryServer) -> None:
    async with _adapter(battery, revert_s=1, refresh_s=0.3) as adapter:
        await _reading(adapter, "b1")
        conf = await adapter.apply(Setpoint(asset_id="b1", power_kw=20, hold_s=1.8))
        assert conf.confirmed
        await asyncio.sleep(1.5)
        model = battery.models["b1"]
        assert model.setpoint_kw == pytest.approx(20)  # would have reverted at 1 s
        assert model.writes >= 3
        await asyncio.sleep(1.8)  # hold ended: no more refreshes, the device reverts
        model.step()
        assert model.setpoint_kw is None


async def test_out_of_range_registers_drop_the_field_not_the_reading(
    battery: ModbusBatteryServer,
) -> None:
    async with _adapter(battery) as adapter:
        await _reading(adapter, "b1")
        battery.models["b1"].overrides["SoC"] = 2500  # 250 %
        await eventually(lambda: adapter.stats.rejected_fields[("soc", "out_of_range")] >= 3)
        kept = await _reading(adapter, "b1", after=time.time())
        assert kept.soc is None and kept.power_kw == 0.0 and kept.available
        battery.models["b1"].overrides["SoC"] = 0xFFFF  # not implemented
        await eventually(lambda: adapter.stats.rejected_fields[("soc", "not_implemented")] >= 2)
        battery.models["b1"].overrides.clear()
        # a poll already under way when the override went may still read 0xFFFF
        await eventually(lambda: _soc(adapter.last("b1")) == pytest.approx(0.5, abs=0.01))
        assert adapter.stats.bad_payloads == 0
        assert adapter.stats.connected and adapter.stats.reconnects == 0


async def test_recovers_after_server_restart(battery: ModbusBatteryServer) -> None:
    async with _adapter(battery) as adapter:
        await _reading(adapter, "b1")
        await battery.stop()
        await eventually(lambda: not adapter.stats.connected)
        await asyncio.sleep(0.3)
        await battery.start()
        await asyncio.wait_for(adapter.wait_connected(), 10)
        await _reading(adapter, "b1", after=time.time())
        assert adapter.stats.reconnects >= 1
        assert (await adapter.apply(Setpoint(asset_id="b1", power_kw=10))).confirmed


@pytest.mark.parametrize("base", [0, 50000])
async def test_finds_sunspec_marker_at_other_bases(base: int) -> None:
    spec = BatterySpec(asset_id="b1", unit_id=7, base=base)
    async with (
        ModbusBatteryServer(port=free_port(), batteries=[spec]) as srv,
        _adapter(srv) as adapter,
    ):
        assert (await _reading(adapter, "b1")).soc == pytest.approx(0.5)


async def test_device_without_sunspec_is_not_taken_for_one() -> None:
    spec = BatterySpec(asset_id="b1", unit_id=9)  # the adapter asks unit 7: no such map
    async with (
        ModbusBatteryServer(port=free_port(), batteries=[spec]) as srv,
        _adapter(srv) as adapter,
    ):
        await eventually(lambda: adapter.health("b1").failures >= 2)
        assert adapter.health("b1").answering is False
        last = adapter.last("b1")
        assert last is not None and not last.available  # published unavailable, nothing else
        conf = await adapter.apply(Setpoint(asset_id="b1", power_kw=10))
        assert not conf.confirmed and conf.sent_kw is None


async def test_wait_stopped_reports_why_the_background_work_died(
    battery: ModbusBatteryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = _adapter(battery)

    async def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(adapter, "_run", broken)
    async with adapter:
        exc = await asyncio.wait_for(adapter.wait_stopped(), 5)
    assert isinstance(exc, RuntimeError) and str(exc) == "boom"


def _soc(reading: Telemetry | None) -> float | None:
    return None if reading is None else reading.soc


def _power(reading: Telemetry | None) -> float | None:
    return None if reading is None else reading.power_kw


async def test_the_simulator_notes_who_wrote_each_command(battery: ModbusBatteryServer) -> None:
    model = battery.models["b1"]
    async with _adapter(battery, connections=1) as adapter:
        await _reading(adapter, "b1")
        before = time.time()
        assert (await adapter.apply(Setpoint(asset_id="b1", power_kw=-10, hold_s=30))).confirmed
        assert await adapter.release("b1")
    when, peer = model.writers[-1]
    assert len(model.writers) == model.writes >= 2 and when >= before
    # the client's end of the one TCP connection: loopback, an ephemeral port
    assert peer is not None and peer[0] == "127.0.0.1" and peer[1] != battery.port
    assert {p for _, p in model.writers} == {peer}
