"""Private Redis and Mosquitto servers started on demand.

When no Redis URL (or MQTT broker) is configured, the service, the demo and
the tests start their own server from the Debian package's binary: bound to
loopback, on a free port, with its data under a state folder, and stopped
when the owner exits. Redis runs with AOF on so that enrolled assets survive
a restart of the private server too. ``RedisClusterServer`` starts a whole
Redis Cluster the same way (the test suite's cluster run and its failover
test).

Exception tree::

    ServerError
     └── ServerBinaryMissing   (the binary is not installed; says how to get it)
"""

from __future__ import annotations

import collections
import logging
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "CLUSTER_BUS_OFFSET",
    "MosquittoServer",
    "RedisClusterServer",
    "RedisServer",
    "ServerBinaryMissing",
    "ServerError",
    "free_port",
    "free_ports",
    "port_open",
]

log = logging.getLogger("vpp.servers")

_INSTALL_HINT = "install it with: sudo apt-get install -y {package}  (Debian/Ubuntu)"


class ServerError(RuntimeError):
    """A private server could not be started or stopped."""


class ServerBinaryMissing(ServerError):
    """The server's binary is not on PATH.

    Attributes:
        binary: the executable that was looked for.
        package: the Debian package that provides it.
    """

    def __init__(self, binary: str, package: str) -> None:
        self.binary = binary
        self.package = package
        super().__init__(f"{binary} not found on PATH; " + _INSTALL_HINT.format(package=package))


#: Where listening ports are picked: below Linux's default ephemeral range
#: (32768-60999), from which the kernel picks every outgoing connection's
#: local port, and above the well-known and common service ports.
_LISTEN_PORTS = (20000, 32768)


def _ephemeral_floor() -> int:
    """The lowest port the kernel gives outgoing connections (32768 when unknown)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return _LISTEN_PORTS[1]


def _bound(host: str, port: int) -> socket.socket | None:
    """A socket bound to ``host:port``, or None when the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        return None
    return sock


#: Ports this process handed out lately: not handed out again while their
#: taker may not have bound them yet (two picks of one fixture drew the same
#: port once, and the second bind failed).
_HANDED_OUT: collections.deque[int] = collections.deque(maxlen=1024)


def free_ports(n: int, host: str = "127.0.0.1", *, offsets: tuple[int, ...] = ()) -> list[int]:
    """Return ``n`` distinct TCP ports on ``host`` that are free right now (bound together).

    Picked outside the ephemeral range: a port the kernel handed out for
    ``bind(0)`` is one it may hand to the next outgoing connection, which took
    a simulated device's port between the pick and its bind in a test run.

    Args:
        n: how many ports.
        host: the interface.
        offsets: for each port picked, ``port + offset`` must be free too
            (a Redis Cluster node's bus port, `CLUSTER_BUS_OFFSET`).

    Raises:
        OSError: not enough free ports were found.
    """
    top = min(_LISTEN_PORTS[1], _ephemeral_floor()) - max(offsets, default=0)
    candidates = [p for p in range(_LISTEN_PORTS[0], top) if p not in _HANDED_OUT]
    random.shuffle(candidates)
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        for port in candidates:
            group = [_bound(host, port + offset) for offset in (0, *offsets)]
            socks += [sock for sock in group if sock is not None]
            if all(sock is not None for sock in group):
                ports.append(port)
                if len(ports) == n:
                    _HANDED_OUT.extend(ports)
                    return ports
        raise OSError(f"fewer than {n} free ports in {_LISTEN_PORTS[0]}-{top - 1} on {host}")
    finally:
        for sock in socks:
            sock.close()


