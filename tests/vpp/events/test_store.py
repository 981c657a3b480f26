import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from vpp.errors import Conflict, InvalidInput, NotFound
from vpp.events import (
    EventOverlap,
    EventRecord,
    EventState,
    EventStore,
    IllegalTransition,
    parse_event_request,
)
from vpp.state import State

T0 = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)


def request(**over: Any) -> Any:
    data: dict[str, Any] = {
        "id": "ev-1",
        "kind": "peak_shaving",
        "start": T0.isoformat(),
        "target_kw": 500,
        "duration_minutes": 60,
    }
    data.update(over)
    return parse_event_request(data)


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> EventStore:
    return EventStore(State(redis_client, namespace=namespace))


async def test_create_is_idempotent_and_conflicts_on_other_content(store: EventStore) -> None:
    rec, created = await store.create("p1", request(), T0)
    assert created and rec.state is EventState.RECEIVED
    again, created2 = await store.create("p1", request(), T0 + timedelta(seconds=5))
    assert not created2
    assert again.created == rec.created
    with pytest.raises(Conflict):
        await store.create("p1", request(target_kw=400), T0)
    # same id in another park is another event
    _, created3 = await store.create("p2", request(target_kw=400), T0)
    assert created3


async def test_transitions_are_logged(store: EventStore) -> None:
    await store.create("p1", request(), T0)
    await store.transition("p1", "ev-1", EventState.SCHEDULED, T0)
    await store.transition("p1", "ev-1", EventState.ACTIVE, T0)
    with pytest.raises(IllegalTransition):
        await store.transition("p1", "ev-1", EventState.SCHEDULED, T0)
    log = await store.state.read_park_log("p1")
    states = [f["state"] for _, f in log if f["event"].startswith("event.")]
    assert states == ["received", "scheduled", "active"]
    rec = await store.get("p1", "ev-1")
    assert rec.state is EventState.ACTIVE
    with pytest.raises(NotFound):
        await store.get("p1", "nope")


async def test_concurrent_updates_do_not_lose_writes(store: EventStore) -> None:
    await store.create("p1", request(), T0)

    def setter(i: int) -> Any:
        def change(r: EventRecord) -> None:
            r.measured_kw[i] = float(i + 1)

        return change

    await asyncio.gather(*(store.update("p1", "ev-1", setter(i)) for i in range(4)))
    rec = await store.get("p1", "ev-1")
    assert rec.measured_kw == [1.0, 2.0, 3.0, 4.0]
    assert [r.id for r in await store.open_events("p1")] == ["ev-1"]
    assert [r.id for r in await store.recent("p1")] == ["ev-1"]


async def test_resize_extends_in_place_and_refuses_to_run_into_another_event(
    store: EventStore,
) -> None:
    # ev-1: 4 x 15 min from T0, active; ev-2 scheduled from T0 + 2 h.
    await store.create("p1", request(), T0)
    await store.transition("p1", "ev-1", EventState.ACTIVE, T0)
    later = T0 + timedelta(hours=2)
    await store.create("p1", request(id="ev-2", start=later.isoformat()), T0)
    await store.transition("p1", "ev-2", EventState.SCHEDULED, T0)

    def measured(r: EventRecord) -> None:
        r.baseline_kw = [1000.0] * 4
        r.measured_kw = [500.0, 510.0, None, None]

    await store.update("p1", "ev-1", measured)
    rec = await store.resize("p1", "ev-1", [500] * 6, T0 + timedelta(minutes=32))
    assert rec.id == "ev-1" and rec.state is EventState.ACTIVE
    assert rec.target_kw == [-500.0] * 6
    assert rec.baseline_kw == [1000.0] * 4 + [None, None]
    assert rec.measured_kw[:2] == [500.0, 510.0]
    assert (await store.get("p1", "ev-1")).target_kw == [-500.0] * 6
    # 12 intervals would reach 09:00, into ev-2 (from 08:00): refused, nothing changed
    with pytest.raises(IllegalTransition, match="ev-2"):
        await store.resize("p1", "ev-1", [500] * 12, T0 + timedelta(minutes=33))
    assert len((await store.get("p1", "ev-1")).target_kw) == 6
    # shortening is always possible
    rec = await store.resize("p1", "ev-1", [500] * 3, T0 + timedelta(minutes=34))
    assert len(rec.target_kw) == 3


