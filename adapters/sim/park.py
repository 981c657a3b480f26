"""A whole simulated park: batteries on Modbus, chargers on OCPP, loads on MQTT, meters on either.

:func:`park_spec` turns a park file that was already read and validated (by
``vpp.parkfile``, the one reader of park files and the one place their
defaults are applied) into a :class:`SimParkSpec`: it takes the fields it
simulates by name, applies no default of its own, and skips kinds it does not
simulate (``pv`` for now, and a meter without a connection: it is filled by
import only). :func:`generate_park` builds a park of any size;
:func:`run_park` starts every device and runs until cancelled.
:func:`shard_park` splits a park into shards that run in separate processes
(each its own :func:`run_park`), so that one event loop of simulators is not
what a benchmark measures.

A simulated meter reads its enterprise: every simulated device of the same
owner plus a base load no asset is enrolled for (:mod:`adapters.sim.meters`).
The park file says nothing of that base load; the simulator takes it as the
sum of the enterprise's flexible loads' baselines, at least
:data:`MIN_BASE_LOAD_KW` (an enterprise draws about as much again as the
loads it enrolled).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from adapters.ocpp.profiles import V21, V201
from adapters.sim._clock import SimClock
from adapters.sim.battery import BatterySpec, ModbusBatteryServer
from adapters.sim.chargers import ChargerSpec, SimCharger
from adapters.sim.loads import LoadSpec, MqttLoadFleet
from adapters.sim.meters import Drawing, MeterModel, MeterSpec
from adapters.sim.profiles import DayType, weekday_type
from adapters.sunspec import PowerSign

__all__ = [
    "DEFAULT_PASSWORD",
    "MAX_UNITS_PER_ENDPOINT",
    "MIN_BASE_LOAD_KW",
    "SimBattery",
    "SimMeter",
    "SimParkSpec",
    "generate_park",
    "park_spec",
    "run_park",
    "shard_park",
]

#: Most unit ids one Modbus TCP endpoint can address (1..247).
MAX_UNITS_PER_ENDPOINT = 247
#: The chargers' basic-auth password when none is given (a CSMS that checks
#: passwords, as the service's does, needs each charger's own).
DEFAULT_PASSWORD = "changeme"
#: A flexible load can run this far above its baseline (its simulated top).
_LOAD_HEADROOM = 1.3
#: The least base load (kW) a simulated meter sees beside its enterprise's devices.
MIN_BASE_LOAD_KW = 50.0

log = logging.getLogger("adapters.sim.park")


@dataclass(frozen=True, slots=True)
class SimBattery:
    """A battery and the Modbus endpoint that serves it."""

    host: str
    port: int
    spec: BatterySpec


@dataclass(frozen=True, slots=True)
class SimMeter:
    """A meter, how it is read, and the simulated devices behind it.

    Attributes:
        spec: the meter.
        members: the devices it measures: battery and load asset ids, charger
            charge point ids (those not simulated are left out when it runs).
        protocol: read over Modbus TCP (SunSpec 203) or MQTT.
        host: its Modbus endpoint (Modbus only).
        port: its Modbus port (Modbus only).
    """

    spec: MeterSpec
    members: tuple[str, ...]
    protocol: Literal["modbus", "mqtt"]
    host: str = ""
    port: int = 0


@dataclass(slots=True)
class SimParkSpec:
    """Everything a simulated park runs.

    Attributes:
        park_id: the park id (MQTT topic level).
        batteries: batteries with their Modbus endpoints.
        chargers: charge points (they connect to the CSMS URL given to ``run_park``).
        loads: flexible loads (served by MQTT gateways).
        meters: meters (a Modbus one on its endpoint's gateway, MQTT ones on a gateway
            of their own).
        shard: which of ``shards`` parts of a park this is (:func:`shard_park`).
        shards: how many parts the park was split into (1: the whole park).
    """

    park_id: str
    batteries: list[SimBattery] = field(default_factory=list)
    chargers: list[ChargerSpec] = field(default_factory=list)
    loads: list[LoadSpec] = field(default_factory=list)
    meters: list[SimMeter] = field(default_factory=list)
    shard: int = 0
    shards: int = 1

    @property
    def modbus_ports(self) -> list[int]:
        """The Modbus ports this park (or shard) listens on, ascending."""
        ports = {b.port for b in self.batteries}
        ports.update(m.port for m in self.meters if m.protocol == "modbus")
        return sorted(ports)

    def node(self, name: str) -> str:
        """An MQTT gateway's node name, unique across the shards of one park."""
        return name if self.shards == 1 else f"sim-s{self.shard}-{name.removeprefix('sim-')}"


