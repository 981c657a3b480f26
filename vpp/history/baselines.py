"""Historical customer baselines (CBL) from the interval history, for many series at once.

The methods (``Park.baseline_method``, settings ``Park.baseline``):

* ``similar_days``: the mean of the ``days`` (N) most recent similar days;
* ``high_x_of_y``: the mean of the ``x`` days with the highest mean load over
  the event hours among the ``y`` most recent similar days. Ranking on the
  event hours (not the whole day) is the rule of PJM's "High 4 of 5" CBL
  (Manual 11, Economic Load Response: the days with the highest average
  event-period usage) and of NYISO's Average-Day CBL (EDRP Manual: the 5
  highest of the 10 most recent weekdays by average event-period load).

**Similar days.** A day is similar to a day of the event when both are
working days, or both not, per the official Chinese calendar with its
adjusted working days (`vpp.history.calendar`). The candidates are the days
before the first local day the computation reads (the adjustment window's
first day, else the event's), back to ``lookback_days`` before the event's
start day; left out are the event days given (`event_days`), days with no
data, and days whose coverage (`DayVector.day_coverage`) is below
``min_coverage``. A window crossing midnight is split by local day: each
interval's baseline comes from the similar days of the day it lies in (an
event from Friday 23:00 to Saturday 01:00 takes Friday's hour from working
days and Saturday's from non-working days, as a CBL is built per operating day).

**Same-day adjustment** (``BaselineSettings.adjustment``, optional): the
baseline is scaled by (actual / baseline) over the closed 15-minute
intervals in the ``hours`` before the event start (intervals not closed at
``now`` are not read), the ratio clamped to ``1 ± cap`` (NYISO's
weather-sensitive adjustment is this ratio, capped at ±20 %). Only intervals
with both an actual reading and a baseline count; with none, or a baseline
summing to zero or less there, nothing is adjusted and the note says why.

**Event intervals.** The baseline is built on the history's 15-minute slots
and resampled onto the event's intervals (1-60 minutes): each interval is
the time-weighted mean of the slots it overlaps (a 5-minute interval takes
its slot's value, a 60-minute interval the mean of its four slots); a slot
no chosen day covers is skipped, an interval none of whose slots is known is
NaN (no data, never zero).

**Too short.** A series with fewer eligible days than the method averages (N,
or X) gets `HistoryTooShort` with the reason, so the caller falls back to
``BaselineSettings.fallback`` and records why; a method never averages fewer
days silently. A ``high_x_of_y`` that finds X but fewer than Y days is
computed over what it found, and its note says so.

Shapes: power in kW (positive = drawn from the grid), days are the park's
local days (`vpp.history.grid`). `compute_baselines` is pure (numpy,
vectorised over series on a `HistoryBlock`: one array op per day for all
series); `read_block` reads a block from Redis in bulk; `load_baselines`
reads what it needs from the `HistoryStore` and the park's events.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import compress
from typing import Literal, TypeAlias
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

import dispatch as dx
from vpp.events.model import MAX_INTERVALS, EventRecord, EventState
from vpp.events.store import EventStore
from vpp.history.calendar import CALENDAR_VERSION, day_type
from vpp.history.grid import INTERVAL_S, SLOTS_PER_DAY, DayVector, day_start, locate, slot_start
from vpp.history.store import HistoryStore
from vpp.model import BaselineSettings, Park

__all__ = [
    "HISTORICAL_METHODS",
    "Baseline",
    "BaselineResult",
    "HistoricalMethod",
    "HistoryBlock",
    "HistoryTooShort",
    "compute_baselines",
    "event_days",
    "load_baselines",
    "read_block",
]

log = logging.getLogger("vpp.history.baselines")

#: The baseline methods computed from the interval history.
HistoricalMethod: TypeAlias = Literal["similar_days", "high_x_of_y"]
HISTORICAL_METHODS: tuple[HistoricalMethod, ...] = ("similar_days", "high_x_of_y")

FloatArray = NDArray[np.float64]
#: Hours per slot: kWh per slot / (coverage × this) = mean kW.
_SLOT_H = INTERVAL_S / 3600.0
#: The longest event window (96 intervals of 60 minutes): how far before a
#: day an event that reaches into it can have started.
_LONGEST_EVENT = timedelta(minutes=60 * MAX_INTERVALS)


@dataclass(frozen=True, slots=True, eq=False)
class Baseline:
    """One series' historical baseline over an event window.

    Attributes:
        series: the asset or meter id.
        method: the method used.
        kw: ``(n,)`` baseline per event interval, kW, adjustment applied; NaN
            where no day used has data for the interval.
        days: the days averaged, newest first.
        considered: the candidate days looked at, newest first (``similar_days``:
            the days averaged; ``high_x_of_y``: the Y most recent similar days).
        adjustment: the same-day ratio applied (after the cap), or None when
            none was applied (off, no data, or a baseline of zero or less).
        calendar_known: False when a day type came from the Mon-Fri fallback
            (a year the calendar package does not know).
        complete: True when every part of the window found all the days it
            looks at (N, or Y): older history cannot change the result.
        note: the method, the days, the adjustment and the calendar in words.
    """

    series: str
    method: HistoricalMethod
    kw: FloatArray
    days: tuple[date, ...]
    considered: tuple[date, ...]
    adjustment: float | None
    calendar_known: bool
    complete: bool
    note: str


@dataclass(frozen=True, slots=True)
class HistoryTooShort:
    """A series whose history has fewer eligible days than the method needs.

    The caller falls back to ``BaselineSettings.fallback`` and records ``reason``.

    Attributes:
        series: the asset or meter id.
        method: the method asked for.
        reason: why, e.g. ``2 of the 5 working days needed ...``.
        days: the eligible days found, newest first.
        calendar_known: as in `Baseline`.
    """

    series: str
    method: HistoricalMethod
    reason: str
    days: tuple[date, ...]
    calendar_known: bool

    @property
    def complete(self) -> bool:
        """Always False: older history (within the lookback) might supply the missing days."""
        return False


#: What `compute_baselines` gives per series.
BaselineResult: TypeAlias = Baseline | HistoryTooShort


# -- the window: slots, parts, weights ----------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class _Part:
    """The slots of the window that lie in one local day."""

    day: date
    working: bool
    columns: NDArray[np.int64]  # indices into the window's slots
    slots: NDArray[np.int64]  # slot of the day, 0..95
    ranked: NDArray[np.int64]  # slots of the day that rank the days (high_x_of_y)
    event: bool  # holds event slots (else only adjustment slots)


@dataclass(frozen=True, slots=True, eq=False)
class _Window:
    """The event window (and the adjustment window before it) on the 15-minute slots."""

    start_day: date
    first_day: date
    parts: tuple[_Part, ...]
    weights: FloatArray  # (n, S): share of each slot in each event interval
    adjust: NDArray[np.int64]  # window slots of the adjustment
    adjust_days: tuple[tuple[date, NDArray[np.int64], NDArray[np.int64]], ...]
    calendar_notes: tuple[str, ...]  # the type of each day of the window
    calendar_known: bool


def _window(
    start: datetime,
    interval_s: int,
    n: int,
    tz: ZoneInfo,
    settings: BaselineSettings,
    now: datetime | None,
) -> _Window:
    if start.tzinfo is None:
        raise ValueError("the event start needs a UTC offset")
    if not 60 <= interval_s <= 3600 or n < 1:
        raise ValueError(f"bad event window: {n} intervals of {interval_s} s")
    end = start + timedelta(seconds=interval_s * n)
    adj = settings.adjustment
    adj_from = start - timedelta(hours=adj.hours) if adj is not None else start
    day0, slot0 = locate(adj_from, tz)
    origin = slot_start(day0, slot0, tz)
    count = math.ceil((end - origin).total_seconds() / INTERVAL_S)
    located = [locate(origin + timedelta(seconds=INTERVAL_S * j), tz) for j in range(count)]
    # event interval k = [a_k, a_k + I); slot j = [s_j, s_j + 900), seconds from origin
    lead = (start - origin).total_seconds()
    a = lead + interval_s * np.arange(n, dtype=np.float64)
    s = INTERVAL_S * np.arange(count, dtype=np.float64)
    overlap = np.minimum(a[:, None] + interval_s, s[None, :] + INTERVAL_S) - np.maximum(
        a[:, None], s[None, :]
    )
    weights = np.clip(overlap, 0.0, None) / interval_s
    in_event = weights.sum(axis=0) > 0
    # adjustment: slots wholly inside [adj_from, start) that have closed by ``now``
    upto = (start - origin).total_seconds()
    if now is not None:
        upto = min(upto, (now - origin).total_seconds())
    begin = (adj_from - origin).total_seconds()
    adjust = np.flatnonzero((s >= begin) & (s + INTERVAL_S <= upto)) if adj else np.array([])
    adjust = adjust.astype(np.int64)

    by_day: dict[date, list[int]] = {}
    for j, (day, _) in enumerate(located):
        by_day.setdefault(day, []).append(j)
    parts = []
    notes = []
    known = True
    for day, cols in by_day.items():
        kind = day_type(day)
        known = known and kind.known
        columns = np.array(cols, dtype=np.int64)
        slots = np.array([located[j][1] for j in cols], dtype=np.int64)
        event_cols = in_event[columns]
        ranked = slots[event_cols] if event_cols.any() else slots
        event = bool(event_cols.any())
        parts.append(_Part(day, kind.working, columns, slots, ranked, event))
        notes.append(kind.note)
    adjust_days: list[tuple[date, NDArray[np.int64], NDArray[np.int64]]] = []
    for day in dict.fromkeys(located[j][0] for j in adjust):
        members = np.array([j for j in adjust if located[j][0] == day], dtype=np.int64)
        slots = np.array([located[j][1] for j in members], dtype=np.int64)
        adjust_days.append((day, members, slots))
    return _Window(
        start_day=locate(start, tz)[0],
        first_day=day0,
        parts=tuple(parts),
        weights=weights,
        adjust=adjust,
        adjust_days=tuple(adjust_days),
        calendar_notes=tuple(notes),
        calendar_known=known,
    )


# -- the history as arrays --------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class HistoryBlock:
    """Many series' interval history over some local days, as dense arrays.

    What the computation reads: one array op per day for every series at once
    (a baseline of 1,000 series must not walk 10,000 day objects). Build it
    with `from_days` from `DayVector` mappings, or let `load_baselines` decode
    it straight from Redis.

    Attributes:
        series: ``S`` series ids.
        days: ``D`` local days (any order; no repeats).
        energy_kwh: ``(S, D, 96)`` energy per slot over its covered part, kWh.
        coverage: ``(S, D, 96)`` covered fraction per slot, 0..1 (0 = no data).
    """

    series: tuple[str, ...]
    days: tuple[date, ...]
    energy_kwh: FloatArray
    coverage: FloatArray

    @classmethod
    def from_days(cls, history: Mapping[str, Mapping[date, DayVector]]) -> HistoryBlock:
        """The block of ``series -> day -> DayVector`` (a day a series lacks has no data)."""
        names = tuple(history)
        days = tuple(sorted({d for m in history.values() for d in m}))
        empty = DayVector.empty()
        vectors = [[history[s].get(d, empty) for d in days] for s in names]
        shape = (len(names), len(days), SLOTS_PER_DAY)
        energy = np.array([[v.energy_kwh for v in row] for row in vectors]).reshape(shape)
        coverage = np.array([[v.coverage for v in row] for row in vectors]).reshape(shape)
        return cls(names, days, energy, coverage)

    def rows(self, series: Sequence[str]) -> HistoryBlock:
        """The block of some of its series."""
        index = {s: i for i, s in enumerate(self.series)}
        pick = [index[s] for s in series]
        return HistoryBlock(tuple(series), self.days, self.energy_kwh[pick], self.coverage[pick])

    def with_days(self, other: HistoryBlock) -> HistoryBlock:
        """This block and the days of ``other`` (same series, other days) side by side."""
        if other.series != self.series:
            raise ValueError("the blocks hold different series")
        return HistoryBlock(
            self.series,
            self.days + other.days,
            np.concatenate([self.energy_kwh, other.energy_kwh], axis=1),
            np.concatenate([self.coverage, other.coverage], axis=1),
        )


# -- the candidate days ------------------------------------------------------


def _candidates(
    working: bool, window: _Window, settings: BaselineSettings, excluded: Collection[date]
) -> tuple[list[date], bool]:
    """Days of a type that may serve, newest first, and whether the calendar knew them all.

    They lie before the window's first day, at most ``lookback_days`` before
    the event's start day, and are not event days.
    """
    oldest = window.start_day - timedelta(days=settings.lookback_days)
    day = window.first_day - timedelta(days=1)
    days: list[date] = []
    known = True
    while day >= oldest:
        kind = day_type(day)
        if kind.working == working and day not in excluded:
            days.append(day)
            known = known and kind.known
        day -= timedelta(days=1)
    return days, known


@dataclass(frozen=True, slots=True, eq=False)
class _Pool:
    """The candidate days of one day type, and each series' loads on those it may use."""

    working: bool
    days: tuple[date, ...]  # newest first, the days some series considers
    considered: NDArray[np.bool_]  # (S, D)
    loads_kw: FloatArray  # (S, D, K) on the window's K slots of the day; NaN = no data
    position: NDArray[np.int64]  # (96,) slot of the day -> its index in loads_kw
    known: bool  # every candidate day had an official day type
    searched: int  # candidate days of this type in the lookback


