"""End to end: a replica killed mid-event; its parks move and the event completes.

Two service replicas (`tests.e2e.replica_process`: what ``vpp serve`` runs, on
the compressed test clock) share one Redis namespace and four parks, each
park two Modbus batteries behind one simulated gateway and one MQTT process
load. The parks split 2/2. An event starts on a park; once its devices follow
the replica holding it, that replica is killed (SIGKILL: no give-back, its
leases just stop being renewed). The survivor takes the dead replica's parks
once their leases expire, continues the event from its stored state, and the
event completes.

From the devices' side: every battery notes the TCP peer of every command
(`adapters.sim.battery.BatteryModel.writers`); the test maps each peer port to
the replica process owning that socket (``/proc``, sampled while the replicas
run). Every battery was commanded by one replica at a time: its writers form
one unbroken run per replica, never interleaved; after the kill only the
survivor writes. The takeover time (kill to the survivor holding the park,
and kill to its first command to the park's batteries) is printed with the
lease TTL.

Chargers are left out: a charger's websocket lands on one replica, and a
setpoint decided on another reaches it only through the cross-replica
routing (tested where it is built).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.sim.battery import BatterySpec, ModbusBatteryServer
from adapters.sim.loads import LoadSpec, MqttLoadFleet
from tests.benchmarks.support import child_process
from tests.e2e.park_harness import (
    INTERVAL_MIN,
    LIVE_TTL_S,
    PERIOD_S,
    SCALE,
    TELEMETRY_S,
    RunningPark,
    SimPark,
    clock_origin,
    interval_table,
)
from tests.e2e.replica_process import replica_config
from tests.e2e.test_e2e_delivery import TOLERANCE, assert_delivered
from tests.support import eventually
from vpp.auth import Role
from vpp.client import ParkClient, issue_tokens
from vpp.clock import Clock
from vpp.servers import free_port, port_open
from vpp.settings import Settings
from vpp.state import State

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PARKS = tuple(f"rp-{i}" for i in range(4))
#: short, to keep the takeover quick: real seconds
LEASE_TTL_S = 3.0
HEARTBEAT_S = 0.5
INTERVALS = 3


@dataclass
class Replica:
    """One replica process and what the test knows of it."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Fleet:
    """The simulated devices of every park."""

    gateways: dict[str, ModbusBatteryServer] = field(default_factory=dict)
    loads: dict[str, MqttLoadFleet] = field(default_factory=dict)

    def ports(self) -> set[int]:
        return {g.port for g in self.gateways.values()}


# -- which process owns a socket ---------------------------------------------


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def _tcp_sockets() -> Iterator[tuple[int, int, str]]:
    """Every TCP socket of the host: (local port, remote port, inode)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as fh:
            next(fh)
            for line in fh:
                cols = line.split()
                local, remote, inode = cols[1], cols[2], cols[9]
                yield int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), inode


def client_ports(pids: dict[str, int], server_ports: set[int]) -> dict[int, str]:
    """Local port -> replica name, for each replica's connections to ``server_ports``."""
    owner = {inode: name for name, pid in pids.items() for inode in _socket_inodes(pid)}
    return {
        local: owner[inode]
        for local, remote, inode in _tcp_sockets()
        if remote in server_ports and inode in owner
    }


@contextlib.asynccontextmanager
async def port_owners(
    pids: dict[str, int], server_ports: set[int]
) -> AsyncIterator[dict[int, str]]:
    """A map of client port -> replica, sampled every 0.1 s while the block runs."""
    seen: dict[int, str] = {}

    async def sample() -> None:
        while True:
            seen.update(client_ports(pids, server_ports))  # a dead one's sockets are gone
            await asyncio.sleep(0.1)

    task = asyncio.create_task(sample(), name="port-owners")
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def writer_runs(fleet: Fleet, owners: dict[int, str]) -> dict[str, list[tuple[str, float]]]:
    """Per battery, its commands' writers as runs: [(replica, time of the run's first write)]."""
    runs: dict[str, list[tuple[str, float]]] = {}
    for gateway in fleet.gateways.values():
        for asset_id, model in gateway.models.items():
            out: list[tuple[str, float]] = []
            for ts, peer in model.writers:
                name = owners.get(peer[1], f"unknown:{peer}") if peer else "unknown"
                if not out or out[-1][0] != name:
                    out.append((name, ts))
            runs[asset_id] = out
    return runs


# -- the replicas ------------------------------------------------------------


async def readyz(http: aiohttp.ClientSession, replica: Replica) -> dict[str, Any]:
    async with http.get(f"{replica.base_url}/readyz") as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def held(http: aiohttp.ClientSession, replica: Replica) -> set[str]:
    """The parks the replica says it holds (``/readyz``); none when it does not answer."""
    try:
        body = await readyz(http, replica)
    except aiohttp.ClientError:
        return set()
    return set(body.get("components", {}).get("replicas", {}).get("held", []))


