"""Park routes: list the parks a token sees, read one, set its metadata."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError, create_model

from vpp.api.context import STATE, principal
from vpp.api.io import json_response, read_json
from vpp.api.routing import ALL_ROLES, Route
from vpp.api.schemas import ParkList
from vpp.auth import Role
from vpp.model import Park, ParkSummary, invalid_input, parse_json_data

__all__ = ["ROUTES"]


#: The body of ``PUT /v1/parks/{park}``: a park's metadata without ``id`` (the
#: path names the park, so a body cannot disagree with it).
_METADATA: dict[str, Any] = {
    name: (f.annotation, f) for name, f in Park.model_fields.items() if name != "id"
}
ParkBody = create_model(
    "ParkBody",
    __base__=Park.__base__,
    __doc__="A park's metadata (the path names the park).",
    **_METADATA,
)


async def list_parks(request: web.Request) -> web.Response:
    """Every park the token may touch, with asset counts by kind."""
    state = request.app[STATE]
    who = principal(request)
    items = [
        ParkSummary(park=await state.get_park(p), assets=await state.count_assets(p))
        for p in await state.list_parks()
        if who.may_touch(p)
    ]
    return json_response(ParkList(items=items))


async def get_park(request: web.Request) -> web.Response:
    """One park with its asset counts by kind."""
    state = request.app[STATE]
    park = request.match_info["park"]
    summary = ParkSummary(park=await state.get_park(park), assets=await state.count_assets(park))
    return json_response(summary)


async def put_park(request: web.Request) -> web.Response:
    """Create or replace a park's metadata (name, timezone, baseline, enterprises, carbon).

    A change is logged in the park log (``park.updated``: who, the fields
    that changed, and the metadata before and after), so a change of the
    grid emission factor that moves the ledger's open months and the event
    reports can be traced; the same metadata again logs nothing.
    """
    park_id = request.match_info["park"]
    body = await read_json(request)
    try:
        meta = parse_json_data(ParkBody, body)
    except ValidationError as exc:
        raise invalid_input(exc) from exc
    park = Park(id=park_id, **meta.model_dump())
    who = principal(request)
    await request.app[STATE].update_park(park, by=who.name, role=who.role.value)
    return json_response(park)


ROUTES = [
    Route("GET", "/v1/parks", list_parks, "listParks", "List the parks this token may see",
          ALL_ROLES, response=ParkList, tags=("parks",)),
    Route("GET", "/v1/parks/{park}", get_park, "getPark", "Read a park and its asset counts",
          ALL_ROLES, response=ParkSummary, errors=(404,), tags=("parks",)),
    Route("PUT", "/v1/parks/{park}", put_park, "putPark", "Create or replace park metadata",
          frozenset({Role.PARK_OPERATOR}), request=ParkBody, response=Park,
          errors=(400, 415, 422), tags=("parks",), creates_park=True),
]  # fmt: skip
