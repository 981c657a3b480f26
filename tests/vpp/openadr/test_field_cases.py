"""Issue 8 cases 1 and 9: what a real VTN sends, replayed through the VEN into the service.

The VEN runs against the VTN simulator on loopback (every body schema-checked)
and hands its dispatches to the real bridge, whose service events live in
the real Redis.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support import eventually
from tests.vpp.openadr.helpers import (
    LOAD_1,
    RecordingSink,
    crash_one_poll,
    enroll_live,
    event_body,
    ven_settings,
)
from tests.vpp.openadr.vtn_sim import BlClient, VtnSim
from vpp.clock import Clock
from vpp.events import EventRecord, EventState, EventStore
from vpp.model import LiveState
from vpp.openadr import DispatchRejected, GridDispatch, Ven, VenSettings
from vpp.openadr.bridge import OpenAdrBridge, service_event_id
from vpp.openadr.mapping import event_to_dispatch
from vpp.state import State

PARK = "oadr-field"
#: The exact interval period of case 1: a start in the past and "no end".
CASE1_PERIOD = {"start": "2026-07-01T10:00:00Z", "duration": "P9999Y"}


class ShiftedClock(Clock):
    """The service clock, moved by hand (the VEN keeps real time).

    It starts at ``at`` and runs on in real time from there, so a test can
    stand clear of slot boundaries whatever the wall clock says.
    """

    shift: list[timedelta]  # set once in __init__ (the dataclass is frozen), then moved in place

    def __init__(self, at: datetime | None = None) -> None:
        super().__init__()
        shift = timedelta(0) if at is None else at - super().now()
        object.__setattr__(self, "shift", [shift])

    def now(self) -> datetime:
        return super().now() + self.shift[0]

    def advance(self, by: timedelta) -> None:
        self.shift[0] += by


@pytest.fixture
async def state(state: State) -> State:
    """The park's 1000 kW load, live."""
    await enroll_live(state, PARK, [(LOAD_1, LiveState(power_kw=1000))], ttl_s=300)
    return state


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


async def _record(events: EventStore, event_id: str) -> EventRecord | None:
    try:
        return await events.get(PARK, event_id)
    except Exception:
        return None


async def test_open_ended_import_limit_is_applied_and_rolled_forward(
    vtn: VtnSim, bl: BlClient, state: State
) -> None:
    # Case 1: IMPORT_CAPACITY_LIMIT 800 kW from 2026-07-01T10:00Z for "P9999Y".
    events = EventStore(state)
    # ten past the hour: the test never straddles an hourly slot boundary
    clock = ShiftedClock(_hour(datetime.now(UTC)) + timedelta(minutes=10))
    bridge = OpenAdrBridge(park=PARK, state=state, events=events, clock=clock)
    program = await bl.create_program("park-dr")
    cap = [{"type": "IMPORT_CAPACITY_LIMIT", "values": [800]}]
    body = {"programID": program["id"], "intervalPeriod": CASE1_PERIOD,
            "intervals": [{"id": 0, "payloads": cap}]}  # fmt: skip
    created = await bl.create_event(body)
    later = await bl.create_event(event_body(program["id"], [{"type": "SIMPLE", "values": [1]}]))
    sid = service_event_id(created["id"])
    async with Ven(settings=ven_settings(vtn), sink=bridge, report_source=bridge) as ven:
        await eventually(lambda: _exists(events, sid))
        rec = await events.get(PARK, sid)
        # 1000 kW park under an 800 kW cap: shave 200 kW in every hourly slot of the
        # 24 h horizon, from the slot under way (the event's start is long past)
        now = clock.now()
        assert rec.kind.value == "peak_shaving" and rec.source == "openadr"
        assert rec.interval_s == 3600 and rec.start == _hour(now)
        assert rec.target_kw == [-200.0] * 24
        # the poller goes on: the next event, which overlaps this one's horizon, is
        # refused alone (the park runs one event at a time) and polling continues
        await eventually(lambda: ven.status.rejected == {"refused": 1})
        polls = ven.status.polls
        await eventually(lambda: ven.status.polls >= polls + 3)
        assert later["id"] not in ven.active() and ven.status.malformed_events == 1
        assert all(t.running for t in ven.status.tasks.values())

        # time passes: the same service event is rolled forward over the horizon
        clock.advance(timedelta(hours=5))
        await eventually(lambda: _length(events, sid, 29))
        rec = await events.get(PARK, sid)
        assert rec.id == sid and rec.start == _hour(now) and rec.target_kw == [-200.0] * 29

        # the VTN modifies it: a 900 kW cap from now on, same service event
        cap900 = [{"type": "IMPORT_CAPACITY_LIMIT", "values": [900]}]
        await bl.update_event(created["id"], {**body, "intervals": [{"id": 0, "payloads": cap900}]})
        await eventually(lambda: _target(events, sid, -100.0))
        rec = await events.get(PARK, sid)
        current = rec.interval_at(clock.now())
        assert current == 5 and rec.target_kw[:5] == [-200.0] * 5
        assert rec.target_kw[5:] == [-100.0] * (len(rec.target_kw) - 5)

        # and deletes it: cancelled
        await bl.delete_event(created["id"])
        await eventually(lambda: _state(events, sid, EventState.CANCELLED))
    assert vtn.violations == []


