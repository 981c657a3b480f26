"""The ledger over HTTP on a small written history: JSON, CSV, spans, recomputation, roles.

The history (see ``conftest.py``) is one day, `DAY`, of `CLOSED_MONTH`:
castings' revenue meter 30 kWh in every slot (2,880 kWh), electronics' load
10 kWh in every slot (960 kWh) and its PV -2 kWh in 21 slots (42 kWh).
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any

import pytest

from tests.vpp.api.ledger.conftest import (
    CLOSED_MONTH,
    DAY,
    LOAD_KWH,
    METER_KWH,
    PV_KWH,
    THIS_MONTH,
    TODAY,
)
from tests.vpp.conftest import ApiClient, TokenFactory
from tests.vpp.samples import OTHER_PARK, PARK
from vpp.ledger.export import ledger_columns
from vpp.ledger.factors import CARRIERS
from vpp.state import State

URL = f"/v1/parks/{PARK}/ledger"
MONTH = {"from": CLOSED_MONTH, "to": CLOSED_MONTH}
GAS = {"fuels": [{"carrier": "natural_gas", "quantity": 1000, "unit": "m3"}]}

pytestmark = pytest.mark.usefixtures("history")


async def _ledger(client: ApiClient, headers: dict[str, str], **params: str) -> dict[str, Any]:
    resp = await client.get(URL, params=params, headers=headers)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def _rows(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["scope"], r["period"]): r for r in body["rows"]}


async def _fields(resp: Any) -> list[str]:
    assert resp.status == 422, await resp.text()
    return [e["field"] for e in (await resp.json())["errors"]]


async def test_the_month_has_a_row_per_enterprise_then_the_park(
    client: ApiClient, viewer: dict[str, str]
) -> None:
    body = await _ledger(client, viewer, **MONTH)
    first = date.fromisoformat(CLOSED_MONTH + "-01")
    last = (first + timedelta(days=31)).replace(day=1) - timedelta(days=1)
    assert (body["period"], body["first"], body["last"]) == (
        "month",
        first.isoformat(),
        last.isoformat(),
    )
    scopes = [r["scope"] for r in body["rows"]]
    assert {"castings", "electronics"} <= set(scopes) and scopes[-1] == "park"
    rows = _rows(body)
    castings = rows[("castings", CLOSED_MONTH)]
    assert castings["basis"] == "revenue_meter"
    assert castings["grid_import_kwh"] == pytest.approx(METER_KWH)
    assert castings["name"] == "Guangzhou Precision Castings"
    electronics = rows[("electronics", CLOSED_MONTH)]
    assert electronics["basis"] == "devices"
    assert electronics["pv_generation_kwh"] == pytest.approx(PV_KWH)
    # consumption = grid import - export + PV generation (LedgerRow)
    assert electronics["consumption_kwh"] == pytest.approx(LOAD_KWH)
    assert body["electricity_factor"]["kg_co2_per_kwh"] == 0.4042  # the Southern grid's


async def test_csv_is_a_line_per_row_with_the_rows_values(
    client: ApiClient, viewer: dict[str, str]
) -> None:
    body = await _ledger(client, viewer, **MONTH)
    resp = await client.get(URL, params={**MONTH, "format": "csv"}, headers=viewer)
    assert resp.status == 200 and resp.content_type == "text/csv"
    text = await resp.text()
    assert text.splitlines()[0].split(",") == ledger_columns()
    lines = list(csv.DictReader(io.StringIO(text)))
    assert [line["scope"] for line in lines] == [r["scope"] for r in body["rows"]]
    for line, row in zip(lines, body["rows"], strict=True):
        for name in ("grid_import_kwh", "consumption_kwh", "total_tce", "total_co2_t"):
            assert float(line[name]) == row[name], name
        assert line["electricity_factor_kg_co2_per_kwh"] == "0.4042"


async def test_by_day_the_history_lies_on_its_day(
    client: ApiClient, viewer: dict[str, str]
) -> None:
    body = await _ledger(client, viewer, period="day", **MONTH)
    rows = _rows(body)
    on_day = rows[("castings", DAY.isoformat())]
    assert on_day["grid_import_kwh"] == pytest.approx(METER_KWH)
    assert on_day["coverage"] == pytest.approx(1.0)
    before = rows[("castings", (DAY - timedelta(days=1)).isoformat())]
    assert before["grid_import_kwh"] == 0 and before["coverage"] == 0


async def test_a_gas_entry_adds_its_tce_and_co2_and_a_later_change_waits_for_recompute(
    client: ApiClient, operator: dict[str, str], state: State
) -> None:
    entry_url = f"/v1/parks/{PARK}/ledger/entries/{CLOSED_MONTH}/castings"
    assert (await client.put(entry_url, json=GAS, headers=operator)).status == 200
    gas = CARRIERS["natural_gas"].units["m3"]
    castings = _rows(await _ledger(client, operator, **MONTH))[("castings", CLOSED_MONTH)]
    assert castings["fuels_tce"] == pytest.approx(1000 * gas.tce)
    assert castings["fuels_co2_t"] == pytest.approx(1000 * gas.t_co2)
    assert castings["closed"] is True and castings["pending_changes"] is False

    double = {"fuels": [{"carrier": "natural_gas", "quantity": 2000, "unit": "m3"}]}
    assert (await client.put(entry_url, json=double, headers=operator)).status == 200
    castings = _rows(await _ledger(client, operator, **MONTH))[("castings", CLOSED_MONTH)]
    assert castings["pending_changes"] is True
    assert castings["fuels_tce"] == pytest.approx(1000 * gas.tce)  # frozen until recomputed

    resp = await client.post(f"{URL}/months/{CLOSED_MONTH}/recompute", headers=operator)
    assert resp.status == 200, await resp.text()
    castings = _rows(await resp.json())[("castings", CLOSED_MONTH)]
    assert castings["fuels_tce"] == pytest.approx(2000 * gas.tce)
    assert castings["pending_changes"] is False
    logged = [f for _, f in await state.read_park_log(PARK) if f["event"] == "ledger.recomputed"]
    assert len(logged) == 1
    assert logged[0]["role"] == "park_operator" and logged[0]["by"]  # who recomputed it


async def test_recompute_of_a_month_not_closed_is_409(
    client: ApiClient, operator: dict[str, str]
) -> None:
    resp = await client.post(f"{URL}/months/{THIS_MONTH}/recompute", headers=operator)
    assert resp.status == 409
    assert resp.content_type == "application/problem+json"


async def test_spans_by_year_month_and_day_and_the_defaults(
    client: ApiClient, viewer: dict[str, str]
) -> None:
    year = str(DAY.year)
    body = await _ledger(client, viewer, period="year", **{"from": year, "to": year})
    assert (body["first"], body["last"]) == (f"{year}-01-01", f"{year}-12-31")
    body = await _ledger(client, viewer, period="day", **{"from": DAY.isoformat()[:7],
                                                          "to": DAY.isoformat()})  # fmt: skip
    assert (body["first"], body["last"]) == (CLOSED_MONTH + "-01", DAY.isoformat())
    body = await _ledger(client, viewer)  # the park's current month
    assert (body["first"], body["period"]) == (THIS_MONTH + "-01", "month")
    assert body["last"][:7] == THIS_MONTH
    assert (date.fromisoformat(body["last"]) + timedelta(days=1)).day == 1
    body = await _ledger(client, viewer, period="interval")  # today
    assert (body["first"], body["last"]) == (TODAY.isoformat(), TODAY.isoformat())
    body = await _ledger(client, viewer, period="interval", to=DAY.isoformat())
    assert (body["first"], body["last"]) == (DAY.isoformat(), DAY.isoformat())
    assert {r["period"][:10] for r in body["rows"]} == {DAY.isoformat()}


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"from": "2026-03", "to": "2026-02"}, ["from"]),
        ({"period": "interval", "from": "2026-03-01", "to": "2026-03-08"}, ["to"]),
        ({"period": "day", "from": "2025", "to": "2026"}, ["to"]),
        ({"period": "month", "from": "2000", "to": "2010"}, ["to"]),
        ({"from": "2026-02-30"}, ["from"]),
        ({"to": "1999-12"}, ["to"]),
        ({"period": "week"}, ["period"]),
        ({"format": "xlsx"}, ["format"]),
        ({"enterprise": ""}, ["enterprise"]),
    ],
)
async def test_bad_spans_and_parameters_are_422_naming_them(
    client: ApiClient, viewer: dict[str, str], params: dict[str, str], fields: list[str]
) -> None:
    assert await _fields(await client.get(URL, params=params, headers=viewer)) == fields


async def test_the_longest_spans_are_served(client: ApiClient, viewer: dict[str, str]) -> None:
    week = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=6)).isoformat()}
    assert (await _ledger(client, viewer, period="interval", **week))["first"] == DAY.isoformat()
    body = await _ledger(client, viewer, period="year", **{"from": "2016", "to": "2025"})
    assert (body["first"], body["last"]) == ("2016-01-01", "2025-12-31")
    assert {r["period"] for r in body["rows"]} == {str(y) for y in range(2016, 2026)}


async def test_one_enterprises_rows_and_an_unknown_one(
    client: ApiClient, viewer: dict[str, str]
) -> None:
    body = await _ledger(client, viewer, enterprise="castings", **MONTH)
    assert "castings" in {r["scope"] for r in body["rows"]}
    assert "electronics" not in {r["scope"] for r in body["rows"]}
    resp = await client.get(URL, params={**MONTH, "enterprise": "nobody"}, headers=viewer)
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"


@pytest.mark.parametrize(
    ("role", "read", "recompute"),
    [("viewer", 200, 403), ("grid_operator", 200, 403), ("park_operator", 200, 200),
     ("admin", 200, 200)],
)  # fmt: skip
async def test_everyone_reads_park_operators_and_admins_recompute(
    client: ApiClient, auth: TokenFactory, role: str, read: int, recompute: int
) -> None:
    headers = await auth(role, *([] if role == "admin" else [PARK]))
    assert (await client.get(URL, params=MONTH, headers=headers)).status == read
    report = await client.get(f"{URL}/report", params={"month": CLOSED_MONTH}, headers=headers)
    assert report.status == read
    resp = await client.post(f"{URL}/months/{CLOSED_MONTH}/recompute", headers=headers)
    assert resp.status == recompute


async def test_another_parks_token_reads_nothing(client: ApiClient, auth: TokenFactory) -> None:
    other = await auth("viewer", OTHER_PARK)
    assert (await client.get(URL, headers=other)).status == 403
    assert (await client.get(f"{URL}/report", headers=other)).status == 403
    assert (await client.get(URL)).status == 401
