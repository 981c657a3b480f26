"""Smoke run of the baseline benchmark on a few series (keeps it from rotting; not timed)."""

from __future__ import annotations

from tests.benchmarks.baselines import run_bench
from tests.benchmarks.support import keys_left


async def test_a_few_series_get_their_baselines(redis_url: str) -> None:
    report = await run_bench(series=20, repeats=2, redis_url=redis_url)

    assert report["complete"] == {"similar_days": 20, "high_x_of_y": 20}
    assert set(report["median_ms"]) >= {"compute_similar_days", "load_high_x_of_y", "numpy_mean"}
    assert await keys_left(redis_url, report["namespace"]) == []
