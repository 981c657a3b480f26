"""Enroll -> read -> patch -> retire over real HTTP and Redis."""

from __future__ import annotations

from typing import Any

import pytest

from tests.vpp.conftest import ApiClient
from tests.vpp.samples import PARK, SAMPLES, sample
from vpp.state import State

PROBLEM = "application/problem+json"


async def test_enroll_read_patch_retire(client: ApiClient, operator: dict[str, str]) -> None:
    url = f"/v1/parks/{PARK}/assets"
    resp = await client.post(url, json=sample(), headers=operator)
    assert resp.status == 201, await resp.text()
    assert resp.headers["Location"] == f"{url}/bess-01"
    created = await resp.json()
    assert created["capacity_kwh"] == 1000.0
    assert created["enrolled_at"]

    resp = await client.get(f"{url}/bess-01", headers=operator)
    assert resp.status == 200
    assert (await resp.json())["owner"] == "Guangzhou Precision Castings Co."

    resp = await client.patch(
        f"{url}/bess-01",
        json={"max_discharge_kw": 250.0, "connection": {"port": 1502}},
        headers=operator,
    )
    assert resp.status == 200, await resp.text()
    patched = await resp.json()
    assert patched["max_discharge_kw"] == 250.0
    assert patched["connection"] == {
        "protocol": "modbus",
        "host": "10.0.3.21",
        "port": 1502,
        "unit_id": 1,
        "power_sign": "charge_positive",
        "setpoint_sign": "discharge_positive",
    }
    assert patched["enrolled_at"] == created["enrolled_at"]

    resp = await client.get(url, headers=operator)
    assert [a["id"] for a in (await resp.json())["items"]] == ["bess-01"]

    resp = await client.delete(f"{url}/bess-01", headers=operator)
    assert resp.status == 204
    resp = await client.get(f"{url}/bess-01", headers=operator)
    assert resp.status == 404
    assert resp.content_type == PROBLEM
    resp = await client.delete(f"{url}/bess-01", headers=operator)
    assert resp.status == 404


async def test_every_kind_enrolls_and_lists_by_kind(
    client: ApiClient, operator: dict[str, str]
) -> None:
    url = f"/v1/parks/{PARK}/assets"
    for kind in SAMPLES:
        resp = await client.post(url, json=sample(kind), headers=operator)
        assert resp.status == 201, await resp.text()
    resp = await client.get(url, params={"kind": "pv"}, headers=operator)
    assert [a["kind"] for a in (await resp.json())["items"]] == ["pv"]
    resp = await client.get(f"/v1/parks/{PARK}", headers=operator)
    body = await resp.json()
    assert body["assets"] == {"battery": 1, "ev_charger": 1, "flexible_load": 1, "pv": 1}
    resp = await client.get(url, params={"kind": "nuclear"}, headers=operator)
    assert resp.status == 422


async def test_duplicate_id_is_409(client: ApiClient, operator: dict[str, str]) -> None:
    url = f"/v1/parks/{PARK}/assets"
    assert (await client.post(url, json=sample(), headers=operator)).status == 201
    resp = await client.post(url, json=sample("pv", id="bess-01"), headers=operator)
    assert resp.status == 409
    assert resp.content_type == PROBLEM
    problem = await resp.json()
    assert problem["status"] == 409
    assert "bess-01" in problem["detail"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (sample(soc_min=0.8, soc_max=0.5), "soc_max"),
        (sample(capacity_kwh=-5), "capacity_kwh"),
        (sample(charge_efficiency=1.2), "charge_efficiency"),
        (sample(discharge_efficiency=0), "discharge_efficiency"),
        (sample(kind="hydro"), "kind"),
        (sample(id="bad id/with slash"), "id"),
        (sample(connection={"protocol": "modbus", "host": "h", "port": 70000}), "connection.port"),
        (sample(connection={"protocol": "carrier-pigeon"}), "connection"),
        (sample(colour="red"), "colour"),
        (sample("ev_charger", v2g=False), "max_discharge_kw"),
        (sample("flexible_load", max_shed_kw=900.0), "max_shed_kw"),
        (sample("pv", rated_kw=0), "rated_kw"),
    ],
)
async def test_invalid_field_is_422_naming_it(
    client: ApiClient, operator: dict[str, str], payload: dict[str, Any], field: str
) -> None:
    resp = await client.post(f"/v1/parks/{PARK}/assets", json=payload, headers=operator)
    assert resp.status == 422
    assert resp.content_type == PROBLEM
    problem = await resp.json()
    assert field in [e["field"] for e in problem["errors"]]
    assert field in problem["detail"]


