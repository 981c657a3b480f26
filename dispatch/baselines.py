"""Customer baselines: what the portfolio would have drawn without the event.

Two layers, both pure numpy:

* vectorised primitives over many series at once, with past days on an axis
  ordered **newest first**: `recent_days` (the N most recent eligible days),
  `highest_days` (the X highest-scoring of the Y most recent eligible days),
  `mean_of_days` (a NaN-aware mean over the chosen days, `known_mean`) and
  `adjustment_ratio` (the capped same-day ratio actual / baseline). The
  historical baselines of the service (`vpp.history.baselines`) run on them;
* the single-series methods on a :class:`DayHistory` (one row per past day,
  oldest first): :class:`RecentAverage`, :class:`HighXOfY`,
  :func:`same_day_adjusted`, :func:`pre_event_baseline`. Every method is a
  small frozen dataclass with ``__call__(history) -> (T,)`` so callers can swap
  them (:class:`BaselineMethod` is the protocol).

A missing value is NaN (no data), never zero: means skip it, and a mean with
nothing to average is NaN. A method given fewer eligible days than it averages
raises ``ValueError``; it never averages fewer days silently.

Sources of the rules: "the N most recent similar days" and "the X highest of
the Y most recent similar days, ranked by their load over the event hours" are
the customer baseline load (CBL) rules of PJM (Manual 11, Economic Load
Response, the "High 4 of 5" CBL) and of the NYISO (Emergency Demand Response
Program Manual, the Average-Day CBL: the 5 highest of the last 10 weekdays by
average event-period load); the same-day ratio adjustment, capped either way,
is NYISO's weather-sensitive adjustment (capped at ±20 % there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from dispatch.portfolio import FloatArray

__all__ = [
    "BaselineMethod",
    "DayHistory",
    "HighXOfY",
    "RecentAverage",
    "adjustment_ratio",
    "highest_days",
    "known_mean",
    "mean_of_days",
    "pre_event_baseline",
    "recent_days",
    "same_day_adjusted",
]

BoolArray = NDArray[np.bool_]

#: Score given to an eligible day with no data over the ranking intervals: it
#: ranks below every day with data but above days that are not eligible.
_NO_SCORE = -np.finfo(np.float64).max


def recent_days(eligible: BoolArray, n: int) -> BoolArray:
    """The ``n`` most recent eligible days of each series.

    Args:
        eligible: ``(S, D)`` True where day ``d`` may be used for series ``s``;
            days newest first.
        n: days wanted per series (>= 1).

    Returns:
        ``(S, D)`` mask of the chosen days (fewer than ``n`` in a row that has
        fewer eligible days: count them with ``.sum(axis=1)``).
    """
    rank = np.cumsum(eligible, axis=1)
    return np.asarray(eligible & (rank <= n), dtype=bool)


def highest_days(eligible: BoolArray, score: FloatArray, x: int, y: int) -> BoolArray:
    """The ``x`` highest-scoring days among the ``y`` most recent eligible days of each series.

    Args:
        eligible: ``(S, D)`` days that may be used, newest first.
        score: ``(S, D)`` what ranks the days (the mean load over the event
            hours, PJM's and NYISO's "average event-period usage"); NaN = no
            data, ranked below every day with data.
        x: days chosen per series (<= ``y``).
        y: most recent eligible days considered per series.

    Returns:
        ``(S, D)`` mask of the chosen days. Equal scores go to the more recent day.
    """
    considered = recent_days(eligible, y)
    key = np.where(considered, np.nan_to_num(score, nan=_NO_SCORE), -np.inf)
    top = np.argsort(-key, axis=1, kind="stable")[:, :x]
    chosen = np.zeros_like(considered)
    np.put_along_axis(chosen, top, True, axis=1)
    return np.asarray(chosen & considered, dtype=bool)


def mean_of_days(loads_kw: FloatArray, chosen: BoolArray) -> FloatArray:
    """Mean load per series and interval over the chosen days, skipping missing values.

    Args:
        loads_kw: ``(S, D, T)`` load per series, day and interval, kW; NaN = no data.
        chosen: ``(S, D)`` the days to average.

    Returns:
        ``(S, T)`` the mean over the chosen days that have the interval; NaN
        where none has it.
    """
    return known_mean(np.where(chosen[:, :, None], loads_kw, np.nan), axis=1)


def known_mean(values: FloatArray, axis: int) -> FloatArray:
    """The mean along ``axis`` of the known (finite) values; NaN where none is known.

    ``np.nanmean`` without its warning on an all-NaN slice: no data is a
    normal outcome here, not a mistake.
    """
    have = np.isfinite(values)
    total = np.where(have, values, 0.0).sum(axis=axis)
    count = have.sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total / count, np.nan)


def adjustment_ratio(
    actual_kw: FloatArray, baseline_kw: FloatArray, cap: float
) -> tuple[FloatArray, FloatArray]:
    """The same-day adjustment ratio of each series: actual / baseline over a window, capped.

    Only intervals where both the actual load and the baseline are known count.

    Args:
        actual_kw: ``(S, W)`` metered load over the adjustment window; NaN = no data.
        baseline_kw: ``(S, W)`` unadjusted baseline over the same intervals.
        cap: largest relative change either way (0.2 = the ratio stays in 0.8..1.2).

    Returns:
        ``(ratio, raw)``, each ``(S,)``: the ratio clamped to ``1 ± cap`` and
        the ratio before the clamp; both NaN for a series with no interval
        known on both sides, or whose baseline sums to zero or less there (a
        ratio is meaningless then: no adjustment).
    """
    both = np.isfinite(actual_kw) & np.isfinite(baseline_kw)
    actual = np.where(both, actual_kw, 0.0).sum(axis=1)
    base = np.where(both, baseline_kw, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(both.any(axis=1) & (base > 0), actual / base, np.nan)
    return np.clip(raw, 1.0 - cap, 1.0 + cap), raw


@dataclass(frozen=True, slots=True, eq=False)
class DayHistory:
    """Past daily load profiles of one series.

    Attributes:
        loads_kw: ``(D, T)`` load per day and interval, oldest day first.
        working: ``(D,)`` True for working days.
        event: ``(D,)`` True for days with a demand-response event.
    """

    loads_kw: FloatArray
    working: BoolArray
    event: BoolArray

    def eligible(self, working: bool = True) -> NDArray[np.int64]:
        """Indices of days of the wanted type without an event, oldest first."""
        mask = (self.working == working) & ~self.event
        return np.flatnonzero(mask)

    def newest_first(self, working: bool) -> tuple[FloatArray, BoolArray]:
        """``(1, D, T)`` loads and ``(1, D)`` eligible days, newest first (the primitives take)."""
        mask = (self.working == working) & ~self.event
        return self.loads_kw[::-1][None], mask[::-1][None]


class BaselineMethod(Protocol):
    """A pluggable baseline: history in, one day's profile out."""

    def __call__(self, history: DayHistory) -> FloatArray:
        """Baseline profile ``(T,)`` for the day after the history."""
        ...


