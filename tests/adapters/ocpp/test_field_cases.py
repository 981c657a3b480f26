"""Issue 8 against a real OCPP peer: what field chargers send, message by message.

Each test connects a small charge point built on the ``ocpp`` package's
``ChargePoint`` over a real loopback websocket to the real CSMS adapter and
sends the exact messages of a case (cases 3, 6, 7 and 8 of issue 8).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import websockets
from ocpp.messages import Call, MessageType
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v201 import ChargePoint as ChargePoint201
from websockets.asyncio.client import connect

from adapters.ocpp import ChargerSettings, OcppCsmsAdapter
from adapters.ocpp.csms import PATH_PREFIX
from adapters.ocpp.session import on
from adapters.types import DeviceLimits, Setpoint, Telemetry
from tests.support import eventually

pytestmark = pytest.mark.timeout(60)

V201, V21 = "ocpp2.0.1", "ocpp2.1"
LIMITS = DeviceLimits(p_min_kw=-11, p_max_kw=11)
CHARGERS = {
    "cp-a": ChargerSettings(password="pw-a", limits=LIMITS, v2g=True),
    "cp-b": ChargerSettings(password="pw-b", limits=LIMITS, v2g=True),
}


def iso(offset_s: float = 0.0) -> str:
    """Now (plus an offset) as an OCPP dateTime."""
    return datetime.fromtimestamp(time.time() + offset_s, UTC).isoformat().replace("+00:00", "Z")


class _RawMixin:
    """Sends exact wire payloads (no schema check, no case conversion) and returns the answer."""

    #: while set, SetChargingProfile is not answered until it is released
    hold: asyncio.Event | None = None
    #: set once a held SetChargingProfile is being withheld
    holding: asyncio.Event | None = None
    # What the mixin uses of the ocpp ChargePoint it goes with (the package has no types).
    _send: Callable[[str], Awaitable[None]]
    _get_specific_response: Callable[[str, float], Awaitable[Any]]
    _call_result: Any

    async def send(self, action: str, payload: Any) -> list[Any]:
        call = Call(unique_id=uuid.uuid4().hex, action=action, payload=payload)
        await self._send(call.to_json())
        answer = await self._get_specific_response(call.unique_id, 10)
        if answer.message_type_id == MessageType.CallResult:
            return [3, answer.unique_id, answer.payload]
        return [4, answer.unique_id, answer.error_code, answer.error_description]

    async def ok(self, action: str, payload: Any) -> dict[str, Any]:
        answer = await self.send(action, payload)
        assert answer[0] == 3, answer
        return dict(answer[2])

    @on("SetChargingProfile")
    async def on_set_profile(self, **_: Any) -> Any:
        if self.hold is not None and self.holding is not None:
            self.holding.set()
            await self.hold.wait()  # a charger that does not answer
        return self._call_result.SetChargingProfile(status="Accepted")

    @on("ClearChargingProfile")
    def on_clear(self, **_: Any) -> Any:
        return self._call_result.ClearChargingProfile(status="Accepted")


# ocpp ships no type information: its ChargePoint is Any to mypy, which refuses it as a base.
class RawCp201(_RawMixin, ChargePoint201):  # type: ignore[misc]
    pass


class RawCp21(_RawMixin, ChargePoint21):  # type: ignore[misc]
    pass


@asynccontextmanager
async def charge_point(
    csms: OcppCsmsAdapter, cp_id: str = "cp-a", version: str = V201
) -> AsyncIterator[RawCp201 | RawCp21]:
    """A connected test charge point whose receive loop runs in the background."""
    auth = base64.b64encode(f"{cp_id}:{CHARGERS[cp_id].password}".encode()).decode()
    async with connect(
        f"ws://127.0.0.1:{csms.port}{PATH_PREFIX}{cp_id}",
        subprotocols=[websockets.Subprotocol(version)],
        additional_headers={"Authorization": f"Basic {auth}"},
    ) as ws:
        cp = (RawCp21 if version == V21 else RawCp201)(cp_id, ws, response_timeout=10)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _csms(**kw: Any) -> OcppCsmsAdapter:
    return OcppCsmsAdapter(port=0, chargers=CHARGERS, **kw)


def _park_excludes(reading: Telemetry) -> dict[str, str]:
    """What the park's flexibility view leaves out, given this charger reading."""
    import dispatch as dx
    from vpp.flex import build_view
    from vpp.model import EvCharger
    from vpp.supervisor._live import live_state
    from vpp.supervisor._routing import AdapterRoute, ocpp_key

    asset = EvCharger.model_validate({
        "id": reading.asset_id, "owner": "o", "grid_node": "n1", "v2g": True,
        "connection": {"protocol": "ocpp", "charge_point_id": reading.asset_id},
        "max_charge_kw": 11.0, "max_discharge_kw": 11.0,
    })  # fmt: skip
    route = AdapterRoute(
        "p1", asset.id, asset.kind, ocpp_key("127.0.0.1", 0), asset.id, LIMITS, v2g=True
    )
    start = datetime.fromtimestamp(60 * (time.time() // 60), UTC)
    view = build_view([asset], {asset.id: live_state(route, reading)}, dx.TimeGrid(16, start=start))
    return view.excluded


def _last(csms: OcppCsmsAdapter, cp_id: str = "cp-a") -> Telemetry:
    reading = csms.last(cp_id)
    assert reading is not None
    return reading


def meter_values(*sampled: dict[str, Any], ts: str | None = None, evse: int = 1) -> dict[str, Any]:
    return {
        "evseId": evse,
        "meterValue": [{"timestamp": ts or iso(), "sampledValue": list(sampled)}],
    }


def tx_event(
    event_type: str,
    tx_id: str,
    seq_no: int,
    *sampled: dict[str, Any],
    ts: str | None = None,
    offline: bool = False,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": ts or iso(),
        "triggerReason": {"Started": "CablePluggedIn", "Ended": "EVDeparted"}.get(
            event_type, "MeterValuePeriodic"
        ),
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": tx_id},
        "evse": {"id": 1, "connectorId": 1},
    }
    if offline:
        payload["offline"] = True
    if sampled:
        payload["meterValue"] = [{"timestamp": ts or iso(), "sampledValue": list(sampled)}]
    return payload


def power(watts: Any, **kw: Any) -> dict[str, Any]:
    return {"value": watts, "measurand": "Power.Active.Import", **kw}


AC_PARAMS = {"energyAmount": 20000, "evMinCurrent": 6, "evMaxCurrent": 16, "evMaxVoltage": 400}
AC_NEEDS = {
    "requestedEnergyTransfer": "AC_three_phase",
    "departureTime": iso(4 * 3600),
    "acChargingParameters": AC_PARAMS,
}


# -- case 6: per-phase and unit-bearing meter values ------------------------------

_W = {"measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}}
PHASES = [
    {"value": 7360, "phase": "L1", **_W},
    {"value": 0, "phase": "L2", **_W},
    {"value": 0, "phase": "L3", **_W},
]


@pytest.mark.parametrize(
    "total",
    [
        None,
        {"value": 7.36, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}},
        {
            "value": 7.36,
            "measurand": "Power.Active.Import",
            "unitOfMeasure": {"unit": "W", "multiplier": 3},
        },
    ],
    ids=["phases-only", "total-kW", "total-W-multiplier-3"],
)
async def test_case6_per_phase_and_unit_bearing_power_reads_7_36_kw(
    total: dict[str, Any] | None,
) -> None:
    async with _csms() as csms, charge_point(csms) as cp:
        sampled = [*PHASES, total] if total else PHASES
        await cp.ok("MeterValues", meter_values(*sampled))
        assert _last(csms).power_kw == pytest.approx(7.36)
        assert not csms.stats.rejected_fields


async def test_case6_phase_names_context_location_and_age() -> None:
    async with _csms() as csms, charge_point(csms) as cp:
        # L1-N names the same quantity as L1: counted once per line.
        await cp.ok("MeterValues", meter_values(
            power(2000, phase="L1"), power(2000, phase="L1-N"),
            power(2000, phase="L2-N"), power(2000, phase="L3-N"), power(50, phase="N"),
        ))  # fmt: skip
        assert _last(csms).power_kw == pytest.approx(6.0)
        # A reading taken at transaction begin is not "now".
        await cp.ok("MeterValues", meter_values(power(11000, context="Transaction.Begin")))
        await cp.ok("MeterValues", meter_values(power(11000, context="Sample.Clock")))
        assert _last(csms).power_kw == pytest.approx(6.0)
        # The outlet (what the EV gets) is preferred over the station's inlet.
        await cp.ok("MeterValues", meter_values(
            power(4000, location="Inlet"), power(3700, location="Outlet"),
        ))  # fmt: skip
        assert _last(csms).power_kw == pytest.approx(3.7)
        # An old sample is history, not live power (and it is counted).
        await cp.ok("MeterValues", meter_values(power(9000), ts=iso(-3600)))
        assert _last(csms).power_kw == pytest.approx(3.7)
        assert csms.stats.rejected_fields[("power_kw", "stale")] == 1
        # The station's main meter (evseId 0) is not this EVSE's power.
        await cp.ok("MeterValues", meter_values(power(20000), evse=0))
        assert _last(csms).power_kw == pytest.approx(3.7)
        # A unit of the wrong dimension drops the field, not the reading.
        await cp.ok("MeterValues", meter_values(
            power(1, unitOfMeasure={"unit": "kWh"}), power(2500, phase="L1"),
        ))  # fmt: skip
        assert _last(csms).power_kw == pytest.approx(2.5)
        assert csms.stats.rejected_fields[("power_kw", "unit")] == 1


async def test_case6_registers_restarting_per_session_are_rebased() -> None:
    def register(wh: float, **kw: Any) -> dict[str, Any]:
        return {"value": wh, "measurand": "Energy.Active.Import.Register", **kw}

    async with _csms() as csms, charge_point(csms) as cp:
        await cp.ok("TransactionEvent", tx_event("Started", "T1", 0, register(0)))
        await cp.ok("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": AC_NEEDS})
        await cp.ok(
            "TransactionEvent",
            tx_event("Updated", "T1", 1, register(5, unitOfMeasure={"unit": "kWh"})),
        )
        assert _last(csms).energy_needed_kwh == pytest.approx(15.0)
        await cp.ok("TransactionEvent", tx_event("Ended", "T1", 2, register(8000)))
        # The next session's meter restarts at zero; its needs come before the first reading.
        await cp.ok("TransactionEvent", tx_event("Started", "T2", 0))
        await cp.ok("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": AC_NEEDS})
        await cp.ok("TransactionEvent", tx_event("Updated", "T2", 1, register(1000)))
        reading = _last(csms)
        assert reading.energy_needed_kwh == pytest.approx(19.0)
        assert reading.energy_kwh == pytest.approx(9.0)  # 8 kWh, then 1 kWh more


