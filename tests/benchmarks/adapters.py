"""Adapter benchmark: ``python -m tests.benchmarks.adapters [--messages N] [--devices N] ...``.

Two measurements, printed and written as JSON (``--out``):

* **ingest**: ``--messages`` QoS 0 telemetry messages (msgpack, ~62 bytes,
  round-robin over ``--devices`` assets) are blasted at a real Mosquitto.
  First the broker's own ceiling: Mosquitto's C clients, ``mosquitto_pub
  --repeat`` into ``mosquitto_sub`` (Debian ``mosquitto-clients``), the same
  count and payload on one telemetry topic (see :func:`_ingest_ceiling` for
  how its arrivals are timed). Then ours: a publisher *process* writes the same
  messages as pre-built MQTT frames, :class:`~adapters.mqtt.MqttAdapter`
  decodes them (MQTT 5, through a shared subscription as the service reads
  telemetry; ``--share-group ''``: a plain one), and the supervisor's own
  live-state path writes them to a real Redis: ``LiveBatch.admit`` per
  batch from ``telemetry_batches()``, ``LiveBatch.flush`` when
  ``flush_max`` readings wait or every ``flush_interval_s`` (the
  supervisor's defaults), i.e. ``live_state`` and
  ``State.write_live_many`` (msgpack, TTL by age, one pipeline), under a
  unique namespace deleted afterwards. A rate is messages over the time
  between the first and the last one seen (ours: written). The broker drops
  QoS 0 messages for a subscriber that falls behind, so each side reports
  what it received. Publisher, broker, adapter and Redis share the machine's
  cores: the numbers are for the whole chain on this box, and the ratio of
  ours to the ceiling of the same run is the figure to compare.
* **rtt**: ``--device-procs`` device *processes* (default: one per core, 2
  to 8) each run a shard of a generated park (batteries on SunSpec Modbus
  gateways, OCPP chargers, MQTT load gateways; ``adapters.sim.shard_park`` and
  ``adapters.sim.run_park``) while this process runs the three adapters and
  the CSMS. One setpoint goes to every device at once; per protocol it
  reports p50/p95 of ``Confirmation.rtt_s`` and the wall time until all were
  confirmed, and per round the CPU seconds this process and each device
  process spent (``/proc``): on a shared machine the wall times follow the
  other work, the CPU seconds say what the round itself cost and where.
  ``--profile PATH`` writes a cProfile of this process per round.

Every loop is bounded by a timeout; child processes are terminated and Redis
keys deleted on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters import mqtt_codec as codec
from adapters.mqtt import MqttAdapter
from adapters.ocpp.csms import PATH_PREFIX
from adapters.sim.park import SimParkSpec, generate_park, run_park, shard_park
from adapters.types import DeviceLimits, Telemetry, TelemetrySource
from tests.benchmarks.support import (
    MQTT_HOST,
    MQTT_PORT,
    REDIS_URL,
    add_verbose,
    configure_logging,
    cpu_seconds,
    default_device_procs,
    device_processes,
    free_ports,
    machine,
    parse_shard,
    run_child,
    run_until_sigterm,
    write_report,
)
from tests.support.sim_park import drain, park_adapters, setpoint_round, wait_for_park
from vpp.keys import DEFAULT_NAMESPACE
from vpp.model import AssetKind
from vpp.redis_client import RedisClient, connect
from vpp.settings import MqttSettings
from vpp.state import State
from vpp.supervisor._live import FLUSH_INTERVAL_S, FLUSH_MAX, LiveBatch
from vpp.supervisor._routing import AdapterKey, AdapterRoute

__all__ = ["bench_ingest", "bench_park", "bench_rtt", "device_args", "main"]

log = logging.getLogger("tests.benchmarks.adapters")

#: This benchmark as a module: its child processes run it again in another role.
_MODULE = "tests.benchmarks.adapters"
_PARK = "bench"
#: Seconds without a message after which an ingest run counts as finished.
_IDLE_S = 3.0
#: Telemetry TTL written with every live reading (seconds).
_TTL_S = 60


def _payload(i: int) -> bytes:
    """The payload of asset ``i`` as the publishers send it (msgpack, ~62 bytes)."""
    return codec.encode_telemetry(
        p_kw=10.0 + i % 50,
        # no device time: each frame is sent many times, and a repeated
        # device time is a replay (adapters.freshness); arrival dates it
        ts=None,
        e_kwh=100.0 + i,
        max_kw=80.0,
        min_kw=5.0,
        encoding=codec.Encoding.MSGPACK,
    )


# ---------------------------------------------------------------- ingest --


def _frame(first: int, body: bytes) -> bytes:
    """One MQTT 3.1.1 packet: fixed header byte, varint remaining length, body."""
    n, length = len(body), bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        length.append(digit | (0x80 if n else 0))
        if not n:
            return bytes([first]) + bytes(length) + body


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def _publish(host: str, port: int, root: str, devices: int, messages: int, rate: float) -> None:
    """The publisher process: ``messages`` QoS 0 readings round-robin over ``devices``.

    Paced at ``rate`` messages/s (0: as fast as the socket takes them). A load
    generator, not a client: it writes pre-built MQTT 3.1.1 PUBLISH
    frames in large ``sendall`` calls so that it costs the shared CPUs as
    little as possible (a paho publisher tops out near 28,000 messages/s here
    and would be the bottleneck). A final PINGREQ/PINGRESP proves the broker
    has read every frame before it.
    """
    topics = codec.Topics(root, _PARK)
    frames = [
        _frame(0x30, _utf8(topics.telemetry(f"a{i:05d}")) + _payload(i)) for i in range(devices)
    ]
    connect = _frame(
        0x10, _utf8("MQTT") + bytes([4, 0x02, 0, 60]) + _utf8(f"bench-pub-{os.getpid()}")
    )
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(connect)
        if sock.recv(4)[:1] != b"\x20":
            raise SystemExit("broker refused the publisher")
        started = time.perf_counter()
        chunk = 500
        for at in range(0, messages, chunk):
            n = min(chunk, messages - at)
            sock.sendall(b"".join(frames[(at + k) % devices] for k in range(n)))
            if rate > 0:
                ahead = started + (at + n) / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
        sock.sendall(b"\xc0\x00")  # PINGREQ: answered after every frame before it
        if sock.recv(2) != b"\xd0\x00":
            raise SystemExit("no PINGRESP")
        elapsed = time.perf_counter() - started
        sock.sendall(b"\xe0\x00")
    print(json.dumps({"published": messages, "publish_s": round(elapsed, 3)}), flush=True)


@dataclass(slots=True)
class _Counter:
    """Arrival times of the first and last of ``n`` messages."""

    n: int = 0
    first: float = 0.0
    last: float = 0.0

    def add(self, k: int = 1, since: float | None = None) -> None:
        """Count ``k`` messages now; ``since`` is when the first of them arrived (batches)."""
        now = time.perf_counter()
        if self.n == 0:
            self.first = now if since is None else since
        self.n += k
        self.last = now

    def rate(self) -> float:
        span = self.last - self.first
        return self.n / span if span > 0 else 0.0


async def _wait_until_done(counter: _Counter, expected: int, timeout_s: float) -> None:
    """Return once ``expected`` arrived, or nothing arrived for a while, or at the timeout."""
    deadline = time.monotonic() + timeout_s
    while counter.n < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        idle = time.perf_counter() - (counter.last or time.perf_counter())
        if counter.n and idle > _IDLE_S:
            break


async def _publish_to(
    consumer: Coroutine[Any, Any, None],
    counter: _Counter,
    args: argparse.Namespace,
    root: str,
    *,
    name: str,
) -> dict[str, Any]:
    """Run ``consumer`` while the publisher process sends; the publisher's report."""
    task = asyncio.create_task(consumer, name=name)
    try:
        out = await run_child(
            _MODULE,
            [
                "--role", "publisher", "--mqtt-host", args.mqtt_host,
                "--mqtt-port", str(args.mqtt_port), "--root", root,
                "--devices", str(args.devices), "--messages", str(args.messages),
                "--rate", str(args.rate),
            ],
            args.timeout,
        )  # fmt: skip
        await _wait_until_done(counter, args.messages, args.timeout)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return dict(json.loads(out.strip().splitlines()[-1]))