#: A Redis Cluster node's bus listens on its port + this (Redis's fixed offset).
CLUSTER_BUS_OFFSET = 10000


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is free right now (see `free_ports`)."""
    return free_ports(1, host)[0]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class _Started:
    """A server (or a group of them) as a context manager: started on entry, stopped on exit."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class _Process(_Started):
    """A child server process bound to loopback on a known port."""

    binary: str
    package: str
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    startup_timeout: float = 10.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        """Whether the listening server serves requests (by default: it listens)."""
        return True

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        exe = shutil.which(self.binary)
        if exe is None:
            raise ServerBinaryMissing(self.binary, self.package)
        if self._proc is not None and self._proc.poll() is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port(self.host)
        log_path = self.data_dir / f"{self.binary}.log"
        with log_path.open("ab") as log_file:
            self._proc = subprocess.Popen(
                [exe, *self._command()[1:]],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise ServerError(f"{self.binary} exited with {self._proc.returncode}: {tail}")
            if port_open(self.host, self.port, timeout=0.2) and self._ready():
                log.info("%s listening on %s:%d", self.binary, self.host, self.port)
                return
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"{self.binary} did not listen on {self.host}:{self.port} in time")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def kill(self) -> None:
        """Kill the server abruptly (no shutdown save), as a crash would."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._proc is not None and self._proc.poll() is None


@dataclass
class RedisServer(_Process):
    """A private ``redis-server`` on loopback with AOF persistence.

    Example:
        >>> with RedisServer(data_dir=Path("state/redis")) as srv:  # doctest: +SKIP
        ...     print(srv.url)
    """

    binary: str = "redis-server"
    package: str = "redis-server"
    data_dir: Path = Path("state/redis")

    @property
    def url(self) -> str:
        """The ``redis://`` URL of this server."""
        return f"redis://{self.host}:{self.port}/0"

    def _ready(self) -> bool:
        """Whether Redis answers PING: it listens while it loads its AOF, answering -LOADING."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    #: extra ``redis-server`` arguments (the cluster node's)
    extra_args: list[str] = field(default_factory=list)

    def _command(self) -> list[str]:
        return [
            self.binary,
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
            *self.extra_args,
        ]  # fmt: skip


@dataclass
class MosquittoServer(_Process):
    """A private ``mosquitto`` broker on loopback (anonymous, no persistence)."""

    binary: str = "mosquitto"
    package: str = "mosquitto"
    data_dir: Path = Path("state/mosquitto")

    def _command(self) -> list[str]:
        conf = self.data_dir.resolve() / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 1000\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
        )
        return [self.binary, "-c", str(conf)]


def redis_cli(port: int, *args: str, host: str = "127.0.0.1", timeout: float = 30.0) -> str:
    """Run ``redis-cli -h host -p port ARGS...``; return its output.

    Raises:
        ServerBinaryMissing: redis-cli is not installed.
        ServerError: it failed or timed out.
    """
    exe = shutil.which("redis-cli")
    if exe is None:
        raise ServerBinaryMissing("redis-cli", "redis-tools")
    try:
        done = subprocess.run(
            [exe, "-h", host, "-p", str(port), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServerError(f"redis-cli {' '.join(args)} timed out") from exc
    if done.returncode != 0:
        raise ServerError(f"redis-cli {' '.join(args)}: {done.stderr or done.stdout}")
    return done.stdout


def _cluster_info(port: int, host: str = "127.0.0.1") -> dict[str, str]:
    """The fields of ``CLUSTER INFO`` of one node ({} when it does not answer)."""
    try:
        text = redis_cli(port, "cluster", "info", host=host, timeout=5.0)
    except ServerError:
        return {}
    return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)


@dataclass
class RedisClusterServer(_Started):
    """A private Redis Cluster on loopback: ``masters`` masters with ``replicas`` each.

    Every node is a `RedisServer` (AOF on) started with ``--cluster-enabled
    yes`` on a free port, its data in ``data_dir/<port>``; ``redis-cli
    --cluster create`` joins them and assigns the slots, and `start` returns
    once every node reports ``cluster_state:ok``. ``node_timeout_ms`` is the
    cluster's failure detection time: a master that does not answer for that
    long is failed over to its replica.

    Example:
        >>> with RedisClusterServer(data_dir=Path("state/cluster")) as c:  # doctest: +SKIP
        ...     print(c.url)  # redis+cluster://127.0.0.1:P
    """

    data_dir: Path = Path("state/redis-cluster")
    masters: int = 3
    replicas: int = 1
    host: str = "127.0.0.1"
    node_timeout_ms: int = 1500
    startup_timeout: float = 60.0
    nodes: list[RedisServer] = field(default_factory=list, init=False)
    _stack: ExitStack = field(default_factory=ExitStack, init=False, repr=False)

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL of the cluster (its first live node)."""
        node = next((n for n in self.nodes if n.running), self.nodes[0])
        return f"redis+cluster://{self.host}:{node.port}"

    def start(self) -> None:
        """Start the nodes, create the cluster and wait until every node says it is ok.

        Raises:
            ServerBinaryMissing: redis-server or redis-cli is not installed.
            ServerError: a node did not start or the cluster did not form in time.
        """
        if self.masters < 3:
            raise ServerError("a Redis Cluster needs at least 3 masters")
        nodes = self.masters * (1 + self.replicas)
        ports = free_ports(nodes, self.host, offsets=(CLUSTER_BUS_OFFSET,))
        try:
            for port in ports:
                node = RedisServer(
                    data_dir=self.data_dir / str(port),
                    host=self.host,
                    port=port,
                    extra_args=self._node_args(),
                )
                self._stack.callback(node.stop)
                node.start()
                self.nodes.append(node)
            redis_cli(
                ports[0],
                "--cluster", "create",
                *(f"{self.host}:{p}" for p in ports),
                "--cluster-replicas", str(self.replicas),
                "--cluster-yes",
                host=self.host,
                timeout=self.startup_timeout,
            )  # fmt: skip
            self.wait(self._formed, "every node to say cluster_state:ok")
        except BaseException:
            self.stop()
            raise
        log.info("redis cluster on %s (%d nodes)", self.url, len(self.nodes))

    def _node_args(self) -> list[str]:
        return [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip

    def _formed(self) -> bool:
        """Every node knows every other and says ok, and every replica has synced.

        (A replica that has not finished its first sync refuses to fail over.)
        """
        formed = all(
            (info := _cluster_info(n.port, self.host)).get("cluster_state") == "ok"
            and info.get("cluster_known_nodes") == str(len(self.nodes))
            for n in self.nodes
            if n.running
        )
        return formed and self.replicas_synced()

    def replicas_synced(self) -> bool:
        """Whether every live replica's link to its master is up (``master_link_status:up``)."""
        roles = self.roles()
        for node in self.nodes:
            if not node.running or roles.get(node.port) != "slave":
                continue
            try:
                info = redis_cli(node.port, "info", "replication", host=self.host, timeout=5.0)
            except ServerError:
                return False
            if "master_link_status:up" not in info:
                return False
        return bool(roles)

    def wait(self, ready: Callable[[], bool], what: str, timeout: float | None = None) -> None:
        """Poll ``ready`` every 0.1 s until it holds.

        Raises:
            ServerError: it did not hold within ``timeout`` (default ``startup_timeout``).
        """
        deadline = time.monotonic() + (self.startup_timeout if timeout is None else timeout)
        while not ready():
            if time.monotonic() > deadline:
                raise ServerError(f"redis cluster: no {what} in time")
            time.sleep(0.1)

    def roles(self) -> dict[int, str]:
        """Port -> ``master`` or ``slave`` of every live node, as the live nodes see it.

        Read from ``CLUSTER NODES`` of the first live node that answers;
        nodes flagged ``fail`` are left out.
        """
        for node in self.nodes:
            if not node.running:
                continue
            try:
                text = redis_cli(node.port, "cluster", "nodes", host=self.host, timeout=5.0)
            except ServerError:
                continue
            roles: dict[int, str] = {}
            for line in text.splitlines():
                fields = line.split()
                if len(fields) < 3 or "fail" in fields[2].split(","):
                    continue
                port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
                roles[port] = "master" if "master" in fields[2] else "slave"
            return roles
        return {}

    def replicated(self) -> bool:
        """Whether every live master's replicas have all it wrote (their offsets equal its own).

        Redis replicates asynchronously: a test that kills a master waits on
        this first, so that what it wrote before is on the replica promoted.
        """
        for node in self.masters_now():
            try:
                info = redis_cli(node.port, "info", "replication", host=self.host, timeout=5.0)
            except ServerError:
                return False
            fields = dict(line.strip().split(":", 1) for line in info.splitlines() if ":" in line)
            offset = fields.get("master_repl_offset")
            replicas = [v for k, v in fields.items() if k.startswith("slave") and k[5:].isdigit()]
            if offset is None or any(f"offset={offset}," not in r + "," for r in replicas):
                return False
        return True

    def masters_now(self) -> list[RedisServer]:
        """The live nodes that are masters now (after any failover)."""
        roles = self.roles()
        return [n for n in self.nodes if n.running and roles.get(n.port) == "master"]

    def ok(self) -> bool:
        """Whether every live node says ``cluster_state:ok``."""
        return all(
            _cluster_info(n.port, self.host).get("cluster_state") == "ok"
            for n in self.nodes
            if n.running
        )

    def stop(self) -> None:
        """Stop every node (their data stays under ``data_dir``)."""
        self._stack.close()
        self._stack = ExitStack()
        self.nodes = []
