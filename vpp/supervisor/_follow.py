"""Following the park logs for enrollments, patches and retirements."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from redis.crc import key_slot

from vpp.redis_client import is_cluster
from vpp.state import State

__all__ = ["ASSET_EVENTS", "ParkLogs"]

#: Log events that change a park's enrolled assets (written by ``State``).
ASSET_EVENTS = frozenset({b"asset.enrolled", b"asset.patched", b"asset.retired"})


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ParkLogs:
    """A position in each followed park log and a blocking read over all of them.

    ``XREAD ... $`` would miss what is appended between two reads, so each
    park starts from its park log's last id, taken *before* its assets are read.

    On a Redis Cluster one XREAD may only name keys of one slot, so the logs
    are read by slot: one blocking XREAD per slot, all at once, and the first
    to answer ends the wait (the others are cancelled; what they would have
    read is read next time, from the same positions).

    Args:
        state: the repository whose park logs are read.
    """

    def __init__(self, state: State) -> None:
        self._state = state
        self._tails: dict[str, str] = {}

    def __contains__(self, park: object) -> bool:
        return park in self._tails

    async def follow(self, park: str) -> None:
        """Start following ``park`` from its park log's end (no-op if followed already)."""
        if park in self._tails:
            return
        async with self._state.guard("xrevrange"):
            rows: Any = await self._state.redis.xrevrange(self._state.park(park).park_log, count=1)
        self._tails[park] = _text(rows[0][0]) if rows else "0-0"

    def forget(self, parks: Iterable[str]) -> None:
        """Stop following ``parks``."""
        for park in parks:
            self._tails.pop(park, None)

    async def changed(self, block_s: float) -> set[str]:
        """Wait up to ``block_s`` for log entries; return the parks whose assets changed.

        Raises:
            StateError: Redis failed.
        """
        if not self._tails:
            await asyncio.sleep(block_s)
            return set()
        keys = {self._state.park(p).park_log: p for p in self._tails}
        groups = self._by_slot(keys)
        block_ms = max(1, int(block_s * 1000))
        async with self._state.guard("xread"):
            if len(groups) == 1:
                answer = await self._read(groups[0], block_ms)
            else:
                answer = await self._first(groups, block_ms)
        changed: set[str] = set()
        for stream, entries in answer:
            park = keys.get(_text(stream))
            if park is None:
                continue
            for entry_id, fields in entries:
                self._tails[park] = _text(entry_id)
                if fields.get(b"event") in ASSET_EVENTS:
                    changed.add(park)
        return changed

    def _by_slot(self, keys: dict[str, str]) -> list[dict[str, str]]:
        """Stream key -> position, grouped as one XREAD may name them (by slot on a cluster)."""
        streams = {key: self._tails[park] for key, park in keys.items()}
        if not is_cluster(self._state.redis):
            return [streams]
        groups: dict[int, dict[str, str]] = {}
        for key, position in streams.items():
            groups.setdefault(key_slot(key.encode()), {})[key] = position
        return list(groups.values())

    async def _read(self, streams: dict[str, str], block_ms: int) -> list[Any]:
        answer: Any = await self._state.redis.xread(
            streams,  # type: ignore[arg-type]
            count=1000,
            block=block_ms,
        )
        return list(answer or [])

    async def _first(self, groups: list[dict[str, str]], block_ms: int) -> list[Any]:
        """One blocking XREAD per group at once; the answers of those done when the first is."""
        tasks = [asyncio.ensure_future(self._read(group, block_ms)) for group in groups]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        answer: list[Any] = []
        for task in done:
            answer.extend(task.result())
        return answer
