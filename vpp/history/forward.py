"""The park readings stream: readings taken by a replica that does not record the park.

``Keys.readings`` is one stream per park (the park's hash tag: one cluster
slot). Each entry is one batch, the field ``b`` holding msgpack of
``[[series id, LiveState as JSON], ...]``; appends trim the stream to about
`READINGS_MAXLEN` entries. The holder of the park's history lease reads it
through the consumer group `GROUP` (created at the stream's start, so nothing
appended before the first holder looked is missed), one stream per
``XREADGROUP`` (a multi-key read would span slots), and acknowledges the
entries once a write of its own has stored them. A new holder first claims
the entries an earlier holder read but never acknowledged (``XAUTOCLAIM``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from redis import exceptions as redis_errors

from vpp.model import LiveState
from vpp.state import State, pack, unpack

__all__ = ["GROUP", "READINGS_MAXLEN", "ReadingsStream"]

log = logging.getLogger("vpp.history")

#: The consumer group of the history lease holders.
GROUP = "history"
#: Approximate length each park's readings stream is trimmed to (batches).
READINGS_MAXLEN = 10_000
#: Entries one read takes at most; a read loop stops after `_MAX_ROUNDS` of them.
_COUNT = 500
_MAX_ROUNDS = 20

#: One stream entry: its id and its readings (series id, reading).
Entry = tuple[bytes | str, list[tuple[str, LiveState]]]


def _decode(fields: dict[bytes, bytes] | None) -> list[tuple[str, LiveState]]:
    raw = (fields or {}).get(b"b")
    if raw is None:
        return []
    out = []
    for series, data in unpack(raw):
        try:
            out.append((str(series), LiveState.model_validate(data)))
        except ValueError as exc:  # one bad reading never stops the others
            log.warning("forwarded reading of %s not taken: %s", series, exc)
    return out


class ReadingsStream:
    """Appends to and reads the parks' readings streams.

    Args:
        state: the Redis repository (its client and key names).
        maxlen: approximate length each stream is trimmed to.

    Every method raises `vpp.errors.StateError` when Redis fails.
    """

    def __init__(self, state: State, *, maxlen: int = READINGS_MAXLEN) -> None:
        self._state = state
        self.maxlen = maxlen
        self._groups: set[str] = set()

    async def append(self, park: str, readings: Sequence[tuple[str, LiveState]]) -> None:
        """Append one batch of a park's readings (one XADD)."""
        batch = [[series, live.model_dump(mode="json")] for series, live in readings]
        async with self._state.guard("forward_readings"):
            await self._state.redis.xadd(
                self._state.park(park).readings,
                {"b": pack(batch)},
                maxlen=self.maxlen,
                approximate=True,
            )

    @asynccontextmanager
    async def _grouped(self, key: str) -> AsyncIterator[None]:
        """Make sure the group exists before the block (once per key, again if it went)."""
        if key not in self._groups:
            try:
                await self._state.redis.xgroup_create(key, GROUP, id="0", mkstream=True)
            except redis_errors.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._groups.add(key)
        try:
            yield
        except redis_errors.ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream was deleted: create it again next time
                self._groups.discard(key)
            raise

    async def read(self, park: str, consumer: str) -> list[Entry]:
        """The entries no holder has read yet (non-blocking), delivered to ``consumer``."""
        key = self._state.park(park).readings
        entries: list[Entry] = []
        async with self._state.guard("read_forwarded"), self._grouped(key):
            for _ in range(_MAX_ROUNDS):
                rows: Any = await self._state.redis.xreadgroup(
                    GROUP, consumer, {key: ">"}, count=_COUNT
                )
                got = [
                    (entry_id, _decode(fields))
                    for _, batch in (rows.items() if isinstance(rows, dict) else rows or [])
                    for entry_id, fields in batch
                ]
                entries += got
                if len(got) < _COUNT:
                    break
        return entries

    async def claim(self, park: str, consumer: str) -> list[Entry]:
        """Take over the entries an earlier holder read but never acknowledged."""
        key = self._state.park(park).readings
        entries: list[Entry] = []
        start: bytes | str = "0-0"
        async with self._state.guard("read_forwarded"), self._grouped(key):
            for _ in range(_MAX_ROUNDS):
                answer: Any = await self._state.redis.xautoclaim(
                    key, GROUP, consumer, min_idle_time=0, start_id=start, count=_COUNT
                )
                start, claimed = answer[0], answer[1]
                entries += [(entry_id, _decode(fields)) for entry_id, fields in claimed if fields]
                if start in (b"0-0", "0-0"):
                    break
        return entries

    async def ack(self, park: str, entry_ids: Sequence[bytes | str]) -> None:
        """Acknowledge entries whose readings a write has stored (one XACK)."""
        if not entry_ids:
            return
        async with self._state.guard("ack_forwarded"):
            await self._state.redis.xack(self._state.park(park).readings, GROUP, *entry_ids)
