"""The history a forecast may use, read from the interval history as arrays.

`read_window` reads many series' days in bulk (`HistoryStore.read_arrays`)
and turns each slot into its mean power, kW = energy / covered hours (NaN
where the slot has no data: never zero). `mask_after` hides what was not
known yet at an issue time: every slot that had not closed by then (its end
after the issue time) becomes NaN with coverage 0. The refresh masks at
"now"; the backtest masks the same stored history at each day's issue time,
so both see exactly what a forecast issued then would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np

from vpp.forecast.inputs import FloatArray, HistoryWindow
from vpp.history.grid import INTERVAL_S, SLOTS_PER_DAY, day_start
from vpp.history.store import HistoryStore

__all__ = ["closed_slots", "mask_after", "mean_kw", "read_window", "window_rows"]

#: Hours of a slot: kWh / (coverage x this) = mean kW.
_SLOT_H = INTERVAL_S / 3600.0


def mean_kw(energy_kwh: FloatArray, coverage: FloatArray) -> FloatArray:
    """Mean power over each slot's covered part, kW; NaN where coverage is 0 (same shapes)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(
            np.where(coverage > 0, energy_kwh / (coverage * _SLOT_H), np.nan), dtype=np.float64
        )


def closed_slots(day: date, issued_at: datetime, tz: ZoneInfo) -> int:
    """How many slots of ``day`` had closed (ended at or before) ``issued_at``: 0..96.

    Raises:
        ValueError: ``issued_at`` is naive.
    """
    if issued_at.tzinfo is None:
        raise ValueError("the issue time needs a UTC offset")
    elapsed = (issued_at - day_start(day, tz)).total_seconds()
    return int(np.clip(elapsed // INTERVAL_S, 0, SLOTS_PER_DAY))


def mask_after(window: HistoryWindow, issued_at: datetime, tz: ZoneInfo) -> HistoryWindow:
    """The window as known at ``issued_at``: slots not closed by then are NaN, coverage 0.

    A slot in progress at the issue time is hidden too (its data is partial);
    days after the issue time's day are hidden whole.
    """
    kw = window.kw.copy()
    coverage = window.coverage.copy()
    for j, day in enumerate(window.days):
        closed = closed_slots(day, issued_at, tz)
        if closed < SLOTS_PER_DAY:
            kw[:, j, closed:] = np.nan
            coverage[:, j, closed:] = 0.0
    return HistoryWindow(window.series, window.kinds, window.days, kw, coverage)


def window_rows(window: HistoryWindow, days: Sequence[date]) -> HistoryWindow:
    """The window cut to ``days`` (consecutive, a range of its own days), every series."""
    first = list(window.days).index(days[0])
    pick = slice(first, first + len(days))
    return HistoryWindow(
        window.series, window.kinds, tuple(days), window.kw[:, pick], window.coverage[:, pick]
    )


async def read_window(
    history: HistoryStore,
    park: str,
    series: Sequence[str],
    kinds: Sequence[str],
    days: Sequence[date],
    issued_at: datetime,
    tz: ZoneInfo,
) -> HistoryWindow:
    """The history of ``series`` on ``days`` as known at ``issued_at``.

    Args:
        history: the interval history.
        park: the park id.
        series: asset or meter ids (rows).
        kinds: the kind of each (an asset kind, or ``meter``).
        days: local days, consecutive, oldest first; the last is the issue day.
        issued_at: the issue time (aware): slots not closed by then read as NaN.
        tz: the park's time zone.

    Returns:
        The `HistoryWindow`: ``kw`` and ``coverage`` of shape ``(S, D, 96)``.

    Raises:
        ValueError: ``series`` and ``kinds`` differ in length, or a naive ``issued_at``.
        StateUnavailable: Redis did not answer.
    """
    if len(series) != len(kinds):
        raise ValueError("one kind per series")
    arrays = await history.read_arrays(park, series, days)
    window = HistoryWindow(
        tuple(series),
        tuple(kinds),
        tuple(days),
        mean_kw(arrays.energy_kwh, arrays.coverage),
        arrays.coverage,
    )
    return mask_after(window, issued_at, tz)
