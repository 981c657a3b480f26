"""Meter readings import over real HTTP and Redis: good days, repeats, every bad-cell kind."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest

from tests.vpp.api.metering.support import csv_body, days_before, energies, json_body
from tests.vpp.conftest import ApiClient, TokenFactory
from tests.vpp.samples import PARK
from vpp.history.readings import MAX_DAYS
from vpp.history.store import HistoryStore, IntervalDelta
from vpp.state import State

URL = f"/v1/parks/{PARK}/meters/meter-a/readings"
PROBLEM = "application/problem+json"

pytestmark = pytest.mark.usefixtures("enrolled")


async def _imports(state: State) -> list[dict[str, Any]]:
    return [
        f for _, f in await state.read_park_log(PARK) if f["event"] == "meter.readings_imported"
    ]


async def _nothing_stored(store: HistoryStore, *days: date) -> None:
    held = (await store.read(PARK, ["meter-a"], min(days), max(days)))["meter-a"]
    assert all(held[d].day_coverage == 0 for d in days)


async def test_a_good_day_in_json_is_stored_imported_and_logged(
    client: ApiClient, operator: dict[str, str], store: HistoryStore, state: State, today: date
) -> None:
    (day,) = days_before(today, 1)
    resp = await client.put(URL, json=json_body((day, energies())), headers=operator)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body == {
        "park": PARK, "meter": "meter-a", "stored": [day.isoformat()],
        "replaced": [], "unchanged": [], "intervals": 96,
    }  # fmt: skip
    held = (await store.read(PARK, ["meter-a"], day, day))["meter-a"][day]
    np.testing.assert_allclose(held.energy_kwh, energies())
    assert held.coverage.tolist() == [1.0] * 96 and held.imported.all()
    (entry,) = await _imports(state)
    assert entry["meter"] == "meter-a" and entry["form"] == "json"
    assert (entry["by"], entry["role"]) == ("test-park_operator", "park_operator")
    assert entry["data"] == {"stored": [day.isoformat()], "replaced": [], "unchanged": []}
    assert entry["intervals"] == "96"


async def test_good_days_in_csv_with_crlf_and_a_byte_order_mark(
    client: ApiClient, grid: dict[str, str], store: HistoryStore, today: date
) -> None:
    first, second = days_before(today, 3, 2)
    text = csv_body(
        (first.isoformat(), ["12.5"] * 96),
        (second.isoformat(), [f"{v:.2f}" for v in energies()]),
        newline="\r\n",
        bom=True,
    )
    headers = {**grid, "Content-Type": "text/csv"}
    resp = await client.put(URL, data=text.encode(), headers=headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["stored"] == [first.isoformat(), second.isoformat()]
    held = (await store.read(PARK, ["meter-a"], first, second))["meter-a"]
    assert held[first].energy_kwh.tolist() == [12.5] * 96
    np.testing.assert_allclose(held[second].energy_kwh, energies())


async def test_a_repeat_changes_nothing_and_a_reimport_replaces_each_logged_with_its_author(
    client: ApiClient,
    operator: dict[str, str],
    grid: dict[str, str],
    store: HistoryStore,
    state: State,
    today: date,
) -> None:
    day, other = days_before(today, 2, 1)
    body = json_body((day, energies()))
    assert (await client.put(URL, json=body, headers=operator)).status == 200
    raw = await state.redis.get(state.park(PARK).history("meter-a", day))

    again = await (await client.put(URL, json=body, headers=operator)).json()
    assert (again["stored"], again["replaced"], again["unchanged"]) == (
        [day.isoformat()], [], [day.isoformat()],
    )  # fmt: skip
    assert await state.redis.get(state.park(PARK).history("meter-a", day)) == raw

    changed = json_body((day, energies(20.0)), (other, energies()))
    resp = await client.put(URL, json=changed, headers=grid)
    result = await resp.json()
    assert result["replaced"] == [day.isoformat()] and result["unchanged"] == []
    held = (await store.read(PARK, ["meter-a"], day, day))["meter-a"][day]
    np.testing.assert_allclose(held.energy_kwh, energies(20.0))

    log = await _imports(state)
    assert [(e["by"], e["data"]["replaced"], e["data"]["unchanged"]) for e in log] == [
        ("test-park_operator", [], []),
        ("test-park_operator", [], [day.isoformat()]),
        ("test-grid_operator", [day.isoformat()], []),
    ]
    assert log[2]["data"]["stored"] == [day.isoformat(), other.isoformat()]


async def test_an_import_replaces_a_day_of_live_telemetry(
    client: ApiClient, operator: dict[str, str], store: HistoryStore, today: date
) -> None:
    (day,) = days_before(today, 1)
    await store.add(PARK, [IntervalDelta("meter-a", day, 40, 30.0, 600)])
    result = await (
        await client.put(URL, json=json_body((day, energies())), headers=operator)
    ).json()
    assert result["replaced"] == [day.isoformat()]
    held = (await store.read(PARK, ["meter-a"], day, day))["meter-a"][day]
    assert held.coverage[40] == 1.0 and held.energy_kwh[40] == energies()[40]


def _cells(at: int, value: Any) -> list[Any]:
    cells: list[Any] = energies()
    cells[at] = value
    return cells


def _date(spec: str, first: date) -> str:
    """A case's date: ``first``, ``other`` (the day before), ``today``, or the text itself."""
    named = {"first": first, "other": first - timedelta(days=1), "today": first + timedelta(1)}
    return named[spec].isoformat() if spec in named else spec


