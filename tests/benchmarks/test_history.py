"""Smoke run of the history benchmark on a few series (keeps it from rotting; not timed)."""

from __future__ import annotations

from tests.benchmarks.history import run_bench
from tests.benchmarks.support import keys_left


async def test_few_series_history_benchmark(redis_url: str) -> None:
    result = await run_bench(series=20, closes=3, url=redis_url)
    assert result["series"] == 20 and result["closes"] == 3
    assert result["close_write_ms"] > 0 and result["reference_set_ms"] > 0
    assert result["recorder_close_ms"] > 0
    # a full day vector: 576 bytes of value, under a kilobyte in Redis
    assert 576 < result["bytes_per_asset_day"] <= 1024
    assert await keys_left(redis_url, result["namespace"]) == []
