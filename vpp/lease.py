"""A lease in Redis so that exactly one worker runs a park's control loop.

The lease is a key holding the owner's random id with a time-to-live. The
owner renews it well before it expires; a renewal or release only touches the
key while it still holds the owner's id (a compare-and-set in Lua), so a
worker that stalled past its lease can never delete or extend a lease that
another worker has taken since.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, cast

from vpp.redis_client import RedisClient

__all__ = ["Lease"]

log = logging.getLogger("vpp.lease")

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """An expiring, owner-checked lock on one key.

    Args:
        redis: the client (one Redis or a Redis Cluster: the scripts touch ``key`` only).
        key: the lease key (park-scoped, so it lives on the park's shard).
        ttl_s: how long the lease lasts without renewal.
        owner: this worker's id; random when not given.
    """

    def __init__(
        self, redis: RedisClient, key: str, *, ttl_s: float, owner: str | None = None
    ) -> None:
        self._redis = redis
        self.key = key
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.owner = owner or secrets.token_hex(8)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it (or renew it if we do); return whether we hold it."""
        if await self._redis.set(self.key, self.owner, nx=True, px=self.ttl_ms):
            log.info("lease %s taken by %s", self.key, self.owner)
            return True
        return await self.renew()

    async def renew(self) -> bool:
        """Extend the lease if we still hold it; return whether we do."""
        result = await cast(Any, self._renew(keys=[self.key], args=[self.owner, self.ttl_ms]))
        return bool(result)

    async def release(self) -> bool:
        """Give the lease up if we hold it; return whether we did."""
        result = await cast(Any, self._release(keys=[self.key], args=[self.owner]))
        return bool(result)

    async def holder(self) -> str | None:
        """Return the current holder's id, or None when the lease is free."""
        value = await self._redis.get(self.key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)
