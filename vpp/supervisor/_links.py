"""Which replica holds each charger's websocket: the park's ``ocpp_connected`` hash.

A charger connects to whichever replica a load balancer picks. That replica
writes ``HSET Keys.ocpp_connected {charge point id} {replica id}`` when the
charger connects and removes the field when it disconnects, but only while
the field still names it (a Lua compare-and-delete on that one key: the
charger may already have reconnected to another replica, which wrote its own
id). Every replica also re-asserts its connected chargers every
``refresh_s`` (`ChargerLinks.refresh`), which repairs a write lost to a Redis
failover and removes fields naming it for chargers it no longer holds.

An entry is trusted only while the replica it names is live: its score in
``GlobalKeys.replicas`` (heartbeat expiry, epoch ms, written by
`vpp.replicas`) lies in the future. A field naming a replica that is not live
(crashed, or never heartbeating) reads as "not connected" and is removed,
compare-and-delete again, so a charger that reconnected meanwhile keeps its
new entry.

Every command touches one key (a park's hash, or the replica set), so all of
it works on a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from adapters.lifecycle import BackgroundService
from vpp.errors import StateError
from vpp.state import State

__all__ = ["REFRESH_S", "ChargerLinks", "LinkKeeper"]

log = logging.getLogger("vpp.supervisor")

#: Seconds between two re-assertions of a replica's charger entries.
REFRESH_S = 10.0
#: Seconds leaving may take to remove the entries of the chargers that dropped.
_DRAIN_S = 2.0

# KEYS: the park's ocpp_connected hash. ARGV: charge point id, replica id.
_FORGET = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ChargerLinks:
    """The charger connection map of every park, as one replica reads and writes it.

    Args:
        state: the Redis repository (its client and key names).
        replica_id: this replica's id (the value written for its chargers).

    Every method raises `vpp.errors.StateError` when Redis fails.
    """

    def __init__(self, state: State, replica_id: str) -> None:
        self._state = state
        self.replica_id = replica_id
        self._forget = state.redis.register_script(_FORGET)

    async def connected(self, park: str, cp_ids: Iterable[str]) -> None:
        """Record that charge points of ``park`` are connected here (one HSET)."""
        mapping: dict[bytes | bytearray | memoryview | str | int | float, str]
        mapping = dict.fromkeys(cp_ids, self.replica_id)
        if not mapping:
            return
        key = self._state.park(park).ocpp_connected
        async with self._state.guard("ocpp_links"):
            await cast(Any, self._state.redis.hset(key, mapping=mapping))

    async def disconnected(self, park: str, cp_id: str, replica_id: str | None = None) -> bool:
        """Remove a charger's entry if it still names ``replica_id`` (default: this replica).

        Returns:
            Whether the entry was removed.
        """
        key = self._state.park(park).ocpp_connected
        owner = self.replica_id if replica_id is None else replica_id
        async with self._state.guard("ocpp_links"):
            removed = await cast(Any, self._forget(keys=[key], args=[cp_id, owner]))
        return bool(removed)

    async def holder(self, park: str, cp_id: str) -> str | None:
        """The live replica holding the websocket of ``cp_id`` (None: no live one does).

        This replica's own id is returned without a liveness check. A field
        naming a replica whose heartbeat ran out is removed on the way.
        """
        state = self._state
        async with state.guard("ocpp_links"):
            raw = await cast(Any, state.redis.hget(state.park(park).ocpp_connected, cp_id))
        if raw is None:
            return None
        owner = _text(raw)
        if owner == self.replica_id or await self.live(owner):
            return owner
        log.info("charge point %s/%s: its replica %s is not live", park, cp_id, owner)
        await self.disconnected(park, cp_id, owner)
        return None

    async def live(self, replica_id: str) -> bool:
        """Whether ``replica_id``'s heartbeat in ``GlobalKeys.replicas`` has not expired."""
        async with self._state.guard("ocpp_links"):
            score = await self._state.redis.zscore(self._state.keys.replicas, replica_id)
        return score is not None and score > time.time() * 1000.0

    async def refresh(self, held: Mapping[str, Iterable[str]]) -> None:
        """Bring this replica's entries in line with the chargers it holds now.

        Args:
            held: park -> charge points of that park connected here now, for
                every park whose chargers this listener serves (a park with
                none connected still clears its stale entries).
        """
        state = self._state
        for park, cp_ids in held.items():
            here = set(cp_ids)
            await self.connected(park, here)
            async with state.guard("ocpp_links"):
                entries = await cast(Any, state.redis.hgetall(state.park(park).ocpp_connected))
            for raw_cp, raw_owner in (entries or {}).items():
                cp_id = _text(raw_cp)
                if _text(raw_owner) == self.replica_id and cp_id not in here:
                    await self.disconnected(park, cp_id)


class LinkKeeper(BackgroundService):
    """Writes the connect and disconnect of this listener's chargers, in order, and refreshes.

    Use as ``async with LinkKeeper(...) as keeper:`` and hand `note` to the
    OCPP adapter as its ``on_link`` hook. The work (task ``ocpp-links``)
    writes each noted change in the order it happened (a charger that drops
    and reconnects at once ends connected) and calls `ChargerLinks.refresh`
    every ``refresh_s`` and after a failed write; leaving writes the changes
    still waiting (for ``_DRAIN_S`` at most), so a replica that stops cleanly
    leaves no entry naming it.

    Args:
        links: the connection map.
        park_of: the park a charge point is enrolled in (None: not enrolled).
        held: park -> charge points connected here now, for every park with chargers.
        refresh_s: seconds between refreshes.
    """

    _task_name = "ocpp-links"

    def __init__(
        self,
        links: ChargerLinks,
        park_of: Callable[[str], str | None],
        held: Callable[[], Mapping[str, Iterable[str]]],
        *,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self.links = links
        self._park_of = park_of
        self._held = held
        self.refresh_s = refresh_s
        self._changes: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        #: the change being written (written again on leaving if cut short)
        self._writing: tuple[str, bool] | None = None

    def note(self, cp_id: str, connected: bool) -> None:
        """Take a charger's connect or disconnect (the adapter's ``on_link`` hook)."""
        self._changes.put_nowait((cp_id, connected))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_refresh = loop.time()
        while not self._closing:
            if loop.time() >= next_refresh:
                try:
                    await self.links.refresh(self._held())
                    next_refresh = loop.time() + self.refresh_s
                except StateError as exc:
                    log.warning("charger connections not refreshed: %s", exc)
                    next_refresh = loop.time() + min(self.refresh_s, 1.0)
            try:
                async with asyncio.timeout(max(0.0, next_refresh - loop.time())):
                    change = await self._changes.get()
            except TimeoutError:
                continue
            self._writing = change
            if not await self._write(*change):
                next_refresh = loop.time()  # the refresh repairs it
            self._writing = None

    async def _write(self, cp_id: str, connected: bool) -> bool:
        park = self._park_of(cp_id)
        if park is None:
            return True
        try:
            if connected:
                await self.links.connected(park, [cp_id])
            else:
                await self.links.disconnected(park, cp_id)
        except StateError as exc:
            log.warning("charge point %s/%s: connection not recorded: %s", park, cp_id, exc)
            return False
        return True

    async def _close(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_DRAIN_S):
                if self._writing is not None:  # each write may be repeated
                    await self._write(*self._writing)
                while not self._changes.empty():
                    await self._write(*self._changes.get_nowait())
