"""Enrolled assets survive a restart of the service and of redis-server."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from aiohttp.test_utils import TestClient, TestServer

from tests.vpp.conftest import ApiClient
from tests.vpp.samples import PARK, SAMPLES, sample
from vpp.api import create_app
from vpp.auth import TokenStore
from vpp.servers import RedisServer
from vpp.settings import Settings
from vpp.state import State

T = TypeVar("T")


async def _serve_and(
    settings: Settings, url: str, work: Callable[[ApiClient, State], Awaitable[T]]
) -> T:
    """Serve a fresh app on ``url`` and run ``work`` against it (a service "run")."""
    state = State.from_url(url, namespace=settings.redis.namespace)
    try:
        async with TestClient(TestServer(create_app(settings, state), host="127.0.0.1")) as c:
            return await work(c, state)
    finally:
        await state.aclose()


async def test_assets_survive_service_and_redis_restart(private_redis: RedisServer) -> None:
    settings = Settings()
    settings.redis.namespace = "vpp"

    async def enroll(client: ApiClient, state: State) -> str:
        token = await TokenStore(state).create("park_operator", [PARK])
        headers = {"Authorization": f"Bearer {token}"}
        for kind in SAMPLES:
            resp = await client.post(f"/v1/parks/{PARK}/assets", json=sample(kind), headers=headers)
            assert resp.status == 201
        return token

    token = await _serve_and(settings, private_redis.url, enroll)
    # A clean restart, then a crash (SIGKILL) once the everysec fsync has run.
    private_redis.restart()
    await _assert_assets(settings, private_redis.url, token)
    await asyncio.sleep(1.2)
    private_redis.kill()
    private_redis.start()
    await _assert_assets(settings, private_redis.url, token)


async def _assert_assets(settings: Settings, url: str, token: str) -> None:
    async def read(client: ApiClient, state: State) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        resp = await client.get(f"/v1/parks/{PARK}/assets", headers=headers)
        assert resp.status == 200
        assert sorted(a["kind"] for a in (await resp.json())["items"]) == sorted(SAMPLES)

    await _serve_and(settings, url, read)


def test_embedded_redis_keeps_enrollment_between_runs(tmp_path: Path) -> None:
    park_file = tmp_path / "park.toml"
    park_file.write_text(
        '[park]\nid = "p1"\nname = "tiny"\n\n[[assets]]\nkind = "pv"\nid = "pv-1"\n'
        'owner = "o"\ngrid_node = "n1"\nrated_kw = 100.0\n'
        'connection = { protocol = "modbus", host = "127.0.0.1", port = 1502 }\n'
    )
    env = {**os.environ, "VPP_STATE_DIR": str(tmp_path / "state"), "VPP_REDIS_URL": ""}
    cmd = [sys.executable, "-m", "vpp", "enroll", "--file", str(park_file)]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "1 enrolled, 0 already" in first.stdout
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert "0 enrolled, 1 already" in second.stdout, second.stderr
    assert (tmp_path / "state" / "redis" / "appendonlydir").is_dir()
    assert not (tmp_path / "state" / "redis.url").exists()


def test_a_redis_that_still_loads_its_aof_is_not_ready(tmp_path: Path) -> None:
    # Under load a restarted Redis listened while loading its AOF, and the first
    # command got "-LOADING": start() now waits for +PONG, not for the port.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def answer() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(64)
                conn.sendall(b"-LOADING Redis is loading the dataset in memory\r\n")

        thread = threading.Thread(target=answer)
        thread.start()
        loading = RedisServer(data_dir=tmp_path, port=port)
        assert not loading._ready()
        thread.join(5)
    with RedisServer(data_dir=tmp_path / "real") as real:
        assert real._ready()
