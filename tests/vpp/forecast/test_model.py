"""The forecast's shapes: laying curves onto grids, and storing forecasts and backtests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

import dispatch as dx
from vpp.forecast import (
    BacktestSummary,
    ExpectedSession,
    ForecastScore,
    ForecastStore,
    ParkForecast,
    SeriesForecast,
)
from vpp.state import State

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 7, 1)


def _on(f: ParkForecast, series: str, grid: dx.TimeGrid) -> np.ndarray:
    got = f.on_grid(series, grid)
    assert got is not None
    return got


def _forecast() -> ParkForecast:
    ramp = np.arange(192, dtype=np.float64)
    gappy = ramp.copy()
    gappy[4:8] = np.nan  # 01:00-02:00 of the first day unknown
    gappy[9] = np.nan
    arrive = datetime(2026, 7, 2, 8, 30, tzinfo=TZ)
    return ParkForecast(
        park="p1",
        issued_at=datetime(2026, 7, 1, 1, 0, tzinfo=UTC),
        timezone="Asia/Shanghai",
        start_day=DAY,
        days=2,
        series={
            "load-1": SeriesForecast("load-1", "flexible_load", "model", ramp, "test"),
            "gappy": SeriesForecast("gappy", "meter", "similar_day", gappy),
        },
        sessions={
            "ev-1": (ExpectedSession("ev-1", arrive, arrive + timedelta(hours=9), 30.0, 0.8, 10),)
        },
    )


def test_a_quarter_hour_grid_on_the_slots_takes_each_slot() -> None:
    f = _forecast()
    grid = dx.TimeGrid(n=96, step=timedelta(minutes=15), start=datetime(2026, 7, 2, tzinfo=TZ))
    np.testing.assert_allclose(_on(f, "load-1", grid), np.arange(96, 192))


def test_an_hourly_grid_averages_its_slots_and_skips_unknown_ones() -> None:
    f = _forecast()
    grid = dx.TimeGrid(n=3, step=timedelta(hours=1), start=datetime(2026, 7, 1, tzinfo=TZ))
    np.testing.assert_allclose(_on(f, "load-1", grid), np.array([1.5, 5.5, 9.5]))
    got = f.on_grid("gappy", grid)
    assert got is not None
    assert got[0] == pytest.approx(1.5)
    assert np.isnan(got[1])  # no slot of 01:00-02:00 known
    assert got[2] == pytest.approx((8 + 10 + 11) / 3)


def test_intervals_outside_the_horizon_are_unknown_not_zero() -> None:
    f = _forecast()
    start = datetime(2026, 7, 2, 23, 0, tzinfo=TZ)
    grid = dx.TimeGrid(n=8, step=timedelta(minutes=15), start=start)
    got = f.on_grid("load-1", grid)
    assert got is not None
    np.testing.assert_allclose(got[:4], [188, 189, 190, 191])
    assert np.all(np.isnan(got[4:]))
    # a five-minute grid (and a start off the slots) takes the slot it lies in
    at = datetime(2026, 7, 1, 0, 10, tzinfo=TZ)
    grid5 = dx.TimeGrid(n=3, step=timedelta(minutes=5), start=at)
    np.testing.assert_allclose(_on(f, "load-1", grid5), np.array([0.0, 1.0, 1.0]))
    assert f.on_grid("nobody", grid5) is None


def test_sessions_in_a_window() -> None:
    f = _forecast()
    day2 = datetime(2026, 7, 2, tzinfo=TZ)
    assert [s.asset_id for s in f.sessions_in("ev-1", day2, day2 + timedelta(days=1))] == ["ev-1"]
    assert f.sessions_in("ev-1", day2 - timedelta(days=1), day2) == []


async def test_the_store_gives_back_what_it_was_given(state: State) -> None:
    store = ForecastStore(state)
    assert await store.latest("p1") is None
    f = _forecast()
    await store.put(f)
    back = await store.latest("p1")
    assert back is not None
    assert back.issued_at == f.issued_at and back.start_day == DAY and back.days == 2
    np.testing.assert_array_equal(back.series["gappy"].kw, f.series["gappy"].kw)
    assert back.series["gappy"].method == "similar_day"
    assert back.sessions == f.sessions

    summary = BacktestSummary(
        park="p1",
        computed_at=datetime(2026, 7, 1, tzinfo=UTC),
        first_day=date(2026, 6, 1),
        last_day=date(2026, 6, 28),
        issue_time="09:00",
        scores={"flexible_load": {"forecast": ForecastScore(0.05, -0.01, 2688)}},
        error_quantiles={"flexible_load": {"0.1": -0.08, "0.5": 0.0, "0.9": 0.07}},
    )
    assert await store.backtest("p1") is None
    await store.put_backtest(summary)
    assert await store.backtest("p1") == summary
    assert summary.error_at("flexible_load", 0.12) == pytest.approx(-0.08)
    assert summary.error_at("pv", 0.1) is None
