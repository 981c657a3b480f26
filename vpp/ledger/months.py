"""Closed months of the ledger: when a month closes, its frozen snapshot, its recomputation.

A month closes ``close_after_days`` (setting ``[ledger] close_after_days``,
default 5: time for late meter imports and bills) after its end, the
park-local midnight that starts the next month (`closes_at`). The first time
a closed month is needed its ledger is computed and frozen: a
`MonthSnapshot` in the park's hash `vpp.keys.Keys.ledger_months`, field
``YYYY-MM``, msgpack of:

* ``rows``: the month's row of every enterprise, then the park's;
* ``factor``: the grid emission factor used, and ``table_version``;
* ``entries``: the monthly entries used, per enterprise, and
  ``fingerprints``: a digest of each (`fingerprint`), so a later change of
  the entries is seen (the rows are then ``pending_changes``);
* ``computed_at``.

The month's and the year's roll-ups of a closed month come from its
snapshot, so they never change when the park's factor or entries change;
only a recomputation on request (`MonthStore.replace`, through
`vpp.ledger.book.LedgerBook.recompute`) replaces it. Freezing is a
``HSETNX``: when two requests freeze the same month at once, the first
snapshot stays and both use it.

Metering data imported into days of a month (``PUT .../meters/{meter}/readings``)
after the month was frozen would otherwise be lost silently: the import
records the time in the park's hash `vpp.keys.Keys.ledger_stale` (field
``YYYY-MM``, `MonthStore.mark_stale`), and a snapshot computed before that
time is stale (`MonthStore.stale_marks`; its rows are ``pending_changes``)
until it is recomputed (`MonthStore.clear_stale`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from vpp.history.grid import day_start
from vpp.ledger.entries import MonthEntries, month_of
from vpp.ledger.rows import FactorInfo, LedgerRow
from vpp.state import State, pack, unpack

__all__ = [
    "MonthSnapshot",
    "MonthStore",
    "closes_at",
    "fingerprint",
    "is_closed",
    "month_span",
    "months_of",
    "next_month",
]


def next_month(first: date) -> date:
    """The first day of the month after the one starting ``first``."""
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def months_of(first: date, last: date) -> list[date]:
    """The first days of the months that ``first``..``last`` (inclusive) touch, in order."""
    months: list[date] = []
    month = first.replace(day=1)
    while month <= last:
        months.append(month)
        month = next_month(month)
    return months


def month_span(first: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The month's start and end: the park-local midnights of its first day and the next month's."""
    return day_start(first, tz), day_start(next_month(first), tz)


def closes_at(first: date, tz: ZoneInfo, close_after_days: int) -> datetime:
    """When the month starting ``first`` closes: its end + ``close_after_days``."""
    return month_span(first, tz)[1] + timedelta(days=close_after_days)


def is_closed(first: date, tz: ZoneInfo, now: datetime, close_after_days: int) -> bool:
    """Whether the month starting ``first`` is closed at ``now`` (aware)."""
    return now >= closes_at(first, tz, close_after_days)


def fingerprint(entries: MonthEntries | None) -> str:
    """A digest of an enterprise's entries of a month ("" when none were entered)."""
    if entries is None:
        return ""
    return hashlib.sha256(pack(entries.model_dump(mode="json"))).hexdigest()[:16]


class MonthSnapshot(BaseModel):
    """A closed month as frozen (see the module docstring).

    Attributes:
        month: ``YYYY-MM``.
        factor: the grid emission factor the rows used.
        table_version: `vpp.ledger.factors.TABLE_VERSION` when computed.
        computed_at: when it was computed.
        entries: enterprise -> the entries used.
        fingerprints: enterprise -> `fingerprint` of its entries then.
        rows: every enterprise's row (by id), then the park's.
    """

    model_config = ConfigDict(frozen=True)

    month: str
    factor: FactorInfo
    table_version: str
    computed_at: datetime
    entries: dict[str, MonthEntries]
    fingerprints: dict[str, str]
    rows: list[LedgerRow]

    @property
    def first(self) -> date:
        """The month's first day."""
        return date(int(self.month[:4]), int(self.month[5:7]), 1)


