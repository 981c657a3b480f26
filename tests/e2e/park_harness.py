"""The end-to-end harness: a test park from one table, its simulators, an HTTP client.

`running_park` starts, inside the test's event loop, the service as ``vpp
serve`` does (``vpp.service.running_service``: API, supervisor and control
loops) on loopback, the simulated devices speaking the real protocols (Modbus TCP /
SunSpec batteries, MQTT process loads, OCPP chargers), enrolls the park
through the REST API and waits until every asset is live. Nothing is mocked:
Redis is the shared test Redis under this test's namespace, the broker is the
shared test broker under this test's topic prefix.

The park's devices come from one table (`PARK_TABLE`) that yields both the
simulators' `SimParkSpec` and the enrollment payloads, so the two agree.

Time runs compressed (`SCALE`): a 15-minute interval lasts 15 real seconds,
while device latency (telemetry period, Modbus poll) stays well under a
second. The clock starts a few minutes after a quarter hour so the first
event can start at the next quarter hour soon after setup.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from adapters.ocpp.profiles import V21, V201
from adapters.sim.battery import BatterySpec, ModbusBatteryServer
from adapters.sim.chargers import ChargerSpec, SimCharger
from adapters.sim.loads import LoadSpec, MqttLoadFleet
from adapters.sim.park import DEFAULT_PASSWORD, SimBattery, SimParkSpec
from tests.support import eventually
from vpp.client import ParkClient
from vpp.clock import Clock
from vpp.parkfile import with_charger_passwords
from vpp.settings import Settings
from vpp.state import State
from vpp.supervisor import SUPERVISOR, Supervisor

PARK = "e2e-park"
SECRET = "e2e-ocpp-secret"
#: simulated seconds per real second: a 15-minute interval lasts 15 real seconds
SCALE = 60.0
#: control period in clock seconds: one cycle every 1/3 real second
PERIOD_S = 20.0
INTERVAL_MIN = 15
#: Redis TTL of live telemetry (real seconds): a killed device ages out this fast
LIVE_TTL_S = 3.0
#: real seconds between telemetry of loads and chargers
TELEMETRY_S = 0.5

log = logging.getLogger("tests.e2e")


@dataclass(frozen=True)
class Row:
    """One device of the test park: what is enrolled and what is simulated."""

    kind: str
    id: str
    size_kw: float
    capacity_kwh: float = 0.0
    soc: float = 0.5
    baseline_kw: float = 0.0
    v2g: bool = False


#: The test park: 6 batteries (each on its own Modbus port), 4 process loads
#: (flat baseline), 3 chargers (one V2G on OCPP 2.1, two one-way on 2.0.1).
PARK_TABLE: tuple[Row, ...] = (
    *(Row("battery", f"bess-{i}", 60.0 + 10.0 * i, capacity_kwh=200.0, soc=0.6) for i in range(6)),
    *(Row("flexible_load", f"line-{i}", 30.0, baseline_kw=80.0 + 10.0 * i) for i in range(4)),
    Row("ev_charger", "cp-v2g", 11.0, v2g=True),
    Row("ev_charger", "cp-1", 11.0),
    Row("ev_charger", "cp-2", 22.0),
)


def build_park(
    table: tuple[Row, ...], ports: dict[str, int], root: str
) -> tuple[SimParkSpec, list[dict[str, Any]]]:
    """The simulators' spec and the enrollment payloads of one table."""
    spec = SimParkSpec(park_id=PARK)
    payloads: list[dict[str, Any]] = []
    common = {"owner": "E2E Test Works", "grid_node": "feeder-e2e"}
    for row in table:
        if row.kind == "battery":
            port = ports[row.id]
            spec.batteries.append(SimBattery("127.0.0.1", port, BatterySpec(
                asset_id=row.id, unit_id=1, capacity_kwh=row.capacity_kwh,
                max_charge_kw=row.size_kw, max_discharge_kw=row.size_kw, soc=row.soc,
            )))  # fmt: skip
            payloads.append({
                **common, "kind": "battery", "id": row.id,
                "connection": {"protocol": "modbus", "host": "127.0.0.1", "port": port,
                               "unit_id": 1},
                "capacity_kwh": row.capacity_kwh, "max_charge_kw": row.size_kw,
                "max_discharge_kw": row.size_kw, "soc_min": 0.1, "soc_max": 0.9,
                # the simulator's round trip is 0.92: ~0.96 each way
                "charge_efficiency": 0.96, "discharge_efficiency": 0.96,
                "costs": {"up_per_kwh": 0.04, "down_per_kwh": 0.04},
            })  # fmt: skip
        elif row.kind == "flexible_load":
            spec.loads.append(LoadSpec(
                asset_id=row.id, kind="process", baseline_kw=row.baseline_kw,
                p_min_kw=row.baseline_kw - row.size_kw, p_max_kw=row.baseline_kw * 1.3,
                rebound_tau_s=1800.0,
            ))  # fmt: skip
            payloads.append({
                **common, "kind": "flexible_load", "id": row.id,
                "connection": {"protocol": "mqtt", "topic_prefix": f"{root}/{PARK}/{row.id}"},
                "baseline_kw": row.baseline_kw, "max_shed_kw": row.size_kw,
                "max_shed_minutes": 120, "rebound_fraction": 0.5, "rebound_minutes": 30,
                "costs": {"up_per_kwh": 0.2, "down_per_kwh": 0.2},
            })  # fmt: skip
        elif row.kind == "ev_charger":
            spec.chargers.append(ChargerSpec(
                cp_id=row.id, password=DEFAULT_PASSWORD,
                version=V21 if row.v2g else V201, max_kw=row.size_kw, v2g=row.v2g,
                ev_stay_s=8 * 3600.0,
            ))  # fmt: skip
            payloads.append({
                **common, "kind": "ev_charger", "id": row.id,
                "connection": {"protocol": "ocpp", "charge_point_id": row.id},
                "v2g": row.v2g, "max_charge_kw": row.size_kw,
                "max_discharge_kw": row.size_kw if row.v2g else 0.0,
                "costs": {"up_per_kwh": 0.1, "down_per_kwh": 0.1},
            })  # fmt: skip
        else:
            raise ValueError(f"no simulator for {row.kind}")
    return with_charger_passwords(spec, SECRET), payloads