def payloads(park: str, port: int, root: str) -> list[dict[str, Any]]:
    common = {"owner": "Replica Test Works", "grid_node": "feeder-rp"}
    batteries = [
        {
            **common, "kind": "battery", "id": f"{park}-bess-{u}",
            "connection": {"protocol": "modbus", "host": "127.0.0.1", "port": port, "unit_id": u},
            "capacity_kwh": 200.0, "max_charge_kw": 60.0, "max_discharge_kw": 60.0,
            "soc_min": 0.1, "soc_max": 0.9, "charge_efficiency": 0.96,
            "discharge_efficiency": 0.96, "costs": {"up_per_kwh": 0.04, "down_per_kwh": 0.04},
        }
        for u in (1, 2)
    ]  # fmt: skip
    load = {
        **common, "kind": "flexible_load", "id": f"{park}-line",
        "connection": {"protocol": "mqtt", "topic_prefix": f"{root}/{park}/{park}-line"},
        "baseline_kw": 80.0, "max_shed_kw": 30.0, "max_shed_minutes": 120,
        "rebound_fraction": 0.5, "rebound_minutes": 30,
        "costs": {"up_per_kwh": 0.2, "down_per_kwh": 0.2},
    }  # fmt: skip
    return [load, *batteries]


@contextlib.asynccontextmanager
async def fleet_of(
    parks: tuple[str, ...], root: str, mqtt: tuple[str, int]
) -> AsyncIterator[Fleet]:
    fleet = Fleet()
    async with contextlib.AsyncExitStack() as stack:
        for park in parks:
            specs = [
                BatterySpec(asset_id=f"{park}-bess-{u}", unit_id=u, capacity_kwh=200.0,
                            max_charge_kw=60.0, max_discharge_kw=60.0, soc=0.6)
                for u in (1, 2)
            ]  # fmt: skip
            gateway = ModbusBatteryServer(port=free_port(), batteries=specs, time_scale=SCALE)
            fleet.gateways[park] = await stack.enter_async_context(gateway)
            load = LoadSpec(asset_id=f"{park}-line", kind="process", baseline_kw=80.0,
                            p_min_kw=50.0, p_max_kw=104.0, rebound_tau_s=1800.0)  # fmt: skip
            fleet.loads[park] = await stack.enter_async_context(MqttLoadFleet(
                host=mqtt[0], port=mqtt[1], park=park, loads=[load], root=root,
                node=f"rp-gw-{uuid.uuid4().hex[:6]}", period_s=TELEMETRY_S, time_scale=SCALE,
                backoff_base=0.05,
            ))  # fmt: skip
        yield fleet