async def test_case6_dc_needs_are_read() -> None:
    needs = {
        "requestedEnergyTransfer": "DC",
        "departureTime": iso(3600),
        "dcChargingParameters": {
            "evMaxCurrent": 125, "evMaxVoltage": 500, "evMaxPower": 50000,
            "energyAmount": 24000, "evEnergyCapacity": 60000, "stateOfCharge": 40,
        },
    }  # fmt: skip
    async with _csms() as csms, charge_point(csms) as cp:
        await cp.ok("TransactionEvent", tx_event("Started", "T1", 0))
        await cp.ok("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": needs})
        reading = _last(csms)
        assert reading.energy_needed_kwh == pytest.approx(24.0)
        assert reading.max_charge_kw == pytest.approx(50.0)
        assert reading.soc == pytest.approx(0.4)
        assert reading.departure_ts == pytest.approx(time.time() + 3600, abs=60)


async def test_case6_v2g_car_stating_only_its_target_soc_is_a_flexible_session() -> None:
    needs = {
        "requestedEnergyTransfer": "DC_BPT",
        "departureTime": iso(4 * 3600),
        "dcChargingParameters": {
            "evMaxCurrent": 30, "evMaxVoltage": 400, "evEnergyCapacity": 60000,
        },
        "v2xChargingParameters": {
            "targetSoC": 80, "maxChargePower": 11000, "maxDischargePower": 11000,
        },
    }  # fmt: skip
    soc = {"value": 30, "measurand": "SoC", "location": "EV", "unitOfMeasure": {"unit": "Percent"}}
    async with _csms() as csms, charge_point(csms, version=V21) as cp:
        await cp.ok("TransactionEvent", tx_event("Started", "T1", 0, soc))
        await cp.ok("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": needs})
        reading = _last(csms)
        assert reading.ev_connected and reading.departure_ts is not None
        assert reading.energy_needed_kwh == pytest.approx(30.0)  # (0.8 - 0.3) x 60 kWh
        assert reading.max_discharge_kw == pytest.approx(11.0)
        assert _park_excludes(reading) == {}  # in the park, its discharge usable
        # The need follows the SoC as the car charges.
        await cp.ok("TransactionEvent", tx_event("Updated", "T1", 1, {**soc, "value": 70}))
        assert _last(csms).energy_needed_kwh == pytest.approx(6.0)
        # Its discharge is now usable: the park takes it (a V2G setpoint is confirmed).
        conf = await csms.apply(Setpoint(asset_id="cp-a", power_kw=-5.0, hold_s=60))
        assert conf.confirmed and conf.sent_kw == -5.0, conf