async def test_patch_rules(client: ApiClient, operator: dict[str, str]) -> None:
    url = f"/v1/parks/{PARK}/assets"
    await client.post(url, json=sample(), headers=operator)
    resp = await client.patch(f"{url}/bess-01", json={"kind": "pv"}, headers=operator)
    assert resp.status == 422
    assert [e["field"] for e in (await resp.json())["errors"]] == ["kind"]
    resp = await client.patch(f"{url}/bess-01", json={"soc_min": 0.99}, headers=operator)
    assert resp.status == 422
    assert "soc_max" in (await resp.json())["detail"]
    resp = await client.patch(
        f"{url}/bess-01",
        json={"connection": {"protocol": "mqtt", "topic_prefix": "site/bess-01"}},
        headers=operator,
    )
    assert resp.status == 200
    assert (await resp.json())["connection"] == {"protocol": "mqtt", "topic_prefix": "site/bess-01"}
    resp = await client.patch(f"{url}/nope", json={"name": "x"}, headers=operator)
    assert resp.status == 404


async def test_bad_bodies(client: ApiClient, operator: dict[str, str]) -> None:
    url = f"/v1/parks/{PARK}/assets"
    resp = await client.post(
        url, data="{not json", headers={**operator, "Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert resp.content_type == PROBLEM
    resp = await client.post(url, data="x", headers={**operator, "Content-Type": "text/plain"})
    assert resp.status == 415
    resp = await client.post(url, json=[1, 2], headers=operator)
    assert resp.status == 422
    resp = await client.get("/v1/nowhere", headers=operator)
    assert resp.status == 404
    assert resp.content_type == PROBLEM


async def test_park_metadata(client: ApiClient, operator: dict[str, str]) -> None:
    resp = await client.put(
        f"/v1/parks/{PARK}",
        json={"name": "Nansha demo", "timezone": "Asia/Shanghai"},
        headers=operator,
    )
    assert resp.status == 200, await resp.text()
    resp = await client.get("/v1/parks", headers=operator)
    items = (await resp.json())["items"]
    assert [i["park"]["name"] for i in items] == ["Nansha demo"]
    resp = await client.put(f"/v1/parks/{PARK}", json={"id": "other"}, headers=operator)
    assert resp.status == 422


async def test_a_change_of_park_metadata_is_logged_with_who_and_what(
    client: ApiClient, operator: dict[str, str], state: State
) -> None:
    async def put(body: dict[str, Any]) -> None:
        resp = await client.put(f"/v1/parks/{PARK}", json=body, headers=operator)
        assert resp.status == 200, await resp.text()

    async def logged() -> list[dict[str, Any]]:
        return [f for _, f in await state.read_park_log(PARK) if f["event"] == "park.updated"]

    await put({"name": "Nansha"})
    await put({"name": "Nansha"})  # the same again: nothing to log
    national = {"electricity_factor": "mee-2023-national"}
    await put({"name": "Nansha", "carbon": national})
    first, second = await logged()
    assert first["data"]["before"] is None and first["role"] == "park_operator" and first["by"]
    assert second["fields"] == "carbon"
    assert second["data"]["before"]["carbon"]["electricity_factor"] == "mee-2023-southern"
    assert second["data"]["after"]["carbon"]["electricity_factor"] == "mee-2023-national"


async def test_a_park_timezone_is_a_tz_database_name(
    client: ApiClient, operator: dict[str, str]
) -> None:
    url = f"/v1/parks/{PARK}"
    resp = await client.put(url, json={"timezone": "Mars/Olympus"}, headers=operator)
    assert resp.status == 422
    assert [e["field"] for e in (await resp.json())["errors"]] == ["timezone"]
    resp = await client.put(url, json={"timezone": "Asia/Hong_Kong"}, headers=operator)
    assert resp.status == 200
    assert (await resp.json())["timezone"] == "Asia/Hong_Kong"


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,  # json.loads: RecursionError (was a 500)
        '{"a":' * 1000 + "1" + "}" * 1000,
        '{"kind": "pv", "x": ' + "[" * 40 + "]" * 40 + "}",  # parses, deeper than any schema
    ],
    ids=["arrays-100000", "objects-1000", "arrays-40"],
)
async def test_deeply_nested_json_is_a_400_not_a_500(
    client: ApiClient, operator: dict[str, str], body: str
) -> None:
    for method, url in [
        ("POST", f"/v1/parks/{PARK}/assets"),
        ("PUT", f"/v1/parks/{PARK}"),
    ]:
        resp = await client.request(
            method, url, data=body, headers={**operator, "Content-Type": "application/json"}
        )
        assert resp.status == 400, (method, await resp.text())
        assert resp.content_type == "application/problem+json"
        assert "nested deeper than" in (await resp.json())["detail"]
