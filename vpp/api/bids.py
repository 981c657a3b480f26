"""Bid routes.

``POST /v1/parks/{park}/bids`` builds a certified demand-response bid from the
live flexibility and stores it; ``GET …/bids/{bid}`` returns it as JSON or, with
``?format=csv`` (and ``resolution=hourly`` for the 24-point form), as the
table a market platform takes. The live envelope is ``vpp.api.flexibility``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, RootModel

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
from vpp.bids.declaration import Declaration, apply_profile, declaration_csv, declare
from vpp.errors import Conflict
from vpp.market import MarketProfile

__all__ = ["BIDS", "PROFILES", "ROUTES"]

#: The bid store of the app.
BIDS = web.AppKey("vpp.bids", BidStore)
#: The configured market rule profiles (`vpp.market.load_profiles`), by name.
PROFILES: web.AppKey[Mapping[str, MarketProfile]] = web.AppKey("vpp.market_profiles")

_BIDDERS = frozenset({Role.PARK_OPERATOR, Role.GRID_OPERATOR})


class BidPayload(BaseModel):
    """A stored bid: per-interval baseline, up and down capacity, price curves."""

    # Documents the body only: the handlers write `BidRecord.to_json`, the
    # stored form, whose optional parts are absent rather than null.
    bid: BidRecord


class DeclarationPayload(BaseModel):
    """A bid's declaration per trading unit, checked against its rule profile."""

    declaration: Declaration


class BidView(RootModel[BidPayload | DeclarationPayload]):
    """A stored bid (``format=json``) or its declaration (``format=declaration``)."""


async def create_bid(request: web.Request) -> web.Response:
    """Build and store a bid: 201, 422 naming the field, or 409 when nothing is flexible."""
    park = request.match_info["park"]
    req = apply_profile(parse_bid_request(await read_json(request)), request.app[PROFILES])
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
    """A stored bid as JSON, ``?format=csv[&resolution=hourly]`` as a table, or its declaration.

    ``format=declaration`` (JSON) / ``declaration-csv``: the Guangdong
    declaration per trading unit (`vpp.bids.declaration`), checked against the
    bid's profile or ``[market] default_profile``, its market day the park's
    local day (``Park.timezone``); 409 when the bid has no trading units or
    is not whole hours.
    """
    m = request.match_info
    bid = await request.app[BIDS].get(m["park"], m["bid"])
    fmt, resolution = query(request)["format"], query(request)["resolution"]
    if fmt == "csv":
        return web.Response(text=bid_table_csv(bid, resolution), content_type="text/csv")
    if fmt in ("declaration", "declaration-csv"):
        name = bid.profile or request.app[SETTINGS].market.default_profile
        profile = request.app[PROFILES].get(name)
        if profile is None:
            # The bid was asked under a profile the configuration no longer has.
            raise Conflict(f"profile: the bid's market profile {name!r} is not configured")
        # The market day is the park's local calendar day (Park.timezone).
        park = await request.app[STATE].get_park(bid.park)
        decl = declare(bid, profile, park.timezone)
        if fmt == "declaration-csv":
            return web.Response(text=declaration_csv(decl), content_type="text/csv")
        return web.json_response({"declaration": decl.model_dump(mode="json")})
    return web.json_response({"bid": bid.to_json()})


ROUTES = [
    Route("POST", "/v1/parks/{park}/bids", create_bid, "createBid",
          "Build a certified demand-response bid from the live flexibility", _BIDDERS,
          request=BidRequest, response=BidPayload, status=201, errors=(400, 409, 415, 422),
          tags=("bids",), headers={"Location": "the bid's URL"}),
    Route("GET", "/v1/parks/{park}/bids/{bid}", get_bid, "getBid",
          "A stored bid (JSON, CSV table with format=csv, or its declaration per trading unit)",
          _BIDDERS, response=BidView, errors=(404, 409, 422), tags=("bids",),
          text_types=("text/csv",),
          query={"format": Query("json (default), csv, declaration (JSON: per trading unit, "
                                 "checked against the bid's market profile; 409 when the bid "
                                 "has no trading units or whole hours) or declaration-csv",
                                 Literal["json", "csv", "declaration", "declaration-csv"],
                                 "json"),
                 "resolution": Query("quarter (default) or hourly (CSV only; 409 when the "
                                     "bid has no hourly form)",
                                     Literal["quarter", "hourly"], "quarter")}),
]  # fmt: skip
