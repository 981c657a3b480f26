"""Dispatch events in Redis: idempotent create, optimistic updates, the log.

Events are durable records (``{ns}:{park}:event:{id}``, msgpack) indexed by
start time in a sorted set. The API and the control loop both change an
event (the API modifies or cancels it, the loop moves its state and fills in
what was delivered), so every change is a read-modify-write under ``WATCH``
that retries when the other side wrote in between. Every state change is
appended to the park's log stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from redis import exceptions as redis_errors

from vpp.errors import Conflict, NotFound
from vpp.events import EventRecord, EventRequest, EventState, IllegalTransition
from vpp.state import State, pack, unpack

__all__ = ["EventStore"]

log = logging.getLogger("vpp.event_store")

_RETRIES = 20

# KEYS: event, index. ARGV: id, payload, score (start, UNIX s).
# Record and index in one step: a create cut short (a cancelled task, a lost
# connection) must never leave an event that the park's index does not list.
_CREATE = """
if redis.call('SET', KEYS[1], ARGV[2], 'NX') then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  return 1
end
return 0
"""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class EventStore:
    """The events of every park, on top of the service's `State`.

    Args:
        state: the Redis state repository.
    """

    def __init__(self, state: State) -> None:
        self.state = state
        self._create = state.redis.register_script(_CREATE)

    async def create(
        self, park: str, request: EventRequest, now: datetime
    ) -> tuple[EventRecord, bool]:
        """Store a new event, or return the stored one for a repeated create.

        Returns:
            The record and whether it was created now (False for a repeat).

        Raises:
            Conflict: the id is taken by an event with other content.
        """
        record = EventRecord.new(park, request, now)
        keys = self.state.park(park)
        async with self.state.guard("event_create"):
            created = await self._create(
                keys=[keys.event(record.id), keys.events],
                args=[record.id, pack(record.to_json()), record.start.timestamp()],
            )
        if not created:
            stored = await self.get(park, record.id)
            if stored.fingerprint != record.fingerprint:
                raise Conflict(f"event {record.id!r} exists with other content")
            return stored, False
        await self._log(record, "received")
        return record, True

    async def get(self, park: str, event_id: str) -> EventRecord:
        """The stored event; raise `NotFound` when there is none."""
        async with self.state.guard("event_get"):
            raw = await self.state.redis.get(self.state.park(park).event(event_id))
        if raw is None:
            raise NotFound("event", event_id)
        return EventRecord.model_validate(unpack(raw))

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

    async def update(
        self, park: str, event_id: str, change: Callable[[EventRecord], None]
    ) -> EventRecord:
        """Apply ``change`` to the stored event atomically and store the result.

        ``change`` mutates the record it is given (it may raise to abort, e.g.
        `vpp.events.IllegalTransition`); it can run more than once when another
        writer got in between, so it must not have other side effects.
        """
        key = self.state.park(park).event(event_id)
        for _ in range(_RETRIES):
            async with self.state.guard("event_update"), self.state.redis.pipeline() as pipe:
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

    async def resize(
        self, park: str, event_id: str, magnitudes: Sequence[float], now: datetime
    ) -> EventRecord:
        """Extend, shorten or retarget an event in place (see `EventRecord.resize`).

        An extension must not run into another scheduled or active event of
        the park (the control loop runs one event at a time).

        Raises:
            NotFound: no such event.
            IllegalTransition: the event is over, or the extension overlaps another event.
        """
        current = await self.get(park, event_id)
        probe = current.model_copy(deep=True)
        probe.resize(magnitudes, now)
        if probe.end > current.end:
            for other in await self.open_events(park):
                busy = other.state in (EventState.SCHEDULED, EventState.ACTIVE)
                if other.id == event_id or not busy:
                    continue
                if other.start < probe.end and current.start < other.end:
                    raise IllegalTransition.single(
                        "targets_kw",
                        f"the event would run into event {other.id}, which is "
                        f"{other.state.value} from {other.start.isoformat()}",
                    )
        return await self.update(park, event_id, lambda r: r.resize(magnitudes, now))

    async def transition(
        self, park: str, event_id: str, to: EventState, now: datetime, reason: str | None = None
    ) -> EventRecord:
        """Move an event to state ``to`` (see `EventRecord.transition`)."""
        return await self.update(park, event_id, lambda r: r.transition(to, now, reason))

    async def _log(self, record: EventRecord, what: str) -> None:
        fields: dict[str, str | int | float] = {"event_id": record.id, "state": what}
        if record.reason:
            fields["reason"] = record.reason
        await self.state.append_log(record.park, f"event.{what}", **fields)
        log.info("park %s event %s: %s", record.park, record.id, what)
