"""Valid asset payloads of every kind, and a stored bid, for the service tests."""

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


_EXPLANATION = (
    "inner approximation: every asset on a fixed share of its cluster's "
    "deviation stays inside its limits with every interval awarded at once"
)

#: A bid exactly as the version before the typed `vpp.bids.BidRecord` stored it
#: (msgpack of this dict) and served it (``{"bid": STORED_BID}``): built by that
#: version for four 1 MWh batteries and two loads, one hour from 00:00+08:00,
#: with ``flat_capacity`` and rules ``min_capacity_kw=100``,
#: ``min_duration_minutes=15``, ``price_steps=2``.
STORED_BID: dict[str, Any] = {
    "id": "day-ahead-1",
    "park": PARK,
    "start": "2026-12-01T00:00:00+08:00",
    "interval_minutes": 15,
    "starts": [
        "2026-12-01T00:00:00+08:00",
        "2026-12-01T00:15:00+08:00",
        "2026-12-01T00:30:00+08:00",
        "2026-12-01T00:45:00+08:00",
    ],
    "rules": {
        "min_capacity_kw": 100.0,
        "min_duration_minutes": 15.0,
        "price_cap": 5.0,
        "price_floor": 0.0,
        "price_steps": 2,
    },
    "baseline_kw": [1600.0, 1600.0, 1600.0, 1600.0],
    "up": {
        "quantity_kw": [2000.0, 0.0, 2000.0, 0.0],
        "prices": [0.05],
        "curve_kw": [[2000.0, 0.0, 2000.0, 0.0]],
        "deliverable": True,
        "explanation": _EXPLANATION,
    },
    "down": {
        "quantity_kw": [0.0, 2000.0, 0.0, 2000.0],
        "prices": [0.05],
        "curve_kw": [[0.0, 2000.0, 0.0, 2000.0]],
        "deliverable": True,
        "explanation": _EXPLANATION,
    },
    "jointly_deliverable": True,
    "flat_up_kw": 1890.5,
    "flat_down_kw": 2016.0,
    "created": "2026-11-30T23:00:25.113243+08:00",
    "assets_included": 6,
    "assets_excluded": {},
    "solve_seconds": 0.112,
    "total_up_kwh": 1000.0,
    "total_down_kwh": 1000.0,
    "hourly": {
        "starts": ["2026-12-01T00:00:00+08:00"],
        "baseline_kw": [1600.0],
        "up_kw": [0.0],
        "down_kw": [0.0],
        "deliverable": True,
    },
}


def stored_bid(**changes: Any) -> dict[str, Any]:
    """A deep copy of `STORED_BID` with ``changes`` applied."""
    bid = copy.deepcopy(STORED_BID)
    bid.update(changes)
    return bid