def _ingest_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    """The broker's own ceiling: ``mosquitto_pub --repeat`` into ``mosquitto_sub``, in C.

    ``mosquitto_sub`` prints one newline per message (``-F ''``: stamping
    each one, ``%U``, costs it a third of its rate) into a file whose growth
    is polled every 5 ms: the rate is the newlines between the first and the
    last growth over the time between them. Blocking (child processes, a
    file): run it in a thread.
    """
    if not (shutil.which("mosquitto_pub") and shutil.which("mosquitto_sub")):
        return {"error": "mosquitto_pub/mosquitto_sub not found (Debian: mosquitto-clients)"}
    topics = codec.Topics(f"bench-{uuid.uuid4().hex[:8]}", _PARK)
    where = ["-h", args.mqtt_host, "-p", str(args.mqtt_port)]
    deadline = time.monotonic() + args.timeout
    with tempfile.TemporaryDirectory(prefix="vpp-bench-") as tmp:
        payload, lines = Path(tmp, "payload"), Path(tmp, "lines")
        payload.write_bytes(_payload(0))
        with lines.open("wb") as out:
            sub = subprocess.Popen(
                ["mosquitto_sub", *where, "-t", topics.wildcard("telemetry"), "-F", ""],
                stdout=out,
            )
            try:
                # subscribed once a probe comes back; the probes' lines are left out
                probe = topics.telemetry("_probe")
                while lines.stat().st_size == 0 and time.monotonic() < deadline:
                    subprocess.run(["mosquitto_pub", *where, "-t", probe, "-m", "p"], check=True)
                    time.sleep(0.1)
                base = lines.stat().st_size
                pub = subprocess.Popen(
                    ["mosquitto_pub", *where, "-t", topics.telemetry("a00000"),
                     "-f", str(payload), "--repeat", str(args.messages)],
                )  # fmt: skip
                started = time.perf_counter()
                first: tuple[float, int] | None = None
                last = (started, base)
                while time.perf_counter() - last[0] < _IDLE_S and time.monotonic() < deadline:
                    time.sleep(0.005)
                    size = lines.stat().st_size
                    if size != last[1]:
                        last = (time.perf_counter(), size)
                        first = first or last
                if pub.wait(args.timeout):
                    raise RuntimeError(f"mosquitto_pub exited with {pub.returncode}")
            finally:
                sub.terminate()
                sub.wait(10)
    span = last[0] - first[0] if first else 0.0
    return {
        "received": last[1] - base,
        "msgs_per_s": round((last[1] - first[1]) / span) if first and span > 0 else 0,
        "published": args.messages,
        "payload_bytes": len(_payload(0)),
    }


