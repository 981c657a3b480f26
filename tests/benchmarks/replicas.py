"""Replicas benchmark: ``python -m tests.benchmarks.replicas [--replicas 1,2,3] [--parks 10] ...``.

Several ``vpp serve`` processes share one Redis (a Redis Cluster of three
masters with a replica each, started here on loopback, unless ``--redis-url``
names a Redis) and one MQTT broker, and split a fleet of simulated parks
between them by lease (`vpp.replicas`). For each replica count it measures:

* **event → confirmed:** a peak-shaving event is posted to every park at once,
  each through a replica picked in turn (as a load balancer would); the time
  from each event's receipt to the answer of every setpoint of its first send
  is read from the ``vpp_event_dispatch_seconds`` histogram of the replica
  that runs the park (its sum moves by exactly that one observation). p50 and
  p95 over parks × runs;
* **telemetry:** readings accepted per second over all replicas
  (``vpp_adapter_messages_total``) against what the simulators offer;
* **takeover** (two replicas or more): the replica holding the most parks is
  killed (SIGKILL) while the events run; the time until every one of its
  parks is held by a live replica (read from the park leases in Redis),
  against the goal of twice the lease time.

How it runs: the simulated parks (``--devices`` each: 40 % Modbus/SunSpec
batteries on one gateway per park, 30 % OCPP chargers, 30 % MQTT loads) run in
``--device-procs`` separate processes (a charger whose setpoint is decided on
another replica than the one holding its websocket gets it through Redis).
Everything shares this machine's cores, so
the figures are a lower bound of what separate machines give; the ratios
between replica counts are what this run can say. The chargers connect
through HAProxy (TCP, round robin, as ``ops/cluster/haproxy.cfg`` does) when
``haproxy`` is installed (``./run test`` installs it), so most of them sit on
a replica that does not run their park and a dead replica's chargers
reconnect to a live one; without it each park's chargers connect to one
replica in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from adapters.ocpp.csms import PATH_PREFIX
from adapters.sim.park import SimParkSpec, generate_park, run_park
from tests.benchmarks.e2e import park_assets
from tests.benchmarks.support import (
    MQTT_HOST,
    MQTT_PORT,
    add_verbose,
    child_process,
    configure_logging,
    default_device_procs,
    free_ports,
    machine,
    percentile,
    run_until_sigterm,
    wait_listening,
    write_report,
)
from vpp.auth import Role
from vpp.client import ApiError, ParkClient, issue_tokens
from vpp.model import Park
from vpp.parkfile import with_charger_passwords
from vpp.servers import RedisClusterServer
from vpp.service import open_state
from vpp.settings import Settings
from vpp.state import State

__all__ = ["BenchOptions", "main", "run_bench"]

log = logging.getLogger("tests.benchmarks.replicas")

_MODULE = "tests.benchmarks.replicas"
#: Environment variable that hands the device plan (JSON) to a device process.
_PLAN_ENV = "VPP_BENCH_REPLICAS_PLAN"
#: The goal of issue 14: a dead replica's parks are held again within twice the lease time.
_TAKEOVER_GOAL_LEASES = 2.0


@dataclass
class BenchOptions:
    """What to run.

    Attributes:
        replicas: the replica counts to measure, one after another.
        parks: simulated parks.
        devices: devices per park (40 % batteries, 30 % chargers, 30 % loads).
        runs: events posted to every park per replica count.
        share: each event's target as a share of the park's live down flexibility.
        lease_ttl_s: the park lease time (``control.lease_ttl_s``).
        device_period_s: telemetry period of the simulated loads and chargers.
        device_procs: processes the simulated parks are spread over.
        redis_url: a Redis to use instead of a private cluster ("" = start a cluster).
        mqtt_host: the MQTT broker.
        mqtt_port: its port.
        ready_timeout_s: bound on the wait for leases and live telemetry.
        run_timeout_s: bound on one run's confirmations.
        window_s: the telemetry measurement window.
        out: where the JSON goes (None: nowhere).
        verbose: the children log at DEBUG.
    """

    replicas: Sequence[int] = (1, 2, 3)
    parks: int = 10
    devices: int = 200
    runs: int = 3
    share: float = 0.5
    lease_ttl_s: float = 15.0
    device_period_s: float = 1.0
    device_procs: int = field(default_factory=default_device_procs)
    redis_url: str = ""
    mqtt_host: str = MQTT_HOST
    mqtt_port: int = MQTT_PORT
    ready_timeout_s: float = 180.0
    run_timeout_s: float = 60.0
    window_s: float = 10.0
    out: str | None = "bench-replicas.json"
    verbose: bool = False


# ------------------------------------------------------------- the fleet --


@dataclass(frozen=True)
class _ParkPlan:
    """One simulated park: its id, its Modbus gateway port, its chargers' OCPP listener."""

    park: str
    modbus_port: int
    csms_url: str


