"""Forecast routes: the park's latest forecast and backtest, and issuing them now.

* ``GET /v1/parks/{park}/forecast``: the latest forecast (`vpp.forecast.model.ParkForecast`):
  its issue time, its start (the issue day's local midnight), 15-minute
  intervals, per series its kind, method (``model``, ``similar_day``, ...),
  note and one kW value per interval (null = not known), and the chargers'
  expected sessions. 404 when none was issued yet.
* ``POST /v1/parks/{park}/forecast``: issue one now (park operator;
  `vpp.forecast.refresh.issue_forecast`) and answer it.
* ``GET /v1/parks/{park}/forecast/backtest``: the latest day-ahead backtest
  (`vpp.forecast.model.BacktestSummary`): per group (asset kind, ``park``)
  and method (``forecast``, ``persistence``, ``similar_day``) nMAE and bias,
  and the forecast's error quantiles. 404 when none ran yet.
* ``POST /v1/parks/{park}/forecast/backtest?days=N``: run one over the last
  ``N`` complete days (1-60, default 14) and store it (park operator); 409
  when the history is too short (3 complete days at least) or holds nothing
  on the days scored.

Roles: a forecast per asset and meter reads like its history, so the
history's readers read it (park operator, viewer); the backtest's figures
are the park's forecast quality, which a grid operator weighing the park's
bids may read too.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated

import numpy as np
from aiohttp import web
from pydantic import BaseModel, Field

from vpp.api.context import SETTINGS, STATE, service_now
from vpp.api.history import HISTORY
from vpp.api.io import json_response
from vpp.api.params import query
from vpp.api.routing import ALL_ROLES, Query, Route
from vpp.auth import Role
from vpp.errors import Conflict, NotFound
from vpp.forecast.inputs import Forecaster
from vpp.forecast.kinds import FORECASTERS
from vpp.forecast.model import BacktestSummary, ParkForecast
from vpp.forecast.refresh import ExtraContext, issue_forecast, run_backtest
from vpp.forecast.store import ForecastStore
from vpp.history.grid import INTERVAL_S

__all__ = [
    "EXTRA_CONTEXT",
    "FORECASTERS_KEY",
    "FORECASTS",
    "ROUTES",
    "BacktestPayload",
    "ForecastPayload",
    "backtest_payload",
    "forecast_payload",
]

#: The forecasts and backtests of the app.
FORECASTS = web.AppKey("vpp.forecasts", ForecastStore)
#: kind -> forecaster the app issues with (`vpp.forecast.kinds.FORECASTERS` unless replaced).
FORECASTERS_KEY: web.AppKey[dict[str, Forecaster]] = web.AppKey("vpp.forecasters")
#: Reads a park's inputs besides its history (irradiance, sessions); absent: none.
EXTRA_CONTEXT: web.AppKey[ExtraContext] = web.AppKey("vpp.forecast.extra")

_READ = frozenset({Role.PARK_OPERATOR, Role.VIEWER})
_WRITE = frozenset({Role.PARK_OPERATOR})


class SeriesPayload(BaseModel):
    """One series' forecast."""

    series: str
    kind: str
    method: str = Field(description="model, similar_day, persistence, clear_sky, irradiance, ...")
    note: str
    kw: list[float | None] = Field(description="kW per interval from start; null = not known")


class SessionPayload(BaseModel):
    """A charging session expected on the horizon's days."""

    asset_id: str
    arrival: datetime
    departure: datetime
    energy_needed_kwh: float
    probability: float
    days: int


class ForecastPayload(BaseModel):
    """A park's forecast as issued."""

    park: str
    issued_at: datetime
    start: datetime = Field(description="the issue day's local midnight: the first interval")
    start_day: date
    days: int
    interval_minutes: int
    series: list[SeriesPayload]
    sessions: list[SessionPayload]


class ScorePayload(BaseModel):
    """One method's score over a group (null: nothing scored)."""

    nmae: float | None
    bias: float | None
    intervals: int


class BacktestPayload(BaseModel):
    """A day-ahead backtest's figures."""

    park: str
    computed_at: datetime
    first_day: date
    last_day: date
    issue_time: str
    scores: dict[str, dict[str, ScorePayload]] = Field(
        description="group (asset kind, park) -> method (forecast, persistence, similar_day)"
    )
    error_quantiles: dict[str, dict[str, float]] = Field(
        description="group -> quantile -> (actual - forecast) / the series' mean |actual| that day"
    )
    note: str


def _finite(value: float) -> float | None:
    return None if not math.isfinite(value) else round(value, 3)