def shard_park(spec: SimParkSpec, count: int) -> list[SimParkSpec]:
    """Split a park into ``count`` shards, each to run in a process of its own.

    Every kind is spread evenly: a Modbus endpoint stays whole (its batteries
    and Modbus meters share one listener) and goes to the shard with the
    fewest batteries so far; chargers and loads are cut into ``count``
    contiguous runs. An MQTT meter goes to the shard holding most of its
    members; a meter reads only the members simulated in its own shard (a
    park whose meters matter runs unsharded, as ``vpp simulate`` does).
    Deterministic: every process that calls it with the same park gets the
    same shards, so a child can rebuild its own from the same arguments.

    Args:
        spec: the whole park (``shards == 1``).
        count: shards wanted (>= 1); some may be empty for a tiny park.

    Raises:
        ValueError: ``count`` < 1, or ``spec`` is already a shard.
    """
    if count < 1:
        raise ValueError(f"shard count must be >= 1, got {count}")
    if spec.shards != 1:
        raise ValueError("a shard cannot be split again")
    parts = [SimParkSpec(park_id=spec.park_id, shard=i, shards=count) for i in range(count)]
    by_endpoint: dict[tuple[str, int], list[SimBattery]] = defaultdict(list)
    for battery in spec.batteries:
        by_endpoint[(battery.host, battery.port)].append(battery)
    for meter in spec.meters:
        if meter.protocol == "modbus":
            by_endpoint.setdefault((meter.host, meter.port), [])
    home: dict[tuple[str, int], int] = {}
    for endpoint, batteries in by_endpoint.items():
        lightest = min(range(count), key=lambda i: (len(parts[i].batteries), i))
        home[endpoint] = lightest
        parts[lightest].batteries.extend(batteries)

    def runs(n: int) -> list[range]:
        step, extra = divmod(n, count)
        starts = [i * step + min(i, extra) for i in range(count + 1)]
        return [range(starts[i], starts[i + 1]) for i in range(count)]

    for part, cut in zip(parts, runs(len(spec.chargers)), strict=True):
        part.chargers.extend(spec.chargers[cut.start : cut.stop])
    for part, cut in zip(parts, runs(len(spec.loads)), strict=True):
        part.loads.extend(spec.loads[cut.start : cut.stop])
    where: dict[str, int] = {}
    for part in parts:
        where.update((b.spec.asset_id, part.shard) for b in part.batteries)
        where.update((c.cp_id, part.shard) for c in part.chargers)
        where.update((ld.asset_id, part.shard) for ld in part.loads)
    for meter in spec.meters:
        if meter.protocol == "modbus":
            parts[home[(meter.host, meter.port)]].meters.append(meter)
            continue
        votes = [sum(where.get(m) == i for m in meter.members) for i in range(count)]
        parts[max(range(count), key=lambda i: (votes[i], -i))].meters.append(meter)
    return parts


