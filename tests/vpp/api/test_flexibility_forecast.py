"""GET /flexibility lays the park's loads on their forecast and says which forecast it used."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tests.vpp.conftest import ApiClient
from tests.vpp.samples import PARK
from vpp.forecast import ForecastStore, ParkForecast, SeriesForecast
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
