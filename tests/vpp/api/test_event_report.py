"""An event's report by enterprise over real HTTP and Redis: JSON, CSV, contracts from the park."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.vpp.conftest import ApiClient
from tests.vpp.samples import PARK
from vpp.events import EventRecord, EventState, EventStore
from vpp.events.model import BaselineInfo, EnterpriseTrack
from vpp.state import State

T0 = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
URL = f"/v1/parks/{PARK}/events"


async def measured_event(client: ApiClient, state: State, grid: dict[str, str], id: str) -> None:
    """A one-hour, 300 kW peak-shaving event, measured as the control loop records it.

    Two enterprises: "castings" on its revenue meter (whose telemetry sum
    lags the meter by 60 kW in the last interval), "logistics" on its assets.
    """
    body = {
        "id": id,
        "kind": "peak_shaving",
        "start": T0.isoformat(),
        "target_kw": 300,
        "duration_minutes": 60,
    }
    assert (await client.post(URL, json=body, headers=grid)).status == 202

    def measure(r: EventRecord) -> None:
        r.transition(EventState.ACTIVE, datetime.now(UTC))
        r.baseline = BaselineInfo(requested="similar_days", method="similar_days", note="5 days")
        r.enterprises = {
            "castings": EnterpriseTrack(
                meter="meter-castings",
                baseline_source="meter:meter-castings",
                days=[date(2026, 6, 29), date(2026, 6, 30)],
                adjustment=1.05,
                baseline_kw=[600.0] * 4,
                measured_kw=[400.0] * 4,
                telemetry_kw=[398.0, 401.0, 395.0, 340.0],
            ),
            "logistics": EnterpriseTrack(
                baseline_source="assets",
                baseline_kw=[400.0] * 4,
                measured_kw=[320.0] * 4,
                telemetry_kw=[320.0] * 4,
            ),
        }
        r.baseline_kw = [1000.0] * 4
        r.measured_kw = [720.0] * 4
        r.transition(EventState.COMPLETED, datetime.now(UTC))

    await EventStore(state).update(PARK, id, measure)


async def test_report_breaks_down_by_enterprise_under_the_park_contracts(
    client: ApiClient, state: State, park: None, grid: dict[str, str], operator: dict[str, str]
) -> None:
    contracts = {
        "enterprises": {
            "castings": {"name": "Castings Co.", "revenue_share": 0.8, "penalty_share": 0.5}
        }
    }
    resp = await client.put(f"/v1/parks/{PARK}", json=contracts, headers=operator)
    assert resp.status == 200, await resp.text()
    await measured_event(client, state, grid, "ev-split")

    resp = await client.get(f"{URL}/ev-split/report", headers=grid)
    assert resp.status == 200, await resp.text()
    report: dict[str, Any] = await resp.json()
    assert report["payment"] == 980.0  # 280 kWh payable x 3.5
    assert report["baseline"]["method"] == "similar_days"
    castings, logistics = report["enterprises"]
    assert castings["enterprise"] == "castings" and castings["name"] == "Castings Co."
    assert castings["baseline_days"] == ["2026-06-29", "2026-06-30"]
    # 200 : 80 kW delivered -> 700 : 280 of the payment; castings keeps 80 %,
    # logistics (no contract in the park: the defaults) all of it
    assert (castings["gross_payment"], logistics["gross_payment"]) == (700.0, 280.0)
    assert (castings["payment"], logistics["payment"]) == (560.0, 280.0)
    assert logistics["revenue_share"] == 1.0
    assert report["operator"] == {"payment": 140.0, "penalty": 0.0, "settlement": 140.0}
    total = sum(Decimal(repr(e["settlement"])) for e in report["enterprises"])
    assert total + Decimal(repr(report["operator"]["settlement"])) == Decimal("980.0")
    # the meter against telemetry: 60 kW of 400 in the last interval is beyond 5 %
    assert [i["meter_disagrees"] for i in castings["intervals"]] == [False, False, False, True]
    assert castings["intervals_disagreeing"] == 1
    assert report["reconcile_tolerance"] == 0.05 and report["reconcile_floor_kw"] == 1.0
    assert all(i["meter_disagrees"] is None for i in logistics["intervals"])

    # CSV: the park's table as before, and the long table by enterprise
    resp = await client.get(f"{URL}/ev-split/report", params={"format": "csv"}, headers=grid)
    park_rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert len(park_rows) == 4 and "enterprise" not in park_rows[0]
    assert [r["delivered_kw"] for r in park_rows] == ["280.0"] * 4
    params = {"format": "csv", "by": "enterprise"}
    resp = await client.get(f"{URL}/ev-split/report", params=params, headers=grid)
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["enterprise"] for r in rows] == ["castings"] * 4 + ["logistics"] * 4
    assert [r["delivered_kw"] for r in rows] == ["200.0"] * 4 + ["80.0"] * 4
    assert [r["meter_disagrees"] for r in rows] == ["False"] * 3 + ["True"] + [""] * 4

    resp = await client.get(f"{URL}/ev-split/report", params={"by": "asset"}, headers=grid)
    assert resp.status == 422
    assert (await resp.json())["errors"][0]["field"] == "by"


async def test_report_of_an_event_without_tracks_has_an_empty_breakdown(
    client: ApiClient, state: State, park: None, grid: dict[str, str]
) -> None:
    body = {"id": "ev-old", "kind": "peak_shaving", "start": T0.isoformat(), "target_kw": 100}
    body["duration_minutes"] = 30
    assert (await client.post(URL, json=body, headers=grid)).status == 202

    def measure(r: EventRecord) -> None:
        r.transition(EventState.ACTIVE, datetime.now(UTC))
        r.baseline_kw = [500.0, 500.0]
        r.measured_kw = [400.0, 420.0]

    await EventStore(state).update(PARK, "ev-old", measure)
    report = await (await client.get(f"{URL}/ev-old/report", headers=grid)).json()
    assert report["enterprises"] == [] and report["operator"] is None
    assert report["baseline"] is None and report["breakdown_note"] == ""
    assert report["delivered_kwh"] == pytest.approx(45.0)
    params = {"format": "csv", "by": "enterprise"}
    text = await (await client.get(f"{URL}/ev-old/report", params=params, headers=grid)).text()
    assert text.splitlines()[0].startswith("enterprise,start,requested_kw")
    assert len(text.splitlines()) == 1
