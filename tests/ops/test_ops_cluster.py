"""ops/cluster/: the three-replica example holds together.

HAProxy accepts the load balancer's configuration, promtool the scrape
configuration, redis-server runs a cluster node from the node configuration,
and the service's settings file with a replica's environment gives what the
comments promise (a cluster client, a replica id, a share group, a lease a
dead replica's parks are taken within). The EMQX file is not checked here (no
EMQX on a test machine).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support import REPO
from vpp.redis_client import is_cluster_url
from vpp.servers import free_ports
from vpp.settings import Settings

CLUSTER = REPO / "ops" / "cluster"


def _tool(name: str, package: str) -> str:
    exe = shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if exe is None:
        pytest.fail(f"{name} not found: install Debian's {package!r} package (./run test does)")
    return exe


def test_haproxy_accepts_the_load_balancer() -> None:
    result = subprocess.run(
        [_tool("haproxy", "haproxy"), "-c", "-f", str(CLUSTER / "haproxy.cfg")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    text = (CLUSTER / "haproxy.cfg").read_text()
    # the API is balanced on readiness; every replica serves both the API and OCPP
    assert "option httpchk GET /readyz" in text
    for replica in ("vpp-1", "vpp-2", "vpp-3"):
        assert text.count(f"server {replica} ") == 2


def test_promtool_accepts_the_cluster_scrape_config() -> None:
    result = subprocess.run(
        [_tool("promtool", "prometheus"), "check", "config", "prometheus.yml"],
        cwd=CLUSTER, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _secret(redis_conf: str) -> str:
    """The ``requirepass`` of a Redis configuration."""
    lines = redis_conf.splitlines()
    return next(line.split()[1] for line in lines if line.startswith("requirepass"))


def _env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    return env


def test_a_replica_gets_the_settings_the_example_promises() -> None:
    env = _env_file(CLUSTER / "replica.env.example")
    settings = Settings.load(CLUSTER / "vpp.toml", env=env)
    assert is_cluster_url(settings.redis.url)
    # the service logs in to the nodes with the password the nodes require
    common = (CLUSTER / "redis-common.conf").read_text()
    assert f":{_secret(common)}@" in settings.redis.url
    assert settings.replicas.id == "vpp-1" and settings.mqtt.client_id == "vpp-1"
    assert settings.mqtt.share_group_in(settings.redis.namespace) == "vpp"
    # a replica silent for three heartbeats counts as gone before its leases run out
    assert 3 * settings.replicas.heartbeat_s <= settings.control.lease_ttl_s
    assert settings.http.host == "0.0.0.0" and settings.ocpp.host == "0.0.0.0"
    unit = (CLUSTER / "vpp@.service").read_text()
    assert "EnvironmentFile=/etc/park-vpp/replica-%i.env" in unit
    assert "vpp --config /etc/park-vpp/vpp.toml serve" in unit


@pytest.fixture
def node_dir(tmp_path: Path) -> Iterator[Path]:
    """The node configuration as installed: its include pointing at the common file."""
    conf = (CLUSTER / "redis-node.conf").read_text()
    common = tmp_path / "redis-common.conf"
    shutil.copy(CLUSTER / "redis-common.conf", common)
    (tmp_path / "redis-node.conf").write_text(
        conf.replace("/etc/park-vpp/redis-common.conf", str(common))
    )
    (tmp_path / "data").mkdir()
    yield tmp_path


def test_redis_runs_a_cluster_node_from_the_node_config(node_dir: Path) -> None:
    port = free_ports(1, offsets=(10000,))[0]
    exe = _tool("redis-server", "redis-server")
    proc = subprocess.Popen(
        [exe, str(node_dir / "redis-node.conf"), "--port", str(port),
         "--dir", str(node_dir / "data"), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    secret = _secret((CLUSTER / "redis-common.conf").read_text())
    client = redis.Redis(host="127.0.0.1", port=port, password=secret, socket_timeout=2)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                info = client.info()
                break
            except redis.ConnectionError:
                assert proc.poll() is None, "redis-server refused the node configuration"
                assert time.monotonic() < deadline, "the cluster node did not answer"
                time.sleep(0.1)
        assert info["cluster_enabled"] == 1
        assert info["aof_enabled"] == 1
        config = client.config_get("cluster-node-timeout")
        assert config["cluster-node-timeout"] == "5000"
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        # reachable from the other hosts, so nobody gets in without the password
        anonymous = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)
