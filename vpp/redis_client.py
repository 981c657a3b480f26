"""Connecting to Redis: one server, or a Redis Cluster.

A Redis Cluster is chosen by the URL's scheme, ``redis+cluster://host:port``
(``rediss+cluster://`` over TLS), or by ``[redis] cluster = true`` with a
plain ``redis://`` URL. Either names one node of the cluster (any master or
replica) or several seed nodes, comma-separated
(``redis+cluster://h1:7000,h2:7000,h3:7000``), tried in turn, so the client
starts while one of them is down; a port left out is 6379, and a database
path other than ``/0`` is refused (a cluster has database 0 only).
redis-py's asyncio cluster client (`redis.asyncio.cluster.RedisCluster`)
discovers the other nodes from the first seed that answers, routes every key
to its slot's master, follows MOVED/ASK redirections and, after a failover, reloads its slot map.

Every key the service writes for a park carries the park as a hash tag
(`vpp.keys`), so the scripts and transactions of one park land in one slot;
what is global (the park set, tokens, the replica registry) is never in the
same command as another slot's key.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import SlotNotCoveredError

from vpp.errors import SettingsError

__all__ = [
    "CLUSTER_SCHEMES",
    "MAX_CONNECTIONS",
    "ClusterClient",
    "RedisClient",
    "cluster_seeds",
    "connect",
    "is_cluster",
    "is_cluster_url",
    "ping_nodes",
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


#: One seed node: ``host``, ``host:port``, ``[v6 address]:port``.
_SEED = re.compile(r"(?:\[(?P<v6>[^\]]*)\]|(?P<name>[^:\[\]]*))(?::(?P<port>.*))?")


def cluster_seeds(url: str) -> list[tuple[str, int]]:
    """The seed nodes a cluster URL names: ``(host, port)`` in the URL's order.

    ``url`` is ``redis+cluster://[user:password@]h1[:p1][,h2[:p2]...][/0][?query]``
    (or a plain ``redis://`` one with ``cluster = true``); a port left out is 6379.

    Raises:
        SettingsError: no host, a port that is not a number in 1..65535, or a
            database other than 0 (a Redis Cluster has database 0 only).
    """
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    shown = f"{parts.scheme}://{hosts}{parts.path}"  # no password
    db = parts.path.strip("/")
    if db not in ("", "0"):
        raise SettingsError(f"redis url {shown!r}: a Redis Cluster has database 0 only (no /{db})")
    seeds: list[tuple[str, int]] = []
    for seed in hosts.split(","):
        match = _SEED.fullmatch(seed.strip())
        host, port = (match["v6"] or match["name"], match["port"]) if match else ("", "")
        if not host:
            raise SettingsError(f"redis url {shown!r}: a cluster seed node has no host")
        port = "6379" if port is None else port
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(
                f"redis url {shown!r}: port {port!r} of {host} is not a number in 1..65535"
            )
        seeds.append((host, int(port)))
    return seeds


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
            for k in (
                "socket_connect_timeout",
                "socket_timeout",
                "password",
                "username",
                "ssl",
                "max_connections",
            )
            if k in kwargs
        }
        self._node_clients: dict[str, Redis] = {}

    @property
    def timeout(self) -> float:
        """The command timeout, seconds (``[redis] timeout_s``)."""
        return float(self._node_options.get("socket_timeout") or 2.0)

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
        return self._client_of(node)

    def _client_of(self, node: ClusterNode) -> Redis:
        client = self._node_clients.get(node.name)
        if client is None:
            client = Redis(host=node.host, port=int(node.port), **self._node_options)
            self._node_clients[node.name] = client
        return client

    async def ping_masters(self) -> dict[str, bool]:
        """PING every master this client knows, each on its own: ``host:port`` -> answered.

        The whole check lasts `timeout` seconds at most (a node that has not
        answered by then counts as down). When the cluster's nodes cannot be
        learnt, the seed nodes are reported, all down. A master down makes the
        client relearn the slots before its next command (a failover may have
        promoted its replica).
        """
        timeout = self.timeout
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            if self._initialize:
                _ = await asyncio.wait_for(self.initialize(), timeout)
        except (redis_errors.RedisError, OSError, TimeoutError):
            return {node.name: False for node in self.startup_nodes}
        masters = self.get_primaries()

        async def answers(node: ClusterNode) -> bool:
            remaining = max(0.0, deadline - asyncio.get_running_loop().time())
            try:
                return bool(await asyncio.wait_for(self._client_of(node).ping(), remaining))
            except (redis_errors.RedisError, OSError, TimeoutError):
                return False

        up = dict(
            zip(
                [m.name for m in masters], await asyncio.gather(*map(answers, masters)), strict=True
            )
        )
        if not all(up.values()):
            await self.forget_nodes()
        return up

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


async def ping_nodes(client: RedisClient) -> dict[str, bool]:
    """Whether the Redis answers, node by node: ``host:port`` (a socket's path) -> answered.

    Each master of a cluster (`ClusterClient.ping_masters`), or the one server.

    Bounded by the client's command timeout (``[redis] timeout_s``); never raises.
    """
    if isinstance(client, ClusterClient):
        return await client.ping_masters()
    if not isinstance(client, Redis):
        raise TypeError("a Redis Cluster client must come from vpp.redis_client.connect")
    options = client.connection_pool.connection_kwargs
    name = options.get("path") or f"{options.get('host', 'localhost')}:{options.get('port', 6379)}"
    timeout = float(options.get("socket_timeout") or 2.0)
    try:
        return {name: bool(await asyncio.wait_for(client.ping(), timeout))}
    except (redis_errors.RedisError, OSError, TimeoutError):
        return {name: False}


def is_cluster(client: RedisClient) -> bool:
    """Whether ``client`` talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


#: Connections a client may open to one Redis server (to each node of a
#: cluster). redis-py 8's default (100, plain and cluster clients alike) is not
#: a queue but a hard failure (``MaxConnectionsError``) once that many commands
#: are in flight: a setpoint burst routed to the chargers of another replica
#: (one XADD each way per charger) hit it in the 10-park benchmark. Bounded
#: well above the service's own concurrency (`vpp.supervisor.SEND_CONCURRENCY`)
#: and well below a process's file limit.
MAX_CONNECTIONS = 8192


def connect(url: str, *, cluster: bool = False, timeout: float = 2.0, **kwargs: Any) -> RedisClient:
    """A lazily connecting client of the Redis (or Redis Cluster) at ``url``.

    Args:
        url: ``redis://host:port/db`` (one server, or a cluster node when
            ``cluster``) or ``redis+cluster://host:port[,host:port...]``
            (seed nodes of a cluster, `cluster_seeds`).
        cluster: use the cluster client with a plain URL.
        timeout: connect and command timeout, seconds.
        **kwargs: passed on to the client (``decode_responses`` ...).

    Returns:
        A `redis.asyncio.Redis`, or a `redis.asyncio.cluster.RedisCluster`
        whose first command discovers the cluster's nodes and slots.

    Raises:
        SettingsError: a malformed URL (see `cluster_seeds` for a cluster's).
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "max_connections": MAX_CONNECTIONS,
        **kwargs,
    }
    if cluster or is_cluster_url(url):
        seeds = cluster_seeds(url)
        parts = urlsplit(plain_url(url))
        userinfo = parts.netloc.rpartition("@")[0]
        first = urlunsplit(
            (parts.scheme, userinfo + "@x" if userinfo else "x", "", parts.query, "")
        )
        try:
            from_url: dict[str, Any] = dict(parse_url(first))
            from_url.pop("host", None)
            if from_url.pop("connection_class", None) is SSLConnection:
                from_url["ssl"] = True
            nodes = [ClusterNode(host, port) for host, port in seeds]
            return ClusterClient(startup_nodes=nodes, **{**from_url, **options})
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"redis url: {exc}") from None
    try:
        return Redis.from_url(url, health_check_interval=30, **options)
    except ValueError as exc:
        raise SettingsError(f"redis url: {exc}") from None


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