async def _write_live(
    batches: AsyncIterator[list[Telemetry]],
    state: State,
    routes: dict[str, AdapterRoute],
    counter: _Counter,
) -> None:
    """The supervisor's consumer and writer (``Supervisor._consume``, ``_flush_loop``).

    Every batch goes through ``LiveBatch.admit``; a flush runs when
    ``FLUSH_MAX`` readings wait or every ``FLUSH_INTERVAL_S``, and counts the
    readings it wrote for when they were taken off the adapter.
    """
    live = LiveBatch(flush_max=FLUSH_MAX)
    stale: Counter[str] = Counter()
    rejected: Counter[tuple[str, str]] = Counter()
    taken, first_at = 0, 0.0

    async def flush() -> None:
        nonlocal taken
        n, since, taken = taken, first_at, 0
        await live.flush(state, _TTL_S, lambda park, asset: True)
        if n:
            counter.add(n, since=since)

    async def flusher() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live.due.wait(), FLUSH_INTERVAL_S)
            await flush()

    task = asyncio.create_task(flusher(), name="bench-live-flush")
    try:
        async for batch in batches:
            if taken == 0:
                first_at = time.perf_counter()
            taken += len(batch)
            live.admit(
                batch, routes.get, now=time.time(), ttl=_TTL_S, connected=True,
                stale=stale, rejected=rejected,
            )  # fmt: skip
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _ingest_adapter(args: argparse.Namespace, redis: RedisClient) -> dict[str, Any]:
    root = f"bench-{uuid.uuid4().hex[:8]}"
    namespace = f"vppbench{uuid.uuid4().hex[:10]}"
    limits = DeviceLimits(p_min_kw=0.0, p_max_kw=100.0)
    assets = {f"a{i:05d}": limits for i in range(args.devices)}
    key = AdapterKey(TelemetrySource.MQTT, _PARK, f"{root}/{_PARK}", "mqtt-bench")
    routes = {
        a: AdapterRoute(
            park=_PARK, asset_id=a, kind=AssetKind.FLEXIBLE_LOAD.value, key=key, device_id=a,
            limits=limits,
        )
        for a in assets
    }  # fmt: skip
    state = State(redis, namespace=namespace)
    counter = _Counter()
    adapter = MqttAdapter(
        host=args.mqtt_host,
        port=args.mqtt_port,
        park=_PARK,
        assets=assets,
        root=root,
        read_ahead=args.read_ahead,
        share_group=args.share_group,
    )
    try:
        async with adapter:
            await asyncio.wait_for(adapter.wait_connected(), 10)
            writer = _write_live(adapter.telemetry_batches(), state, routes, counter)
            pub = await _publish_to(writer, counter, args, root, name="bench-redis-writer")
        keys = [k async for k in redis.scan_iter(match=f"{namespace}:*", count=1000)]
    finally:
        async for key_name in redis.scan_iter(match=f"{namespace}:*", count=1000):
            await redis.delete(key_name)
    return {
        "received": counter.n,
        "msgs_per_s": round(counter.rate()),
        "redis_keys": len(keys),
        "dropped_by_adapter": adapter.stats.dropped,
        "bad_payloads": adapter.stats.bad_payloads,
        **pub,
    }