def _split(devices: int) -> tuple[int, int, int]:
    batteries = max(1, round(devices * 0.4))
    chargers = max(1, round(devices * 0.3))
    return batteries, chargers, max(1, devices - batteries - chargers)


def _spec(plan: _ParkPlan, devices: int) -> SimParkSpec:
    """The park's simulators; charge point ids carry the park (they are unique service-wide)."""
    batteries, chargers, loads = _split(devices)
    spec = generate_park(
        park_id=plan.park, batteries=batteries, chargers=chargers, loads=loads,
        modbus_ports=[plan.modbus_port],
    )  # fmt: skip
    spec.chargers = [replace(c, cp_id=f"{plan.park}-{c.cp_id}") for c in spec.chargers]
    return spec


async def _devices(ns: argparse.Namespace) -> None:
    """A device process: its parks' simulators on one event loop until SIGTERM."""
    plan = json.loads(os.environ[_PLAN_ENV])
    secret = plan["secret"]
    parks = [_ParkPlan(**p) for p in plan["parks"]]

    async def one(p: _ParkPlan) -> None:
        spec = with_charger_passwords(_spec(p, plan["devices"]), secret)
        await run_park(
            spec, mqtt_host=plan["mqtt_host"], mqtt_port=plan["mqtt_port"],
            mqtt_root=plan["root"], csms_url=p.csms_url, loads_per_gateway=100,
            period_s=plan["period_s"],
        )  # fmt: skip

    async def every() -> None:
        async with asyncio.TaskGroup() as group:
            for p in parks:
                group.create_task(one(p), name=f"bench-replicas-{p.park}")

    await run_until_sigterm(every(), name="bench-replicas-devices")


# -------------------------------------------------------------- replicas --


@dataclass
class _Replica:
    """One ``vpp serve`` child: its id, ports and process."""

    id: str
    http_port: int
    ocpp_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _replica_env(rep: _Replica, common: Mapping[str, str], state_dir: str) -> dict[str, str]:
    return {
        **common,
        "VPP_REPLICAS_ID": rep.id,
        "VPP_HTTP_HOST": "127.0.0.1",
        "VPP_HTTP_PORT": str(rep.http_port),
        "VPP_OCPP_HOST": "127.0.0.1",
        "VPP_OCPP_PORT": str(rep.ocpp_port),
        "VPP_MQTT_CLIENT_ID": f"vpp-{rep.id}",
        "VPP_STATE_DIR": state_dir,
    }


@contextlib.contextmanager
def _replica_processes(
    replicas: Sequence[_Replica], common: Mapping[str, str], base: str
) -> Iterator[None]:
    """Run one ``python -m vpp serve`` per replica until the block ends (SIGTERM, then kill)."""
    with contextlib.ExitStack() as stack:
        for rep in replicas:
            state_dir = os.path.join(base, rep.id)
            os.makedirs(state_dir, exist_ok=True)
            rep.proc = stack.enter_context(
                child_process("vpp", ["serve"], env=_replica_env(rep, common, state_dir))
            )
        yield


def _haproxy() -> str | None:
    return shutil.which("haproxy", path=f"{os.environ.get('PATH', '')}:/usr/sbin")


