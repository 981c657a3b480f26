"""The reference forecasters: the similar-day profile and persistence.

Both forecast any kind of series from its own history alone; both are what
the backtest measures the service's forecast against, and the similar-day
profile is the load model's fallback while a series' history is short.

* `similar_day`: each target day is the slot-by-slot mean of the ``N`` most
  recent complete similar days before the issue day (``N`` =
  ``Park.baseline.days``). Similar is the customer baseline's calendar
  (`vpp.history.baselines`): working days for a working day, non-working
  days (weekends and public holidays) for a non-working day, per the
  official Chinese calendar with its adjusted working days
  (`vpp.history.calendar`). A candidate day counts when its coverage is at
  least ``Park.baseline.min_coverage``; missing slots of a chosen day are
  skipped (NaN-aware mean). A series with no such day of the type falls back
  to its most recent complete days of any type, and its note says so; one
  with no complete day at all is NaN, method ``none``.
* `persistence`: every target day repeats the last complete day (the day
  before the issue day), slot by slot: "tomorrow is like yesterday".

Shapes: kW per slot, positive = drawn from the grid; each forecast holds
``len(ctx.targets) * 96`` values.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
from numpy.typing import NDArray

import dispatch as dx
from vpp.forecast.inputs import FloatArray, ForecastContext, HistoryWindow
from vpp.forecast.model import SeriesForecast
from vpp.history.calendar import day_type
from vpp.history.grid import SLOTS_PER_DAY

__all__ = ["persistence", "similar_day", "similar_profiles"]


def _kind(working: bool) -> str:
    return "working" if working else "non-working"


def similar_profiles(
    window: HistoryWindow,
    rows: Sequence[int],
    targets: Sequence[date],
    days: int,
    min_coverage: float,
) -> tuple[FloatArray, NDArray[np.int64], NDArray[np.bool_]]:
    """The similar-day profile of each row for each target day.

    Candidates are the window's days before its last one (the issue day, not
    complete), newest first.

    Args:
        window: the history.
        rows: the rows of ``window`` to forecast.
        targets: the local days to forecast.
        days: N, similar days averaged.
        min_coverage: a candidate day's coverage at least this (0-1).

    Returns:
        ``(kw, found, fallback)``: ``kw`` of shape ``(R, len(targets) * 96)``;
        ``found`` ``(R, len(targets))`` days averaged; ``fallback`` ``(R,
        len(targets))`` True where no similar day was found and the most
        recent days of any type were averaged instead.
    """
    index = np.asarray(rows, dtype=np.int64)
    past = list(window.days[:-1])[::-1]  # complete days, newest first
    kw = window.kw[index][:, : len(past)][:, ::-1]
    share = window.coverage[index][:, : len(past)][:, ::-1].mean(axis=2)
    usable = (share > 0) & (share >= min_coverage)
    working = np.array([day_type(d).working for d in past], dtype=bool)
    out = np.full((len(index), len(targets) * SLOTS_PER_DAY), np.nan)
    found = np.zeros((len(index), len(targets)), dtype=np.int64)
    fallback = np.zeros((len(index), len(targets)), dtype=bool)
    by_type: dict[bool, tuple[FloatArray, NDArray[np.int64], NDArray[np.bool_]]] = {}
    for t, target in enumerate(targets):
        kind = day_type(target).working
        if kind not in by_type:
            chosen = dx.recent_days(usable & (working == kind)[None, :], days)
            count = chosen.sum(axis=1)
            short = count == 0
            if short.any():
                chosen[short] = dx.recent_days(usable[short], days)
            by_type[kind] = (dx.mean_of_days(kw, chosen), chosen.sum(axis=1), short)
        profile, count, short = by_type[kind]
        out[:, t * SLOTS_PER_DAY : (t + 1) * SLOTS_PER_DAY] = profile
        found[:, t], fallback[:, t] = count, short
    return out, found, fallback


def similar_day(
    window: HistoryWindow, rows: Sequence[int], ctx: ForecastContext
) -> dict[str, SeriesForecast]:
    """The similar-day forecaster (a `vpp.forecast.inputs.Forecaster`); see the module."""
    settings = ctx.park.baseline
    kw, found, fallback = similar_profiles(
        window, rows, ctx.targets, settings.days, settings.min_coverage
    )
    issue_day = window.days[-1]
    out: dict[str, SeriesForecast] = {}
    for r, row in enumerate(rows):
        name, kind = window.series[row], window.kinds[row]
        if not found[r].any():
            note = (
                f"no complete day with coverage >= {settings.min_coverage:.0%} before {issue_day}"
            )
            out[name] = SeriesForecast(name, kind, "none", kw[r], note)
            continue
        parts = []
        for t, target in enumerate(ctx.targets):
            kind_text = _kind(day_type(target).working)
            if fallback[r, t]:
                parts.append(
                    f"{target}: no {kind_text} day in the history, mean of the "
                    f"{found[r, t]} most recent days of any type"
                )
            else:
                parts.append(f"{target}: mean of the {found[r, t]} most recent {kind_text} days")
        note = (
            f"similar days (official Chinese calendar, coverage >= {settings.min_coverage:.0%}) "
            f"before {issue_day}: " + "; ".join(parts)
        )
        out[name] = SeriesForecast(name, kind, "similar_day", kw[r], note)
    return out


def persistence(
    window: HistoryWindow, rows: Sequence[int], ctx: ForecastContext
) -> dict[str, SeriesForecast]:
    """The persistence forecaster: each target day repeats the last complete day (see module)."""
    index = np.asarray(rows, dtype=np.int64)
    if len(window.days) < 2:
        last = np.full((len(index), SLOTS_PER_DAY), np.nan)
        day = None
    else:
        last, day = window.kw[index, -2, :], window.days[-2]
    kw = np.tile(last, (1, len(ctx.targets)))
    return {
        window.series[row]: SeriesForecast(
            window.series[row],
            window.kinds[row],
            "persistence",
            kw[r],
            f"the last complete day ({day}) repeated",
        )
        for r, row in enumerate(rows)
    }
