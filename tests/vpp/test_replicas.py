"""Park shares among replicas: the fair split, the graceful give-back, a lost lease.

The planning functions are checked alone (rounds of takes and gives played
out by hand until nothing moves); `ParkShares` runs on the real test Redis
under this test's namespace, several of them in one process as separate
replicas (each with its own id), with a short heartbeat and lease.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest

from tests.support import eventually
from vpp.lease import Lease
from vpp.metrics import Metrics
from vpp.redis_client import RedisClient
from vpp.replicas import (
    Change,
    ParkShares,
    ShareView,
    fair_share,
    plan_give,
    plan_takes,
    replica_id,
)
from vpp.state import State

HEARTBEAT_S = 0.1
LEASE_TTL_S = 1.0


def settle(parks: list[str], replicas: list[str], holders: dict[str, str | None]) -> Counter[str]:
    """Play heartbeats (each replica in turn: give one back or take its share) until none moves."""
    for _ in range(200):
        moved = False
        for me in replicas:
            view = ShareView(parks, dict(holders), replicas)
            held = [p for p, h in holders.items() if h == me]
            give = plan_give(view, me, held)
            if give is not None:
                holders[give] = None
                moved = True
                continue
            for park in plan_takes(view, me):
                holders[park] = me
                moved = True
        if not moved:
            return Counter(h for h in holders.values() if h is not None)
    raise AssertionError(f"no steady split: {holders}")


@pytest.mark.parametrize(
    ("replicas", "split"),
    [(1, [10]), (2, [5, 5]), (3, [4, 3, 3]), (4, [3, 3, 2, 2]), (11, [1] * 10 + [0])],
)
def test_ten_parks_split_fairly_from_one_holder(replicas: int, split: list[int]) -> None:
    parks = [f"park-{i}" for i in range(10)]
    names = [f"r{i}" for i in range(replicas)]
    # the first replica held everything, then the others joined
    counts = settle(parks, names, dict.fromkeys(parks, "r0"))
    assert sorted((counts[n] for n in names), reverse=True) == split


def test_a_dead_replicas_parks_go_to_the_live_ones() -> None:
    parks = [f"park-{i}" for i in range(10)]
    holders: dict[str, str | None] = {p: ("a" if i < 4 else "b" if i < 7 else "c")
                                      for i, p in enumerate(parks)}  # fmt: skip
    # c died: its leases expired (unheld), a and b are the live ones
    for park in parks[7:]:
        holders[park] = None
    counts = settle(parks, ["a", "b"], holders)
    assert counts == Counter(a=5, b=5)


def test_takes_start_with_the_parks_a_replica_ranks_first_on() -> None:
    parks = [f"park-{i}" for i in range(20)]
    view = ShareView(parks, dict.fromkeys(parks), ["a", "b"])
    a, b = plan_takes(view, "a"), plan_takes(view, "b")
    assert len(a) == len(b) == fair_share(20, 2)
    # two replicas starting together reach for different parks first
    assert not set(a[:5]) & set(b[:5])


def test_replica_id_is_the_setting_or_one_per_process() -> None:
    assert replica_id("r-7") == "r-7"
    generated = replica_id("")
    assert generated == replica_id()
    assert generated.count("-") >= 2


# -- on Redis ---------------------------------------------------------------


class Recorder:
    """A handler noting every change, and who held the lease when it was called."""

    def __init__(self, redis: RedisClient, lease_key: Callable[[str], str]) -> None:
        self.redis, self.lease_key = redis, lease_key
        self.changes: list[tuple[str, Change, str | None]] = []

    async def __call__(self, park: str, change: Change) -> None:
        holder = await Lease(self.redis, self.lease_key(park), ttl_s=1).holder()
        self.changes.append((park, change, holder))


@pytest.fixture
async def parks(state: State) -> list[str]:
    ids = [f"park-{i}" for i in range(10)]
    await state.redis.sadd(state.keys.parks, *ids)
    return ids


@contextlib.asynccontextmanager
async def replica(
    state: State, name: str, recorder: Recorder | None = None, metrics: Metrics | None = None
) -> AsyncIterator[ParkShares]:
    shares = ParkShares(
        state, replica=name, heartbeat_s=HEARTBEAT_S, lease_ttl_s=LEASE_TTL_S, metrics=metrics
    )
    if recorder is not None:
        shares.subscribe(recorder)
    async with shares:
        yield shares


def split(*shares: ParkShares) -> list[int]:
    return sorted((len(s.held) for s in shares), reverse=True)


async def holders(state: State, parks: list[str]) -> Counter[str]:
    leases = [Lease(state.redis, state.park(p).control_lease, ttl_s=1) for p in parks]
    return Counter(v for v in [await lease.holder() for lease in leases] if v is not None)


async def test_replicas_joining_split_the_parks_and_leaving_gives_them_back(
    state: State, parks: list[str]
) -> None:
    rec = Recorder(state.redis, lambda p: state.park(p).control_lease)
    metrics = Metrics()
    async with replica(state, "a", rec, metrics) as a:
        await eventually(lambda: len(a.held) == 10, within_s=10)
        assert metrics.replicas_live._value.get() == 1
        async with replica(state, "b") as b:
            await eventually(lambda: split(a, b) == [5, 5], within_s=20)
            async with replica(state, "c") as c:
                await eventually(lambda: split(a, b, c) == [4, 3, 3], within_s=20)
                assert await holders(state, parks) == Counter(
                    {s.replica: len(s.held) for s in (a, b, c)}
                )
                assert set(a.live) == {"a", "b", "c"}
            # c left: it gave its parks back, the others took them
            await eventually(lambda: split(a, b) == [5, 5], within_s=20)
        await eventually(lambda: len(a.held) == 10, within_s=20)
        gives = [(p, h) for p, change, h in rec.changes if change is Change.GIVEN]
        assert gives
        # a park is given back while its lease is still held: its loop lets go first
        assert all(h == "a" for _, h in gives)
        # the gauge shows only what a holds now
        held_series = {
            s.labels["park"]
            for m in metrics.registry.collect()
            if m.name == "vpp_park_held"
            for s in m.samples
        }
        assert held_series == set(a.held)
    # leaving gave every park back and left the registry
    assert await holders(state, parks) == Counter()
    assert await state.redis.zcard(state.keys.replicas) == 0


async def test_a_lease_taken_by_another_is_lost_at_once(state: State, parks: list[str]) -> None:
    rec = Recorder(state.redis, lambda p: state.park(p).control_lease)
    async with replica(state, "a", rec) as a:
        await eventually(lambda: len(a.held) == 10, within_s=10)
        park = sorted(a.held)[0]
        # another replica holds it now (a's lease expired during a stall, say)
        await state.redis.set(state.park(park).control_lease, "other", px=60_000)
        await eventually(lambda: not a.holds(park), within_s=5)
        await eventually(lambda: (park, Change.LOST, "other") in rec.changes, within_s=5)
        # no give-back of a lost park: its lease stays with the other holder
        assert await state.redis.get(state.park(park).control_lease) == b"other"
        assert (park, Change.GIVEN, "a") not in rec.changes


async def test_a_dead_replicas_parks_are_taken_once_its_leases_expire(
    state: State, parks: list[str]
) -> None:
    # "dead" held half of the parks and stopped renewing: its leases run out
    for park in parks[:5]:
        await state.redis.set(state.park(park).control_lease, "dead", px=int(LEASE_TTL_S * 1000))
    async with replica(state, "a") as a:
        await eventually(lambda: a.held == frozenset(parks[5:]), within_s=10)
        await eventually(lambda: len(a.held) == 10, within_s=10)


async def test_changes_can_be_awaited(state: State, parks: list[str]) -> None:
    async with replica(state, "a") as a:
        version = await asyncio.wait_for(a.changed(0), timeout=10)
        assert version >= 1
        assert a.held
