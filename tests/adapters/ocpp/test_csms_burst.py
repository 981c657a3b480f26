"""A setpoint burst to many chargers at once: each call its own, a stalled charger holds no other.

Real simulated charge points over loopback websockets. One charger stops
reading (its SetChargingProfile handler never returns, so it answers
nothing after it): every other charger's profile is accepted and confirmed
before the stalled one's call gives up, and the stalled one is reported
unconfirmed with the timeout. Assertions are on the confirmations and their
order, not on wall-clock.
"""

from __future__ import annotations

import asyncio
import json
import types
from typing import Any

import pytest
from ocpp.messages import Call, MessageType

from adapters.ocpp import ChargerSettings, OcppCsmsAdapter
from adapters.ocpp.csms import PATH_PREFIX
from adapters.ocpp.session import schema_error
from adapters.sim._clock import SimClock
from adapters.sim.chargers import ChargerSpec, SimCharger
from adapters.types import Confirmation, DeviceLimits, Setpoint
from tests.support import eventually

pytestmark = pytest.mark.timeout(90)

SPECS = [
    ChargerSpec(
        cp_id=f"cp-{i:02d}",
        password=f"pw-{i}",
        version="ocpp2.1" if i % 2 else "ocpp2.0.1",
        v2g=bool(i % 2),
        max_kw=22.0,
    )
    for i in range(12)
]
STALLED = "cp-05"


def _csms() -> OcppCsmsAdapter:
    chargers = {
        s.cp_id: ChargerSettings(
            password=s.password,
            v2g=s.v2g,
            limits=DeviceLimits(p_min_kw=-22.0 if s.v2g else 0.0, p_max_kw=22.0),
        )
        for s in SPECS
    }
    return OcppCsmsAdapter(port=0, chargers=chargers, call_timeout_s=3)


def _sim(csms: OcppCsmsAdapter, spec: ChargerSpec) -> SimCharger:
    return SimCharger(
        url=f"ws://127.0.0.1:{csms.port}{PATH_PREFIX}",
        spec=spec,
        clock=SimClock(time_scale=1),
        period_s=0.2,
        backoff_base=0.05,
    )


async def test_burst_confirms_every_charger_and_a_stalled_one_holds_no_other() -> None:
    async with _csms() as csms:
        sims = [_sim(csms, spec) for spec in SPECS]
        for sim in sims:
            await sim.__aenter__()
        try:

            def in_session(cp_id: str) -> bool:
                reading = csms.last(cp_id)
                return reading is not None and bool(reading.ev_connected)

            await eventually(lambda: all(in_session(s.cp_id) for s in SPECS), within_s=30)
            # every charger at once: each confirmed, each charger holds its own (clamped) value
            first = await asyncio.gather(
                *(csms.apply(Setpoint(asset_id=s.cp_id, power_kw=-30.0)) for s in SPECS)
            )
            assert all(c.confirmed for c in first), [c.reason for c in first if not c.confirmed]
            for sim, conf in zip(sims, first, strict=True):
                expected = -22.0 if sim.spec.v2g else 0.0  # clamped to the enrolled limits
                assert conf.sent_kw == pytest.approx(expected)
                assert sim.profile_kw == pytest.approx(expected)

            # one charger stops reading: its handler never returns
            stalled = next(s for s in sims if s.spec.cp_id == STALLED)
            stop = asyncio.Event()

            async def never(**_: Any) -> Any:
                await stop.wait()

            stalled._cp.route_map["SetChargingProfile"]["_on_action"] = never
            order: list[Confirmation] = []
            for done in asyncio.as_completed(
                [csms.apply(Setpoint(asset_id=s.cp_id, power_kw=11.0)) for s in SPECS]
            ):
                order.append(await done)
            stop.set()
            assert [c.asset_id for c in order if not c.confirmed] == [STALLED]
            assert order[-1].asset_id == STALLED and "no answer within" in order[-1].reason
            others = [s for s in sims if s.spec.cp_id != STALLED]
            assert all(s.profile_kw == pytest.approx(11.0) for s in others)
        finally:
            for sim in sims:
                await sim.__aexit__(None, None, None)


def test_schema_check_keeps_the_packages_verdicts() -> None:
    # the compiled check answers valid payloads; a failing one gets the package's error
    ok = {"currentTime": "2026-01-01T00:00:00Z", "interval": 300, "status": "Accepted"}
    assert schema_error("BootNotification", ok, "2.0.1", message_type=3) is None
    missing = schema_error("BootNotification", {"interval": 300}, "2.0.1", message_type=3)
    assert missing is not None and "required" in str(missing.details)
    wrong = schema_error("Heartbeat", {"x": 1}, "2.1")
    assert wrong is not None and type(wrong).__name__ == "FormatViolationError"
    assert type(schema_error("NoSuchAction", {}, "2.1")).__name__ == "NotSupportedError"


async def test_simulated_charger_refuses_a_request_its_schema_rejects() -> None:
    spec = SPECS[1]
    async with _csms() as csms, _sim(csms, spec) as sim:
        await eventually(lambda: spec.cp_id in csms.connected_chargers, within_s=30)
        session = csms._sessions[spec.cp_id]
        # past the CSMS's own check, straight onto the wire: evseId must be an integer
        bad = Call(unique_id="bad-1", action="SetChargingProfile", payload={"evseId": "one"})
        await session._send(bad.to_json())
        answer = await session._get_specific_response("bad-1", 5)
        assert answer.message_type_id == MessageType.CallError
        assert answer.error_code in ("TypeConstraintViolation", "OccurrenceConstraintViolation")
        assert sim.profile_kw is None
        # a valid one right after is handled as ever
        ok = await csms.apply(Setpoint(asset_id=spec.cp_id, power_kw=-5.0))
        assert ok.confirmed and sim.profile_kw == pytest.approx(-5.0)


async def test_an_answer_that_breaks_its_schema_is_an_unconfirmed_setpoint_not_an_error() -> None:
    # a fresh user's charger answered SetChargingProfile with {"status": "Maybe"}:
    # apply raised PropertyConstraintViolationError and the send was never counted
    spec = SPECS[2]
    answers = {"SetChargingProfile": {"status": "Maybe"}, "ClearChargingProfile": "Accepted"}
    async with _csms() as csms, _sim(csms, spec) as sim:
        await eventually(lambda: spec.cp_id in csms.connected_chargers, within_s=30)
        cp = sim._cp
        assert cp is not None
        route = type(cp).route_message

        async def misanswer(self: Any, raw: str) -> None:
            message = json.loads(raw)
            if message[0] == MessageType.Call and message[2] in answers:
                await self._send(json.dumps([3, message[1], answers[message[2]]]))
                return
            await route(self, raw)

        cp.route_message = types.MethodType(misanswer, cp)
        sent_before = csms.stats.setpoints_sent
        conf = await csms.apply(Setpoint(asset_id=spec.cp_id, power_kw=5.0))
        assert not conf.confirmed and conf.sent_kw == pytest.approx(5.0)
        assert "breaks its schema" in conf.reason, conf.reason
        assert csms.stats.setpoints_sent == sent_before + 1
        assert await csms.release(spec.cp_id) is False
        assert spec.cp_id in csms.connected_chargers  # the connection stays