def _too_few(have: int, need: int, working: bool) -> ValueError:
    kind = "working" if working else "non-working"
    return ValueError(f"{have} eligible {kind} days in the history, {need} needed")


@dataclass(frozen=True, slots=True)
class RecentAverage:
    """Average of the ``n`` most recent similar days (event days excluded).

    Attributes:
        n: Number of days averaged.
        working: Baseline for a working day (True) or a non-working day.
    """

    n: int = 5
    working: bool = True

    def __call__(self, history: DayHistory) -> FloatArray:
        """Baseline profile ``(T,)``.

        Raises:
            ValueError: fewer than ``n`` eligible days.
        """
        loads, eligible = history.newest_first(self.working)
        chosen = recent_days(eligible, self.n)
        if chosen.sum() < self.n:
            raise _too_few(int(chosen.sum()), self.n, self.working)
        return mean_of_days(loads, chosen)[0]


@dataclass(frozen=True, slots=True)
class HighXOfY:
    """Average of the ``x`` highest-consumption days among the ``y`` most recent similar days.

    With ``x=5, y=10`` this is "5 of the previous 10 working days". Days rank
    by their mean load over the profile's intervals (give the event window's
    intervals to rank on the event hours, as PJM and NYISO do).

    Attributes:
        x: Days averaged.
        y: Days considered.
        working: Baseline for a working day (True) or a non-working day.
    """

    x: int = 5
    y: int = 10
    working: bool = True

    def __call__(self, history: DayHistory) -> FloatArray:
        """Baseline profile ``(T,)``.

        Raises:
            ValueError: fewer than ``x`` eligible days.
        """
        loads, eligible = history.newest_first(self.working)
        chosen = highest_days(eligible, known_mean(loads, axis=2), self.x, self.y)
        if chosen.sum() < self.x:
            raise _too_few(int(chosen.sum()), self.x, self.working)
        return mean_of_days(loads, chosen)[0]


def same_day_adjusted(
    baseline_kw: FloatArray,
    actual_kw: FloatArray,
    window: slice,
    cap: float = 0.2,
) -> FloatArray:
    """Scale a baseline by the ratio actual / baseline over an adjustment window.

    Args:
        baseline_kw: ``(T,)`` unadjusted baseline.
        actual_kw: ``(T,)`` metered load (only the window is read; NaN = no data).
        window: Intervals before the event used for the ratio (e.g. the 2 h before
            the notification).
        cap: Largest relative adjustment either way (0.2 = +/-20 %).

    Returns:
        The adjusted baseline; the baseline unchanged when the window has no
        data or its baseline sums to zero or less.
    """
    base = np.asarray(baseline_kw, dtype=np.float64)
    ratio, _ = adjustment_ratio(
        np.asarray(actual_kw, dtype=np.float64)[window][None], base[window][None], cap
    )
    if np.isnan(ratio[0]):
        return base.copy()
    return np.asarray(base * ratio[0], dtype=np.float64)


def pre_event_baseline(recent_kw: FloatArray, n_intervals: int, last: int = 1) -> FloatArray:
    """Flat baseline at the load just before an event (real-time response).

    Args:
        recent_kw: Metered load up to the event start, most recent last.
        n_intervals: Length of the event.
        last: How many of the most recent readings to average.

    Returns:
        ``(n_intervals,)`` constant profile.
    """
    if len(recent_kw) == 0:
        raise ValueError("no reading before the event")
    level = float(np.mean(recent_kw[-last:]))
    return np.full(n_intervals, level)
