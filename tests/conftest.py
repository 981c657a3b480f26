"""Shared fixtures: real Redis and a real MQTT broker on loopback.

The suite talks to the Redis at ``VPP_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``) and the broker at ``VPP_TEST_MQTT_HOST`` /
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
import redis.asyncio as aioredis

from vpp.servers import MosquittoServer, RedisServer, port_open

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
async def redis_client(redis_url: str, namespace: str) -> AsyncIterator[aioredis.Redis]:
    """An async Redis client; deletes every key under this test's namespace afterwards."""
    client = aioredis.Redis.from_url(redis_url)
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
