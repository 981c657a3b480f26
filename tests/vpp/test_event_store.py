import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from vpp.errors import Conflict, NotFound
from vpp.event_store import EventStore
from vpp.events import EventRecord, EventState, IllegalTransition, parse_event_request
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
    log = await store.state.read_log("p1")
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
