"""What the benchmarks share: percentiles, child processes, free ports, logging, the machine.

A benchmark runs from the repository root (``python -m tests.benchmarks.NAME``)
and may start itself again as a child process in another role (a load
generator, the simulated devices): `child_process` and `run_child` start
``python -m MODULE ARGS`` with the repository on the child's path and stop it
on the way out; `device_processes` starts several such children, one per shard
of a simulated park (``adapters.sim.park.shard_park``), and waits until each
one's Modbus gateways listen. `configure_logging` keeps the libraries' debug chatter
(pymodbus prints frames, websockets every handshake) out of what a user reads
unless ``--verbose`` asks for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from vpp.redis_client import connect
from vpp.servers import free_ports, port_open

__all__ = [
    "MQTT_HOST",
    "MQTT_PORT",
    "REDIS_URL",
    "ROOT",
    "THIRD_PARTY_LOGGERS",
    "add_verbose",
    "child_process",
    "configure_logging",
    "cpu_seconds",
    "default_device_procs",
    "device_processes",
    "free_ports",
    "keys_left",
    "machine",
    "parse_shard",
    "percentile",
    "run_child",
    "run_until_sigterm",
    "wait_listening",
    "write_report",
]

#: The repository root: where ``python -m tests.benchmarks.NAME`` is found.
ROOT = Path(__file__).resolve().parents[2]

#: The Redis and the MQTT broker a benchmark uses unless told otherwise: those
#: of ``python -m tests.testenv -- ...`` (which starts private ones when none
#: answers and exports ``VPP_TEST_*``), else the usual loopback ports.
REDIS_URL = os.environ.get("VPP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MQTT_HOST = os.environ.get("VPP_TEST_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("VPP_TEST_MQTT_PORT", "1883"))

#: Libraries under the adapters and the service whose debug and info output
#: is noise in a benchmark's report; kept at WARNING unless ``--verbose``.
THIRD_PARTY_LOGGERS = (
    "aiohttp.access",
    "aiohttp.server",
    "aiomqtt",
    "asyncio",
    "ocpp",
    "paho",
    "pymodbus",
    "websockets",
)

#: Seconds a child gets to stop after SIGTERM before it is killed.
_STOP_S = 10.0


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """Add ``--verbose`` (the libraries' own logging, down to DEBUG) to a benchmark's options."""
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="log at DEBUG, the protocol libraries' output included",
    )


async def keys_left(redis_url: str, namespace: str) -> list[bytes]:
    """The keys still under ``namespace`` on ``redis_url`` (a benchmark must leave none)."""
    client = connect(redis_url)
    try:
        return [k async for k in client.scan_iter(match=f"{namespace}:*")]
    finally:
        await client.aclose()


def write_report(report: Mapping[str, Any], path: str) -> None:
    """Write a benchmark's JSON report to ``path`` and say so."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2)
    print(f"wrote {path}")


def configure_logging(verbose: bool = False) -> None:
    """Log warnings (``verbose``: everything) to stderr; the libraries at WARNING unless verbose.

    The MQTT adapter's warning about more than ten publishes in flight is
    dropped: a setpoint burst to every device is meant to put them in flight.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    logging.getLogger("adapters.mqtt").addFilter(
        lambda record: "pending publish calls" not in record.getMessage()
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0..100) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[k]


def machine() -> dict[str, Any]:
    """The machine a report was measured on: CPU count, Python version, platform."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _child_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


@contextlib.contextmanager
def child_process(
    module: str, args: Sequence[str], *, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python -m MODULE ARGS`` beside this process; SIGTERM (then kill) it on the way out.

    Args:
        module: the module to run, e.g. ``tests.benchmarks.adapters``.
        args: its arguments.
        env: variables added to this process's environment for the child.
    """
    proc = subprocess.Popen([sys.executable, "-m", module, *args], env=_child_env(env))
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(_STOP_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, s) process ``pid`` has used so far; None where unknown.

    Read from ``/proc/PID/stat`` (Linux); a benchmark takes the difference
    around a phase to say which process spent the time.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # after the command: state is field 3, utime 14 and stime 15 (1-based)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def default_device_procs() -> int:
    """Device processes a benchmark starts unless told: one per core, at least 2, at most 8.

    The simulators are cheap between rounds and busy only during a setpoint
    burst, when the adapters' process is busy too; one process per core lets
    the operating system spread the burst, and more only adds context
    switches (on this project's 2-core machine: 2).
    """
    return min(8, max(2, os.cpu_count() or 1))


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/K"`` (a device process's ``--shard``) as ``(I, K)``, 0 <= I < K.

    Raises:
        ValueError: not of that form.
    """
    index, _, count = text.partition("/")
    i, k = int(index), int(count)
    if not 0 <= i < k:
        raise ValueError(f"shard {text!r}: want I/K with 0 <= I < K")
    return i, k


@contextlib.asynccontextmanager
async def device_processes(
    module: str,
    args: Sequence[str],
    listen: Sequence[Sequence[int]],
    *,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    """Run one ``python -m MODULE ARGS --shard I/K`` per shard until the block ends.

    Child ``I`` of ``K = len(listen)`` runs shard ``I`` of the park (it
    rebuilds the park from ``args`` and takes its part with
    ``adapters.sim.park.shard_park``); the block starts once every child's
    ports in ``listen[I]`` accept connections. All children are stopped
    (SIGTERM, then kill) on the way out, whatever happened.

    Args:
        module: the module the children run (the benchmark itself).
        args: arguments every child gets (``--shard I/K`` is appended).
        listen: per child, the ports it must listen on before the block runs
            (its Modbus gateways; empty when it serves none).
        timeout_s: how long the children get to listen.
        env: variables added to the children's environment.

    Raises:
        RuntimeError: a child exited before it listened.
        TimeoutError: some child's port stayed closed after ``timeout_s``.
    """
    count = len(listen)
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(child_process(module, [*args, "--shard", f"{i}/{count}"], env=env))
            for i in range(count)
        ]
        for proc, ports in zip(procs, listen, strict=True):
            await wait_listening(ports, child=proc, timeout_s=timeout_s)
        yield procs


async def run_child(module: str, args: Sequence[str], timeout_s: float) -> str:
    """Run ``python -m MODULE ARGS`` to its end and return its standard output.

    Raises:
        TimeoutError: it ran longer than ``timeout_s`` (it is killed).
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args, stdout=asyncio.subprocess.PIPE, env=_child_env(None)
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return out.decode()


async def run_until_sigterm(work: Coroutine[Any, Any, None], *, name: str) -> None:
    """Run ``work`` (a child's role) until it ends or the process gets SIGTERM; then cancel it."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.create_task(work, name=name)
    stopper = asyncio.create_task(stop.wait(), name=f"{name}-sigterm")
    await asyncio.wait((task, stopper), return_when=asyncio.FIRST_COMPLETED)
    task.cancel()
    stopper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def wait_listening(
    ports: Iterable[int],
    *,
    child: subprocess.Popen[bytes],
    timeout_s: float,
    host: str = "127.0.0.1",
) -> None:
    """Wait until something listens on every port (a child's device servers).

    Raises:
        RuntimeError: the child exited first.
        TimeoutError: some port was still closed after ``timeout_s``.
    """
    waiting = set(ports)
    deadline = time.monotonic() + timeout_s
    while waiting:
        if child.poll() is not None:
            raise RuntimeError(f"the child process exited with {child.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {host} ports {sorted(waiting)}")
        waiting = {p for p in waiting if not port_open(host, p)}
        if waiting:
            await asyncio.sleep(0.1)