async def _exists(events: EventStore, sid: str) -> bool:
    return await _record(events, sid) is not None


async def _length(events: EventStore, sid: str, n: int) -> bool:
    rec = await _record(events, sid)
    return rec is not None and len(rec.target_kw) >= n


async def _target(events: EventStore, sid: str, value: float) -> bool:
    rec = await _record(events, sid)
    return rec is not None and rec.target_kw[-1] == value


async def _state(events: EventStore, sid: str, want: EventState) -> bool:
    rec = await _record(events, sid)
    return rec is not None and rec.state is want


async def test_open_ended_price_event_never_stops_the_poller(
    vtn: VtnSim, bl: BlClient, sink: RecordingSink
) -> None:
    # Case 1, PRICE variant: not a dispatch instruction, and it has no end.
    program = await bl.create_program("park-dr")
    price = await bl.create_event({
        "programID": program["id"], "intervalPeriod": CASE1_PERIOD,
        "intervals": [{"id": 0, "payloads": [{"type": "PRICE", "values": [0.25]}]}],
    })  # fmt: skip
    later = await bl.create_event(event_body(program["id"], [{"type": "SIMPLE", "values": [1]}]))
    async with Ven(settings=ven_settings(vtn), sink=sink) as ven:
        await eventually(lambda: [d.event_id for d in sink.dispatches] == [later["id"]])
        polls = ven.status.polls
        await eventually(lambda: ven.status.polls >= polls + 3)
        tracked = ven.active()[price["id"]]
        assert tracked.end is None and not tracked.has_instructions
        assert ven.status.malformed_events == 0 and ven.status.poll_failures == 0
        assert ven.status.tasks["poll"].running and ven.status.tasks["poll"].restarts == 0
    assert vtn.violations == []


class RefusingSink(RecordingSink):
    """Refuses one event for good; raises a transient error for another, once."""

    def __init__(self, refuse: str) -> None:
        super().__init__()
        self.refuse = refuse
        self.offers: dict[str, int] = {}

    async def on_dispatch(self, dispatch: GridDispatch) -> None:
        self.offers[dispatch.event_id] = self.offers.get(dispatch.event_id, 0) + 1
        if dispatch.event_id == self.refuse:
            raise DispatchRejected("overlaps another event")
        await super().on_dispatch(dispatch)


