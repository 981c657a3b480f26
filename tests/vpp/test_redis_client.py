"""Choosing the Redis client: one server, or a Redis Cluster by URL scheme or setting."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from vpp.redis_client import ClusterClient, connect, is_cluster, is_cluster_url, plain_url
from vpp.settings import Settings


@pytest.mark.parametrize(
    ("url", "cluster", "plain"),
    [
        ("redis://h:6379/0", False, "redis://h:6379/0"),
        ("redis+cluster://h:7000", True, "redis://h:7000"),
        ("rediss+cluster://:pw@h:7000/0", True, "rediss://:pw@h:7000"),
        ("REDIS+CLUSTER://h:7000", True, "redis://h:7000"),
    ],
)
def test_the_scheme_names_a_cluster(url: str, cluster: bool, plain: str) -> None:
    assert is_cluster_url(url) is cluster
    assert plain_url(url) == plain


async def test_connect_picks_the_cluster_client_by_scheme_or_flag() -> None:
    single = connect("redis://127.0.0.1:6379/0")
    by_scheme = connect("redis+cluster://127.0.0.1:7000")
    by_flag = connect("redis://127.0.0.1:7000", cluster=True)
    try:
        assert isinstance(single, Redis) and not is_cluster(single)
        assert isinstance(by_scheme, ClusterClient) and is_cluster(by_scheme)
        assert isinstance(by_flag, ClusterClient)
    finally:
        for client in (single, by_scheme, by_flag):
            await client.aclose()


def test_the_cluster_setting_is_read_from_the_environment() -> None:
    assert Settings().redis.cluster is False
    assert Settings.load(env={"VPP_REDIS_CLUSTER": "true"}).redis.cluster is True