def forecast_payload(f: ParkForecast) -> ForecastPayload:
    """The API's form of a forecast (NaN as null, kW as stored, rounded to watts)."""
    return ForecastPayload(
        park=f.park,
        issued_at=f.issued_at,
        start=f.start,
        start_day=f.start_day,
        days=f.days,
        interval_minutes=INTERVAL_S // 60,
        series=[
            SeriesPayload(
                series=s.series,
                kind=s.kind,
                method=s.method,
                note=s.note,
                # as stored (float32), so the issuing answer and a later read agree
                kw=[_finite(v) for v in s.kw.astype(np.float32).astype(np.float64).tolist()],
            )
            for s in f.series.values()
        ],
        sessions=[
            SessionPayload(
                asset_id=s.asset_id,
                arrival=s.arrival,
                departure=s.departure,
                energy_needed_kwh=s.energy_needed_kwh,
                probability=s.probability,
                days=s.days,
            )
            for sessions in f.sessions.values()
            for s in sessions
        ],
    )


def backtest_payload(b: BacktestSummary) -> BacktestPayload:
    """The API's form of a backtest summary (NaN as null)."""
    return BacktestPayload(
        park=b.park,
        computed_at=b.computed_at,
        first_day=b.first_day,
        last_day=b.last_day,
        issue_time=b.issue_time,
        scores={
            g: {
                m: ScorePayload(nmae=_finite(s.nmae), bias=_finite(s.bias), intervals=s.intervals)
                for m, s in ms.items()
            }
            for g, ms in b.scores.items()
        },
        error_quantiles={
            g: {q: v for q, v in qs.items() if math.isfinite(v)}
            for g, qs in b.error_quantiles.items()
        },
        note=b.note,
    )


def _forecasters(app: web.Application) -> dict[str, Forecaster]:
    return app.get(FORECASTERS_KEY, FORECASTERS)


async def get_forecast(request: web.Request) -> web.Response:
    """The park's latest forecast; 404 when none was issued yet."""
    park = request.match_info["park"]
    found = await request.app[FORECASTS].latest(park)
    if found is None:
        raise NotFound("forecast", park)
    return json_response(forecast_payload(found), exclude_none=False)


async def post_forecast(request: web.Request) -> web.Response:
    """Issue the park's forecast now, store it and answer it."""
    app = request.app
    issued = await issue_forecast(
        app[STATE], app[HISTORY], app[FORECASTS], request.match_info["park"],
        service_now(request), app[SETTINGS].forecast, _forecasters(app), app.get(EXTRA_CONTEXT),
    )  # fmt: skip
    return json_response(forecast_payload(issued), exclude_none=False)


async def get_backtest(request: web.Request) -> web.Response:
    """The park's latest backtest; 404 when none ran yet."""
    park = request.match_info["park"]
    found = await request.app[FORECASTS].backtest(park)
    if found is None:
        raise NotFound("forecast backtest", park)
    return json_response(backtest_payload(found), exclude_none=False)


async def post_backtest(request: web.Request) -> web.Response:
    """Run the day-ahead backtest over the last ``days`` complete days, store it, answer it.

    Raises:
        Conflict: the history is too short for one scored day, or empty on them.
    """
    app = request.app
    days: int = query(request)["days"]
    try:
        summary = await run_backtest(
            app[STATE], app[HISTORY], app[FORECASTS], request.match_info["park"],
            service_now(request), app[SETTINGS].forecast, days, _forecasters(app),
            app.get(EXTRA_CONTEXT),
        )  # fmt: skip
    except ValueError as exc:
        raise Conflict(str(exc)) from None
    return json_response(backtest_payload(summary), exclude_none=False)


_Days = Annotated[int, Field(ge=1, le=60)]

ROUTES = [
    Route("GET", "/v1/parks/{park}/forecast", get_forecast, "getForecast",
          "The park's latest forecast per asset and meter (15-minute intervals from the issue "
          "day's midnight)", _READ,
          response=ForecastPayload, errors=(404,), tags=("forecast",),
          problems={404: "no such park, or no forecast issued yet"}),
    Route("POST", "/v1/parks/{park}/forecast", post_forecast, "issueForecast",
          "Issue the park's forecast now from its history (stored as its latest)", _WRITE,
          response=ForecastPayload, errors=(404,), tags=("forecast",)),
    Route("GET", "/v1/parks/{park}/forecast/backtest", get_backtest, "getForecastBacktest",
          "The park's latest day-ahead backtest: nMAE and bias per kind and for the park, of "
          "the forecast, persistence and the similar-day profile", ALL_ROLES,
          response=BacktestPayload, errors=(404,), tags=("forecast",),
          problems={404: "no such park, or no backtest run yet"}),
    Route("POST", "/v1/parks/{park}/forecast/backtest", post_backtest, "runForecastBacktest",
          "Run the day-ahead backtest over the last days complete days (stored as the latest)",
          _WRITE, response=BacktestPayload, errors=(404, 409, 422), tags=("forecast",),
          query={"days": Query("complete days scored, the most recent (1-60, default 14)",
                               _Days, 14)},
          problems={409: "the history is too short (3 complete days at least) or holds "
                         "nothing on the days scored",
                    422: "days outside 1-60"}),
]  # fmt: skip