async def bench_ingest(args: argparse.Namespace) -> dict[str, Any]:
    """Run the broker's ceiling and ours ``args.repeats`` times; medians and ratio."""
    redis = connect(args.redis_url)
    runs: list[dict[str, Any]] = []
    try:
        await redis.ping()
        for i in range(args.repeats):
            ceiling = await asyncio.to_thread(_ingest_ceiling, args)
            via = await _ingest_adapter(args, redis)
            runs.append({"ceiling": ceiling, "adapter": via})
            print(
                f"ingest run {i + 1}: broker ceiling (mosquitto_pub -> mosquitto_sub) "
                f"{ceiling.get('msgs_per_s', 0):,}/s ({ceiling.get('received', 0):,} received), "
                f"adapter+redis {via['msgs_per_s']:,}/s "
                f"({via['received']:,} received, {via['redis_keys']} keys)",
                flush=True,
            )
    finally:
        await redis.aclose()
    ceilings = [r["ceiling"]["msgs_per_s"] for r in runs if r["ceiling"].get("msgs_per_s")]
    ceiling_med = statistics.median(ceilings) if ceilings else None
    via_med = statistics.median(r["adapter"]["msgs_per_s"] for r in runs)
    ratios = [
        r["adapter"]["msgs_per_s"] / r["ceiling"]["msgs_per_s"]
        for r in runs
        if r["ceiling"].get("msgs_per_s")
    ]
    return {
        "messages": args.messages,
        "devices": args.devices,
        "repeats": args.repeats,
        "ceiling_msgs_per_s_median": ceiling_med,
        "adapter_msgs_per_s_median": via_med,
        "ratio": round(via_med / ceiling_med, 3) if ceiling_med else None,
        "ratio_per_run_median": round(statistics.median(ratios), 3) if ratios else None,
        "runs": runs,
    }


