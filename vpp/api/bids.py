"""Bid and flexibility routes.

``POST /v1/parks/{park}/bids`` builds a certified demand-response bid from the
live flexibility and stores it; ``GET …/bids/{bid}`` returns it as JSON or, with
``?format=csv`` (and ``resolution=hourly`` for the 24-point form), as the
table a market platform takes. ``GET …/flexibility`` is the live aggregate
envelope per interval from now on.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
from aiohttp import web
from pydantic import BaseModel, Field

import dispatch as dx
from vpp.api.context import METRICS, SETTINGS, STATE
from vpp.api.events import CLOCK
from vpp.api.io import read_json
from vpp.api.params import query
from vpp.api.routing import ALL_ROLES, Query, Route
from vpp.auth import Role
from vpp.bids import BidRequest, BidStore, bid_table_csv, build_park_bid, parse_bid_request
from vpp.flex import build_view, grid_at

__all__ = ["BIDS", "ROUTES"]

#: The bid store of the app.
BIDS = web.AppKey("vpp.bids", BidStore)

_BIDDERS = frozenset({Role.PARK_OPERATOR, Role.GRID_OPERATOR})


class BidPayload(BaseModel):
    """A stored bid: per-interval baseline, up and down capacity, price curves."""

    # `BidRecord.to_json`; declared a plain object, as /openapi.json has always shown it.
    bid: dict[str, Any]


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


def _now(request: web.Request) -> datetime:
    clock = request.app.get(CLOCK)
    return clock.now() if clock is not None else datetime.now(UTC)


async def create_bid(request: web.Request) -> web.Response:
    """Build and store a bid: 201, or 422 naming the field (or ``park`` with no flexibility)."""
    park = request.match_info["park"]
    req = parse_bid_request(await read_json(request))
    req.check_window(_now(request))
    started = time.perf_counter()
    bid = await build_park_bid(request.app[STATE], park, req)
    request.app[METRICS].solver_seconds.labels("bid").observe(time.perf_counter() - started)
    await request.app[BIDS].put(bid)
    location = f"/v1/parks/{park}/bids/{bid.id}"
    return web.json_response({"bid": bid.to_json()}, status=201, headers={"Location": location})


async def get_bid(request: web.Request) -> web.StreamResponse:
    """A stored bid as JSON, or ``?format=csv[&resolution=hourly]`` as a table."""
    m = request.match_info
    bid = await request.app[BIDS].get(m["park"], m["bid"])
    fmt, resolution = query(request)["format"], query(request)["resolution"]
    if fmt == "csv":
        return web.Response(text=bid_table_csv(bid, resolution), content_type="text/csv")
    return web.json_response({"bid": bid.to_json()})


async def get_flexibility(request: web.Request) -> web.Response:
    """Live aggregate flexibility from the current interval on (``?intervals=`` default 96)."""
    park = request.match_info["park"]
    n: int = query(request)["intervals"]
    minutes = request.app[SETTINGS].control.interval_minutes
    now = _now(request)
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
    Route("POST", "/v1/parks/{park}/bids", create_bid, "createBid",
          "Build a certified demand-response bid from the live flexibility", _BIDDERS,
          request=BidRequest, response=BidPayload, status=201, errors=(400, 409, 415, 422),
          tags=("bids",), headers={"Location": "the bid's URL"}),
    Route("GET", "/v1/parks/{park}/bids/{bid}", get_bid, "getBid",
          "A stored bid (JSON, or CSV table with format=csv)", _BIDDERS, response=BidPayload,
          errors=(404, 409, 422), tags=("bids",), text_types=("text/csv",),
          query={"format": Query("json (default) or csv", Literal["json", "csv"], "json"),
                 "resolution": Query("quarter (default) or hourly (CSV only; 409 when the "
                                     "bid has no hourly form)",
                                     Literal["quarter", "hourly"], "quarter")}),
    Route("GET", "/v1/parks/{park}/flexibility", get_flexibility, "getFlexibility",
          "Live aggregate flexibility envelope per interval", ALL_ROLES,
          response=FlexibilityPayload, errors=(422,), tags=("flexibility",),
          query={"intervals": Query("how many intervals from now (default 96)",
                                    Annotated[int, Field(ge=1, le=192)], 96)}),
]  # fmt: skip
