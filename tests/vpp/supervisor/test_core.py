"""The supervisor against simulated devices over real MQTT, Modbus TCP and OCPP on loopback.

Enrolled assets live in the real Redis under this test's namespace; the
devices are the simulators of ``adapters.sim``; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from adapters.ocpp.profiles import V21
from adapters.sim._clock import SimClock
from adapters.sim.battery import BatterySpec, ModbusBatteryServer
from adapters.sim.chargers import ChargerSpec, SimCharger
from adapters.sim.loads import LoadSpec
from tests.support import MqttRig, eventually
from tests.vpp.supervisor import assets
from tests.vpp.supervisor.assets import PARK, SECRET
from tests.vpp.supervisor.conftest import SupervisorFactory
from vpp.servers import free_port
from vpp.settings import Settings
from vpp.state import State
from vpp.supervisor import SetpointSink, charger_password

pytestmark = pytest.mark.timeout(60)


def _sim_charger(port: int, cp_id: str) -> SimCharger:
    spec = ChargerSpec(
        cp_id=cp_id, password=charger_password(SECRET, cp_id), version=V21, max_kw=11.0, v2g=True
    )
    return SimCharger(
        url=f"ws://127.0.0.1:{port}/ocpp/", spec=spec, clock=SimClock(),
        period_s=0.2, backoff_base=0.05,
    )  # fmt: skip


async def test_live_state_setpoints_and_metrics_for_every_protocol(
    state: State, sup_settings: Settings, supervisor: SupervisorFactory, mqtt: MqttRig
) -> None:
    modbus_port = free_port()
    await assets.enroll(
        state,
        assets.battery("bess-1", modbus_port),
        assets.load("hvac-1", mqtt.root),
        assets.charger("ev-1", "CP-1"),
    )
    battery = BatterySpec(asset_id="bess-1", unit_id=1, capacity_kwh=200.0, soc=0.5)
    load = LoadSpec(asset_id="hvac-1", baseline_kw=50.0, p_min_kw=10.0, p_max_kw=80.0)
    registry = CollectorRegistry()
    async with (
        ModbusBatteryServer(port=modbus_port, batteries=[battery]) as modbus,
        mqtt.fleet([load], period_s=0.2, backoff_base=0.05),
        supervisor(registry=registry) as sup,
        _sim_charger(sup_settings.ocpp.port, "CP-1"),
    ):  # fmt: skip
        assert isinstance(sup, SetpointSink)
        for asset_id in ("bess-1", "hvac-1", "ev-1"):
            await eventually(assets.live_since(state, asset_id))
        keys = state.park(PARK)
        ttl_ms = await state.redis.pttl(keys.live("bess-1"))
        assert 0 < ttl_ms <= 2000
        bess = await state.read_live(PARK, "bess-1")
        assert bess is not None and bess.soc == pytest.approx(0.5, abs=0.01)
        assert bess.energy_kwh == pytest.approx(100.0, abs=2.0)

        async def ev_session() -> bool:  # the EV states its needs just after plugging in
            ev = await state.read_live(PARK, "ev-1")
            return ev is not None and bool(ev.ev_connected) and ev.ev_departure is not None

        await eventually(ev_session)

        confs = await sup.send(
            PARK,
            {"bess-1": -20.0, "hvac-1": 30.0, "ev-1": -5.0, "ghost": 1.0},
            hold_s=60.0,
        )
        for asset_id in ("bess-1", "hvac-1", "ev-1"):
            conf = confs[asset_id]
            assert conf.asset_id == asset_id
            assert conf.confirmed and not conf.clamped, conf
            assert conf.rtt_s is not None
        assert modbus.models["bess-1"].setpoint_kw == pytest.approx(-20.0)
        ghost = confs["ghost"]
        assert not ghost.confirmed and ghost.sent_kw is None and "not enrolled" in ghost.reason

        # 500 kW is beyond the enrolled 50 kW charge limit: clamped, still confirmed.
        clamped = (await sup.send(PARK, {"bess-1": 500.0}, hold_s=60.0))["bess-1"]
        assert clamped.clamped and clamped.confirmed and clamped.sent_kw == pytest.approx(50.0)
        assert "p_max" in clamped.reason

        released = await sup.release(PARK, ["bess-1", "ev-1", "ghost"])
        assert released == {"bess-1": True, "ev-1": True, "ghost": False}
        assert modbus.models["bess-1"].setpoint_kw is None

        text = generate_latest(registry).decode()
        for name in (
            f'vpp_adapter_connected{{adapter="modbus-127.0.0.1:{modbus_port}",park="p1",'
            'protocol="modbus"} 1.0',
            'vpp_adapter_connected{adapter="mqtt-p1",park="p1",protocol="mqtt"} 1.0',
            f'vpp_adapter_connected{{adapter="ocpp-127.0.0.1:{sup_settings.ocpp.port}",park="*",'
            'protocol="ocpp"} 1.0',
            "vpp_adapter_last_telemetry_age_seconds{",
            "vpp_adapter_messages_total{",
            "vpp_adapter_bad_payloads_total{",
            "vpp_adapter_reconnects_total{",
            'vpp_setpoint_rtt_seconds_bucket{le="0.001",protocol="modbus"}',
            'vpp_setpoints_total{park="p1",protocol="modbus",result="clamped"} 1.0',
            'vpp_setpoints_total{park="p1",protocol="modbus",result="confirmed"} 1.0',
            'vpp_setpoints_total{park="p1",protocol="none",result="unconfirmed"} 1.0',
        ):
            assert name in text, name
    # Leaving unregisters: another supervisor may use the registry.
    assert "vpp_adapter_connected" not in generate_latest(registry).decode()


async def test_follows_enrollments_and_retirements_without_restart(
    state: State, sup_settings: Settings, supervisor: SupervisorFactory, mqtt: MqttRig
) -> None:
    await assets.enroll(state, assets.load("hvac-1", mqtt.root))
    loads = [LoadSpec(asset_id=a) for a in ("hvac-1", "hvac-2")]
    async with (
        mqtt.fleet(loads, period_s=0.2, backoff_base=0.05),
        supervisor(reconcile_interval_s=300.0) as sup,
        _sim_charger(sup_settings.ocpp.port, "CP-9") as late_charger,
    ):  # fmt: skip
        await eventually(assets.live_since(state, "hvac-1"))
        assert await state.read_live(PARK, "hvac-2") is None  # not enrolled: not written
        assert late_charger.connections == 0  # not enrolled: refused

        await assets.enroll(state, assets.load("hvac-2", mqtt.root), assets.charger("ev-9", "CP-9"))
        await eventually(assets.live_since(state, "hvac-2"))
        await eventually(assets.live_since(state, "ev-9"))
        assert late_charger.connections >= 1
        assert set(sup.routes(PARK)) == {"hvac-1", "hvac-2", "ev-9"}
        # enrolled while the listener ran: the adapter knows it, release reaches it
        assert await sup.release(PARK, ["ev-9"]) == {"ev-9": True}

        await state.retire(PARK, "hvac-1")
        await eventually(lambda: set(sup.routes(PARK)) == {"hvac-2", "ev-9"})
        # Past the 2 s TTL: nothing wrote the retired asset's key again.
        await asyncio.sleep(sup_settings.redis.live_ttl_s + 0.5)
        assert await state.read_live(PARK, "hvac-1") is None
        assert await state.read_live(PARK, "hvac-2") is not None
        confs = await sup.send(PARK, {"hvac-1": 40.0, "hvac-2": 30.0}, hold_s=30.0)
        assert not confs["hvac-1"].confirmed and confs["hvac-2"].confirmed
        assert not confs["hvac-2"].clamped

        # A patch of the enrolled limits reaches the clamp: the shed is now 10 kW.
        await state.patch_asset(PARK, "hvac-2", {"max_shed_kw": 10.0})

        async def shed_limited() -> bool:
            conf = (await sup.send(PARK, {"hvac-2": 30.0}, hold_s=30.0))["hvac-2"]
            return bool(conf.clamped and conf.sent_kw == pytest.approx(40.0))

        await eventually(shed_limited)


async def test_modbus_device_that_goes_away_and_comes_back_recovers(
    state: State, supervisor: SupervisorFactory
) -> None:
    registry = CollectorRegistry()
    async with (
        assets.modbus_battery(state, "bess-1") as modbus,
        supervisor(registry=registry) as sup,
    ):
        await eventually(assets.live_since(state, "bess-1"))
        adapter = sup.adapter(f"modbus-127.0.0.1:{modbus.port}")
        assert adapter is not None
        await modbus.stop()
        await eventually(lambda: not adapter.stats.connected)
        down = (await sup.send(PARK, {"bess-1": 10.0}, hold_s=30.0))["bess-1"]
        assert not down.confirmed and down.reason
        stopped_at = asyncio.get_running_loop().time()
        await modbus.start()
        wall = time.time()
        await eventually(assets.live_since(state, "bess-1", after=wall))
        assert adapter.stats.reconnects >= 1
        up = (await sup.send(PARK, {"bess-1": 10.0}, hold_s=30.0))["bess-1"]
        assert up.confirmed
        assert asyncio.get_running_loop().time() - stopped_at < 15
        text = generate_latest(registry).decode()
        assert 'vpp_adapter_reconnects_total{adapter="modbus-' in text


async def test_failed_adapter_is_restarted(
    state: State, sup_settings: Settings, supervisor: SupervisorFactory
) -> None:
    await assets.enroll(state, assets.charger("ev-1", "CP-1"))
    registry = CollectorRegistry()
    # Something else holds the OCPP port: the listener cannot start.
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", sup_settings.ocpp.port))
    squatter.listen()
    async with supervisor(registry=registry) as sup:
        label = f"ocpp-127.0.0.1:{sup_settings.ocpp.port}"
        restarts = f'vpp_adapter_restarts_total{{adapter="{label}",park="*",protocol="ocpp"}}'

        async def restarted() -> bool:
            return f"{restarts} 0.0" not in generate_latest(registry).decode()

        await eventually(restarted)
        squatter.close()
        async with _sim_charger(sup_settings.ocpp.port, "CP-1"):
            await eventually(assets.live_since(state, "ev-1"))
        assert sup.adapter(label) is not None


async def test_a_park_created_after_the_first_reconcile_is_served_at_the_next_park_poll(
    state: State, supervisor: SupervisorFactory, topic_prefix: str
) -> None:
    # The look for new parks was put off to the next full reconcile (30 s by
    # default), so a park enrolled just after start-up went unserved that long.
    async with supervisor(reconcile_interval_s=300.0, park_poll_s=0.2) as sup:
        assert sup.routes(PARK) == {}
        await assets.enroll(state, assets.load("hvac-1", topic_prefix))
        await eventually(lambda: "hvac-1" in sup.routes(PARK), within_s=20.0)