@dataclass
class SimPark:
    """The running simulators, with a handle on every device.

    Attributes:
        batteries: one Modbus server per battery (stop one to kill the device).
        loads: the MQTT gateway of the loads.
        chargers: charge point id -> simulator.
    """

    batteries: dict[str, ModbusBatteryServer] = field(default_factory=dict)
    loads: MqttLoadFleet | None = None
    chargers: dict[str, SimCharger] = field(default_factory=dict)

    def battery_kw(self, asset_id: str) -> float:
        """A battery's AC power now (its physics stepped to now)."""
        model = self.batteries[asset_id].models[asset_id]
        model.step()
        return model.power_kw


@dataclass
class RunningPark:
    """Everything a test needs to drive the park end to end."""

    app: web.Application
    grid: ParkClient
    clock: Clock
    sim: SimPark
    settings: Settings
    state: State
    control_log: list[logging.LogRecord]

    @property
    def supervisor(self) -> Supervisor:
        return self.app[SUPERVISOR]

    def next_start(self, lead_minutes: float = 4.0) -> datetime:
        """The first quarter hour at least ``lead_minutes`` of clock time from now."""
        t = self.clock.now() + timedelta(minutes=lead_minutes)
        floor = t.replace(second=0, microsecond=0) - timedelta(minutes=t.minute % INTERVAL_MIN)
        return floor if floor >= t else floor + timedelta(minutes=INTERVAL_MIN)

    async def flat_bid(self, start: datetime, intervals: int) -> dict[str, Any]:
        """A bid with the flat capacity the park holds over the window."""
        return await self.grid.create_bid({
            "id": f"win-{uuid.uuid4().hex[:8]}", "start": start.isoformat(),
            "intervals": intervals, "flat_capacity": True,
            "rules": {"min_capacity_kw": 0, "min_duration_minutes": 0},
        })  # fmt: skip

    async def peak_event(
        self, intervals: int, share: float = 0.7, lead_minutes: float = 4.0
    ) -> dict[str, Any]:
        """The body of a peak-shaving event at ``share`` of the flat bid, from the next quarter."""
        start = self.next_start(lead_minutes)
        bid = await self.flat_bid(start, intervals)
        target = round(share * float(bid["flat_down_kw"]), 1)
        assert target > 0, bid
        return {
            "id": f"ev-{uuid.uuid4().hex[:8]}", "kind": "peak_shaving",
            "start": start.isoformat(), "target_kw": target,
            "duration_minutes": intervals * INTERVAL_MIN, "bid_id": bid["id"],
        }  # fmt: skip

    async def event(self, event_id: str) -> dict[str, Any]:
        """The stored event record."""
        return await self.grid.event(event_id)

    async def wait_state(self, event_id: str, *states: str, within_s: float) -> dict[str, Any]:
        """Wait until the event is in one of ``states`` (``within_s`` real seconds at most)."""
        record: dict[str, Any] = {}

        async def reached() -> bool:
            record.update(await self.event(event_id))
            return record["state"] in states

        await eventually(reached, within_s=within_s, every_s=0.2)
        return record

    async def sleep_until(self, when: datetime) -> None:
        """Sleep until the clock reads ``when``."""
        await self.clock.sleep_until(when)

    def park_deviation_kw(self, baselines: dict[str, float]) -> float:
        """Power of the simulated devices minus their baselines, now (kW, + = more load)."""
        total = 0.0
        for asset_id in self.sim.batteries:
            total += self.sim.battery_kw(asset_id) - baselines.get(asset_id, 0.0)
        assert self.sim.loads is not None
        self.sim.loads.advance()
        for model in self.sim.loads.models.values():
            total += model.power_kw - model.baseline(self.sim.loads.clock.now())
        for cp_id, charger in self.sim.chargers.items():
            charger.step()
            total += charger.power_kw - baselines.get(cp_id, charger.spec.max_kw)
        return total


