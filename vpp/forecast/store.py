"""Forecasts and backtest summaries in Redis: the latest of each per park, msgpack.

``{park}:forecast`` holds the park's latest `ParkForecast` (each curve as
little-endian float32 bytes, NaN kept), written whole by one SET so a reader
never sees half of a refresh; ``{park}:forecast:backtest`` the latest
`BacktestSummary`. Neither expires: a forecast is superseded by the next
refresh, and its ``issued_at`` says how old it is.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import numpy as np

from vpp.forecast.model import (
    BacktestSummary,
    ExpectedSession,
    ForecastScore,
    ParkForecast,
    SeriesForecast,
)
from vpp.state import State, pack, unpack

__all__ = ["ForecastStore", "backtest_from_data", "backtest_to_data"]


def _forecast_to_data(f: ParkForecast) -> dict[str, Any]:
    return {
        "park": f.park,
        "issued_at": f.issued_at.isoformat(),
        "timezone": f.timezone,
        "start_day": f.start_day.isoformat(),
        "days": f.days,
        "series": [
            [s.series, s.kind, s.method, np.asarray(s.kw, dtype="<f4").tobytes(), s.note]
            for s in f.series.values()
        ],
        "sessions": [
            [
                s.asset_id,
                s.arrival.isoformat(),
                s.departure.isoformat(),
                s.energy_needed_kwh,
                s.probability,
                s.days,
            ]
            for sessions in f.sessions.values()
            for s in sessions
        ],
    }


def _forecast_from_data(data: dict[str, Any]) -> ParkForecast:
    series = {
        name: SeriesForecast(
            name, kind, method, np.frombuffer(raw, dtype="<f4").astype(np.float64), note
        )
        for name, kind, method, raw, note in data["series"]
    }
    sessions: dict[str, list[ExpectedSession]] = {}
    for asset_id, arrival, departure, energy, probability, days in data["sessions"]:
        sessions.setdefault(asset_id, []).append(
            ExpectedSession(
                asset_id,
                datetime.fromisoformat(arrival),
                datetime.fromisoformat(departure),
                float(energy),
                float(probability),
                int(days),
            )
        )
    return ParkForecast(
        park=data["park"],
        issued_at=datetime.fromisoformat(data["issued_at"]),
        timezone=data["timezone"],
        start_day=date.fromisoformat(data["start_day"]),
        days=int(data["days"]),
        series=series,
        sessions={k: tuple(v) for k, v in sessions.items()},
    )


def backtest_to_data(b: BacktestSummary) -> dict[str, Any]:
    """The JSON-ready form of a backtest summary (also the API's and the CLI's)."""
    return {
        "park": b.park,
        "computed_at": b.computed_at.isoformat(),
        "first_day": b.first_day.isoformat(),
        "last_day": b.last_day.isoformat(),
        "issue_time": b.issue_time,
        "scores": {
            group: {
                method: {"nmae": s.nmae, "bias": s.bias, "intervals": s.intervals}
                for method, s in methods.items()
            }
            for group, methods in b.scores.items()
        },
        "error_quantiles": {g: dict(q) for g, q in b.error_quantiles.items()},
        "note": b.note,
    }


def backtest_from_data(data: dict[str, Any]) -> BacktestSummary:
    """Read back `backtest_to_data`."""
    return BacktestSummary(
        park=data["park"],
        computed_at=datetime.fromisoformat(data["computed_at"]),
        first_day=date.fromisoformat(data["first_day"]),
        last_day=date.fromisoformat(data["last_day"]),
        issue_time=data["issue_time"],
        scores={
            group: {
                method: ForecastScore(float(s["nmae"]), float(s["bias"]), int(s["intervals"]))
                for method, s in methods.items()
            }
            for group, methods in data["scores"].items()
        },
        error_quantiles={
            g: {q: float(v) for q, v in qs.items()} for g, qs in data["error_quantiles"].items()
        },
        note=data.get("note", ""),
    )


class ForecastStore:
    """The latest forecast and backtest of every park.

    Raises (every method):
        StateUnavailable: Redis did not answer.
    """

    def __init__(self, state: State) -> None:
        self.state = state

    async def put(self, forecast: ParkForecast) -> None:
        """Store ``forecast`` as its park's latest (replacing the one before)."""
        key = self.state.park(forecast.park).forecast
        async with self.state.guard("forecast_put"):
            await self.state.redis.set(key, pack(_forecast_to_data(forecast)))

    async def latest(self, park: str) -> ParkForecast | None:
        """The park's latest forecast, or None when none was issued yet."""
        key = self.state.park(park).forecast
        async with self.state.guard("forecast_get"):
            raw = await self.state.redis.get(key)
        return None if raw is None else _forecast_from_data(unpack(raw))

    async def put_backtest(self, summary: BacktestSummary) -> None:
        """Store ``summary`` as its park's latest backtest."""
        key = self.state.park(summary.park).forecast_backtest
        async with self.state.guard("forecast_backtest_put"):
            await self.state.redis.set(key, pack(backtest_to_data(summary)))

    async def backtest(self, park: str) -> BacktestSummary | None:
        """The park's latest backtest summary, or None when none ran."""
        key = self.state.park(park).forecast_backtest
        async with self.state.guard("forecast_backtest_get"):
            raw = await self.state.redis.get(key)
        return None if raw is None else backtest_from_data(unpack(raw))