@contextlib.contextmanager
def _ocpp_balancer(port: int, replicas: Sequence[_Replica], base: str) -> Iterator[None]:
    """HAProxy on ``port`` spreading the chargers' websockets over the replicas' OCPP listeners.

    As ``ops/cluster/haproxy.cfg`` does in front of real replicas (TCP mode
    here, round robin, a dead replica taken out by its failed checks), so a
    charger whose replica dies reconnects to a live one.
    """
    exe = _haproxy()
    assert exe is not None
    servers = "\n".join(
        f"    server {r.id} 127.0.0.1:{r.ocpp_port} check inter 500ms fall 1 rise 1"
        for r in replicas
    )
    config = Path(base) / "haproxy.cfg"
    config.write_text(
        "global\n    maxconn 8000\n"
        "defaults\n    mode tcp\n    timeout connect 2s\n"
        "    timeout client 1h\n    timeout server 1h\n"
        f"frontend ocpp\n    bind 127.0.0.1:{port}\n    default_backend replicas\n"
        f"backend replicas\n    balance roundrobin\n{servers}\n"
    )
    quiet = subprocess.DEVNULL  # it says "no server available" until the replicas listen
    proc = subprocess.Popen([exe, "-db", "-f", str(config)], stdout=quiet, stderr=quiet)
    try:
        if proc.poll() is None:
            time.sleep(0.5)  # a configuration it refuses ends it at once
        if proc.poll() is not None:
            raise RuntimeError(f"haproxy exited with {proc.returncode} on {config}")
        yield
    finally:
        proc.terminate()
        proc.wait(10)


async def _scrape(session: aiohttp.ClientSession, rep: _Replica) -> dict[tuple[str, str], float]:
    """(sample name, park) -> value summed over the other labels, from a replica's /metrics."""
    wanted = {
        "vpp_event_dispatch_seconds_count",
        "vpp_event_dispatch_seconds_sum",
        "vpp_adapter_messages_total",
    }
    async with session.get(f"{rep.base_url}/metrics") as resp:
        text = await resp.text()
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                key = (sample.name, sample.labels.get("park", ""))
                out[key] = out.get(key, 0.0) + float(sample.value)
    return out


async def _scrape_all(
    session: aiohttp.ClientSession, replicas: Sequence[_Replica]
) -> dict[tuple[str, str], float]:
    total: dict[tuple[str, str], float] = {}
    for rep in replicas:
        if not rep.alive:
            continue
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            for key, value in (await _scrape(session, rep)).items():
                total[key] = total.get(key, 0.0) + value
    return total


async def _holders(state: State, parks: Sequence[str]) -> dict[str, str | None]:
    """Park -> the replica id holding its lease (None: nobody)."""
    out: dict[str, str | None] = {}
    for park in parks:
        value = await state.redis.get(state.park(park).control_lease)
        out[park] = value.decode() if isinstance(value, bytes) else value
    return out


async def _wait_spread(
    state: State, parks: Sequence[str], replicas: Sequence[_Replica], limit_s: float
) -> dict[str, str | None]:
    """Wait until every park is held by a live replica, the counts within one of each other."""
    live = {r.id for r in replicas if r.alive}
    deadline = time.monotonic() + limit_s
    holders: dict[str, str | None] = {}
    while time.monotonic() < deadline:
        holders = await _holders(state, parks)
        counts = [sum(1 for h in holders.values() if h == rid) for rid in live]
        if all(h in live for h in holders.values()) and max(counts) - min(counts) <= 1:
            return holders
        await asyncio.sleep(0.25)
    raise TimeoutError(f"parks not spread over {sorted(live)} after {limit_s} s: {holders}")


async def _wait_live(state: State, park: str, ids: Sequence[str], need: int, limit_s: float) -> int:
    keys = state.park(park)
    deadline = time.monotonic() + limit_s
    have = 0
    while time.monotonic() < deadline:
        have = 0
        for i in ids:  # one key per command: the keys are one park's, but keep it plain
            have += int(await state.redis.exists(keys.live(i)))
        if have >= need:
            return have
        await asyncio.sleep(1.0)
    raise TimeoutError(f"park {park}: only {have} of {len(ids)} live after {limit_s} s")


