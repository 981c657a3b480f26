"""Setpoint round trips on one Modbus gateway: write and read-back in one request, bursts, faults.

The adapter writes a setpoint and reads the 704 block back in one
read/write request (function 23) where the unit takes it, else as a write
and a read. Every case runs the real adapter against the project's Modbus
TCP simulator on loopback and asserts on what the adapter decided (how it
sent, what it confirmed, in which order confirmations came), never on
wall-clock.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.modbus import ModbusAdapter, ModbusUnit
from adapters.sim.battery import BatterySpec, Fault, ModbusBatteryServer
from adapters.types import Confirmation, DeviceLimits, Setpoint
from tests.support import eventually
from vpp.servers import free_port

pytestmark = pytest.mark.timeout(90)

LIMITS = DeviceLimits(p_min_kw=-100, p_max_kw=100, capacity_kwh=400, soc_min=0.0, soc_max=1.0)


def _spec(i: int, **kw: Any) -> BatterySpec:
    return BatterySpec(asset_id=f"b{i}", unit_id=i, capacity_kwh=400, **kw)


def _adapter(srv: ModbusBatteryServer, specs: list[BatterySpec], **kw: Any) -> ModbusAdapter:
    units = {s.asset_id: ModbusUnit(unit_id=s.unit_id, limits=LIMITS) for s in specs}
    return ModbusAdapter(
        host=srv.host, port=srv.port, units=units, poll_s=0.2, backoff_base=0.05, **kw
    )


async def _mapped(adapter: ModbusAdapter, assets: list[str]) -> None:
    """Wait until every unit answered a poll (its SunSpec map is known)."""
    await eventually(lambda: all(adapter.health(a).answering for a in assets), within_s=30)


async def test_unit_taking_function_23_gets_write_and_read_back_in_one_request() -> None:
    specs = [_spec(1)]
    async with (
        ModbusBatteryServer(port=free_port(), batteries=specs, time_scale=60) as srv,
        _adapter(srv, specs) as adapter,
    ):
        await _mapped(adapter, ["b1"])
        assert adapter.health("b1").write_read_combined is None  # no setpoint yet
        conf = await adapter.apply(Setpoint(asset_id="b1", power_kw=-70, hold_s=30))
        assert conf.confirmed and conf.sent_kw == -70
        assert adapter.health("b1").write_read_combined is True
        assert srv.models["b1"].setpoint_kw == pytest.approx(-70)
        # clamped as before: the combined request carries the clamped value
        over = await adapter.apply(Setpoint(asset_id="b1", power_kw=-500, hold_s=30))
        assert over.clamped and over.sent_kw == -100 and over.confirmed
        assert srv.models["b1"].setpoint_kw == pytest.approx(-100)
        assert await adapter.release("b1")
        assert srv.models["b1"].setpoint_kw is None


async def test_unit_refusing_function_23_is_written_and_read_apart_from_then_on() -> None:
    specs = [_spec(1, function_23=False), _spec(2)]
    async with (
        ModbusBatteryServer(port=free_port(), batteries=specs, time_scale=60) as srv,
        _adapter(srv, specs) as adapter,
    ):
        await _mapped(adapter, ["b1", "b2"])
        first = await adapter.apply(Setpoint(asset_id="b1", power_kw=40, hold_s=30))
        # the refused request costs nothing: the same setpoint goes as write + read
        assert first.confirmed and first.sent_kw == 40
        assert adapter.health("b1").write_read_combined is False
        assert adapter.health("b1").answering and adapter.health("b1").failures == 0
        again = await adapter.apply(Setpoint(asset_id="b1", power_kw=-30, hold_s=30))
        assert again.confirmed and srv.models["b1"].setpoint_kw == pytest.approx(-30)
        assert adapter.health("b1").write_read_combined is False
        # its neighbour is decided on its own
        other = await adapter.apply(Setpoint(asset_id="b2", power_kw=20, hold_s=30))
        assert other.confirmed and adapter.health("b2").write_read_combined is True


async def test_burst_to_every_unit_confirms_each_and_a_dead_one_holds_no_other() -> None:
    specs = [_spec(i) for i in range(1, 41)]
    async with (
        ModbusBatteryServer(port=free_port(), batteries=specs, time_scale=60) as srv,
        _adapter(srv, specs, connections=3, timeout_s=1.0) as adapter,
    ):
        assets = [s.asset_id for s in specs]
        await _mapped(adapter, assets)
        # one setpoint each at once: every one confirmed, each at its own value
        wanted = {a: float(-(i % 9) * 10 - 5) for i, a in enumerate(assets)}
        burst = await asyncio.gather(
            *(
                adapter.apply(Setpoint(asset_id=a, power_kw=kw, hold_s=30))
                for a, kw in wanted.items()
            )
        )
        assert all(c.confirmed for c in burst), [c.reason for c in burst if not c.confirmed]
        for asset, kw in wanted.items():
            assert srv.models[asset].setpoint_kw == pytest.approx(kw)
            assert adapter.health(asset).write_read_combined is True

        # one unit goes silent: its setpoint fails, every other one is confirmed
        srv.models["b7"].fault = Fault.SILENT
        again: list[Confirmation] = await asyncio.gather(
            *(adapter.apply(Setpoint(asset_id=a, power_kw=25.0, hold_s=30)) for a in assets)
        )
        assert [c.asset_id for c in again if not c.confirmed] == ["b7"]
        assert all(srv.models[a].setpoint_kw == pytest.approx(25.0) for a in assets if a != "b7")
        # a unit that took function 23 before is not demoted by a fault
        assert adapter.health("b7").write_read_combined is True
