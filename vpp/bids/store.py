"""Bids in Redis: one durable msgpack record per bid, indexed per park by creation time."""

from __future__ import annotations

import time

from vpp.bids.model import BidRecord
from vpp.state import State, pack

__all__ = ["BidStore"]


class BidStore:
    """Bids of every park in Redis (durable, msgpack)."""

    def __init__(self, state: State) -> None:
        self.state = state

    async def put(self, bid: BidRecord) -> None:
        """Store a bid (the same id replaces the older one)."""
        keys = self.state.park(bid.park)
        async with self.state.guard("bid_put"):
            await self.state.redis.set(keys.bid(bid.id), pack(bid.to_json()))
            await self.state.redis.zadd(keys.bids, {bid.id: time.time()})

    async def get(self, park: str, bid_id: str) -> BidRecord:
        """A stored bid; raise `NotFound` when there is none."""
        key = self.state.park(park).bid(bid_id)
        return BidRecord.model_validate(
            await self.state.get_packed(key, operation="bid_get", kind="bid", ident=bid_id)
        )
