"""An event's report over real HTTP and Redis: by enterprise, the park's factor, the rebound."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.vpp.conftest import ApiClient
from tests.vpp.samples import PARK
from vpp.events import EventRecord, EventState, EventStore, parse_event_request
from vpp.events.model import BaselineInfo, EnterpriseTrack, ReboundBaseline
from vpp.history.grid import locate
from vpp.history.store import HistoryStore, IntervalDelta
from vpp.ledger.entries import EntryStore, FuelEntry, MonthEntries
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


async def test_the_report_uses_the_park_factor_and_names_it(
    client: ApiClient, state: State, park: None, grid: dict[str, str], operator: dict[str, str]
) -> None:
    await measured_event(client, state, grid, "ev-factor")  # 280 kWh shed, no rebound recorded

    async def report() -> dict[str, Any]:
        resp = await client.get(f"{URL}/ev-factor/report", headers=grid)
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    # a park that chose none: the Southern grid region's factor (Guangdong), not 0.5703
    first = await report()
    assert first["emission_factor"]["id"] == "mee-2023-southern"
    assert first["emission_factor"]["vintage"] == "2023"
    assert first["emission_factor_t_per_mwh"] == 0.4042
    assert first["avoided_co2_kg"] == 113.18  # 280 x 0.4042 = 113.176
    assert first["avoided_co2_status"] == "event_only"  # recorded without a rebound window
    assert sum(e["avoided_co2_kg"] for e in first["enterprises"]) == pytest.approx(113.18)

    carbon: dict[str, Any] = {"carbon": {"electricity_factor": "mee-2023-national"}}
    assert (await client.put(f"/v1/parks/{PARK}", json=carbon, headers=operator)).status == 200
    national = await report()
    assert national["emission_factor"]["name"] == "national average"
    assert national["avoided_co2_kg"] == 148.57  # 280 x 0.5306 = 148.568

    own: dict[str, Any] = {
        "kg_co2_per_kwh": 0.3891,
        "vintage": "2021",
        "source": "entered by the park operator for this test (its provincial notice)",
        "name": "Guangdong provincial grid",
    }
    carbon = {"carbon": {"electricity_factor": "provincial", "provincial_factor": own}}
    assert (await client.put(f"/v1/parks/{PARK}", json=carbon, headers=operator)).status == 200
    provincial = await report()
    assert provincial["emission_factor"] == {
        "id": "provincial", "name": "Guangdong provincial grid", "kg_co2_per_kwh": 0.3891,
        "vintage": "2021", "source": own["source"], "excludes_traded_green": False,
    }  # fmt: skip
    assert provincial["emission_factor_source"] == (
        f"Guangdong provincial grid, 2021: {own['source']}"
    )
    assert provincial["avoided_co2_kg"] == 108.95  # 280 x 0.3891 = 108.948
    # the settlement does not depend on the factor
    assert provincial["settlement"] == national["settlement"] == first["settlement"]


async def lay_rebound(state: State, start: datetime, levels: dict[str, list[float]]) -> None:
    """Each series' mean kW in consecutive 15-minute slots from ``start``, as telemetry."""
    tz = ZoneInfo("Asia/Shanghai")
    deltas = []
    for series, kws in levels.items():
        for j, kw in enumerate(kws):
            day, slot = locate(start + timedelta(minutes=15 * j), tz)
            deltas.append(IntervalDelta(series, day, slot, kw * 0.25, 900))
    await HistoryStore(state).add(PARK, deltas, tz=tz)


