"""OpenADR events become service events in Redis, and their delivery goes back as reports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.support import eventually
from tests.vpp.openadr.helpers import BESS_1, LOAD_1, enroll_live, event_body, ven_settings
from tests.vpp.openadr.vtn_sim import BlClient, VtnSim
from vpp.clock import Clock
from vpp.events import EventRecord, EventState, EventStore
from vpp.model import LiveState
from vpp.openadr import ImportLimitKw, RelativeKw, SetpointKw, SimpleLevel, Ven
from vpp.openadr.bridge import OpenAdrBridge, deviation_of, service_event_id
from vpp.state import State

PARK = "oadr-park"


def test_deviation_mapping() -> None:
    assert deviation_of([SetpointKw(700)], 1000) == -300
    assert deviation_of([SetpointKw(1300)], 1000) == 300
    assert deviation_of([RelativeKw(-250)], 1000) == -250
    assert deviation_of([ImportLimitKw(1500)], 1000) == 0  # already below the cap
    assert deviation_of([ImportLimitKw(800)], 1000) == -200
    assert deviation_of([SimpleLevel(2, 0.25, 400)], 1000) == -400
    # the strictest reduction wins when several come in one interval
    assert deviation_of([ImportLimitKw(800), SimpleLevel(1, 0.1, 100)], 1000) == -200
    assert deviation_of([], 1000) == 0
    assert service_event_id("evt/42 x") == "oadr-evt-42-x"


@pytest.fixture
async def state(state: State) -> State:
    """A battery at 60 % and a 1000 kW load, live."""
    live = [(BESS_1, LiveState(power_kw=0, soc=0.6)), (LOAD_1, LiveState(power_kw=1000))]
    await enroll_live(state, PARK, live, ttl_s=60)
    return state


async def test_dispatch_cancel_and_report(vtn: VtnSim, bl: BlClient, state: State) -> None:
    events = EventStore(state)
    bridge = OpenAdrBridge(park=PARK, state=state, events=events, clock=Clock())
    program = await bl.create_program("park-dr")
    start = (datetime.now(UTC) + timedelta(minutes=30)).replace(second=0, microsecond=0)
    cap = [{"type": "IMPORT_CAPACITY_LIMIT", "values": [700.0]}]
    created = await bl.create_event(
        event_body(program["id"], cap, start=start, duration="PT30M", intervals=2)
    )
    sid = service_event_id(created["id"])
    settings = ven_settings(vtn)
    async with Ven(settings=settings, sink=bridge, report_source=bridge) as ven:
        await eventually(lambda: created["id"] in ven.active())

        async def stored() -> EventRecord:
            return await events.get(PARK, sid)

        rec = await stored()
        # park at 1000 kW, cap 700 kW -> shave 300 kW for 2 x 30 min
        assert rec.kind.value == "peak_shaving" and rec.source == "openadr"
        assert rec.interval_s == 1800 and rec.target_kw == [-300.0, -300.0]

        # a new revision with the same window modifies the targets
        await bl.update_event(
            created["id"],
            event_body(program["id"], [{"type": "IMPORT_CAPACITY_LIMIT", "values": [800.0]}],
                       start=start, duration="PT30M", intervals=2),
        )  # fmt: skip
        await eventually(lambda: _targets_are(stored, [-200.0, -200.0]))
        rec = await stored()

        # the control loop's measurements go back as a report
        def measured(r: EventRecord) -> None:
            r.baseline_kw = [1000.0, 1000.0]
            r.measured_kw = [790.0, 805.0]

        await events.update(PARK, sid, measured)
        dispatch = ven.active()[created["id"]]
        report_id = await ven.send_report(created["id"], list(dispatch.intervals))
        assert report_id is not None
        report = vtn.reports[report_id]
        payloads = {
            p["type"]: p["values"][0]
            for r in report["resources"]
            for i in r["intervals"]
            if i["id"] == 0
            for p in i["payloads"]
        }
        assert payloads["USAGE"] == pytest.approx(395.0)  # 790 kW x 0.5 h
        assert payloads["BASELINE"] == pytest.approx(500.0)
        assert payloads["DELTA_USAGE"] == pytest.approx(-105.0)
        assert payloads["STORAGE_CHARGE_LEVEL"] == pytest.approx(0.6)

        await bl.delete_event(created["id"])
        await eventually(lambda: _state_is(stored, EventState.CANCELLED))
    assert vtn.violations == []


async def _targets_are(stored: Callable[[], Awaitable[EventRecord]], want: list[float]) -> bool:
    return (await stored()).target_kw == want


async def _state_is(stored: Callable[[], Awaitable[EventRecord]], want: EventState) -> bool:
    return (await stored()).state is want


async def test_an_event_overlapping_another_is_refused_alone(
    vtn: VtnSim, bl: BlClient, state: State, caplog: pytest.LogCaptureFixture
) -> None:
    events = EventStore(state)
    bridge = OpenAdrBridge(park=PARK, state=state, events=events, clock=Clock())
    program = await bl.create_program("park-dr")
    start = (datetime.now(UTC) + timedelta(minutes=30)).replace(second=0, microsecond=0)
    cap = [{"type": "IMPORT_CAPACITY_LIMIT", "values": [700.0]}]
    first = await bl.create_event(event_body(program["id"], cap, start=start, duration="PT30M"))
    async with Ven(settings=ven_settings(vtn), sink=bridge, report_source=bridge) as ven:
        await eventually(lambda: first["id"] in ven.active())
        # a second event over the same window: the store refuses it at once
        second = await bl.create_event(
            event_body(program["id"], cap, start=start + timedelta(minutes=15), duration="PT30M")
        )
        await eventually(lambda: ven.status.rejected.get("refused", 0) == 1)
        polls = ven.status.polls
        await eventually(lambda: ven.status.polls >= polls + 3)  # the VEN goes on polling
        assert ven.status.rejected == {"refused": 1} and ven.status.poll_failures == 0
        assert ven.health()["ok"]
        assert [r.id for r in await events.open_events(PARK)] == [service_event_id(first["id"])]
        assert await bridge.tracking(second["id"]) is None
    assert any("overlaps event " + service_event_id(first["id"]) in r.getMessage()
               for r in caplog.records)  # fmt: skip
    assert vtn.violations == []
