"""The control loop fixes the baseline past an event's end at activation, for its rebound window.

The park of `test_control_scopes`: enterprise o0 on its revenue meter (its
batteries b0, b2 and 470 kW it does not enroll), o1 on its battery b1. A
30-minute event at 18:00 local; the loop plans 4 h past its end, so the
baseline past the end has 16 intervals.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

from tests.vpp import test_control_scopes
from tests.vpp.test_control_loop import PARK, RecordingSink, loop, post
from tests.vpp.test_control_scopes import WORKING_DAYS, feed, meter_of, run_event
from vpp.clock import Clock
from vpp.events import EventState, EventStore
from vpp.history.store import HistoryStore, IntervalDelta
from vpp.model import BaselineSettings, Park, parse_asset
from vpp.state import State

#: intervals of 15 minutes in the loop's 4 h past the end ([control] horizon_after_h)
AFTER = 16

#: the park of those tests, as their fixture enrolls it
state = test_control_scopes.state


async def test_a_live_baseline_is_held_past_the_end(state: State) -> None:
    store = await run_event(state)
    record = await store.get(PARK, "ev-1")
    assert record.rebound is not None
    assert record.rebound.start == record.end and record.rebound.note == ""
    # pre_event: the meter held flat (470 + 50 - 20) and b1 at its 50 kW, past the end too
    assert record.rebound.baseline_kw == [550.0] * AFTER
    o0, o1 = record.enterprises["o0"], record.enterprises["o1"]
    assert o0.rebound_baseline_kw == [500.0] * AFTER and o1.rebound_baseline_kw == [50.0] * AFTER
    # what measures each enterprise in the history: the meter, or the devices
    assert o0.series == ["m-o0"] and o1.series == ["b1"]
    assert record.rebound.load_rebound_minutes == 0.0  # no flexible load
    # each device's own baseline beside the record (o0's devices are behind its meter)
    devices = await store.series_baselines(PARK, "ev-1")
    assert devices is not None and devices.start == record.start
    assert devices.baseline_kw == {"b1": [50.0] * (2 + AFTER)}


async def test_without_a_meter_reading_the_devices_are_the_series(state: State) -> None:
    store = await run_event(state, meter_live=False)
    record = await store.get(PARK, "ev-1")
    assert record.enterprises["o0"].series == ["b0", "b2"]
    assert record.rebound is not None and record.rebound.baseline_kw == [80.0] * AFTER


async def test_the_longest_load_rebound_is_recorded(state: State) -> None:
    load = {
        "kind": "flexible_load", "id": "chiller", "owner": "o1", "grid_node": "n",
        "connection": {"protocol": "mqtt", "topic_prefix": "chiller"},
        "baseline_kw": 100, "max_shed_kw": 50, "max_shed_minutes": 60,
        "rebound_fraction": 0.8, "rebound_minutes": 90,
    }  # fmt: skip
    await state.enroll(PARK, parse_asset(load))
    store = await run_event(state)  # the chiller stays silent: it is counted at its baseline
    record = await store.get(PARK, "ev-1")
    assert record.rebound is not None and record.rebound.load_rebound_minutes == 90.0
    assert record.enterprises["o1"].series == ["b1", "chiller"]


async def lay_day(state: State, series: str, levels: dict[range, float], days: list[date]) -> None:
    """``series`` at ``levels`` kW by slot range (local 15-minute slots), as imported data."""
    vector = [0.0] * 96
    for slots, kw in levels.items():
        for i in slots:
            vector[i] = kw * 0.25
    await HistoryStore(state).put_days(PARK, series, dict.fromkeys(days, vector))


async def test_a_historical_baseline_takes_the_similar_days_past_the_end(state: State) -> None:
    settings = BaselineSettings(days=5, adjustment=None)
    await state.put_park(Park(id=PARK, baseline_method="similar_days", baseline=settings))
    # o0's meter steps up at 18:30 local (slot 74), when the event ends, on every working day
    await lay_day(state, "m-o0", {range(74): 600.0, range(74, 96): 700.0}, WORKING_DAYS)
    await lay_day(state, "b1", {range(96): 40.0}, WORKING_DAYS)
    store = await run_event(state)
    record = await store.get(PARK, "ev-1")
    assert record.baseline_kw == [640.0, 640.0]  # the event's own, as before
    assert record.rebound is not None and record.rebound.note == ""
    assert record.rebound.baseline_kw == [740.0] * AFTER
    assert record.enterprises["o0"].rebound_baseline_kw == [700.0] * AFTER


async def test_a_history_that_stops_at_the_end_leaves_the_rebound_unknown(state: State) -> None:
    settings = BaselineSettings(days=5, adjustment=None, min_coverage=0.5)
    await state.put_park(Park(id=PARK, baseline_method="similar_days", baseline=settings))
    # the working days hold data up to 18:30 local (slot 74), the event's end; after it
    # none (coverage 0), which is no data, never 0 kW
    deltas = [
        IntervalDelta(series, day, slot, kw * 0.25, 900)
        for day in WORKING_DAYS
        for series, kw in (("m-o0", 600.0), ("b1", 40.0))
        for slot in range(74)
    ]
    await HistoryStore(state).add(PARK, deltas)
    store = await run_event(state)
    record = await store.get(PARK, "ev-1")
    assert record.baseline is not None and record.baseline.method == "similar_days"
    assert record.baseline_kw == [640.0, 640.0]  # the event keeps its method
    assert record.rebound is not None
    assert record.rebound.baseline_kw == [None] * AFTER
    assert record.rebound.note.startswith("the history cannot serve the baseline past the end")
    assert record.enterprises["o0"].rebound_baseline_kw == [None] * AFTER


async def test_a_resized_event_gets_its_rebound_baseline_at_its_new_end(state: State) -> None:
    powers = {"b0": 50.0, "b1": 50.0, "b2": -20.0}
    await feed(state, powers, meter_of(powers))
    start = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    clock = Clock(time_scale=60, origin=start + timedelta(seconds=5))
    await post(state, clock, start)
    ctl = loop(state, RecordingSink(), clock)
    store = EventStore(state)
    assert await ctl.lease.acquire()
    await ctl.cycle()
    record = await store.get(PARK, "ev-1")
    assert record.state is EventState.ACTIVE and record.rebound is not None
    assert record.rebound.start == start + timedelta(minutes=30)
    await store.resize(PARK, "ev-1", [300.0] * 3, clock.now())  # 15 minutes longer
    new_end = start + timedelta(minutes=45)
    async with asyncio.timeout(10):
        while (rebound := (await store.get(PARK, "ev-1")).rebound) and rebound.start != new_end:
            await feed(state, powers, meter_of(powers))
            await ctl.cycle()
            await asyncio.sleep(0.05)
    record = await store.get(PARK, "ev-1")
    assert record.rebound is not None and record.rebound.baseline_kw == [550.0] * AFTER
    assert len(record.baseline_kw) == 3