async def test_create_refuses_a_window_overlapping_an_open_event_and_stores_nothing(
    store: EventStore,
) -> None:
    await store.create("p1", request(), T0)  # 06:00 to 07:00, received
    with pytest.raises(EventOverlap, match="ev-1") as refused:
        await store.create(
            "p1", request(id="ev-2", start=(T0 + timedelta(minutes=45)).isoformat()), T0
        )
    assert refused.value.other.id == "ev-1" and refused.value.field == "start"
    with pytest.raises(NotFound):
        await store.get("p1", "ev-2")
    assert [r.id for r in await store.recent("p1")] == ["ev-1"]
    # an event that ends where ev-1 starts, or starts where it ends, is no overlap
    before = request(id="ev-0", start=(T0 - timedelta(hours=1)).isoformat())
    after = request(id="ev-3", start=(T0 + timedelta(hours=1)).isoformat())
    assert (await store.create("p1", before, T0))[1]
    assert (await store.create("p1", after, T0))[1]
    # over (cancelled) events do not count; the repeat of a stored event is a replay
    await store.transition("p1", "ev-1", EventState.CANCELLED, T0)
    inside = request(id="ev-2", start=(T0 + timedelta(minutes=15)).isoformat(), duration_minutes=30)
    assert (await store.create("p1", inside, T0))[1]
    assert not (await store.create("p1", request(), T0))[1]


async def test_create_finds_a_long_event_that_started_days_before(store: EventStore) -> None:
    # 96 x 60 min from three days before: it runs until a day after T0
    long = request(id="ev-long", start=(T0 - timedelta(days=3)).isoformat(), interval_minutes=60,
                   duration_minutes=None, target_kw=None, targets_kw=[100] * 96)  # fmt: skip
    await store.create("p1", long, T0)
    with pytest.raises(EventOverlap, match="ev-long"):
        await store.create("p1", request(start=(T0 + timedelta(hours=23)).isoformat()), T0)
    assert (await store.create("p1", request(start=(T0 + timedelta(hours=24)).isoformat()), T0))[1]


async def test_create_finds_an_event_rolled_forward_past_the_longest_create(
    store: EventStore,
) -> None:
    # The OpenADR bridge rolls an open-ended event forward in place: from five
    # days before, 130 hourly slots reach ten hours after T0.
    long = request(id="oadr-x", start=(T0 - timedelta(days=5)).isoformat(), interval_minutes=60,
                   duration_minutes=None, target_kw=None, targets_kw=[100] * 96)  # fmt: skip
    await store.create("p1", long, T0 - timedelta(days=5))
    assert len((await store.resize("p1", "oadr-x", [100] * 130, T0)).target_kw) == 130
    with pytest.raises(EventOverlap, match="oadr-x"):
        await store.create("p1", request(start=(T0 + timedelta(hours=9)).isoformat()), T0)
    assert (await store.create("p1", request(start=(T0 + timedelta(hours=10)).isoformat()), T0))[1]


async def test_resize_refuses_to_run_into_a_received_event(store: EventStore) -> None:
    await store.create("p1", request(), T0)
    await store.create("p1", request(id="ev-2", start=(T0 + timedelta(hours=2)).isoformat()), T0)
    with pytest.raises(EventOverlap, match="ev-2"):
        await store.resize("p1", "ev-1", [500] * 12, T0)
    assert len((await store.get("p1", "ev-1")).target_kw) == 4


async def _after(turns: int, work: Awaitable[Any]) -> Any:
    """Run ``work`` after ``turns`` passes of the event loop (to sweep interleavings)."""
    for _ in range(turns):
        await asyncio.sleep(0)
    return await work


async def test_a_create_and_an_extension_racing_each_other_cannot_both_win(
    store: EventStore,
) -> None:
    # Each side gets a head start of 0 to 11 loop passes, so the other side's
    # read, check and write fall at every point of this side's transaction.
    for turns in range(12):
        for create_first in (True, False):
            park = f"race-{turns}-{create_first}"
            await store.create(park, request(), T0)  # 06:00 to 07:00
            # ev-2 from 07:30; ev-1 extended to 08:00 at the same moment
            late = request(id="ev-2", start=(T0 + timedelta(minutes=90)).isoformat())
            create = _after(0 if create_first else turns, store.create(park, late, T0))
            extend = _after(turns if create_first else 0, store.resize(park, "ev-1", [500] * 8, T0))
            outcomes = await asyncio.gather(create, extend, return_exceptions=True)
            refused = [o for o in outcomes if isinstance(o, EventOverlap)]
            assert len(refused) == 1, (turns, create_first, outcomes)
            ev1 = await store.get(park, "ev-1")
            others = [r for r in await store.open_events(park) if r.id != "ev-1"]
            assert len(ev1.target_kw) == 4 or others == []


async def test_resize_holds_the_create_bounds_for_every_caller(store: EventStore) -> None:
    # the OpenADR bridge resizes through the store, not through EventPatch
    await store.create("p1", request(), T0)
    for magnitudes in ([1e308, 1e308], [float("nan")], [-1.0], []):
        with pytest.raises(InvalidInput) as refused:
            await store.resize("p1", "ev-1", magnitudes, T0)
        assert refused.value.fields == ["targets_kw"]
    assert (await store.get("p1", "ev-1")).target_kw == [-500.0] * 4
    assert (await store.resize("p1", "ev-1", [1e7], T0)).target_kw == [-1e7]
