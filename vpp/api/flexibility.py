"""The flexibility route: the park's live aggregate envelope per interval.

``GET /v1/parks/{park}/flexibility`` lays the park's flexible assets (those
with fresh telemetry, `vpp.flex.build_view`) on a grid from the current
interval on and answers, per interval, the baseline, the up and down
capacity and the energy band, with the assets left out and why.
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
    view = build_view(assets, live, grid)
    zeros = [0.0] * n
    body: dict[str, Any] = {
        "park": park,
        "start": start.isoformat(),
        "interval_minutes": minutes,
        "assets_included": len(view.assets),
        "assets_excluded": view.excluded,
        "baseline_kw": zeros,
        "up_kw": zeros,
        "down_kw": zeros,
        "energy_min_kwh": zeros,
        "energy_max_kwh": zeros,
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
          "Live aggregate flexibility envelope per interval", ALL_ROLES,
          response=FlexibilityPayload, errors=(422,), tags=("flexibility",),
          query={"intervals": Query("how many intervals from now (default 96)",
                                    Annotated[int, Field(ge=1, le=192)], 96)}),
]  # fmt: skip
