"""The load model's features: what is known of a series at an issue time, per target slot.

A row of the model is one series, one issue day ``i`` (issued at the same
time of day as the live forecast), one lead ``L`` (the target day is
``i + L``; 0 = the rest of the issue day) and one slot of the target day. Its
features use only what was known at the issue time:

* calendar of the target day (official Chinese calendar,
  `vpp.history.calendar`): ``slot`` (0-95), ``weekday`` (0 = Monday),
  ``working``, ``holiday`` (a public holiday or a rest day bridged to it),
  ``adjusted`` (an adjusted working day, 调休上班), and ``lead`` (days ahead);
* history of the series, each divided by its recent level (below):
  ``similar_last`` (the same slot on the most recent complete similar day),
  ``similar_mean`` (the mean of the same slot over the ``similar_days`` most
  recent complete similar days: the customer baseline's similar days,
  working for working, non-working for non-working), ``last_day`` (the same
  slot on the last complete day: persistence), ``week_ago`` (the same slot
  seven days before the target day, NaN from a lead of 7 on), and
  ``today_ratio`` (the issue day's known slots before the issue time over
  their similar-day mean: how today runs against its profile);
* ``level``: the series' recent level (mean |kW| over the 7 complete days
  before the issue day) over its level across the whole window, and
  ``trend``: its level over the last 2 complete days over the recent level.

Each series is normalised by its own recent level, so one model learns the
shapes of series of any size; the target is the slot's kW over the same level
and the forecast is multiplied back. A complete day is one before the issue
day. Missing history is NaN, which LightGBM routes on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from numpy.typing import NDArray

import dispatch as dx
from vpp.forecast.inputs import FloatArray
from vpp.history.calendar import day_type
from vpp.history.grid import SLOTS_PER_DAY

__all__ = ["FEATURES", "LEVEL_DAYS", "Features", "calendar_features", "sample_rows"]

#: The feature columns, in order.
FEATURES: tuple[str, ...] = (
    "slot",
    "weekday",
    "working",
    "holiday",
    "adjusted",
    "lead",
    "similar_last",
    "similar_mean",
    "last_day",
    "week_ago",
    "today_ratio",
    "level",
    "trend",
)
#: Complete days before the issue day whose mean |kW| is a series' recent level.
LEVEL_DAYS = 7
#: Complete days before the issue day whose mean |kW| over the recent level is its trend.
TREND_DAYS = 2
_WEEK = 7

IntArray = NDArray[np.int64]


def calendar_features(days: Sequence[date]) -> FloatArray:
    """``(len(days), 4)``: weekday, working, holiday, adjusted per day (official calendar)."""
    out = np.zeros((len(days), 4))
    for k, day in enumerate(days):
        kind = day_type(day)
        named = kind.known and kind.holiday is not None
        out[k] = (day.weekday(), kind.working, named and not kind.working, named and kind.working)
    return out


def _ffill(values: FloatArray, take: NDArray[np.bool_]) -> FloatArray:
    """Along axis 1, each slot's most recent known value among the days ``take`` marks."""
    out = np.full(values.shape, np.nan)
    last = np.full((values.shape[0], values.shape[2]), np.nan)
    for j in range(values.shape[1]):
        if take[j]:
            day = values[:, j]
            last = np.where(np.isfinite(day), day, last)
        out[:, j] = last
    return out


def _recent_mean(
    values: FloatArray, take: NDArray[np.bool_], k: int
) -> tuple[FloatArray, NDArray[np.int64]]:
    """The known-value mean of each slot over the ``k`` days marked before each day.

    Returns:
        ``(means, before)``: ``means[before[i], r]`` is row ``r``'s ``(96,)``
        mean before day ``i`` (``before``: the marked days before each day).
    """
    marked = np.flatnonzero(take)
    have = np.isfinite(values[:, marked])
    known = np.where(have, values[:, marked], 0.0)
    # one mean per count of marked days before a day (days between two marked ones share it)
    means = np.full((marked.size + 1, values.shape[0], values.shape[2]), np.nan)
    for p in range(1, marked.size + 1):
        lo = max(0, p - k)
        count = have[:, lo:p].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            means[p] = np.where(count > 0, known[:, lo:p].sum(axis=1) / count, np.nan)
    before = np.searchsorted(marked, np.arange(values.shape[1])).astype(np.int64)
    return means, before


