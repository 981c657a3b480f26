"""The command line, run as a real process: serve, check, token create, SIGTERM, meter import."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis

from tests.support import EXAMPLE_SETTINGS
from vpp.auth import hash_secret
from vpp.model import parse_asset
from vpp.servers import RedisServer, free_port, port_open
from vpp.settings import Settings
from vpp.state import State

VPP = [sys.executable, "-m", "vpp"]


def _vpp(*args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VPP, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def env(private_redis: RedisServer, namespace: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "VPP_REDIS_URL": private_redis.url,
        "VPP_REDIS_NAMESPACE": namespace,
        "VPP_REDIS_TIMEOUT_S": "0.5",
        "VPP_HTTP_PORT": str(free_port()),
        "VPP_STATE_DIR": str(tmp_path / "state"),
    }


@pytest.fixture
def served(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [*VPP, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 20
    while not port_open("127.0.0.1", int(env["VPP_HTTP_PORT"]), timeout=0.1):
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "vpp serve did not listen"
        time.sleep(0.05)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def test_check_follows_redis(
    served: subprocess.Popen[str], env: dict[str, str], private_redis: RedisServer
) -> None:
    ok = _vpp("check", env=env)
    assert ok.returncode == 0, ok.stderr
    private_redis.stop()
    down = _vpp("check", env=env)
    assert down.returncode == 1
    assert "FAIL" in down.stderr
    private_redis.start()
    # The service reconnects on its next command, after redis-py's retry backoff
    # (up to a few seconds under load): readiness must come back, not at once.
    back = _vpp("check", env=env)
    deadline = time.monotonic() + 20.0
    while back.returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        back = _vpp("check", env=env)
    assert back.returncode == 0, back.stderr


def test_check_fails_without_a_service(env: dict[str, str]) -> None:
    assert _vpp("check", env=env).returncode == 1


def test_sigterm_shuts_down_gracefully(served: subprocess.Popen[str]) -> None:
    served.send_signal(signal.SIGTERM)
    assert served.wait(timeout=15) == 0
    assert served.stdout is not None
    assert "shutting down" in served.stdout.read()


def test_token_create_prints_a_secret_stored_hashed(
    env: dict[str, str], private_redis: RedisServer, namespace: str
) -> None:
    out = _vpp("token", "create", "--role", "viewer", "--park", "p1", env=env)
    assert out.returncode == 0, out.stderr
    secret = out.stdout.strip()
    assert secret.startswith("vpp_")
    client = redis.Redis.from_url(private_redis.url)
    try:
        assert client.exists(f"{namespace}:tokens:{hash_secret(secret)}")
    finally:
        client.close()
    bad = _vpp("token", "create", "--role", "viewer", env=env)
    assert bad.returncode == 2
    assert "--park" in bad.stderr


def test_missing_redis_binary_says_how_to_install(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "VPP_STATE_DIR": str(tmp_path / "s")}
    env.pop("VPP_REDIS_URL", None)
    out = _vpp("serve", "--duration", "1", env=env)
    assert out.returncode != 0
    assert "apt-get install" in out.stderr


def test_settings_file_and_env(tmp_path: Path) -> None:
    s = Settings.load(EXAMPLE_SETTINGS, env={"VPP_HTTP_PORT": "9001", "VPP_REDIS_NAMESPACE": "ns2"})
    assert (s.http.port, s.redis.namespace, s.redis.url) == (9001, "ns2", "")
    assert s.control.interval_minutes == 15
    # VPP_* variables other parts read are not errors; typos in the file are.
    assert Settings.load(env={"VPP_OPENADR_SPEC": "x"}).openadr.vtn_url == ""
    bad = tmp_path / "bad.toml"
    bad.write_text("[redis]\nurll = 'x'\n")
    out = _vpp("--config", str(bad), "check", env=dict(os.environ))
    assert out.returncode == 2
    assert "redis.urll" in out.stderr
    out = _vpp("check", env={**os.environ, "VPP_HTTP_PORT": "eighty"})
    assert out.returncode == 2
    assert "http.port" in out.stderr


def test_meter_import_and_history_go_through_the_api_with_a_token(
    served: subprocess.Popen[str], env: dict[str, str], namespace: str, tmp_path: Path
) -> None:
    async def enroll_meter() -> None:
        state = State.from_url(env["VPP_REDIS_URL"], namespace=namespace)
        try:
            meter = {"kind": "meter", "id": "m1", "owner": "o", "grid_node": "n", "account_no": "1"}
            await state.enroll("p1", parse_asset(meter))
        finally:
            await state.aclose()

    asyncio.run(enroll_meter())
    token = _vpp("token", "create", "--role", "grid_operator", "--park", "p1", env=env).stdout
    day = (datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(days=2)).date().isoformat()
    header = "date," + ",".join(f"{m // 60:02d}:{m % 60:02d}" for m in range(15, 1441, 15))
    good = tmp_path / "day.csv"
    good.write_text(f"{header}\n{day},{','.join(['2.5'] * 96)}\n")
    args = ["--park", "p1", "--meter", "m1", "--token", token.strip(), "--role", "grid_operator"]
    out = _vpp("meter", "import", str(good), *args, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "meter m1: 1 day stored (0 replaced, 0 unchanged), 96 intervals"

    bad = tmp_path / "bad.csv"
    bad.write_text(f"{header}\n{day},{','.join(['2.5'] * 17 + ['-1'] + ['2.5'] * 78)}\n")
    out = _vpp("meter", "import", str(bad), *args, env=env)
    assert out.returncode == 1
    assert "row 2, column 04:30: negative energy: -1" in out.stderr

    viewer = _vpp("token", "create", "--role", "viewer", "--park", "p1", env=env).stdout.strip()
    span = ["--from", day, "--to", day, "--resolution", "1d"]
    out = _vpp("history", "--park", "p1", "--series", "m1", *span, "--token", viewer, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1] == f"{day}T00:00:00+08:00,240.0,10.0,1.0"


def test_meter_import_says_what_is_wrong_in_one_line(
    served: subprocess.Popen[str], env: dict[str, str], tmp_path: Path
) -> None:
    # found by a new user: each of these printed a traceback
    token = _vpp("token", "create", "--role", "park_operator", "--park", "p1", env=env).stdout
    args = ["--park", "p1", "--meter", "m1", "--token", token.strip()]
    missing = _vpp("meter", "import", str(tmp_path / "nope.csv"), *args, env=env)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"days": [')
    out = _vpp("meter", "import", str(broken), *args, env=env)
    assert out.returncode == 2 and "is not valid JSON" in out.stderr
    # a CSV export without the .csv suffix goes as CSV (the meter is unknown here: 404)
    header = "date," + ",".join(f"{m // 60:02d}:{m % 60:02d}" for m in range(15, 1441, 15))
    export = tmp_path / "export.txt"
    export.write_text(f"{header}\n2026-11-20,{','.join(['1'] * 96)}\n")
    out = _vpp("meter", "import", str(export), *args, env=env)
    assert out.returncode == 1 and out.stderr.startswith("vpp: 404"), out.stderr
    away = [*args, "--url", f"http://127.0.0.1:{free_port()}"]
    out = _vpp("meter", "import", str(export), *away, env=env)
    assert out.returncode == 1 and "cannot reach the service" in out.stderr
    assert "Traceback" not in missing.stderr + out.stderr
    out = _vpp("history", "--park", "p1", "--token", token.strip(), *away[-2:], env=env)
    assert out.returncode == 1 and "cannot reach the service" in out.stderr