async def test_case6_target_soc_without_a_stated_capacity_is_learned_from_the_meter() -> None:
    needs = {
        "requestedEnergyTransfer": "AC_BPT",
        "departureTime": iso(4 * 3600),
        "v2xChargingParameters": {
            "targetSoC": 80, "maxChargePower": 11000, "maxDischargePower": 11000,
        },
    }  # fmt: skip

    def soc(pct: float) -> dict[str, Any]:
        return {"value": pct, "measurand": "SoC", "location": "EV"}

    def register(kwh: float) -> dict[str, Any]:
        return {"value": kwh, "unitOfMeasure": {"unit": "kWh"}}

    async with _csms() as csms, charge_point(csms, version=V21) as cp:
        await cp.ok("TransactionEvent", tx_event("Started", "T1", 0, soc(30), register(100)))
        await cp.ok("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": needs})
        assert _last(csms).energy_needed_kwh is None  # no capacity known yet
        await cp.ok("TransactionEvent", tx_event("Updated", "T1", 1, soc(35), register(103)))
        assert _last(csms).energy_needed_kwh is None  # moved too little to tell
        await cp.ok("TransactionEvent", tx_event("Updated", "T1", 2, soc(40), register(106)))
        # 6 kWh moved the SoC 10 points: a 60 kWh battery, 40 points short of its target.
        assert _last(csms).energy_needed_kwh == pytest.approx(24.0)
        assert _park_excludes(_last(csms)) == {}