# -------------------------------------------------------------- the runs --


async def _post_all(
    clients: Mapping[str, ParkClient], share: float, tag: str
) -> tuple[dict[str, str], dict[str, float]]:
    """POST one event to every park at once; park -> event id, park -> 202 time (s)."""

    async def one(park: str, client: ParkClient) -> tuple[str, str, float]:
        env = await client.flexibility(intervals=1)
        down = float(env["down_kw"][0])
        event_id = f"rep-{tag}-{uuid.uuid4().hex[:6]}"
        body = {
            "id": event_id, "kind": "peak_shaving",
            "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "target_kw": round(share * down, 1), "duration_minutes": 15,
        }  # fmt: skip
        t0 = time.perf_counter()
        await client.post_event(body)
        return park, event_id, time.perf_counter() - t0

    done = await asyncio.gather(*(one(p, c) for p, c in clients.items()))
    return {p: e for p, e, _ in done}, {p: t for p, _, t in done}


async def _dispatch_times(
    session: aiohttp.ClientSession,
    replicas: Sequence[_Replica],
    parks: Sequence[str],
    before: Mapping[tuple[str, str], float],
    limit_s: float,
) -> dict[str, float]:
    """Park -> its event's dispatch time (s), once each park's histogram moved by one."""
    deadline = time.monotonic() + limit_s
    got: dict[str, float] = {}
    while time.monotonic() < deadline and len(got) < len(parks):
        now = await _scrape_all(session, replicas)
        for park in parks:
            count = ("vpp_event_dispatch_seconds_count", park)
            total = ("vpp_event_dispatch_seconds_sum", park)
            moved = now.get(count, 0.0) - before.get(count, 0.0)
            if park not in got and moved >= 1:
                got[park] = (now.get(total, 0.0) - before.get(total, 0.0)) / moved
        await asyncio.sleep(0.2)
    return got


async def _cancel_all(
    clients: Sequence[Mapping[str, ParkClient]], events: Mapping[str, str]
) -> None:
    """Cancel each park's event through the first of ``clients`` whose replica answers."""
    for park, event_id in events.items():
        for at, pool in enumerate(clients):
            try:
                await pool[park].cancel_event(event_id)
                break
            except (ApiError, aiohttp.ClientError) as exc:
                if at == len(clients) - 1:
                    log.warning("cancel of %s/%s: %s", park, event_id, exc)


def _messages(sample: Mapping[tuple[str, str], float]) -> float:
    return sum(v for (name, _), v in sample.items() if name == "vpp_adapter_messages_total")


