"""Smoke run of the adapter benchmark's ingest on a few messages (keeps it from rotting)."""

from __future__ import annotations

import shutil

import pytest

from tests.benchmarks.adapters import _parser, bench_ingest
from tests.support import MqttRig


@pytest.mark.timeout(120)
async def test_small_ingest_benchmark(mqtt: MqttRig, redis_url: str) -> None:
    args = _parser().parse_args(
        [
            "--messages", "3000", "--devices", "50", "--repeats", "1", "--timeout", "60",
            "--mqtt-host", mqtt.host, "--mqtt-port", str(mqtt.port), "--redis-url", redis_url,
        ]
    )  # fmt: skip
    result = await bench_ingest(args)
    run = result["runs"][0]
    # ours: through the adapter and the supervisor's live-state write, one key per asset
    assert 0 < run["adapter"]["received"] <= 3000
    assert run["adapter"]["redis_keys"] == 50 and run["adapter"]["bad_payloads"] == 0
    if shutil.which("mosquitto_sub"):
        assert 0 < run["ceiling"]["received"] <= 3000
        assert result["ratio"] is not None and result["ratio"] > 0
    else:  # the ceiling needs Debian's mosquitto-clients, which ./run installs
        assert "error" in run["ceiling"]
