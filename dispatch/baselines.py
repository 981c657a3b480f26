"""Customer baselines: what the portfolio would have drawn without the event.

Every method is a small frozen dataclass with ``__call__(history) -> (T,)`` so
callers can swap them (:class:`BaselineMethod` is the protocol). History is a
:class:`DayHistory`: one row of interval loads per past day, oldest first, with
flags for working days and event days.
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
    "pre_event_baseline",
    "same_day_adjusted",
]


@dataclass(frozen=True, slots=True, eq=False)
class DayHistory:
    """Past daily load profiles.

    Attributes:
        loads_kw: ``(D, T)`` load per day and interval, oldest day first.
        working: ``(D,)`` True for working days.
        event: ``(D,)`` True for days with a demand-response event.
    """

    loads_kw: FloatArray
    working: NDArray[np.bool_]
    event: NDArray[np.bool_]

    def eligible(self, working: bool = True) -> NDArray[np.int64]:
        """Indices of days of the wanted type without an event, oldest first."""
        mask = (self.working == working) & ~self.event
        return np.flatnonzero(mask)


class BaselineMethod(Protocol):
    """A pluggable baseline: history in, one day's profile out."""

    def __call__(self, history: DayHistory) -> FloatArray:
        """Baseline profile ``(T,)`` for the day after the history."""
        ...


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
        """Baseline profile ``(T,)``."""
        days = history.eligible(self.working)[-self.n :]
        if days.size == 0:
            raise ValueError("no eligible day in the history")
        return np.asarray(history.loads_kw[days].mean(axis=0), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class HighXOfY:
    """Average of the ``x`` highest-consumption days among the ``y`` most recent similar days.

    With ``x=5, y=10`` this is "5 of the previous 10 working days".

    Attributes:
        x: Days averaged.
        y: Days considered.
        working: Baseline for a working day (True) or a non-working day.
    """

    x: int = 5
    y: int = 10
    working: bool = True

    def __call__(self, history: DayHistory) -> FloatArray:
        """Baseline profile ``(T,)``."""
        days = history.eligible(self.working)[-self.y :]
        if days.size == 0:
            raise ValueError("no eligible day in the history")
        energy = history.loads_kw[days].sum(axis=1)
        top = days[np.argsort(-energy, kind="stable")[: self.x]]
        return np.asarray(history.loads_kw[top].mean(axis=0), dtype=np.float64)


def same_day_adjusted(
    baseline_kw: FloatArray,
    actual_kw: FloatArray,
    window: slice,
    cap: float = 0.2,
) -> FloatArray:
    """Scale a baseline by the ratio actual / baseline over an adjustment window.

    Args:
        baseline_kw: ``(T,)`` unadjusted baseline.
        actual_kw: ``(T,)`` metered load (only the window is read).
        window: Intervals before the event used for the ratio (e.g. the 2 h before
            the notification).
        cap: Largest relative adjustment either way (0.2 = +/-20 %).

    Returns:
        The adjusted baseline.
    """
    base = float(np.sum(baseline_kw[window]))
    if base <= 0:
        return np.asarray(baseline_kw, dtype=np.float64).copy()
    ratio = float(np.sum(actual_kw[window])) / base
    ratio = min(max(ratio, 1.0 - cap), 1.0 + cap)
    return np.asarray(baseline_kw * ratio, dtype=np.float64)


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
