"""A whole simulated park: batteries on Modbus, chargers on OCPP, loads on MQTT.

:func:`load_park_toml` reads a park file (``config/demo-park.toml``)
tolerantly: it takes the fields it knows, defaults the rest, and skips kinds
it does not simulate (``pv`` for now). :func:`run_park` starts every device
and runs until cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tomllib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.ocpp.profiles import V21, V201
from adapters.sim._clock import SimClock
from adapters.sim.battery import BatterySpec, ModbusBatteryServer
from adapters.sim.chargers import ChargerSpec, SimCharger
from adapters.sim.loads import LoadSpec, MqttLoadFleet

__all__ = ["SimBattery", "SimParkSpec", "generate_park", "load_park_toml", "run_park"]

#: Most unit ids one Modbus TCP endpoint can address (1..247).
MAX_UNITS_PER_ENDPOINT = 247

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


def _f(d: Mapping[str, Any], key: str, default: float) -> float:
    value = d.get(key, default)
    return float(value) if isinstance(value, int | float) else default


def load_park_toml(path: Path | str, *, default_password: str = "changeme") -> SimParkSpec:
    """Read a park file into a :class:`SimParkSpec` (unknown fields are ignored)."""
    data = tomllib.loads(Path(path).read_text())
    spec = SimParkSpec(park_id=str(data.get("park", {}).get("id", "park")))
    for asset in data.get("assets", []):
        kind, asset_id = asset.get("kind"), str(asset.get("id", ""))
        conn = asset.get("connection", {}) or {}
        if kind == "battery":
            spec.batteries.append(SimBattery(
                str(conn.get("host", "127.0.0.1")), int(conn.get("port", 502)),
                BatterySpec(
                    asset_id=asset_id, unit_id=int(conn.get("unit_id", 1)),
                    capacity_kwh=_f(asset, "capacity_kwh", 200.0),
                    max_charge_kw=_f(asset, "max_charge_kw", 100.0),
                    max_discharge_kw=_f(asset, "max_discharge_kw", 100.0),
                    soc=_f(asset, "soc", 0.5),
                ),
            ))  # fmt: skip
        elif kind == "ev_charger":
            v2g = bool(asset.get("v2g", False))
            spec.chargers.append(ChargerSpec(
                cp_id=str(conn.get("charge_point_id", asset_id)),
                password=str(conn.get("password", default_password)),
                version=V21 if v2g or conn.get("ocpp_version") == "2.1" else V201,
                max_kw=_f(asset, "max_charge_kw", 11.0), v2g=v2g,
            ))  # fmt: skip
        elif kind == "flexible_load":
            base = _f(asset, "baseline_kw", 50.0)
            shed = _f(asset, "max_shed_kw", base * 0.3)
            spec.loads.append(LoadSpec(
                asset_id=asset_id, kind="hvac" if "chiller" in asset_id or "hvac" in asset_id
                else "process", baseline_kw=base, p_min_kw=max(0.0, base - shed),
                p_max_kw=_f(asset, "max_kw", base * 1.3),
                rebound_tau_s=_f(asset, "rebound_minutes", 30.0) * 60.0,
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
    password: str = "changeme",
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
