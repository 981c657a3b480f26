"""The park file is read in one place: `vpp.parkfile` validates it and derives the simulators."""

from __future__ import annotations

import tomllib

from adapters.sim.park import generate_park, park_spec
from tests.support import DEMO_PARK
from vpp.model import CarbonSettings
from vpp.parkfile import (
    enroll_park,
    load_park_file,
    parse_park_file,
    simulator_spec,
    with_charger_passwords,
)
from vpp.state import State
from vpp.supervisor import charger_password


def test_the_demo_park_simulates_as_the_file_says_with_the_services_passwords() -> None:
    spec = simulator_spec(load_park_file(DEMO_PARK), ocpp_secret="s3cret")
    raw = park_spec(tomllib.loads(DEMO_PARK.read_text()))

    assert (len(spec.batteries), len(spec.chargers), len(spec.loads)) == (20, 15, 15)
    assert spec.batteries == raw.batteries and spec.loads == raw.loads
    assert [c.cp_id for c in spec.chargers] == [c.cp_id for c in raw.chargers]
    for charger in spec.chargers:
        assert charger.password == charger_password("s3cret", charger.cp_id)


def test_fields_the_file_leaves_out_take_the_asset_models_defaults() -> None:
    common = {"owner": "o", "grid_node": "n"}
    park_file = parse_park_file({
        "park": {"id": "p", "name": "P", "timezone": "UTC"},
        "assets": [
            {**common, "kind": "battery", "id": "b", "capacity_kwh": 100.0,
             "max_charge_kw": 50.0, "max_discharge_kw": 50.0,
             "connection": {"protocol": "modbus", "host": "127.0.0.1"}},
            {**common, "kind": "ev_charger", "id": "ev", "max_charge_kw": 11.0,
             "connection": {"protocol": "ocpp", "charge_point_id": "CP-1"}},
            {**common, "kind": "flexible_load", "id": "line-1", "baseline_kw": 100.0,
             "max_shed_kw": 30.0, "max_shed_minutes": 60.0,
             "connection": {"protocol": "mqtt", "topic_prefix": "vpp/p/line-1"}},
        ],
    })  # fmt: skip

    spec = simulator_spec(park_file, ocpp_secret="x")

    (battery,) = spec.batteries
    assert (battery.port, battery.spec.unit_id) == (502, 1)
    (charger,) = spec.chargers
    assert (charger.cp_id, charger.v2g) == ("CP-1", False)
    (load,) = spec.loads
    assert (load.p_min_kw, load.p_max_kw) == (70.0, 130.0)
    assert load.rebound_tau_s > 0  # no rebound time stated: the simulator's own


def test_generated_parks_get_the_same_passwords() -> None:
    spec = with_charger_passwords(generate_park(batteries=0, chargers=3, loads=0), "k")
    expected = [charger_password("k", c.cp_id) for c in spec.chargers]
    assert [c.password for c in spec.chargers] == expected


async def test_enrolling_a_park_file_again_logs_what_it_overwrote(state: State) -> None:
    """The park file's metadata wins on enroll: a factor set since is reset, and that is logged."""
    park_file = load_park_file(DEMO_PARK)
    park_id = park_file.park.id
    await enroll_park(state, park_file)
    own = park_file.park.model_copy(
        update={"carbon": CarbonSettings(electricity_factor="mee-2023-national")}
    )
    assert await state.update_park(own, by="ops-token", role="park_operator") == ["carbon"]
    await enroll_park(state, park_file)
    assert (await state.get_park(park_id)).carbon.electricity_factor == "mee-2023-southern"
    updates = [f for _, f in await state.read_park_log(park_id) if f["event"] == "park.updated"]
    assert [(u["by"], u["fields"]) for u in updates[1:]] == [
        ("ops-token", "carbon"),
        ("park file", "carbon"),
    ]
    assert updates[0]["by"] == "park file" and updates[0]["data"]["before"] is None
    await enroll_park(state, park_file)  # the same again: nothing more to log
    assert (
        len([f for _, f in await state.read_park_log(park_id) if f["event"] == "park.updated"]) == 3
    )
