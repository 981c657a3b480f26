"""Bid routes.

``POST /v1/parks/{park}/bids`` builds a certified demand-response bid from the
live flexibility and stores it; ``GET …/bids/{bid}`` returns it as JSON or, with
``?format=csv`` (and ``resolution=hourly`` for the 24-point form), as the
table a market platform takes. The live envelope is ``vpp.api.flexibility``.
"""

from __future__ import annotations

import time
from typing import Literal

from aiohttp import web
from pydantic import BaseModel

from vpp.api.context import METRICS, SETTINGS, STATE, service_now
from vpp.api.io import read_json
from vpp.api.params import query
from vpp.api.routing import Query, Route
from vpp.auth import Role
from vpp.bids import (
    BidRecord,
    BidRequest,
    BidStore,
    bid_table_csv,
    build_park_bid,
    parse_bid_request,
)

__all__ = ["BIDS", "ROUTES"]

#: The bid store of the app.
BIDS = web.AppKey("vpp.bids", BidStore)

_BIDDERS = frozenset({Role.PARK_OPERATOR, Role.GRID_OPERATOR})


class BidPayload(BaseModel):
    """A stored bid: per-interval baseline, up and down capacity, price curves."""

    # Documents the body only: the handlers write `BidRecord.to_json`, the
    # stored form, whose optional parts are absent rather than null.
    bid: BidRecord


async def create_bid(request: web.Request) -> web.Response:
    """Build and store a bid: 201, 422 naming the field, or 409 when nothing is flexible."""
    park = request.match_info["park"]
    req = parse_bid_request(await read_json(request))
    req.check_window(service_now(request))
    started = time.perf_counter()
    bid = await build_park_bid(
        request.app[STATE], park, req, now=service_now(request), settings=request.app[SETTINGS]
    )
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
]  # fmt: skip
