"""End to end: cancelling an active event hands every device back.

Checked on the simulated devices themselves: every battery is back to 0 kW
with no active-power command, every load follows its own baseline again (no
command held), every charger's charging profile is cleared; and the control
loop's release was acknowledged by every device.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

import pytest

from tests.e2e.park_harness import PERIOD_S, SCALE, RunningPark
from tests.support import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def test_cancel_releases_every_device(running_park: RunningPark) -> None:
    park = running_park
    sim = park.sim
    body = await park.peak_event(intervals=3)
    await park.grid.call("POST", "/events", json=body)
    start = datetime.fromisoformat(body["start"])
    await park.sleep_until(start + timedelta(minutes=3))
    assert (await park.event(body["id"]))["state"] == "active"

    # the event holds devices: batteries discharge on command, chargers carry a profile
    assert any(m.setpoint_kw for s in sim.batteries.values() for m in s.models.values())
    assert any(sim.battery_kw(a) < -1.0 for a in sim.batteries)
    commanded_chargers = [c for c, s in sim.chargers.items() if s.profile_kw is not None]
    assert sim.loads is not None
    fleet = sim.loads  # a name the check below sees narrowed
    commands_before = sim.loads.commands

    status, _, cancelled = await park.grid.request("DELETE", f"/events/{body['id']}")
    assert status == 202 and cancelled["event"]["state"] == "cancelled", cancelled
    sent = time.monotonic()

    async def all_released() -> bool:
        batteries = all(
            m.setpoint_kw is None and sim.battery_kw(a) == 0.0
            for a, s in sim.batteries.items()
            for m in s.models.values()
        )
        loads = all(m.command_kw is None for m in fleet.models.values())
        chargers = all(s.profile_kw is None for s in sim.chargers.values())
        return batteries and loads and chargers

    cycle_s = PERIOD_S / SCALE
    await eventually(all_released, within_s=5 * cycle_s + 2.0)
    took = time.monotonic() - sent
    print(f"\nevery device released {took:.2f} s after the cancel; chargers that held a "
          f"profile: {commanded_chargers}")  # fmt: skip

    # the loads got a release command (not just a lapsed hold) and follow their baseline
    assert sim.loads.commands > commands_before
    sim.loads.advance()
    t = sim.loads.clock.now()
    for model in sim.loads.models.values():
        assert model.target(t) >= model.baseline(t) - 1e-6  # baseline plus rebound

    # the control loop logs the release once every device has acknowledged it
    def released() -> list[logging.LogRecord]:
        return [r for r in park.control_log if "released" in r.getMessage()]

    await eventually(lambda: bool(released()))
    releases = released()
    assert len(releases) == 1 and body["id"] in releases[0].getMessage(), releases
    n_assets = len(sim.batteries) + len(sim.loads.models) + len(sim.chargers)
    assert f"released {n_assets} assets" in releases[0].getMessage()
    refused = [r for r in park.control_log if "did not acknowledge release" in r.getMessage()]
    assert not refused, [r.getMessage() for r in refused]

    record = await park.event(body["id"])
    assert record["state"] == "cancelled"
    assert record["history"][-1]["reason"] == "cancelled by the grid operator"
