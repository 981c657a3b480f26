"""GET /flexibility lays the park's loads on their forecast and says which forecast it used."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tests.vpp.conftest import ApiClient
from tests.vpp.samples import PARK, sample
from vpp.forecast import ForecastStore, ParkForecast, SeriesForecast
from vpp.history.store import HistoryStore
from vpp.state import State


async def test_flexibility_uses_the_forecast_anchored_to_the_live_reading(
    client: ApiClient, park: None, operator: dict[str, str], state: State
) -> None:
    # the park fixture: two loads drawing 800 kW now (window 500..890), four batteries
    issued = datetime.now(UTC).replace(microsecond=0)
    today = issued.astimezone(ZoneInfo("Asia/Shanghai")).date()
    flat = np.full(2 * 96, 700.0)
    series = {
        f"load-{i}": SeriesForecast(f"load-{i}", "flexible_load", "model", flat) for i in range(2)
    }
    fc = ParkForecast(PARK, issued, "Asia/Shanghai", today, 2, series)
    await ForecastStore(state).put(fc)
    url = f"/v1/parks/{PARK}/flexibility"
    resp = await client.get(url, params={"intervals": "12"}, headers=operator)
    assert resp.status == 200, await resp.text()
    env = await resp.json()
    assert env["forecast_issued_at"] == issued.isoformat()
    assert env["forecast_methods"] == {"battery": {"live_soc": 4}, "flexible_load": {"model": 2}}
    # now: the live 2 x 800 kW; from two hours on: the forecast's 2 x 700 kW
    assert env["baseline_kw"][0] == pytest.approx(1600.0)
    assert env["baseline_kw"][10:] == pytest.approx([1400.0, 1400.0])
    assert env["down_kw"][10] == pytest.approx(4 * 500 + 2 * 200)
    assert "anchored to its live reading" in env["notes"]["load-0"]


async def test_a_bid_for_tomorrow_with_every_device_silent_is_built_from_its_history(
    client: ApiClient, grid: dict[str, str], operator: dict[str, str], state: State
) -> None:
    # Issue 11: with stale telemetry this answered 409 "no asset of the park is flexible".
    url = f"/v1/parks/{PARK}/assets"
    body = sample("flexible_load", id="load-0", rebound_fraction=0.0)
    assert (await client.post(url, json=body, headers=operator)).status == 201
    tz = ZoneInfo("Asia/Shanghai")
    today = datetime.now(UTC).astimezone(tz).date()
    week = {today - timedelta(days=d): [200.0] * 96 for d in range(1, 8)}
    await HistoryStore(state).put_days(PARK, "load-0", week, tz=tz)
    start = datetime.combine(today + timedelta(days=1), time(0), tz)
    bid_body = {
        "start": start.isoformat(),
        "intervals": 8,
        "rules": {"min_capacity_kw": 100, "min_duration_minutes": 15},
    }
    resp = await client.post(f"/v1/parks/{PARK}/bids", json=bid_body, headers=grid)
    assert resp.status == 201, await resp.text()
    bid = (await resp.json())["bid"]
    assert bid["assets_included"] == 1 and bid["assets_excluded"] == {}
    # the park had no forecast: one was issued on the spot, from the week of history
    assert bid["forecast_issued_at"] is not None
    assert bid["forecast"]["methods"] == {"flexible_load": {"similar_day": 1}}
    assert "available 100%" in bid["forecast"]["notes"]["load-0"]
    assert bid["margin"]["note"] == "no backtest stored: no margin"
    # its history's 800 kW (its enrolled baseline too), 300 kW to shed for its 2 h (8 intervals)
    assert bid["baseline_kw"] == [800.0] * 8 and max(bid["down"]["quantity_kw"]) == 300.0
    # a window starting now still needs fresh telemetry
    now_body = {**bid_body, "start": datetime.now(UTC).isoformat()}
    resp = await client.post(f"/v1/parks/{PARK}/bids", json=now_body, headers=grid)
    assert resp.status == 409
