"""Smoke run of the forecast benchmark, small (keeps it from rotting; not timed)."""

from __future__ import annotations

from tests.benchmarks.forecast import run_bench
from tests.benchmarks.support import keys_left


async def test_a_small_park_is_forecast_and_the_demo_park_backtested(redis_url: str) -> None:
    report = await run_bench(series=10, repeats=1, days=2, redis_url=redis_url)

    refresh = report["refresh"]
    # 10 assets: 7 loads and a meter by the load model, a PV array by its clear sky, a battery none
    assert refresh["methods"] == {"model": 8, "clear_sky": 1}
    assert len(refresh["times_s"]) == 1
    assert await keys_left(redis_url, refresh["namespace"]) == []
    backtest = report["backtest"]
    assert (backtest["first_day"], backtest["last_day"]) == ("2026-11-28", "2026-11-29")
    assert set(backtest["scores"]) == {"flexible_load", "meter", "pv", "ev_charger", "park"}
    for scores in backtest["scores"].values():
        assert set(scores) == {"forecast", "persistence", "similar_day"}