async def test_an_event_that_cannot_be_mapped_or_taken_is_rejected_alone(
    vtn: VtnSim, bl: BlClient
) -> None:
    program = await bl.create_program("park-dr")
    simple = [{"type": "SIMPLE", "values": [1]}]
    start = datetime.now(UTC) + timedelta(minutes=5)
    # looping intervals (event.duration beyond them) are not supported: mapping refuses
    looping = await bl.create_event(
        event_body(program["id"], simple, start=start, intervals=2, duration="PT15M")
        | {"duration": "P9999Y"}
    )
    refused = await bl.create_event(event_body(program["id"], simple, start=start))
    good = await bl.create_event(event_body(program["id"], simple, start=start))
    sink = RefusingSink(refused["id"])
    async with Ven(settings=ven_settings(vtn), sink=sink) as ven:
        await eventually(lambda: [d.event_id for d in sink.dispatches] == [good["id"]])
        polls = ven.status.polls
        await eventually(lambda: ven.status.polls >= polls + 5)
        assert ven.status.rejected == {"mapping": 1, "refused": 1}
        assert ven.status.malformed_events == 2
        # rejected once per version, never offered again at every poll
        assert sink.offers[refused["id"]] == 1 and looping["id"] not in sink.offers
        # a new version of the refused event is offered again
        await bl.update_event(refused["id"], event_body(program["id"], simple, start=start,
                                                        eventName="v2"))  # fmt: skip
        await eventually(lambda: sink.offers[refused["id"]] == 2)
        assert ven.status.poll_failures == 0
    assert vtn.violations == []


async def test_a_ven_task_that_dies_is_restarted(
    vtn: VtnSim, bl: BlClient, sink: RecordingSink
) -> None:
    await bl.create_program("park-dr")
    async with Ven(settings=ven_settings(vtn), sink=sink) as ven:
        await eventually(lambda: ven.status.polls >= 1)
        assert ven.health()["ok"] and ven.health()["tasks"]["poll"]["restarts"] == 0
        await crash_one_poll(ven)
        health = ven.health()
        assert health["tasks"]["poll"] == {
            "running": True, "restarts": 1, "last_error": "RuntimeError('a bug in a poll cycle')"
        }  # fmt: skip
        assert health["ok"]


async def test_a_running_event_extended_on_the_vtn_is_extended_in_place(
    vtn: VtnSim, bl: BlClient, state: State
) -> None:
    # Case 9: 4 x 15 min from 18:00 becomes 6 intervals at 18:32 (same id, new
    # modificationDateTime). Here 18:00 is the start of the slot under way.
    events = EventStore(state)
    real = datetime.now(UTC).replace(second=0, microsecond=0)
    t18 = real - timedelta(minutes=real.minute % 15)
    # two minutes into the first interval, whatever the wall clock says
    clock = ShiftedClock(t18 + timedelta(minutes=2))
    bridge = OpenAdrBridge(park=PARK, state=state, events=events, clock=clock)
    program = await bl.create_program("park-dr")
    cap = [{"type": "IMPORT_CAPACITY_LIMIT", "values": [700]}]
    four = event_body(program["id"], cap, start=t18, intervals=4)
    created = await bl.create_event(four)
    sid = service_event_id(created["id"])
    async with Ven(settings=ven_settings(vtn), sink=bridge, report_source=bridge) as ven:
        await eventually(lambda: _exists(events, sid))
        rec = await events.get(PARK, sid)
        assert rec.start == t18 and rec.interval_s == 900 and rec.target_kw == [-300.0] * 4

        # the control loop made it active and measured the first interval
        def measured(r: EventRecord) -> None:
            r.transition(EventState.SCHEDULED, clock.now())
            r.transition(EventState.ACTIVE, clock.now())
            r.baseline_kw = [1000.0] * 4
            r.measured_kw = [705.0, None, None, None]

        await events.update(PARK, sid, measured)
        six = event_body(program["id"], cap, start=t18, intervals=6)
        await bl.update_event(created["id"], six)
        await eventually(lambda: _length(events, sid, 6))
        rec = await events.get(PARK, sid)
        assert rec.id == sid and rec.state is EventState.ACTIVE
        assert rec.target_kw == [-300.0] * 6
        assert rec.baseline_kw == [1000.0] * 4 + [None, None]
        assert rec.measured_kw[0] == 705.0
        assert [h for h in rec.history if h.get("intervals") == 6]
        assert len([r for r in await events.recent(PARK) if r.id.startswith("oadr-")]) == 1
        assert len(ven.active()[created["id"]].intervals) == 6

        # the VTN shortens it back to 3: the intervals under way are never cut
        three = event_body(program["id"], cap, start=t18, intervals=3)
        await bl.update_event(created["id"], three)
        await eventually(lambda: _shorter(events, sid, 6))
        rec = await events.get(PARK, sid)
        assert rec.started(clock.now()) == 1  # two minutes into interval 0
        assert len(rec.target_kw) == 3 and rec.measured_kw[0] == 705.0
    assert vtn.violations == []


