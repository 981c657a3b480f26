"""A park file's meters as the simulators run them: each reads its enterprise's devices."""

from __future__ import annotations

from typing import Any

from adapters.sim.park import MIN_BASE_LOAD_KW
from adapters.sunspec import PowerSign
from vpp.parkfile import ParkFile, parse_park_file, simulator_spec


def metered_park(root: str, modbus_port: int, park: str = "p1") -> ParkFile:
    """Enterprise A: a battery and its Modbus meter on one gateway (x10); enterprise B: a
    100 kW process line, a charger, an MQTT meter (x2) and an import-only meter."""
    a, b = {"owner": "A", "grid_node": "n1"}, {"owner": "B", "grid_node": "n2"}
    gateway = {"protocol": "modbus", "host": "127.0.0.1", "port": modbus_port}
    meter: dict[str, Any] = {"kind": "meter", "revenue": True}
    return parse_park_file({
        "park": {"id": park, "name": "metered", "timezone": "Asia/Shanghai"},
        "assets": [
            {**a, "kind": "battery", "id": "bess-a", "capacity_kwh": 200.0,
             "max_charge_kw": 50.0, "max_discharge_kw": 50.0,
             "connection": {**gateway, "unit_id": 1}},
            {**a, **meter, "id": "meter-a", "account_no": "0301-A", "multiplier": 10.0,
             "connection": {**gateway, "unit_id": 2, "power_sign": "discharge_positive"}},
            {**b, "kind": "flexible_load", "id": "line-b", "baseline_kw": 100.0,
             "max_shed_kw": 30.0, "max_shed_minutes": 60.0,
             "connection": {"protocol": "mqtt", "topic_prefix": f"{root}/{park}/line-b"}},
            {**b, "kind": "ev_charger", "id": "ev-b", "max_charge_kw": 11.0,
             "connection": {"protocol": "ocpp", "charge_point_id": "CP-B"}},
            {**b, **meter, "id": "meter-b", "account_no": "0302-B", "multiplier": 2.0,
             "connection": {"protocol": "mqtt", "topic_prefix": f"{root}/{park}/meter-b"}},
            {**b, **meter, "id": "meter-b-grid", "account_no": "0302-B", "revenue": False},
        ],
    })  # fmt: skip


def test_a_connected_meter_reads_its_enterprise_an_import_only_one_is_not_simulated() -> None:
    spec = simulator_spec(metered_park("vpp", 15020), ocpp_secret="x")
    by_id = {m.spec.asset_id: m for m in spec.meters}
    assert set(by_id) == {"meter-a", "meter-b"}
    a, b = by_id["meter-a"], by_id["meter-b"]
    assert (a.protocol, a.host, a.port, a.spec.unit_id) == ("modbus", "127.0.0.1", 15020, 2)
    assert a.members == ("bess-a",) and a.spec.multiplier == 10.0
    assert a.spec.power_sign is PowerSign.DISCHARGE_POSITIVE
    assert a.spec.base_load_kw == MIN_BASE_LOAD_KW  # no enrolled load: the least base load
    assert b.protocol == "mqtt" and b.members == ("line-b", "CP-B")
    assert b.spec.base_load_kw == 100.0 and b.spec.multiplier == 2.0
    # the meters are not devices of their own
    assert len(spec.batteries) == 1 and len(spec.loads) == 1 and len(spec.chargers) == 1
