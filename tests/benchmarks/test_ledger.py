"""Smoke run of the ledger benchmark on a small park (keeps it from rotting; not timed)."""

from __future__ import annotations

from tests.benchmarks.ledger import run_bench
from tests.benchmarks.support import keys_left


async def test_a_small_park_gets_its_ledger(redis_url: str) -> None:
    report = await run_bench(assets=40, enterprises=2, repeats=1, redis_url=redis_url)

    assert (report["assets"], report["enterprises"], report["days"]) == (40, 2, 365)
    assert set(report["median_ms"]) >= {"month_cold", "month_open", "year_frozen", "mget_year"}
    check = report["check"]
    # two enterprises and the park, one year row each; 12 months × (month + rolling year)
    assert check["rows"] == 3 and check["indicators"] == 24
    assert check["park_total_tce"] > 0 and check["park_coverage"] == 1.0
    assert await keys_left(redis_url, report["namespace"]) == []