@pytest.mark.parametrize(
    ("v2x", "kwh"),
    [
        (
            {
                "evTargetEnergyRequest": 12000,
                "evMinEnergyRequest": 3000,
                "evMaxEnergyRequest": 30000,
            },
            12.0,
        ),
        ({"evMinEnergyRequest": 3000, "evMaxEnergyRequest": 30000}, 3.0),
        ({"evTargetEnergyRequest": -2000, "evMinEnergyRequest": -9000}, 0.0),
    ],
    ids=["target", "minimum-only", "above-target"],
)
async def test_case6_v2x_energy_requests(v2x: dict[str, Any], kwh: float) -> None:
    needs = {
        "requestedEnergyTransfer": "AC_BPT",
        "departureTime": iso(3600),
        "v2xChargingParameters": {**v2x, "maxChargePower": 7400, "maxDischargePower": 3700,
                                  "maxDischargePower_L2": 3700, "maxDischargePower_L3": 3700},
    }  # fmt: skip
    async with _csms() as csms, charge_point(csms, version=V21) as cp:
        await cp.ok("TransactionEvent", tx_event("Started", "T1", 0))
        await cp.ok("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": needs})
        reading = _last(csms)
        assert reading.energy_needed_kwh == pytest.approx(kwh)
        assert reading.max_discharge_kw == pytest.approx(11.1)  # L1 + L2 + L3


