"""Run a command with a reachable Redis and MQTT broker (the test runner's set-up).

``python -m tests.testenv -- CMD ...`` looks for Redis at ``VPP_TEST_REDIS_URL``
(default 127.0.0.1:6379) and a broker at ``VPP_TEST_MQTT_HOST:PORT`` (default
127.0.0.1:1883). Whatever does not answer is started privately on a free
loopback port (under ``state/testenv``), exported to the command through the
same variables, and stopped when the command ends. The command's exit code is
returned.

With ``VPP_TEST_REDIS_CLUSTER=1`` it starts a private Redis Cluster instead
(3 masters with a replica each, `vpp.servers.RedisClusterServer`) and exports
its ``redis+cluster://`` URL as ``VPP_TEST_REDIS_URL``: the same suite then
runs against the cluster (the second step of ``.ci/run``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

from vpp.servers import MosquittoServer, RedisClusterServer, RedisServer, port_open
from vpp.settings import redact_url

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Start missing servers, run the command after ``--``, return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        print("usage: python -m tests.testenv -- CMD [ARGS...]", file=sys.stderr)
        return 2
    env = dict(os.environ)
    redis_url = env.get("VPP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    parts = urlsplit(redis_url)
    mqtt_host = env.get("VPP_TEST_MQTT_HOST", "127.0.0.1")
    mqtt_port = int(env.get("VPP_TEST_MQTT_PORT", "1883"))
    with ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vpp-testenv-")))
        if env.get("VPP_TEST_REDIS_CLUSTER", "") not in ("", "0"):
            cluster = stack.enter_context(RedisClusterServer(data_dir=base / "cluster"))
            print(f"testenv: started a Redis Cluster (3 masters, 3 replicas) at {cluster.url}",
                  flush=True)  # fmt: skip
            redis_url = cluster.url
        elif not port_open(parts.hostname or "127.0.0.1", parts.port or 6379):
            redis = stack.enter_context(RedisServer(data_dir=base / "redis"))
            where = redact_url(redis_url)
            print(f"testenv: no Redis at {where}; started one at {redis.url}", flush=True)
            redis_url = redis.url
        if not port_open(mqtt_host, mqtt_port):
            broker = stack.enter_context(MosquittoServer(data_dir=base / "mosquitto"))
            print(f"testenv: no MQTT broker at {mqtt_host}:{mqtt_port}; started one on "
                  f"port {broker.port}", flush=True)  # fmt: skip
            mqtt_host, mqtt_port = broker.host, broker.port
        env.update(
            VPP_TEST_REDIS_URL=redis_url,
            VPP_TEST_MQTT_HOST=mqtt_host,
            VPP_TEST_MQTT_PORT=str(mqtt_port),
        )
        return subprocess.call(args, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
