"""From enrolled assets to adapter routes and device limits (no I/O)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from adapters.types import DeviceLimits, TelemetrySource
from tests.vpp.samples import sample
from vpp.model import MqttConnection, parse_asset
from vpp.supervisor import SHARED_ADAPTER_PARK, charger_password, device_limits, plan_park
from vpp.supervisor._routing import mqtt_base, ocpp_key

OCPP = ocpp_key("127.0.0.1", 9000)


def _plan(*payloads: dict[str, Any]) -> tuple[list[Any], list[str]]:
    return plan_park("p1", [parse_asset(p) for p in payloads], mqtt_root="vpp", ocpp=OCPP)


def test_charger_password_is_hmac_sha256_hex_32() -> None:
    expected = hmac.new(b"s3cret", b"CP-1", hashlib.sha256).hexdigest()[:32]
    assert charger_password("s3cret", "CP-1") == expected
    assert len(expected) == 32 and charger_password("s3cret", "CP-2") != expected


def test_device_limits_of_each_kind() -> None:
    battery = parse_asset(sample("battery"))
    assert device_limits(battery) == DeviceLimits(
        p_min_kw=-500, p_max_kw=500, capacity_kwh=1000, soc_min=0.1, soc_max=0.95
    )
    charger = parse_asset(sample("ev_charger", charge_efficiency=0.9))
    v2g = device_limits(charger)
    assert (v2g.p_min_kw, v2g.p_max_kw, v2g.bidirectional) == (-60, 60, True)
    assert v2g.charge_efficiency == 0.9  # the departure need is energy in the vehicle
    one_way = device_limits(parse_asset(sample("ev_charger", v2g=False, max_discharge_kw=0)))
    assert (one_way.p_min_kw, one_way.bidirectional) == (0, False)
    load = device_limits(parse_asset(sample("flexible_load")))
    assert load.p_min_kw == 500 and load.p_max_kw == pytest.approx(890)
    pv = device_limits(parse_asset(sample("pv")))
    assert (pv.p_min_kw, pv.p_max_kw) == (-1200, 0)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("site/loads/hvac-1", ("site", "loads")),
        ("a/b/c/hvac-1", ("a/b", "c")),
        ("hvac-1", ("vpp", "p1")),  # too short for {root}/{level}/{asset}
        ("site/loads/other", ("vpp", "p1")),  # does not end in the asset id
    ],
)
def test_mqtt_prefix_mapping(prefix: str, expected: tuple[str, str]) -> None:
    conn = MqttConnection(topic_prefix=prefix)
    assert mqtt_base(conn, "p1", "hvac-1", "vpp") == expected


def test_plan_groups_by_protocol_and_skips_what_no_adapter_serves() -> None:
    modbus = {"protocol": "modbus", "host": "10.0.0.5", "port": 502, "unit_id": 1}
    routes, notes = _plan(
        sample("battery", id="b1", connection=modbus),
        sample("battery", id="b2", connection={**modbus, "unit_id": 2}),
        sample("battery", id="b3", connection=modbus),  # unit 1 is taken
        sample("pv", id="pv1", connection={**modbus, "unit_id": 3}),  # no SunSpec PV adapter
        sample("flexible_load", id="l1", connection={"protocol": "mqtt", "topic_prefix": "x"}),
        sample("ev_charger", id="ev1"),
    )
    by_id = {r.asset_id: r for r in routes}
    assert sorted(by_id) == ["b1", "b2", "ev1", "l1"]
    assert by_id["b1"].key == by_id["b2"].key and by_id["b2"].unit_id == 2
    assert by_id["b1"].key.label == "modbus-10.0.0.5:502"
    assert by_id["l1"].key.label == "mqtt-p1" and by_id["l1"].key.endpoint == "vpp/p1"
    ev = by_id["ev1"]
    assert (ev.key.park, ev.key.protocol, ev.device_id, ev.v2g) == (
        SHARED_ADAPTER_PARK,
        TelemetrySource.OCPP,
        "CP-A01",
        True,
    )
    assert len(notes) == 3 and any("pv1" in n for n in notes) and any("b3" in n for n in notes)
