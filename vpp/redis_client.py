"""Connecting to Redis: one server, or a Redis Cluster.

A Redis Cluster is chosen by the URL's scheme, ``redis+cluster://host:port``
(``rediss+cluster://`` over TLS), or by ``[redis] cluster = true`` with a
plain ``redis://`` URL. Either names one node of the cluster (any master or
replica); redis-py's asyncio cluster client (`redis.asyncio.cluster.RedisCluster`)
discovers the others from it, routes every key to its slot's master, follows
MOVED/ASK redirections and, after a failover, reloads its slot map.

Every key the service writes for a park carries the park as a hash tag
(`vpp.keys`), so the scripts and transactions of one park land in one slot;
what is global (the park set, tokens, the replica registry) is never in the
same command as another slot's key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import SlotNotCoveredError

__all__ = [
    "CLUSTER_SCHEMES",
    "ClusterClient",
    "RedisClient",
    "connect",
    "is_cluster",
    "is_cluster_url",
    "plain_url",
    "slot_pipeline",
]

#: A client of one Redis server or of a Redis Cluster (same command methods).
RedisClient = Redis | RedisCluster

#: URL schemes that select the cluster client, and the plain scheme each stands for.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster by its scheme (``redis+cluster://``)."""
    return urlsplit(url).scheme.lower() in CLUSTER_SCHEMES


def plain_url(url: str) -> str:
    """``url`` with a cluster scheme replaced by the plain one (``redis+cluster`` -> ``redis``).

    The database path is dropped for a cluster (a cluster has database 0 only).
    """
    parts = urlsplit(url)
    scheme = CLUSTER_SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        return url
    return urlunsplit((scheme, parts.netloc, "", parts.query, parts.fragment))


class ClusterClient(RedisCluster):
    """redis-py's asyncio cluster client, with what the service needs on top.

    - Commands started together on a client that has not yet learnt the
      cluster's nodes (the first ones, or the first ones after a failover made
      it start over) fail with ``AttributeError`` in redis-py 8.1 while
      another command connects; here each command first waits for that
      discovery, which the client runs once under its own lock.
    - `node_client`: a plain client of the master serving one key's slot,
      for optimistic transactions (WATCH, reads, MULTI/EXEC). redis-py 8.1's
      cluster pipeline refuses most reads while watching, so the service runs
      them where the slot lives; all keys of one transaction share a park's
      hash tag, so one node holds them all.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._node_options = {
            k: kwargs[k]
            for k in ("socket_connect_timeout", "socket_timeout", "password", "username", "ssl")
            if k in kwargs
        }
        self._node_clients: dict[str, Redis] = {}

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """Run a command once the cluster's nodes are known (see the class)."""
        if self._initialize:
            _ = await self.initialize()
        return await super().execute_command(*args, **kwargs)

    async def node_client(self, key: str) -> Redis:
        """A client of the master that serves ``key``'s slot now (made once per node).

        Raises:
            SlotNotCoveredError: no master serves the slot (a failover under way).
        """
        if self._initialize:
            _ = await self.initialize()
        node = self.get_node_from_key(key)
        if node is None:  # pragma: no cover - get_node_from_key raises first
            raise SlotNotCoveredError(f"no node serves {key!r}")
        client = self._node_clients.get(node.name)
        if client is None:
            client = Redis(host=node.host, port=int(node.port), **self._node_options)
            self._node_clients[node.name] = client
        return client

    async def forget_nodes(self) -> None:
        """Drop the node clients; relearn the slots before the next command (a failover)."""
        clients, self._node_clients = self._node_clients, {}
        for client in clients.values():
            await client.aclose()
        self._initialize = True

    async def aclose(self) -> None:
        """Close every connection, the node clients' too."""
        clients, self._node_clients = self._node_clients, {}
        for client in clients.values():
            await client.aclose()
        await super().aclose()


def is_cluster(client: RedisClient) -> bool:
    """Whether ``client`` talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


def connect(url: str, *, cluster: bool = False, timeout: float = 2.0, **kwargs: Any) -> RedisClient:
    """A lazily connecting client of the Redis (or Redis Cluster) at ``url``.

    Args:
        url: ``redis://host:port/db`` (one server, or a cluster node when
            ``cluster``) or ``redis+cluster://host:port`` (a cluster node).
        cluster: use the cluster client with a plain URL.
        timeout: connect and command timeout, seconds.
        **kwargs: passed on to the client (``decode_responses`` ...).

    Returns:
        A `redis.asyncio.Redis`, or a `redis.asyncio.cluster.RedisCluster`
        whose first command discovers the cluster's nodes and slots.
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        **kwargs,
    }
    if cluster or is_cluster_url(url):
        node = plain_url(url) if is_cluster_url(url) else url
        return ClusterClient.from_url(node, **options)
    return Redis.from_url(url, health_check_interval=30, **options)


#: Errors after which a cluster's node clients may be stale (the slot moved or its node died).
_STALE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.AskError,  # MOVED too
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    redis_errors.ReadOnlyError,  # a master demoted to replica
)


@asynccontextmanager
async def slot_pipeline(
    client: RedisClient, key: str, *, transaction: bool = True
) -> AsyncIterator[Pipeline]:
    """A pipeline for keys of ``key``'s slot: a transaction (WATCH, reads, MULTI/EXEC) or a batch.

    On one Redis it is the client's own pipeline; on a cluster, a pipeline of
    the master serving the slot (`ClusterClient.node_client`), where redis-py
    8.1's cluster pipeline would refuse multi-key reads and scripts. Every key
    it touches must share ``key``'s hash tag (one park's keys do). After a
    connection failure, a redirection (MOVED: the slot moved in a failover)
    or a write refused by a demoted master, the cluster client relearns the
    slots before its next command.

    Args:
        client: the service's client.
        key: any key of the slot.
        transaction: MULTI/EXEC around what is queued (False: a plain batch).

    Raises:
        redis.exceptions.RedisError: as the pipeline raises it.
    """
    if isinstance(client, Redis):
        async with client.pipeline(transaction=transaction) as pipe:
            yield pipe
        return
    if not isinstance(client, ClusterClient):
        raise TypeError("a Redis Cluster client must come from vpp.redis_client.connect")
    node = await client.node_client(key)
    try:
        async with node.pipeline(transaction=transaction) as pipe:
            yield pipe
    except _STALE:
        await client.forget_nodes()
        raise
