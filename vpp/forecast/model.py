"""What a forecast is: per series a power curve on the park's 15-minute grid, with its issue time.

A `ParkForecast` is issued for one park at one time (``issued_at``) and covers
``days`` local days from the issue day's midnight, 96 slots a day on the
history's grid (`vpp.history.grid`): slot ``i`` of day ``d`` starts at
``slot_start(start_day + d, i, tz)``. Each forecast series (a flexible load, a
meter, a PV array, a charger) has one curve in kW (positive = drawn from the
grid, so PV is negative), NaN where nothing is known, with the method that
made it (``model``, ``similar_day``, ``clear_sky``, ``irradiance``, ...) and a
note in words. Chargers also get the sessions expected on the horizon's days
(`ExpectedSession`), learned from their session history.

`ParkForecast.on_grid` lays a curve onto any `dispatch.TimeGrid` (1-60 minute
intervals, any start): each interval is the time-weighted mean of the slots it
overlaps; an interval that reaches outside the horizon, or none of whose
slots is known, is NaN (never 0).

`BacktestSummary` is what a backtest (`vpp forecast backtest`) measured:
per group (an asset kind, ``meter`` or ``park``) and method, nMAE and bias, and
the quantiles of the normalised forecast error that a bid's margin is taken
from (`BacktestSummary.error_at`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

import dispatch as dx
from vpp.history.grid import SLOTS_PER_DAY, day_start, slot_start

__all__ = [
    "BacktestSummary",
    "ExpectedSession",
    "ForecastScore",
    "ParkForecast",
    "SeriesForecast",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class SeriesForecast:
    """One series' forecast.

    Attributes:
        series: the asset or meter id.
        kind: its kind (``flexible_load``, ``meter``, ``pv``, ``ev_charger``, ``battery``).
        method: what made it: ``model`` (the learned load model), ``similar_day``
            (the mean profile of recent similar days, the fallback while the
            history is short), ``persistence``, ``clear_sky`` (PV: clear-sky
            model × learned clear-sky index), ``irradiance`` (PV from an uploaded
            irradiance forecast), ``sessions`` (a charger's expected sessions),
            ``none`` (nothing to forecast from).
        kw: one value per slot of the forecast's horizon, kW, positive = drawn
            from the grid; NaN = not known.
        note: how it was made, in words (days of history, index, fallback reason).
    """

    series: str
    kind: str
    method: str
    kw: FloatArray
    note: str = ""


@dataclass(frozen=True)
class ExpectedSession:
    """A charging session expected on a later day, from the charger's session history.

    Attributes:
        asset_id: the charger.
        arrival: when the vehicle is expected to plug in (aware).
        departure: when it is expected to leave (aware, after ``arrival``).
        energy_needed_kwh: the energy it is expected to need at arrival, kWh (≥ 0).
        probability: the share of similar past days that had such a session (0-1).
        days: how many similar past days it was learned from.
    """

    asset_id: str
    arrival: datetime
    departure: datetime
    energy_needed_kwh: float
    probability: float
    days: int


@dataclass(frozen=True)
class ParkForecast:
    """A park's forecast as issued at one time.

    Attributes:
        park: the park id.
        issued_at: when it was made (aware, UTC).
        timezone: the park's time zone (IANA name).
        start_day: the first local day it covers (the issue day).
        days: how many local days it covers.
        series: series id -> its forecast (``days * 96`` values each).
        sessions: charger id -> the sessions expected on the horizon's days.
    """

    park: str
    issued_at: datetime
    timezone: str
    start_day: date
    days: int
    series: Mapping[str, SeriesForecast] = field(default_factory=dict)
    sessions: Mapping[str, tuple[ExpectedSession, ...]] = field(default_factory=dict)

    @property
    def slots(self) -> int:
        """Slots of the horizon (``days * 96``)."""
        return self.days * SLOTS_PER_DAY

    @property
    def tz(self) -> ZoneInfo:
        """The park's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def start(self) -> datetime:
        """The horizon's start: midnight of ``start_day``, park time."""
        return day_start(self.start_day, self.tz)

    @property
    def end(self) -> datetime:
        """The horizon's end: midnight after its last day, park time."""
        return day_start(self.start_day + timedelta(days=self.days), self.tz)

    def slot_edges(self) -> FloatArray:
        """The slots' start times and the horizon's end, epoch seconds (``slots + 1`` values)."""
        tz = self.tz
        edges = [
            slot_start(self.start_day + timedelta(days=d), s, tz).timestamp()
            for d in range(self.days)
            for s in range(SLOTS_PER_DAY)
        ]
        edges.append(self.end.timestamp())
        return np.asarray(edges, dtype=np.float64)

    def weights(self, grid: dx.TimeGrid) -> FloatArray:
        """Overlap of each grid interval with each slot, seconds: shape ``(grid.n, slots)``."""
        edges = self.slot_edges()
        t0 = grid.start.timestamp() + np.arange(grid.n) * grid.step.total_seconds()
        t1 = t0 + grid.step.total_seconds()
        lo = np.maximum(t0[:, None], edges[None, :-1])
        hi = np.minimum(t1[:, None], edges[None, 1:])
        return np.asarray(np.clip(hi - lo, 0.0, None), dtype=np.float64)

    def on_grid_many(
        self, series: Sequence[str], grid: dx.TimeGrid, weights: FloatArray | None = None
    ) -> FloatArray:
        """The curves of ``series`` laid on ``grid``: shape ``(len(series), grid.n)``, kW.

        Each interval is the time-weighted mean of the known slots it overlaps.
        NaN for an interval that reaches outside the horizon, for one none of
        whose slots is known, and for a series the forecast does not hold.
        """
        w = self.weights(grid) if weights is None else weights
        covered = np.sum(w, axis=1)
        inside = covered >= grid.step.total_seconds() - 1e-6
        out = np.full((len(series), grid.n), np.nan)
        for i, name in enumerate(series):
            known = self.series.get(name)
            if known is None:
                continue
            kw = known.kw
            finite = np.isfinite(kw)
            num = w @ np.where(finite, kw, 0.0)
            den = w @ finite.astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                row = np.where((den > 0) & inside, num / np.where(den > 0, den, 1.0), np.nan)
            out[i] = row
        return out

    def on_grid(self, series: str, grid: dx.TimeGrid) -> FloatArray | None:
        """One series on ``grid`` (see `on_grid_many`); None when the forecast does not hold it."""
        if series not in self.series:
            return None
        return np.asarray(self.on_grid_many([series], grid)[0], dtype=np.float64)

    def sessions_in(self, asset_id: str, begin: datetime, end: datetime) -> list[ExpectedSession]:
        """The expected sessions of a charger that overlap ``[begin, end)``, by arrival."""
        return sorted(
            (s for s in self.sessions.get(asset_id, ()) if s.arrival < end and s.departure > begin),
            key=lambda s: s.arrival,
        )


@dataclass(frozen=True)
class ForecastScore:
    """How one method forecast one group over a backtest.

    Attributes:
        nmae: normalised mean absolute error, Σ|forecast − actual| / Σ|actual| (0 = perfect).
        bias: Σ(forecast − actual) / Σ|actual| (positive = forecast too high).
        intervals: intervals scored (both the forecast and the actual known).
    """

    nmae: float
    bias: float
    intervals: int


@dataclass(frozen=True)
class BacktestSummary:
    """What a day-ahead backtest measured over the stored history.

    Attributes:
        park: the park id.
        computed_at: when it ran (aware, UTC).
        first_day: the first local day forecast.
        last_day: the last local day forecast.
        issue_time: the park-local time of the day before at which each day was
            forecast (``HH:MM``).
        scores: group -> method -> its score. Groups: asset kinds
            (``flexible_load``, ``pv``, ``ev_charger``, ``battery``), ``meter``
            and ``park`` (the park's total); methods: ``forecast`` (what the
            service issues), ``persistence`` (yesterday), ``similar_day``.
        error_quantiles: group -> quantile ("0.05", "0.1", ...) -> the
            normalised error (actual − forecast) / (the series' mean |actual|
            over its day) at that quantile, from the service's forecast.
        note: what the backtest covered and left out, in words.
    """

    park: str
    computed_at: datetime
    first_day: date
    last_day: date
    issue_time: str
    scores: Mapping[str, Mapping[str, ForecastScore]]
    error_quantiles: Mapping[str, Mapping[str, float]]
    note: str = ""

    def error_at(self, group: str, quantile: float) -> float | None:
        """The normalised error of ``group`` at ``quantile`` (nearest one held), or None."""
        held = self.error_quantiles.get(group)
        if not held:
            return None
        nearest = min(held, key=lambda q: abs(float(q) - quantile))
        return float(held[nearest])
