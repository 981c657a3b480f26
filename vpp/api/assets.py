"""Asset routes: enroll, list, read, patch, retire."""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from vpp.api.context import STATE
from vpp.api.io import json_response, read_json
from vpp.api.params import query
from vpp.api.routing import Query, Route
from vpp.api.schemas import AssetList, AssetPatch, AssetPayload
from vpp.auth import Role
from vpp.errors import FieldError, InvalidInput
from vpp.model import parse_asset

__all__ = ["ROUTES"]

_WRITE = frozenset({Role.PARK_OPERATOR})
_READ = frozenset({Role.PARK_OPERATOR, Role.VIEWER})
_COLLECTION = "/v1/parks/{park}/assets"
_ITEM = "/v1/parks/{park}/assets/{asset}"


async def enroll(request: web.Request) -> web.Response:
    """Enroll an asset: 201 with its Location, 409 on a duplicate id, 422 on bad input."""
    park = request.match_info["park"]
    asset = parse_asset(await read_json(request))
    stored = await request.app[STATE].enroll(park, asset)
    location = _ITEM.format(park=park, asset=stored.id)
    return json_response(AssetPayload(stored), status=201, headers={"Location": location})


async def list_assets(request: web.Request) -> web.Response:
    """The park's enrolled assets, optionally of one ``kind``."""
    kind = query(request)["kind"]
    items = await request.app[STATE].list_assets(request.match_info["park"], kind)
    return json_response(AssetList(items=items))


async def get_asset(request: web.Request) -> web.Response:
    """One enrolled asset."""
    m = request.match_info
    return json_response(AssetPayload(await request.app[STATE].get_asset(m["park"], m["asset"])))


async def patch_asset(request: web.Request) -> web.Response:
    """Change an enrolled asset with a JSON merge patch."""
    m = request.match_info
    patch = await read_json(request)
    if not isinstance(patch, dict):
        raise InvalidInput([FieldError("body", "must be a JSON object", "dict_type")])
    changed = await request.app[STATE].patch_asset(m["park"], m["asset"], patch)
    return json_response(AssetPayload(changed))


async def retire(request: web.Request) -> web.Response:
    """Retire an asset: it leaves the registry and its live state goes."""
    m = request.match_info
    await request.app[STATE].retire(m["park"], m["asset"])
    return web.Response(status=204)


ROUTES = [
    Route("POST", _COLLECTION, enroll, "enrollAsset", "Enroll an asset", _WRITE,
          request=AssetPayload, response=AssetPayload, status=201, errors=(400, 409, 415, 422),
          tags=("assets",), creates_park=True, headers={"Location": "the asset's URL"}),
    Route("GET", _COLLECTION, list_assets, "listAssets", "List enrolled assets", _READ,
          response=AssetList, errors=(422,), tags=("assets",),
          query={"kind": Query("only assets of this kind",
                               Literal["battery", "ev_charger", "flexible_load", "pv", "meter"])}),
    Route("GET", _ITEM, get_asset, "getAsset", "Read an enrolled asset", _READ,
          response=AssetPayload, errors=(404,), tags=("assets",)),
    Route("PATCH", _ITEM, patch_asset, "patchAsset", "Change an asset (JSON merge patch)",
          _WRITE, request=AssetPatch, response=AssetPayload, errors=(400, 404, 409, 415, 422),
          tags=("assets",), request_content_type="application/merge-patch+json"),
    Route("DELETE", _ITEM, retire, "retireAsset", "Retire an asset", _WRITE,
          status=204, errors=(404,), tags=("assets",)),
]  # fmt: skip
