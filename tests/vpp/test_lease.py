import asyncio

import redis.asyncio as aioredis

from vpp.lease import Lease


async def test_only_one_holder_and_owner_checked_release(
    redis_client: aioredis.Redis, namespace: str
) -> None:
    key = f"{namespace}:{{p1}}:lease:control"
    a = Lease(redis_client, key, ttl_s=5, owner="worker-a")
    b = Lease(redis_client, key, ttl_s=5, owner="worker-b")
    assert await a.acquire()
    assert not await b.acquire()
    assert await a.holder() == "worker-a"
    # b may not release or renew a's lease
    assert not await b.release()
    assert not await b.renew()
    assert await a.holder() == "worker-a"
    assert await a.release()
    assert await b.acquire()
    assert await b.holder() == "worker-b"


async def test_expired_lease_is_taken_over(redis_client: aioredis.Redis, namespace: str) -> None:
    key = f"{namespace}:{{p1}}:lease:control"
    a = Lease(redis_client, key, ttl_s=0.2, owner="worker-a")
    b = Lease(redis_client, key, ttl_s=5, owner="worker-b")
    assert await a.acquire()
    await asyncio.sleep(0.35)
    assert await b.acquire()
    # the stalled worker learns it lost the lease and cannot extend b's
    assert not await a.renew()
    assert await redis_client.pttl(key) > 1000


async def test_concurrent_acquire_has_one_winner(
    redis_client: aioredis.Redis, namespace: str
) -> None:
    key = f"{namespace}:{{p1}}:lease:control"
    leases = [Lease(redis_client, key, ttl_s=5, owner=f"w{i}") for i in range(20)]
    results = await asyncio.gather(*(lease.acquire() for lease in leases))
    assert sum(results) == 1
