"""Field faults behind one Modbus gateway: scale factors, dead units, garbage, power signs.

Every case runs the real adapter against the project's Modbus TCP simulator
on loopback; assertions are on what the adapter decided (readings published,
availability, confirmations, backoff delays), never on wall-clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, NamedTuple
from unittest import mock

import pytest

from adapters.backoff import full_jitter_delay
from adapters.modbus import ModbusAdapter, ModbusUnit
from adapters.sim.battery import BatterySpec, Fault, ModbusBatteryServer
from adapters.sunspec import PowerSign
from adapters.types import DeviceLimits, Setpoint, Telemetry
from tests.support import eventually
from vpp.servers import free_port

pytestmark = pytest.mark.timeout(90)

LIMITS = DeviceLimits(p_min_kw=-200, p_max_kw=200, capacity_kwh=400, soc_min=0.0, soc_max=1.0)
BACKOFF_BASE = 0.05


def _spec(asset: str, unit_id: int, **kw: Any) -> BatterySpec:
    return BatterySpec(
        asset_id=asset,
        unit_id=unit_id,
        capacity_kwh=400,
        max_charge_kw=200,
        max_discharge_kw=200,
        **kw,
    )


def _adapter(
    srv: ModbusBatteryServer,
    units: dict[str, ModbusUnit],
    *,
    revert_s: float = 60.0,
    refresh_s: float | None = None,
    timeout_s: float = 2.0,
) -> ModbusAdapter:
    return ModbusAdapter(
        host=srv.host,
        port=srv.port,
        units=units,
        poll_s=0.05,
        timeout_s=timeout_s,
        backoff_base=BACKOFF_BASE,
        revert_s=revert_s,
        refresh_s=refresh_s,
    )


class Readings:
    """Collects every reading the adapter publishes (the one telemetry consumer)."""

    def __init__(self, adapter: ModbusAdapter) -> None:
        self.seen: list[Telemetry] = []
        self._task = asyncio.create_task(self._collect(adapter))

    async def _collect(self, adapter: ModbusAdapter) -> None:
        async for reading in adapter.telemetry():
            self.seen.append(reading)

    def of(self, asset: str, *, available: bool | None = None, after: float = 0.0) -> int:
        """How many readings of ``asset`` (with that availability) arrived after ``after``."""
        return sum(
            1
            for r in self.seen
            if r.asset_id == asset
            and r.ts > after
            and (available is None or r.available == available)
        )

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class Gateway(NamedTuple):
    """The simulated batteries behind one Modbus TCP gateway, the adapter, what it published."""

    srv: ModbusBatteryServer
    adapter: ModbusAdapter
    seen: Readings


@contextlib.asynccontextmanager
async def _gateway(
    specs: list[BatterySpec],
    *,
    faults: dict[str, Fault] | None = None,
    units: dict[str, ModbusUnit] | None = None,
    **options: Any,
) -> AsyncIterator[Gateway]:
    """The batteries ``specs`` served at 60x time, the adapter reading them, every reading.

    ``faults`` are set before the adapter starts; ``units`` default to each
    spec's unit id with ``LIMITS``; ``options`` are :func:`_adapter`'s.
    """
    async with ModbusBatteryServer(port=free_port(), batteries=specs, time_scale=60) as srv:
        for asset, fault in (faults or {}).items():
            srv.models[asset].fault = fault
        if units is None:
            units = {s.asset_id: ModbusUnit(unit_id=s.unit_id, limits=LIMITS) for s in specs}
        async with _adapter(srv, units, **options) as adapter:
            seen = Readings(adapter)
            try:
                yield Gateway(srv, adapter, seen)
            finally:
                await seen.close()


def _cap(attempt: int) -> float:
    """The largest delay adapters.backoff may choose for ``attempt`` (its jitter at the top)."""
    with mock.patch("random.uniform", lambda low, high: max(low, high)):
        return full_jitter_delay(attempt, base=BACKOFF_BASE)


def _assert_backoff_grows(delays: tuple[float, ...]) -> None:
    """Each retry delay lies within its attempt's cap, and the caps grow (adapters.backoff)."""
    assert len(delays) >= 2
    for attempt, delay in enumerate(delays):
        assert 0.0 <= delay <= _cap(attempt) + 1e-9, (attempt, delay)
    assert _cap(len(delays) - 1) > _cap(0)


# --- case 2: a SunSpec scale factor that is not implemented, or coarse --------------------------


