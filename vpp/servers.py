"""Private Redis and Mosquitto servers started on demand.

When no Redis URL (or MQTT broker) is configured, the service, the demo and
the tests start their own server from the Debian package's binary: bound to
loopback, on a free port, with its data under a state folder, and stopped
when the owner exits. Redis runs with AOF on so that enrolled assets survive
a restart of the private server too.

Exception tree::

    ServerError
     └── ServerBinaryMissing   (the binary is not installed; says how to get it)
"""

from __future__ import annotations

import logging
import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "MosquittoServer",
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


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """Return ``n`` distinct TCP ports on ``host`` that are free right now (bound together).

    Picked outside the ephemeral range: a port the kernel handed out for
    ``bind(0)`` is one it may hand to the next outgoing connection, which took
    a simulated device's port between the pick and its bind in a test run.

    Raises:
        OSError: not enough free ports were found.
    """
    top = min(_LISTEN_PORTS[1], _ephemeral_floor())
    candidates = list(range(_LISTEN_PORTS[0], top))
    random.shuffle(candidates)
    socks: list[socket.socket] = []
    try:
        for port in candidates:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            socks.append(sock)
            if len(socks) == n:
                return [int(s.getsockname()[1]) for s in socks]
        raise OSError(f"fewer than {n} free ports in {_LISTEN_PORTS[0]}-{top - 1} on {host}")
    finally:
        for sock in socks:
            sock.close()


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


@dataclass
class _Process:
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
