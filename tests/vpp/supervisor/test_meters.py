"""Meters through the supervisor: routed, scaled by their multiplier into live state, never set.

A meter reports its secondary side (primary / multiplier); the live state,
which the interval history is recorded from, holds primary kW. The devices
are the simulators of ``adapters.sim`` on loopback (Modbus TCP, MQTT);
nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from adapters.modbus import METER_REFUSAL
from adapters.sim._clock import SimClock
from adapters.sim.battery import BatterySpec, ModbusBatteryServer
from adapters.sim.meters import MeterModel, MeterSpec
from adapters.sim.park import run_park
from adapters.sunspec import PowerSign
from adapters.types import DeviceLimits, Telemetry, TelemetrySource
from tests.support import MqttRig, eventually
from tests.vpp.samples import sample
from tests.vpp.supervisor import assets
from tests.vpp.supervisor.assets import PARK
from tests.vpp.supervisor.conftest import SupervisorFactory
from tests.vpp.test_parkfile_meters import metered_park
from vpp.model import parse_asset
from vpp.parkfile import enroll_park, simulator_spec
from vpp.servers import free_port
from vpp.state import State
from vpp.supervisor import AdapterRoute, plan_park
from vpp.supervisor._live import live_state
from vpp.supervisor._routing import ocpp_key

pytestmark = pytest.mark.timeout(60)

#: CT 400/5 A x VT 10 kV/100 V: the meter reads 1/8000 of the primary power.
MULTIPLIER = 8000.0
BASE_KW = 1600.0


def _modbus(port: int, unit_id: int = 2, **extra: object) -> dict[str, object]:
    return {"protocol": "modbus", "host": "127.0.0.1", "port": port, "unit_id": unit_id, **extra}


def test_meters_are_routed_with_their_multiplier_and_import_only_ones_are_not() -> None:
    mqtt = {"protocol": "mqtt", "topic_prefix": f"vpp/{PARK}/m-mqtt"}
    found = [
        parse_asset(assets.meter("m-modbus", _modbus(502, power_sign="discharge_positive"), 40.0)),
        parse_asset(assets.meter("m-mqtt", mqtt, 2.5)),
        parse_asset(assets.meter("m-import", None)),
        parse_asset(assets.battery("bess-1", 502, unit_id=1)),
    ]
    routes, notes = plan_park(PARK, found, mqtt_root="vpp", ocpp=ocpp_key("127.0.0.1", 9000))
    by_id = {r.asset_id: r for r in routes}
    assert set(by_id) == {"m-modbus", "m-mqtt", "bess-1"} and notes == []
    assert by_id["m-modbus"].meter and by_id["m-modbus"].multiplier == 40.0
    assert by_id["m-modbus"].power_sign is PowerSign.DISCHARGE_POSITIVE
    assert by_id["m-modbus"].key == by_id["bess-1"].key  # one gateway, one adapter
    assert by_id["m-mqtt"].meter and by_id["m-mqtt"].multiplier == 2.5
    assert not by_id["bess-1"].meter and by_id["bess-1"].multiplier == 1.0
    pv = parse_asset(sample("pv", id="pv-1"))
    _, notes = plan_park(PARK, [pv], mqtt_root="vpp", ocpp=ocpp_key("127.0.0.1", 9000))
    assert notes == [f"{PARK}/pv-1: no Modbus adapter for pv (batteries and meters only)"]


def test_live_state_is_the_primary_power_of_a_meter() -> None:
    meter = parse_asset(assets.meter("m1", _modbus(502), MULTIPLIER))
    battery = parse_asset(assets.battery("bess-1", 502, unit_id=1))
    routes, _ = plan_park(PARK, [meter, battery], mqtt_root="vpp", ocpp=ocpp_key("h", 1))
    by_id: dict[str, AdapterRoute] = {r.asset_id: r for r in routes}
    reading = Telemetry(asset_id="m1", ts=1.7e9, power_kw=0.2, energy_kwh=12.5)
    assert live_state(by_id["m1"], reading).power_kw == pytest.approx(1600.0)
    device = Telemetry(asset_id="bess-1", ts=1.7e9, power_kw=0.2, soc=0.5)
    assert live_state(by_id["bess-1"], device).power_kw == pytest.approx(0.2)


async def test_a_modbus_meter_is_live_in_primary_kw_and_refuses_setpoints(
    state: State, supervisor: SupervisorFactory
) -> None:
    port = free_port()
    meter_conn = _modbus(port)
    await assets.enroll(
        state, assets.battery("bess-1", port), assets.meter("m1", meter_conn, MULTIPLIER)
    )
    srv = ModbusBatteryServer(port=port, batteries=[BatterySpec(asset_id="bess-1", unit_id=1)])
    # a 10 kV meter: 2 MW primary is 250 W on its secondary side (W_SF -2: 0.01 W)
    spec = MeterSpec(
        asset_id="m1", unit_id=2, base_load_kw=BASE_KW, multiplier=MULTIPLIER, rated_kw=2000.0
    )
    model = MeterModel(spec, [srv.models["bess-1"]], srv.clock)
    srv.add_meters([model])
    registry = CollectorRegistry()
    async with srv, supervisor(registry=registry) as sup:

        async def primary(kw: float) -> bool:
            live = await state.read_live(PARK, "m1")
            return live is not None and live.power_kw == pytest.approx(kw, abs=0.5)

        await eventually(lambda: primary(BASE_KW))
        confs = await sup.send(PARK, {"m1": -300.0, "bess-1": -40.0}, hold_s=60.0)
        refused = confs["m1"]
        assert not refused.confirmed and refused.sent_kw is None
        assert refused.reason == METER_REFUSAL
        assert confs["bess-1"].confirmed
        # the battery feeds 40 kW in: the enterprise imports 40 kW less
        await eventually(lambda: primary(BASE_KW - 40.0))
        assert await sup.release(PARK, ["m1", "bess-1"]) == {"m1": False, "bess-1": True}
        text = generate_latest(registry).decode()
        label = f'adapter="modbus-127.0.0.1:{port}",park="{PARK}",protocol="modbus"'
        meter_readings = [
            line for line in text.splitlines()
            if line.startswith(f"vpp_adapter_meter_readings_total{{{label}}}")
        ]  # fmt: skip
        assert meter_readings and float(meter_readings[0].rsplit(" ", 1)[1]) > 0
        # a refused meter setpoint reached no device: not counted as a setpoint
        assert 'result="unconfirmed"' not in text


async def test_an_mqtt_meter_is_live_in_primary_kw_and_its_garbage_fields_are_dropped(
    state: State, supervisor: SupervisorFactory, mqtt: MqttRig
) -> None:
    conn = {"protocol": "mqtt", "topic_prefix": f"{mqtt.root}/{PARK}/m1"}
    await assets.enroll(state, assets.meter("m1", conn, 40.0))

    class Idle:
        power_kw = 200.0  # a device of the enterprise drawing 200 kW

    meter = MeterModel(
        MeterSpec(asset_id="m1", base_load_kw=600.0, multiplier=40.0), [Idle()], SimClock()
    )
    async with mqtt.fleet([], meters=[meter], period_s=0.1), supervisor() as sup:

        async def primary(kw: float) -> bool:
            live = await state.read_live(PARK, "m1")
            return live is not None and live.power_kw == pytest.approx(kw, abs=0.01)

        await eventually(lambda: primary(800.0))  # 20 kW on the meter x 40
        adapter = sup.adapter(f"mqtt-{PARK}")
        assert adapter is not None
        async with mqtt.client() as device:
            bad = {"p_kw": 21.0, "e_kwh": "lots", "soc": 7}
            await device.publish(mqtt.topics.telemetry("m1"), json.dumps(bad).encode())
            stats = adapter.stats
            await eventually(lambda: stats.rejected_fields[("e_kwh", "not_a_number")] >= 1)
        assert stats.rejected_fields[("soc", "out_of_range")] >= 1
        assert stats.bad_payloads == 0
        refused = (await sup.send(PARK, {"m1": 0.0}, hold_s=10.0))["m1"]
        assert not refused.confirmed and refused.reason == METER_REFUSAL
        assert await sup.release(PARK, ["m1"]) == {"m1": False}


def test_a_meter_route_takes_no_setpoint_limits() -> None:
    meter = parse_asset(assets.meter("m1", _modbus(502)))
    (route,), _ = plan_park(PARK, [meter], mqtt_root="vpp", ocpp=ocpp_key("h", 1))
    assert route.limits == DeviceLimits(p_min_kw=0.0, p_max_kw=0.0)
    assert route.key.protocol is TelemetrySource.MODBUS


async def test_a_simulated_parks_meters_read_their_enterprises_in_primary_kw(
    state: State, supervisor: SupervisorFactory, mqtt: MqttRig
) -> None:
    port = free_port()
    park_file = metered_park(mqtt.root, port, PARK)
    await enroll_park(state, park_file)
    spec = simulator_spec(park_file, ocpp_secret="x")
    started = asyncio.Event()
    devices = asyncio.create_task(run_park(
        spec, mqtt_host=mqtt.host, mqtt_port=mqtt.port, mqtt_root=mqtt.root, period_s=0.1,
        started=started,
    ))  # fmt: skip
    try:
        await asyncio.wait_for(started.wait(), 10)
        async with supervisor() as sup:

            async def primary(asset_id: str, kw: float) -> bool:
                live = await state.read_live(PARK, asset_id)
                return live is not None and live.power_kw == pytest.approx(kw, abs=0.05)

            # A: the least base load, its battery idle; B: 100 kW base + its 100 kW line
            await eventually(lambda: primary("meter-a", 50.0))
            await eventually(lambda: primary("meter-b", 200.0))
            confs = await sup.send(PARK, {"bess-a": 40.0}, hold_s=60.0)
            assert confs["bess-a"].confirmed
            await eventually(lambda: primary("meter-a", 90.0))
            assert await state.read_live(PARK, "meter-b-grid") is None  # import only
    finally:
        devices.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await devices
