"""The charger connection map against a real Redis: owner-checked removal, liveness, refresh."""

from __future__ import annotations

import time

from tests.vpp.supervisor.assets import PARK
from vpp.state import State
from vpp.supervisor._links import ChargerLinks


async def _beat(state: State, replica: str, ttl_s: float) -> None:
    await state.redis.zadd(state.keys.replicas, {replica: (time.time() + ttl_s) * 1000.0})


async def _entries(state: State) -> dict[str, str]:
    raw = await state.redis.hgetall(state.park(PARK).ocpp_connected)
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def test_a_replica_removes_only_the_entries_that_name_it(state: State) -> None:
    b, c = ChargerLinks(state, "replica-b"), ChargerLinks(state, "replica-c")
    await b.connected(PARK, ["CP-1", "CP-2"])
    await c.connected(PARK, ["CP-2"])  # CP-2 reconnected to C before B saw it drop
    assert not await b.disconnected(PARK, "CP-2")
    assert await b.disconnected(PARK, "CP-1")
    assert await _entries(state) == {"CP-2": "replica-c"}


async def test_an_entry_counts_only_while_its_replica_is_live(state: State) -> None:
    a, b = ChargerLinks(state, "replica-a"), ChargerLinks(state, "replica-b")
    await b.connected(PARK, ["CP-1"])
    assert await a.holder(PARK, "CP-1") is None  # B never beat: not live, entry dropped
    assert await _entries(state) == {}
    await b.connected(PARK, ["CP-1"])
    await _beat(state, "replica-b", 60.0)
    assert await a.holder(PARK, "CP-1") == "replica-b"
    assert await b.holder(PARK, "CP-1") == "replica-b"  # its own, without a look
    await _beat(state, "replica-b", -1.0)
    assert await a.holder(PARK, "CP-1") is None
    assert await _entries(state) == {}


async def test_a_refresh_restores_held_chargers_and_clears_the_rest(state: State) -> None:
    b = ChargerLinks(state, "replica-b")
    await b.connected(PARK, ["CP-1", "CP-3"])
    await ChargerLinks(state, "replica-c").connected(PARK, ["CP-4"])
    await state.redis.hdel(state.park(PARK).ocpp_connected, "CP-1")  # lost to a failover
    await b.refresh({PARK: ["CP-1", "CP-2"], "p2": []})
    assert await _entries(state) == {"CP-1": "replica-b", "CP-2": "replica-b", "CP-4": "replica-c"}
