"""The VEN against the VTN simulator on loopback; every body is schema-checked by the VTN."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from tests.support import eventually
from tests.vpp.openadr.helpers import (
    FixedReadings,
    RecordingSink,
    event_body,
    ven_settings,
)
from tests.vpp.openadr.vtn_sim import BlClient, VtnSim
from vpp.openadr import ImportLimitKw, OpenAdrSchema, RelativeKw, SetpointKw, SimpleLevel, Ven
from vpp.openadr.backoff import backoff_bounds, equal_jitter_delay
from vpp.openadr.mapping import format_datetime

FOUR = [
    {"type": "DISPATCH_SETPOINT", "values": [1200.0]},
    {"type": "DISPATCH_SETPOINT_RELATIVE", "values": [300.0]},
    {"type": "IMPORT_CAPACITY_LIMIT", "values": [1500.0]},
    {"type": "SIMPLE", "values": [1]},
]
KW = [
    {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": p["type"], "units": "KW"}
    for p in FOUR[:3]
]


async def test_programs_events_modification_and_cancellation(
    vtn: VtnSim, bl: BlClient, sink: RecordingSink
) -> None:
    other = await bl.create_program("someone-else")
    program = await bl.create_program("park-dr")
    await bl.create_event(event_body(other["id"], FOUR))
    created = await bl.create_event(event_body(program["id"], FOUR, intervals=2, descriptors=KW))

    async with Ven(settings=ven_settings(vtn), sink=sink) as ven:
        await eventually(lambda: len(sink.dispatches) == 1)
        assert set(ven.programs) == {"park-dr"}
        assert ven.status.ven_id in vtn.vens
        first = sink.dispatches[0]
        assert (first.event_id, first.program_id, first.program_name) == (
            created["id"],
            program["id"],
            "park-dr",
        )
        assert first.revision == 1 and len(first.intervals) == 2
        expected = (SetpointKw(1200.0), RelativeKw(-300.0), ImportLimitKw(1500.0))
        assert first.intervals[1].instructions == (*expected, SimpleLevel(1, 0.1, 200.0))
        assert first.intervals[1].start - first.intervals[0].start == timedelta(minutes=15)

        # Modification → a second dispatch of the same event.
        modified = event_body(program["id"], [{"type": "SIMPLE", "values": [3]}], intervals=1)
        await bl.update_event(created["id"], modified)
        await eventually(lambda: len(sink.dispatches) == 2)
        second = sink.dispatches[1]
        assert (second.event_id, second.revision) == (created["id"], 2)
        assert second.intervals[0].instructions == (SimpleLevel(3, 0.5, 1000.0),)
        polls = ven.status.polls
        await eventually(lambda: ven.status.polls >= polls + 3)
        assert len(sink.dispatches) == 2, "an unchanged event is not dispatched again"

        # Cancellation by the User Guide 7.9 convention → on_cancel.
        await bl.update_event(
            created["id"],
            {
                "programID": program["id"],
                "intervalPeriod": {"start": "0001-01-01T00:00:00Z", "duration": "PT0S"},
                "intervals": [],
            },
        )
        await eventually(lambda: sink.cancels == [created["id"]])

        # Deletion → on_cancel.
        doomed = await bl.create_event(event_body(program["id"], FOUR[3:]))
        await eventually(lambda: sink.dispatches[-1].event_id == doomed["id"])
        await bl.delete_event(doomed["id"])
        await eventually(lambda: sink.cancels == [created["id"], doomed["id"]])

    assert ven.status.poll_failures == 0 and ven.status.malformed_events == 0
    assert vtn.violations == []
    event_gets = [e for e in vtn.exchanges if e.path == "/events" and e.method == "GET"]
    assert event_gets and all(e.client_id == "ven" and e.status == 200 for e in event_gets)


async def test_token_is_cached_refreshed_after_expiry_and_after_401(
    spec: OpenAdrSchema, sink: RecordingSink
) -> None:
    # No step depends on how fast the machine is: a long-lived token first (so
    # "one token for many requests" cannot be broken by a slow poll), then a
    # revocation (exactly one 401), then 1 s tokens that must be replaced.
    async with VtnSim(schema=spec, token_ttl_s=3600) as vtn:
        async with BlClient(vtn.url) as bl:
            await bl.create_program("park-dr")
        settings = ven_settings(vtn, token_refresh_margin_s=0.0, poll_interval_s=0.05)
        async with Ven(settings=settings, sink=sink) as ven:
            await eventually(lambda: ven.status.polls >= 3)
            assert ven.tokens is not None
            assert ven.tokens.fetches == 1, "one token serves many requests"

            # 401 with a token the VEN still believes valid -> one refresh, no failure.
            seen = len(vtn.exchanges)
            vtn.revoke_tokens()
            await eventually(lambda: ven.tokens is not None and ven.tokens.fetches == 2)
            polls = ven.status.polls
            await eventually(lambda: ven.status.polls >= polls + 2)
            assert ven.tokens.fetches == 2 and ven.status.poll_failures == 0
            assert [e.status for e in vtn.exchanges[seen:]].count(401) == 1

            # tokens that expire after 1 s are replaced as they expire
            vtn.token_ttl_s = 1
            issued = vtn.tokens_issued
            vtn.revoke_tokens()
            # the VEN itself fetches each replacement (waited for on the VEN's side:
            # the VTN counts a token before the VEN has read the answer)
            await eventually(
                lambda: ven.tokens is not None and ven.tokens.fetches >= 5, within_s=30.0
            )
            assert vtn.tokens_issued >= issued + 3
        assert vtn.violations == []


async def test_reports_posted_then_updated_with_the_four_payloads(
    vtn: VtnSim, bl: BlClient, sink: RecordingSink
) -> None:
    program = await bl.create_program("park-dr")
    descriptors = [
        {"payloadType": kind, "readingType": "DIRECT_READ"}
        for kind in ("USAGE", "BASELINE", "DELTA_USAGE", "STORAGE_CHARGE_LEVEL")
    ]
    # Interval 0 ended a minute ago, interval 1 ends in an hour: the first report
    # (POST) has interval 0 whatever the machine's speed; then the VTN moves
    # interval 1 into the past and the report is updated (PUT) with both.
    now = datetime.now(UTC)
    simple = [{"type": "SIMPLE", "values": [2]}]

    def body(second_start: datetime) -> dict[str, object]:
        return {
            "programID": program["id"],
            "intervalPeriod": {"start": format_datetime(now - timedelta(minutes=2)),
                               "duration": "PT1M"},
            "intervals": [
                {"id": 0, "payloads": simple},
                {"id": 1, "intervalPeriod": {"start": format_datetime(second_start)},
                 "payloads": simple},
            ],
            "reportDescriptors": descriptors,
        }  # fmt: skip

    event = await bl.create_event(body(now + timedelta(hours=1)))
    source = FixedReadings()
    async with Ven(settings=ven_settings(vtn), sink=sink, report_source=source) as ven:
        await eventually(lambda: ven.status.reports_sent >= 1)
        assert source.calls[0] == (event["id"], [0])
        await bl.update_event(event["id"], body(now - timedelta(minutes=1)))
        await eventually(lambda: ven.status.reports_sent >= 2)
    reports = list(vtn.reports.values())
    assert len(reports) == 1, "one report per event, updated in place"
    report = reports[0]
    assert (report["eventID"], report["clientName"], report["clientID"]) == (
        event["id"],
        "park-ven-1",
        "ven",
    )
    intervals = report["resources"][0]["intervals"]
    assert [i["id"] for i in intervals] == [0, 1]
    payloads = {p["type"]: p["values"] for p in intervals[1]["payloads"]}
    assert payloads == {
        "USAGE": [101.0],
        "BASELINE": [150.0],
        "DELTA_USAGE": [-49.0],
        "STORAGE_CHARGE_LEVEL": [0.4],
    }
    assert {d["payloadType"]: d["units"] for d in report["payloadDescriptors"]} == {
        "USAGE": "KWH",
        "BASELINE": "KWH",
        "DELTA_USAGE": "KWH",
        "STORAGE_CHARGE_LEVEL": "PERCENT",
    }
    assert vtn.requests_to("POST", "/reports") and vtn.requests_to(
        "PUT", f"/reports/{report['id']}"
    )
    assert vtn.violations == []


async def test_malformed_event_is_counted_and_skipped(
    vtn: VtnSim, bl: BlClient, sink: RecordingSink
) -> None:
    program = await bl.create_program("park-dr")
    good = await bl.create_event(event_body(program["id"], FOUR[3:]))
    bad = {**good, "id": "event-bad", "intervals": [{"id": "zero", "payloads": "none"}]}
    vtn.put_raw_event(bad)
    async with Ven(settings=ven_settings(vtn), sink=sink) as ven:
        await eventually(lambda: ven.status.polls >= 3)
        assert [d.event_id for d in sink.dispatches] == [good["id"]]
        assert ven.status.malformed_events >= 1
        assert ven.client.invalid_objects >= 1
        assert ven.status.poll_failures == 0
        # The bad event is not "gone": fixing it on the VTN makes it dispatch.
        vtn.put_raw_event({**good, "id": "event-bad"})
        await eventually(lambda: len(sink.dispatches) == 2)
    assert sink.cancels == []
    assert {v.path for v in vtn.violations} == {"/events"}
    assert all(
        v.direction == "response" and all(e.startswith("response[1]") for e in v.errors)
        for v in vtn.violations
    ), "only the injected item fails"


async def test_unreachable_vtn_backs_off_and_recovers(
    vtn: VtnSim, bl: BlClient, sink: RecordingSink
) -> None:
    # Asserts on the delays the VEN decided, not on wall-clock retry counts: with
    # full jitter (the old uniform(0, cap)) several ~0 s retries in a row were possible.
    program = await bl.create_program("park-dr")
    scale = 0.05
    async with Ven(settings=ven_settings(vtn, backoff_scale_s=scale), sink=sink) as ven:
        await eventually(lambda: ven.status.polls >= 1)
        async with vtn.offline():
            await eventually(lambda: ven.status.consecutive_failures >= 5, within_s=30.0)
            delays = list(ven.status.backoff_delays)[:5]
            assert len(delays) == 5
            for failures, delay in enumerate(delays, start=1):
                low, high = backoff_bounds(failures, scale)
                assert low <= delay <= high, (failures, delay)
            # provable growth: the 5th retry waits longer than the 1st could have
            assert backoff_bounds(5, scale)[0] > backoff_bounds(1, scale)[1]
            assert delays[4] > delays[0]
            event = await _create_while_down(vtn, program["id"])
        await eventually(lambda: [d.event_id for d in sink.dispatches] == [event], within_s=30.0)
        assert ven.status.consecutive_failures == 0
    assert vtn.violations == []


def test_backoff_bounds_grow_until_the_cap() -> None:
    lows = [backoff_bounds(n, 1.0)[0] for n in range(1, 13)]
    assert all(b > a for a, b in itertools.pairwise(lows[:10]))
    assert lows[10] == lows[9] == 0.5 * 1.5**10  # capped after 10 failures
    rng = random.Random(8)
    for n in range(1, 13):
        low, high = backoff_bounds(n, 2.0)
        assert all(low <= equal_jitter_delay(n, 2.0, rng) <= high for _ in range(200))


async def _create_while_down(vtn: VtnSim, program_id: str) -> str:
    # The VTN's store is edited directly while it is not listening.
    event_id = "event-while-down"
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    meta = {"id": event_id, "createdDateTime": now, "modificationDateTime": now}
    body = event_body(program_id, FOUR[3:])
    vtn.put_raw_event({**meta, "objectType": "EVENT", **body})
    return event_id


async def test_ven_works_without_the_spec(
    vtn: VtnSim, bl: BlClient, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vpp.openadr.schema as schema_module

    monkeypatch.setattr(schema_module, "locate_spec", lambda explicit=None: None)
    assert OpenAdrSchema.locate() is None
    program = await bl.create_program("park-dr")
    event = await bl.create_event(event_body(program["id"], FOUR, descriptors=KW))
    async with Ven(settings=ven_settings(vtn), sink=sink):
        await eventually(lambda: [d.event_id for d in sink.dispatches] == [event["id"]])
    assert len(sink.dispatches[0].intervals[0].instructions) == 4
    assert vtn.violations == []
