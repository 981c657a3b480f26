"""The assets the supervisor tests enroll: loopback devices of park ``p1``, and their live state."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from adapters.sim.battery import BatterySpec, ModbusBatteryServer
from tests.vpp.samples import sample
from vpp.model import parse_asset
from vpp.servers import free_port
from vpp.state import State

PARK = "p1"
#: The OCPP auth secret the supervisor settings carry (charger passwords derive from it).
SECRET = "test-secret"


def battery(asset_id: str, port: int, unit_id: int = 1) -> dict[str, Any]:
    """A 200 kWh, 50 kW battery behind Modbus TCP on loopback ``port``."""
    conn = {"protocol": "modbus", "host": "127.0.0.1", "port": port, "unit_id": unit_id}
    return sample(
        "battery", id=asset_id, connection=conn, capacity_kwh=200.0,
        max_charge_kw=50.0, max_discharge_kw=50.0, soc_min=0.1, soc_max=0.9,
    )  # fmt: skip


def load(asset_id: str, root: str) -> dict[str, Any]:
    """A 50 kW flexible load (30 kW shed) on MQTT under the topic root ``root``."""
    conn = {"protocol": "mqtt", "topic_prefix": f"{root}/{PARK}/{asset_id}"}
    return sample(
        "flexible_load", id=asset_id, connection=conn, baseline_kw=50.0, max_shed_kw=30.0,
        max_shed_minutes=60, rebound_fraction=0.2,
    )  # fmt: skip


def charger(asset_id: str, cp_id: str) -> dict[str, Any]:
    """An 11 kW V2G charger on OCPP, as charge point ``cp_id``."""
    conn = {"protocol": "ocpp", "charge_point_id": cp_id}
    return sample(
        "ev_charger", id=asset_id, connection=conn, v2g=True,
        max_charge_kw=11.0, max_discharge_kw=11.0,
    )  # fmt: skip


def meter(
    asset_id: str, connection: dict[str, Any] | None, multiplier: float = 1.0
) -> dict[str, Any]:
    """A revenue meter of the battery's enterprise, read over ``connection`` (None: import only)."""
    return {
        "kind": "meter", "id": asset_id, "owner": sample("battery")["owner"],
        "grid_node": "feeder-10kv-03", "account_no": "0301-2210-87", "revenue": True,
        "multiplier": multiplier, "connection": connection,
    }  # fmt: skip


async def enroll(state: State, *payloads: dict[str, Any]) -> None:
    """Enroll the payloads in ``PARK``."""
    for payload in payloads:
        await state.enroll(PARK, parse_asset(payload))


@contextlib.asynccontextmanager
async def modbus_battery(state: State, asset_id: str) -> AsyncIterator[ModbusBatteryServer]:
    """A :func:`battery` enrolled in ``PARK``, served by a Modbus TCP simulator on loopback.

    The simulator (unit 1, on a free port) may be stopped and started again.
    """
    port = free_port()
    await enroll(state, battery(asset_id, port))
    spec = BatterySpec(asset_id=asset_id, unit_id=1)
    async with ModbusBatteryServer(port=port, batteries=[spec]) as server:
        yield server


def live_since(state: State, asset_id: str, after: float = 0.0) -> Callable[[], Awaitable[bool]]:
    """A check for ``eventually``: the asset has a live state taken after ``after`` (epoch s)."""

    async def fresh() -> bool:
        live = await state.read_live(PARK, asset_id)
        return live is not None and live.ts.timestamp() > after

    return fresh
