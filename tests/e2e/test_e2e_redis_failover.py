"""A Redis master dies under a running service: its replica takes over and the service goes on.

A private Redis Cluster (3 masters, a replica each, 1 s node timeout) on
loopback, the service as ``vpp serve`` runs it on that cluster, parks enrolled
through the REST API. Once the replicas hold what was written (Redis
replicates asynchronously), the master serving one park's slot is killed
(SIGKILL, no shutdown save); the test waits, from the cluster's side, until its replica
is a master and every live node says ``cluster_state:ok``. Then the API
answers again, the enrollment written before the kill is there and new
writes to that park (and the others) succeed.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import aiohttp

from tests.support import eventually
from vpp.auth import Role
from vpp.client import ParkClient, issue_tokens
from vpp.metrics import Metrics
from vpp.redis_client import ClusterClient
from vpp.runtime import runtime_cleanup_ctx
from vpp.servers import RedisClusterServer
from vpp.service import open_state, running_service
from vpp.settings import Settings
from vpp.state import State

PARKS = ("p1", "p2", "p3")


def _load(asset_id: str, root: str, park: str) -> dict[str, Any]:
    return {
        "kind": "flexible_load", "id": asset_id, "owner": "Failover Works",
        "grid_node": "feeder-f", "baseline_kw": 100.0, "max_shed_kw": 40.0,
        "max_shed_minutes": 60, "rebound_fraction": 0.5, "rebound_minutes": 30,
        "connection": {"protocol": "mqtt", "topic_prefix": f"{root}/{park}/{asset_id}"},
        "costs": {"up_per_kwh": 0.2, "down_per_kwh": 0.2},
    }  # fmt: skip


async def test_killed_master_is_replaced_and_the_service_keeps_its_enrollments(
    tmp_path: Path, service_settings: Settings, topic_prefix: str
) -> None:
    with RedisClusterServer(data_dir=tmp_path / "cluster", node_timeout_ms=1000) as cluster:
        settings = service_settings
        settings.redis.url = cluster.url
        settings.redis.timeout_s = 1.0
        metrics = Metrics()
        state = open_state(settings, cluster.url, metrics)
        roles = (Role.PARK_OPERATOR, Role.VIEWER)
        try:
            tokens = {p: await issue_tokens(state, p, roles, name="failover") for p in PARKS}
            async with running_service(
                settings, state, metrics=metrics,
                runtime=runtime_cleanup_ctx(with_ven=False), host="127.0.0.1", port=0,
            ) as service:  # fmt: skip
                clients = {p: ParkClient(service.base_url, p, tokens[p]) for p in PARKS}
                try:
                    await _fail_over(cluster, state, clients, topic_prefix)
                    # the service says it is ready again
                    async with aiohttp.ClientSession() as http:

                        async def ready() -> bool:
                            async with http.get(f"{service.base_url}/readyz") as got:
                                return got.status == 200

                        await eventually(ready, within_s=30.0, every_s=0.2)
                finally:
                    for client in clients.values():
                        await client.aclose()
        finally:
            await state.aclose()


async def _fail_over(
    cluster: RedisClusterServer,
    state: State,
    clients: dict[str, ParkClient],
    root: str,
) -> None:
    for park, client in clients.items():
        await client.enroll_asset(_load("load-1", root, park))
    # the master serving park p1's keys (every key of a park shares its slot)
    assert isinstance(state.redis, ClusterClient)
    node = await state.redis.node_client(state.park("p1").meta)
    port = int(node.connection_pool.connection_kwargs["port"])
    victim = next(n for n in cluster.nodes if n.port == port)
    assert victim in cluster.masters_now()
    # replication is asynchronous: kill once the replicas hold what was written
    await asyncio.to_thread(cluster.wait, cluster.replicated, "replicas caught up", 30.0)
    victim.kill()

    def replaced() -> bool:
        masters = cluster.masters_now()
        return len(masters) == 3 and victim not in masters and cluster.ok()

    await asyncio.to_thread(cluster.wait, replaced, "replica promoted", 60.0)

    seen: set[int] = set()

    async def answers(park: str) -> bool:
        got = await clients[park].request("GET", "/assets/load-1")
        seen.add(got.status)
        return got.status == 200 and got.body["id"] == "load-1"

    for park in clients:
        # after a short unavailability (503 while the slot has no master)
        await eventually(functools.partial(answers, park), within_s=30.0, every_s=0.2)

    async def enrolled(park: str) -> bool:
        got = await clients[park].request(
            "POST", "/assets", role=str(Role.PARK_OPERATOR), json=_load("load-2", root, park)
        )
        seen.add(got.status)
        return got.status in (201, 409)  # 409: a retry after a write that went through

    for park in clients:
        await eventually(functools.partial(enrolled, park), within_s=30.0, every_s=0.2)
        listed = await clients[park].call("GET", "/assets")
        assert sorted(a["id"] for a in listed["items"]) == ["load-1", "load-2"]
    # unavailable while the slot had no master (503), never an internal error
    assert seen <= {200, 201, 409, 503}
