"""A whole simulated park: batteries on Modbus, chargers on OCPP, loads on MQTT.

:func:`park_spec` turns a park file that was already read and validated (by
``vpp.parkfile``, the one reader of park files and the one place their
defaults are applied) into a :class:`SimParkSpec`: it takes the fields it
simulates by name, applies no default of its own, and skips kinds it does not
simulate (``pv`` for now). :func:`generate_park` builds a park of any size;
:func:`run_park` starts every device and runs until cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from adapters.ocpp.profiles import V21, V201
from adapters.sim._clock import SimClock
from adapters.sim.battery import BatterySpec, ModbusBatteryServer
from adapters.sim.chargers import ChargerSpec, SimCharger
from adapters.sim.loads import LoadSpec, MqttLoadFleet
from adapters.sim.profiles import DayType, weekday_type

__all__ = [
    "DEFAULT_PASSWORD",
    "MAX_UNITS_PER_ENDPOINT",
    "SimBattery",
    "SimParkSpec",
    "generate_park",
    "park_spec",
    "run_park",
]

#: Most unit ids one Modbus TCP endpoint can address (1..247).
MAX_UNITS_PER_ENDPOINT = 247
#: The chargers' basic-auth password when none is given (a CSMS that checks
#: passwords, as the service's does, needs each charger's own).
DEFAULT_PASSWORD = "changeme"
#: A flexible load can run this far above its baseline (its simulated top).
_LOAD_HEADROOM = 1.3

log = logging.getLogger("adapters.sim.park")


@dataclass(frozen=True, slots=True)
class SimBattery:
    """A battery and the Modbus endpoint that serves it."""

    host: str
    port: int
    spec: BatterySpec


@dataclass(slots=True)
class SimParkSpec:
    """Everything a simulated park runs.

    Attributes:
        park_id: the park id (MQTT topic level).
        batteries: batteries with their Modbus endpoints.
        chargers: charge points (they connect to the CSMS URL given to ``run_park``).
        loads: flexible loads (served by MQTT gateways).
    """

    park_id: str
    batteries: list[SimBattery] = field(default_factory=list)
    chargers: list[ChargerSpec] = field(default_factory=list)
    loads: list[LoadSpec] = field(default_factory=list)


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
    for asset in data["assets"]:
        kind, asset_id, conn = asset["kind"], str(asset["id"]), asset.get("connection")
        if kind == "battery":
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
            v2g = bool(asset["v2g"])
            spec.chargers.append(ChargerSpec(
                cp_id=str(conn["charge_point_id"]), password=password,
                version=V21 if v2g else V201, max_kw=float(asset["max_charge_kw"]), v2g=v2g,
            ))  # fmt: skip
        elif kind == "flexible_load":
            base = float(asset["baseline_kw"])
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
        else:
            log.info("not simulating %s asset %s", kind, asset_id)
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

    Raises:
        ValueError: more than 247 batteries, or a repeated unit id, on one endpoint.
    """
    clock = SimClock(time_scale=time_scale)
    by_endpoint: dict[tuple[str, int], list[BatterySpec]] = defaultdict(list)
    for battery in spec.batteries:
        by_endpoint[(battery.host, battery.port)].append(battery.spec)
    async with contextlib.AsyncExitStack() as stack:
        for (host, port), specs in by_endpoint.items():
            # One listener per port: a gateway cannot serve more than 247 unit ids.
            await stack.enter_async_context(
                ModbusBatteryServer(host=host, port=port, batteries=specs, time_scale=time_scale)
            )
        for i in range(0, len(spec.loads), loads_per_gateway):
            await stack.enter_async_context(MqttLoadFleet(
                host=mqtt_host, port=mqtt_port, park=spec.park_id,
                loads=spec.loads[i : i + loads_per_gateway], root=mqtt_root,
                node=f"sim-gw-{i // loads_per_gateway}", period_s=period_s, time_scale=time_scale,
                origin=origin, day_type=day_type,
            ))  # fmt: skip
        if csms_url:
            for charger in spec.chargers:
                await stack.enter_async_context(
                    SimCharger(url=csms_url, spec=charger, clock=clock, period_s=period_s)
                )
        log.info(
            "simulated park %s: %d batteries, %d chargers, %d loads",
            spec.park_id, len(spec.batteries), len(spec.chargers), len(spec.loads),
        )  # fmt: skip
        if started is not None:
            started.set()
        await asyncio.Event().wait()