@dataclass(frozen=True, eq=False)
class Features:
    """The per-day arrays the rows are gathered from, for some series over a window.

    Attributes:
        kw: ``(R, D, 96)`` the history, kW (NaN = unknown).
        calendar: ``(D + extra, 4)`` calendar features of the window's days and
            the targets after it (`calendar_features`).
        working: ``(D + extra,)`` working day or not.
        similar_last: per day type (False, True): ``(R, D, 96)``, ``[:, i]`` the
            same slot on the most recent day of the type before day ``i``.
        similar_mean: likewise, the mean over the ``k`` most recent such days
            (`_recent_mean`'s tables: index ``[before[i], r, slot]``).
        level: ``(R, D)`` mean |kW| over the `LEVEL_DAYS` days before day ``i``.
        recent: ``(R, D)`` mean |kW| over the `TREND_DAYS` days before day ``i``.
        scale: ``(R,)`` mean |kW| over the whole window.
        issue_slot: slots of an issue day closed at the issue time (0-96).
    """

    kw: FloatArray
    calendar: FloatArray
    working: NDArray[np.bool_]
    similar_last: dict[bool, FloatArray]
    similar_mean: dict[bool, tuple[FloatArray, NDArray[np.int64]]]
    level: FloatArray
    recent: FloatArray
    scale: FloatArray
    issue_slot: int

    @classmethod
    def build(
        cls, kw: FloatArray, days: Sequence[date], later: Sequence[date], k: int, issue_slot: int
    ) -> Features:
        """The arrays of ``kw`` over ``days`` (consecutive), with ``later`` target days after them.

        Args:
            kw: ``(R, D, 96)``.
            days: the window's days; the last is the live issue day.
            later: target days after the window (their calendar only).
            k: similar days averaged in ``similar_mean``.
            issue_slot: slots closed at the issue time of every issue day.
        """
        calendar = calendar_features([*days, *later])
        working = calendar[:, 1].astype(bool)
        inside = working[: len(days)]
        # day i sees the days before it: shift the "at or before" fill by one day
        last: dict[bool, FloatArray] = {}
        mean: dict[bool, tuple[FloatArray, NDArray[np.int64]]] = {}
        for kind in (False, True):
            take = inside == kind
            filled = _ffill(kw, take)
            last[kind] = np.concatenate(
                [np.full_like(filled[:, :1], np.nan), filled[:, :-1]], axis=1
            )
            mean[kind] = _recent_mean(kw, take, k)
        magnitude = np.abs(kw)
        daily = dx.known_mean(magnitude, axis=2)  # (R, D)
        level = np.full(daily.shape, np.nan)
        recent = np.full(daily.shape, np.nan)
        for i in range(1, len(days)):
            level[:, i] = dx.known_mean(daily[:, max(0, i - LEVEL_DAYS) : i], axis=1)
            recent[:, i] = dx.known_mean(daily[:, max(0, i - TREND_DAYS) : i], axis=1)
        scale = dx.known_mean(daily[:, :-1], axis=1) if len(days) > 1 else np.full(len(kw), np.nan)
        return cls(kw, calendar, working, last, mean, level, recent, scale, issue_slot)

    def rows(
        self, series: IntArray, issue: IntArray, lead: IntArray, slot: IntArray
    ) -> tuple[FloatArray, FloatArray]:
        """The feature matrix ``(n, len(FEATURES))`` and each row's level (kW) for the given rows.

        Args:
            series: row of ``kw`` of each model row.
            issue: issue day index of each (>= 1).
            lead: days ahead of each (target day = issue + lead).
            slot: slot of the target day of each.
        """
        target = issue + lead
        norm = self.level[series, issue]
        working = self.working[target]
        similar_last = np.where(
            working,
            self.similar_last[True][series, issue, slot],
            self.similar_last[False][series, issue, slot],
        )
        similar_mean = np.where(
            working,
            self._mean_at(True, series, issue, slot),
            self._mean_at(False, series, issue, slot),
        )
        last_day = self.kw[series, issue - 1, slot]
        back = target - _WEEK
        ok = (back >= 0) & (back < issue)
        week_ago = np.where(ok, self.kw[series, np.clip(back, 0, None), slot], np.nan)
        ratio = self._today_ratio()[series, issue]
        with np.errstate(divide="ignore", invalid="ignore"):
            matrix = np.column_stack(
                [
                    slot,
                    self.calendar[target, 0],
                    self.calendar[target, 1],
                    self.calendar[target, 2],
                    self.calendar[target, 3],
                    lead,
                    similar_last / norm,
                    similar_mean / norm,
                    last_day / norm,
                    week_ago / norm,
                    ratio,
                    norm / self.scale[series],
                    self.recent[series, issue] / norm,
                ]
            )
        return matrix.astype(np.float64), norm

    def _mean_at(self, kind: bool, series: IntArray, issue: IntArray, slot: IntArray) -> FloatArray:
        """The similar-day mean of day type ``kind`` before each issue day, per row."""
        means, before = self.similar_mean[kind]
        return np.asarray(means[before[issue], series, slot], dtype=np.float64)

    def _today_ratio(self) -> FloatArray:
        """``(R, D)``: each issue day's known slots over their similar-day mean (NaN: none)."""
        cached: FloatArray | None = self.__dict__.get("_ratio")
        if cached is not None:
            return cached
        q = self.issue_slot
        count, days = self.kw.shape[0], self.kw.shape[1]
        out = np.full((count, days), np.nan)
        if q > 0:
            inside = self.working[:days]
            for kind in (False, True):
                cols = np.flatnonzero(inside == kind)
                actual = self.kw[:, cols, :q]
                means, before = self.similar_mean[kind]
                profile = means[before[cols]][:, :, :q].transpose(1, 0, 2)
                both = np.isfinite(actual) & np.isfinite(profile)
                num = np.where(both, actual, 0.0).sum(axis=2)
                den = np.where(both, profile, 0.0).sum(axis=2)
                with np.errstate(divide="ignore", invalid="ignore"):
                    out[:, cols] = np.where(np.abs(den) > 1e-9, num / den, np.nan)
        object.__setattr__(self, "_ratio", out)
        return out


