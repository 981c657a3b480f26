"""The OpenAPI document is the truth: what it calls valid is served, what it refuses is a 422.

Regression tests of issue 8 ("The OpenAPI document is the truth"), each an
exact input that went wrong, over a real loopback server and real Redis;
plus the rule behind them, checked input by input against the document the
server itself publishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.vpp.conftest import ApiClient, TokenFactory
from tests.vpp.samples import PARK, STORED_BID, sample
from vpp.api import create_app
from vpp.bids import BidRecord
from vpp.clock import Clock
from vpp.events import EventReport, EventState, EventStore
from vpp.metrics import Metrics
from vpp.settings import Settings
from vpp.state import State, pack

#: The service clock of these tests: fixed, so "passed" is judged against it, not the wall.
NOW = datetime(2026, 7, 1, 10, 5, tzinfo=UTC)
PROBLEM = "application/problem+json"


@pytest.fixture
async def client(settings: Settings, state: State) -> AsyncIterator[ApiClient]:
    app = create_app(settings, state, metrics=Metrics(), clock=Clock(origin=NOW))
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


@pytest.fixture
async def doc(client: ApiClient) -> dict[str, Any]:
    result: dict[str, Any] = await (await client.get("/openapi.json")).json()
    return result


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    root = {**schema, "components": doc["components"]}
    return jsonschema.Draft202012Validator(root)


def _event(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "ev-1",
        "kind": "peak_shaving",
        "start": (NOW + timedelta(hours=1)).isoformat(),
        "target_kw": 500,
        "duration_minutes": 60,
    }
    body.update(over)
    return body


async def _problem_fields(resp: Any) -> list[str]:
    assert resp.content_type == PROBLEM, await resp.text()
    return [e["field"] for e in (await resp.json())["errors"]]


# -- the exact inputs of the issue -------------------------------------------------


async def test_empty_kind_query_is_documented_as_invalid_and_refused(
    client: ApiClient, park: None, operator: dict[str, str], doc: dict[str, Any]
) -> None:
    op = doc["paths"]["/v1/parks/{park}/assets"]["get"]
    (kind,) = [p for p in op["parameters"] if p["name"] == "kind"]
    assert not _validator(doc, kind["schema"]).is_valid("")
    assert _validator(doc, kind["schema"]).is_valid("battery")
    resp = await client.get(f"/v1/parks/{PARK}/assets?kind=", headers=operator)
    assert resp.status == 422
    assert await _problem_fields(resp) == ["kind"]
    resp = await client.get(f"/v1/parks/{PARK}/assets?kind=battery", headers=operator)
    assert resp.status == 200
    assert len((await resp.json())["items"]) == 4


async def test_boolean_unit_id_is_refused(
    client: ApiClient, park: None, operator: dict[str, str]
) -> None:
    connection = {"protocol": "modbus", "host": "10.0.3.99", "unit_id": False}
    body = sample(id="bess-bool", connection=connection)
    resp = await client.post(f"/v1/parks/{PARK}/assets", json=body, headers=operator)
    assert resp.status == 422
    assert await _problem_fields(resp) == ["connection.unit_id"]


async def test_boolean_target_is_refused_on_create_and_modify(
    client: ApiClient, park: None, grid: dict[str, str]
) -> None:
    url = f"/v1/parks/{PARK}/events"
    body = _event(target_kw=None, duration_minutes=None, targets_kw=[False])
    resp = await client.post(url, json=body, headers=grid)
    assert resp.status == 422
    assert [f.split(".")[0] for f in await _problem_fields(resp)] == ["targets_kw"]
    assert (await client.post(url, json=_event(), headers=grid)).status == 202
    resp = await client.patch(f"{url}/ev-1", json={"targets_kw": [False] * 4}, headers=grid)
    assert resp.status == 422
    assert {f.split(".")[0] for f in await _problem_fields(resp)} == {"targets_kw"}


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/parks/%C2%84/events", "park"),
        ("/v1/parks/a%20b/assets", "park"),
        (f"/v1/parks/{PARK}/assets/a%20b", "asset"),
        (f"/v1/parks/{PARK}/events/{'e' * 65}", "event"),
        (f"/v1/parks/{PARK}/events/x:y/report", "event"),
        (f"/v1/parks/{PARK}/bids/%E2%82%AC", "bid"),
    ],
)
async def test_path_parameter_outside_its_pattern_is_refused(
    client: ApiClient, park: None, auth: TokenFactory, path: str, name: str
) -> None:
    resp = await client.get(path, headers=await auth("admin"))
    assert resp.status == 422, await resp.text()
    assert await _problem_fields(resp) == [name]


async def test_report_matches_its_documented_schema(
    client: ApiClient, park: None, grid: dict[str, str], doc: dict[str, Any]
) -> None:
    url = f"/v1/parks/{PARK}/events"
    assert (await client.post(url, json=_event(), headers=grid)).status == 202
    resp = await client.get(f"{url}/ev-1/report", headers=grid)
    assert resp.status == 200
    report = await resp.json()
    op = doc["paths"]["/v1/parks/{park}/events/{event}/report"]["get"]
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    errors = [e.message for e in _validator(doc, schema).iter_errors(report)]
    assert errors == []
    assert list(report) == list(EventReport.model_fields)  # the report built, key for key
    assert report["intervals"][0]["measured_kw"] is None  # not measured yet: null, and documented
    resp = await client.get(f"{url}/ev-1/report?format=csv", headers=grid)
    assert resp.content_type == "text/csv"
    assert "text/csv" in op["responses"]["200"]["content"]


async def test_a_bid_matches_its_documented_schema(
    client: ApiClient, park: None, grid: dict[str, str], doc: dict[str, Any], state: State
) -> None:
    # The document says what a bid holds (`BidRecord`): a fresh bid and one stored by the
    # earlier version both validate, and a bid missing a part or with a wrong type does not.
    url = f"/v1/parks/{PARK}/bids"
    keys = state.park(PARK)
    await state.redis.set(keys.bid("day-ahead-1"), pack(STORED_BID))
    await state.redis.zadd(keys.bids, {"day-ahead-1": 1.0})
    start = (NOW + timedelta(hours=1)).isoformat()
    body = {"id": "bid-1", "start": start, "intervals": 8, "flat_capacity": True}
    resp = await client.post(url, json=body, headers=grid)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    post = doc["paths"]["/v1/parks/{park}/bids"]["post"]["responses"]["201"]
    get = doc["paths"]["/v1/parks/{park}/bids/{bid}"]["get"]["responses"]["200"]
    schema = get["content"]["application/json"]["schema"]
    # GET gives the bid as POST does, or (format=declaration) its declaration
    view = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert post["content"]["application/json"]["schema"] in view["anyOf"]
    record = doc["components"]["schemas"]["BidRecord"]
    assert list(record["properties"]) == list(BidRecord.model_fields)
    validator = _validator(doc, schema)
    bids = [created]
    for bid_id in ("bid-1", "day-ahead-1"):
        resp = await client.get(f"{url}/{bid_id}", headers=grid)
        assert resp.status == 200
        bids.append(await resp.json())
    assert bids[2] == {"bid": STORED_BID}
    for served in bids:
        assert [e.message for e in validator.iter_errors(served)] == []
    resp = await client.get(f"{url}/bid-1", params={"format": "declaration"}, headers=grid)
    declared = await resp.json()
    assert [e.message for e in validator.iter_errors(declared)] == []
    assert not validator.is_valid({"declaration": {**declared["declaration"], "units": 1}})
    bid = bids[0]["bid"]
    assert not validator.is_valid({"bid": {k: v for k, v in bid.items() if k != "up"}})
    assert not validator.is_valid({"bid": {**bid, "starts": [1.5]}})
    assert not validator.is_valid({"bid": {**bid, "up": {**bid["up"], "deliverable": "yes"}}})


async def test_event_in_the_year_2000_is_refused(
    client: ApiClient, park: None, grid: dict[str, str]
) -> None:
    body = _event(start="2000-01-01T00:00:00Z")
    resp = await client.post(f"/v1/parks/{PARK}/events", json=body, headers=grid)
    assert resp.status == 422
    assert await _problem_fields(resp) == ["start"]
    resp = await client.get(f"/v1/parks/{PARK}/events", headers=grid)
    assert (await resp.json())["items"] == []


# -- events judged against the service clock -----------------------------------------


@pytest.mark.parametrize(
    ("start", "minutes", "status"),
    [
        (NOW - timedelta(hours=2), 60, 422),  # ended an hour ago
        (NOW - timedelta(minutes=60), 60, 422),  # ends exactly now: passed
        (NOW - timedelta(minutes=30), 60, 202),  # running: served from the current interval
        (NOW + timedelta(days=400), 60, 422),  # over a year ahead
    ],
)
async def test_event_window_is_judged_on_the_service_clock(
    client: ApiClient,
    park: None,
    grid: dict[str, str],
    start: datetime,
    minutes: int,
    status: int,
) -> None:
    body = _event(start=start.isoformat(), duration_minutes=minutes)
    resp = await client.post(f"/v1/parks/{PARK}/events", json=body, headers=grid)
    assert resp.status == status, await resp.text()
    if status == 422:
        assert await _problem_fields(resp) == ["start"]
    else:
        expected = (await resp.json())["event"]["expected"]
        # The first two 15-minute intervals were over before the event arrived.
        assert expected["expected_kw"][:2] == [None, None]
        assert all(v is not None for v in expected["expected_kw"][2:])


async def test_a_retry_after_the_window_is_still_a_replay(
    client: ApiClient, park: None, grid: dict[str, str], settings: Settings, state: State
) -> None:
    body = _event(start=(NOW + timedelta(minutes=15)).isoformat(), duration_minutes=15)
    url = f"/v1/parks/{PARK}/events"
    assert (await client.post(url, json=body, headers=grid)).status == 202
    # The same service an hour later: the window is over.
    later = create_app(
        settings, state, metrics=Metrics(), clock=Clock(origin=NOW + timedelta(hours=1))
    )
    async with TestClient(TestServer(later, host="127.0.0.1")) as retry:
        resp = await retry.post(url, json=body, headers=grid)
        assert resp.status == 202
        assert resp.headers["Idempotent-Replay"] == "true"
        resp = await retry.post(url, json={**body, "target_kw": 1}, headers=grid)
        assert resp.status == 409
        resp = await retry.post(url, json={**body, "id": "ev-new"}, headers=grid)
        assert resp.status == 422
        assert await _problem_fields(resp) == ["start"]


async def test_a_bid_for_a_window_that_has_passed_is_refused(
    client: ApiClient, park: None, grid: dict[str, str]
) -> None:
    body = {"start": "2000-01-01T00:00:00Z", "intervals": 8}
    resp = await client.post(f"/v1/parks/{PARK}/bids", json=body, headers=grid)
    assert resp.status == 422
    assert await _problem_fields(resp) == ["start"]


async def test_an_event_far_beyond_the_park_is_accepted_with_what_it_expects(
    client: ApiClient, park: None, grid: dict[str, str], doc: dict[str, Any]
) -> None:
    body = _event(id="huge", target_kw=900_000, duration_minutes=60)  # 900 MW on ~5 MW
    resp = await client.post(f"/v1/parks/{PARK}/events", json=body, headers=grid)
    assert resp.status == 202, await resp.text()
    event = (await resp.json())["event"]
    expected = event["expected"]
    # 4 batteries x 400 kWh above soc_min (~380 kWh delivered each) + 2 x 300 kW shed over 1 h.
    assert 1000 < expected["flat_kw"] < 2700
    assert expected["expected_kw"] == [expected["flat_kw"]] * 4
    assert expected["share"] < 0.01
    assert expected["assets_included"] == 6
    assert "900000 kW asked" in expected["note"]
    stored = await (await client.get(f"/v1/parks/{PARK}/events/huge", headers=grid)).json()
    assert stored["event"]["expected"] == expected
    schema = doc["paths"]["/v1/parks/{park}/events"]["post"]["responses"]["202"]
    root = schema["content"]["application/json"]["schema"]
    assert _validator(doc, root).is_valid(await resp.json())
    assert "expected" in doc["components"]["schemas"]["EventRecord"]["properties"]


async def test_an_event_the_park_can_hold_expects_it_in_full(
    client: ApiClient, park: None, grid: dict[str, str]
) -> None:
    resp = await client.post(f"/v1/parks/{PARK}/events", json=_event(), headers=grid)
    expected = (await resp.json())["event"]["expected"]
    assert expected["expected_kw"] == [500.0] * 4
    assert expected["share"] == 1.0
    assert "in full" in expected["note"]


# -- unknown parks ----------------------------------------------------------------------


async def test_unknown_park_is_404_except_where_a_park_is_made(
    client: ApiClient, auth: TokenFactory
) -> None:
    admin = await auth("admin")
    for method, path, body in [
        ("POST", "/v1/parks/nowhere/events", _event()),
        ("GET", "/v1/parks/nowhere/events", None),
        ("GET", "/v1/parks/nowhere/assets", None),
        ("GET", "/v1/parks/nowhere/flexibility", None),
        ("POST", "/v1/parks/nowhere/bids", {"start": (NOW + timedelta(hours=1)).isoformat()}),
    ]:
        resp = await client.request(method, path, json=body, headers=admin)
        assert resp.status == 404, (method, path)
        assert resp.content_type == PROBLEM
    resp = await client.put("/v1/parks/new-park", json={"name": "New"}, headers=admin)
    assert resp.status == 200
    assert (await client.get("/v1/parks/new-park/events", headers=admin)).status == 200
    resp = await client.post("/v1/parks/other-new/assets", json=sample(), headers=admin)
    assert resp.status == 201
    assert (await client.get("/v1/parks/other-new/assets", headers=admin)).status == 200


# -- the rule behind the cases: document and answer agree, input by input ---------------


def _query_value(schema: dict[str, Any], raw: str) -> Any:
    """The JSON value a query string stands for under ``schema`` (as a client serialises it)."""
    if schema.get("type") == "integer":
        try:
            return int(raw)
        except ValueError:
            return raw
    return raw


QUERIES = [
    ("/v1/parks/{park}/assets", "kind", ["", "battery", "pv", "Battery", "solar"]),
    ("/v1/parks/{park}/flexibility", "intervals", ["", "1", "96", "192", "0", "193", "x", "1.5"]),
    ("/v1/parks/{park}/events/{event}/report", "format", ["", "json", "csv", "xml"]),
]


@pytest.mark.parametrize(("template", "name", "values"), QUERIES)
async def test_query_parameters_agree_with_the_document(
    client: ApiClient,
    park: None,
    grid: dict[str, str],
    auth: TokenFactory,
    doc: dict[str, Any],
    template: str,
    name: str,
    values: list[str],
) -> None:
    resp = await client.post(f"/v1/parks/{PARK}/events", json=_event(), headers=grid)
    assert resp.status == 202
    (param,) = [p for p in doc["paths"][template]["get"]["parameters"] if p["name"] == name]
    validator = _validator(doc, param["schema"])
    admin = await auth("admin")
    for raw in values:
        valid = validator.is_valid(_query_value(param["schema"], raw))
        path = template.format(park=PARK, event="ev-1")
        resp = await client.get(path, params={name: raw}, headers=admin)
        assert (resp.status == 200) == valid, (name, raw, resp.status, await resp.text())
        if not valid:
            assert resp.status == 422
            assert await _problem_fields(resp) == [name]


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


async def test_document_has_no_keywords_json_schema_does_not_know(doc: dict[str, Any]) -> None:
    # pydantic leaves 'gt'/'ge' in a schema it cannot translate: a bound nobody enforces.
    stray = [node for node in _walk(doc["components"]) if {"gt", "ge", "lt", "le"} & set(node)]
    assert stray == []


async def test_every_operation_documents_what_it_can_answer(doc: dict[str, Any]) -> None:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            codes = set(op["responses"])
            if "{" in path:
                assert "422" in codes, (method, path)  # path parameter outside its pattern
            if "{park}" in path and op["operationId"] not in ("putPark", "enrollAsset"):
                assert "404" in codes, (method, path)  # unknown park
            if "requestBody" in op:
                assert {"400", "415", "422"} <= codes, (method, path)
            if "security" in op:
                assert {"401", "403", "503"} <= codes, (method, path)


# -- what the service can refuse at once, it refuses at once (events) ------------------


@pytest.mark.parametrize("other_state", ["received", "scheduled", "active"])
async def test_an_event_overlapping_an_open_one_is_refused_at_once(
    client: ApiClient, park: None, grid: dict[str, str], state: State, other_state: str
) -> None:
    url = f"/v1/parks/{PARK}/events"
    first = _event(id="gd-dr-1")  # 11:05 to 12:05
    assert (await client.post(url, json=first, headers=grid)).status == 202
    store = EventStore(state)
    for to in {"received": [], "scheduled": ["scheduled"], "active": ["active"]}[other_state]:
        await store.transition(PARK, "gd-dr-1", EventState(to), NOW)
    body = _event(id="gd-dr-2", start=(NOW + timedelta(minutes=90)).isoformat())  # 11:35
    for _ in range(2):  # a retry is refused the same way: nothing was stored
        resp = await client.post(url, json=body, headers=grid)
        assert resp.status == 409, await resp.text()
        assert resp.content_type == PROBLEM
        detail = (await resp.json())["detail"]
        assert "gd-dr-1" in detail and other_state in detail
        assert "2026-07-01T11:05:00+00:00" in detail and "2026-07-01T12:05:00+00:00" in detail
    assert (await client.get(f"{url}/gd-dr-2", headers=grid)).status == 404
    listed = (await (await client.get(url, headers=grid)).json())["items"]
    assert [e["id"] for e in listed] == ["gd-dr-1"]
    # the same event again is still a replay, not an overlap
    resp = await client.post(url, json=first, headers=grid)
    assert resp.status == 202 and resp.headers["Idempotent-Replay"] == "true"
    # back to back is no overlap
    after = _event(id="gd-dr-3", start=(NOW + timedelta(minutes=120)).isoformat())
    assert (await client.post(url, json=after, headers=grid)).status == 202


async def test_an_event_overlapping_one_that_is_over_is_accepted(
    client: ApiClient, park: None, grid: dict[str, str], state: State
) -> None:
    url = f"/v1/parks/{PARK}/events"
    assert (await client.post(url, json=_event(id="gd-dr-1"), headers=grid)).status == 202
    assert (await client.delete(f"{url}/gd-dr-1", headers=grid)).status == 202
    assert (await client.post(url, json=_event(id="gd-dr-2"), headers=grid)).status == 202


async def test_overlapping_creates_racing_each_other_store_one_event(
    client: ApiClient, park: None, grid: dict[str, str], state: State
) -> None:
    url = f"/v1/parks/{PARK}/events"
    for round_ in range(3):
        start = NOW + timedelta(hours=2 + 2 * round_)
        bodies = [
            _event(id=f"race-{round_}-{i}", start=(start + timedelta(minutes=15 * i)).isoformat())
            for i in range(4)
        ]
        answers = await asyncio.gather(*(client.post(url, json=b, headers=grid) for b in bodies))
        assert sorted(r.status for r in answers) == [202, 409, 409, 409]
        open_ = await EventStore(state).open_events(PARK)
        assert len([e for e in open_ if e.id.startswith(f"race-{round_}-")]) == 1


async def test_the_overlap_409_is_documented(doc: dict[str, Any]) -> None:
    for path, method in [
        ("/v1/parks/{park}/events", "post"),
        ("/v1/parks/{park}/events/{event}", "patch"),
    ]:
        conflict = doc["paths"][path][method]["responses"]["409"]
        assert "overlap" in conflict["description"], (method, path)
        assert PROBLEM in conflict["content"]


async def test_patch_targets_have_the_bounds_of_the_create(
    client: ApiClient, park: None, grid: dict[str, str], doc: dict[str, Any]
) -> None:
    url = f"/v1/parks/{PARK}/events"
    resp = await client.post(url, json=_event(target_kw=1e308), headers=grid)
    assert resp.status == 422
    assert (await client.post(url, json=_event(), headers=grid)).status == 202
    for targets in ([1e308, 1e308], [-1.0], [1e7 + 1]):
        resp = await client.patch(f"{url}/ev-1", json={"targets_kw": targets}, headers=grid)
        assert resp.status == 422, (targets, await resp.text())
        assert {f.split(".")[0] for f in await _problem_fields(resp)} == {"targets_kw"}
        validator = _validator(doc, doc["components"]["schemas"]["EventPatch"])
        assert not validator.is_valid({"targets_kw": targets})
    stored = await (await client.get(f"{url}/ev-1", headers=grid)).json()
    assert stored["event"]["target_kw"] == [-500.0] * 4
    resp = await client.patch(f"{url}/ev-1", json={"targets_kw": [1e7]}, headers=grid)
    assert resp.status == 202


async def test_a_resize_recomputes_what_the_park_expects(
    client: ApiClient, park: None, grid: dict[str, str], doc: dict[str, Any]
) -> None:
    url = f"/v1/parks/{PARK}/events"
    resp = await client.post(url, json=_event(), headers=grid)
    assert (await resp.json())["event"]["expected"]["expected_kw"] == [500.0] * 4
    for targets in ([500, 500], [500, 400, 300, 300, 200, 100]):
        resp = await client.patch(f"{url}/ev-1", json={"targets_kw": targets}, headers=grid)
        assert resp.status == 202, await resp.text()
        answer = await resp.json()
        expected = answer["event"]["expected"]
        assert expected["expected_kw"] == [float(t) for t in targets]
        assert expected["requested_kwh"] == pytest.approx(sum(targets) * 0.25)
        assert expected["expected_kwh"] == pytest.approx(sum(targets) * 0.25)
        assert expected["share"] == 1.0
        stored = await (await client.get(f"{url}/ev-1", headers=grid)).json()
        assert stored["event"]["expected"] == expected
        op = doc["paths"]["/v1/parks/{park}/events/{event}"]["patch"]
        schema = op["responses"]["202"]["content"]["application/json"]["schema"]
        assert _validator(doc, schema).is_valid(answer)
