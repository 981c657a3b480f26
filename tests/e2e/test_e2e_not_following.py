"""End to end, issue 8 case 10: a real OCPP 2.0.1 charger that does not follow its profile.

The simulated one-way charger ``cp-1`` (enrolled at 11 kW) keeps drawing 7.4 kW
whatever limit it is sent. The control loop must recognise it once (one log
line, one count in ``vpp_control_not_following_total``) and then hold it at
its measured power for the rest of the event, so the limit it gets stops
flipping between the plan's value and its real draw.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from tests.e2e.park_harness import INTERVAL_MIN, SCALE, RunningPark
from tests.support import eventually
from vpp.api import METRICS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

DRAW_KW = 7.4


async def test_charger_that_ignores_its_profile_is_held_at_its_draw(
    running_park: RunningPark,
) -> None:
    park = running_park
    charger = park.sim.chargers["cp-1"]
    charger.spec = replace(charger.spec, ignore_profile_kw=DRAW_KW)

    async def drawing() -> bool:  # the service has seen the draw it will anchor on
        live = await park.state.read_live_many("e2e-park", ["cp-1"])
        reading = live["cp-1"]
        return reading is not None and abs(reading.power_kw - DRAW_KW) < 0.05

    await eventually(drawing, within_s=10.0)
    body = await park.peak_event(intervals=3)
    await park.grid.call("POST", "/events", json=body)
    start = datetime.fromisoformat(body["start"])
    await park.sleep_until(start + timedelta(minutes=INTERVAL_MIN // 2))
    assert (await park.event(body["id"]))["state"] == "active"

    def verdicts() -> list[str]:
        return [
            r.getMessage()
            for r in park.control_log
            if "does not follow" in r.getMessage() and "cp-1" in r.getMessage()
        ]

    async def recognised() -> bool:
        return bool(verdicts())

    await eventually(recognised, within_s=INTERVAL_MIN * 60 / SCALE)

    async def held() -> bool:
        return charger.profile_kw is not None and abs(charger.profile_kw - DRAW_KW) < 0.2

    await eventually(held, within_s=5.0)
    # from now on its limit is its measured draw, cycle after cycle (no flipping)
    limits: list[float | None] = []
    for _ in range(20):
        await asyncio.sleep(0.25)
        limits.append(charger.profile_kw)
    assert all(v is not None and v == pytest.approx(DRAW_KW, abs=0.2) for v in limits), limits
    assert len(verdicts()) == 1, verdicts()
    text = park.app[METRICS].exposition().decode()
    assert 'vpp_control_not_following_total{kind="ev_charger",park="e2e-park"} 1.0' in text