async def test_wset_sf_not_implemented_refuses_that_unit_alone() -> None:
    specs = [_spec("b1", 1, wset_sf=None), _spec("b2", 2)]
    async with _gateway(specs, revert_s=3, refresh_s=0.2) as (srv, adapter, seen):
        await eventually(lambda: seen.of("b1", available=True) > 0 and seen.of("b2") > 0)
        for power in (-50.0, 0.0, 25.0):
            conf = await adapter.apply(Setpoint(asset_id="b1", power_kw=power, hold_s=30))
            assert not conf.confirmed and conf.sent_kw is None
            assert "setpoint not supported" in conf.reason
        assert srv.models["b1"].writes == 0  # nothing reached the device
        conf = await adapter.apply(Setpoint(asset_id="b2", power_kw=-40, hold_s=30))
        assert conf.confirmed and conf.sent_kw == -40
        writes, mark = srv.models["b2"].writes, time.time()
        # the neighbour's polls and refreshes go on; the refused unit keeps being polled
        await eventually(lambda: srv.models["b2"].writes >= writes + 3)
        await eventually(lambda: seen.of("b1", available=True, after=mark) >= 3)
        await eventually(lambda: seen.of("b2", available=True, after=mark) >= 3)
        assert srv.models["b2"].setpoint_kw == pytest.approx(-40)
        assert adapter.health("b1").answering is True
        assert adapter._task is not None and not adapter._task.done()


async def test_coarse_wset_sf_is_confirmed_in_the_device_resolution() -> None:
    spec = _spec("b1", 1, wset_sf=1)  # WSet in steps of 10 W
    async with _gateway([spec]) as (srv, adapter, seen):
        await eventually(lambda: seen.of("b1", available=True) > 0)
        conf = await adapter.apply(Setpoint(asset_id="b1", power_kw=-123.4567, hold_s=30))
        assert conf.confirmed, conf.reason
        assert conf.sent_kw == pytest.approx(-123.4567) and not conf.clamped
        assert srv.models["b1"].setpoint_kw == pytest.approx(-123.46)


# --- case 3: one dead unit behind a Modbus gateway ----------------------------------------------


@pytest.mark.parametrize("fault", [Fault.SILENT, Fault.GATEWAY_NO_RESPONSE])
async def test_dead_unit_at_start_does_not_silence_its_neighbour(fault: Fault) -> None:
    specs = [_spec("b1", 1), _spec("b2", 2)]
    dead_b2 = _gateway(specs, faults={"b2": fault}, revert_s=3, refresh_s=0.2, timeout_s=0.5)
    async with dead_b2 as (srv, adapter, seen):
        # unit 2 is published unavailable at once, so the service stops counting it
        await eventually(lambda: seen.of("b2", available=False) == 1)
        await eventually(lambda: seen.of("b1", available=True) >= 5)
        conf = await adapter.apply(Setpoint(asset_id="b1", power_kw=30, hold_s=30))
        assert conf.confirmed
        refused = await adapter.apply(Setpoint(asset_id="b2", power_kw=30, hold_s=30))
        assert not refused.confirmed and refused.sent_kw is None
        writes = srv.models["b1"].writes
        await eventually(lambda: srv.models["b1"].writes >= writes + 3)  # refreshed
        await eventually(lambda: adapter.health("b2").failures >= 4)
        health = adapter.health("b2")
        assert health.answering is False and health.last_error
        _assert_backoff_grows(health.retry_delays_s)
        assert seen.of("b2", available=True) == 0
        assert seen.of("b2", available=False) == 1  # once per outage, not per retry
        assert adapter.stats.connected and adapter.stats.reconnects == 0


@pytest.mark.parametrize("fault", [Fault.SILENT, Fault.GATEWAY_NO_RESPONSE])
async def test_unit_dying_during_an_event_costs_only_that_unit(fault: Fault) -> None:
    specs = [_spec("b1", 1), _spec("b2", 2)]
    async with _gateway(specs, revert_s=3, refresh_s=0.2, timeout_s=0.5) as (srv, adapter, seen):
        await eventually(lambda: seen.of("b1") > 0 and seen.of("b2") > 0)
        for asset in ("b1", "b2"):  # the event is on: both take setpoints
            conf = await adapter.apply(Setpoint(asset_id=asset, power_kw=-60, hold_s=60))
            assert conf.confirmed
        srv.models["b2"].fault = fault
        died = time.time()
        await eventually(lambda: seen.of("b2", available=False, after=died) == 1)
        writes = srv.models["b1"].writes
        await eventually(lambda: seen.of("b1", available=True, after=died) >= 10)
        await eventually(lambda: srv.models["b1"].writes >= writes + 3)
        assert srv.models["b1"].setpoint_kw == pytest.approx(-60)  # never reverted
        again = await adapter.apply(Setpoint(asset_id="b1", power_kw=-80, hold_s=60))
        assert again.confirmed
        await eventually(lambda: adapter.health("b2").failures >= 3)
        _assert_backoff_grows(adapter.health("b2").retry_delays_s)
        assert adapter.stats.connected and adapter.stats.reconnects == 0
        # it comes back: answering again, available, retries forgotten
        srv.models["b2"].fault = None
        back = time.time()
        await eventually(lambda: seen.of("b2", available=True, after=back) > 0)
        assert adapter.health("b2").answering is True and adapter.health("b2").failures == 0


