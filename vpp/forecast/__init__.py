"""Forecasts of a park's loads, meters, PV and EV sessions, and how good they are.

`model` holds the shapes (`ParkForecast`, `SeriesForecast`, `ExpectedSession`,
`BacktestSummary`), `store` keeps the latest of each per park in Redis.
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