# (what is wrong, the second day's date and energies, the field named, the error type)
JSON_CASES: list[tuple[str, str, list[Any], str, str]] = [
    ("a bad date", "2026-02-30", energies(), "days[1].date", "value_error"),
    ("a timestamp for a date", "1732320000", energies(), "days[1].date", "value_error"),
    ("a missing interval", "other", energies()[:95], "days[1].energy_kwh[95]", "missing"),
    ("a null energy", "other", _cells(17, None), "days[1].energy_kwh[17]", "missing"),
    ("a negative energy", "other", _cells(17, -0.5), "days[1].energy_kwh[17]", "negative"),
    ("a non-numeric energy", "other", _cells(17, "1.5"), "days[1].energy_kwh[17]", "float_type"),
    ("a day given twice", "first", energies(), "days[1].date", "duplicate"),
    ("a day not over", "today", energies(), "days[1].date", "future"),
    ("a day older than the retention", "2001-01-01", energies(), "days[1].date", "retention"),
]
# (what is wrong, the third row's date and cells, the cell named, the error type)
CSV_CASES: list[tuple[str, str, list[Any], str, str]] = [
    ("a bad date", "2026-13-01", energies(), "row 3, column date", "date"),
    ("a date in another form", "30/11/2026", energies(), "row 3, column date", "date"),
    ("an empty cell", "other", _cells(17, ""), "row 3, column 04:30", "missing"),
    ("a short row", "other", energies()[:95], "row 3, column 24:00", "missing"),
    ("a negative energy", "other", _cells(17, "-2.5"), "row 3, column 04:30", "negative"),
    ("a non-numeric energy", "other", _cells(17, "n/a"), "row 3, column 04:30", "number"),
    ("a quoted energy", "other", _cells(17, '"2.5"'), "row 3, column 04:30", "number"),
    ("an exponent", "other", _cells(17, "2.5e1"), "row 3, column 04:30", "number"),
    ("an extra cell", "other", [*energies(), "1"], "row 3, column 98", "extra"),
    ("a day given twice", "first", energies(), "row 3, column date", "duplicate"),
    ("a day not over", "today", energies(), "row 3, column date", "future"),
]
CASES = [("json", *c) for c in JSON_CASES] + [("csv", *c) for c in CSV_CASES]


@pytest.mark.parametrize(("form", "what", "when", "cells", "field", "kind"), CASES,
                         ids=[f"{c[0]}: {c[1]}" for c in CASES])  # fmt: skip