async def _shorter(events: EventStore, sid: str, n: int) -> bool:
    rec = await _record(events, sid)
    return rec is not None and len(rec.target_kw) < n


async def test_after_a_restart_the_ven_recognises_the_events_it_mapped(
    vtn: VtnSim, bl: BlClient, state: State
) -> None:
    events = EventStore(state)
    clock = Clock()
    program = await bl.create_program("park-dr")
    start = _hour(clock.now() + timedelta(hours=2))
    cap = [{"type": "IMPORT_CAPACITY_LIMIT", "values": [700]}]
    created = await bl.create_event(event_body(program["id"], cap, start=start, intervals=4))
    sid = service_event_id(created["id"])
    first = OpenAdrBridge(park=PARK, state=state, events=events, clock=clock)
    async with Ven(settings=ven_settings(vtn), sink=first):
        await eventually(lambda: _exists(events, sid))
    before = await events.get(PARK, sid)

    # a new process: a new VEN and bridge, nothing in memory
    second = OpenAdrBridge(park=PARK, state=state, events=events, clock=clock)
    async with Ven(settings=ven_settings(vtn), sink=second) as ven:
        await eventually(lambda: created["id"] in ven.active())
        polls = ven.status.polls
        await eventually(lambda: ven.status.polls >= polls + 3)
        tracking = await second.tracking(created["id"])
        assert tracking is not None and tracking.service_id == sid
        # a modification after the restart changes the same service event
        await bl.update_event(created["id"], event_body(
            program["id"], [{"type": "IMPORT_CAPACITY_LIMIT", "values": [800]}],
            start=start, intervals=4))  # fmt: skip
        await eventually(lambda: _target(events, sid, -200.0))
    after = await events.get(PARK, sid)
    assert after.updated > before.updated and after.state is before.state
    ours = [r for r in await events.recent(PARK) if r.id.startswith("oadr-")]
    assert [r.id for r in ours] == [sid], "no second service event for the same OpenADR event"
    key = state.park(PARK).openadr_events
    assert key.startswith(f"{state.park(PARK).prefix}:")  # under the park's hash tag
    assert await state.redis.hexists(key, created["id"])
    assert vtn.violations == []


