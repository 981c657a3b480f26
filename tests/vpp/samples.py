"""Valid asset payloads of every kind, for the service tests."""

from __future__ import annotations

import copy
from typing import Any

PARK = "park-a"
OTHER_PARK = "park-b"

BATTERY: dict[str, Any] = {
    "kind": "battery",
    "id": "bess-01",
    "name": "Building 3 battery",
    "owner": "Guangzhou Precision Castings Co.",
    "grid_node": "feeder-10kv-03",
    "costs": {"up_per_kwh": 0.05, "down_per_kwh": 0.05},
    "connection": {"protocol": "modbus", "host": "10.0.3.21", "port": 502, "unit_id": 1},
    "capacity_kwh": 1000.0,
    "max_charge_kw": 500.0,
    "max_discharge_kw": 500.0,
    "soc_min": 0.1,
    "soc_max": 0.95,
    "charge_efficiency": 0.95,
    "discharge_efficiency": 0.95,
}
EV_CHARGER: dict[str, Any] = {
    "kind": "ev_charger",
    "id": "ev-01",
    "owner": "Nansha Logistics",
    "grid_node": "feeder-10kv-01",
    "connection": {"protocol": "ocpp", "charge_point_id": "CP-A01"},
    "v2g": True,
    "max_charge_kw": 60.0,
    "max_discharge_kw": 60.0,
}
FLEXIBLE_LOAD: dict[str, Any] = {
    "kind": "flexible_load",
    "id": "chiller-01",
    "owner": "Pearl River Electronics",
    "grid_node": "feeder-10kv-02",
    "connection": {"protocol": "mqtt", "topic_prefix": "park-a/loads/chiller-01"},
    "baseline_kw": 800.0,
    "max_shed_kw": 300.0,
    "max_shed_minutes": 120,
    "rebound_fraction": 0.3,
    "rebound_minutes": 60,
}
PV: dict[str, Any] = {
    "kind": "pv",
    "id": "pv-roof-01",
    "owner": "Park Energy Services",
    "grid_node": "feeder-10kv-02",
    "connection": {"protocol": "modbus", "host": "10.0.5.10", "unit_id": 3},
    "rated_kw": 1200.0,
}
SAMPLES = {"battery": BATTERY, "ev_charger": EV_CHARGER, "flexible_load": FLEXIBLE_LOAD, "pv": PV}


def sample(base: str = "battery", **changes: Any) -> dict[str, Any]:
    """A deep copy of the valid payload of kind ``base`` with ``changes`` applied."""
    payload = copy.deepcopy(SAMPLES[base])
    payload.update(changes)
    return payload
