"""Monthly ledger entries over HTTP: round trip, idempotence, 422s that store nothing, the log."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.vpp.api.ledger.conftest import CLOSED_MONTH, THIS_MONTH
from tests.vpp.conftest import ApiClient, TokenFactory
from tests.vpp.samples import OTHER_PARK, PARK, sample
from vpp.model import parse_asset
from vpp.state import State

pytestmark = pytest.mark.usefixtures("enrolled")

BODY: dict[str, Any] = {
    "fuels": [
        {"carrier": "natural_gas", "quantity": 1000, "unit": "m3", "note": "bill GZ-117"},
        {"carrier": "diesel", "quantity": 1.5, "unit": "t"},
    ],
    "green_power": [
        {"kind": "trading", "kwh": 2000, "certificates": ["GEC-001", "GEC-002"]},
        {"kind": "direct", "kwh": 500, "note": "PV next door, direct line"},
    ],
}
STORED: dict[str, Any] = {
    "fuels": [
        {"carrier": "natural_gas", "quantity": 1000.0, "unit": "m3", "note": "bill GZ-117"},
        {"carrier": "diesel", "quantity": 1.5, "unit": "t", "note": ""},
    ],
    "green_power": [
        {"kind": "trading", "kwh": 2000.0, "certificates": ["GEC-001", "GEC-002"], "note": ""},
        {"kind": "direct", "kwh": 500.0, "certificates": [], "note": "PV next door, direct line"},
    ],
}


#: `BODY` with other certificates: a certificate is claimed by one entry of the park only.
OTHER: dict[str, Any] = {"fuels": BODY["fuels"], "green_power": [{"kind": "direct", "kwh": 5}]}


def _url(month: str = CLOSED_MONTH, enterprise: str = "castings", park: str = PARK) -> str:
    return f"/v1/parks/{park}/ledger/entries/{month}/{enterprise}"


async def _log(state: State) -> list[dict[str, Any]]:
    return [f for _, f in await state.read_park_log(PARK) if f["event"] == "ledger.entries"]


async def _stored(state: State) -> dict[Any, Any]:
    held: dict[Any, Any] = await state.redis.hgetall(state.park(PARK).ledger_entries)
    return held


async def test_put_answers_the_entries_and_get_reads_them_back(
    client: ApiClient, operator: dict[str, str], state: State
) -> None:
    resp = await client.put(_url(), json=BODY, headers=operator)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == STORED
    assert "Idempotent-Replay" not in resp.headers
    got = await client.get(_url(), headers=operator)
    assert got.status == 200 and await got.json() == STORED
    (entry,) = await _log(state)
    assert (entry["month"], entry["enterprise"]) == (CLOSED_MONTH, "castings")
    assert entry["data"] == {"before": None, "after": STORED}
    assert entry["role"] == "park_operator" and entry["by"]  # who made the change


async def test_the_same_entries_again_change_and_log_nothing(
    client: ApiClient, operator: dict[str, str], state: State
) -> None:
    assert (await client.put(_url(), json=BODY, headers=operator)).status == 200
    held = await _stored(state)
    again = await client.put(_url(), json=BODY, headers=operator)
    assert again.status == 200 and await again.json() == STORED
    assert again.headers["Idempotent-Replay"] == "true"
    assert await _stored(state) == held
    assert len(await _log(state)) == 1


async def test_new_entries_replace_the_month_whole_and_the_log_keeps_both(
    client: ApiClient, operator: dict[str, str], state: State
) -> None:
    await client.put(_url(), json=BODY, headers=operator)
    resp = await client.put(_url(), json={"fuels": []}, headers=operator)
    assert resp.status == 200 and await resp.json() == {"fuels": [], "green_power": []}
    first, second = await _log(state)
    assert second["data"] == {"before": STORED, "after": {"fuels": [], "green_power": []}}
    assert first["data"]["after"] == STORED


async def test_an_asset_owner_without_a_contract_is_an_enterprise(
    client: ApiClient, operator: dict[str, str]
) -> None:
    resp = await client.put(_url(enterprise="logistics"), json=BODY, headers=operator)
    assert resp.status == 200, await resp.text()


async def test_the_largest_quantity_is_taken(client: ApiClient, operator: dict[str, str]) -> None:
    body = {**_fuel(quantity=1e9, unit="1e4m3"), "green_power": [{"kind": "direct", "kwh": 1e9}]}
    resp = await client.put(_url(), json=body, headers=operator)
    assert resp.status == 200, await resp.text()


def _fuel(**over: Any) -> dict[str, Any]:
    return {"fuels": [{"carrier": "natural_gas", "quantity": 10, "unit": "m3", **over}]}


@pytest.mark.parametrize(
    ("url", "body", "fields"),
    [
        (_url(), _fuel(unit="kg"), ["fuels[0].unit"]),
        (_url(), _fuel(quantity=-1), ["fuels[0].quantity"]),
        (_url(), _fuel(carrier="coal"), ["fuels[0].carrier"]),
        (_url(), _fuel(quantity="10"), ["fuels[0].quantity"]),
        # beyond any real park's month, and an infinite tce (the try-out's values)
        (_url(), _fuel(quantity=1e308, unit="1e4m3"), ["fuels[0].quantity"]),
        (_url(), _fuel(carrier="diesel", quantity=1.7e308, unit="t"), ["fuels[0].quantity"]),
        (_url(), _fuel(quantity=1e9 + 1), ["fuels[0].quantity"]),
        (_url(), {"green_power": [{"kind": "direct", "kwh": 1e308}]}, ["green_power[0].kwh"]),
        (_url(), {"green_power": [{"kind": "trading", "kwh": -5}]}, ["green_power[0].kwh"]),
        (_url(), {"green_power": [{"kind": "bilateral", "kwh": 5}]}, ["green_power[0].kind"]),
        (_url(), {"fuel": []}, ["fuel"]),
        (_url(enterprise="nobody"), BODY, ["enterprise"]),
        (_url(enterprise="nobody"), _fuel(unit="kg"), ["fuels[0].unit", "enterprise"]),
        (_url(month="2026-13"), BODY, ["month"]),
        (_url(month="26-01"), BODY, ["month"]),
        (_url(month="1999-12"), BODY, ["month"]),
    ],
)
async def test_bad_entries_are_422_naming_the_field_and_store_nothing(
    client: ApiClient,
    operator: dict[str, str],
    state: State,
    url: str,
    body: dict[str, Any],
    fields: list[str],
) -> None:
    resp = await client.put(url, json=body, headers=operator)
    assert resp.status == 422, await resp.text()
    assert resp.content_type == "application/problem+json"
    assert [e["field"] for e in (await resp.json())["errors"]] == fields
    assert await _stored(state) == {}
    assert await _log(state) == []


async def test_a_unit_error_says_which_units_the_carrier_takes(
    client: ApiClient, operator: dict[str, str]
) -> None:
    resp = await client.put(_url(), json=_fuel(unit="kg"), headers=operator)
    (error,) = (await resp.json())["errors"]
    assert error["message"] == "natural_gas is entered in m3 or 1e4m3, not 'kg'"


async def test_a_month_without_entries_is_404(client: ApiClient, operator: dict[str, str]) -> None:
    resp = await client.get(_url(), headers=operator)
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"


async def test_the_list_gives_every_enterprises_entries_of_the_months(
    client: ApiClient, operator: dict[str, str]
) -> None:
    for month, who in ((CLOSED_MONTH, "castings"), (CLOSED_MONTH, "electronics"),
                       (THIS_MONTH, "castings")):  # fmt: skip
        body = BODY if who == "castings" and month == CLOSED_MONTH else OTHER
        assert (await client.put(_url(month, who), json=body, headers=operator)).status == 200
    url = f"/v1/parks/{PARK}/ledger/entries"
    body = await (await client.get(url, headers=operator)).json()
    # by default the park's current month
    assert (body["first"], body["last"]) == (THIS_MONTH, THIS_MONTH)
    assert [(i["month"], i["enterprise"]) for i in body["items"]] == [(THIS_MONTH, "castings")]
    span = {"from": CLOSED_MONTH, "to": THIS_MONTH}
    body = await (await client.get(url, params=span, headers=operator)).json()
    assert [(i["month"], i["enterprise"]) for i in body["items"]] == [
        (CLOSED_MONTH, "castings"),
        (CLOSED_MONTH, "electronics"),
        (THIS_MONTH, "castings"),
    ]
    assert body["items"][0]["entries"] == STORED
    closed = {"from": CLOSED_MONTH, "to": CLOSED_MONTH}
    only = await client.get(url, params=closed, headers=operator)
    assert len((await only.json())["items"]) == 2
    backwards = {"from": THIS_MONTH, "to": CLOSED_MONTH}
    back = await client.get(url, params=backwards, headers=operator)
    assert back.status == 422
    assert [e["field"] for e in (await back.json())["errors"]] == ["from"]


@pytest.mark.parametrize(
    ("role", "put", "get"),
    [("park_operator", 200, 200), ("admin", 200, 200), ("viewer", 403, 200),
     ("grid_operator", 403, 200)],
)  # fmt: skip
async def test_park_operators_and_admins_write_everyone_reads(
    client: ApiClient, auth: TokenFactory, operator: dict[str, str], role: str, put: int, get: int
) -> None:
    await client.put(_url(month=THIS_MONTH), json=OTHER, headers=operator)
    headers = await auth(role, *([] if role == "admin" else [PARK]))
    assert (await client.put(_url(), json=BODY, headers=headers)).status == put
    assert (await client.get(_url(month=THIS_MONTH), headers=headers)).status == get
    listed = await client.get(f"/v1/parks/{PARK}/ledger/entries", headers=headers)
    assert listed.status == get


async def test_another_parks_token_may_not_touch_the_entries(
    client: ApiClient, auth: TokenFactory
) -> None:
    other = await auth("park_operator", OTHER_PARK)
    assert (await client.put(_url(), json=BODY, headers=other)).status == 403
    assert (await client.get(_url(), headers=other)).status == 403
    assert (await client.put(_url(), json=BODY)).status == 401


async def test_an_enterprise_id_with_spaces_is_addressed_percent_encoded(
    client: ApiClient, operator: dict[str, str], state: State
) -> None:
    owner = "Pearl River Electronics Co."
    await state.enroll(PARK, parse_asset(sample("pv", id="pv-river", owner=owner)))
    url = _url(enterprise=quote(owner, safe=""))
    assert (await client.put(url, json=BODY, headers=operator)).status == 200
    assert await (await client.get(url, headers=operator)).json() == STORED
    (entry,) = await _log(state)
    assert entry["enterprise"] == owner


def _green(*certificates: str) -> dict[str, Any]:
    return {"green_power": [{"kind": "trading", "kwh": 100, "certificates": list(certificates)}]}


async def test_a_certificate_claimed_twice_is_422_naming_it_and_stores_nothing(
    client: ApiClient, operator: dict[str, str], state: State
) -> None:
    nansha = _url(month="2026-11", enterprise="castings")
    assert (await client.put(nansha, json=_green("GEC-DUP-1"), headers=operator)).status == 200
    before = await _stored(state)
    for url, body, field in [
        (_url(month="2026-11", enterprise="electronics"), _green("GEC-DUP-1"), "certificates[0]"),
        (_url(month="2026-12", enterprise="castings"), _green("A", "GEC-DUP-1"), "certificates[1]"),
        (
            _url(month="2026-12", enterprise="castings"),
            _green("GEC-DUP-2", "GEC-DUP-2"),
            "certificates[1]",
        ),
    ]:
        resp = await client.put(url, json=body, headers=operator)
        assert resp.status == 422, await resp.text()
        (error,) = (await resp.json())["errors"]
        assert error["field"] == f"green_power[0].{field}"
        assert await _stored(state) == before
    resp = await client.put(
        _url(month="2026-12", enterprise="electronics"), json=_green("GEC-DUP-1"), headers=operator
    )
    assert "castings for 2026-11" in (await resp.json())["errors"][0]["message"]

    # the entry that holds it may be stored again, unchanged or changed
    assert (await client.put(nansha, json=_green("GEC-DUP-1"), headers=operator)).status == 200
    changed = {**_green("GEC-DUP-1", "GEC-3"), "fuels": _fuel()["fuels"]}
    assert (await client.put(nansha, json=changed, headers=operator)).status == 200