def park_spec(data: Mapping[str, Any], *, password: str = DEFAULT_PASSWORD) -> SimParkSpec:
    """The simulated devices of a park file (``{"park": {...}, "assets": [...]}``).

    Every field it reads must be there (``vpp.parkfile`` fills in the
    defaults when it validates the file); what only a simulator has (a
    battery's initial SoC, the EVs that visit a charger) is the simulator's own.
    A battery runs on the Modbus endpoint of its connection, a charger logs in
    as its charge point id, a load publishes under its asset id.

    Args:
        data: the park file, read and validated.
        password: every charger's basic-auth password (replace them one by one
            for a CSMS that gives each charger its own).

    Raises:
        KeyError: a field the simulators need is missing.
    """
    spec = SimParkSpec(park_id=str(data["park"]["id"]))
    #: per owner: the device ids, their largest draw, the loads' baselines (kW)
    members: dict[str, list[str]] = defaultdict(list)
    top_kw: dict[str, float] = defaultdict(float)
    loads_kw: dict[str, float] = defaultdict(float)
    meters: list[Mapping[str, Any]] = []
    for asset in data["assets"]:
        kind, asset_id, conn = asset["kind"], str(asset["id"]), asset.get("connection")
        owner = str(asset["owner"])
        if kind == "battery":
            members[owner].append(asset_id)
            top_kw[owner] += float(asset["max_charge_kw"])
            spec.batteries.append(SimBattery(
                str(conn["host"]), int(conn["port"]),
                BatterySpec(
                    asset_id=asset_id, unit_id=int(conn["unit_id"]),
                    capacity_kwh=float(asset["capacity_kwh"]),
                    max_charge_kw=float(asset["max_charge_kw"]),
                    max_discharge_kw=float(asset["max_discharge_kw"]),
                ),
            ))  # fmt: skip
        elif kind == "ev_charger":
            members[owner].append(str(conn["charge_point_id"]))
            top_kw[owner] += float(asset["max_charge_kw"])
            v2g = bool(asset["v2g"])
            spec.chargers.append(ChargerSpec(
                cp_id=str(conn["charge_point_id"]), password=password,
                version=V21 if v2g else V201, max_kw=float(asset["max_charge_kw"]), v2g=v2g,
            ))  # fmt: skip
        elif kind == "flexible_load":
            base = float(asset["baseline_kw"])
            members[owner].append(asset_id)
            top_kw[owner] += base * _LOAD_HEADROOM
            loads_kw[owner] += base
            # no rebound time stated (0): the simulator's own time constant
            rebound: dict[str, Any] = (
                {"rebound_tau_s": 60.0 * m} if (m := float(asset["rebound_minutes"])) else {}
            )
            spec.loads.append(LoadSpec(
                asset_id=asset_id, kind="hvac" if "chiller" in asset_id or "hvac" in asset_id
                else "process", baseline_kw=base,
                p_min_kw=max(0.0, base - float(asset["max_shed_kw"])),
                p_max_kw=base * _LOAD_HEADROOM, **rebound,
            ))  # fmt: skip
        elif kind == "meter" and conn is not None:
            meters.append(asset)
        else:
            log.info("not simulating %s asset %s", kind, asset_id)
    for asset in meters:
        owner, conn = str(asset["owner"]), asset["connection"]
        base = max(loads_kw[owner], MIN_BASE_LOAD_KW)
        modbus = conn["protocol"] == "modbus"
        meter = MeterSpec(
            asset_id=str(asset["id"]), base_load_kw=base,
            multiplier=float(asset["multiplier"]), rated_kw=2.0 * (base + top_kw[owner]),
            unit_id=int(conn["unit_id"]) if modbus else 1,
            power_sign=PowerSign(conn["power_sign"]) if modbus else PowerSign.CHARGE_POSITIVE,
        )  # fmt: skip
        where = (str(conn["host"]), int(conn["port"])) if modbus else ("", 0)
        spec.meters.append(
            SimMeter(meter, tuple(members[owner]), "modbus" if modbus else "mqtt", *where)
        )
    return spec