# -- case 7: a late or repeated TransactionEvent --------------------------------------


async def test_case7_late_and_repeated_events_of_another_transaction_leave_the_live_one() -> None:
    async with _csms() as csms, charge_point(csms) as cp:
        await cp.ok("TransactionEvent", tx_event("Started", "T2", 0, power(7000)))
        await cp.ok("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": AC_NEEDS})
        live = _last(csms)
        assert live.ev_connected and live.energy_needed_kwh == pytest.approx(20.0)

        await cp.ok("TransactionEvent", tx_event("Ended", "T1", 5, ts=iso(-1800), offline=True))
        await cp.ok("TransactionEvent", tx_event("Updated", "T1", 3, power(1000), ts=iso(-2400)))
        after = _last(csms)
        assert after.ev_connected and after.energy_needed_kwh == pytest.approx(20.0)
        assert after.power_kw == pytest.approx(7.0)
        conf = await csms.apply(Setpoint(asset_id="cp-a", power_kw=4.0, hold_s=60))
        assert conf.confirmed, conf

        # Even an online, advancing seqNo never reopens T1.
        await cp.ok("TransactionEvent", tx_event("Updated", "T1", 99, power(1000)))
        assert _last(csms).power_kw == pytest.approx(7.0) and _last(csms).ev_connected

        # A non-advancing seqNo of the live transaction is a retry: ignored.
        await cp.ok("TransactionEvent", tx_event("Updated", "T2", 1, power(4000)))
        await cp.ok("TransactionEvent", tx_event("Updated", "T2", 1, power(11000)))
        assert _last(csms).power_kw == pytest.approx(4.0)
        # Offline events are history, not live power.
        await cp.ok("TransactionEvent", tx_event("Updated", "T2", 2, power(9000), offline=True))
        assert _last(csms).power_kw == pytest.approx(4.0)

        # A BootNotification resets the station's sessions.
        await cp.ok("BootNotification", {
            "reason": "PowerUp", "chargingStation": {"model": "m", "vendorName": "v"},
        })  # fmt: skip
        booted = _last(csms)
        assert not booted.ev_connected and booted.energy_needed_kwh is None
        # ... and the ended T1 stays ended.
        await cp.ok("TransactionEvent", tx_event("Updated", "T1", 100, power(1000)))
        assert not _last(csms).ev_connected


async def test_case7_retry_of_an_unknown_older_transaction_does_not_take_over() -> None:
    async with _csms() as csms, charge_point(csms) as cp:
        await cp.ok("TransactionEvent", tx_event("Started", "T2", 0, power(7000)))
        await cp.ok("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": AC_NEEDS})
        await cp.ok("TransactionEvent", tx_event("Updated", "T1", 3, power(1000), ts=iso(-600)))
        # A late "Available" from before T2 began does not end T2 either.
        await cp.ok("StatusNotification", {
            "timestamp": iso(-600), "connectorStatus": "Available", "evseId": 1, "connectorId": 1,
        })  # fmt: skip
        reading = _last(csms)
        assert reading.ev_connected and reading.power_kw == pytest.approx(7.0)
        assert reading.energy_needed_kwh == pytest.approx(20.0)
        # A new session that starts now does take the EVSE over.
        await cp.ok("TransactionEvent", tx_event("Started", "T3", 0, power(2000)))
        reading = _last(csms)
        assert reading.ev_connected and reading.energy_needed_kwh is None
        assert reading.power_kw == pytest.approx(2.0)


