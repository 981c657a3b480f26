"""Bids, flexibility and events over real HTTP and Redis."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.vpp.conftest import TokenFactory
from tests.vpp.samples import PARK, sample
from vpp.model import LiveState
from vpp.state import State

T0 = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture
async def park(state: State, client: TestClient, auth: TokenFactory) -> None:
    """Four 1 MWh batteries and two loads, all with fresh telemetry."""
    op = await auth("park_operator", PARK)
    url = f"/v1/parks/{PARK}/assets"
    live: dict[str, LiveState] = {}
    for i in range(4):
        body = sample("battery", id=f"bess-{i}")
        assert (await client.post(url, json=body, headers=op)).status == 201
        live[f"bess-{i}"] = LiveState(power_kw=0.0, soc=0.5)
    for i in range(2):
        body = sample("flexible_load", id=f"load-{i}")
        assert (await client.post(url, json=body, headers=op)).status == 201
        live[f"load-{i}"] = LiveState(power_kw=800.0)
    await state.write_live_many(PARK, live, ttl=60)


@pytest.fixture
async def grid(auth: TokenFactory) -> dict[str, str]:
    return await auth("grid_operator", PARK)


async def test_bid_is_built_stored_and_tabled(
    client: TestClient, park: None, grid: dict[str, str]
) -> None:
    body = {"id": "day-1", "start": T0.isoformat(), "rules": {"min_capacity_kw": 100}}
    resp = await client.post(f"/v1/parks/{PARK}/bids", json=body, headers=grid)
    assert resp.status == 201, await resp.text()
    bid = (await resp.json())["bid"]
    assert len(bid["baseline_kw"]) == 96
    # 4 batteries x 500 kW discharge + 2 loads x 300 kW shed: never more than 2.6 MW down
    assert 0 < max(bid["down"]["quantity_kw"]) <= 2600 + 1e-6
    assert bid["down"]["deliverable"] and bid["jointly_deliverable"]
    assert bid["assets_included"] == 6
    resp = await client.get(f"/v1/parks/{PARK}/bids/day-1", headers=grid)
    assert (await resp.json())["bid"]["id"] == "day-1"
    resp = await client.get(f"/v1/parks/{PARK}/bids/day-1", params={"format": "csv"}, headers=grid)
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert len(rows) == 96 and set(rows[0]) == {"start", "baseline_kw", "up_kw", "down_kw"}
    resp = await client.get(
        f"/v1/parks/{PARK}/bids/day-1",
        params={"format": "csv", "resolution": "hourly"},
        headers=grid,
    )
    assert len(list(csv.DictReader(io.StringIO(await resp.text())))) == 24
    resp = await client.get(f"/v1/parks/{PARK}/bids/day-1", params={"format": "xml"}, headers=grid)
    assert resp.status == 422
    assert (await resp.json())["errors"][0]["field"] == "format"


async def test_bid_bad_input_names_the_field(
    client: TestClient, park: None, grid: dict[str, str]
) -> None:
    for body, field in [
        ({"start": "2026-07-01T00:00:00"}, "start"),
        ({"start": T0.isoformat(), "intervals": 0}, "intervals"),
        ({"start": T0.isoformat(), "rules": {"price_cap": -1}}, "rules.price_cap"),
    ]:
        resp = await client.post(f"/v1/parks/{PARK}/bids", json=body, headers=grid)
        assert resp.status == 422, body
        problem = await resp.json()
        assert any(e["field"] == field for e in problem["errors"]), problem


async def test_flexibility_envelope(client: TestClient, park: None, auth: TokenFactory) -> None:
    viewer = await auth("viewer", PARK)
    resp = await client.get(
        f"/v1/parks/{PARK}/flexibility", params={"intervals": "8"}, headers=viewer
    )
    assert resp.status == 200, await resp.text()
    env = await resp.json()
    assert env["assets_included"] == 6
    assert env["down_kw"][0] == pytest.approx(4 * 500 + 2 * 300)
    assert env["baseline_kw"][0] == pytest.approx(1600)


def event_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "ev-1",
        "kind": "peak_shaving",
        "start": T0.isoformat(),
        "target_kw": 500,
        "duration_minutes": 120,
    }
    body.update(over)
    return body


async def test_event_create_is_idempotent_and_lifecycle(
    client: TestClient, park: None, grid: dict[str, str], auth: TokenFactory
) -> None:
    url = f"/v1/parks/{PARK}/events"
    resp = await client.post(url, json=event_body(), headers=grid)
    assert resp.status == 202, await resp.text()
    assert resp.headers["Location"] == f"{url}/ev-1"
    event = (await resp.json())["event"]
    assert event["state"] == "received" and event["target_kw"] == [-500.0] * 8

    resp = await client.post(url, json=event_body(), headers=grid)
    assert resp.status == 202 and resp.headers["Idempotent-Replay"] == "true"
    resp = await client.post(url, json=event_body(target_kw=600), headers=grid)
    assert resp.status == 409

    resp = await client.patch(f"{url}/ev-1", json={"targets_kw": [300] * 8}, headers=grid)
    assert resp.status == 202
    assert (await resp.json())["event"]["target_kw"] == [-300.0] * 8
    # more targets extend the event in place, fewer shorten it (issue 8 case 9; 409 before)
    resp = await client.patch(f"{url}/ev-1", json={"targets_kw": [300] * 10}, headers=grid)
    assert resp.status == 202, await resp.text()
    extended = (await resp.json())["event"]
    assert extended["target_kw"] == [-300.0] * 10 and len(extended["measured_kw"]) == 10
    resp = await client.patch(f"{url}/ev-1", json={"targets_kw": [300] * 8}, headers=grid)
    assert resp.status == 202 and len((await resp.json())["event"]["target_kw"]) == 8

    viewer = await auth("viewer", PARK)
    resp = await client.get(f"{url}/ev-1", headers=viewer)
    assert (await resp.json())["event"]["state"] == "received"
    resp = await client.get(url, headers=viewer)
    assert [e["id"] for e in (await resp.json())["items"]] == ["ev-1"]

    resp = await client.delete(f"{url}/ev-1", headers=grid)
    assert resp.status == 202
    assert (await resp.json())["event"]["state"] == "cancelled"
    resp = await client.delete(f"{url}/ev-1", headers=grid)
    assert resp.status == 202  # cancelling twice is idempotent
    resp = await client.patch(f"{url}/ev-1", json={"targets_kw": [1] * 8}, headers=grid)
    assert resp.status == 409

    resp = await client.get(f"{url}/ev-1/report", headers=viewer)
    report = await resp.json()
    assert report["state"] == "cancelled" and len(report["intervals"]) == 8
    assert report["emission_factor_source"]
    resp = await client.get(f"{url}/ev-1/report", params={"format": "csv"}, headers=viewer)
    assert resp.content_type == "text/csv"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"kind": "brownout"}, "kind"),
        ({"start": "soon"}, "start"),
        ({"target_kw": -5}, "target_kw"),
        ({"id": "a b"}, "id"),
        ({"duration_minutes": 7}, "duration_minutes"),
    ],
)
async def test_malformed_event_is_422_naming_the_field(
    client: TestClient, park: None, grid: dict[str, str], over: dict[str, Any], field: str
) -> None:
    resp = await client.post(f"/v1/parks/{PARK}/events", json=event_body(**over), headers=grid)
    assert resp.status == 422
    problem = await resp.json()
    assert resp.content_type == "application/problem+json"
    assert any(e["field"] == field for e in problem["errors"]), problem


async def test_park_operator_cannot_send_events(client: TestClient, auth: TokenFactory) -> None:
    op = await auth("park_operator", PARK)
    resp = await client.post(f"/v1/parks/{PARK}/events", json=event_body(), headers=op)
    assert resp.status == 403


async def test_patch_with_six_targets_extends_a_four_interval_event(
    client: TestClient, grid: dict[str, str], park: None
) -> None:
    # Issue 8 case 9, REST form: answered 409 ("must keep the event's 4 intervals") before.
    url = f"/v1/parks/{PARK}/events"
    body = event_body(id="ev-4", target_kw=None, duration_minutes=None, targets_kw=[200] * 4)
    assert (await client.post(url, json=body, headers=grid)).status == 202
    resp = await client.patch(f"{url}/ev-4", json={"targets_kw": [200] * 6}, headers=grid)
    assert resp.status == 202, await resp.text()
    event = (await resp.json())["event"]
    assert event["id"] == "ev-4" and event["target_kw"] == [-200.0] * 6
    assert len(event["baseline_kw"]) == len(event["measured_kw"]) == 6
    resp = await client.get(f"{url}/ev-4/report", headers=grid)
    assert len((await resp.json())["intervals"]) == 6
