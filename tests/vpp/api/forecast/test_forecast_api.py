"""The forecast routes over real HTTP and Redis: status codes, roles, shapes, 422s naming fields."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import pytest

from tests.vpp.api.forecast.conftest import SHANGHAI
from tests.vpp.conftest import ApiClient, TokenFactory
from tests.vpp.forecast.support import truth
from tests.vpp.samples import PARK
from vpp.model import Park
from vpp.state import State

URL = f"/v1/parks/{PARK}/forecast"


async def _json(resp: Any, status: int) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


@pytest.mark.usefixtures("park")
async def test_a_forecast_is_issued_stored_and_read(
    client: ApiClient, auth: TokenFactory, today: date
) -> None:
    operator = await auth("park_operator", PARK)
    viewer = await auth("viewer", PARK)
    problem = await _json(await client.get(URL, headers=viewer), 404)
    assert "forecast" in problem["detail"]

    assert (await client.post(URL, headers=viewer)).status == 403
    issued = await _json(await client.post(URL, headers=operator), 200)
    assert issued["park"] == PARK
    assert issued["interval_minutes"] == 15
    assert issued["days"] == 2
    assert issued["start_day"] == today.isoformat()
    assert datetime.fromisoformat(issued["start"]) == datetime.combine(today, time(0), SHANGHAI)
    assert datetime.fromisoformat(issued["issued_at"]) >= datetime.combine(today, time(9), SHANGHAI)
    by_series = {s["series"]: s for s in issued["series"]}
    assert set(by_series) == {"load-1", "load-2", "meter-a"}  # the battery has no forecaster
    for s in by_series.values():
        assert s["method"] == "model"
        assert "LightGBM" in s["note"]
        assert len(s["kw"]) == 2 * 96
    tomorrow = np.array(by_series["load-1"]["kw"][96:], dtype=float)
    expected = 400.0 * truth(today + timedelta(days=1))
    assert np.abs(tomorrow - expected).sum() / expected.sum() < 0.06
    assert issued["sessions"] == []

    again = await _json(await client.get(URL, headers=viewer), 200)
    assert again == issued


@pytest.mark.usefixtures("park")
async def test_a_backtest_is_run_stored_and_read(client: ApiClient, auth: TokenFactory) -> None:
    operator = await auth("park_operator", PARK)
    grid = await auth("grid_operator", PARK)
    assert (await client.get(f"{URL}/backtest", headers=grid)).status == 404
    assert (await client.post(f"{URL}/backtest?days=3", headers=grid)).status == 403

    body = await _json(await client.post(f"{URL}/backtest?days=3", headers=operator), 200)
    assert set(body["scores"]) == {"flexible_load", "meter", "park"}
    for scores in body["scores"].values():
        assert set(scores) == {"forecast", "persistence", "similar_day"}
        assert scores["forecast"]["nmae"] < scores["persistence"]["nmae"]
    assert set(body["error_quantiles"]["park"]) == {
        "0.05",
        "0.1",
        "0.25",
        "0.5",
        "0.75",
        "0.9",
        "0.95",
    }
    assert body["issue_time"] == "09:00"
    assert "park: the sum of meter-a" in body["note"]

    stored = await _json(await client.get(f"{URL}/backtest", headers=grid), 200)
    assert stored == body


@pytest.mark.usefixtures("park")
@pytest.mark.parametrize("days", ["0", "61", "x"])
async def test_a_bad_days_is_a_422_naming_it(
    client: ApiClient, auth: TokenFactory, days: str
) -> None:
    operator = await auth("park_operator", PARK)
    problem = await _json(await client.post(f"{URL}/backtest?days={days}", headers=operator), 422)
    assert [e["field"] for e in problem["errors"]] == ["days"]


async def test_a_park_without_history_cannot_be_backtested(
    client: ApiClient, auth: TokenFactory, state: State
) -> None:
    await state.put_park(Park(id=PARK, timezone="Asia/Shanghai"))
    operator = await auth("park_operator", PARK)
    problem = await _json(await client.post(f"{URL}/backtest?days=3", headers=operator), 409)
    assert "no history to score" in problem["detail"]


async def test_an_unknown_park_is_a_404(client: ApiClient, auth: TokenFactory) -> None:
    admin = await auth("admin", "*")
    assert (await client.get("/v1/parks/nowhere/forecast", headers=admin)).status == 404
    assert (await client.post("/v1/parks/nowhere/forecast", headers=admin)).status == 404
