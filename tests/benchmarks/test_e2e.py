"""Smoke run of the end-to-end benchmark on a tiny park (keeps it from rotting; not timed)."""

from __future__ import annotations

import pytest

from tests.benchmarks.e2e import BenchOptions, run_bench
from tests.benchmarks.support import keys_left

pytestmark = pytest.mark.slow


async def test_tiny_park_end_to_end(redis_url: str, mqtt_addr: tuple[str, int]) -> None:
    opts = BenchOptions(
        batteries=8, chargers=6, loads=6, units_per_gateway=4, runs=2, period_s=1.0,
        settle_s=0.5, run_timeout_s=30.0, ready_timeout_s=60.0, ready_share=1.0,
        redis_url=redis_url, mqtt_host=mqtt_addr[0], mqtt_port=mqtt_addr[1], out=None,
    )  # fmt: skip
    report = await run_bench(opts)

    assert len(report["runs"]) == 2
    for run in report["runs"]:
        assert run["commanded"] > 0
        assert run["first_send_ms"] <= run["all_confirmed_ms"]
        assert set(run["protocols"]) <= {"modbus", "ocpp", "mqtt"}
    summary = report["summary"]
    assert summary["all_confirmed_ms"]["p50"] is not None
    assert await keys_left(redis_url, report["namespace"]) == []
