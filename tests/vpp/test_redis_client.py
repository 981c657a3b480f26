"""Choosing the Redis client: one server, or a Redis Cluster by URL scheme or setting."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from redis.asyncio import Redis

from vpp.cli import main
from vpp.errors import SettingsError
from vpp.redis_client import (
    ClusterClient,
    RedisClient,
    cluster_seeds,
    connect,
    is_cluster,
    is_cluster_url,
    plain_url,
)
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


@pytest.mark.parametrize(
    ("url", "seeds"),
    [
        ("redis+cluster://h:7000", [("h", 7000)]),
        ("redis+cluster://h", [("h", 6379)]),
        (
            "redis+cluster://u:pw@h1:7000,h2:7001,h3:7002/0",
            [("h1", 7000), ("h2", 7001), ("h3", 7002)],
        ),
        ("rediss+cluster://[::1]:7000/", [("::1", 7000)]),
        ("redis://h:7000/0", [("h", 7000)]),  # with cluster = true
    ],
)
def test_a_cluster_url_names_its_seed_nodes(url: str, seeds: list[tuple[str, int]]) -> None:
    assert cluster_seeds(url) == seeds


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis+cluster://", "has no host"),
        ("redis+cluster://:7000", "has no host"),
        ("redis+cluster://h1:7000,", "has no host"),
        ("redis+cluster://h:notaport", "'notaport' of h is not a number"),
        ("redis+cluster://h:70000", "'70000' of h is not a number"),
        ("redis+cluster://h:7000/3", "database 0 only (no /3)"),
        ("redis+cluster://:secret@h:7000/3", "database 0 only (no /3)"),
    ],
)
def test_a_bad_cluster_url_is_a_settings_error(url: str, why: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(why)) as caught:
        connect(url)
    assert "secret" not in str(caught.value)


def test_a_database_in_a_cluster_url_is_refused_with_the_cluster_flag_too() -> None:
    with pytest.raises(SettingsError, match="database 0 only"):
        connect("redis://h:7000/2", cluster=True)


def test_a_bad_url_stops_vpp_with_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "vpp.toml"
    config.write_text('[redis]\nurl = "redis+cluster://h:notaport"\n')
    assert main(["--config", str(config), "token", "create", "--name", "x", "--role", "admin"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vpp: configuration error: redis url") and "Traceback" not in err


async def test_hundreds_of_commands_in_flight_to_one_node(
    redis_client: RedisClient, namespace: str
) -> None:
    """A burst past redis-py's default pool (100 per server or node) waits, not fails.

    (A setpoint burst routed to another replica's chargers is one XADD per charger.)
    """
    key = f"{namespace}:{{burst}}:stream"
    answers = await asyncio.gather(*(redis_client.xread({key: "$"}, block=300) for _ in range(300)))
    assert all(not answer for answer in answers)