# ------------------------------------------------------------------- rtt --


def _rtt_mix(devices: int) -> tuple[int, int, int]:
    """The issue's park mix: 40 % batteries, 30 % chargers, 30 % loads."""
    batteries = round(devices * 0.4)
    chargers = round(devices * 0.3)
    return batteries, chargers, devices - batteries - chargers


def bench_park(devices: int, ports: Sequence[int]) -> SimParkSpec:
    """The rtt part's park: ``devices`` in the issue's mix, batteries spread over ``ports``.

    Every device process rebuilds it from the same arguments and runs its
    shard (``adapters.sim.park.shard_park``).
    """
    batteries, chargers, loads = _rtt_mix(devices)
    return generate_park(
        park_id=_PARK, batteries=batteries, chargers=chargers, loads=loads, modbus_ports=ports
    )


def _bench_spec(args: argparse.Namespace, ports: Sequence[int]) -> SimParkSpec:
    return bench_park(args.devices, ports)


async def _devices(args: argparse.Namespace) -> None:
    """A device process: its shard of the simulated park on one event loop until SIGTERM."""
    ports = [int(p) for p in args.modbus_ports.split(",")]
    index, count = parse_shard(args.shard)
    spec = shard_park(_bench_spec(args, ports), count)[index]
    await run_until_sigterm(
        run_park(
            spec,
            mqtt_host=args.mqtt_host,
            mqtt_port=args.mqtt_port,
            mqtt_root=args.root,
            csms_url=args.csms_url,
            loads_per_gateway=100,
            period_s=args.device_period,
        ),
        name=f"bench-park-{index}",
    )


def _median_of(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 2) if known else None


def _cpu_spent(before: Sequence[float | None], after: Sequence[float | None]) -> dict[str, Any]:
    """CPU seconds spent in a round: this (the adapters') process, then each device process."""
    spent = [
        None if a is None or b is None else round(b - a, 2)
        for a, b in zip(before, after, strict=True)
    ]
    return {"adapters": spent[0], "devices": spent[1:]}


@contextlib.contextmanager
def _profiled(path: str | None, label: str) -> Iterator[None]:
    """cProfile this process for the block into ``PATH.LABEL.pstats`` (no-op without a path)."""
    if not path:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        profile.dump_stats(f"{path}.{label}.pstats")


def device_args(
    *,
    devices: int,
    root: str,
    mqtt_host: str,
    mqtt_port: int,
    modbus_ports: Sequence[int],
    csms_url: str,
    device_period: float,
    verbose: bool = False,
) -> list[str]:
    """The arguments of a device process (``--shard I/K`` is added per process).

    Args:
        devices: the park's size (:func:`bench_park`).
        root: MQTT topic root of the load gateways.
        mqtt_host: broker host.
        mqtt_port: broker port.
        modbus_ports: the gateways' ports, as given to :func:`bench_park`.
        csms_url: where the chargers connect (``ws://host:port/ocpp/``).
        device_period: the simulators' telemetry period (s).
        verbose: the libraries' debug logging in the child.
    """
    return [
        "--role", "devices", "--devices", str(devices), "--root", root,
        "--mqtt-host", mqtt_host, "--mqtt-port", str(mqtt_port),
        "--modbus-ports", ",".join(map(str, modbus_ports)), "--csms-url", csms_url,
        "--device-period", str(device_period), *(["--verbose"] if verbose else []),
    ]  # fmt: skip


