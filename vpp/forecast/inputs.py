"""What every forecaster is given, and the one signature they share.

A forecaster (the load model, PV, EV sessions) forecasts many series of one
park at once from a `HistoryWindow`: the interval history of those series up
to the issue time, as arrays (NaN where nothing was recorded, and for every
slot at or after the issue time), and a `ForecastContext` (the park, its
assets, its uploaded irradiance, its charger sessions). It returns a
`SeriesForecast` per series over the target days. The refresh (live) and the
backtest (replayed at a fixed issue time) call the same forecasters, so the
backtest measures what the service issues.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from vpp.forecast.model import SeriesForecast
from vpp.model import Asset, Park

__all__ = ["ForecastContext", "Forecaster", "HistoryWindow"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class HistoryWindow:
    """The history a forecast may use: ``kw[s, d, slot]``, mean kW of each slot.

    Attributes:
        series: the series ids, row order.
        kinds: the kind of each series (an asset kind, or ``meter``).
        days: the local days of the window, oldest first, consecutive; the
            last one is the issue day.
        kw: shape ``(len(series), len(days), 96)``, kW (positive = drawn from
            the grid); NaN where the slot has no data, and for every slot of
            the issue day at or after the issue time (not known yet).
        coverage: same shape, covered fraction of each slot (0-1).
    """

    series: Sequence[str]
    kinds: Sequence[str]
    days: Sequence[date]
    kw: FloatArray
    coverage: FloatArray


@dataclass(frozen=True)
class ForecastContext:
    """Everything besides the history that a forecaster may read.

    Attributes:
        park: the park (its time zone, location, baseline settings).
        assets: asset id -> its enrolled asset (meters included).
        issued_at: the issue time (aware).
        targets: the local days to forecast, consecutive, oldest first.
        irradiance: local day -> uploaded global horizontal irradiance per
            slot, W/m², NaN where not given (`vpp.forecast.irradiance`).
        extra: forecaster-specific inputs by name (e.g. ``sessions``: the
            chargers' session history), so adding one needs no new field.
    """

    park: Park
    assets: Mapping[str, Asset]
    issued_at: datetime
    targets: Sequence[date]
    irradiance: Mapping[date, FloatArray] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def tz(self) -> ZoneInfo:
        """The park's time zone."""
        return ZoneInfo(self.park.timezone)


class Forecaster(Protocol):
    """A forecaster of some kinds of series (loads and meters, PV, chargers)."""

    def __call__(
        self, window: HistoryWindow, rows: Sequence[int], ctx: ForecastContext
    ) -> dict[str, SeriesForecast]:
        """Forecast the series at ``rows`` of ``window`` over ``ctx.targets``.

        Returns:
            series id -> its forecast, ``len(ctx.targets) * 96`` values each (kW).
        """
        ...