async def test_intervals_placed_at_their_own_times_and_long_events_over_the_horizon(
    state: State,
) -> None:
    # Out of order, with gaps, and the last interval two days out: beyond the
    # service's 24 h horizon (96 slots). Before, intervals were laid end to end
    # from the first one and a window of more than 96 slots was retried forever.
    events = EventStore(state)
    t0 = _hour(datetime.now(UTC)) + timedelta(hours=1)
    clock = ShiftedClock(t0 - timedelta(minutes=30))
    bridge = OpenAdrBridge(park=PARK, state=state, events=events, clock=clock)

    def cap(kw: int) -> list[dict[str, object]]:
        return [{"type": "IMPORT_CAPACITY_LIMIT", "values": [kw]}]

    def at(delta: timedelta) -> str:
        return (t0 + delta).isoformat().replace("+00:00", "Z")

    event = {
        "id": "long-1", "programID": "p1", "objectType": "EVENT",
        "createdDateTime": at(-timedelta(hours=1)), "modificationDateTime": at(-timedelta(hours=1)),
        "intervalPeriod": {"start": at(timedelta(0)), "duration": "PT15M"},
        "intervals": [
            {"id": 0, "payloads": cap(800)},  # at the event's start
            # then any order, each at its own start
            {"id": 2, "intervalPeriod": {"start": at(timedelta(days=2)), "duration": "PT30M"},
             "payloads": cap(600)},
            {"id": 1, "intervalPeriod": {"start": at(timedelta(minutes=45))}, "payloads": cap(700)},
        ],
    }  # fmt: skip
    settings = ven_settings_for_mapping()
    dispatch = event_to_dispatch(event, program_name="park-dr", settings=settings, now=clock.now())
    await bridge.on_dispatch(dispatch)
    sid = service_event_id("long-1")
    rec = await events.get(PARK, sid)
    # 15-min slots from t0, each interval at its own time, zero in the gaps, 24 h ahead
    assert rec.start == t0 and rec.interval_s == 900
    assert rec.target_kw[:5] == [-200.0, 0.0, 0.0, -300.0, 0.0]
    assert len(rec.target_kw) == 96
    assert all(t == 0.0 for t in rec.target_kw[5:])

    # two days on, the same service event has been rolled forward to the last interval
    for _ in range(8):
        clock.advance(timedelta(hours=6))
        await bridge.on_renew(dispatch)
    rec = await events.get(PARK, sid)
    assert rec.id == sid and rec.end == t0 + timedelta(days=2, minutes=30)
    assert rec.target_kw[-2:] == [-400.0, -400.0]
    assert rec.target_kw[:5] == [-200.0, 0.0, 0.0, -300.0, 0.0]
    assert [r.id for r in await events.recent(PARK)] == [sid]


def ven_settings_for_mapping() -> VenSettings:
    return VenSettings(
        vtn_url="http://127.0.0.1:1", client_id="ven", client_secret="s", ven_name="v",
        program_names=("park-dr",), park_capacity_kw=2000.0,
    )  # fmt: skip


async def test_a_do_it_now_event_is_recognised_after_a_restart(
    vtn: VtnSim, bl: BlClient, state: State
) -> None:
    # "do it now" (User Guide 7.3): start 0001-01-01, no end. Each mapping reads
    # "now" anew; after a restart the same version must still be the same event.
    events = EventStore(state)
    clock = ShiftedClock(_hour(datetime.now(UTC)) + timedelta(minutes=10))
    program = await bl.create_program("park-dr")
    created = await bl.create_event({
        "programID": program["id"],
        "intervalPeriod": {"start": "0001-01-01T00:00:00Z", "duration": "P9999Y"},
        "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [850]}]}],
    })  # fmt: skip
    sid = service_event_id(created["id"])
    for _ in range(2):  # the first life, then a restart with nothing in memory
        bridge = OpenAdrBridge(park=PARK, state=state, events=events, clock=clock)
        async with Ven(settings=ven_settings(vtn), sink=bridge) as ven:
            await eventually(lambda: _exists(events, sid))
            await _polls_more(ven, 3)
            assert ven.status.rejected == {}
        clock.advance(timedelta(minutes=20))
    rec = await events.get(PARK, sid)
    assert rec.state is EventState.RECEIVED and rec.target_kw[0] == -150.0
    ours = [r.id for r in await events.recent(PARK)]
    assert ours == [sid], "the same version after a restart is the same service event"


async def _polls_more(ven: Ven, n: int) -> None:
    polls = ven.status.polls
    await eventually(lambda: ven.status.polls >= polls + n)
