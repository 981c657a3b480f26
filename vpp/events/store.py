"""Dispatch events in Redis: idempotent create, optimistic updates, the park log.

Events are durable records (``{ns}:{park}:event:{id}``, msgpack) indexed by
start time in a sorted set. The API and the control loop both change an
event (the API modifies or cancels it, the loop moves its state and fills in
what was delivered), so every change is a read-modify-write under ``WATCH``
that retries when the other side wrote in between. Every state change is
appended to the park log.

The control loop runs one event of a park at a time, so a create, or an
extension, whose window overlaps another open event (received, scheduled or
active) is refused with `vpp.events.model.EventOverlap`. The check and the write
are one transaction: it watches the park's index and every event that could
reach into the window, so two overlapping creates (or a create and an
extension) racing each other cannot both pass; the loser retries and is
refused. A create writes the record and its index entry in one ``MULTI``: a
create cut short (a cancelled task, a lost connection) never leaves an event
that the index does not list.

Each device's baseline of an active event is kept beside its record
(`EventStore.put_series_baselines`, `vpp.events.model.SeriesBaselines`): the
report's rebound window needs it, the control loop's every-cycle update of
the record does not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from redis import exceptions as redis_errors
from redis.asyncio.client import Pipeline

from vpp.errors import Conflict, NotFound
from vpp.events.model import (
    EventOverlap,
    EventRecord,
    EventRequest,
    EventState,
    SeriesBaselines,
    first_overlap,
)
from vpp.keys import Keys
from vpp.state import State, pack, unpack

__all__ = ["EventStore"]

log = logging.getLogger("vpp.events.store")

_RETRIES = 20


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class EventStore:
    """The events of every park, on top of the service's `State`.

    Args:
        state: the Redis state repository.
    """

    def __init__(self, state: State) -> None:
        self.state = state

    async def create(
        self, park: str, request: EventRequest, now: datetime
    ) -> tuple[EventRecord, bool]:
        """Store a new event, or return the stored one for a repeated create.

        Returns:
            The record and whether it was created now (False for a repeat).

        Raises:
            Conflict: the id is taken by an event with other content, or the
                park's events kept changing for `_RETRIES` attempts.
            EventOverlap: (a `Conflict`) the window overlaps another open event
                of the park; nothing is stored.
        """
        record = EventRecord.new(park, request, now)
        keys = self.state.park(park)
        key = keys.event(record.id)
        for _ in range(_RETRIES):
            async with (
                self.state.guard("event_create"),
                self.state.transaction(key) as pipe,
            ):
                try:
                    await pipe.watch(key, keys.events)
                    raw = await pipe.get(key)
                    if raw is None:
                        others = await self._neighbours(pipe, keys, record)
                        other = first_overlap(record.id, record.start, record.end, others)
                        if other is not None:
                            raise EventOverlap("start", other)
                        pipe.multi()  # type: ignore[no-untyped-call]
                        _ = pipe.set(key, pack(record.to_json()))
                        _ = pipe.zadd(keys.events, {record.id: record.start.timestamp()})
                        await pipe.execute()
                except redis_errors.WatchError:
                    continue
            if raw is not None:
                # A repeat: answered as stored, even if it now overlaps something.
                stored = EventRecord.model_validate(unpack(raw))
                if stored.fingerprint != record.fingerprint:
                    raise Conflict(f"event {record.id!r} exists with other content")
                return stored, False
            await self._log(record, "received")
            return record, True
        raise Conflict(f"the events of park {park!r} kept changing; try again")

    async def _neighbours(
        self, pipe: Pipeline, keys: Keys, record: EventRecord
    ) -> list[EventRecord]:
        """Watch and read the open events that could overlap ``record``'s window.

        ``pipe`` is watching (immediate mode) and already watches the index,
        so an event created meanwhile fails the transaction. Every event that
        starts before the window ends is a candidate (no lookback bound: the
        OpenADR bridge rolls an open-ended event forward, so an event can
        start any time before); the open ones are watched, then read again,
        so a change to one of them (an extension) fails the transaction too.
        An event that is over never changes again, so it needs no watch.
        """
        ids = await pipe.zrangebyscore(keys.events, "-inf", record.end.timestamp())
        names = [keys.event(_text(i)) for i in ids if _text(i) != record.id]
        if not names:
            return []
        first = [EventRecord.model_validate(unpack(r)) for r in await pipe.mget(names) if r]
        names = [keys.event(r.id) for r in first if not r.terminal]
        if not names:
            return []
        await pipe.watch(*names)
        raws = await pipe.mget(names)
        return [EventRecord.model_validate(unpack(r)) for r in raws if r is not None]

    async def get(self, park: str, event_id: str) -> EventRecord:
        """The stored event; raise `NotFound` when there is none."""
        key = self.state.park(park).event(event_id)
        return EventRecord.model_validate(
            await self.state.get_packed(key, operation="event_get", kind="event", ident=event_id)
        )

    async def recent(self, park: str, *, limit: int = 100) -> list[EventRecord]:
        """The park's most recent events by start time, newest first."""
        keys = self.state.park(park)
        async with self.state.guard("event_list"):
            ids = await self.state.redis.zrevrange(keys.events, 0, max(0, limit - 1))
            raws = await self.state.redis.mget([keys.event(_text(i)) for i in ids]) if ids else []
        return [EventRecord.model_validate(unpack(r)) for r in raws if r is not None]

    async def open_events(self, park: str) -> list[EventRecord]:
        """Events that are not over yet (received, scheduled or active), by start."""
        keys = self.state.park(park)
        async with self.state.guard("event_list"):
            ids = await self.state.redis.zrange(keys.events, 0, -1)
            raws = await self.state.redis.mget([keys.event(_text(i)) for i in ids]) if ids else []
        records = [EventRecord.model_validate(unpack(r)) for r in raws if r is not None]
        return [r for r in records if not r.terminal]

    async def starting_between(self, park: str, lo: datetime, hi: datetime) -> list[EventRecord]:
        """The park's events whose start is in ``[lo, hi)``, any state, by start."""
        keys = self.state.park(park)
        async with self.state.guard("event_list"):
            ids = await self.state.redis.zrangebyscore(
                keys.events, lo.timestamp(), f"({hi.timestamp()}"
            )
            raws = await self.state.redis.mget([keys.event(_text(i)) for i in ids]) if ids else []
        return [EventRecord.model_validate(unpack(r)) for r in raws if r is not None]

    async def update(
        self, park: str, event_id: str, change: Callable[[EventRecord], None]
    ) -> EventRecord:
        """Apply ``change`` to the stored event atomically and store the result.

        ``change`` mutates the record it is given (it may raise to abort, e.g.
        `vpp.events.model.IllegalTransition`); it can run more than once when another
        writer got in between, so it must not have other side effects.
        """
        key = self.state.park(park).event(event_id)
        for _ in range(_RETRIES):
            async with (
                self.state.guard("event_update"),
                self.state.transaction(key) as pipe,
            ):
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        raise NotFound("event", event_id)
                    record = EventRecord.model_validate(unpack(raw))
                    before = record.state
                    change(record)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    _ = pipe.set(key, pack(record.to_json()))
                    await pipe.execute()
                except redis_errors.WatchError:
                    continue
            if record.state != before:
                await self._log(record, record.state.value)
            return record
        raise Conflict(f"event {event_id!r} kept changing; try again")

    async def put_series_baselines(
        self, park: str, event_id: str, baselines: SeriesBaselines
    ) -> None:
        """Store each device's baseline of the event (`SeriesBaselines`), replacing it."""
        async with self.state.guard("event_rebound"):
            key = self.state.park(park).event_rebound(event_id)
            await self.state.redis.set(key, pack(baselines.model_dump(mode="json")))

    async def series_baselines(self, park: str, event_id: str) -> SeriesBaselines | None:
        """Each device's baseline of the event, or None (none stored)."""
        async with self.state.guard("event_rebound"):
            raw = await self.state.redis.get(self.state.park(park).event_rebound(event_id))
        return None if raw is None else SeriesBaselines.model_validate(unpack(raw))

    async def resize(
        self, park: str, event_id: str, magnitudes: Sequence[float], now: datetime
    ) -> EventRecord:
        """Extend, shorten or retarget an event in place (see `EventRecord.resize`).

        An extension must not run into another open event of the park
        (received, scheduled or active: the control loop runs one event at a
        time); the check and the write are one transaction. The estimate of
        what the park expects to deliver (``expected``) described the old
        targets, so it is cleared; the API recomputes it.

        Raises:
            NotFound: no such event.
            IllegalTransition: the event is over.
            EventOverlap: (an `IllegalTransition`) the extension overlaps another event.
            Conflict: the park's events kept changing for `_RETRIES` attempts.
        """
        keys = self.state.park(park)
        key = keys.event(event_id)
        for _ in range(_RETRIES):
            async with (
                self.state.guard("event_update"),
                self.state.transaction(key) as pipe,
            ):
                try:
                    await pipe.watch(key, keys.events)
                    raw = await pipe.get(key)
                    if raw is None:
                        raise NotFound("event", event_id)
                    record = EventRecord.model_validate(unpack(raw))
                    old_end = record.end
                    record.resize(magnitudes, now)
                    record.expected = None
                    if record.end > old_end:
                        # only the added time can run into another event
                        others = await self._neighbours(pipe, keys, record)
                        other = first_overlap(event_id, old_end, record.end, others)
                        if other is not None:
                            raise EventOverlap("targets_kw", other)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    _ = pipe.set(key, pack(record.to_json()))
                    await pipe.execute()
                except redis_errors.WatchError:
                    continue
            return record
        raise Conflict(f"event {event_id!r} kept changing; try again")

    async def transition(
        self, park: str, event_id: str, to: EventState, now: datetime, reason: str | None = None
    ) -> EventRecord:
        """Move an event to state ``to`` (see `EventRecord.transition`)."""
        return await self.update(park, event_id, lambda r: r.transition(to, now, reason))

    async def _log(self, record: EventRecord, what: str) -> None:
        fields: dict[str, str | int | float] = {"event_id": record.id, "state": what}
        if record.reason:
            fields["reason"] = record.reason
        await self.state.append_park_log(record.park, f"event.{what}", **fields)
        log.info("park %s event %s: %s", record.park, record.id, what)