async def test_each_bad_cell_is_named_by_row_and_column_and_nothing_is_stored(
    client: ApiClient,
    operator: dict[str, str],
    store: HistoryStore,
    state: State,
    today: date,
    form: str,
    what: str,
    when: str,
    cells: list[Any],
    field: str,
    kind: str,
) -> None:
    first, other = days_before(today, 1, 2)
    good, bad = (first.isoformat(), energies()), (_date(when, first), cells)
    if form == "json":
        body = {"days": [{"date": d, "energy_kwh": e} for d, e in (good, bad)]}
        resp = await client.put(URL, json=body, headers=operator)
    else:
        text = csv_body(good, bad)
        resp = await client.put(URL, data=text, headers={**operator, "Content-Type": "text/csv"})
    assert resp.status == 422, await resp.text()
    assert resp.content_type == PROBLEM
    errors = (await resp.json())["errors"]
    assert [(e["field"], e["type"]) for e in errors] == [(field, kind)], errors
    await _nothing_stored(store, first, other)
    assert await _imports(state) == []


async def test_every_bad_cell_of_a_request_is_listed(
    client: ApiClient, operator: dict[str, str], today: date
) -> None:
    first, second = days_before(today, 2, 1)
    text = csv_body(
        (first.isoformat(), _cells(0, "")),
        ("2026-02-29", _cells(95, "-1")),
        (second.isoformat(), energies()[:94]),
    )
    resp = await client.put(URL, data=text, headers={**operator, "Content-Type": "text/csv"})
    assert resp.status == 422
    assert [e["field"] for e in (await resp.json())["errors"]] == [
        "row 2, column 00:15",
        "row 3, column date",
        "row 3, column 24:00",
        "row 4, column 23:45",
        "row 4, column 24:00",
    ]


async def test_a_bad_header_is_named(client: ApiClient, operator: dict[str, str]) -> None:
    text = "date,00:00,00:15\n2026-11-20,1,2\n"
    resp = await client.put(URL, data=text, headers={**operator, "Content-Type": "text/csv"})
    assert resp.status == 422
    (error,) = (await resp.json())["errors"]
    assert (
        error["field"] == "row 1, column 2" and "'00:00' where '00:15' belongs" in error["message"]
    )


async def test_a_request_is_bounded_and_its_errors_listed_up_to_a_limit(
    client: ApiClient, operator: dict[str, str], today: date
) -> None:
    (day,) = days_before(today, 1)
    too_many = {"days": [{"date": day.isoformat(), "energy_kwh": energies()}] * (MAX_DAYS + 1)}
    resp = await client.put(URL, json=too_many, headers=operator)
    assert resp.status == 422
    assert [e["field"] for e in (await resp.json())["errors"]] == ["days"]

    negative = {"date": day.isoformat(), "energy_kwh": [-1.0] * 96}
    resp = await client.put(URL, json={"days": [negative] * 2}, headers=operator)
    errors = (await resp.json())["errors"]
    assert len(errors) == 101 and errors[-1] == {
        "field": "body", "message": "93 more errors not listed", "type": "more",
    }  # fmt: skip


async def test_an_unknown_meter_is_404_and_another_kind_409(
    client: ApiClient, auth: TokenFactory, operator: dict[str, str], today: date
) -> None:
    body = json_body((days_before(today, 1)[0], energies()))
    resp = await client.put(
        f"/v1/parks/{PARK}/meters/meter-x/readings", json=body, headers=operator
    )
    assert resp.status == 404 and "meter 'meter-x' not found" in (await resp.json())["detail"]
    resp = await client.put(f"/v1/parks/{PARK}/meters/bess-a/readings", json=body, headers=operator)
    assert resp.status == 409 and "is a battery, not a meter" in (await resp.json())["detail"]
    admin = await auth("admin")
    resp = await client.put("/v1/parks/nowhere/meters/meter-a/readings", json=body, headers=admin)
    assert resp.status == 404 and "park 'nowhere' not found" in (await resp.json())["detail"]


async def test_roles_viewer_is_403_and_other_media_types_415(
    client: ApiClient, auth: TokenFactory, operator: dict[str, str], today: date
) -> None:
    body = json_body((days_before(today, 1)[0], energies()))
    viewer = await auth("viewer", PARK)
    resp = await client.put(URL, json=body, headers=viewer)
    assert resp.status == 403 and resp.content_type == PROBLEM
    other_park = await auth("park_operator", "park-b")
    assert (await client.put(URL, json=body, headers=other_park)).status == 403
    resp = await client.put(URL, data="x", headers={**operator, "Content-Type": "text/plain"})
    assert resp.status == 415
    resp = await client.put(URL, data=b"\xff\xfe", headers={**operator, "Content-Type": "text/csv"})
    assert resp.status == 400