async def _one_count(
    n: int, opts: BenchOptions, state: State, url: str, common: Mapping[str, str]
) -> dict[str, Any]:
    """Everything measured with ``n`` replicas on a fresh namespace and fleet."""
    tag = uuid.uuid4().hex[:6]
    namespace = f"vppbench-rep-{tag}"
    root = namespace
    parks = [f"p{i:02d}-{tag}" for i in range(opts.parks)]
    ports = free_ports(2 * n + opts.parks + 1)
    replicas = [
        _Replica(id=f"r{i}-{tag}", http_port=ports[2 * i], ocpp_port=ports[2 * i + 1])
        for i in range(n)
    ]
    balancer = ports[-1] if _haproxy() is not None else None
    # through the balancer; without one, each park's chargers on one replica in turn
    plans = [
        _ParkPlan(
            park=p,
            modbus_port=ports[2 * n + k],
            csms_url=f"ws://127.0.0.1:{balancer or replicas[k % n].ocpp_port}{PATH_PREFIX}",
        )
        for k, p in enumerate(parks)
    ]
    result: dict[str, Any] = {
        "replicas": n,
        "namespace": namespace,
        "ocpp_balancer": "haproxy, round robin" if balancer else "none: one replica per park",
    }
    secret = secrets.token_hex(16)
    env = {
        **common,
        "VPP_REDIS_NAMESPACE": namespace,
        "VPP_MQTT_ROOT": root,
        "VPP_OCPP_AUTH_SECRET": secret,
    }
    scoped = State(state.redis, namespace=namespace)
    ids: dict[str, list[str]] = {}
    for plan in plans:
        await scoped.put_park(Park(id=plan.park, name=f"bench {plan.park}", timezone="UTC"))
        assets = park_assets(_spec(plan, opts.devices), root)
        ids[plan.park] = [a.id for a in assets]
        for asset in assets:
            await scoped.enroll(plan.park, asset)
    tokens = {p: await issue_tokens(scoped, p, [Role.GRID_OPERATOR], name="bench") for p in parks}
    procs = max(1, min(opts.device_procs, len(plans)))
    with tempfile.TemporaryDirectory(prefix="vpp-bench-replicas-") as base:
        device_env = {
            _PLAN_ENV: json.dumps({
                "secret": secret, "devices": opts.devices, "root": root,
                "mqtt_host": opts.mqtt_host, "mqtt_port": opts.mqtt_port,
                "period_s": opts.device_period_s,
                "parks": [],
            })
        }  # fmt: skip
        with contextlib.ExitStack() as stack:
            children = []
            for k in range(procs):
                mine = [p.__dict__ for p in plans[k::procs]]
                plan_k = {**json.loads(device_env[_PLAN_ENV]), "parks": mine}
                children.append(
                    stack.enter_context(
                        child_process(_MODULE, ["--role", "devices"],
                                      env={_PLAN_ENV: json.dumps(plan_k)})
                    )
                )  # fmt: skip
            for k, child in enumerate(children):
                listen = [p.modbus_port for p in plans[k::procs]]
                await wait_listening(listen, child=child, timeout_s=opts.ready_timeout_s)
            stack.enter_context(_replica_processes(replicas, env, base))
            if balancer is not None:
                stack.enter_context(_ocpp_balancer(balancer, replicas, base))
            for rep in replicas:
                assert rep.proc is not None
                await wait_listening([rep.http_port], child=rep.proc, timeout_s=60)
            began = time.perf_counter()
            holders = await _wait_spread(scoped, parks, replicas, opts.ready_timeout_s)
            result["spread_s"] = round(time.perf_counter() - began, 1)
            result["parks_per_replica"] = {
                r.id: sum(1 for h in holders.values() if h == r.id) for r in replicas
            }
            live = 0
            for park in parks:
                need = int(len(ids[park]) * 0.95)
                live += await _wait_live(scoped, park, ids[park], need, opts.ready_timeout_s)
            result["ready_s"] = round(time.perf_counter() - began, 1)
            result["live_at_start"] = live
            print(f"{n} replica(s): parks {result['parks_per_replica']}, {live} devices live "
                  f"after {result['ready_s']} s", flush=True)  # fmt: skip
            async with contextlib.AsyncExitStack() as clients_stack:
                session = await clients_stack.enter_async_context(aiohttp.ClientSession())
                clients = {
                    p: await clients_stack.enter_async_context(
                        ParkClient(replicas[k % n].base_url, p, tokens[p])
                    )
                    for k, p in enumerate(parks)
                }
                # the same parks through the next replica: a cancel after a kill goes there
                spare = {
                    p: await clients_stack.enter_async_context(
                        ParkClient(replicas[(k + 1) % n].base_url, p, tokens[p])
                    )
                    for k, p in enumerate(parks)
                }
                # telemetry accepted over a window, every replica together
                first = _messages(await _scrape_all(session, replicas))
                t_first = time.perf_counter()
                await asyncio.sleep(opts.window_s)
                last = _messages(await _scrape_all(session, replicas))
                rate = (last - first) / (time.perf_counter() - t_first)
                batteries, chargers, loads = _split(opts.devices)
                offered = opts.parks * ((chargers + loads) / opts.device_period_s + batteries / 5)
                result["telemetry_per_s"] = round(rate, 1)
                result["telemetry_offered_per_s"] = round(offered, 1)
                dispatch: list[float] = []
                acks: list[float] = []
                confirmed_parks = 0
                for run in range(opts.runs):
                    before = await _scrape_all(session, replicas)
                    events, ack = await _post_all(clients, opts.share, f"{tag}-{run}")
                    acks.extend(ack.values())
                    times = await _dispatch_times(
                        session, replicas, parks, before, opts.run_timeout_s
                    )
                    dispatch.extend(times.values())
                    confirmed_parks += len(times)
                    worst = max(times.values(), default=float("nan"))
                    print(f"  run {run + 1}: {len(times)}/{len(parks)} parks dispatched, "
                          f"max {worst:.2f} s", flush=True)  # fmt: skip
                    last_run = run == opts.runs - 1
                    if last_run and n >= 2:
                        result["takeover"] = await _takeover(
                            scoped, parks, replicas, opts.lease_ttl_s, opts.ready_timeout_s
                        )
                    await _cancel_all([clients, spare], events)
                    await asyncio.sleep(3.0)
                result["dispatch_s"] = {
                    "n": len(dispatch),
                    "p50": round(statistics.median(dispatch), 3) if dispatch else None,
                    "p95": round(p95, 3) if (p95 := percentile(dispatch, 95)) is not None else None,
                    "max": round(max(dispatch), 3) if dispatch else None,
                }
                result["ack_s_p50"] = round(statistics.median(acks), 3) if acks else None
                result["parks_dispatched"] = f"{confirmed_parks}/{len(parks) * opts.runs}"
    with contextlib.suppress(Exception):
        keys = [k async for k in state.redis.scan_iter(match=f"{namespace}:*", count=1000)]
        for key in keys:
            await state.redis.delete(key)
    return result


