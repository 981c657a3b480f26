"""The control loop measures a metered enterprise by its revenue meter, the rest by telemetry.

The devices are the SetpointSink seam of `test_control_loop` (the loop's
setpoints are written back as telemetry); the meter's reading is the
enterprise's unenrolled load plus its batteries, as a real meter would see.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.vpp.test_control_loop import PARK, RecordingSink, battery, loop, post
from vpp.clock import Clock
from vpp.events import EventState, EventStore
from vpp.history.store import HistoryStore
from vpp.model import BaselineAdjustment, BaselineSettings, LiveState, Park, parse_asset
from vpp.state import State

#: what enterprise o0 draws besides its enrolled batteries (kW)
UNENROLLED_KW = 470.0


def meter(owner: str = "o0", revenue: bool = True) -> dict[str, Any]:
    return {
        "kind": "meter", "id": f"m-{owner}", "owner": owner, "grid_node": "n",
        "account_no": "0300012345", "revenue": revenue,
        "connection": {"protocol": "mqtt", "topic_prefix": f"meters/m-{owner}"},
    }  # fmt: skip


async def feed(
    state: State, powers: Mapping[str, float], meter_kw: float | None, silent: str = ""
) -> None:
    """Batteries at ``powers`` (but ``silent``); the o0 meter at its unenrolled load plus b0, b2."""
    live = {
        f"b{i}": LiveState(power_kw=powers[f"b{i}"], soc=0.6) for i in range(3) if f"b{i}" != silent
    }
    if meter_kw is not None:
        live["m-o0"] = LiveState(power_kw=meter_kw)
    await state.write_live_many(PARK, live, ttl=30)


def meter_of(powers: Mapping[str, float]) -> float:
    return UNENROLLED_KW + powers["b0"] + powers["b2"]


@pytest.fixture
async def state(redis_client: aioredis.Redis, namespace: str) -> State:
    st = State(redis_client, namespace=namespace)
    for i in range(3):  # b0, b2 belong to o0; b1 to o1
        await st.enroll(PARK, parse_asset(battery(i)))
    await st.enroll(PARK, parse_asset(meter()))
    await st.put_park(Park(id=PARK, baseline_method="pre_event"))
    return st


async def run_event(state: State, meter_live: bool = True, silent: str = "") -> EventStore:
    """A 300 kW, 30 min peak-shaving event; the batteries (but ``silent``) follow every setpoint."""
    powers = {"b0": 50.0, "b1": 50.0, "b2": -20.0}
    await feed(state, powers, meter_of(powers) if meter_live else None, silent)
    clock = Clock(time_scale=600, origin=datetime(2026, 7, 1, 10, 0, 5, tzinfo=UTC))
    await post(state, clock, datetime(2026, 7, 1, 10, 0, tzinfo=UTC))
    sink = RecordingSink()
    ctl = loop(state, sink, clock)
    store = EventStore(state)
    assert await ctl.lease.acquire()
    async with asyncio.timeout(20):
        while (await store.get(PARK, "ev-1")).state is not EventState.COMPLETED:
            await ctl.cycle()
            if sink.sent:
                powers = {**powers, **sink.sent[-1]}
                await feed(state, powers, meter_of(powers) if meter_live else None, silent)
            await asyncio.sleep(0.05)
    return store


async def test_a_metered_enterprise_is_measured_by_its_meter(state: State) -> None:
    store = await run_event(state)
    record = await store.get(PARK, "ev-1")
    assert record.baseline is not None and record.baseline.method == "pre_event"
    o0, o1 = record.enterprises["o0"], record.enterprises["o1"]
    assert o0.meter == "m-o0" and o1.meter is None
    # o0: its meter held flat (470 + 50 - 20); o1: its battery (50)
    assert o0.baseline_kw == [500.0, 500.0] and o1.baseline_kw == [50.0, 50.0]
    assert record.baseline_kw == [550.0, 550.0]
    for t in range(2):
        m0, m1 = o0.measured_kw[t], o1.measured_kw[t]
        assert m0 is not None and m1 is not None
        assert record.measured_kw[t] == pytest.approx(m0 + m1, abs=0.002)
        # the meter saw its batteries move: meter - telemetry = the unenrolled load
        telemetry = o0.telemetry_kw[t]
        assert telemetry is not None and m0 - telemetry == pytest.approx(UNENROLLED_KW, abs=0.01)
        assert o1.telemetry_kw[t] == m1
    # the park delivered about what was asked, measured at the meter
    delivered = [d for d in record.delivered_kw if d is not None]
    assert len(delivered) == 2 and all(d == pytest.approx(-300.0, abs=30.0) for d in delivered)


async def test_a_meter_without_a_reading_leaves_its_enterprise_to_telemetry(
    state: State,
) -> None:
    store = await run_event(state, meter_live=False)
    record = await store.get(PARK, "ev-1")
    o0 = record.enterprises["o0"]
    assert o0.meter is None and o0.baseline_kw == [30.0, 30.0]  # b0 + b2
    assert record.baseline_kw == [80.0, 80.0]
    assert o0.measured_kw == o0.telemetry_kw


async def test_an_unknown_historical_history_falls_back_and_says_why(state: State) -> None:
    await state.put_park(Park(id=PARK, baseline_method="similar_days"))  # fallback: pre_event
    store = await run_event(state)
    record = await store.get(PARK, "ev-1")
    assert record.baseline is not None
    assert record.baseline.requested == "similar_days"
    assert record.baseline.method == "pre_event"
    assert record.baseline.fallback_reason and "history" in record.baseline.fallback_reason
    assert record.baseline_kw == [550.0, 550.0]  # the fallback's baseline


async def test_an_event_may_override_the_park_method(state: State) -> None:
    powers = {"b0": 50.0, "b1": 50.0, "b2": -20.0}
    await feed(state, powers, meter_of(powers))
    clock = Clock(time_scale=600, origin=datetime(2026, 7, 1, 10, 0, 5, tzinfo=UTC))
    start = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    await post(state, clock, start, baseline_method="model")
    ctl = loop(state, RecordingSink(), clock)
    assert await ctl.lease.acquire()
    await ctl.cycle()
    record = await EventStore(state).get(PARK, "ev-1")
    assert record.state is EventState.ACTIVE
    assert record.baseline is not None
    assert (record.baseline.requested, record.baseline.method) == ("model", "model")
    assert record.baseline_method == "model"
    assert start + timedelta(minutes=30) == record.end


async def lay_history(state: State, levels: Mapping[str, float], days: list[date]) -> None:
    """Each series flat at ``levels`` kW over ``days`` (as imported metering data)."""
    store = HistoryStore(state)
    for series, kw in levels.items():
        await store.put_days(PARK, series, {d: [kw * 0.25] * 96 for d in days})


#: the five working days before Wednesday 2026-07-01 (no holiday among them)
WORKING_DAYS = [date(2026, 6, d) for d in (24, 25, 26, 29, 30)]


async def test_a_historical_baseline_comes_from_the_meter_and_the_devices(state: State) -> None:
    settings = BaselineSettings(days=5, adjustment=None)
    await state.put_park(Park(id=PARK, baseline_method="similar_days", baseline=settings))
    # the meter's history is o0's whole load; b1 is o1's only device
    await lay_history(state, {"m-o0": 600.0, "b0": 999.0, "b1": 40.0, "b2": 999.0}, WORKING_DAYS)
    await lay_history(state, {"m-o0": 50.0, "b1": 1.0}, [date(2026, 6, 27), date(2026, 6, 28)])
    store = await run_event(state)
    record = await store.get(PARK, "ev-1")
    assert record.baseline is not None
    assert (record.baseline.requested, record.baseline.method) == ("similar_days", "similar_days")
    assert record.baseline.fallback_reason is None
    o0, o1 = record.enterprises["o0"], record.enterprises["o1"]
    assert o0.baseline_source == "meter:m-o0" and o1.baseline_source == "assets"
    assert o0.days == WORKING_DAYS and o1.days == WORKING_DAYS  # the weekend left out
    assert o0.adjustment is None
    assert o0.baseline_kw == [600.0, 600.0] and o1.baseline_kw == [40.0, 40.0]
    assert record.baseline_kw == [640.0, 640.0]
    # the goal is 300 kW under 640 kW, wherever the park stood at activation (550 kW)
    delivered = [d for d in record.delivered_kw if d is not None]
    assert all(d == pytest.approx(-300.0, abs=30.0) for d in delivered)


async def test_the_same_day_adjustment_scales_a_historical_baseline(state: State) -> None:
    settings = BaselineSettings(days=5, adjustment=BaselineAdjustment(hours=2, cap=0.2))
    await state.put_park(Park(id=PARK, baseline_method="similar_days", baseline=settings))
    await lay_history(state, {"m-o0": 600.0, "b1": 40.0}, WORKING_DAYS)
    # the event day (18:00 local): o0's meter drew 10 % above its history from 16:00 to 18:00
    slots = range(64, 72)
    await HistoryStore(state).put_days(
        PARK, "m-o0", {date(2026, 7, 1): [660.0 * 0.25 if i in slots else 0.0 for i in range(96)]}
    )
    store = await run_event(state)
    record = await store.get(PARK, "ev-1")
    o0, o1 = record.enterprises["o0"], record.enterprises["o1"]
    assert o0.adjustment == pytest.approx(1.1) and o0.baseline_kw == [660.0, 660.0]
    assert o1.adjustment is None  # no reading of b1 on the event day before it
    assert record.baseline_kw == [700.0, 700.0]


async def test_a_silent_device_counts_at_its_historical_baseline(state: State) -> None:
    settings = BaselineSettings(days=5, adjustment=None)
    await state.put_park(Park(id=PARK, baseline_method="similar_days", baseline=settings))
    await lay_history(state, {"m-o0": 600.0, "b1": 40.0}, WORKING_DAYS)
    store = await run_event(state, silent="b1")  # o1's only device never reports
    record = await store.get(PARK, "ev-1")
    o1 = record.enterprises["o1"]
    assert o1.baseline_kw == [40.0, 40.0]
    # silent: no delivery credited, and its telemetry is what it is measured at
    assert o1.measured_kw == [40.0, 40.0] and o1.telemetry_kw == o1.measured_kw
