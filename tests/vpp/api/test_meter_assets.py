"""Meters over the asset routes (enroll, patch, retire), and never in what sums the devices.

A meter measures its enterprise's devices: it must not appear in the park's
flexibility, a bid or an event's expected delivery, whatever it reads.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.vpp.conftest import ApiClient
from tests.vpp.samples import PARK, sample
from vpp.model import LiveState
from vpp.state import State

URL = f"/v1/parks/{PARK}/assets"
PROBLEM = "application/problem+json"


def meter(**changes: Any) -> dict[str, Any]:
    """The revenue meter of the sample battery's enterprise, on a Modbus gateway."""
    payload: dict[str, Any] = {
        "kind": "meter",
        "id": "meter-01",
        "owner": sample()["owner"],
        "grid_node": "feeder-10kv-03",
        "account_no": "0301-2210-87",
        "revenue": True,
        "multiplier": 80.0,
        "connection": {"protocol": "modbus", "host": "10.0.3.21", "unit_id": 2},
    }
    payload.update(changes)
    return payload


async def _errors(resp: Any) -> list[str]:
    assert resp.status == 422, await resp.text()
    assert resp.content_type == PROBLEM
    return [e["field"] for e in (await resp.json())["errors"]]


async def test_a_meter_enrolls_patches_and_retires(
    client: ApiClient, operator: dict[str, str]
) -> None:
    resp = await client.post(URL, json=meter(), headers=operator)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert (created["kind"], created["account_no"], created["multiplier"]) == (
        "meter", "0301-2210-87", 80.0,
    )  # fmt: skip
    assert created["connection"]["power_sign"] == "charge_positive"  # import positive
    resp = await client.get(URL, params={"kind": "meter"}, headers=operator)
    assert [a["id"] for a in (await resp.json())["items"]] == ["meter-01"]

    resp = await client.patch(
        f"{URL}/meter-01", json={"multiplier": 120.0, "revenue": False}, headers=operator
    )
    assert resp.status == 200, await resp.text()
    patched = await resp.json()
    assert patched["multiplier"] == 120.0 and patched["revenue"] is False
    mqtt = {"protocol": "mqtt", "topic_prefix": f"vpp/{PARK}/meter-01"}
    resp = await client.patch(f"{URL}/meter-01", json={"connection": mqtt}, headers=operator)
    assert resp.status == 200 and (await resp.json())["connection"] == mqtt
    # no connection: filled by import only
    resp = await client.patch(f"{URL}/meter-01", json={"connection": None}, headers=operator)
    assert resp.status == 200 and (await resp.json()).get("connection") is None

    resp = await client.delete(f"{URL}/meter-01", headers=operator)
    assert resp.status == 204
    assert (await client.get(f"{URL}/meter-01", headers=operator)).status == 404


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"connection": {"protocol": "ocpp", "charge_point_id": "CP-M1"}}, "connection"),
        ({"account_no": "0301 2210"}, "account_no"),
        ({"account_no": ""}, "account_no"),
        ({"multiplier": 0}, "multiplier"),
        ({"multiplier": -40}, "multiplier"),
        ({"multiplier": "80"}, "multiplier"),
        ({"revenue": "yes"}, "revenue"),
    ],
)
async def test_a_bad_meter_is_422_naming_the_field(
    client: ApiClient, operator: dict[str, str], changes: dict[str, Any], field: str
) -> None:
    resp = await client.post(URL, json=meter(**changes), headers=operator)
    assert field in await _errors(resp)
    # the same value by patch, on an enrolled meter, is refused the same way
    assert (await client.post(URL, json=meter(), headers=operator)).status in (201, 409)
    resp = await client.patch(f"{URL}/meter-01", json=changes, headers=operator)
    assert field in await _errors(resp)
    resp = await client.get(f"{URL}/meter-01", headers=operator)
    assert (await resp.json())["multiplier"] == 80.0  # nothing of the bad patch stored


@pytest.fixture
async def metered_park(
    client: ApiClient, park: None, state: State, operator: dict[str, str]
) -> None:
    """The ``park`` fixture's six devices and a meter of theirs reading 5 MW, live."""
    assert (await client.post(URL, json=meter(), headers=operator)).status == 201
    await state.write_live_many(PARK, {"meter-01": LiveState(power_kw=5000.0)}, ttl=600)


async def test_a_meter_is_not_in_the_flexibility(
    client: ApiClient, metered_park: None, operator: dict[str, str]
) -> None:
    resp = await client.get(
        f"/v1/parks/{PARK}/flexibility", params={"intervals": "4"}, headers=operator
    )
    env = await resp.json()
    assert env["assets_included"] == 6 and "meter-01" not in env["assets_excluded"]
    assert env["baseline_kw"][0] == pytest.approx(1600)  # the devices' 1.6 MW, not 6.6 MW


async def test_a_meter_is_not_in_a_bid_nor_in_an_events_expected_delivery(
    client: ApiClient, metered_park: None, grid: dict[str, str]
) -> None:
    t0 = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    body = {"id": "day-1", "start": t0.isoformat(), "intervals": 8, "flat_capacity": True}
    resp = await client.post(f"/v1/parks/{PARK}/bids", json=body, headers=grid)
    assert resp.status == 201, await resp.text()
    bid = (await resp.json())["bid"]
    assert bid["assets_included"] == 6 and "meter-01" not in bid["assets_excluded"]
    assert bid["baseline_kw"][0] == pytest.approx(1600)
    event = {
        "id": "ev-1", "kind": "peak_shaving", "start": t0.isoformat(), "target_kw": 500,
        "duration_minutes": 60,
    }  # fmt: skip
    resp = await client.post(f"/v1/parks/{PARK}/events", json=event, headers=grid)
    assert resp.status == 202, await resp.text()
    expected = (await resp.json())["event"]["expected"]
    assert expected["assets_included"] == 6


async def test_an_enterprise_has_one_revenue_meter(
    client: ApiClient, operator: dict[str, str]
) -> None:
    # found by a new user: a second one was accepted, then the park history summed both
    # while events measured by the one with the lowest id
    assert (await client.post(URL, json=meter(), headers=operator)).status == 201
    second = meter(id="meter-02", account_no="0301-2210-88", connection=None)
    resp = await client.post(URL, json=second, headers=operator)
    assert resp.status == 409, await resp.text()
    assert "meter-01" in (await resp.json())["detail"]
    # a sub-meter of the same enterprise is fine, and may not become a second revenue one
    resp = await client.post(URL, json={**second, "revenue": False}, headers=operator)
    assert resp.status == 201, await resp.text()
    resp = await client.patch(f"{URL}/meter-02", json={"revenue": True}, headers=operator)
    assert resp.status == 409, await resp.text()
    assert (await client.get(f"{URL}/meter-02", headers=operator)).status == 200
    # once the first stops being the revenue meter, the other may take over
    resp = await client.patch(f"{URL}/meter-01", json={"revenue": False}, headers=operator)
    assert resp.status == 200
    resp = await client.patch(f"{URL}/meter-02", json={"revenue": True}, headers=operator)
    assert resp.status == 200, await resp.text()
