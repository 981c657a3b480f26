"""The declaration of a built bid over HTTP: trading units per clearing node, profile errors."""

from __future__ import annotations

import csv
import io
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from tests.vpp.conftest import ApiClient
from tests.vpp.samples import PARK, stored_bid
from vpp.state import State, pack

# the park's (Asia/Shanghai, the default Park.timezone) next midnight: a market day
BEIJING = ZoneInfo("Asia/Shanghai")
T0 = datetime.combine(datetime.now(BEIJING).date() + timedelta(days=1), time(0), BEIJING)


async def test_a_two_node_park_declares_two_trading_units(
    client: ApiClient, park: None, grid: dict[str, str]
) -> None:
    # the park fixture: 4 batteries on feeder-10kv-03, 2 loads (800 kW, 300 kW shed) on -02
    body = {"id": "d-1", "start": T0.isoformat(), "profile": "gd-spot-unit"}
    resp = await client.post(f"/v1/parks/{PARK}/bids", json=body, headers=grid)
    assert resp.status == 201, await resp.text()
    bid = (await resp.json())["bid"]
    assert bid["profile"] == "gd-spot-unit"
    assert bid["rules"]["price_cap"] == pytest.approx(1.5)  # from the profile
    assert [u["node"] for u in bid["units"]] == ["feeder-10kv-02", "feeder-10kv-03"]
    url = f"/v1/parks/{PARK}/bids/d-1"
    resp = await client.get(url, params={"format": "declaration"}, headers=grid)
    assert resp.status == 200, await resp.text()
    decl = (await resp.json())["declaration"]
    assert decl["profile"]["name"] == "gd-spot-unit" and decl["hours"] == 24
    loads, batteries = decl["units"]
    assert loads["asset_ids"] == ["load-0", "load-1"]
    # the loads' baseline: 2 x 800 kW all day = 1.6 MWh an hour
    assert [h["energy_mwh"] for h in loads["hours"]] == [pytest.approx(1.6)] * 24
    units = {u["node"]: u for u in bid["units"]}
    energy = sum(units["feeder-10kv-02"]["baseline_kw"]) * 0.25 / 1000
    assert sum(h["energy_mwh"] for h in loads["hours"]) == pytest.approx(energy)
    # The loads alone offer nothing the engine certifies (a shed load must rebound inside
    # the day, and no interval of a down bid may go up): the unit misses 1 MW by all of it,
    # and says so, with its 24 hours still declared at its baseline.
    assert loads["capability_mw"] < 1.0 and not loads["compliant"]
    miss = next(v for v in loads["violations"] if v["scope"] == "unit")
    assert miss["rule"] == "min_capacity" and miss["required"] == 1.0
    assert miss["miss"] == pytest.approx(1.0 - loads["capability_mw"], abs=1e-6)
    assert [h["upper_mw"] for h in loads["hours"]] == [pytest.approx(1.6)] * 24
    # 4 x 500 kW batteries at SoC 0.5: 1,520 kWh down (0.4 x 1 MWh x 0.95 each) in one hour
    assert batteries["capability_mw"] >= 1.0 and batteries["compliant"]
    assert max(s["mw"][0] for s in batteries["down_steps"]) <= 2.0
    assert not decl["compliant"]
    resp = await client.get(url, params={"format": "declaration-csv"}, headers=grid)
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert len(rows) == 48 and rows[0]["node"] == "feeder-10kv-02"


async def test_an_unknown_profile_is_422_naming_profile(
    client: ApiClient, park: None, grid: dict[str, str]
) -> None:
    body = {"start": T0.isoformat(), "profile": "gd-nowhere"}
    resp = await client.post(f"/v1/parks/{PARK}/bids", json=body, headers=grid)
    assert resp.status == 422
    errors = (await resp.json())["errors"]
    assert [e["field"] for e in errors] == ["profile"] and "gd-nowhere" in errors[0]["message"]


async def test_a_bid_without_units_has_no_declaration(
    client: ApiClient, park: None, grid: dict[str, str], state: State
) -> None:
    keys = state.park(PARK)
    await state.redis.set(keys.bid("old"), pack(stored_bid(id="old")))
    await state.redis.zadd(keys.bids, {"old": 1.0})
    url = f"/v1/parks/{PARK}/bids/old"
    resp = await client.get(url, params={"format": "declaration"}, headers=grid)
    assert resp.status == 409
    assert "no trading units" in (await resp.json())["detail"]


@pytest.mark.parametrize(
    ("start", "local"),
    [(T0.replace(minute=7), "00:07:00"),  # the user's "2026-12-02T00:07:00+08:00"
     (T0.replace(tzinfo=timezone(timedelta(hours=5, minutes=45))), "02:15:00")],
)  # fmt: skip
async def test_a_window_off_the_parks_midnight_is_not_the_market_day(
    client: ApiClient, park: None, grid: dict[str, str], start: datetime, local: str
) -> None:
    body = {"id": "x5", "start": start.isoformat()}
    resp = await client.post(f"/v1/parks/{PARK}/bids", json=body, headers=grid)
    assert resp.status == 201, await resp.text()
    url = f"/v1/parks/{PARK}/bids/x5"
    resp = await client.get(url, params={"format": "declaration"}, headers=grid)
    decl = (await resp.json())["declaration"]
    assert decl["hours"] == 24 and decl["timezone"] == "Asia/Shanghai"
    assert decl["units"][0]["hours"][0]["start"].endswith(f"T{local}+08:00")
    (day,) = [v for v in decl["violations"] if v["rule"] == "market_day"]
    assert day["unit"] == "min" and f"{local} Asia/Shanghai" in day["detail"]
    assert not decl["compliant"]
    resp = await client.get(url, params={"format": "declaration-csv"}, headers=grid)
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert {r["declaration_compliant"] for r in rows} == {"false"}
    assert all("market_day" in r["declaration_violations"] for r in rows)


async def test_a_market_dr_bid_keeps_the_profiles_minimum_and_its_csv_says_not_compliant(
    client: ApiClient, park: None, grid: dict[str, str]
) -> None:
    body = {"id": "dr-1", "start": T0.isoformat(), "profile": "gd-market-dr",
            "rules": {"price_cap": 9}}  # fmt: skip
    resp = await client.post(f"/v1/parks/{PARK}/bids", json=body, headers=grid)
    assert resp.status == 201, await resp.text()
    rules = (await resp.json())["bid"]["rules"]
    assert rules["price_cap"] == 9 and rules["min_capacity_kw"] == 5000.0  # the profile's 5 MW
    url = f"/v1/parks/{PARK}/bids/dr-1"
    resp = await client.get(url, params={"format": "declaration"}, headers=grid)
    decl = (await resp.json())["declaration"]
    # 4 x 500 kW batteries and the loads: well under the VPP's 5 MW
    assert decl["capability_mw"] < 5.0 and not decl["compliant"]
    assert not [v for v in decl["violations"] if v["rule"] == "market_day"]
    resp = await client.get(url, params={"format": "declaration-csv"}, headers=grid)
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert rows and {r["declaration_compliant"] for r in rows} == {"false"}
    assert {r["declaration_violations"] for r in rows} == {
        f"min_capacity {decl['capability_mw']:g}/5 MW"
    }
