"""Following the park logs of many parks: on a Redis Cluster they sit in several slots.

One blocking XREAD may only name keys of one slot on a cluster, so the logs
are read by slot, all at once; on one Redis it is a single XREAD. Either
way, every followed park's asset change is reported, entries that are not
asset changes are passed over, and nothing is reported twice.
"""

from __future__ import annotations

from redis.crc import key_slot

from tests.support import eventually
from tests.vpp.supervisor import assets
from vpp.model import parse_asset
from vpp.redis_client import RedisClient
from vpp.state import State
from vpp.supervisor._follow import ParkLogs

PARKS = [f"park-{i}" for i in range(8)]


async def test_asset_changes_of_every_followed_park_are_reported_once(
    redis_client: RedisClient, namespace: str
) -> None:
    state = State(redis_client, namespace=namespace)
    slots = {key_slot(state.park(p).park_log.encode()) for p in PARKS}
    assert len(slots) > 1  # the parks' logs hash to several slots
    logs = ParkLogs(state)
    for park in PARKS:
        await logs.follow(park)
    for park in PARKS:
        await state.enroll(park, parse_asset(assets.load("hvac-1", "root")))

    seen: set[str] = set()

    async def all_reported() -> bool:
        seen.update(await logs.changed(0.2))
        return seen == set(PARKS)

    await eventually(all_reported)
    assert await logs.changed(0.1) == set()  # each entry is read once

    # an entry that is no asset change moves the position, reports nothing
    await state.append_park_log(PARKS[3], "event.received")
    assert await logs.changed(0.2) == set()
    await state.retire(PARKS[5], "hvac-1")

    async def retired_reported() -> bool:
        return await logs.changed(0.2) == {PARKS[5]}

    await eventually(retired_reported)
