"""The flexibility route: the park's aggregate envelope per interval, on its forecast.

``GET /v1/parks/{park}/flexibility`` lays the park's flexible assets (those
with fresh telemetry, `vpp.flex.build_view`, with the park's latest forecast:
loads around their forecast, PV at its forecast generation, chargers with
their expected sessions, each anchored to its live reading) on a grid from
the current interval on and answers, per interval, the baseline, the up and
down capacity and the energy band, with the assets left out and why, the
forecast's issue time and what each kind was laid around. It keeps no
forecast-error margin (a bid does).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import numpy as np
from aiohttp import web
from pydantic import BaseModel, Field

import dispatch as dx
from vpp.api.context import METRICS, SETTINGS, STATE, service_now
from vpp.api.params import query
from vpp.api.routing import ALL_ROLES, Query, Route
from vpp.flex import build_view, grid_at
from vpp.outlook import load_outlook

__all__ = ["ROUTES"]


class FlexibilityPayload(BaseModel):
    """The live aggregate envelope per interval."""

    park: str
    start: datetime
    interval_minutes: int
    assets_included: int
    assets_excluded: dict[str, str] = Field(description="asset id -> why it is left out")
    baseline_kw: list[float]
    up_kw: list[float]
    down_kw: list[float]
    energy_min_kwh: list[float]
    energy_max_kwh: list[float]
    forecast_issued_at: datetime | None = Field(
        description="issue time of the forecast used; null when none is stored"
    )
    forecast_methods: dict[str, dict[str, int]] = Field(
        description="asset kind -> what its envelopes were laid around (the forecast's "
        "method, enrolled_baseline, live_output, live_session, sessions, live_soc, ...) -> "
        "how many assets"
    )
    notes: dict[str, str] = Field(description="asset id -> what was assumed for it")


async def get_flexibility(request: web.Request) -> web.Response:
    """Live aggregate flexibility from the current interval on (``?intervals=`` default 96)."""
    park = request.match_info["park"]
    n: int = query(request)["intervals"]
    minutes = request.app[SETTINGS].control.interval_minutes
    now = service_now(request)
    start = now - timedelta(
        minutes=now.minute % minutes, seconds=now.second, microseconds=now.microsecond
    )
    state = request.app[STATE]
    assets = await state.list_assets(park)
    live = await state.read_live_many(park, [a.id for a in assets])
    grid = grid_at(start, n, minutes)
    outlook, _ = await load_outlook(state, park, assets, live, grid, now, request.app[SETTINGS])
    view = build_view(assets, live, grid, outlook=outlook)
    zeros = [0.0] * n
    body: dict[str, Any] = {
        "park": park,
        "start": start.isoformat(),
        "interval_minutes": minutes,
        "assets_included": view.included,
        "assets_excluded": view.excluded,
        "baseline_kw": zeros,
        "up_kw": zeros,
        "down_kw": zeros,
        "energy_min_kwh": zeros,
        "energy_max_kwh": zeros,
        "forecast_issued_at": (
            view.forecast_issued_at.isoformat() if view.forecast_issued_at is not None else None
        ),
        "forecast_methods": view.methods(),
        "notes": view.notes,
    }
    if view.portfolio is not None:
        env = dx.flexibility_envelope(view.portfolio)
        for name in ("baseline_kw", "up_kw", "down_kw", "energy_min_kwh", "energy_max_kwh"):
            body[name] = [round(float(v), 3) for v in np.asarray(getattr(env, name))]
        metrics = request.app[METRICS]
        metrics.flex_up.labels(park).set(body["up_kw"][0])
        metrics.flex_down.labels(park).set(body["down_kw"][0])
    return web.json_response(body)


ROUTES = [
    Route("GET", "/v1/parks/{park}/flexibility", get_flexibility, "getFlexibility",
          "Aggregate flexibility envelope per interval (live state and forecast)", ALL_ROLES,
          response=FlexibilityPayload, errors=(422,), tags=("flexibility",),
          query={"intervals": Query("how many intervals from now (default 96)",
                                    Annotated[int, Field(ge=1, le=192)], 96)}),
]  # fmt: skip