async def _takeover(
    state: State,
    parks: Sequence[str],
    replicas: Sequence[_Replica],
    lease_ttl_s: float,
    limit_s: float,
) -> dict[str, Any]:
    """Kill the replica holding the most parks mid-event; time until its parks are held again."""
    holders = await _holders(state, parks)
    victim = max(
        (r for r in replicas if r.alive), key=lambda r: sum(h == r.id for h in holders.values())
    )
    lost = [p for p, h in holders.items() if h == victim.id]
    assert victim.proc is not None
    victim.proc.send_signal(signal.SIGKILL)
    killed = time.perf_counter()
    victim.proc.wait(10)
    survivors = {r.id for r in replicas if r.alive}
    taken: dict[str, float] = {}
    while len(taken) < len(lost) and time.perf_counter() - killed < limit_s:
        now = await _holders(state, lost)
        for park, holder in now.items():
            if park not in taken and holder in survivors:
                taken[park] = time.perf_counter() - killed
        await asyncio.sleep(0.05)
    worst = max(taken.values(), default=None)
    out = {
        "killed": victim.id,
        "parks": len(lost),
        "taken_over": len(taken),
        "takeover_s_max": None if worst is None else round(worst, 2),
        "takeover_s_p50": round(statistics.median(taken.values()), 2) if taken else None,
        "lease_ttl_s": lease_ttl_s,
        "goal_s": _TAKEOVER_GOAL_LEASES * lease_ttl_s,
        "goal_met": worst is not None
        and len(taken) == len(lost)
        and worst <= _TAKEOVER_GOAL_LEASES * lease_ttl_s,
    }
    print(f"  killed {victim.id} holding {len(lost)} parks: all held again after "
          f"{out['takeover_s_max']} s (goal ≤ {out['goal_s']} s)", flush=True)  # fmt: skip
    return out