def sample_rows(
    features: Features,
    leads: Sequence[int],
    first_issue: int,
    max_rows: int,
    rng: np.random.Generator,
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Training rows ``(series, issue, lead, slot)`` drawn at random among the known targets.

    Issue days run from ``first_issue`` to the window's last day; a row's
    target (day ``issue + lead`` within the window) must be known and its
    level finite and above zero. At most ``max_rows`` rows (all when fewer).
    """
    count, days = features.kw.shape[0], features.kw.shape[1]
    issues = np.arange(first_issue, days)
    lead_set = np.asarray(leads, dtype=np.int64)
    grid = (count, issues.size, lead_set.size, SLOTS_PER_DAY)
    total = int(np.prod(grid))
    if total == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    flat = (
        rng.choice(total, size=min(total, 2 * max_rows), replace=False)
        if total > 2 * max_rows
        else np.arange(total)
    )
    s, i, ell, slot = np.unravel_index(flat, grid)
    issue, lead = issues[i], lead_set[ell]
    target = issue + lead
    inside = target < days
    target = np.where(inside, target, 0)
    known = inside & np.isfinite(features.kw[s, target, slot])
    norm = features.level[s, issue]
    known &= np.isfinite(norm) & (norm > 1e-9)
    keep = np.flatnonzero(known)[:max_rows]
    return (
        s[keep].astype(np.int64),
        issue[keep].astype(np.int64),
        lead[keep].astype(np.int64),
        slot[keep].astype(np.int64),
    )
