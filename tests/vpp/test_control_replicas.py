"""The control loop among replicas: the shared lease, a park given back or lost, a resumed event.

Same seam as ``test_control_loop``: live state written as telemetry would be,
setpoints recorded by the sink; Redis is real.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from tests.support import eventually
from tests.vpp.test_control_loop import PARK, RecordingSink, battery, feed, loop, post
from vpp.clock import Clock
from vpp.control import ControlLoop
from vpp.events import EventState, EventStore
from vpp.model import Park, parse_asset
from vpp.replicas import Change
from vpp.runtime import ControlManager
from vpp.state import State


@pytest.fixture
async def state(redis_client: aioredis.Redis, namespace: str) -> State:
    """The park of ``test_control_loop``: three batteries, live at 0 kW."""
    st = State(redis_client, namespace=namespace)
    for i in range(3):
        await st.enroll(PARK, parse_asset(battery(i)))
    await feed(st)
    return st


def active_clock() -> Clock:
    """Just into the event ``post`` makes at 10:00 (two 15-minute intervals), a minute a second."""
    return Clock(time_scale=60, origin=datetime(2026, 7, 1, 10, 0, 30, tzinfo=UTC))


async def test_a_shared_lease_is_renewed_never_taken_and_kept_on_leaving(state: State) -> None:
    clock = active_clock()
    await post(state, clock, datetime(2026, 7, 1, 10, 0, tzinfo=UTC))
    sink = RecordingSink()
    ctl = loop(state, sink, clock, owner="replica-a", shared_lease=True)
    key = state.park(PARK).control_lease
    async with ctl:
        await asyncio.sleep(0.3)
        # nobody holds the park: the loop does not take it by itself
        assert sink.sent == [] and await state.redis.get(key) is None
        await state.redis.set(key, "replica-a", px=5000)  # the replica's park shares took it
        _ = ctl.wake()
        await asyncio.wait_for(sink.got_send.wait(), 5)
    assert sink.released  # the devices go back before the park is given back
    assert await state.redis.get(key) == b"replica-a"  # the shares give the lease back


async def test_an_abandoned_loop_sends_nothing_more_not_even_a_release(state: State) -> None:
    clock = active_clock()
    await post(state, clock, datetime(2026, 7, 1, 10, 0, tzinfo=UTC))
    sink = RecordingSink()
    ctl = loop(state, sink, clock)
    async with ctl:
        await asyncio.wait_for(sink.got_send.wait(), 5)
        ctl.abandon()
        sends = len(sink.sent)
    assert len(sink.sent) == sends and sink.released == []


async def test_a_loop_that_sees_its_lease_taken_lets_the_event_go(state: State) -> None:
    clock = active_clock()
    await post(state, clock, datetime(2026, 7, 1, 10, 0, tzinfo=UTC))
    sink = RecordingSink()
    ctl = loop(state, sink, clock, owner="replica-a")
    assert await ctl.lease.acquire()
    await ctl.cycle()
    assert sink.sent
    await state.redis.set(ctl.lease.key, "replica-b", px=5000)  # a stalled past its lease
    async with ctl:
        await asyncio.sleep(0.3)
    assert sink.released == []  # replica-b drives the devices now


async def test_a_taken_over_event_keeps_its_stored_baseline(state: State) -> None:
    await state.put_park(Park(id=PARK, baseline_method="pre_event"))
    await feed(state, {"b0": 50.0, "b1": 50.0, "b2": -20.0})  # what they did before the event
    clock = active_clock()
    await post(state, clock, datetime(2026, 7, 1, 10, 0, tzinfo=UTC))
    store = EventStore(state)
    first = loop(state, RecordingSink(), clock, owner="replica-a")
    assert await first.lease.acquire()
    await first.cycle()
    record = await store.get(PARK, "ev-1")
    assert record.state is EventState.ACTIVE and record.baseline_kw == [80.0, 80.0]
    measured = record.measured_kw[0]
    # replica-a dies; the devices follow its last setpoints; replica-b takes the park
    await feed(state, {f"b{i}": -70.0 for i in range(3)})
    await state.redis.delete(first.lease.key)
    sink = RecordingSink()
    second = loop(state, sink, clock, owner="replica-b")
    assert await second.lease.acquire()
    await second.cycle()
    record = await store.get(PARK, "ev-1")
    # the draws now are controlled ones: the baseline stays what it was at activation
    assert record.baseline_kw == [80.0, 80.0]
    assert record.delivered_kw[0] is not None and measured is not None
    # and the interval's measurement goes on from the first replica's cycles
    assert record.measured_kw[0] != -210.0
    assert sum(sink.sent[-1].values()) < 0


async def test_the_manager_follows_takes_gives_and_losses(state: State) -> None:
    clock = active_clock()
    await post(state, clock, datetime(2026, 7, 1, 10, 0, tzinfo=UTC))
    sink = RecordingSink()
    key = state.park(PARK).control_lease

    def make(park: str) -> ControlLoop:
        return loop(state, sink, clock, owner="replica-a", shared_lease=True)

    held: set[str] = set()

    async def listed() -> list[str]:
        return sorted(held)

    async with ControlManager(make, listed, poll_s=0.05) as manager:
        await state.redis.set(key, "replica-a", px=10_000)
        held.add(PARK)
        await manager.on_park_change(PARK, Change.TAKEN)
        await asyncio.wait_for(sink.got_send.wait(), 5)
        held.discard(PARK)
        await manager.on_park_change(PARK, Change.GIVEN)
        assert PARK not in manager.loops
        assert sink.released  # given back gracefully: its devices released
        released = len(sink.released)
        held.add(PARK)
        await manager.on_park_change(PARK, Change.TAKEN)
        await eventually(lambda: len(sink.sent) > 1, within_s=5)
        held.discard(PARK)
        await manager.on_park_change(PARK, Change.LOST)
        assert PARK not in manager.loops
        assert len(sink.released) == released  # lost: not a word to the devices
