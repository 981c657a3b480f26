"""OCPP CSMS adapter against simulated charge points over loopback websockets."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
import websockets
from websockets.asyncio.client import connect

from adapters.errors import UnknownAsset
from adapters.ocpp import ChargerSettings, OcppCsmsAdapter, set_profile_request
from adapters.ocpp.csms import PATH_PREFIX
from adapters.sim._clock import SimClock
from adapters.sim.chargers import ChargerSpec, SimCharger
from adapters.types import DeviceLimits, Setpoint, Telemetry
from tests.support import DEMO_PARK, eventually

pytestmark = pytest.mark.timeout(60)

LIMITS = DeviceLimits(p_min_kw=-11, p_max_kw=11)
SPECS = {
    "v2g-1": ChargerSpec(cp_id="v2g-1", password="pw-v2g", version="ocpp2.1", v2g=True),
    "oneway-1": ChargerSpec(cp_id="oneway-1", password="pw-one", version="ocpp2.0.1"),
}


def _csms(**kw: object) -> OcppCsmsAdapter:
    chargers = {
        cp: ChargerSettings(password=s.password, limits=LIMITS, v2g=s.v2g)
        for cp, s in SPECS.items()
    }
    return OcppCsmsAdapter(port=0, chargers=chargers, call_timeout_s=5)


def _sim(csms: OcppCsmsAdapter, cp: str) -> SimCharger:
    return SimCharger(
        url=f"ws://127.0.0.1:{csms.port}{PATH_PREFIX}",
        spec=SPECS[cp],
        clock=SimClock(time_scale=1),
        period_s=0.1,
        backoff_base=0.05,
    )


async def _session_reading(csms: OcppCsmsAdapter, cp: str, after: float = 0.0) -> Telemetry:
    async with asyncio.timeout(10):
        async for reading in csms.telemetry():
            fresh = reading.ts > after and reading.energy_needed_kwh is not None
            if reading.asset_id == cp and reading.ev_connected and fresh:
                return reading
    raise AssertionError("unreachable")


async def test_session_flexibility_and_v2g_discharge() -> None:
    async with _csms() as csms, _sim(csms, "v2g-1") as sim:
        reading = await _session_reading(csms, "v2g-1")
        assert reading.energy_needed_kwh == pytest.approx(30.0, abs=0.5)
        assert reading.max_discharge_kw == pytest.approx(11.0)
        assert reading.departure_ts is not None and reading.departure_ts > time.time()
        assert reading.soc == pytest.approx(0.3, abs=0.01)
        conf = await csms.apply(Setpoint(asset_id="v2g-1", power_kw=-7.0, hold_s=60))
        assert conf.confirmed and conf.sent_kw == -7.0 and not conf.clamped, conf
        await eventually(lambda: sim.power_kw == pytest.approx(-7.0))
        after = await _session_reading(csms, "v2g-1", after=time.time())
        assert after.power_kw == pytest.approx(-7.0)
        over = await csms.apply(Setpoint(asset_id="v2g-1", power_kw=50.0))
        assert over.clamped and over.sent_kw == 11.0 and over.confirmed
        assert await csms.release("v2g-1")
        assert sim.profile_kw is None


async def test_one_way_charger_never_discharges() -> None:
    async with _csms() as csms, _sim(csms, "oneway-1") as sim:
        await _session_reading(csms, "oneway-1")
        conf = await csms.apply(Setpoint(asset_id="oneway-1", power_kw=-7.0))
        assert conf.clamped and conf.sent_kw == 0.0 and conf.confirmed
        assert "one-way" in conf.reason
        await eventually(lambda: sim.profile_kw == 0.0)
        assert sim.power_kw >= 0.0
        ok = await csms.apply(Setpoint(asset_id="oneway-1", power_kw=5.0))
        assert ok.confirmed and ok.sent_kw == 5.0


async def test_charger_reconnects_and_telemetry_resumes() -> None:
    async with _csms() as csms, _sim(csms, "v2g-1") as sim:
        await _session_reading(csms, "v2g-1")
        await sim.drop_connection()
        await eventually(lambda: sim.connections >= 2 and "v2g-1" in csms.connected_chargers)
        await _session_reading(csms, "v2g-1", after=time.time())
        assert csms.stats.reconnects >= 1
        assert (await csms.apply(Setpoint(asset_id="v2g-1", power_kw=3.0))).confirmed


async def test_schema_violation_is_counted_and_connection_survives() -> None:
    async with _csms() as csms:
        auth = base64.b64encode(b"oneway-1:pw-one").decode()
        async with connect(
            f"ws://127.0.0.1:{csms.port}{PATH_PREFIX}oneway-1",
            subprotocols=[websockets.Subprotocol("ocpp2.0.1")],
            additional_headers={"Authorization": f"Basic {auth}"},
        ) as ws:
            await ws.send(json.dumps([2, "m1", "BootNotification", {"reason": 42}]))
            answer = json.loads(await ws.recv())
            assert answer[0] == 4 and answer[1] == "m1"
            await ws.send("this is not json")
            await ws.send(json.dumps([2, "m2", "Heartbeat", {}]))
            answer = json.loads(await ws.recv())
            assert answer[0] == 3 and "currentTime" in answer[2]
        assert csms.stats.bad_payloads == 2


async def test_basic_auth_is_required() -> None:
    async with _csms() as csms:
        url = f"ws://127.0.0.1:{csms.port}{PATH_PREFIX}v2g-1"
        for header in ({}, {"Authorization": "Basic " + base64.b64encode(b"v2g-1:no").decode()}):
            with pytest.raises(websockets.InvalidStatus) as info:
                async with connect(
                    url, subprotocols=[websockets.Subprotocol("ocpp2.1")], additional_headers=header
                ):
                    pass
            assert info.value.response.status_code == 401


def test_per_phase_names_follow_the_21_schema() -> None:
    req = set_profile_request(
        version="ocpp2.1", evse_id=1, profile_id=1, transaction_id="t", power_w=-6000,
        duration_s=60, v2g=True, phases_w=[-2000, -2000, -2000],
    )  # fmt: skip
    period = req["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]
    assert period == {
        "startPeriod": 0,
        "operationMode": "CentralSetpoint",
        "setpoint": -2000,
        "setpoint_L2": -2000,
        "setpoint_L3": -2000,
    }
    with pytest.raises(ValueError):
        set_profile_request(
            version="ocpp2.0.1", evse_id=1, profile_id=1, transaction_id="t", power_w=-1,
            duration_s=60, v2g=True,
        )  # fmt: skip


def test_demo_park_file_loads() -> None:
    import tomllib

    from adapters.sim.park import park_spec

    path = DEMO_PARK
    if not path.exists():
        pytest.skip("no demo park file")
    spec = park_spec(tomllib.loads(path.read_text()))
    assert spec.batteries and spec.chargers and spec.loads
    assert any(c.v2g for c in spec.chargers)


async def test_charger_enrolled_while_listening_takes_setpoints_and_release() -> None:
    settings = ChargerSettings(password=SPECS["v2g-1"].password, limits=LIMITS, v2g=True)
    async with OcppCsmsAdapter(port=0, chargers={}, call_timeout_s=5) as csms:
        csms.update_chargers({"v2g-1": settings})
        async with _sim(csms, "v2g-1"):
            await _session_reading(csms, "v2g-1")
            conf = await csms.apply(Setpoint(asset_id="v2g-1", power_kw=-5.0, hold_s=60))
            assert conf.confirmed, conf
            assert await csms.release("v2g-1")
            csms.update_chargers({})
            with pytest.raises(UnknownAsset):
                await csms.apply(Setpoint(asset_id="v2g-1", power_kw=3.0))
            assert "v2g-1" in csms.connected_chargers  # retired, still connected


async def test_wait_stopped_returns_when_the_listener_closes() -> None:
    csms = _csms()
    async with csms:
        waiter = asyncio.create_task(csms.wait_stopped())
        await asyncio.sleep(0.05)
        assert not waiter.done()
    assert await asyncio.wait_for(waiter, 5) is None