async def test_killed_replicas_parks_move_and_the_event_completes(
    redis_client: Any,
    redis_url: str,
    namespace: str,
    mqtt_addr: tuple[str, int],
    topic_prefix: str,
    service_settings: Settings,
) -> None:
    # redis_client (tests/conftest.py) deletes this namespace's keys afterwards
    clock = Clock(time_scale=SCALE, origin=clock_origin())
    origin, origin_wall = clock.now(), time.time()
    common = {
        "redis.url": redis_url, "redis.namespace": namespace, "redis.live_ttl_s": LIVE_TTL_S,
        "mqtt.host": mqtt_addr[0], "mqtt.port": mqtt_addr[1], "mqtt.root": topic_prefix,
        "modbus.poll_interval_s": 0.25, "modbus.timeout_s": 1.0, "http.host": "127.0.0.1",
        "control.period_s": PERIOD_S, "control.interval_minutes": INTERVAL_MIN,
        "control.lease_ttl_s": LEASE_TTL_S, "replicas.heartbeat_s": HEARTBEAT_S,
    }  # fmt: skip
    async with contextlib.AsyncExitStack() as stack:
        state = State.from_url(redis_url, namespace=namespace)
        stack.push_async_callback(state.aclose)
        roles = (Role.PARK_OPERATOR, Role.GRID_OPERATOR, Role.VIEWER)
        tokens = {park: await issue_tokens(state, park, roles, name="rp") for park in PARKS}
        fleet = await stack.enter_async_context(fleet_of(PARKS, topic_prefix, mqtt_addr))
        replicas: list[Replica] = []
        for name in ("a", "b"):
            port = free_port()
            config = replica_config(
                {**common, "http.port": port, "ocpp.port": free_port(), "replicas.id": name},
                time_scale=SCALE, origin=origin, origin_wall=origin_wall,
            )  # fmt: skip
            proc = stack.enter_context(child_process("tests.e2e.replica_process", [config]))
            replicas.append(Replica(name, proc, port))
        await eventually(lambda: all(port_open("127.0.0.1", r.port) for r in replicas), within_s=30)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        owners = await stack.enter_async_context(
            port_owners({r.name: r.pid for r in replicas}, fleet.ports())
        )
        a, b = replicas
        clients = {
            park: await stack.enter_async_context(ParkClient(a.base_url, park, tokens[park]))
            for park in PARKS
        }
        for park in PARKS:
            for payload in payloads(park, fleet.gateways[park].port, topic_prefix):
                await clients[park].enroll_asset(payload)

        # the parks split 2/2, every one held by exactly one replica
        async def split() -> bool:
            ha, hb = await held(http, a), await held(http, b)
            return len(ha) == len(hb) == 2 and ha | hb == set(PARKS)

        await eventually(split, within_s=30, every_s=0.2)
        held_by = {r.name: await held(http, r) for r in replicas}
        print(f"\nsplit: {held_by}")

        async def all_live() -> bool:
            for park in PARKS:
                env = await clients[park].flexibility(intervals=4)
                if int(env["assets_included"]) != 3:
                    return False
            return True

        await eventually(all_live, within_s=40, every_s=0.5)

        # an event on a park of a; driven through b's API (a is about to die)
        park = sorted(held_by["a"])[0]
        grid = await stack.enter_async_context(ParkClient(b.base_url, park, tokens[park]))
        run = RunningPark(web.Application(), grid, clock, SimPark(), service_settings, state, [])
        body = await run.peak_event(intervals=INTERVALS)
        await grid.call("POST", "/events", json=body)
        start = datetime.fromisoformat(body["start"])
        step = timedelta(minutes=INTERVAL_MIN)
        await clock.sleep_until(start + step / 3)
        active = await grid.event(body["id"])
        assert active["state"] == "active"
        baseline_before = active["baseline_kw"]
        gateway = fleet.gateways[park]

        def written_by(name: str, since: float = 0.0) -> bool:
            return all(
                any(owners.get(p[1]) == name for ts, p in m.writers if p and ts >= since)
                for m in gateway.models.values()
            )

        await eventually(lambda: written_by("a"), within_s=10)

        # kill a mid-event: no give-back, its leases run out
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(5)
        killed_wall, killed = time.time(), time.monotonic()

        async def b_holds_all() -> bool:
            return await held(http, b) == set(PARKS)

        await eventually(b_holds_all, within_s=4 * LEASE_TTL_S + 10, every_s=0.1)
        held_after_s = time.monotonic() - killed
        await eventually(lambda: written_by("b", killed_wall), within_s=10, every_s=0.1)
        first_b = min(
            ts for m in gateway.models.values() for ts, p in m.writers
            if p and ts >= killed_wall and owners.get(p[1]) == "b"
        )  # fmt: skip
        print(
            f"takeover: b held every park {held_after_s:.2f} s after a was killed, and "
            f"commanded {park}'s batteries {first_b - killed_wall:.2f} s after "
            f"(lease TTL {LEASE_TTL_S} s, heartbeat {HEARTBEAT_S} s)"
        )

        end = start + INTERVALS * step
        record = await run.wait_state(
            body["id"], "completed", "failed", "cancelled",
            within_s=(end - clock.now()).total_seconds() / SCALE + 20,
        )  # fmt: skip
        print(interval_table(record))
        assert record["state"] == "completed", record
        # resumed from its stored baselines: every interval within the bound of every delivery
        # test (as the control cycles measure it: the seconds without a holder have no cycle)
        assert_delivered(record, range(INTERVALS))
        assert record["baseline_kw"] == pytest.approx(baseline_before)
        report = await grid.report(body["id"])
        print(f"report performance {report['performance']}")
        assert report["performance"] == pytest.approx(1.0, abs=TOLERANCE)

        # from the devices' side: one replica at a time, a before b, b alone after the kill
        runs = writer_runs(fleet, owners)
        print(f"writers: { {k: [n for n, _ in v] for k, v in runs.items()} }")
        for asset_id, writers in runs.items():
            names = [n for n, _ in writers]
            assert len(names) == len(set(names)), f"{asset_id} commanded interleaved: {writers}"
            assert set(names) <= {"a", "b"}, f"{asset_id}: unknown writer {writers}"
        for model in gateway.models.values():
            after = {owners.get(p[1]) for ts, p in model.writers if p and ts >= killed_wall}
            assert after == {"b"}, f"{model.spec.asset_id}: written after the kill by {after}"
            assert [n for n, _ in runs[model.spec.asset_id]] == ["a", "b"]
