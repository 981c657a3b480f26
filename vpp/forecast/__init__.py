"""Forecasts of a park's loads, meters, PV and EV sessions, and how good they are.

`model` holds the shapes (`ParkForecast`, `SeriesForecast`, `ExpectedSession`,
`BacktestSummary`), `store` keeps the latest of each per park in Redis.
`window` reads the history a forecast may use, `load` is the load and meter
model (LightGBM), `similar` the similar-day and persistence references,
`kinds` the registry of forecasters by series kind, `backtest` the day-ahead
backtest and `refresh` issues forecasts and backtests, now and on a schedule.
"""

from vpp.forecast.model import (
    BacktestSummary,
    ExpectedSession,
    ForecastScore,
    ParkForecast,
    SeriesForecast,
)
from vpp.forecast.store import ForecastStore

__all__ = [
    "BacktestSummary",
    "ExpectedSession",
    "ForecastScore",
    "ForecastStore",
    "ParkForecast",
    "SeriesForecast",
]
