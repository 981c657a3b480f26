"""Shared fixtures: real Redis and a real MQTT broker on loopback.

The suite talks to the Redis at ``VPP_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``; a ``redis+cluster://`` URL, as ``tests.testenv``
exports with ``VPP_TEST_REDIS_CLUSTER=1``, makes every client here and every
``State.from_url`` a Redis Cluster client) and the broker at ``VPP_TEST_MQTT_HOST`` /
``VPP_TEST_MQTT_PORT`` (default 127.0.0.1:1883). Every test gets its own key
namespace and topic prefix and deletes what it wrote; nothing here flushes a
database. Tests that restart a server start a private one
(``private_redis`` / ``private_mosquitto``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import MqttRig
from vpp.redis_client import RedisClient, connect
from vpp.servers import MosquittoServer, RedisServer, free_port, port_open
from vpp.settings import Settings

REDIS_URL = os.environ.get("VPP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MQTT_HOST = os.environ.get("VPP_TEST_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("VPP_TEST_MQTT_PORT", "1883"))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the shared test Redis (skips nothing: a missing Redis is a failure)."""
    return REDIS_URL


@pytest.fixture(scope="session")
def mqtt_addr() -> tuple[str, int]:
    """Host and port of the shared test MQTT broker."""
    if not port_open(MQTT_HOST, MQTT_PORT):
        pytest.fail(f"no MQTT broker on {MQTT_HOST}:{MQTT_PORT}; run the suite through ./run test")
    return MQTT_HOST, MQTT_PORT


@pytest.fixture
def namespace() -> str:
    """A Redis key namespace (first key segment) unique to this test."""
    return f"vpptest{uuid.uuid4().hex[:10]}"


@pytest.fixture
def topic_prefix() -> str:
    """An MQTT topic prefix unique to this test."""
    return f"vpptest/{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def mqtt(mqtt_addr: tuple[str, int], topic_prefix: str) -> AsyncIterator[MqttRig]:
    """This test's corner of the shared broker (park ``p1`` under ``topic_prefix``).

    Its adapters and simulated devices are made with ``mqtt.adapter(...)`` and
    ``mqtt.fleet(...)``; retained messages named with ``mqtt.retained(...)``
    are cleared afterwards.
    """
    rig = MqttRig(*mqtt_addr, root=topic_prefix)
    yield rig
    await rig.clear_retained()


@pytest.fixture
def service_settings(
    redis_url: str, namespace: str, mqtt_addr: tuple[str, int], topic_prefix: str
) -> Settings:
    """Settings of a whole service for this test: its Redis namespace and MQTT topic root.

    The OCPP listener gets a free port on loopback; the rest are the defaults.
    """
    settings = Settings()
    settings.redis.url, settings.redis.namespace = redis_url, namespace
    settings.mqtt.host, settings.mqtt.port = mqtt_addr
    settings.mqtt.root = topic_prefix
    settings.ocpp.port = free_port()
    return settings


@pytest.fixture
async def redis_client(redis_url: str, namespace: str) -> AsyncIterator[RedisClient]:
    """An async Redis (or Redis Cluster) client; deletes this test's namespace afterwards.

    On a cluster the SCAN runs over every master (redis-py's cluster ``scan_iter``).
    """
    client = connect(redis_url)
    try:
        yield client
    finally:
        async for key in client.scan_iter(match=f"{namespace}:*", count=1000):
            await client.delete(key)
        await client.aclose()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server (AOF on) that a test may stop, kill and restart."""
    with RedisServer(data_dir=tmp_path / "redis") as server:
        yield server


@pytest.fixture
def private_mosquitto(tmp_path: Path) -> Iterator[MosquittoServer]:
    """A private mosquitto broker that a test may stop and restart."""
    with MosquittoServer(data_dir=tmp_path / "mosquitto") as server:
        yield server
