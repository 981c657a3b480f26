"""The history recorder against a real Redis: hand-computed intervals from known telemetry.

The recorder is driven by hand (``record`` then ``flush(now=...)``) with
readings dated on a recent day, so every energy and coverage below follows
from the readings alone, not from when the test runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from adapters.types import DeviceLimits, Telemetry, TelemetrySource
from vpp.clock import Clock
from vpp.history.forward import ReadingsStream
from vpp.history.grid import SLOTS_PER_DAY, DayVector, slot_start
from vpp.history.recorder import HistoryRecorder
from vpp.history.store import HistoryStore
from vpp.metrics import Metrics
from vpp.model import LiveState
from vpp.servers import RedisServer
from vpp.state import State
from vpp.supervisor import AdapterKey, AdapterRoute
from vpp.supervisor._live import LiveBatch

PARK = "p1"
SHANGHAI = ZoneInfo("Asia/Shanghai")
#: a recent day (an old one would be past its retention at once)
DAY = date.today() - timedelta(days=3)
#: the start of slot 40 (10:00 local) of DAY
T0 = slot_start(DAY, 40, SHANGHAI)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def live(seconds: float, kw: float) -> LiveState:
    return LiveState(power_kw=kw, ts=at(seconds))


@pytest.fixture
def store(state: State) -> HistoryStore:
    return HistoryStore(state)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def recorder(store: HistoryStore, metrics: Metrics, hold_s: float = 60.0) -> HistoryRecorder:
    return HistoryRecorder(store, hold_s=hold_s, flush_s=60.0, metrics=metrics)


def feed(rec: HistoryRecorder, series: str, readings: Sequence[tuple[float, float]]) -> None:
    for seconds, kw in readings:
        rec.record(PARK, {series: live(seconds, kw)})


async def day_of(store: HistoryStore, series: str) -> DayVector:
    return (await store.read(PARK, [series], DAY, DAY))[series][DAY]


async def test_interval_energy_and_mean_from_a_known_stream(
    store: HistoryStore, metrics: Metrics
) -> None:
    rec = recorder(store, metrics, hold_s=600.0)
    feed(rec, "b1", [(0, 10.0), (300, 20.0), (600, -4.0), (900, 8.0)])
    assert await rec.flush(now=at(1200)) == 2
    day = await day_of(store, "b1")
    # slot 40: 10 kW x 300 s + 20 kW x 300 s - 4 kW x 300 s = 7800 kJ = 2.1667 kWh
    assert day.energy_kwh[40] == pytest.approx(7800 / 3600, rel=1e-6)
    assert day.coverage[40] == 1.0
    assert day.mean_kw[40] == pytest.approx(7800 / 900, rel=1e-6)
    # slot 41 so far: 8 kW held from 900 s until the flush at 1200 s
    assert day.energy_kwh[41] == pytest.approx(8 * 300 / 3600, rel=1e-6)
    assert day.coverage[41] == pytest.approx(300 / 900)
    assert day.mean_kw[41] == pytest.approx(8.0, rel=1e-6)
    # the rest of the day has no data, not zero load
    assert np.isnan(day.mean_kw[39]) and np.isnan(day.mean_kw[42])
    assert day.coverage.sum() == pytest.approx(1 + 1 / 3)
    # the next write carries on where this one stopped
    await rec.flush(now=at(1500))
    day = await day_of(store, "b1")
    assert day.energy_kwh[41] == pytest.approx(8 * 600 / 3600, rel=1e-6)
    assert day.coverage[41] == pytest.approx(600 / 900)


async def test_a_gap_gives_partial_coverage_not_zero_load(
    store: HistoryStore, metrics: Metrics
) -> None:
    rec = recorder(store, metrics, hold_s=60.0)
    # 12 kW for 30 s, held 60 s, silence, then 6 kW for 30 s, held 60 s
    feed(rec, "b1", [(0, 12.0), (30, 12.0), (600, 6.0), (630, 6.0)])
    await rec.flush(now=at(1000))
    day = await day_of(store, "b1")
    assert day.coverage[40] == pytest.approx(180 / 900)
    assert day.energy_kwh[40] == pytest.approx((12 * 90 + 6 * 90) / 3600, rel=1e-6)
    # the mean is over the covered part: the silence does not pull it towards 0
    assert day.mean_kw[40] == pytest.approx(9.0, rel=1e-6)
    assert day.coverage[41] == 0.0 and np.isnan(day.mean_kw[41])


async def test_a_device_marked_unavailable_is_a_gap_not_zero_load(
    store: HistoryStore, metrics: Metrics
) -> None:
    # found by a new user: a Modbus unit that went down was recorded at 0 kW for the
    # live TTL, because the adapters mark a lost unit with a stand-in power
    rec = recorder(store, metrics, hold_s=600.0)
    feed(rec, "b1", [(0, 40.0), (120, 40.0)])
    rec.record(PARK, {"b1": LiveState(power_kw=0.0, ts=at(180), available=False)})
    feed(rec, "b1", [(700, 10.0)])  # back: its own hold runs to the flush
    await rec.flush(now=at(800))
    day = await day_of(store, "b1")
    # 40 kW over 0-180 s, nothing over 180-700 s, 10 kW over 700-800 s
    assert day.coverage[40] == pytest.approx((180 + 100) / 900)
    assert day.energy_kwh[40] == pytest.approx((40 * 180 + 10 * 100) / 3600, rel=1e-6)
    assert day.mean_kw[40] == pytest.approx((40 * 180 + 10 * 100) / 280, rel=1e-6)


async def test_a_late_reading_inside_an_outage_fills_it(
    store: HistoryStore, metrics: Metrics
) -> None:
    rec = recorder(store, metrics, hold_s=600.0)
    feed(rec, "b1", [(0, 40.0)])
    rec.record(PARK, {"b1": LiveState(power_kw=0.0, ts=at(100), available=False)})
    feed(rec, "b1", [(400, 20.0)])
    await rec.flush(now=at(450))
    feed(rec, "b1", [(200, 30.0)])  # buffered by the device, delivered late: holds to 400 s
    await rec.flush(now=at(500))
    day = await day_of(store, "b1")
    assert day.coverage[40] == pytest.approx((100 + 200 + 100) / 900)
    assert day.energy_kwh[40] == pytest.approx((40 * 100 + 30 * 200 + 20 * 100) / 3600, rel=1e-6)


async def test_frequent_writes_neither_round_covered_seconds_up_nor_away(
    store: HistoryStore, metrics: Metrics
) -> None:
    rec = recorder(store, metrics)
    feed(rec, "b1", [(0, 36.0)])
    for seconds in (0.4, 0.8, 1.2, 1.6):
        await rec.flush(now=at(seconds))
    day = await day_of(store, "b1")
    # whole seconds only: 1 s written, 0.6 s waits for the next write
    assert day.coverage[40] * 900 == pytest.approx(1.0)
    assert day.energy_kwh[40] == pytest.approx(36 / 3600, rel=1e-6)


async def test_a_late_reading_updates_its_closed_interval(
    store: HistoryStore, metrics: Metrics
) -> None:
    rec = recorder(store, metrics, hold_s=60.0)
    feed(rec, "b1", [(880, 10.0), (940, 10.0)])
    await rec.flush(now=at(950))
    first = await day_of(store, "b1")
    assert first.energy_kwh[40] == pytest.approx(10 * 20 / 3600, rel=1e-6)
    assert first.coverage[40] == pytest.approx(20 / 900)
    # slot 40 has closed and was written; a reading taken at 890 s arrives now
    feed(rec, "b1", [(890, 40.0)])
    await rec.flush(now=at(950))
    day = await day_of(store, "b1")
    # 880-890 at 10 kW, 890-900 at 40 kW: the coverage stays 20 s
    assert day.energy_kwh[40] == pytest.approx((10 * 10 + 40 * 10) / 3600, rel=1e-6)
    assert day.coverage[40] == pytest.approx(20 / 900)
    # 900-940 at 40 kW (until the next reading), 940-950 at 10 kW
    assert day.energy_kwh[41] == pytest.approx((40 * 40 + 10 * 10) / 3600, rel=1e-6)
    assert day.coverage[41] == pytest.approx(50 / 900)
    assert metrics.registry.get_sample_value("vpp_history_late_readings_total", {"park": PARK}) == 1


async def test_a_late_reading_fills_a_gap_with_its_own_hold(
    store: HistoryStore, metrics: Metrics
) -> None:
    rec = recorder(store, metrics, hold_s=60.0)
    feed(rec, "b1", [(0, 5.0), (200, 5.0)])  # 60-200 s is a gap
    feed(rec, "b1", [(100, 30.0)])  # late: holds 100-160 s
    await rec.flush(now=at(230))
    day = await day_of(store, "b1")
    assert day.coverage[40] == pytest.approx((60 + 60 + 30) / 900)
    assert day.energy_kwh[40] == pytest.approx((5 * 60 + 30 * 60 + 5 * 30) / 3600, rel=1e-6)


async def test_a_reading_older_than_the_recent_ones_is_dropped_and_counted(
    store: HistoryStore, metrics: Metrics
) -> None:
    rec = recorder(store, metrics, hold_s=60.0)
    feed(rec, "b1", [(0, 5.0), (100, 5.0), (200, 5.0), (300, 5.0)])  # 0 and 100 s let go
    feed(rec, "b1", [(50, 99.0), (300, 7.0)])  # too late; the same ts again
    await rec.flush(now=at(360))
    day = await day_of(store, "b1")
    assert day.mean_kw[40] == pytest.approx(5.0, rel=1e-6)
    assert day.coverage[40] == pytest.approx(240 / 900)
    labels = {"park": PARK, "reason": "too_late"}
    assert metrics.registry.get_sample_value("vpp_history_dropped_readings_total", labels) == 1


async def test_telemetry_never_overwrites_an_imported_interval(
    store: HistoryStore, metrics: Metrics
) -> None:
    await store.put_days(PARK, "m1", {DAY: [2.0] * SLOTS_PER_DAY})
    rec = recorder(store, metrics)
    feed(rec, "m1", [(0, 500.0), (10, 500.0), (20, 500.0)])
    await rec.flush(now=at(100))
    day = await day_of(store, "m1")
    assert day.energy_kwh[40] == 2.0 and day.coverage[40] == 1.0 and bool(day.imported[40])


async def test_readings_are_placed_by_the_service_clock_when_it_is_compressed(
    store: HistoryStore, metrics: Metrics
) -> None:
    wall0 = time.time() - 100
    clock = Clock(time_scale=60.0, origin=T0, _wall0=wall0)
    rec = HistoryRecorder(store, hold_s=60.0, flush_s=60.0, clock=clock, metrics=metrics)

    def wall(s: float) -> datetime:
        return datetime.fromtimestamp(wall0 + s, SHANGHAI)

    # 5 real seconds apart = 300 s on the clock; the hold is 60 real s = 1 h on it
    rec.record(PARK, {"b1": LiveState(power_kw=10.0, ts=wall(0))})
    rec.record(PARK, {"b1": LiveState(power_kw=20.0, ts=wall(5))})
    await rec.flush(now=wall(10))
    day = await day_of(store, "b1")
    assert day.energy_kwh[40] == pytest.approx((10 * 300 + 20 * 300) / 3600, rel=1e-5)
    assert day.coverage[40] == pytest.approx(600 / 900)


async def test_a_new_recorder_after_a_crash_keeps_what_was_written(
    store: HistoryStore, metrics: Metrics, state: State
) -> None:
    first = recorder(store, metrics)
    feed(first, "b1", [(t, 10.0) for t in range(0, 301, 10)])
    await first.flush(now=at(300))  # the periodic write
    feed(first, "b1", [(t, 10.0) for t in range(310, 401, 10)])
    # the process dies here: 300-400 s were never written; its lease runs out
    await state.redis.delete(state.park(PARK).history_lease)
    second = recorder(store, metrics)
    feed(second, "b1", [(t, 10.0) for t in range(600, 901, 10)])
    await second.flush(now=at(900))
    day = await day_of(store, "b1")
    # 0-300 s from the first, 600-900 s from the second: the lost part is the gap
    assert day.coverage[40] == pytest.approx(600 / 900)
    assert day.mean_kw[40] == pytest.approx(10.0, rel=1e-6)


async def test_of_two_replicas_each_reading_part_of_a_park_one_records_everything_once(
    store: HistoryStore, metrics: Metrics, state: State
) -> None:
    one, two = recorder(store, metrics), recorder(store, Metrics())
    feed(one, "b1", [(t, 10.0) for t in range(0, 451, 10)])
    feed(two, "b2", [(t, 20.0) for t in range(0, 451, 10)])  # e.g. a charger connected to two
    assert await one.flush(now=at(450)) == 1  # b1: the lease is the first one's
    assert await two.flush(now=at(450)) == 0  # b2 goes through the park's readings stream
    assert await one.flush(now=at(450)) == 1  # b2, read from the stream
    assert (two.forwarded, one.received) == (46, 46)
    b1, b2 = await day_of(store, "b1"), await day_of(store, "b2")
    assert b1.energy_kwh[40] == pytest.approx(10 * 450 / 3600, rel=1e-6)
    # a forwarded series is held past its latest reading only once its next cannot come
    assert b2.energy_kwh[40] == pytest.approx(20 * 450 / 3600, rel=1e-6)
    assert b2.coverage[40] == pytest.approx(450 / 900)
    # the holder dies after its write (all it read is acknowledged); its lease runs out
    await state.redis.delete(state.park(PARK).history_lease)
    feed(two, "b2", [(t, 20.0) for t in range(460, 601, 10)])
    assert await two.flush(now=at(600)) == 1  # takes the lease, records its own readings
    b1, b2 = await day_of(store, "b1"), await day_of(store, "b2")
    # b2 from its 450 s reading on by the second: nothing twice, nothing lost
    assert b2.energy_kwh[40] == pytest.approx(20 * 600 / 3600, rel=1e-6)
    assert b2.coverage[40] == pytest.approx(600 / 900)
    assert b1.coverage[40] == pytest.approx(450 / 900)
    assert two.received == 0  # nothing was left unacknowledged by the first
    pending = await state.redis.xpending(state.park(PARK).readings, "history")
    assert pending["pending"] == 0


async def test_forwarded_readings_a_dead_holder_read_but_never_wrote_are_recorded_by_the_next(
    store: HistoryStore, metrics: Metrics, state: State
) -> None:
    lease = state.park(PARK).history_lease
    await state.redis.set(lease, "dead-holder", px=180_000)  # SIGKILLed: its lease lasts on
    two = recorder(store, Metrics())
    feed(two, "b2", [(t, 20.0) for t in range(0, 301, 10)])
    assert await two.flush(now=at(300)) == 0  # not the holder: forwarded
    # the holder reads them (as any holder does) and dies before its write
    taken = await ReadingsStream(state).read(PARK, "dead-holder")
    assert sum(len(readings) for _, readings in taken) == 31
    one = recorder(store, metrics)
    await one.on_park_change(PARK, "taken")  # the runtime: this replica now holds the park
    # the lease at once (not once the dead one's runs out), and what the dead one read
    assert await one.flush(now=at(300)) == 1
    assert await state.redis.get(lease) == one._parks[PARK].lease.owner.encode()
    assert one.received == 31
    b2 = await day_of(store, "b2")
    assert b2.energy_kwh[40] == pytest.approx(20 * 300 / 3600, rel=1e-6)
    pending = await state.redis.xpending(state.park(PARK).readings, "history")
    assert pending["pending"] == 0


async def test_the_supervisor_batch_hands_its_readings_to_the_recorder(
    store: HistoryStore, metrics: Metrics, state: State
) -> None:
    rec = recorder(store, metrics)
    batch = LiveBatch(flush_max=100, history=rec.record)
    key = AdapterKey(TelemetrySource.MODBUS, PARK, "h:502", "modbus-h:502")
    route = AdapterRoute(
        PARK,
        "b1",
        "battery",
        key,
        "b1",
        DeviceLimits(p_min_kw=-50, p_max_kw=50, capacity_kwh=200),
        unit_id=1,
    )
    now = time.time()
    for ts in (now - 20, now - 10):
        batch.add(route, Telemetry(asset_id="b1", ts=ts, power_kw=-12.0, soc=0.5))
        await batch.flush(state, 60.0, lambda park, asset: True)
    await rec.flush(now=datetime.fromtimestamp(now, SHANGHAI))
    got = await store.read(PARK, ["b1"], DAY, date.today() + timedelta(days=1))
    covered = sum(float(d.coverage.sum()) for d in got["b1"].values()) * 900
    energy = sum(float(d.energy_kwh.sum()) for d in got["b1"].values())
    # 20 s held, less the open quarter hour's fraction of a second (it waits for the
    # next write) when the 20 s straddle a quarter hour: CI saw 19.77 s one run in ~40
    assert covered == pytest.approx(20, abs=1)
    assert energy == pytest.approx(-12 * covered / 3600, rel=1e-3)


async def test_running_recorder_writes_on_its_own_and_on_leaving(
    store: HistoryStore, metrics: Metrics
) -> None:
    rec = HistoryRecorder(store, hold_s=60.0, flush_s=0.2, metrics=metrics)
    now = time.time()
    async with rec:
        rec.record(PARK, {"b1": LiveState(power_kw=4.0, ts=datetime.fromtimestamp(now - 5))})
        written = 0.0
        for _ in range(100):
            await asyncio.sleep(0.05)
            written = await covered_seconds(store, "b1")
            if written > 0:
                break
        assert written > 0  # a periodic write, before leaving
    after = await covered_seconds(store, "b1")
    assert after >= written and after >= 5
    sample = metrics.registry.get_sample_value("vpp_history_flush_seconds_count")
    assert sample is not None and sample >= 2


async def covered_seconds(store: HistoryStore, series: str) -> float:
    today = date.today()
    got = await store.read(PARK, [series], today - timedelta(days=1), today + timedelta(days=1))
    return sum(float(d.coverage.sum()) for d in got[series].values()) * 900


async def test_history_survives_a_redis_restart(private_redis: RedisServer) -> None:
    async def clean_restart() -> None:
        private_redis.restart()

    async def crash() -> None:
        await asyncio.sleep(1.2)  # the AOF's everysec fsync has run
        private_redis.kill()
        private_redis.start()

    for restart in (clean_restart, crash):
        state = State.from_url(private_redis.url, namespace="vpp")
        store = HistoryStore(state)
        rec = HistoryRecorder(store, hold_s=600.0, flush_s=60.0)
        feed(rec, "b1", [(0, 10.0), (300, 20.0), (600, -4.0), (900, 8.0)])
        await rec.flush(now=at(900))
        before = await day_of(store, "b1")
        await state.redis.delete(state.park(PARK).history_lease)
        await state.aclose()
        await restart()
        state = State.from_url(private_redis.url, namespace="vpp")
        after = await day_of(HistoryStore(state), "b1")
        key = state.park(PARK).history("b1", DAY)
        expires = await state.redis.expiretime(key)
        await state.redis.delete(key)
        await state.aclose()
        assert np.array_equal(after.energy_kwh, before.energy_kwh)
        assert np.array_equal(after.coverage, before.coverage)
        assert after.energy_kwh[40] == pytest.approx(7800 / 3600, rel=1e-6)
        assert expires == HistoryStore(state).expires_at(DAY, SHANGHAI)


async def test_a_live_holder_whose_park_was_taken_forwards_instead_of_writing(
    store: HistoryStore, metrics: Metrics, state: State
) -> None:
    lease = state.park(PARK).history_lease
    old = recorder(store, Metrics())  # held the park and its history, gave the park back
    feed(old, "b1", [(t, 10.0) for t in range(0, 301, 10)])
    assert await old.flush(now=at(300)) == 1
    assert await state.redis.get(lease) == old._parks[PARK].lease.owner.encode()
    feed(old, "b1", [(t, 10.0) for t in range(310, 451, 10)])  # e.g. its charger stays connected
    new = recorder(store, metrics)
    await new.on_park_change(PARK, "taken")
    feed(new, "b2", [(t, 20.0) for t in range(0, 451, 10)])
    assert await new.flush(now=at(450)) == 1  # b2: the lease taken from the live holder
    assert await state.redis.get(lease) == new._parks[PARK].lease.owner.encode()
    assert await old.flush(now=at(450)) == 0  # its renewal fails: b1 310-450 s forwarded
    assert (old.forwarded, old._parks[PARK].holder) == (15, False)
    assert await new.flush(now=at(450)) == 1  # b1, read from the stream
    assert new.received == 15
    assert await old.flush(now=at(450)) == 0  # still not the holder, nothing to forward
    assert await state.redis.get(lease) == new._parks[PARK].lease.owner.encode()
    b1, b2 = await day_of(store, "b1"), await day_of(store, "b2")
    # b1: 0-300 s by the old holder, 310-450 s by the new, none twice; 300-310 s (the
    # hold of the last reading written before the change) is covered by neither
    assert b1.energy_kwh[40] == pytest.approx(10 * 440 / 3600, rel=1e-6)
    assert b1.coverage[40] == pytest.approx(440 / 900)
    assert b2.energy_kwh[40] == pytest.approx(20 * 450 / 3600, rel=1e-6)
    pending = await state.redis.xpending(state.park(PARK).readings, "history")
    assert pending["pending"] == 0
