"""Every role x every route x own park / other park, plus the 401 cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.vpp.conftest import ApiClient, TokenFactory
from tests.vpp.samples import OTHER_PARK, PARK, sample, stored_bid
from vpp.api import assets, bids, events, flexibility, history, irradiance, meters, parks
from vpp.auth import Role
from vpp.bids import BidRecord, BidStore
from vpp.events import EventStore, parse_event_request
from vpp.model import LiveState, parse_asset
from vpp.state import State

OP, GRID, VIEW, ADMIN = Role.PARK_OPERATOR, Role.GRID_OPERATOR, Role.VIEWER, Role.ADMIN
ALL = {OP, GRID, VIEW, ADMIN}

# The policy of DESIGN.md, stated independently of the code: operation -> roles allowed.
POLICY: dict[str, set[Role]] = {
    "enrollAsset": {OP, ADMIN},
    "listAssets": {OP, VIEW, ADMIN},
    "getAsset": {OP, VIEW, ADMIN},
    "patchAsset": {OP, ADMIN},
    "retireAsset": {OP, ADMIN},
    "listParks": ALL,
    "getPark": ALL,
    "putPark": {OP, ADMIN},
    "getFlexibility": ALL,
    "createBid": {OP, GRID, ADMIN},
    "getBid": {OP, GRID, ADMIN},
    "createEvent": {GRID, ADMIN},
    "listEvents": ALL,
    "getEvent": ALL,
    "modifyEvent": {GRID, ADMIN},
    "cancelEvent": {GRID, ADMIN},
    "getEventReport": ALL,
    "importMeterReadings": {OP, GRID, ADMIN},
    "getHistory": {OP, VIEW, ADMIN},
    "putIrradiance": {OP, GRID, ADMIN},
    "getIrradiance": {OP, GRID, VIEW, ADMIN},
}
ROUTES = {
    r.operation_id: r
    for module in (assets, parks, bids, flexibility, events, meters, history, irradiance)
    for r in module.ROUTES
}
METER = {"kind": "meter", "id": "m-1", "owner": "o", "grid_node": "n", "account_no": "0301"}
# Tomorrow 06:00: an event or bid window must lie ahead (and within a year).
_START = (datetime.now(UTC) + timedelta(days=1)).replace(hour=6, minute=0, second=0, microsecond=0)
_START_ISO = _START.isoformat()
BODIES: dict[str, Any] = {
    "enrollAsset": sample(id="bess-new"),
    "patchAsset": {"name": "renamed"},
    "putPark": {"name": "renamed park"},
    "createBid": {"start": _START_ISO, "intervals": 8, "rules": {"min_capacity_kw": 0}},
    "createEvent": {
        "id": "ev-new",
        "kind": "peak_shaving",
        "start": _START_ISO,
        "target_kw": 100,
        "duration_minutes": 60,
    },
    "modifyEvent": {"targets_kw": [50, 50, 50, 50]},
    # a day that is over in any time zone
    "importMeterReadings": {"days": [{"date": (_START - timedelta(days=3)).date().isoformat(),
                                      "energy_kwh": [1.0] * 96}]},
    # tomorrow 06:00 UTC: within 16 days of the park's today in any time zone
    "putIrradiance": {"values": [{"start": _START_ISO, "ghi_w_m2": 100.0}]},
}  # fmt: skip


def test_declared_roles_match_the_policy() -> None:
    assert set(ROUTES) == set(POLICY)
    for op, route in ROUTES.items():
        assert route.roles is not None
        assert route.roles | {ADMIN} == POLICY[op], op


@pytest.fixture
async def enrolled(state: State) -> None:
    for park in (PARK, OTHER_PARK):
        await state.enroll(park, parse_asset(sample()))
        await state.enroll(park, parse_asset(METER))
        await state.write_live(park, "bess-01", LiveState(power_kw=0, soc=0.5), ttl=60)
        # two hours before the one createEvent posts: events of a park must not overlap
        earlier = (_START - timedelta(hours=2)).isoformat()
        request = parse_event_request({**BODIES["createEvent"], "id": "ev-1", "start": earlier})
        await EventStore(state).create(park, request, datetime.now(UTC))
        await BidStore(state).put(BidRecord.model_validate(stored_bid(id="bid-1", park=park)))


def _request(op: str, park: str) -> tuple[str, str, dict[str, Any]]:
    route = ROUTES[op]
    path = route.path.format(park=park, asset="bess-01", event="ev-1", bid="bid-1", meter="m-1")
    body = {"json": BODIES[op]} if op in BODIES else {}
    return route.method, path, body


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("op", list(POLICY))
@pytest.mark.parametrize("which", ["own", "other"])
async def test_role_route_park(
    client: ApiClient, auth: TokenFactory, enrolled: None, role: Role, op: str, which: str
) -> None:
    # A park operator / viewer / grid operator token is for PARK; admin has no park list.
    headers = await auth(role.value, *([] if role is ADMIN else [PARK]))
    park = PARK if which == "own" else OTHER_PARK
    method, path, body = _request(op, park)
    resp = await client.request(method, path, headers=headers, **body)
    park_in_path = "{park}" in ROUTES[op].path
    allowed = role in POLICY[op] and (role is ADMIN or which == "own" or not park_in_path)
    if allowed:
        assert resp.status == ROUTES[op].status, await resp.text()
    else:
        assert resp.status == 403, await resp.text()
        assert resp.content_type == "application/problem+json"


async def test_list_parks_shows_only_own_parks(
    client: ApiClient, auth: TokenFactory, enrolled: None
) -> None:
    resp = await client.get("/v1/parks", headers=await auth("viewer", PARK))
    assert [i["park"]["id"] for i in (await resp.json())["items"]] == [PARK]
    resp = await client.get("/v1/parks", headers=await auth("admin"))
    assert [i["park"]["id"] for i in (await resp.json())["items"]] == [PARK, OTHER_PARK]
    resp = await client.get("/v1/parks", headers=await auth("viewer", "*"))
    assert len((await resp.json())["items"]) == 2


@pytest.mark.parametrize("op", list(POLICY))
@pytest.mark.parametrize(
    "header", [None, "Bearer vpp_not-a-real-token", "Basic dXNlcjpwYXNz", "Bearer", "vpp_x"]
)
async def test_missing_or_unknown_token_is_401(
    client: ApiClient, enrolled: None, op: str, header: str | None
) -> None:
    method, path, body = _request(op, PARK)
    headers = {} if header is None else {"Authorization": header}
    resp = await client.request(method, path, headers=headers, **body)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert resp.content_type == "application/problem+json"


async def test_ops_routes_need_no_token(client: ApiClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert (await client.get(path)).status == 200, path


async def test_head_does_not_bypass_auth(client: ApiClient, enrolled: None) -> None:
    resp = await client.head(f"/v1/parks/{PARK}/assets")
    assert resp.status in (401, 405)


async def test_tokens_are_stored_hashed(state: State, auth: TokenFactory) -> None:
    headers = await auth("viewer", PARK)
    secret = headers["Authorization"].split()[1]
    keys = [k async for k in state.redis.scan_iter(match=state.keys.token_pattern)]
    assert len(keys) == 1
    assert secret.encode() not in keys[0]
    stored = await state.redis.get(keys[0])
    assert stored is not None and secret.encode() not in stored