class MonthStore:
    """The frozen months of every park (`vpp.keys.Keys.ledger_months`).

    Args:
        state: the service's `vpp.state.State`.
    """

    def __init__(self, state: State) -> None:
        self.state = state

    async def get_many(self, park: str, months: Sequence[date]) -> dict[date, MonthSnapshot]:
        """The snapshots of those of ``months`` (first days) that are frozen.

        Raises:
            StateUnavailable: Redis did not answer.
        """
        key = self.state.park(park).ledger_months
        held = await self._fields(key, "ledger_months", months)
        return {m: MonthSnapshot.model_validate(unpack(raw)) for m, raw in held.items()}

    async def _fields(self, key: str, name: str, months: Sequence[date]) -> dict[date, bytes | str]:
        """The fields ``YYYY-MM`` of ``months`` that the hash ``key`` holds (one HMGET)."""
        if not months:
            return {}
        async with self.state.guard(name):
            raws = await self.state.redis.hmget(key, [month_of(m) for m in months])
        return {m: raw for m, raw in zip(months, raws, strict=True) if raw is not None}

    async def freeze(self, park: str, snapshot: MonthSnapshot) -> MonthSnapshot:
        """Store ``snapshot`` unless its month is frozen already.

        Returns:
            The month's snapshot as stored: ``snapshot``, or the one frozen first.
        """
        key = self.state.park(park).ledger_months
        async with self.state.guard("ledger_months"):
            if await self.state.redis.hsetnx(key, snapshot.month, _encode(snapshot)):
                return snapshot
            raw = await self.state.redis.hget(key, snapshot.month)
        return snapshot if raw is None else MonthSnapshot.model_validate(unpack(raw))

    async def stale_marks(self, park: str, months: Sequence[date]) -> dict[date, datetime]:
        """When metering data was last imported into each of ``months`` (those with an import).

        Raises:
            StateUnavailable: Redis did not answer.
        """
        held = await self._fields(self.state.park(park).ledger_stale, "ledger_stale", months)
        return {
            m: datetime.fromisoformat(raw.decode() if isinstance(raw, bytes) else raw)
            for m, raw in held.items()
        }

    async def mark_stale(self, park: str, months: Iterable[date], at: datetime) -> None:
        """Record that metering data was imported into days of ``months`` at ``at`` (aware).

        Marked for every month, frozen or not: the book only reads the mark of
        a frozen month, and only when it is later than the snapshot.
        """
        fields: dict[bytes | bytearray | memoryview | str | int | float, str] = {
            month_of(m): at.isoformat() for m in months
        }
        if not fields:
            return
        async with self.state.guard("ledger_stale"):
            await self.state.redis.hset(self.state.park(park).ledger_stale, mapping=fields)

    async def clear_stale(self, park: str, first: date, computed_at: datetime) -> None:
        """Drop the month's mark unless an import came after ``computed_at`` (a recomputation)."""
        key = self.state.park(park).ledger_stale
        marks = await self.stale_marks(park, [first])
        if first in marks and marks[first] <= computed_at:
            async with self.state.guard("ledger_stale"):
                await self.state.redis.hdel(key, month_of(first))

    async def replace(self, park: str, snapshot: MonthSnapshot) -> MonthSnapshot | None:
        """Store ``snapshot`` over its month's (a recomputation).

        Returns:
            The snapshot it replaced (None: the month was not frozen).
        """
        key = self.state.park(park).ledger_months
        async with (
            self.state.guard("ledger_months"),
            self.state.transaction(key) as pipe,
        ):
            _ = pipe.hget(key, snapshot.month)
            _ = pipe.hset(key, snapshot.month, _encode(snapshot))
            old, _ = await pipe.execute()
        return None if old is None else MonthSnapshot.model_validate(unpack(old))


def _encode(snapshot: MonthSnapshot) -> bytes:
    return pack(snapshot.model_dump(mode="json"))