async def test_case7_another_evse_of_the_station_never_touches_the_live_session() -> None:
    async with _csms() as csms, charge_point(csms) as cp:
        await cp.ok("TransactionEvent", tx_event("Started", "T2", 0, power(7000)))
        await cp.ok("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": AC_NEEDS})
        other = tx_event("Started", "T9", 0, power(1000))
        other["evse"] = {"id": 2, "connectorId": 1}
        await cp.ok("TransactionEvent", other)
        await cp.ok("MeterValues", meter_values(power(2000), evse=2))
        needs = {**AC_NEEDS, "acChargingParameters": {**AC_PARAMS, "energyAmount": 1}}
        await cp.ok("NotifyEVChargingNeeds", {"evseId": 2, "chargingNeeds": needs})
        await cp.ok("StatusNotification", {
            "timestamp": iso(), "connectorStatus": "Available", "evseId": 2, "connectorId": 1,
        })  # fmt: skip
        reading = _last(csms)
        assert reading.ev_connected and reading.power_kw == pytest.approx(7.0)
        assert reading.energy_needed_kwh == pytest.approx(20.0)


# -- case 8: an impossible value in one field -----------------------------------------


async def test_case8_impossible_soc_is_dropped_and_the_power_beside_it_kept() -> None:
    from vpp.supervisor._live import live_state
    from vpp.supervisor._routing import AdapterRoute

    bad_soc = {
        "value": 65535,
        "measurand": "SoC",
        "location": "EV",
        "unitOfMeasure": {"unit": "Percent"},
    }
    route = AdapterRoute("p1", "cp-a", "ev_charger", None, "cp-a", LIMITS)  # type: ignore[arg-type]
    async with _csms() as csms, charge_point(csms) as cp:
        await cp.ok("TransactionEvent", tx_event("Started", "T1", 0))
        await cp.ok(
            "MeterValues",
            meter_values(bad_soc, {"value": 7200, "measurand": "Power.Active.Import"}),
        )
        reading = _last(csms)
        assert reading.power_kw == pytest.approx(7.2)
        assert reading.soc is None and reading.available
        assert csms.stats.rejected_fields[("soc", "out_of_range")] == 1
        live_state(route, reading)  # the service's live state takes it
        await cp.ok("MeterValues", meter_values(
            {"value": 55, "measurand": "SoC", "location": "EV"}, power(6000),
        ))  # fmt: skip
        later = _last(csms)
        assert later.soc == pytest.approx(0.55) and later.power_kw == pytest.approx(6.0)
        assert live_state(route, later).soc == pytest.approx(0.55)


async def test_case8_schema_failure_answers_the_spec_error_and_keeps_the_good_fields() -> None:
    needs = {
        "requestedEnergyTransfer": "DC",
        "departureTime": iso(3600),
        "dcChargingParameters": {
            "evMaxCurrent": 125, "evMaxVoltage": 500, "energyAmount": 24000, "stateOfCharge": 65535,
        },
    }  # fmt: skip
    async with _csms() as csms, charge_point(csms) as cp:
        await cp.ok("TransactionEvent", tx_event("Started", "T1", 0))
        answer = await cp.send("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": needs})
        assert answer[0] == 4 and answer[2] == "PropertyConstraintViolation", answer
        reading = _last(csms)
        assert reading.energy_needed_kwh == pytest.approx(24.0) and reading.soc is None
        assert csms.stats.rejected_fields[("soc", "out_of_range")] == 1
        # A wrongly typed value: TypeConstraintViolation, the rest of the message used.
        answer = await cp.send("TransactionEvent", tx_event(
            "Updated", "T1", 1, power("7200"), {"value": 48, "measurand": "SoC"},
        ))  # fmt: skip
        assert answer[0] == 4 and answer[2] == "TypeConstraintViolation", answer
        assert _last(csms).soc == pytest.approx(0.48)
        assert csms.stats.rejected_fields[("power_kw", "not_a_number")] == 1
        # An unreadable offline flag: the event is history, never live power.
        answer = await cp.send("TransactionEvent", {
            **tx_event("Updated", "T1", 2, power(11000)), "offline": "yes",
        })  # fmt: skip
        assert answer[0] == 4 and answer[2] == "TypeConstraintViolation", answer
        assert _last(csms).power_kw != pytest.approx(11.0)
        assert csms.stats.rejected_fields[("offline", "not_a_boolean")] == 1
        # A missing required field: OccurrenceConstraintViolation; unknown ones: FormatViolation.
        answer = await cp.send("MeterValues", {"evseId": 1})
        assert answer[0] == 4 and answer[2] == "OccurrenceConstraintViolation", answer
        answer = await cp.send("Heartbeat", {"bogus": 1})
        assert answer[0] == 4 and answer[2] == "FormatViolation", answer
        # The charger's later messages are taken as before.
        await cp.ok("MeterValues", meter_values(power(6500)))
        assert _last(csms).power_kw == pytest.approx(6.5) and _last(csms).available
        assert csms.stats.bad_payloads == 5


