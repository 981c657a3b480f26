"""The live-state batch: admitting, coalescing, the size trigger, retired assets, the TTL."""

from __future__ import annotations

import time
from collections import Counter

from adapters.freshness import Stale
from adapters.types import DeviceLimits, Telemetry, TelemetrySource
from vpp.state import State
from vpp.supervisor import AdapterKey, AdapterRoute
from vpp.supervisor._live import IN_FUTURE, LiveBatch, live_state

KEY = AdapterKey(TelemetrySource.MODBUS, "p1", "h:502", "modbus-h:502")
LIMITS = DeviceLimits(p_min_kw=-50, p_max_kw=50, capacity_kwh=200)


def _route(asset_id: str) -> AdapterRoute:
    return AdapterRoute("p1", asset_id, "battery", KEY, asset_id, LIMITS, unit_id=1)


def _reading(asset_id: str, power_kw: float, soc: float = 0.5) -> Telemetry:
    return Telemetry(asset_id=asset_id, ts=time.time(), power_kw=power_kw, soc=soc)


def test_live_state_mapping() -> None:
    ev = Telemetry(
        asset_id="cp", ts=1.7e9, power_kw=7.0, soc=0.4, energy_kwh=1234.0, ev_connected=True,
        departure_ts=1.7e9 + 3600, energy_needed_kwh=20.0, available=False,
    )  # fmt: skip
    live = live_state(_route("cp"), ev)
    assert live.ev_connected and live.ev_energy_needed_kwh == 20.0 and not live.available
    assert live.ev_departure is not None and live.ev_departure.timestamp() == 1.7e9 + 3600
    # Stored energy from SoC and capacity; the meter register is not stored energy.
    assert live.energy_kwh == 80.0 and live.ts.timestamp() == 1.7e9


async def test_batch_keeps_the_latest_reading_and_skips_retired(state: State) -> None:
    batch = LiveBatch(flush_max=3)
    batch.add(_route("b1"), _reading("b1", 1.0))
    batch.add(_route("b1"), _reading("b1", 2.0))
    assert not batch.due.is_set()
    batch.add(_route("b2"), _reading("b2", 3.0, soc=2.0))  # soc out of range: not written
    batch.add(_route("gone"), _reading("gone", 4.0))
    assert batch.due.is_set()
    written = await batch.flush(state, 5.0, lambda park, asset: asset != "gone")
    assert written == 1 and not batch.due.is_set()
    live = await state.read_live_many("p1", ["b1", "b2", "gone"])
    assert live["b1"] is not None and live["b1"].power_kw == 2.0
    assert live["b2"] is None and live["gone"] is None
    assert 0 < await state.redis.pttl(state.park("p1").live("b1")) <= 5000
    assert await batch.flush(state, 5.0, lambda park, asset: True) == 0


def test_admit_dates_each_reading_of_a_batch_and_counts_what_it_drops() -> None:
    batch = LiveBatch(flush_max=1000)
    stale: Counter[str] = Counter()
    rejected: Counter[tuple[str, str]] = Counter()
    now = time.time()
    meter = AdapterRoute("p1", "m1", "meter", KEY, "m1", LIMITS)
    routes = {"b1": _route("b1"), "m1": meter}
    readings = [
        Telemetry(asset_id="b1", ts=now - 120, power_kw=1.0),  # older than the TTL
        Telemetry(asset_id="b1", ts=now + 60, power_kw=2.0),  # a clock ahead: re-dated
        Telemetry(asset_id="m1", ts=now, power_kw=3.0),
        Telemetry(asset_id="stranger", ts=now, power_kw=4.0),  # not routed: skipped
    ]
    meters = batch.admit(
        readings, routes.get, now=now, ttl=60.0, connected=False, stale=stale, rejected=rejected
    )
    assert meters == 1
    assert stale == {Stale.OLD: 1} and rejected == {("ts", IN_FUTURE): 1}
    pending = batch._pending["p1"]
    assert set(pending) == {"b1", "m1"}
    b1 = pending["b1"][1]
    assert (b1.power_kw, b1.ts, b1.available) == (2.0, now, False)  # transport down: unavailable