async def bench_rtt(args: argparse.Namespace) -> dict[str, Any]:
    """Start the device processes and the adapters; time ``args.repeats`` setpoint rounds."""
    batteries, chargers, loads = _rtt_mix(args.devices)
    servers = max(1, -(-batteries // args.units_per_gateway))
    ports = free_ports(servers + 1)
    csms_port, modbus_ports = ports[0], ports[1:]
    root = f"bench-{uuid.uuid4().hex[:8]}"
    spec = _bench_spec(args, modbus_ports)
    park = park_adapters(
        spec,
        mqtt_host=args.mqtt_host,
        mqtt_port=args.mqtt_port,
        mqtt_root=root,
        csms_port=csms_port,
        poll_s=args.poll,
        modbus_connections=args.modbus_connections,
    )
    child = device_args(
        devices=args.devices,
        root=root,
        mqtt_host=args.mqtt_host,
        mqtt_port=args.mqtt_port,
        modbus_ports=modbus_ports,
        csms_url=f"ws://127.0.0.1:{csms_port}{PATH_PREFIX}",
        device_period=args.device_period,
        verbose=args.verbose,
    )
    procs = max(1, args.device_procs)
    listen = [shard.modbus_ports for shard in shard_park(spec, procs)]
    rounds: list[dict[str, Any]] = []
    # the Modbus adapters connect once every shard's gateways listen
    async with (
        park.ocpp,
        device_processes(_MODULE, child, listen, timeout_s=args.timeout) as children,
        park.mqtt,
        contextlib.AsyncExitStack() as stack,
    ):
        for adapter in park.modbus:
            await stack.enter_async_context(adapter)
        draining = asyncio.create_task(drain(park), name="bench-drain-all")
        try:
            ready = time.perf_counter()
            await wait_for_park(park, spec, args.timeout)
            ready_s = time.perf_counter() - ready
            print(
                f"park ready: {batteries} batteries on {servers} Modbus gateways, "
                f"{chargers} OCPP chargers, {loads} MQTT loads in {procs} device "
                f"processes ({ready_s:.1f} s)",
                flush=True,
            )
            pids = [os.getpid(), *(c.pid for c in children)]
            for i in range(args.repeats):
                cpu_before = [cpu_seconds(pid) for pid in pids]
                with _profiled(args.profile, f"round{i + 1}"):
                    result = await asyncio.wait_for(
                        setpoint_round(park, args.concurrency), args.timeout
                    )
                result["cpu_s"] = _cpu_spent(cpu_before, [cpu_seconds(pid) for pid in pids])
                rounds.append(result)
                print(
                    f"rtt round {i + 1}: wall {result['wall_s']} s, "
                    + ", ".join(
                        f"{p} p50 {result[p]['p50_ms']} ms p95 {result[p]['p95_ms']} ms "
                        f"({result[p]['confirmed']}/{result[p]['devices']})"
                        for p in park.setpoints
                    )
                    + f"; CPU s adapters {result['cpu_s']['adapters']}, "
                    f"devices {result['cpu_s']['devices']}",
                    flush=True,
                )
                await asyncio.sleep(1.0)
        finally:
            draining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await draining
    summary: dict[str, Any] = {
        "devices": args.devices,
        "batteries": batteries,
        "chargers": chargers,
        "loads": loads,
        "modbus_gateways": servers,
        "device_procs": procs,
        "concurrency": args.concurrency,
        "rounds": rounds,
        "wall_s_median": statistics.median(r["wall_s"] for r in rounds) if rounds else None,
        "adapters_cpu_s_median": _median_of(r["cpu_s"]["adapters"] for r in rounds),
        "devices_cpu_s_median": _median_of(
            sum(v for v in r["cpu_s"]["devices"] if v is not None) for r in rounds
        ),
    }
    for protocol in ("mqtt", "modbus", "ocpp"):
        for key in ("p50_ms", "p95_ms"):
            values = [r[protocol][key] for r in rounds if r[protocol][key] is not None]
            summary[f"{protocol}_{key}_median"] = (
                round(statistics.median(values), 1) if values else None
            )
    return summary


# ------------------------------------------------------------------ main --


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python -m {_MODULE}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--messages", type=int, default=200_000, help="ingest messages per run")
    p.add_argument("--devices", type=int, default=1000, help="assets (ingest and rtt)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="bench-adapters.json")
    p.add_argument("--mqtt-host", default=MQTT_HOST)
    p.add_argument("--mqtt-port", type=int, default=MQTT_PORT)
    p.add_argument("--redis-url", default=REDIS_URL)
    p.add_argument(
        "--rate", type=float, default=0.0, help="publisher pace in msgs/s (0: as fast as it can)"
    )
    p.add_argument(
        "--read-ahead",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="MqttAdapter(read_ahead=...) in the ingest run (default: the adapter's default, on)",
    )
    p.add_argument(
        "--share-group",
        default=MqttSettings().share_group_in(DEFAULT_NAMESPACE),
        help="MqttAdapter(share_group=...) in the ingest run: telemetry read through an MQTT 5 "
        "shared subscription, as the service does (default: the service's default, %(default)s; "
        "'': a plain subscription)",
    )
    p.add_argument("--units-per-gateway", type=int, default=50, help="batteries per Modbus port")
    p.add_argument("--poll", type=float, default=1.0, help="Modbus poll period (s)")
    p.add_argument(
        "--modbus-connections", type=int, default=4, help="TCP connections per Modbus gateway"
    )
    p.add_argument("--device-period", type=float, default=5.0, help="sim telemetry period (s)")
    p.add_argument("--concurrency", type=int, default=1000, help="setpoints in flight")
    p.add_argument(
        "--device-procs",
        type=int,
        default=default_device_procs(),
        help="processes the simulated park is split over (default: one per core, 2 to 8)",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="bound on every phase (s)")
    p.add_argument("--only", choices=("ingest", "rtt"), default=None)
    p.add_argument(
        "--profile",
        default=None,
        metavar="PATH",
        help="cProfile this process during each rtt round into PATH.roundN.pstats",
    )
    add_verbose(p)
    p.add_argument(
        "--role", choices=("main", "publisher", "devices"), default="main", help=argparse.SUPPRESS
    )
    p.add_argument("--root", default="bench", help=argparse.SUPPRESS)
    p.add_argument("--modbus-ports", default="", help=argparse.SUPPRESS)
    p.add_argument("--csms-url", default=None, help=argparse.SUPPRESS)
    p.add_argument("--shard", default="0/1", help=argparse.SUPPRESS)
    return p


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "machine": machine(),
        "note": "publisher / device simulators run in a separate process; broker, Redis, "
        "simulators and adapters share this machine's cores",
    }
    if args.only in (None, "ingest"):
        report["ingest"] = await bench_ingest(args)
        i = report["ingest"]
        ceiling = i["ceiling_msgs_per_s_median"]
        print(
            f"INGEST median: ours (adapter+redis) {i['adapter_msgs_per_s_median']:,.0f} msgs/s, "
            f"broker ceiling (mosquitto_pub -> mosquitto_sub) "
            + (f"{ceiling:,.0f} msgs/s" if ceiling else "not measured")
            + f", ratio {i['ratio']} (median of per-run ratios {i['ratio_per_run_median']})",
            flush=True,
        )
    if args.only in (None, "rtt"):
        report["rtt"] = await bench_rtt(args)
        r = report["rtt"]
        print(
            "RTT median: "
            + ", ".join(
                f"{p} p50 {r[f'{p}_p50_ms_median']} ms p95 {r[f'{p}_p95_ms_median']} ms"
                for p in ("mqtt", "modbus", "ocpp")
            )
            + f"; all confirmed in {r['wall_s_median']:.2f} s; CPU per round: adapters "
            f"{r['adapters_cpu_s_median']} s, {r['device_procs']} device processes "
            f"{r['devices_cpu_s_median']} s",
            flush=True,
        )
    return report


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (or one of its child roles)."""
    args = _parser().parse_args(argv)
    configure_logging(args.verbose)
    if args.role == "publisher":
        _publish(args.mqtt_host, args.mqtt_port, args.root, args.devices, args.messages, args.rate)
        return
    if args.role == "devices":
        asyncio.run(_devices(args))
        return
    print(
        f"{_MODULE} on {os.cpu_count()} cores: publisher and device simulators run in a "
        "separate process and share the cores with broker, Redis and adapters",
        flush=True,
    )
    report = asyncio.run(_main(args))
    write_report(report, args.out)


if __name__ == "__main__":
    main()