def generate_park(
    *,
    park_id: str = "sim-park",
    batteries: int = 400,
    chargers: int = 300,
    loads: int = 300,
    modbus_host: str = "127.0.0.1",
    modbus_ports: Sequence[int] = (15020,),
    password: str = DEFAULT_PASSWORD,
) -> SimParkSpec:
    """Build a deterministic park of any size (benchmarks, tests, demos).

    Batteries are spread evenly over ``modbus_ports`` (one gateway each, unit
    ids from 1); a third of the chargers are V2G on OCPP 2.1, a third one-way
    2.1, a third one-way 2.0.1, each with an EV plugged in from the start; loads
    alternate between HVAC and process lines.

    Raises:
        ValueError: more batteries than the ports can address.
    """
    per_port = -(-batteries // max(1, len(modbus_ports))) if batteries else 0
    if per_port > MAX_UNITS_PER_ENDPOINT:
        raise ValueError(f"{batteries} batteries need more than {len(modbus_ports)} Modbus ports")
    spec = SimParkSpec(park_id=park_id)
    for i in range(batteries):
        size = (1.0, 2.0, 5.0)[i % 3]
        spec.batteries.append(SimBattery(modbus_host, modbus_ports[i // per_port], BatterySpec(
            asset_id=f"bess-{i:04d}", unit_id=i % per_port + 1, capacity_kwh=215.0 * size,
            max_charge_kw=100.0 * size, max_discharge_kw=100.0 * size, soc=0.3 + 0.4 * (i % 5) / 4,
        )))  # fmt: skip
    for i in range(chargers):
        v2g, version = (True, V21) if i % 3 == 0 else (False, V21 if i % 3 == 1 else V201)
        spec.chargers.append(ChargerSpec(
            cp_id=f"cp-{i:04d}", password=password, version=version, v2g=v2g,
            max_kw=(11.0, 22.0, 60.0)[i % 3], ev_stay_s=8 * 3600.0,
        ))  # fmt: skip
    for i in range(loads):
        base = 20.0 + 10.0 * (i % 19)
        spec.loads.append(LoadSpec(
            asset_id=f"load-{i:04d}", kind="hvac" if i % 2 == 0 else "process",
            baseline_kw=base, p_min_kw=0.6 * base, p_max_kw=1.3 * base,
        ))  # fmt: skip
    return spec


async def run_park(
    spec: SimParkSpec,
    *,
    time_scale: float = 1.0,
    mqtt_host: str = "127.0.0.1",
    mqtt_port: int = 1883,
    mqtt_root: str = "vpp",
    csms_url: str | None = None,
    loads_per_gateway: int = 500,
    period_s: float = 1.0,
    started: asyncio.Event | None = None,
    origin: datetime | None = None,
    day_type: Callable[[date], DayType] = weekday_type,
    meter_base_loads: Mapping[str, Callable[[float], float]] | None = None,
) -> None:
    """Run every simulated device of a park until cancelled.

    Args:
        spec: the park.
        time_scale: simulated seconds per wall-clock second.
        mqtt_host: broker for the loads.
        mqtt_port: broker port.
        mqtt_root: topic root (as the service's MQTT adapter).
        csms_url: CSMS base URL for the chargers (``ws://host:port/ocpp/``);
            chargers are not started without it.
        loads_per_gateway: loads sharing one MQTT connection.
        period_s: wall-clock telemetry period of loads and chargers.
        started: set once every server listens and every client was started
            (clients connect by themselves afterwards).
        origin: the instant simulated time starts at, for loads with a profile
            (now when None).
        day_type: the kind of a local day, for loads with a profile.
        meter_base_loads: by meter id, its enterprise's unenrolled base load
            (primary kW) at simulated time ``t`` (seconds since the start);
            a meter not listed holds its spec's ``base_load_kw``.

    Raises:
        ValueError: more than 247 units (batteries and meters), or a repeated
            unit id, on one endpoint.
    """
    clock = SimClock(time_scale=time_scale)
    by_endpoint: dict[tuple[str, int], list[BatterySpec]] = defaultdict(list)
    for battery in spec.batteries:
        by_endpoint[(battery.host, battery.port)].append(battery.spec)
    # One listener per port: a gateway cannot serve more than 247 unit ids.
    servers = {
        (host, port): ModbusBatteryServer(
            host=host, port=port, batteries=specs, time_scale=time_scale
        )
        for (host, port), specs in by_endpoint.items()
    }
    gateway = functools.partial(
        MqttLoadFleet, host=mqtt_host, port=mqtt_port, park=spec.park_id, root=mqtt_root,
        period_s=period_s, time_scale=time_scale, origin=origin, day_type=day_type,
    )  # fmt: skip
    per = loads_per_gateway
    fleets = [
        gateway(loads=spec.loads[i : i + per], node=spec.node(f"sim-gw-{i // per}"))
        for i in range(0, len(spec.loads), per)
    ]
    chargers = [
        SimCharger(url=csms_url, spec=charger, clock=clock, period_s=period_s)
        for charger in spec.chargers
        if csms_url
    ]
    devices: dict[str, Drawing] = {c.spec.cp_id: c for c in chargers}
    for server in servers.values():
        devices.update(server.models)
    for fleet in fleets:
        devices.update(fleet.models)
    mqtt_meters: list[MeterModel] = []
    for meter in spec.meters:
        behind = [devices[d] for d in meter.members if d in devices]
        base_load = (meter_base_loads or {}).get(meter.spec.asset_id)
        model = MeterModel(meter.spec, behind, clock, base_load=base_load)
        if meter.protocol == "mqtt":
            mqtt_meters.append(model)
            continue
        endpoint = (meter.host, meter.port)
        if endpoint not in servers:
            servers[endpoint] = ModbusBatteryServer(
                host=meter.host, port=meter.port, batteries=[], time_scale=time_scale
            )
        servers[endpoint].add_meters([model])
    if mqtt_meters:
        fleets.append(gateway(loads=[], meters=mqtt_meters, node=spec.node("sim-meters")))
    async with contextlib.AsyncExitStack() as stack:
        for server in servers.values():
            await stack.enter_async_context(server)
        for fleet in fleets:
            await stack.enter_async_context(fleet)
        for charger in chargers:
            await stack.enter_async_context(charger)
        log.info(
            "simulated park %s (shard %d of %d): %d batteries, %d chargers, %d loads, %d meters",
            spec.park_id, spec.shard + 1, spec.shards, len(spec.batteries), len(spec.chargers),
            len(spec.loads), len(spec.meters),
        )  # fmt: skip
        if started is not None:
            started.set()
        await asyncio.Event().wait()
