"""Routed setpoint latency: ``python -m tests.benchmarks.ocpp_routing [--rounds N] [--redis URL]``.

Two supervisors (replicas A and B) share one Redis namespace (unique, deleted
afterwards); one simulated OCPP 2.1 charger, its EV plugged in, is connected
to B. Each round sends one setpoint through B's ``send`` (the charger is
local there) and one through A's (routed: A's outbox lookup, XADD to B's
inbox, B's local call, XADD to A's outbox), alternating, each awaited until
confirmed. Prints the median and p95 wall time of ``send`` on each path and
the median extra time of the routed one. Both replicas and the charger run in
this one process on loopback: the figure is the routing's own cost on this
machine, not a network's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from adapters.ocpp.profiles import V21
from adapters.sim._clock import SimClock
from adapters.sim.chargers import ChargerSpec, SimCharger
from tests.support import eventually
from vpp.model import parse_asset
from vpp.servers import free_port
from vpp.settings import Settings
from vpp.state import State
from vpp.supervisor import Supervisor, charger_password

__all__ = ["main", "measure"]

PARK, SECRET = "bench", "bench-secret"


def _settings(url: str, namespace: str) -> Settings:
    settings = Settings()
    settings.redis.url, settings.redis.namespace = url, namespace
    settings.ocpp.auth_secret = SECRET
    settings.ocpp.port = free_port()
    return settings


async def measure(url: str, rounds: int) -> dict[str, float]:
    """Median and p95 seconds of a local and a routed confirmed setpoint (``rounds`` each)."""
    namespace = f"bench-routing-{uuid.uuid4().hex[:8]}"
    state_a, state_b = (
        State.from_url(url, namespace=namespace),
        State.from_url(url, namespace=namespace),
    )
    charger = {"protocol": "ocpp", "charge_point_id": "CP-1"}
    await state_a.enroll(PARK, parse_asset({
        "kind": "ev_charger", "id": "ev-1", "owner": "bench", "grid_node": "n1",
        "connection": charger, "v2g": True, "max_charge_kw": 11.0, "max_discharge_kw": 11.0,
    }))  # fmt: skip
    expiry = (time.time() + 3600) * 1000.0
    await state_a.redis.zadd(state_a.keys.replicas, {"bench-a": expiry, "bench-b": expiry})
    sa, sb = _settings(url, namespace), _settings(url, namespace)
    spec = ChargerSpec(
        cp_id="CP-1", password=charger_password(SECRET, "CP-1"), version=V21, v2g=True
    )
    local: list[float] = []
    routed: list[float] = []
    try:
        async with (
            Supervisor(state=state_a, settings=sa, replica_id="bench-a") as a,
            Supervisor(state=state_b, settings=sb, replica_id="bench-b") as b,
            SimCharger(url=f"ws://127.0.0.1:{sb.ocpp.port}/ocpp/", spec=spec, clock=SimClock(),
                       period_s=1.0, backoff_base=0.05),
        ):  # fmt: skip
            await a.wait_ready()
            await b.wait_ready()

            async def ready() -> bool:  # connected on B, its EV plugged in
                return (await a.send(PARK, {"ev-1": 1.0}, hold_s=60.0))["ev-1"].confirmed

            await eventually(ready, within_s=30.0, every_s=0.1)
            for i in range(rounds):
                kw = 2.0 + i % 5
                for sup, times in ((b, local), (a, routed)):
                    start = time.perf_counter()
                    conf = (await sup.send(PARK, {"ev-1": kw}, hold_s=60.0))["ev-1"]
                    times.append(time.perf_counter() - start)
                    if not conf.confirmed:
                        raise RuntimeError(f"not confirmed: {conf}")
    finally:
        async for key in state_a.redis.scan_iter(match=f"{namespace}:*"):
            await state_a.redis.delete(key)
        for replica in ("bench-a", "bench-b"):
            keys = state_a.keys
            await state_a.redis.delete(keys.replica_inbox(replica), keys.replica_outbox(replica))
        await state_a.aclose()
        await state_b.aclose()

    def p95(xs: list[float]) -> float:
        return sorted(xs)[max(0, round(0.95 * len(xs)) - 1)]

    return {
        "local_p50_s": statistics.median(local), "local_p95_s": p95(local),
        "routed_p50_s": statistics.median(routed), "routed_p95_s": p95(routed),
        "extra_p50_s": statistics.median(routed) - statistics.median(local),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Run the measurement and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.redis, args.rounds))
    for name, value in result.items():
        print(f"{name:>14}: {value * 1000:8.2f} ms")


if __name__ == "__main__":
    main()