# -- case 3: one charger's failure never silences another -----------------------------


async def test_case3_hung_call_bad_frames_and_dropped_socket_stay_with_their_charger() -> None:
    async with _csms(call_timeout_s=30) as csms, charge_point(csms, "cp-b", V21) as b:
        await b.ok("TransactionEvent", tx_event("Started", "TB", 0, power(3000)))
        async with charge_point(csms, "cp-a", V21) as a:
            a.hold, a.holding = asyncio.Event(), asyncio.Event()
            await a.ok("TransactionEvent", tx_event("Started", "TA", 0, power(5000)))
            hung = asyncio.create_task(csms.apply(Setpoint(asset_id="cp-a", power_kw=2.0)))
            await asyncio.wait_for(a.holding.wait(), 10)
            # While A withholds its answer, B takes setpoints and readings.
            conf_b = await csms.apply(Setpoint(asset_id="cp-b", power_kw=-4.0, hold_s=60))
            assert conf_b.confirmed, conf_b
            # A's bad frames are A's alone.
            ws = a._connection
            for frame in ("not json", "[2]", '[2, "x", "MeterValues", []]', '[5, "x", {}]'):
                await ws.send(frame)
            await b.ok("MeterValues", meter_values(power(3300)))
            assert _last(csms, "cp-b").power_kw == pytest.approx(3.3)
            assert not hung.done()  # A's answer is provably still withheld
            a.hold.set()
            assert (await hung).confirmed
        # A's websocket is gone: A is unavailable at once, B still live.
        await eventually(lambda: not _last(csms, "cp-a").available)
        await b.ok("MeterValues", meter_values(power(3400)))
        assert _last(csms, "cp-b").available and _last(csms, "cp-b").power_kw == pytest.approx(3.4)
        assert "cp-b" in csms.connected_chargers and "cp-a" not in csms.connected_chargers


async def test_case3_a_charger_that_goes_silent_at_once_is_published_unavailable() -> None:
    async with _csms() as csms:
        async with charge_point(csms, "cp-a", V21):
            await eventually(lambda: "cp-a" in csms.connected_chargers)
        await eventually(lambda: csms.last("cp-a") is not None)
        assert not _last(csms).available


async def test_case3_a_call_a_charger_never_answers_ends_in_a_refusal() -> None:
    async with _csms(call_timeout_s=1) as csms, charge_point(csms, "cp-a", V21) as a:
        a.hold, a.holding = asyncio.Event(), asyncio.Event()
        await a.ok("TransactionEvent", tx_event("Started", "TA", 0, power(5000)))
        conf = await csms.apply(Setpoint(asset_id="cp-a", power_kw=2.0))
        assert a.holding.is_set() and not conf.confirmed and "no answer within" in conf.reason, conf
        assert _last(csms).available


async def test_case3_an_unserved_21_call_is_answered_not_left_hanging() -> None:
    async with _csms() as csms, charge_point(csms, "cp-a", V21) as cp:
        answer = await cp.send("Authorize", {"idToken": {"idToken": "abc", "type": "ISO14443"}})
        assert answer[0] == 4 and answer[2] == "NotImplemented", answer
        answer = await cp.send("NoSuchAction", {})
        assert answer[0] == 4 and answer[2] == "NotSupported", answer
        assert "currentTime" in await cp.ok("Heartbeat", {})


async def test_sampled_value_json_is_sent_verbatim() -> None:
    """The test charge point sends the exact wire text (guards the helper itself)."""
    call = Call(unique_id="u", action="MeterValues", payload=meter_values(*PHASES, ts="t"))
    assert json.loads(call.to_json())[3]["meterValue"][0]["sampledValue"] == PHASES
