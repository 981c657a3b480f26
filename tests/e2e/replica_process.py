"""One service replica in a process of its own, for the replica failover test.

``python -m tests.e2e.replica_process CONFIG`` runs what ``vpp serve`` runs
(`vpp.service.running_service` with the default runtime: API, park shares,
supervisor, control loops) until SIGTERM, or until it is killed. The one
difference is the clock: compressed like the other end-to-end tests
(``time_scale``), so a 15-minute interval lasts seconds, and anchored on the
test's own clock so every replica and the test read the same time.

CONFIG is JSON::

    {"settings": {"redis.url": "...", "control.lease_ttl_s": 3.0, ...},
     "time_scale": 60.0, "origin": "<ISO time>", "origin_wall": <epoch s>}

``settings`` sets ``section.field`` of the default `vpp.settings.Settings`;
the test's clock read ``origin`` at the wall-clock instant ``origin_wall``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from datetime import datetime, timedelta
from typing import Any

from tests.benchmarks.support import configure_logging, run_until_sigterm
from vpp.clock import Clock
from vpp.metrics import Metrics
from vpp.runtime import runtime_cleanup_ctx
from vpp.service import open_state, running_service
from vpp.settings import Settings

__all__ = ["replica_config"]


def replica_config(
    settings: dict[str, Any], *, time_scale: float, origin: datetime, origin_wall: float
) -> str:
    """The CONFIG argument of one replica process (see the module docstring)."""
    return json.dumps({
        "settings": settings, "time_scale": time_scale,
        "origin": origin.isoformat(), "origin_wall": origin_wall,
    })  # fmt: skip


async def _serve(config: dict[str, Any]) -> None:
    settings = Settings()
    for dotted, value in config["settings"].items():
        section, name = dotted.split(".")
        setattr(getattr(settings, section), name, value)
    scale = float(config["time_scale"])
    elapsed = time.time() - float(config["origin_wall"])
    origin = datetime.fromisoformat(config["origin"]) + timedelta(seconds=elapsed * scale)
    clock = Clock(time_scale=scale, origin=origin)
    metrics = Metrics()
    state = open_state(settings, settings.redis.url, metrics)
    try:
        runtime = runtime_cleanup_ctx(with_ven=False)
        async with running_service(
            settings, state, metrics=metrics, clock=clock, runtime=runtime
        ) as service:
            print(f"listening {service.base_url}", flush=True)
            await asyncio.Event().wait()
    finally:
        await state.aclose()


def main() -> None:
    """Run one replica until SIGTERM."""
    configure_logging()
    for name in ("vpp.replicas", "vpp.control", "vpp.supervisor"):
        logging.getLogger(name).setLevel(logging.INFO)
    asyncio.run(run_until_sigterm(_serve(json.loads(sys.argv[1])), name="replica"))


if __name__ == "__main__":
    main()
