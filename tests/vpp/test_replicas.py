"""Park shares among replicas: the fair split, the graceful give-back, a lost lease.

The planning functions are checked alone (rounds of takes and gives played
out by hand until nothing moves); `ParkShares` runs on the real test Redis
under this test's namespace, several of them in one process as separate
replicas (each with its own id), with a short heartbeat and lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
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
    ReplicaIdInUse,
    ShareView,
    fair_share,
    plan_give,
    plan_takes,
    replica_id,
)
from vpp.runtime import SHARES
from vpp.servers import free_port
from vpp.service import running_service
from vpp.settings import Settings
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


def test_a_joining_replica_makes_one_holder_give_one_quiet_park_at_a_time() -> None:
    parks = [f"park-{i}" for i in range(6)]
    holders: dict[str, str | None] = {p: f"r{1 + i // 2}" for i, p in enumerate(parks)}
    busy = {"park-0", "park-2", "park-4", "park-5"}  # r3 holds park-4 and park-5: both busy
    view = ShareView(parks, dict(holders), ["r1", "r2", "r3", "r4"])
    gives = {
        me: plan_give(view, me, [p for p, h in holders.items() if h == me], busy.__contains__)
        for me in ("r1", "r2", "r3")
    }
    # r1, r2, r3 are each over r4's count by two: one alone (the highest id) would give,
    # but every park of r3 is busy: it waits, and nobody else gives meanwhile
    assert gives == dict.fromkeys(("r1", "r2", "r3"))
    # r3's park-5 turns quiet: r3 gives it, the others still give nothing
    busy.discard("park-5")
    gives = {
        me: plan_give(view, me, [p for p, h in holders.items() if h == me], busy.__contains__)
        for me in ("r1", "r2", "r3")
    }
    assert gives == {"r1": None, "r2": None, "r3": "park-5"}
    # given back, unheld: no one gives more until r4 took it; then the split is settled
    holders["park-5"] = None
    view = ShareView(parks, dict(holders), ["r1", "r2", "r3", "r4"])
    assert plan_give(view, "r2", ["park-2", "park-3"]) is None
    assert plan_takes(view, "r4") == ["park-5"]
    holders["park-5"] = "r4"
    assert settle(parks, ["r1", "r2", "r3", "r4"], holders) == Counter(r1=2, r2=2, r3=1, r4=1)


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
    state: State,
    name: str,
    recorder: Recorder | None = None,
    metrics: Metrics | None = None,
    busy: Callable[[str], bool] | None = None,
) -> AsyncIterator[ParkShares]:
    shares = ParkShares(
        state, replica=name, heartbeat_s=HEARTBEAT_S, lease_ttl_s=LEASE_TTL_S, metrics=metrics,
        busy=busy,
    )  # fmt: skip
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


async def test_a_joining_replica_never_takes_a_park_delivering_an_event(
    state: State, parks: list[str]
) -> None:
    busy: set[str] = set()
    rec = Recorder(state.redis, lambda p: state.park(p).control_lease)
    async with (
        replica(state, "a", rec, busy=busy.__contains__) as a,
        replica(state, "b", rec, busy=busy.__contains__) as b,
    ):
        await eventually(lambda: split(a, b) == [5, 5], within_s=20)
        # two parks of each run an event
        busy.update(sorted(a.held)[:2] + sorted(b.held)[:2])
        before = len(rec.changes)
        async with replica(state, "c") as c:
            await eventually(lambda: split(a, b, c) == [4, 3, 3], within_s=20)
            given = [p for p, change, _ in rec.changes[before:] if change is Change.GIVEN]
            assert len(given) == 3
            assert not set(given) & busy
            assert busy <= a.held | b.held  # the events' parks never moved
            assert await holders(state, parks) == Counter(
                {s.replica: len(s.held) for s in (a, b, c)}
            )


async def test_a_second_process_with_a_live_replicas_id_is_refused(
    state: State, parks: list[str]
) -> None:
    async with replica(state, "r1") as first:
        await eventually(lambda: len(first.held) == 10, within_s=10)
        with pytest.raises(ReplicaIdInUse, match="replica id r1 is in use by another live"):
            async with replica(state, "r1"):
                pass
        # the first one is untouched: it holds all parks, its token is still there
        assert len(first.held) == 10
        key = state.keys.replica_instance("r1")
        assert await state.redis.get(key) == first.instance.encode()


async def test_a_restarted_replica_waits_out_the_token_of_its_dead_process(
    state: State, parks: list[str]
) -> None:
    # the previous process under r1 crashed: its token expires, nobody renews it
    key = state.keys.replica_instance("r1")
    await state.redis.set(key, "dead-process", px=int(3 * HEARTBEAT_S * 1000))
    async with replica(state, "r1") as r1:
        assert await state.redis.get(key) == r1.instance.encode()
        await eventually(lambda: len(r1.held) == 10, within_s=10)
    assert await state.redis.get(key) is None  # left: its token went with it


async def test_a_replica_whose_id_another_process_took_takes_no_more_parks(
    state: State, parks: list[str]
) -> None:
    async with replica(state, "r1") as r1:
        await eventually(lambda: len(r1.held) == 10, within_s=10)
        await state.redis.set(state.keys.replica_instance("r1"), "intruder", px=60_000)
        await eventually(lambda: r1.duplicate, within_s=5)
        assert not r1.health()["ok"]  # /readyz shows it
        # one of its leases runs out (deleted here): it is lost and not taken again
        park = sorted(r1.held)[0]
        await state.redis.delete(state.park(park).control_lease)
        await eventually(lambda: not r1.holds(park), within_s=5)
        beats = await heartbeats(state, "r1", 3)
        assert beats == 3 and not r1.holds(park)
        assert await state.redis.get(state.park(park).control_lease) is None


async def heartbeats(state: State, replica: str, n: int) -> int:
    """Wait for ``n`` more heartbeats of ``replica`` (its registry score moving on); return n."""
    for _ in range(n):
        last = await state.redis.zscore(state.keys.replicas, replica)

        async def moved(before: float | None = last) -> bool:
            return await state.redis.zscore(state.keys.replicas, replica) != before

        await eventually(moved, within_s=5)
    return n


async def test_a_service_started_with_a_live_replicas_id_fails_to_start(
    service_settings: Settings, state: State
) -> None:
    service_settings.replicas.id = "r1"
    service_settings.replicas.heartbeat_s = HEARTBEAT_S
    service_settings.control.lease_ttl_s = LEASE_TTL_S
    async with running_service(service_settings, state, metrics=Metrics()) as first:
        shares = first.app[SHARES]
        with pytest.raises(ReplicaIdInUse, match="replica id r1 is in use by another live"):
            second = copy.deepcopy(service_settings)
            second.ocpp.port = free_port()
            async with running_service(second, state, metrics=Metrics()):
                pass
        # the live one is untouched: its token is the one under r1
        key = state.keys.replica_instance("r1")
        assert await state.redis.get(key) == shares.instance.encode()
        assert shares.health()["ok"]
