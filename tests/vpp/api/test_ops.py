"""/metrics, /readyz and /openapi.json."""

from __future__ import annotations

from collections.abc import AsyncIterator

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from tests.vpp.conftest import ApiClient, TokenFactory
from tests.vpp.samples import PARK, SAMPLES, sample
from vpp.api import create_app
from vpp.events import EventReport, IntervalReport
from vpp.metrics import Metrics
from vpp.servers import RedisServer
from vpp.settings import Settings
from vpp.state import State


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_show_requests_and_assets(client: ApiClient, auth: TokenFactory) -> None:
    headers = await auth("park_operator", PARK)
    for kind in SAMPLES:
        await client.post(f"/v1/parks/{PARK}/assets", json=sample(kind), headers=headers)
    await client.post(f"/v1/parks/{PARK}/assets", json=sample("pv"), headers=headers)  # 409
    await client.get(f"/v1/parks/{PARK}/assets/pv-roof-01", headers=headers)
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    got = _samples(await resp.text())
    route = "/v1/parks/{park}/assets"

    def requests(route: str, method: str, status: str) -> float:
        labels = frozenset({"route": route, "method": method, "status": status}.items())
        return got[("vpp_http_requests_total", labels)]

    assert requests(route, "POST", "201") == 4
    assert requests(route, "POST", "409") == 1
    assert requests(route + "/{asset}", "GET", "200") == 1
    count = ("vpp_http_request_duration_seconds_count", frozenset(
        {"route": route, "method": "POST", "status": "201"}.items()))  # fmt: skip
    assert got[count] == 4
    for kind in SAMPLES:
        assert got[("vpp_assets_enrolled", frozenset({"park": PARK, "kind": kind}.items()))] == 1


async def test_two_apps_keep_separate_registries(settings: Settings, state: State) -> None:
    ma, mb = Metrics(), Metrics()
    a, b = create_app(settings, state, metrics=ma), create_app(settings, state, metrics=mb)
    async with TestClient(TestServer(a)) as ca, TestClient(TestServer(b)):
        await ca.get("/healthz")
    assert 'route="/healthz"' in ma.exposition().decode()
    assert 'route="/healthz"' not in mb.exposition().decode()


@pytest.fixture
async def stoppable(
    private_redis: RedisServer, settings: Settings
) -> AsyncIterator[tuple[ApiClient, RedisServer]]:
    state = State.from_url(private_redis.url, namespace=settings.redis.namespace, timeout=0.5)
    async with TestClient(TestServer(create_app(settings, state), host="127.0.0.1")) as c:
        yield c, private_redis
    await state.aclose()


async def test_readyz_follows_redis_and_errors_are_counted(
    stoppable: tuple[ApiClient, RedisServer],
) -> None:
    client, redis = stoppable
    assert (await client.get("/readyz")).status == 200
    redis.stop()
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert await resp.json() == {
        "ready": False,
        "redis": False,
        "redis_nodes": {f"127.0.0.1:{redis.port}": False},
        "components": {},
    }
    assert (await client.get("/healthz")).status == 200
    resp = await client.get(f"/v1/parks/{PARK}/assets", headers={"Authorization": "Bearer x"})
    assert resp.status == 503
    assert resp.content_type == "application/problem+json"
    got = _samples(await (await client.get("/metrics")).text())
    errors = sum(v for (name, _), v in got.items() if name == "vpp_redis_errors_total")
    assert errors >= 3
    assert got[("vpp_redis_up", frozenset())] == 0
    redis.start()
    assert (await client.get("/readyz")).status == 200


async def test_openapi_document(client: ApiClient, auth: TokenFactory) -> None:
    resp = await client.get("/openapi.json")
    doc = await resp.json()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) >= {
        "/v1/parks",
        "/v1/parks/{park}",
        "/v1/parks/{park}/assets",
        "/v1/parks/{park}/assets/{asset}",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    item = doc["paths"]["/v1/parks/{park}/assets/{asset}"]
    assert set(item) == {"get", "patch", "delete"}
    assert "422" in doc["paths"]["/v1/parks/{park}/assets"]["post"]["responses"]
    schemas = doc["components"]["schemas"]
    assert {"Battery", "EvCharger", "FlexibleLoad", "Pv", "ProblemDetails"} <= set(schemas)
    for schema in schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)

    # A real response validates against the documented schema; a bad payload does not.
    headers = await auth("park_operator", PARK)
    await client.post(f"/v1/parks/{PARK}/assets", json=sample(), headers=headers)
    body = await (await client.get(f"/v1/parks/{PARK}/assets/bess-01", headers=headers)).json()
    root = {"$ref": "#/components/schemas/AssetPayload", "components": doc["components"]}
    jsonschema.validate(body, root, cls=jsonschema.Draft202012Validator)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**body, "soc_min": 2}, root, cls=jsonschema.Draft202012Validator)


async def test_report_schema_lists_exactly_the_report_fields(client: ApiClient) -> None:
    # The report served is the report built (`vpp.events.report`): one model, one schema.
    doc = await (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    op = doc["paths"]["/v1/parks/{park}/events/{event}/report"]["get"]
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    report = schemas[ref.rsplit("/", 1)[1]]
    interval = schemas[report["properties"]["intervals"]["items"]["$ref"].rsplit("/", 1)[1]]
    for schema, model in ((report, EventReport), (interval, IntervalReport)):
        assert list(schema["properties"]) == list(model.model_fields)
        assert schema["required"] == list(model.model_fields)  # nulls are shown, never left out
    assert interval["properties"]["start"] == {"format": "date-time", "title": "Start",
                                               "type": "string"}  # fmt: skip
    assert report["properties"]["state"] == {"$ref": "#/components/schemas/EventState"}
    assert report["properties"]["intervals_measured"]["minimum"] == 0
