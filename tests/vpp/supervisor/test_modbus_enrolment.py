"""The enrolled power signs of a Modbus battery reach its adapter unit."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.sunspec import PowerSign
from tests.vpp.samples import sample
from vpp.errors import InvalidInput
from vpp.model import ModbusConnection, parse_asset
from vpp.supervisor import plan_park
from vpp.supervisor._routing import ocpp_key


def _modbus(**extra: Any) -> dict[str, Any]:
    return {"protocol": "modbus", "host": "10.0.0.5", "port": 502, "unit_id": 1, **extra}


def test_signs_default_to_the_adapters_historic_convention() -> None:
    conn = ModbusConnection(host="10.0.0.5")
    assert (conn.power_sign, conn.setpoint_sign) == ("charge_positive", "discharge_positive")


def test_enrolled_signs_are_routed_to_the_unit() -> None:
    assets = [
        parse_asset(sample("battery", id="b1", connection=_modbus())),
        parse_asset(
            sample(
                "battery",
                id="b2",
                connection=_modbus(
                    unit_id=2, power_sign="discharge_positive", setpoint_sign="charge_positive"
                ),
            )
        ),
    ]
    routes, _ = plan_park("p1", assets, mqtt_root="vpp", ocpp=ocpp_key("127.0.0.1", 9000))
    by_id = {r.asset_id: r for r in routes}
    assert by_id["b1"].power_sign is PowerSign.CHARGE_POSITIVE
    assert by_id["b1"].setpoint_sign is PowerSign.DISCHARGE_POSITIVE
    assert by_id["b2"].power_sign is PowerSign.DISCHARGE_POSITIVE
    assert by_id["b2"].setpoint_sign is PowerSign.CHARGE_POSITIVE


@pytest.mark.parametrize("field", ["power_sign", "setpoint_sign"])
def test_an_unknown_sign_is_refused_by_name(field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_asset(sample("battery", connection=_modbus(**{field: "positive"})))
    assert f"connection.{field}" in caught.value.fields
