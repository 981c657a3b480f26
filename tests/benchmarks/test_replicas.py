"""Smoke run of the replicas benchmark on two tiny parks (keeps it from rotting; not timed)."""

from __future__ import annotations

import pytest

from tests.benchmarks.replicas import BenchOptions, run_bench
from tests.benchmarks.support import keys_left

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


async def test_two_tiny_parks_over_one_and_two_replicas(
    redis_url: str, mqtt_addr: tuple[str, int]
) -> None:
    opts = BenchOptions(
        replicas=(1, 2), parks=2, devices=10, runs=1, lease_ttl_s=3.0, window_s=2.0,
        device_procs=1, redis_url=redis_url, mqtt_host=mqtt_addr[0], mqtt_port=mqtt_addr[1],
        ready_timeout_s=120.0, out=None,
    )  # fmt: skip
    report = await run_bench(opts)

    one, two = report["counts"]
    assert one["parks_per_replica"] == {next(iter(one["parks_per_replica"])): 2}
    assert sorted(two["parks_per_replica"].values()) == [1, 1]
    for count in (one, two):
        # every park's event was dispatched and timed by the replica running the park
        assert count["parks_dispatched"] == "2/2"
        assert count["dispatch_s"]["n"] == 2
        assert count["telemetry_per_s"] > 0
        assert await keys_left(redis_url, count["namespace"]) == []
    takeover = two["takeover"]
    assert takeover["parks"] == takeover["taken_over"] == 1
    assert takeover["takeover_s_max"] is not None
