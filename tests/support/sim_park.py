"""A simulated park beside the three adapters that serve it, for the adapter benchmark and tests.

`park_adapters` builds the adapters the service would build for a generated
park (`adapters.sim.park.generate_park`) plus one setpoint per device;
`wait_for_park` waits until every device reports; `setpoint_round` sends one
setpoint to every device at once and reports the round trip per protocol.
``python -m tests.benchmarks.adapters --only rtt`` runs it at 1,000 devices;
``tests/adapters/sim/test_park.py`` at 100.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from adapters.modbus import ModbusAdapter, ModbusUnit
from adapters.mqtt import MqttAdapter
from adapters.ocpp import ChargerSettings, OcppCsmsAdapter
from adapters.sim.park import SimParkSpec
from adapters.types import Adapter, Confirmation, DeviceLimits, Setpoint, Telemetry
from tests.benchmarks.support import percentile

__all__ = ["ParkAdapters", "drain", "park_adapters", "setpoint_round", "wait_for_park"]


@dataclass(slots=True)
class ParkAdapters:
    """The adapters serving one simulated park, as the service would build them."""

    mqtt: MqttAdapter
    modbus: list[ModbusAdapter]
    ocpp: OcppCsmsAdapter
    setpoints: dict[str, list[Setpoint]] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ParkAdapters]:
        """Enter every adapter; leave them all on the way out."""
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.ocpp)
            await stack.enter_async_context(self.mqtt)
            for adapter in self.modbus:
                await stack.enter_async_context(adapter)
            yield self


def park_adapters(
    spec: SimParkSpec,
    *,
    mqtt_host: str,
    mqtt_port: int,
    mqtt_root: str,
    csms_port: int = 0,
    poll_s: float = 1.0,
    modbus_connections: int = 4,
) -> ParkAdapters:
    """Build the three adapters for a simulated park, plus one setpoint per device.

    Args:
        spec: the park (e.g. from :func:`adapters.sim.park.generate_park`).
        mqtt_host: broker of the load gateways.
        mqtt_port: broker port.
        mqtt_root: topic root the gateways use.
        csms_port: port the CSMS listens on (0: any free one).
        poll_s: Modbus poll period.
        modbus_connections: TCP connections per Modbus gateway.
    """
    loads = {s.asset_id: DeviceLimits(p_min_kw=s.p_min_kw, p_max_kw=s.p_max_kw) for s in spec.loads}
    endpoints: dict[tuple[str, int], dict[str, ModbusUnit]] = {}
    for b in spec.batteries:
        limits = DeviceLimits(
            p_min_kw=-b.spec.max_discharge_kw,
            p_max_kw=b.spec.max_charge_kw,
            capacity_kwh=b.spec.capacity_kwh,
            soc_min=0.05,
            soc_max=0.95,
        )
        unit = ModbusUnit(unit_id=b.spec.unit_id, limits=limits)
        endpoints.setdefault((b.host, b.port), {})[b.spec.asset_id] = unit
    chargers = {
        c.cp_id: ChargerSettings(
            password=c.password,
            v2g=c.v2g,
            limits=DeviceLimits(
                p_min_kw=-c.max_kw if c.v2g else 0.0, p_max_kw=c.max_kw, bidirectional=c.v2g
            ),
        )
        for c in spec.chargers
    }
    return ParkAdapters(
        mqtt=MqttAdapter(
            host=mqtt_host,
            port=mqtt_port,
            park=spec.park_id,
            assets=loads,
            root=mqtt_root,
            ack_timeout_s=30.0,
        ),
        modbus=[
            ModbusAdapter(
                host=h,
                port=p,
                units=u,
                poll_s=poll_s,
                timeout_s=10.0,
                connections=modbus_connections,
            )
            for (h, p), u in endpoints.items()
        ],
        ocpp=OcppCsmsAdapter(port=csms_port, chargers=chargers, call_timeout_s=30.0),
        setpoints={
            "mqtt": [
                Setpoint(asset_id=s.asset_id, power_kw=round(0.8 * s.baseline_kw, 1))
                for s in spec.loads
            ],
            "modbus": [
                Setpoint(asset_id=b.spec.asset_id, power_kw=-0.5 * b.spec.max_discharge_kw)
                for b in spec.batteries
            ],
            "ocpp": [
                Setpoint(asset_id=c.cp_id, power_kw=-0.5 * c.max_kw if c.v2g else 0.5 * c.max_kw)
                for c in spec.chargers
            ],
        },
    )


def _live(reading: Telemetry | None, *, ev: bool = False) -> bool:
    # An adapter publishes a device it cannot reach yet as unavailable.
    if reading is None or not reading.available:
        return False
    return bool(reading.ev_connected) if ev else True


async def wait_for_park(park: ParkAdapters, spec: SimParkSpec, timeout_s: float) -> None:
    """Wait until every device of the park has sent live telemetry (chargers: with an EV).

    Raises:
        TimeoutError: some device stayed silent; the message says how many per protocol.
    """
    deadline = time.monotonic() + timeout_s
    missing: dict[str, int] = {}
    while time.monotonic() < deadline:
        missing = {
            "mqtt": sum(not _live(park.mqtt.last(s.asset_id)) for s in spec.loads),
            "modbus": sum(
                not any(
                    _live(a.last(b.spec.asset_id))
                    for a in park.modbus
                    if b.spec.asset_id in a.units
                )
                for b in spec.batteries
            ),
            "ocpp": sum(not _live(park.ocpp.last(c.cp_id), ev=True) for c in spec.chargers),
        }
        if not any(missing.values()):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"devices without telemetry after {timeout_s} s: {missing}")


async def drain(park: ParkAdapters) -> None:
    """Consume every adapter's telemetry queue (the supervisor's job in the service)."""

    async def one(readings: AsyncIterator[Telemetry]) -> None:
        async for _ in readings:
            pass

    adapters: list[Adapter] = [park.mqtt, park.ocpp, *park.modbus]
    async with asyncio.TaskGroup() as tg:
        for adapter in adapters:
            tg.create_task(one(adapter.telemetry()), name="bench-drain")


async def setpoint_round(park: ParkAdapters, concurrency: int) -> dict[str, Any]:
    """Send one setpoint to every device at once; per-protocol RTT and wall time."""
    owner: dict[str, Any] = {}
    for m in park.modbus:
        for asset in m.units:
            owner[asset] = m
    gate = asyncio.Semaphore(concurrency)

    async def send(protocol: str, sp: Setpoint) -> tuple[str, Confirmation]:
        adapter: Any = park.mqtt if protocol == "mqtt" else park.ocpp
        if protocol == "modbus":
            adapter = owner[sp.asset_id]
        async with gate:
            return protocol, await adapter.apply(sp)

    started = time.perf_counter()
    results = await asyncio.gather(
        *(send(p, sp) for p, sps in park.setpoints.items() for sp in sps)
    )
    wall = time.perf_counter() - started
    out: dict[str, Any] = {"devices": len(results), "wall_s": round(wall, 3)}
    for protocol in park.setpoints:
        confs = [c for p, c in results if p == protocol]
        rtts = [c.rtt_s for c in confs if c.confirmed and c.rtt_s is not None]
        p50, p95 = percentile(rtts, 50), percentile(rtts, 95)
        out[protocol] = {
            "devices": len(confs),
            "confirmed": sum(c.confirmed for c in confs),
            "p50_ms": None if p50 is None else round(p50 * 1000, 1),
            "p95_ms": None if p95 is None else round(p95 * 1000, 1),
            "max_ms": round(max(rtts) * 1000, 1) if rtts else None,
            "reasons": sorted({c.reason for c in confs if not c.confirmed})[:3],
        }
    out["all_confirmed"] = all(c.confirmed for _, c in results)
    return out
