"""Issuing forecasts from Redis: the refresh, the refresher's round, its daily backtest."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import numpy as np

from tests.vpp.forecast.support import TZ, truth
from tests.vpp.samples import sample
from vpp.clock import Clock
from vpp.forecast.kinds import FORECASTERS
from vpp.forecast.refresh import ForecastRefresher, issue_forecast, park_total_members
from vpp.forecast.store import ForecastStore
from vpp.history.store import HistoryStore
from vpp.model import Park, parse_asset
from vpp.settings import ForecastSettings
from vpp.state import State

TODAY = date(2026, 11, 24)
NOW = datetime.combine(TODAY, time(9), tzinfo=TZ)


async def _park(state: State, park: str, days: int) -> HistoryStore:
    await state.put_park(Park(id=park, timezone="Asia/Shanghai"))
    await state.enroll(park, parse_asset(sample("flexible_load", id="load-1")))
    await state.enroll(park, parse_asset(sample("flexible_load", id="load-2")))
    await state.enroll(park, parse_asset(sample(id="bess-1")))
    store = HistoryStore(state)
    span = [TODAY - timedelta(days=k) for k in range(days, 0, -1)]
    for series, level in (("load-1", 300.0), ("load-2", 80.0)):
        await store.put_days(park, series, {d: list(level * truth(d) / 4) for d in span}, tz=TZ)
    return store


async def test_issue_forecast_reads_the_history_and_stores_the_forecast(state: State) -> None:
    history = await _park(state, "p1", 20)
    store = ForecastStore(state)
    settings = ForecastSettings(horizon_days=3, training_days=30)
    issued = await issue_forecast(state, history, store, "p1", NOW, settings)

    assert issued.start_day == TODAY and issued.days == 3
    assert issued.issued_at == NOW
    assert set(issued.series) == {"load-1", "load-2"}  # no forecaster for the battery
    assert all(f.kw.shape == (3 * 96,) for f in issued.series.values())
    tomorrow = issued.series["load-1"].kw[96:192]
    assert np.abs(tomorrow - 300.0 * truth(TODAY + timedelta(days=1))).max() < 30.0
    stored = await store.latest("p1")
    assert stored is not None and stored.issued_at == NOW


async def test_a_short_history_is_forecast_by_similar_days(state: State) -> None:
    history = await _park(state, "p2", 5)
    issued = await issue_forecast(
        state, history, ForecastStore(state), "p2", NOW, ForecastSettings(min_history_days=14)
    )
    assert {f.method for f in issued.series.values()} == {"similar_day"}


async def test_the_refresher_forecasts_every_park_and_backtests_once_a_day(state: State) -> None:
    history = await _park(state, "p3", 20)
    store = ForecastStore(state)

    async def parks() -> list[str]:
        return ["p3", "missing"]

    refresher = ForecastRefresher(
        state, history, store, parks, ForecastSettings(), clock=Clock(origin=NOW),
        backtest_days=3,
    )  # fmt: skip
    done = await refresher.refresh()
    assert set(done) == {"p3"}  # the missing park is logged, the others go on
    first = await store.backtest("p3")
    assert first is not None and first.last_day == TODAY - timedelta(days=1)
    await refresher.refresh()
    again = await store.backtest("p3")
    assert again is not None and again.computed_at == first.computed_at  # not due yet


def test_the_park_total_is_its_revenue_meters_else_its_forecast_devices() -> None:
    load = parse_asset(sample("flexible_load", id="load-1"))
    battery = parse_asset(sample(id="bess-1"))
    meter = parse_asset(
        {"kind": "meter", "id": "m-1", "owner": "o", "grid_node": "n", "account_no": "1",
         "revenue": True}
    )  # fmt: skip
    assert park_total_members([load, battery, meter], FORECASTERS) == ["m-1"]
    assert park_total_members([load, battery], FORECASTERS) == ["load-1"]