def _mean_kw(energy: FloatArray, coverage: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(coverage > 0, energy / (coverage * _SLOT_H), np.nan)


def _pool(
    block: HistoryBlock,
    day_share: FloatArray,
    working: bool,
    need: int,
    window: _Window,
    settings: BaselineSettings,
    excluded: Collection[date],
) -> _Pool:
    """The ``need`` most recent eligible candidate days of each series, and their loads.

    ``day_share`` is ``(S, D)``, the coverage of each day of the block. Loads
    are gathered for the window's slots only (a 2-hour window reads 8 of 96).
    """
    candidates, known = _candidates(working, window, settings, excluded)
    column = {d: j for j, d in enumerate(block.days)}
    held = [d for d in candidates if d in column]
    index = np.array([column[d] for d in held], dtype=np.int64)
    share = day_share[:, index]
    eligible = (share > 0) & (share >= settings.min_coverage)
    considered = dx.recent_days(eligible, need)
    used = np.flatnonzero(considered.any(axis=0))
    slots = np.unique(np.concatenate([p.slots for p in window.parts if p.working == working]))
    pick = (slice(None), index[used][:, None], slots[None, :])
    loads = _mean_kw(block.energy_kwh[pick], block.coverage[pick])
    position = np.full(SLOTS_PER_DAY, -1, dtype=np.int64)
    position[slots] = np.arange(slots.size)
    days = tuple(held[d] for d in used)
    return _Pool(working, days, considered[:, used], loads, position, known, len(candidates))


# -- the computation ---------------------------------------------------------


def compute_baselines(
    history: HistoryBlock | Mapping[str, Mapping[date, DayVector]],
    method: HistoricalMethod,
    settings: BaselineSettings,
    *,
    start: datetime,
    interval_s: int,
    n: int,
    tz: ZoneInfo,
    event_days: Collection[date] = frozenset(),
    now: datetime | None = None,
) -> dict[str, BaselineResult]:
    """The historical baseline of every series over an event window.

    Args:
        history: a `HistoryBlock`, or series id -> local day -> its
            `DayVector`: the candidate days and the days of the adjustment
            window (a day absent = no data).
        method: ``similar_days`` or ``high_x_of_y``.
        settings: the park's baseline settings (N, X, Y, lookback, coverage,
            adjustment).
        start: aware start of the event's first interval.
        interval_s: length of the event's intervals, s (60..3600).
        n: number of event intervals.
        tz: the park's time zone (its local days).
        event_days: local days of the park's past events, left out
            (`event_days`).
        now: the present; adjustment slots not closed by then are not read
            (None: every slot before the start is).

    Returns:
        series id -> `Baseline`, or `HistoryTooShort`, in the order of ``history``.

    Raises:
        ValueError: an unknown method, a naive start, or a bad window.
    """
    if method not in HISTORICAL_METHODS:
        raise ValueError(f"{method!r} is not a historical baseline method")
    window = _window(start, interval_s, n, tz, settings, now)
    block = history if isinstance(history, HistoryBlock) else HistoryBlock.from_days(history)
    if not block.series:
        return {}
    return _compute(block, method, settings, window, frozenset(event_days))


def _compute(
    block: HistoryBlock,
    method: HistoricalMethod,
    settings: BaselineSettings,
    window: _Window,
    excluded: frozenset[date],
) -> dict[str, BaselineResult]:
    count = len(block.series)
    need, averaged = (settings.days, settings.days)
    if method == "high_x_of_y":
        need, averaged = settings.y, settings.x

    day_share = block.coverage.mean(axis=2)
    pools: dict[bool, _Pool] = {}
    profile = np.full((count, window.weights.shape[1]), np.nan)
    chosen_any: dict[bool, NDArray[np.bool_]] = {}
    for part in window.parts:
        pool = pools.get(part.working)
        if pool is None:
            pool = pools[part.working] = _pool(
                block, day_share, part.working, need, window, settings, excluded
            )
            chosen_any[part.working] = np.zeros(pool.considered.shape, dtype=bool)
        if method == "similar_days":
            chosen = pool.considered
        else:
            score = dx.known_mean(pool.loads_kw[:, :, pool.position[part.ranked]], axis=2)
            chosen = dx.highest_days(pool.considered, score, settings.x, settings.y)
        chosen_any[part.working] |= chosen
        loads = pool.loads_kw[:, :, pool.position[part.slots]]
        profile[:, part.columns] = dx.mean_of_days(loads, chosen)
    # a day type only the adjustment window needs cannot make the method fall short:
    # without its days there is just no adjustment (the note says so)
    event_types = {p.working for p in window.parts if p.event}
    complete = np.ones(count, dtype=bool)
    short: dict[int, list[str]] = {}
    for working, pool in pools.items():
        found = pool.considered.sum(axis=1)
        complete &= found >= need
        if working not in event_types:
            continue
        for row in np.flatnonzero(found < averaged):
            short.setdefault(int(row), []).append(
                _short_reason(pool, int(found[row]), averaged, settings, window)
            )

    ratio, raw, actual_known, base_known = _adjustment(block, window, profile, settings)
    known = window.calendar_known and all(pool.known for pool in pools.values())
    event_kw = _resample(profile, window.weights)
    event_kw *= np.where(np.isnan(ratio), 1.0, ratio)[:, None]

    method_text = _method_text(method, settings, window)
    considered_days = _days_by_row(pools, {w: p.considered for w, p in pools.items()})
    chosen_days = _days_by_row(pools, chosen_any)
    adjustments = [None if math.isnan(r) else r for r in ratio.tolist()]
    adjustment_notes = _adjustment_notes(settings, window, ratio, raw, actual_known, base_known)
    calendar_note = _calendar_note(known)
    out: dict[str, BaselineResult] = {}
    for i, name in enumerate(block.series):
        considered = considered_days[i]
        if i in short:
            reason = "; ".join(short[i]) + _calendar_note(known)
            out[name] = HistoryTooShort(name, method, reason, considered, known)
            continue
        days = chosen_days[i]
        full = bool(complete[i])
        found = "" if full else f" (only {len(considered)} candidate days found)"
        note = f"{method_text}: {len(days)} days{found}; {adjustment_notes[i]}{calendar_note}"
        out[name] = Baseline(
            name, method, event_kw[i], days, considered, adjustments[i], known, full, note
        )
    return out


def _days_by_row(
    pools: Mapping[bool, _Pool], masks: Mapping[bool, NDArray[np.bool_]]
) -> list[tuple[date, ...]]:
    """Per series, the days its mask marks in every pool, newest first."""
    rows: list[list[date]] | None = None
    for working, pool in pools.items():
        marked = [list(compress(pool.days, row)) for row in masks[working].tolist()]
        rows = marked if rows is None else [a + b for a, b in zip(rows, marked, strict=True)]
    if rows is None:
        return []
    if len(pools) == 1:
        return [tuple(r) for r in rows]
    return [tuple(sorted(r, reverse=True)) for r in rows]


def _resample(profile: FloatArray, weights: FloatArray) -> FloatArray:
    """``(S, n)`` time-weighted means of the slots in each event interval, known slots only."""
    have = np.isfinite(profile)
    total = np.where(have, profile, 0.0) @ weights.T
    share = have.astype(np.float64) @ weights.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(share > 0, total / share, np.nan)


def _adjustment(
    block: HistoryBlock,
    window: _Window,
    profile: FloatArray,
    settings: BaselineSettings,
) -> tuple[FloatArray, FloatArray, NDArray[np.bool_], NDArray[np.bool_]]:
    """``(ratio, raw, actual known, both known)`` per series; NaN ratio = no adjustment.

    "Both known": some slot of the window has an actual reading and a baseline.
    """
    count = len(block.series)
    nothing = np.full(count, np.nan)
    if settings.adjustment is None or window.adjust.size == 0:
        return nothing, nothing, np.zeros(count, dtype=bool), np.zeros(count, dtype=bool)
    actual = np.full((count, window.weights.shape[1]), np.nan)
    column = {d: j for j, d in enumerate(block.days)}
    for day, cols, slots in window.adjust_days:
        if day in column:
            j = column[day]
            actual[:, cols] = _mean_kw(block.energy_kwh[:, j, slots], block.coverage[:, j, slots])
    actual = actual[:, window.adjust]
    base = profile[:, window.adjust]
    ratio, raw = dx.adjustment_ratio(actual, base, settings.adjustment.cap)
    known = np.isfinite(actual)
    return ratio, raw, known.any(axis=1), (known & np.isfinite(base)).any(axis=1)


def _method_text(method: HistoricalMethod, settings: BaselineSettings, window: _Window) -> str:
    kinds = " and ".join(
        dict.fromkeys("working" if p.working else "non-working" for p in window.parts)
    )
    rule = (
        f"mean of the {settings.days} most recent {kinds} days"
        if method == "similar_days"
        else f"mean of the {settings.x} highest (mean load over the event hours) of the "
        f"{settings.y} most recent {kinds} days"
    )
    return (
        f"{method}: {rule} before {window.first_day} within {settings.lookback_days} days, "
        f"event days and days under {settings.min_coverage:.0%} coverage left out "
        f"[{'; '.join(window.calendar_notes)}]"
    )


def _short_reason(
    pool: _Pool, found: int, averaged: int, settings: BaselineSettings, window: _Window
) -> str:
    kind = "working" if pool.working else "non-working"
    return (
        f"{found} of the {averaged} {kind} days needed in the {settings.lookback_days} days "
        f"before {window.start_day} ({pool.searched} {kind} days without an event searched "
        f"before {window.first_day}; a day counts with data and coverage >= "
        f"{settings.min_coverage:.0%})"
    )


def _adjustment_notes(
    settings: BaselineSettings,
    window: _Window,
    ratio: FloatArray,
    raw: FloatArray,
    actual_known: NDArray[np.bool_],
    base_known: NDArray[np.bool_],
) -> list[str]:
    """The same-day adjustment of each series in words."""
    adj = settings.adjustment
    count = len(ratio)
    if adj is None:
        return ["no same-day adjustment (off)"] * count
    span = f"the {adj.hours:g} h before the start"
    if window.adjust.size == 0:
        return [f"no same-day adjustment: no interval of {span} had closed"] * count
    no_data = f"no same-day adjustment: no metered data in {span}"
    no_base = f"no same-day adjustment: no baseline over {span} (no similar day has it)"
    not_positive = f"no same-day adjustment: the baseline is zero or less over {span}"
    capped = f", capped at 1 ± {adj.cap:g} (actual / baseline over {span} = "
    plain = f" (actual / baseline over {span})"
    out = []
    rows = zip(
        ratio.tolist(), raw.tolist(), actual_known.tolist(), base_known.tolist(), strict=True
    )
    for applied, before, actual, both in rows:
        if math.isnan(applied):
            out.append(not_positive if both else no_base if actual else no_data)
        elif applied != before:
            out.append(f"same-day adjustment x{applied:.3f}{capped}{before:.3f})")
        else:
            out.append(f"same-day adjustment x{applied:.3f}{plain}")
    return out


def _calendar_note(known: bool) -> str:
    if known:
        return ""
    return (
        f"; calendar: chinesecalendar {CALENDAR_VERSION} does not know some of the days "
        "used, typed Mon-Fri = working (holidays and adjusted working days ignored)"
    )


# -- event days and the loader -----------------------------------------------


def _ran(record: EventRecord) -> bool:
    """Whether the event was delivered at all (active at some point)."""
    if record.state in (EventState.ACTIVE, EventState.COMPLETED):
        return True
    return any(entry.get("state") == EventState.ACTIVE.value for entry in record.history)


def _stopped(record: EventRecord) -> datetime:
    """When the event stopped: its end, or its cancellation or failure when that came first."""
    if record.state in (EventState.CANCELLED, EventState.FAILED):
        for entry in reversed(record.history):
            if entry.get("state") == record.state.value and "at" in entry:
                return min(record.end, datetime.fromisoformat(str(entry["at"])))
    return record.end


def _local_days(begin: datetime, end: datetime, tz: ZoneInfo) -> Iterable[date]:
    day = locate(begin, tz)[0]
    while day_start(day, tz) < end:
        yield day
        day += timedelta(days=1)


async def event_days(
    events: EventStore, park: str, first: date, last: date, tz: ZoneInfo
) -> set[date]:
    """The local days ``first``..``last`` on which one of the park's events ran.

    An event counts when it became active (it is active or completed, or was
    cancelled or failed after it became active); its days are the local days
    its window touched up to its end, or up to its cancellation. An event
    cancelled before it started never moved a load and leaves its days alone.

    Raises:
        StateUnavailable: Redis did not answer.
    """
    lo = day_start(first, tz) - _LONGEST_EVENT
    hi = day_start(last + timedelta(days=1), tz)
    out: set[date] = set()
    for record in await events.starting_between(park, lo, hi):
        if _ran(record):
            out.update(
                d for d in _local_days(record.start, _stopped(record), tz) if first <= d <= last
            )
    return out


async def load_baselines(
    store: HistoryStore,
    events: EventStore,
    park: Park,
    series: Sequence[str],
    method: HistoricalMethod,
    *,
    start: datetime,
    interval_s: int,
    n: int,
    now: datetime,
) -> dict[str, BaselineResult]:
    """The historical baselines of ``series`` over an event window, read from Redis.

    Reads the park's event days over the lookback, then only the days the
    method can use, newest first: the adjustment window's days and the N (or
    Y) most recent candidate days of each day type the window needs, plus
    one; then, only for the series still short of days (gaps, poor coverage),
    further candidate days in growing steps back to ``lookback_days``. A whole
    lookback of 1,000 series would be tens of thousands of day vectors; an
    event with a recorded history needs the first step only.

    Args:
        store: the interval history.
        events: the park's events (their days are left out).
        park: the park (its time zone and ``baseline`` settings).
        series: asset or meter ids.
        method: ``similar_days`` or ``high_x_of_y``.
        start: aware start of the event's first interval.
        interval_s: the event's interval length, s.
        n: number of event intervals.
        now: the present (see `compute_baselines`).

    Returns:
        series id -> `Baseline` or `HistoryTooShort`.

    Raises:
        ValueError: as `compute_baselines`.
        StateUnavailable: Redis did not answer.
    """
    if method not in HISTORICAL_METHODS:
        raise ValueError(f"{method!r} is not a historical baseline method")
    tz = ZoneInfo(park.timezone)
    settings = park.baseline
    names = list(dict.fromkeys(series))
    window = _window(start, interval_s, n, tz, settings, now)
    if not names:
        return {}
    oldest = window.start_day - timedelta(days=settings.lookback_days)
    excluded = frozenset(await event_days(events, park.id, oldest, window.start_day, tz))
    need = settings.y if method == "high_x_of_y" else settings.days
    queues = [
        _candidates(w, window, settings, excluded)[0]
        for w in dict.fromkeys(p.working for p in window.parts)
    ]
    step = need + 1
    first = list(dict.fromkeys([d for d, _, _ in window.adjust_days] + _take(queues, step)))
    block = await read_block(store, park.id, names, first)
    results = _compute(block, method, settings, window, excluded)
    while any(queues):
        pending = [s for s, r in results.items() if not r.complete]
        if not pending:
            break
        step *= 2
        older = await read_block(store, park.id, pending, _take(queues, step))
        block = block.rows(pending).with_days(older)
        results.update(_compute(block, method, settings, window, excluded))
    short = sum(1 for r in results.values() if isinstance(r, HistoryTooShort))
    log.info(
        "park %s: %s baselines of %d series from %s, %d too short",
        park.id, method, len(names), window.start_day, short,
    )  # fmt: skip
    return results


def _take(queues: list[list[date]], count: int) -> list[date]:
    """Take up to ``count`` days off the front of each queue."""
    taken: list[date] = []
    for queue in queues:
        taken.extend(queue[:count])
        del queue[:count]
    return taken


async def read_block(
    store: HistoryStore, park: str, series: Sequence[str], days: Sequence[date]
) -> HistoryBlock:
    """The history of ``series`` on ``days`` as a `HistoryBlock`, read and decoded in bulk.

    The same values as `HistoryStore.read` (a day not stored, or stored
    short, reads as no data), from `HistoryStore.read_arrays`.

    Raises:
        StateUnavailable: Redis did not answer.
    """
    arrays = await store.read_arrays(park, series, days)
    return HistoryBlock(tuple(series), tuple(days), arrays.energy_kwh, arrays.coverage)
