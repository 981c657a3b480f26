"""A synthetic park history with a known weekly shape on the official calendar, as a window."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from vpp.forecast.inputs import ForecastContext, HistoryWindow
from vpp.forecast.window import mask_after
from vpp.history.calendar import day_type
from vpp.history.grid import SLOTS_PER_DAY
from vpp.model import Park

TZ = ZoneInfo("Asia/Shanghai")
PARK = Park(id="synthetic", timezone="Asia/Shanghai")
_HOURS = np.arange(SLOTS_PER_DAY) / 4.0


def working_shape() -> np.ndarray:
    """Per unit: 0.4 at night, 1.0 from 08:00 to 18:00 with a lunch dip to 0.8."""
    out = np.where((_HOURS >= 8) & (_HOURS < 18), 1.0, 0.4)
    out[(_HOURS >= 12) & (_HOURS < 13)] = 0.8
    return out


def rest_shape() -> np.ndarray:
    """Per unit: 0.4 at night, 0.55 from 10:00 to 16:00 (a skeleton shift)."""
    return np.where((_HOURS >= 10) & (_HOURS < 16), 0.55, 0.4)


def truth(day: date) -> np.ndarray:
    """The noise-free per-unit shape of ``day`` by the official calendar (holidays rest)."""
    return working_shape() if day_type(day).working else rest_shape()


def synthetic_window(
    issue_day: date,
    days: int = 56,
    series: int = 12,
    *,
    noise: float = 0.02,
    seed: int = 3,
    issue_at: time = time(9),
    data_days: int | None = None,
) -> tuple[HistoryWindow, np.ndarray]:
    """``days`` days before ``issue_day`` and the issue day (masked at ``issue_at``).

    Each series is its level (10-500 kW) times the day's shape times
    ``1 + noise`` Gaussian noise; half are flexible loads, half meters. With
    ``data_days``, only the last ``data_days`` complete days hold data.

    Returns:
        ``(window, levels)``.
    """
    rng = np.random.default_rng(seed)
    span = [issue_day - timedelta(days=k) for k in range(days, -1, -1)]
    levels = rng.uniform(10, 500, series)
    kw = np.stack(
        [
            np.stack(
                [lv * truth(d) * (1 + noise * rng.standard_normal(SLOTS_PER_DAY)) for d in span]
            )
            for lv in levels
        ]
    )
    coverage = np.ones_like(kw)
    if data_days is not None:
        kw[:, : days - data_days] = np.nan
        coverage[:, : days - data_days] = 0.0
    kinds = tuple("flexible_load" if i % 2 == 0 else "meter" for i in range(series))
    window = HistoryWindow(
        tuple(f"s{i:02d}" for i in range(series)), kinds, tuple(span), kw, coverage
    )
    issued = datetime.combine(issue_day, issue_at, tzinfo=TZ)
    return mask_after(window, issued, TZ), levels


def context(issued_at: datetime, targets: Sequence[date], **extra: object) -> ForecastContext:
    """The context of the synthetic park."""
    return ForecastContext(PARK, {}, issued_at, tuple(targets), extra=dict(extra))
