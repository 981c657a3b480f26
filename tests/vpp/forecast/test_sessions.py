"""Charger sessions from live readings: the tracker's rules, the store, and the recorder's wiring.

Every energy below is hand-computed from the readings (sample-and-hold, the
hold capped at ``HOLD`` seconds), so the tests assert what the tracker
decided, not when they ran.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from adapters.types import DeviceLimits, Telemetry, TelemetrySource
from vpp.forecast.sessions import (
    ChargerSession,
    SessionStore,
    SessionTracker,
    session_from_data,
    session_to_data,
)
from vpp.history.grid import slot_start
from vpp.history.recorder import HistoryRecorder
from vpp.history.store import HistoryStore
from vpp.model import LiveState
from vpp.state import State
from vpp.supervisor import AdapterKey, AdapterRoute
from vpp.supervisor._live import LiveBatch

PARK = "p1"
TZ = ZoneInfo("Asia/Shanghai")
#: a recent day (the session set expires with the retention after its newest arrival)
DAY = date.today() - timedelta(days=2)
#: 08:00 local of DAY
T0 = slot_start(DAY, 32, TZ)
HOLD = 120.0
LEAVES = T0 + timedelta(hours=9)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ev(
    seconds: float,
    kw: float,
    *,
    plugged: bool | None = True,
    available: bool = True,
    need: float | None = 20.0,
    leaves: datetime | None = LEAVES,
) -> LiveState:
    return LiveState(
        power_kw=kw,
        ev_connected=plugged,
        ev_departure=leaves if plugged else None,
        ev_energy_needed_kwh=need if plugged else None,
        available=available,
        ts=at(seconds),
    )


def feed(tracker: SessionTracker, asset: str, readings: list[LiveState]) -> None:
    for live in readings:
        tracker.observe(asset, live.ts.timestamp(), live)


def charging(first: float, last: float, kw: float = 11.0, need: float = 20.0) -> list[LiveState]:
    """Readings every 60 s from ``first`` to ``last`` (inclusive), plugged in."""
    return [ev(s, kw, need=need) for s in range(int(first), int(last) + 1, 60)]


def test_plug_charge_short_outage_unplug_is_one_session_with_its_energy() -> None:
    tracker = SessionTracker(hold_s=HOLD)
    feed(tracker, "ev1", [ev(0, 0.0, plugged=False)])
    assert tracker.open() == {} and tracker.drain() == []
    # plugged in at 60 s (0 kW: the charge starts with the next reading); the
    # need it states falls as it charges, the one at plug-in is kept
    feed(tracker, "ev1", [ev(60, 0.0), *charging(120, 1800, need=18.0)])
    # the websocket drops: the CSMS marks it unavailable (a stand-in 0 kW, the plug
    # as last known), then it is back 10 minutes later, still plugged in
    feed(tracker, "ev1", [ev(1860, 0.0, available=False), *charging(2400, 3600, need=9.0)])
    assert list(tracker.open()) == ["ev1"]
    feed(tracker, "ev1", [ev(3660, 0.0, plugged=False)])
    assert tracker.open() == {}
    [s] = tracker.drain()
    assert s.asset_id == "ev1" and s.arrival == at(60) and s.departure == at(3660)
    assert s.stated_departure == LEAVES and s.energy_needed_kwh == 20.0
    # 11 kW over 120-1800 s, held to the unavailable reading at 1860 s, nothing in
    # the outage, 11 kW over 2400-3660 s: 3000 s in all
    assert s.energy_delivered_kwh == pytest.approx(11.0 * 3000 / 3600)
    assert tracker.drain() == []  # drained


def test_readings_of_other_assets_and_late_ones_change_nothing() -> None:
    tracker = SessionTracker(hold_s=HOLD)
    feed(tracker, "meter-1", [LiveState(power_kw=500.0, ts=at(0))])
    feed(tracker, "ev1", [ev(0, 0.0), *charging(60, 600)])
    feed(tracker, "ev1", [ev(300, 0.0, plugged=False)])  # late: ignored
    feed(tracker, "ev1", [ev(660, 11.0, plugged=None)])  # says nothing of the plug
    assert set(tracker.open()) == {"ev1"}
    assert tracker.open()["ev1"].energy_delivered_kwh == pytest.approx(11.0 * 600 / 3600)


def test_a_long_outage_splits_unless_the_vehicle_states_the_same_departure() -> None:
    tracker = SessionTracker(hold_s=HOLD, max_gap_s=3600.0)
    feed(tracker, "ev1", [ev(0, 0.0), *charging(60, 600)])
    # 2 h unseen, then plugged in again with another departure: another vehicle
    other = LEAVES + timedelta(hours=2)
    feed(tracker, "ev1", [ev(600 + 7200, 7.0, leaves=other), ev(600 + 7260, 7.0, leaves=other)])
    closed, opened = tracker.drain()
    assert closed.arrival == at(0) and closed.departure == at(600)  # when it was last seen
    assert opened.arrival == at(7800) and opened.open and opened.stated_departure == other
    # the same again, but the vehicle states the departure it stated before: the same stay
    tracker = SessionTracker(hold_s=HOLD, max_gap_s=3600.0)
    feed(tracker, "ev1", [ev(0, 0.0), *charging(60, 600), ev(7800, 11.0), ev(7860, 11.0)])
    [same] = tracker.drain()
    assert same.arrival == at(0) and same.open and same.seen == at(7860)
    # 11 kW over 60-600 s, the 600 s reading's hold (120 s), 7800-7860 s
    assert same.energy_delivered_kwh == pytest.approx(11.0 * (540 + 120 + 60) / 3600)


def test_an_unplug_seen_only_after_a_silence_ends_the_session_when_last_seen() -> None:
    tracker = SessionTracker(hold_s=HOLD)
    feed(tracker, "ev1", [ev(0, 0.0), *charging(60, 1200), ev(5000, 0.0, plugged=False)])
    [s] = tracker.drain()
    assert s.departure == at(1200)  # left some time in the silence: never overstated
    assert s.energy_delivered_kwh == pytest.approx(11.0 * (1140 + HOLD) / 3600)


def test_a_session_round_trips_through_its_stored_form() -> None:
    s = ChargerSession("ev1", at(0), None, LEAVES, None, 3.5, at(60))
    back = session_from_data(session_to_data(s))
    assert back == s and back.arrival.tzinfo is UTC and back.open and back.until == at(60)
    assert back.need_kwh == 3.5  # no stated need: what it took


async def test_the_store_adds_closes_and_reads_idempotently(state: State) -> None:
    store = SessionStore(state, retention_days=30)
    first = ChargerSession("ev1", at(0), None, LEAVES, 20.0, 1.0, at(60))
    other = ChargerSession("ev2", at(0), None, None, None, 0.0, at(0))
    later = ChargerSession("ev1", at(86400), at(90000), None, 10.0, 9.5, at(90000))
    assert await store.add(PARK, [first, other, later]) == 3
    assert await store.add(PARK, [first]) == 0  # the same again: nothing new
    closed = ChargerSession("ev1", at(0), at(3600), LEAVES, 20.0, 9.0, at(3600))
    assert await store.add(PARK, [closed]) == 0  # replaces the open one
    got = await store.read(PARK, at(0), at(86400))
    assert sorted(got, key=lambda s: s.asset_id) == [closed, other]
    assert await store.read(PARK, at(0), at(86401), ["ev1"]) == [closed, later]
    assert await store.open_sessions(PARK, at(-60)) == [other]
    key = state.park(PARK).ev_sessions
    assert await state.redis.zcard(key) == 3
    # the set lives the retention after its newest arrival
    expires = await state.redis.expiretime(key)
    assert expires == pytest.approx((at(86400) + timedelta(days=30)).timestamp(), abs=1)


async def test_the_store_drops_sessions_beyond_the_retention(state: State) -> None:
    store = SessionStore(state, retention_days=1)
    today = 2 * 86400  # (an older one would expire at once)
    old = ChargerSession("ev1", at(today), at(today + 600), None, None, 1.0, at(today + 600))
    await store.add(PARK, [old])
    assert await store.read(PARK, at(0), at(5 * 86400)) == [old]
    new = replace(old, arrival=at(today + 2 * 86400))  # more than a day newer
    await store.add(PARK, [new])
    assert await store.read(PARK, at(0), at(5 * 86400)) == [new]


async def test_a_restart_resumes_the_open_session_from_the_store(state: State) -> None:
    store = SessionStore(state)
    first = SessionTracker(hold_s=HOLD)
    feed(first, "ev1", [ev(0, 0.0), *charging(60, 1200)])
    await store.add(PARK, first.drain())
    # the process dies; the next one resumes what the store holds
    second = SessionTracker(hold_s=HOLD)
    second.resume(await store.open_sessions(PARK, at(-86400)))
    assert second.open()["ev1"].arrival == at(0)
    feed(second, "ev1", [*charging(1500, 2400), ev(2460, 0.0, plugged=False)])
    await store.add(PARK, second.drain())
    [s] = await store.read(PARK, at(-1), at(86400))
    assert s.arrival == at(0) and s.departure == at(2460)
    # 60-1200 s by the first (its last hold died with it); 1500-2460 s by the second
    assert s.energy_delivered_kwh == pytest.approx(11.0 * (1140 + 960) / 3600)


def test_resuming_closes_an_older_session_left_open() -> None:
    stale = ChargerSession("ev1", at(-86400), None, None, None, 4.0, at(-80000))
    newer = ChargerSession("ev1", at(0), None, None, None, 1.0, at(60))
    tracker = SessionTracker(hold_s=HOLD)
    tracker.resume([newer, stale])
    assert tracker.open() == {"ev1": newer}
    [closed] = tracker.drain()
    assert closed.arrival == stale.arrival and closed.departure == at(-80000)


async def test_the_recorder_records_a_session_from_supervisor_batches(state: State) -> None:
    history = HistoryStore(state)
    rec = HistoryRecorder(history, hold_s=60.0, flush_s=60.0)
    batch = LiveBatch(flush_max=100, history=rec.record)
    key = AdapterKey(TelemetrySource.OCPP, PARK, "csms", "ocpp-csms")
    route = AdapterRoute(
        PARK, "ev1", "ev_charger", key, "ev1", DeviceLimits(p_min_kw=0.0, p_max_kw=11.0)
    )
    now = time.time()
    leaves = now + 6 * 3600

    async def send(ts: float, kw: float, plugged: bool, available: bool = True) -> None:
        batch.add(
            route,
            Telemetry(
                asset_id="ev1", ts=ts, power_kw=kw, ev_connected=plugged, available=available,
                departure_ts=leaves if plugged else None,
                energy_needed_kwh=15.0 if plugged else None, source=TelemetrySource.OCPP,
            ),
        )  # fmt: skip
        await batch.flush(state, 60.0, lambda park, asset: True)

    await send(now - 300, 0.0, False)
    await send(now - 240, 0.0, True)
    for ts in (now - 180, now - 120):
        await send(ts, 11.0, True)
    await send(now - 100, 0.0, True, available=False)  # a short outage
    await send(now - 60, 11.0, True)
    await rec.flush(now=datetime.fromtimestamp(now - 30, UTC))
    sessions = SessionStore(state)
    [open_] = await sessions.open_sessions(PARK, datetime.fromtimestamp(now - 3600, UTC))
    assert open_.arrival.timestamp() == pytest.approx(now - 240, abs=1e-3)
    await send(now - 30, 0.0, False)
    await rec.flush(now=datetime.fromtimestamp(now, UTC))
    begin = datetime.fromtimestamp(now - 3600, UTC)
    [s] = await sessions.read(PARK, begin, datetime.fromtimestamp(now, UTC))
    assert s.departure is not None
    assert s.departure.timestamp() == pytest.approx(now - 30, abs=1e-3)
    assert s.energy_needed_kwh == 15.0
    assert s.stated_departure is not None
    assert s.stated_departure.timestamp() == pytest.approx(leaves, abs=1e-3)
    # 11 kW over 180-100 s before now (to the outage), then 60-30 s before now
    assert s.energy_delivered_kwh == pytest.approx(11.0 * (80 + 30) / 3600, rel=1e-6)