def interval_table(record: dict[str, Any]) -> str:
    """Per-interval target / baseline / measured / delivered of an event, as text."""
    rows = [f"event {record['id']} ({record['state']})",
            "  k  target kW  baseline kW  measured kW  delivered kW  error"]  # fmt: skip
    for k, target in enumerate(record["target_kw"]):
        base, meas, got = (record[n][k] for n in ("baseline_kw", "measured_kw", "delivered_kw"))
        err = "-" if got is None or not target else f"{(got - target) / abs(target):+.2%}"

        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"

        rows.append(f"  {k}  {target:9.1f}  {f(base):>11}  {f(meas):>11}  {f(got):>12}  {err}")
    return "\n".join(rows)


class ListHandler(logging.Handler):
    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.INFO)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record)


def clock_origin() -> datetime:
    """Eight minutes past the current quarter hour: the first event starts soon after setup."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=now.minute % INTERVAL_MIN) + timedelta(minutes=8)


@contextlib.asynccontextmanager
async def simulators(spec: SimParkSpec, root: str, mqtt: tuple[str, int]) -> AsyncIterator[SimPark]:
    """Batteries and loads (the chargers start once they are enrolled)."""
    sim = SimPark()
    async with contextlib.AsyncExitStack() as stack:
        for battery in spec.batteries:
            server = ModbusBatteryServer(
                host=battery.host, port=battery.port, batteries=[battery.spec], time_scale=SCALE
            )
            sim.batteries[battery.spec.asset_id] = await stack.enter_async_context(server)
        sim.loads = await stack.enter_async_context(MqttLoadFleet(
            host=mqtt[0], port=mqtt[1], park=PARK, loads=spec.loads, root=root,
            node=f"e2e-gw-{uuid.uuid4().hex[:6]}", period_s=TELEMETRY_S, time_scale=SCALE,
            backoff_base=0.05,
        ))  # fmt: skip
        yield sim
