"""The park's energy-carbon ledger: rows per enterprise and park, closed months, indicators.

`LedgerBook.ledger` answers ``GET /v1/parks/{park}/ledger``: for the park-local
days ``first``..``last`` and a roll-up (``interval``: 15 minutes, ``day``,
``month``, ``year``), one row per enterprise and period, then the park's row
per period (the sum of its enterprises: each has its own grid account, so
the park's import is the sum of theirs), each with its energy balance
(`vpp.ledger.balance`), tce, tCO2 and shares (`vpp.ledger.carbon`); the
park's zero-carbon indicators (`vpp.ledger.indicators`); every grid factor
and carrier coefficient used, with its source; and notes on what the figures
do not hold.

How a row is computed:

* a period inside an open month is computed from the interval history with
  the park's grid factor now (``Park.carbon``) and the month's entries
  (spread by hours over a period shorter than its month);
* a closed month (`vpp.ledger.months`) is frozen the first time it is
  needed and holds data (a month without any metering coverage or entries is
  computed each time instead, so data imported late is not frozen out; data
  imported into a frozen month makes its rows ``pending_changes``); its
  month row, and its part of a year row, come from the snapshot (a change
  of the park's factor or of the entries does not move them; rows whose
  entries changed since are ``pending_changes``); its day and interval rows
  are computed from the history with the month's frozen factor and
  entries; `LedgerBook.recompute` refreezes it on request, logged in the park
  log as ``ledger.recomputed``;
* a year row is the sum of its months' rows (a month only partly in the
  requested days is computed from the history for those days).

Indicators (park only, for ``month`` and ``year`` roll-ups without an
``enterprise``): for each whole month in the range that has ended, the month
and the rolling year of the 12 months ending with it (months before the range
are computed, or read from their snapshots, for it).

The history is read in bulk (`vpp.history.store.HistoryStore.read_arrays`):
one read of every needed series per month touched (the month's days, or only
the requested ones), never per day; days past the history's retention or
after ``now`` are not read (they hold no data).

Errors: `vpp.errors.NotFound` (no such park), `vpp.errors.InvalidInput`
naming ``period``, ``to`` (a range ending before it starts, or longer than
the roll-up allows: 31 days of intervals, 366 of days, ten years of months
or years), ``enterprise`` (not one of the park's) or ``month``;
`vpp.errors.Conflict` to recompute a month that is not closed; Redis
failures as `vpp.state.State.guard`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import get_args
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from vpp.errors import Conflict, FieldError, InvalidInput
from vpp.history.grid import INTERVAL_S, SLOTS_PER_DAY, day_start, slot_start
from vpp.history.store import HistoryStore
from vpp.ledger.balance import FLOWS, BalancePlan, EnterpriseScope, balance, plan_balance
from vpp.ledger.carbon import Figures, account, factor_of, figures_of, to_rows
from vpp.ledger.entries import EntryStore, MonthEntries, month_of, parse_month
from vpp.ledger.factors import (
    CARRIERS,
    ELECTRICITY_FACTORS,
    TABLE_VERSION,
    ElectricityFactor,
    electricity_factor_of,
)
from vpp.ledger.indicators import WindowTotals, indicator
from vpp.ledger.months import (
    MonthSnapshot,
    MonthStore,
    closes_at,
    fingerprint,
    is_closed,
    month_span,
    months_of,
    next_month,
)
from vpp.ledger.rows import CarrierInfo, FactorInfo, Indicator, Ledger, LedgerPeriod, LedgerRow
from vpp.model import Park, utcnow
from vpp.settings import LedgerSettings
from vpp.state import State, pack

__all__ = ["MAX_DAYS", "PARK_SCOPE", "LedgerBook"]

#: The scope of the park's rows.
PARK_SCOPE = "park"
#: The longest range of days each roll-up serves.
MAX_DAYS: dict[str, int] = {"interval": 31, "day": 366, "month": 3653, "year": 3653}
_SLOT_H = INTERVAL_S / 3600.0

_NOTE_EXPORT = (
    "exported electricity is not credited: the electricity CO2 is the grid import (less the"
    " green power deducted) × the grid factor"
)
_NOTE_PRORATED = (
    "monthly entries (fuels, green power) are spread by hours over periods shorter than"
    " their month (entries_prorated)"
)
_NOTE_COVERAGE = (
    "rows with coverage below 1 count only the intervals with data; an interval without"
    " data counts nowhere (never as zero)"
)
_NOTE_INDICATORS = (
    "the zero-carbon indicators are per month and rolling year of the park: ask for the"
    " month or year roll-up without an enterprise"
)


def _invalid(name: str, message: str) -> InvalidInput:
    return InvalidInput([FieldError(name, message)])


def _check_query(period: str, first: date, last: date) -> None:
    """Raise InvalidInput for a roll-up not known or a range it does not serve."""
    if period not in get_args(LedgerPeriod):
        raise _invalid("period", f"one of {', '.join(get_args(LedgerPeriod))}, not {period!r}")
    if last < first:
        raise _invalid("to", f"{last} is before from ({first})")
    days = (last - first).days + 1
    if days > MAX_DAYS[period]:
        raise _invalid("to", f"the {period} roll-up serves at most {MAX_DAYS[period]} days")


def _hours(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 3600.0


def _carriers() -> list[CarrierInfo]:
    return [
        CarrierInfo(
            carrier=carrier.id,
            name=carrier.name,
            unit=unit,
            tce_per_unit=coefficients.tce,
            t_co2_per_unit=coefficients.t_co2,
            tce_source=carrier.tce_source,
            co2_source=carrier.co2_source,
        )
        for carrier in CARRIERS.values()
        for unit, coefficients in carrier.units.items()
    ]


@dataclass(eq=False)
class _Month:
    """One month a request touches: its status, factor, entries and the balance read of it.

    Attributes:
        first: its first day.
        start: its start (local midnight).
        end: its end (the next month's start).
        closed: closed at the request's ``now``.
        factor: the grid factor of its rows (the frozen one when closed).
        entries: enterprise -> the entries its rows use (the frozen ones when closed).
        pending: enterprises whose entries changed since it was frozen.
        snapshot: its frozen snapshot, when closed and frozen.
        days: the days of its balance read (in order).
        sums: ``(FLOWS, enterprises, len(days))`` the balance per day.
        slots: ``(FLOWS, enterprises, len(days), 96)`` when interval rows need it.
    """

    first: date
    start: datetime
    end: datetime
    closed: bool
    factor: ElectricityFactor
    entries: dict[str, MonthEntries]
    pending: set[str] = field(default_factory=set)
    snapshot: MonthSnapshot | None = None
    days: list[date] = field(default_factory=list)
    sums: NDArray[np.float64] | None = None
    slots: NDArray[np.float64] | None = None

    @property
    def label(self) -> str:
        """``YYYY-MM``."""
        return month_of(self.first)

    @property
    def hours(self) -> float:
        """Its length, h."""
        return _hours(self.start, self.end)

    @property
    def last(self) -> date:
        """Its last day."""
        return _last_day(self.first)

    def index(self, days: Sequence[date]) -> list[int]:
        """Where ``days`` are in the balance read (``days`` were read)."""
        at = {d: i for i, d in enumerate(self.days)}
        return [at[d] for d in days]


class _Run:
    """One request's computation: the park, its enterprises, the months it touches."""

    def __init__(self, book: LedgerBook, park: Park, plan: BalancePlan, now: datetime) -> None:
        self.book = book
        self.park = park
        self.tz = ZoneInfo(park.timezone)
        self.plan = plan
        self.now = now
        self.factor = electricity_factor_of(park.carbon)
        self.entries: dict[tuple[str, str], MonthEntries] = {}
        self.factors: dict[str, FactorInfo] = {}
        self.notes: dict[str, None] = {}
        #: closed, frozen month -> when metering data was last imported into it
        self.imported: dict[date, datetime] = {}

    def note(self, text: str) -> None:
        """Add a note to the ledger (once)."""
        self.notes.setdefault(text, None)

    # -- months -------------------------------------------------------------------------

    async def months(self, firsts: Sequence[date]) -> dict[date, _Month]:
        """The months starting ``firsts``: status, snapshots, entries (nothing read yet)."""
        if not firsts:
            return {}
        self.entries = await self.book.entries.months(
            self.park.id, month_of(min(firsts)), month_of(max(firsts))
        )
        closed = [
            m
            for m in firsts
            if is_closed(m, self.tz, self.now, self.book.settings.close_after_days)
        ]
        snapshots = await self.book.months.get_many(self.park.id, closed)
        self.imported = await self.book.months.stale_marks(self.park.id, list(snapshots))
        out: dict[date, _Month] = {}
        for first in firsts:
            start, end = month_span(first, self.tz)
            month = _Month(first, start, end, first in closed, self.factor, self._current(first))
            if first in snapshots:
                self._adopt(month, snapshots[first])
            out[first] = month
        return out

    def _current(self, first: date) -> dict[str, MonthEntries]:
        label = month_of(first)
        return {e: entries for (m, e), entries in self.entries.items() if m == label}

    def _adopt(self, month: _Month, snapshot: MonthSnapshot) -> None:
        """Use a month's snapshot: its factor, its entries, and what changed since."""
        month.snapshot = snapshot
        month.factor = factor_of(snapshot.factor)
        month.entries = dict(snapshot.entries)
        current = self._current(month.first)
        month.pending = {
            e
            for e in set(snapshot.fingerprints) | set(current)
            if fingerprint(current.get(e)) != snapshot.fingerprints.get(e, "")
        }
        frozen = {r.scope for r in snapshot.rows if r.scope != PARK_SCOPE}
        if frozen != set(self.plan.ids) or month.pending:
            self.note(
                f"{month.label} is closed and frozen; the park's enterprises or entries changed"
                " since (rows pending_changes): recompute the month to take them"
            )
        imported = self.imported.get(month.first)
        if imported is not None and imported > snapshot.computed_at:
            month.pending |= frozen | set(self.plan.ids)
            self.note(
                f"metering data imported into {month.label} after it was frozen: recompute it"
            )

    async def read(self, month: _Month, days: Sequence[date], *, slots: bool) -> None:
        """Read the balance of ``days`` of ``month`` from the history (one bulk read)."""
        store = self.book.history
        horizon = self.now.timestamp()
        readable = [
            d
            for d in days
            if day_start(d, self.tz) <= self.now and store.expires_at(d, self.tz) > horizon
        ]
        values = np.zeros((len(FLOWS), len(self.plan.scopes), len(days), SLOTS_PER_DAY))
        if readable:
            arrays = await store.read_arrays(self.park.id, self.plan.series, readable)
            at = {d: i for i, d in enumerate(days)}
            values[:, :, [at[d] for d in readable]] = balance(self.plan, arrays)
        month.days = list(days)
        month.sums = values.sum(axis=3)
        month.slots = values if slots else None

    def snapshot_of(self, month: _Month) -> MonthSnapshot:
        """The whole month (read whole) computed with the park's factor and entries now."""
        current = self._current(month.first)
        figures = self.figures(month, month.days, factor=self.factor, entries=current)
        for part in figures.values():
            part.pending = False  # what is frozen now holds every change
        figures[PARK_SCOPE] = self._park(figures.values(), 1, closed=True, pending=False)
        return MonthSnapshot(
            month=month.label,
            factor=FactorInfo.of(self.factor),
            table_version=TABLE_VERSION,
            computed_at=self.now,
            entries={e: current[e] for e in sorted(current)},
            fingerprints={e: fingerprint(current[e]) for e in sorted(current)},
            rows=self.scope_rows(
                figures,
                self.plan.scopes,
                periods=[month.label],
                starts=[month.start],
                ends=[month.end],
                park=True,
            ),
        )

    async def prepare(
        self, month: _Month, *, whole: bool, days: Sequence[date] | None, slots: bool
    ) -> None:
        """Read (and freeze, when closed) what ``month``'s rows need.

        A closed month not frozen yet is read whole and frozen first (its day
        and interval rows use its frozen factor); an open month whose whole
        figures are needed is read whole; otherwise only ``days`` are read.

        Args:
            month: the month.
            whole: its whole-month figures are needed.
            days: the days whose day or interval rows (or a partial month's
                row) are needed, or None.
            slots: keep the per-slot balance (interval rows).
        """
        if month.snapshot is None and (month.closed or whole):
            await self.read(month, _days(month.first, month.last), slots=slots)
            if month.closed:
                snapshot = self.snapshot_of(month)
                if snapshot.entries or any(r.coverage > 0 for r in snapshot.rows):
                    self._adopt(month, await self.book.months.freeze(self.park.id, snapshot))
        elif days is not None:
            await self.read(month, days, slots=slots)

    # -- figures ------------------------------------------------------------------------

    def figures(
        self,
        month: _Month,
        days: Sequence[date],
        *,
        factor: ElectricityFactor | None = None,
        entries: Mapping[str, MonthEntries] | None = None,
    ) -> dict[str, Figures]:
        """Each enterprise's figures over ``days`` of ``month`` as one period."""
        assert month.sums is not None  # read() first
        energy = month.sums[:, :, month.index(days)].sum(axis=2, keepdims=True)
        start, end = day_start(days[0], self.tz), day_start(days[-1] + timedelta(days=1), self.tz)
        hours = _hours(start, end)
        return self._account(
            month,
            energy,
            np.array([hours]),
            prorated=hours < month.hours,
            factor=factor or month.factor,
            entries=month.entries if entries is None else entries,
        )

    def _account(
        self,
        month: _Month,
        energy: NDArray[np.float64],
        hours: NDArray[np.float64],
        *,
        prorated: bool,
        factor: ElectricityFactor,
        entries: Mapping[str, MonthEntries],
        scopes: Sequence[EnterpriseScope] | None = None,
    ) -> dict[str, Figures]:
        """Figures of the enterprises (all by default) from ``energy (FLOWS, enterprises, N)``.

        ``hours`` are the ``N`` periods' lengths; each carries that share of
        the month's entries.
        """
        share = hours / month.hours
        self.factors.setdefault(factor.id, FactorInfo.of(factor))
        which = {s.id for s in (self.plan.scopes if scopes is None else scopes)}
        return {
            s.id: account(
                energy[:, i],
                entries.get(s.id),
                share,
                factor,
                hours,
                prorated=prorated,
                closed=month.closed,
                pending=s.id in month.pending,
            )
            for i, s in enumerate(self.plan.scopes)
            if s.id in which
        }

    def whole(self, month: _Month) -> dict[str, Figures]:
        """Each enterprise's figures over the whole month, and the park's (``"park"``)."""
        if month.snapshot is None:
            return self.with_park(month, self.figures(month, _days(month.first, month.last)))
        self.factors.setdefault(month.snapshot.factor.id, month.snapshot.factor)
        return self.with_park(
            month,
            {
                r.scope: _pending(figures_of(r), r.scope in month.pending)
                for r in month.snapshot.rows
                if r.scope != PARK_SCOPE
            },
        )

    def with_park(
        self, month: _Month, figures: dict[str, Figures], n: int = 1
    ) -> dict[str, Figures]:
        """``figures`` (over ``n`` periods) and the park's, their sum (``"park"``)."""
        stale = bool(month.pending) or (
            month.snapshot is not None
            and {r.scope for r in month.snapshot.rows} != {*self.plan.ids, PARK_SCOPE}
        )
        figures[PARK_SCOPE] = self._park(figures.values(), n, closed=month.closed, pending=stale)
        return figures

    def _park(self, figures: Iterable[Figures], n: int, *, closed: bool, pending: bool) -> Figures:
        """The sum of enterprises' figures over ``n`` periods (none: an empty park row)."""
        total = Figures.zero(n, closed=closed, pending=pending)
        for part in figures:
            total = total + part
        total.pending = total.pending or pending
        if not total.factors:
            total.factors = frozenset({self.factor.id})
        return total

    # -- rows ---------------------------------------------------------------------------

    def scope_rows(
        self,
        figures: Mapping[str, Figures],
        scopes: Sequence[EnterpriseScope],
        *,
        periods: Sequence[str],
        starts: Sequence[datetime],
        ends: Sequence[datetime],
        park: bool,
    ) -> list[LedgerRow]:
        """The rows of ``scopes`` (and the park's) over each of ``periods``."""
        rows: list[LedgerRow] = []
        named: list[tuple[str, str, str]] = [
            (s.id, s.name, s.basis) for s in scopes if s.id in figures
        ]
        if park:
            named.append((PARK_SCOPE, self.park.name or self.park.id, "park"))
        for scope, name, basis in named:
            rows += to_rows(
                figures[scope],
                scope=scope,
                name=name,
                periods=periods,
                starts=starts,
                ends=ends,
                basis=basis,
            )
        return rows

    def period_rows(
        self,
        month: _Month,
        days: Sequence[date],
        scopes: Sequence[EnterpriseScope],
        *,
        park: bool,
        intervals: bool,
    ) -> list[LedgerRow]:
        """The day rows (or the 15-minute rows: ``intervals``) of ``days`` of ``month``."""
        at = month.index(days)
        if intervals:
            assert month.slots is not None  # read(slots=True) first
            starts = [slot_start(day, k, self.tz) for day in days for k in range(SLOTS_PER_DAY)]
            ends = [s + timedelta(seconds=INTERVAL_S) for s in starts]
            periods = [s.isoformat() for s in starts]
            energy = month.slots[:, :, at, :].reshape(
                len(FLOWS), len(self.plan.scopes), len(starts)
            )
        else:
            assert month.sums is not None  # read() first
            starts = [day_start(d, self.tz) for d in days]
            ends = [day_start(d + timedelta(days=1), self.tz) for d in days]
            periods = [d.isoformat() for d in days]
            energy = month.sums[:, :, at]
        figures = self._account(
            month,
            energy,
            np.array([_hours(s, e) for s, e in zip(starts, ends, strict=True)]),
            prorated=True,
            factor=month.factor,
            entries=month.entries,
            scopes=self.plan.scopes if park else scopes,
        )
        if park:
            self.with_park(month, figures, len(starts))
        return self.scope_rows(
            figures, scopes, periods=periods, starts=starts, ends=ends, park=park
        )


def _pending(figures: Figures, pending: bool) -> Figures:
    figures.pending = pending
    return figures


def _last_day(first: date) -> date:
    return next_month(first) - timedelta(days=1)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _ordered(rows: Iterable[LedgerRow]) -> list[LedgerRow]:
    """Enterprise rows by (scope, start), then the park's by start."""
    return sorted(rows, key=lambda r: (r.scope == PARK_SCOPE, r.scope, r.start))


class LedgerBook:
    """The energy-carbon ledger of every park (see the module docstring).

    Args:
        state: the service's `vpp.state.State`.
        history: the interval history (`vpp.history.store.HistoryStore`).
        entries: the monthly entries (`vpp.ledger.entries.EntryStore`).
        settings: ``[ledger]`` (``close_after_days``).
    """

    def __init__(
        self,
        state: State,
        history: HistoryStore,
        entries: EntryStore,
        settings: LedgerSettings,
    ) -> None:
        self.state = state
        self.history = history
        self.entries = entries
        self.settings = settings
        self.months = MonthStore(state)

    async def _run(self, park_id: str, now: datetime | None) -> _Run:
        park = await self.state.get_park(park_id)
        assets = await self.state.list_assets(park_id)
        return _Run(self, park, plan_balance(park, assets), now or utcnow())

    async def ledger(
        self,
        park_id: str,
        period: LedgerPeriod,
        first: date,
        last: date,
        enterprise: str | None = None,
        now: datetime | None = None,
    ) -> Ledger:
        """The park's ledger over the park-local days ``first``..``last`` (inclusive).

        Args:
            park_id: the park.
            period: the roll-up: ``interval`` (15 min), ``day``, ``month``, ``year``.
            first: the first day.
            last: the last day.
            enterprise: only this enterprise's rows (no park rows, no indicators).
            now: the time the ledger is made at (decides which months are closed).

        Returns:
            The `vpp.ledger.rows.Ledger`.

        Raises:
            NotFound: no such park.
            InvalidInput: naming ``period``, ``to`` or ``enterprise``.
        """
        _check_query(period, first, last)
        run = await self._run(park_id, now)
        if enterprise is not None and enterprise not in run.plan.ids:
            raise _invalid("enterprise", f"{enterprise!r} is not an enterprise of park {park_id}")
        scopes = [s for s in run.plan.scopes if enterprise is None or s.id == enterprise]
        park = enterprise is None
        in_range = months_of(first, last)
        windows = {m: (max(first, m), min(last, _last_day(m))) for m in in_range}
        wholly = {m for m, (lo, hi) in windows.items() if lo == m and hi == _last_day(m)}
        ended: list[date] = []
        if period in ("month", "year") and park:
            ended = [m for m in sorted(wholly) if month_span(m, run.tz)[1] <= run.now]
        rolling = {m for e in ended for m in _year_to(e)}
        months = await run.months(sorted(set(in_range) | rolling))

        rows: list[LedgerRow] = []
        whole: dict[date, dict[str, Figures]] = {}  # whole months' figures
        parts: dict[date, dict[str, Figures]] = {}  # each month's figures over its window
        for m, month in months.items():
            rolled = period in ("month", "year") and m in wholly
            days = _days(*windows[m]) if m in windows and not rolled else None
            await run.prepare(
                month, whole=m in rolling or rolled, days=days, slots=period == "interval"
            )
            if m in rolling or rolled:
                whole[m] = run.whole(month)
            if days is None:
                if rolled:
                    parts[m] = whole[m]
            elif period in ("interval", "day"):
                intervals = period == "interval"
                rows += run.period_rows(month, days, scopes, park=park, intervals=intervals)
            else:
                parts[m] = run.with_park(month, run.figures(month, days))

        if period in ("month", "year"):
            rows += _rolled_rows(
                run, months, parts, windows, scopes, park, by_year=period == "year"
            )
        indicators = [i for m in ended for i in _indicators(run, months, whole, m)]
        self._notes(run, rows, indicators, period, park)
        return Ledger(
            park=run.park.id,
            period=period,
            first=first,
            last=last,
            timezone=run.park.timezone,
            table_version=TABLE_VERSION,
            electricity_factor=FactorInfo.of(run.factor),
            factors=[run.factors[f] for f in sorted(run.factors)],
            carriers=_carriers(),
            rows=_ordered(rows),
            indicators=indicators,
            notes=list(run.notes),
        )

    def _notes(
        self,
        run: _Run,
        rows: Sequence[LedgerRow],
        indicators: Sequence[Indicator],
        period: str,
        park: bool,
    ) -> None:
        for s in run.plan.scopes:
            if s.basis == "devices" and any(r.scope == s.id for r in rows):
                run.note(
                    f"{s.id}: no revenue meter; its grid exchange is the sum of its enrolled"
                    " devices, so its unmetered load is not in its figures"
                )
        if any(r.grid_export_kwh > 0 for r in rows):
            run.note(_NOTE_EXPORT)
        for f in sorted({r.electricity_factor for r in rows if r.green_deducted_kwh > 0}):
            for factor_id in f.split("+"):
                info = run.factors.get(factor_id)
                if info is not None and not info.excludes_traded_green:
                    excl = ELECTRICITY_FACTORS["mee-2023-national-excl-traded-nonfossil"]
                    run.note(
                        f"green power is deducted from the grid import while the grid factor"
                        f" {factor_id} ({info.kg_co2_per_kwh} kgCO2/kWh) includes market-traded"
                        f" non-fossil power: the MEE guidance is to use the national factor"
                        f" excluding it ({excl.id}, {excl.kg_co2_per_kwh}) to avoid counting"
                        " that power twice; the park's chosen factor is kept"
                    )
        for (scope, label), kwh in _green_beyond_import(rows, run.tz).items():
            run.note(
                f"{scope}: {kwh:,.1f} kWh of the green power bought for {label} is not deducted:"
                " it is beyond the grid import of its rows (only the import can be deducted)"
            )
        if any(r.entries_prorated for r in rows):
            run.note(_NOTE_PRORATED)
        if any(r.coverage < 1 for r in rows):
            run.note(_NOTE_COVERAGE)
        if period in ("interval", "day") or not park:
            run.note(_NOTE_INDICATORS)
        if any(i.size_class.startswith("below") for i in indicators):
            run.note(
                "the park consumes less than 0.2 Mtce a year, for which the zero-carbon park"
                " notice sets no class: its carbon intensity is compared with the 0.2 tCO2/tce"
                " of the smallest class"
            )

    async def recompute(
        self,
        park_id: str,
        month: str,
        now: datetime | None = None,
        *,
        by: str = "",
        role: str = "",
    ) -> Ledger:
        """Recompute a closed month with the park's factor and entries now, and refreeze it.

        Logged in the park log as ``ledger.recomputed`` (fields ``month``,
        ``factor_before``, ``factor_after``, ``total_co2_t_before``,
        ``total_co2_t_after``, and who asked: ``by``, ``role``, the token's
        name and role; ``data``: the same and the park's tce, packed).

        Returns:
            The month's ledger (``month`` roll-up, every enterprise and the park).

        Raises:
            NotFound: no such park.
            InvalidInput: ``month`` is not ``YYYY-MM``.
            Conflict: the month is not closed yet.
        """
        try:
            first = parse_month(month)
        except ValueError as exc:
            raise _invalid("month", str(exc)) from exc
        run = await self._run(park_id, now)
        if not is_closed(first, run.tz, run.now, self.settings.close_after_days):
            closes = closes_at(first, run.tz, self.settings.close_after_days)
            raise Conflict(f"month {month} is not closed: it closes at {closes.isoformat()}")
        work = (await run.months([first]))[first]
        await run.read(work, _days(first, work.last), slots=False)
        snapshot = run.snapshot_of(work)
        before = await self.months.replace(park_id, snapshot) or work.snapshot
        await self.months.clear_stale(park_id, first, snapshot.computed_at)
        old = None if before is None else before.rows[-1]
        after = snapshot.rows[-1]
        fields: dict[str, str | float] = {
            "month": month,
            "factor_before": "" if before is None else before.factor.id,
            "factor_after": run.factor.id,
            "total_co2_t_after": after.total_co2_t,
        }
        if old is not None:
            fields["total_co2_t_before"] = old.total_co2_t
        data = {
            **fields,
            "total_co2_t_before": None if old is None else old.total_co2_t,
            "total_tce_before": None if old is None else old.total_tce,
            "total_tce_after": after.total_tce,
            "table_version": TABLE_VERSION,
        }
        await self.state.append_park_log(
            park_id, "ledger.recomputed", **fields, by=by, role=role, data=pack(data)
        )
        return await self.ledger(park_id, "month", first, work.last, now=run.now)

    async def factor_for(
        self, park: Park, day: date, now: datetime | None = None
    ) -> ElectricityFactor:
        """The grid emission factor that applies to the park-local ``day``.

        A closed, frozen month's factor; otherwise the park's (what freezing
        the month now would record). Event reports take their factor here, so
        an event of a closed month keeps the factor its month was frozen with.

        Args:
            park: the park, as its caller read it (its time zone and factor).
            day: a park-local day.
            now: the time asked at (decides whether the month is closed); wall time if None.
        """
        first = day.replace(day=1)
        at = utcnow() if now is None else now
        if is_closed(first, ZoneInfo(park.timezone), at, self.settings.close_after_days):
            frozen = await self.months.get_many(park.id, [first])
            if first in frozen:
                return factor_of(frozen[first].factor)
        return electricity_factor_of(park.carbon)

    async def indicators(self, park_id: str, now: datetime | None = None) -> list[Indicator]:
        """The park's indicators over the last complete month and the rolling year to it.

        Returns:
            ``[month, rolling_year]`` for the month before the park-local
            month of ``now``.

        Raises:
            NotFound: no such park.
        """
        run = await self._run(park_id, now)
        last = run.now.astimezone(run.tz).date().replace(day=1) - timedelta(days=1)
        firsts = _year_to(last.replace(day=1))
        months = await run.months(firsts)
        whole: dict[date, dict[str, Figures]] = {}
        for m, month in months.items():
            await run.prepare(month, whole=True, days=None, slots=False)
            whole[m] = run.whole(month)
        return _indicators(run, months, whole, last.replace(day=1))


def _green_beyond_import(rows: Iterable[LedgerRow], tz: ZoneInfo) -> dict[tuple[str, str], float]:
    """(enterprise, month or year) -> kWh of green power bought but not deducted (above 0.05).

    Day and interval rows add up to their month (``YYYY-MM`` of their local
    start); month and year rows stand for their own period.
    """
    beyond: dict[tuple[str, str], float] = {}
    for r in rows:
        if r.scope == PARK_SCOPE:
            continue
        surplus = r.green_trading_kwh + r.green_direct_kwh - r.green_deducted_kwh
        label = r.period if len(r.period) <= 7 else f"{r.start.astimezone(tz):%Y-%m}"
        if surplus > 0:
            beyond[(r.scope, label)] = beyond.get((r.scope, label), 0.0) + surplus
    return {key: kwh for key, kwh in sorted(beyond.items()) if kwh >= 0.05}


def _year_to(last: date) -> list[date]:
    """The first days of the 12 months ending with the month starting ``last``."""
    firsts = [last]
    while len(firsts) < 12:
        prev = firsts[-1] - timedelta(days=1)
        firsts.append(prev.replace(day=1))
    return sorted(firsts)


def _rolled_rows(
    run: _Run,
    months: Mapping[date, _Month],
    parts: Mapping[date, dict[str, Figures]],
    windows: Mapping[date, tuple[date, date]],
    scopes: Sequence[EnterpriseScope],
    park: bool,
    *,
    by_year: bool,
) -> list[LedgerRow]:
    """One row per scope and month (or calendar year: the sum of its months' figures).

    A whole closed month's rows are its snapshot's, as frozen.
    """
    groups: dict[str, list[date]] = {}
    for m in windows:
        groups.setdefault(str(m.year) if by_year else month_of(m), []).append(m)
    rows: list[LedgerRow] = []
    for label, ms in groups.items():
        first = months[ms[0]]
        if not by_year and first.snapshot is not None and windows[ms[0]] == (ms[0], first.last):
            rows += _snapshot_rows(first, parts[ms[0]], scopes, park)
            continue
        summed: dict[str, Figures] = {}
        for m in ms:
            for scope, figures in parts[m].items():
                summed[scope] = summed[scope] + figures if scope in summed else figures
        rows += run.scope_rows(
            summed,
            scopes,
            periods=[label],
            starts=[day_start(windows[ms[0]][0], run.tz)],
            ends=[day_start(windows[ms[-1]][1] + timedelta(days=1), run.tz)],
            park=park,
        )
    return rows


def _snapshot_rows(
    month: _Month,
    figures: Mapping[str, Figures],
    scopes: Sequence[EnterpriseScope],
    park: bool,
) -> list[LedgerRow]:
    """A frozen month's rows as stored, with ``pending_changes`` as of now."""
    assert month.snapshot is not None
    wanted = {s.id for s in scopes} | ({PARK_SCOPE} if park else set())
    return [
        r.model_copy(update={"pending_changes": figures[r.scope].pending})
        for r in month.snapshot.rows
        if r.scope in wanted
    ]


def _indicators(
    run: _Run,
    months: Mapping[date, _Month],
    whole: Mapping[date, dict[str, Figures]],
    last: date,
) -> list[Indicator]:
    """The month ``last`` and the rolling year to it, from the park's whole-month figures."""
    parts = {m: whole[m][PARK_SCOPE] for m in _year_to(last)}

    def totals(firsts: Sequence[date]) -> WindowTotals:
        # whole-month figures: one period each; a month with metering data or
        # with entries (a month of fuel bills only has data too)
        with_data = [
            parts[m]
            for m in firsts
            if parts[m].flow("covered_h").sum() > 0
            or any(e.fuels or e.green_power for e in months[m].entries.values())
        ]
        return WindowTotals(
            months=len(with_data),
            total_tce=float(sum(f.total_tce.sum() for f in with_data)),
            total_co2_t=float(sum(f.total_co2_t.sum() for f in with_data)),
            clean_tce=float(sum(f.clean_tce.sum() for f in with_data)),
        )

    label = month_of(last)
    year_start = months[min(parts)].start
    month = months[last]
    return [
        indicator("month", label, month.start, month.end, totals([last])),
        indicator("rolling_year", label, year_start, month.end, totals(list(parts))),
    ]