async def test_garbage_block_costs_that_units_reading_only() -> None:
    specs = [_spec("b1", 1), _spec("b2", 2)]
    async with _gateway(specs) as (srv, adapter, seen):
        await eventually(lambda: seen.of("b1") > 0 and seen.of("b2") > 0)
        srv.models["b2"].overrides["ID"] = 999  # the 802 block is not 802 any more
        mark = time.time()
        await eventually(lambda: adapter.stats.bad_payloads >= 1)
        # re-discovery then finds no 802 at all: retried with backoff, still alone
        await eventually(lambda: adapter.health("b2").failures >= 3)
        await eventually(lambda: seen.of("b1", available=True, after=mark) >= 5)
        assert seen.of("b2", available=False, after=mark) == 1
        srv.models["b2"].overrides.clear()
        back = time.time()
        await eventually(lambda: seen.of("b2", available=True, after=back) > 0)


async def test_not_implemented_points_drop_fields_and_keep_the_reading() -> None:
    spec = _spec("b1", 1)
    async with _gateway([spec]) as (srv, adapter, seen):
        await eventually(lambda: seen.of("b1") > 0)
        srv.models["b1"].overrides.update({"WChaDisChaMax_SF": 0x8000, "SoC_SF": 11})
        rejected = adapter.stats.rejected_fields
        await eventually(
            lambda: (
                rejected[("max_charge_kw", "scale_factor_not_implemented")] >= 2
                and rejected[("soc", "scale_factor_out_of_range")] >= 2
            )
        )
        last = adapter.last("b1")
        assert last is not None and last.available and last.power_kw == 0.0
        assert last.soc is None and last.max_charge_kw is None and last.max_discharge_kw is None
        srv.models["b1"].overrides = {"W": 0x8000}  # no power: no reading, still no exception
        mark = time.time()
        await eventually(lambda: rejected[("power_kw", "not_implemented")] >= 2)
        assert seen.of("b1", after=mark) <= 1  # at most one read before the override
        srv.models["b1"].overrides = {}
        back = time.time()
        await eventually(lambda: seen.of("b1", available=True, after=back) > 0)
        assert adapter.stats.bad_payloads == 0 and adapter.health("b1").failures == 0


# --- battery power sign -------------------------------------------------------------------------


async def test_enrolled_signs_are_read_and_written() -> None:
    spec = _spec(
        "b1",
        1,
        power_sign=PowerSign.DISCHARGE_POSITIVE,
        setpoint_sign=PowerSign.CHARGE_POSITIVE,
    )
    unit = ModbusUnit(
        unit_id=1,
        limits=LIMITS,
        power_sign=PowerSign.DISCHARGE_POSITIVE,
        setpoint_sign=PowerSign.CHARGE_POSITIVE,
    )
    async with _gateway([spec], units={"b1": unit}) as (srv, adapter, seen):
        await eventually(lambda: seen.of("b1") > 0)
        conf = await adapter.apply(Setpoint(asset_id="b1", power_kw=-40, hold_s=30))
        assert conf.confirmed
        assert srv.models["b1"].setpoint_kw == pytest.approx(-40)  # discharging, as asked
        await eventually(
            lambda: (r := adapter.last("b1")) is not None and r.power_kw == pytest.approx(-40)
        )
        assert adapter.health("b1").sign_disagreements == 0


async def test_power_sign_disagreeing_with_chast_is_counted_and_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The device reports W discharge-positive; it was enrolled with the default sign.
    spec = _spec("b1", 1, power_sign=PowerSign.DISCHARGE_POSITIVE)
    async with _gateway([spec]) as (srv, adapter, seen):
        await eventually(lambda: seen.of("b1") > 0)
        caplog.set_level(logging.WARNING, logger="adapters.modbus")
        assert (await adapter.apply(Setpoint(asset_id="b1", power_kw=-40, hold_s=30))).confirmed
        await eventually(lambda: adapter.health("b1").sign_disagreements >= 5)
        assert adapter.stats.rejected_fields[("charge_state", "disagrees_with_power_sign")] >= 5
        warned = [r for r in caplog.records if "disagrees with ChaSt" in r.getMessage()]
        assert len(warned) == 1  # once per change, not every poll
        # the reading follows the enrolled sign (the check warns, it does not guess)
        last = adapter.last("b1")
        assert last is not None and last.power_kw == pytest.approx(40)
        assert srv.models["b1"].power_kw == pytest.approx(-40)


async def test_setpoint_sign_against_chast_is_counted_and_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The device takes WSet charge-positive; it was enrolled with the DER default.
    spec = _spec("b1", 1, setpoint_sign=PowerSign.CHARGE_POSITIVE)
    async with _gateway([spec]) as (srv, adapter, seen):
        await eventually(lambda: seen.of("b1") > 0)
        caplog.set_level(logging.WARNING, logger="adapters.modbus")
        # the read-back echoes what was written, so the write itself looks confirmed...
        assert (await adapter.apply(Setpoint(asset_id="b1", power_kw=-40, hold_s=30))).confirmed
        assert srv.models["b1"].power_kw == pytest.approx(40)  # ...but the battery charges
        await eventually(lambda: adapter.health("b1").setpoint_sign_disagreements >= 3)
        assert adapter.stats.rejected_fields[("charge_state", "disagrees_with_setpoint_sign")] >= 3
        warned = [r for r in caplog.records if "check the enrolled setpoint_sign" in r.getMessage()]
        assert len(warned) == 1
        assert adapter.health("b1").sign_disagreements == 0  # W itself is read right
