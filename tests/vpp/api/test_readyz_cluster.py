"""/readyz on a Redis Cluster: every master must answer, in about ``[redis] timeout_s``.

A private cluster (3 masters with a replica each) whose failure detection is
slow (60 s), so that a killed master stays dead and unreplaced for the whole
test: the state the try-out met between a master's death and its replica's
promotion. Frozen nodes (SIGSTOP) accept connections and never answer.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.support import eventually
from tests.vpp.conftest import ApiClient
from vpp.api import create_app
from vpp.servers import RedisClusterServer, RedisServer, free_port
from vpp.settings import Settings
from vpp.state import State

#: the state's Redis timeout, seconds
TIMEOUT_S = 0.5
#: a bound far above TIMEOUT_S: /readyz must answer, not hang (the try-out waited > 20 s)
ANSWER_S = 15.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisClusterServer]:
    with RedisClusterServer(data_dir=tmp_path / "cluster", node_timeout_ms=60_000) as c:
        c.wait(lambda: len(c.masters_now()) == c.masters and c.replicas_synced(), "replicas")
        yield c


@pytest.fixture
async def api(cluster: RedisClusterServer, settings: Settings) -> AsyncIterator[ApiClient]:
    state = State.from_url(cluster.url, namespace=settings.redis.namespace, timeout=TIMEOUT_S)
    async with TestClient(TestServer(create_app(settings, state), host="127.0.0.1")) as c:
        yield c
    await state.aclose()


def _name(node: RedisServer) -> str:
    return f"{node.host}:{node.port}"


def _signal(node: RedisServer, sig: signal.Signals) -> None:
    proc = node._proc  # the child process (vpp.servers has no pause of its own)
    assert proc is not None
    os.kill(proc.pid, sig)


async def _readyz(api: ApiClient) -> tuple[int, dict[str, object]]:
    resp = await api.get("/readyz", timeout=aiohttp.ClientTimeout(total=ANSWER_S))
    return resp.status, await resp.json()


async def test_a_dead_master_makes_the_replica_unready_and_is_named(
    api: ApiClient, cluster: RedisClusterServer
) -> None:
    masters = cluster.masters_now()
    status, body = await _readyz(api)
    assert status == 200
    assert body["redis_nodes"] == {_name(m): True for m in masters}
    dead = masters[1]
    dead.kill()
    status, body = await _readyz(api)
    assert status == 503
    assert body["ready"] is False and body["redis"] is False
    assert body["redis_nodes"] == {_name(m): m is not dead for m in masters}


async def test_frozen_nodes_give_a_503_not_a_hang(
    api: ApiClient, cluster: RedisClusterServer
) -> None:
    assert (await _readyz(api))[0] == 200
    for node in cluster.nodes:
        _signal(node, signal.SIGSTOP)
    try:
        status, body = await _readyz(api)
        assert status == 503
        nodes = body["redis_nodes"]
        assert isinstance(nodes, dict) and nodes and not any(nodes.values())
        status, body = await _readyz(api)  # the nodes relearnt: the seed, still frozen
        assert status == 503
    finally:
        for node in cluster.nodes:
            _signal(node, signal.SIGCONT)

    async def ready() -> bool:
        return (await _readyz(api))[0] == 200

    await eventually(ready)


async def test_a_dead_first_seed_is_passed_over(cluster: RedisClusterServer) -> None:
    live = cluster.nodes[0]
    url = f"redis+cluster://127.0.0.1:{free_port()},{_name(live)}"
    state = State.from_url(url, namespace="seeds", timeout=TIMEOUT_S)
    try:
        await state.redis.set("seeds:{x}:k", "v")
        assert await state.redis.get("seeds:{x}:k") == b"v"
        await state.redis.delete("seeds:{x}:k")
    finally:
        await state.aclose()