async def run_bench(opts: BenchOptions) -> dict[str, Any]:
    """Run every replica count; returns the report (also printed)."""
    report: dict[str, Any] = {"machine": machine(), "options": {
        "parks": opts.parks, "devices": opts.devices, "runs": opts.runs,
        "lease_ttl_s": opts.lease_ttl_s, "device_period_s": opts.device_period_s,
        "device_procs": opts.device_procs,
    }}  # fmt: skip
    with contextlib.ExitStack() as stack:
        url = opts.redis_url
        if not url:
            base = stack.enter_context(tempfile.TemporaryDirectory(prefix="vpp-bench-cluster-"))
            cluster = stack.enter_context(RedisClusterServer(data_dir=Path(base)))
            url = cluster.url
            report["redis"] = f"private cluster, {cluster.masters} masters with a replica each"
        else:
            report["redis"] = url
        settings = Settings()
        settings.redis.url = url
        state = open_state(settings, url)
        common = {
            "VPP_REDIS_URL": url,
            "VPP_MQTT_HOST": opts.mqtt_host,
            "VPP_MQTT_PORT": str(opts.mqtt_port),
            "VPP_CONTROL_LEASE_TTL_S": str(opts.lease_ttl_s),
            # a dead replica stops counting after 3 heartbeats: well inside the lease
            "VPP_REPLICAS_HEARTBEAT_S": str(min(2.0, opts.lease_ttl_s / 5)),
            "VPP_LOG_LEVEL": "DEBUG" if opts.verbose else "WARNING",
        }
        rows = []
        try:
            for n in opts.replicas:
                rows.append(await _one_count(n, opts, state, url, common))
        finally:
            await state.aclose()
    report["counts"] = rows
    print(_table(rows, opts), flush=True)
    return report


def _table(rows: Sequence[Mapping[str, Any]], opts: BenchOptions) -> str:
    lines = [
        f"{opts.parks} parks × {opts.devices} devices; lease {opts.lease_ttl_s} s",
        "replicas  parks/replica   event→confirmed p50/p95 s   telemetry/s (offered)"
        "   takeover s (goal)",
    ]
    for r in rows:
        d = r["dispatch_s"]
        t = r.get("takeover")
        take = "-" if t is None else f"{t['takeover_s_max']} ({t['goal_s']}, {t['parks']} parks)"
        spread = "/".join(str(v) for v in r["parks_per_replica"].values())
        lines.append(
            f"{r['replicas']:>8}  {spread:>13}   {d['p50']}/{d['p95']:<22}"
            f"  {r['telemetry_per_s']:>9} ({r['telemetry_offered_per_s']})   {take}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------ main --


def _counts(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text}: replica counts of at least 1, comma-separated")
    return values


def _parser() -> argparse.ArgumentParser:
    d = BenchOptions()
    p = argparse.ArgumentParser(
        prog=f"python -m {_MODULE}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--replicas", type=_counts, default=list(d.replicas), help="e.g. 1,2,3")
    p.add_argument("--parks", type=int, default=d.parks)
    p.add_argument("--devices", type=int, default=d.devices, help="per park")
    p.add_argument("--runs", type=int, default=d.runs, help="events per park per count")
    p.add_argument("--share", type=float, default=d.share)
    p.add_argument("--lease-ttl", type=float, default=d.lease_ttl_s, help="control.lease_ttl_s")
    p.add_argument("--device-period", type=float, default=d.device_period_s)
    p.add_argument("--device-procs", type=int, default=d.device_procs)
    p.add_argument("--redis-url", default=d.redis_url, help="empty: start a private cluster")
    p.add_argument("--mqtt-host", default=d.mqtt_host)
    p.add_argument("--mqtt-port", type=int, default=d.mqtt_port)
    p.add_argument("--window", type=float, default=d.window_s, help="telemetry window (s)")
    p.add_argument("--out", default=d.out)
    add_verbose(p)
    p.add_argument("--role", choices=("main", "devices"), default="main", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (or a device process)."""
    ns = _parser().parse_args(argv)
    configure_logging(ns.verbose)
    if ns.role == "devices":
        asyncio.run(_devices(ns))
        return
    opts = BenchOptions(
        replicas=ns.replicas, parks=ns.parks, devices=ns.devices, runs=ns.runs, share=ns.share,
        lease_ttl_s=ns.lease_ttl, device_period_s=ns.device_period,
        device_procs=ns.device_procs, redis_url=ns.redis_url, mqtt_host=ns.mqtt_host,
        mqtt_port=ns.mqtt_port, window_s=ns.window, out=ns.out, verbose=ns.verbose,
    )  # fmt: skip
    report = asyncio.run(run_bench(opts))
    if opts.out:
        write_report(report, opts.out)


if __name__ == "__main__":
    main()