async def test_a_load_shift_rebound_from_the_history_reduces_the_avoided_co2(
    client: ApiClient, state: State, park: None, grid: dict[str, str]
) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    body = {"id": "ev-shift", "kind": "peak_shaving", "start": start.isoformat(),
            "target_kw": 300, "duration_minutes": 60}  # fmt: skip
    store = EventStore(state)
    await store.create(PARK, parse_event_request(body), start - timedelta(hours=1))

    def run(r: EventRecord) -> None:
        # as the control loop records it: 280 kW shed for an hour (castings 200 on
        # its meter, logistics 80 on its load), the baseline fixed 4 h past the end
        r.transition(EventState.ACTIVE, start)
        r.baseline_kw, r.measured_kw = [1000.0] * 4, [720.0] * 4
        r.enterprises = {
            "castings": EnterpriseTrack(
                meter="meter-castings", series=["meter-castings"], baseline_kw=[600.0] * 4,
                measured_kw=[400.0] * 4, telemetry_kw=[400.0] * 4,
                rebound_baseline_kw=[600.0] * 16,
            ),
            "logistics": EnterpriseTrack(
                series=["load-a"], baseline_kw=[400.0] * 4, measured_kw=[320.0] * 4,
                telemetry_kw=[320.0] * 4, rebound_baseline_kw=[400.0] * 16,
            ),
        }  # fmt: skip
        r.rebound = ReboundBaseline(start=r.end, baseline_kw=[1000.0] * 16)
        r.transition(EventState.COMPLETED, r.end)

    await store.update(PARK, "ev-shift", run)
    end = start + timedelta(hours=1)
    # the hour after: castings draws 100 and 50 kW back, logistics 40 kW once
    await lay_rebound(state, end, {"meter-castings": [700.0, 650.0], "load-a": [440.0, 400.0]})

    url = f"{URL}/ev-shift/report"
    report = await (await client.get(url, headers=grid)).json()
    # the window is an hour (the event's length, and the 1 h least); half of it is in the history
    assert [r["start"][:16] for r in report["rebound_intervals"]] == [
        (end + timedelta(minutes=15 * j)).astimezone(UTC).isoformat()[:16] for j in range(4)
    ]
    assert report["avoided_co2_status"] == "provisional"
    assert "2 of the 4 intervals" in report["avoided_co2_note"]
    assert [r["rebound_kw"] for r in report["rebound_intervals"]] == [140.0, 50.0, None, None]

    await lay_rebound(
        state, end + timedelta(minutes=30), {"meter-castings": [600.0] * 2, "load-a": [400.0] * 2}
    )
    report = await (await client.get(url, headers=grid)).json()
    assert report["avoided_co2_status"] == "final" and report["rebound_window_h"] == 1.0
    assert report["event_reduction_kwh"] == 280.0
    assert report["rebound_kwh"] == 47.5  # (140 + 50) kW x 0.25 h
    assert report["net_reduction_kwh"] == 232.5
    assert report["event_avoided_co2_kg"] == 113.18  # 280 x 0.4042
    assert report["avoided_co2_kg"] == 93.98  # 232.5 x 0.4042 = 93.9765
    assert report["settlement"] == 980.0  # the event's intervals alone: 280 kWh x 3.5
    castings, logistics = report["enterprises"]
    assert (castings["rebound_kwh"], logistics["rebound_kwh"]) == (37.5, 10.0)
    # 162.5 and 70 kWh x 0.4042 = 65.6825 and 28.294, apportioned to the park's 93.98
    assert (castings["avoided_co2_kg"], logistics["avoided_co2_kg"]) == (65.68, 28.3)

    params = {"format": "csv", "by": "rebound"}
    text = await (await client.get(url, params=params, headers=grid)).text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["measured_kw"] for r in rows] == ["1140.0", "1050.0", "1000.0", "1000.0"]


async def test_an_event_of_a_closed_month_keeps_the_factor_its_month_was_frozen_with(
    client: ApiClient, state: State, park: None, grid: dict[str, str], operator: dict[str, str]
) -> None:
    # a 1-h, 300 kW event on 2026-06-15, 280 kWh shed as measured_event's; June is long closed
    start = datetime(2026, 6, 15, 6, 0, tzinfo=UTC)
    events = EventStore(state)
    request = parse_event_request({
        "id": "ev-june", "kind": "peak_shaving", "start": start.isoformat(),
        "target_kw": 300, "duration_minutes": 60,
    })  # fmt: skip
    await events.create(PARK, request, start - timedelta(days=1))

    def measure(r: EventRecord) -> None:
        r.transition(EventState.ACTIVE, start)
        r.baseline_kw = [1000.0] * 4
        r.measured_kw = [720.0] * 4
        r.transition(EventState.COMPLETED, start + timedelta(hours=1))

    await events.update(PARK, "ev-june", measure)

    async def avoided() -> tuple[str, float]:
        resp = await client.get(f"{URL}/ev-june/report", headers=grid)
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body["emission_factor"]["id"], body["avoided_co2_kg"]

    # the ledger freezes June (with the park's factor then) the first time it is read,
    # as June holds data (a diesel bill; a month without any data is not frozen)
    diesel = MonthEntries(fuels=[FuelEntry(carrier="diesel", quantity=1.0, unit="t")])
    await EntryStore(state).put(PARK, "2026-06", "Guangzhou Precision Castings Co.", diesel)
    ledger = f"/v1/parks/{PARK}/ledger?period=month&from=2026-06&to=2026-06"
    assert (await client.get(ledger, headers=operator)).status == 200
    assert await avoided() == ("mee-2023-southern", 113.18)  # 280 x 0.4042
    carbon: dict[str, Any] = {"carbon": {"electricity_factor": "mee-2023-national"}}
    assert (await client.put(f"/v1/parks/{PARK}", json=carbon, headers=operator)).status == 200
    # June is closed: its events keep June's factor ...
    assert await avoided() == ("mee-2023-southern", 113.18)
    # ... until June is recomputed on request, which takes the park's factor now
    recompute = f"/v1/parks/{PARK}/ledger/months/2026-06/recompute"
    assert (await client.post(recompute, headers=operator)).status == 200
    assert await avoided() == ("mee-2023-national", 148.57)  # 280 x 0.5306
