"""Following the park logs for enrollments, patches and retirements."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

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
        streams = {key: self._tails[park] for key, park in keys.items()}
        async with self._state.guard("xread"):
            answer: Any = await self._state.redis.xread(
                streams,  # type: ignore[arg-type]
                count=1000,
                block=max(1, int(block_s * 1000)),
            )
        changed: set[str] = set()
        for stream, entries in answer or []:
            park = keys.get(_text(stream))
            if park is None:
                continue
            for entry_id, fields in entries:
                self._tails[park] = _text(entry_id)
                if fields.get(b"event") in ASSET_EVENTS:
                    changed.add(park)
        return changed
