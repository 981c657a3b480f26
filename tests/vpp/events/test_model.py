from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vpp.errors import InvalidInput
from vpp.events import (
    EventPatch,
    EventRecord,
    EventState,
    IllegalTransition,
    parse_event_request,
)

T0 = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)


def body(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "ev-1",
        "kind": "peak_shaving",
        "start": T0.isoformat(),
        "target_kw": 500,
        "duration_minutes": 120,
    }
    data.update(over)
    return data


def test_flat_target_expands_to_signed_intervals() -> None:
    req = parse_event_request(body())
    assert req.signed_targets() == [-500.0] * 8
    req2 = parse_event_request(
        body(kind="valley_filling", target_kw=None, duration_minutes=None, targets_kw=[100, 0, 50])
    )
    assert req2.signed_targets() == [100.0, 0.0, 50.0]


def test_fingerprint_is_content_not_spelling() -> None:
    a = parse_event_request(body())
    b = parse_event_request(
        body(
            start=T0.astimezone().isoformat(),
            target_kw=None,
            duration_minutes=None,
            targets_kw=[500] * 8,
        )
    )
    c = parse_event_request(body(target_kw=501))
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"id": "bad id!"}, "id"),
        ({"kind": "blackout"}, "kind"),
        ({"start": "2026-07-01T06:00:00"}, "start"),
        ({"start": "yesterday"}, "start"),
        ({"interval_minutes": 7}, "interval_minutes"),
        ({"interval_minutes": 0}, "interval_minutes"),
        ({"target_kw": -1}, "target_kw"),
        ({"duration_minutes": 20}, "duration_minutes"),
        ({"target_kw": None}, "targets_kw"),
        ({"targets_kw": [1, -2]}, "targets_kw"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_fields_are_named(over: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_event_request(body(**over))
    assert field in info.value.fields, info.value.fields


def test_life_cycle_and_history() -> None:
    rec = EventRecord.new("p1", parse_event_request(body()), T0 - timedelta(hours=1))
    assert rec.state is EventState.RECEIVED
    rec.transition(EventState.SCHEDULED, T0 - timedelta(minutes=59))
    rec.transition(EventState.ACTIVE, T0)
    rec.transition(EventState.COMPLETED, rec.end)
    assert [h["state"] for h in rec.history] == ["received", "scheduled", "active", "completed"]
    with pytest.raises(IllegalTransition):
        rec.transition(EventState.ACTIVE, rec.end)
    assert rec.interval_at(T0 + timedelta(minutes=16)) == 1
    assert rec.interval_at(rec.end) is None


def test_modify_keeps_past_intervals() -> None:
    rec = EventRecord.new("p1", parse_event_request(body()), T0)
    rec.transition(EventState.ACTIVE, T0)
    rec.modify(EventPatch(targets_kw=[100] * 8), T0 + timedelta(minutes=31))
    assert rec.target_kw == [-500.0, -500.0] + [-100.0] * 6
    rec.transition(EventState.CANCELLED, T0 + timedelta(minutes=40), reason="grid request")
    with pytest.raises(IllegalTransition):
        rec.modify(EventPatch(targets_kw=[100] * 8), T0 + timedelta(minutes=41))
    assert rec.to_json()["delivered_kw"] == [None] * 8


def _active(n: int = 4, minutes: int = 15) -> EventRecord:
    rec = EventRecord.new(
        "p1", parse_event_request(body(target_kw=None, duration_minutes=None, targets_kw=[500] * n,
                                       interval_minutes=minutes)), T0
    )  # fmt: skip
    rec.transition(EventState.ACTIVE, T0)
    return rec


def test_modify_extends_in_place_keeping_what_was_measured() -> None:
    # Issue 8 case 9: 4 x 15 min from T0, six targets at T0 + 32 min.
    rec = _active()
    rec.baseline_kw = [1000.0] * 4
    rec.measured_kw = [510.0, 495.0, 600.0, None]
    rec.delivered_kw = [-490.0, -505.0, -400.0, None]
    rec.modify(EventPatch(targets_kw=[500.0] * 4 + [300.0, 300.0]), T0 + timedelta(minutes=32))
    assert rec.target_kw == [-500.0] * 4 + [-300.0] * 2
    assert rec.end == T0 + timedelta(minutes=90)
    assert rec.baseline_kw == [1000.0] * 4 + [None, None]
    assert rec.measured_kw == [510.0, 495.0, 600.0, None, None, None]
    assert rec.delivered_kw == [-490.0, -505.0, -400.0, None, None, None]
    assert len(rec.shortfall_kw) == 6
    assert rec.state is EventState.ACTIVE
    assert rec.history[-1]["modified"] and rec.history[-1]["intervals"] == 6


def test_modify_shortens_but_never_cuts_a_started_interval() -> None:
    rec = _active(8)
    rec.measured_kw = [500.0, 500.0, 480.0] + [None] * 5
    # at 31 min interval 2 runs; three targets: the event ends after it, with the new target
    rec.modify(EventPatch(targets_kw=[100] * 3), T0 + timedelta(minutes=31))
    assert rec.target_kw == [-500.0, -500.0, -100.0]
    assert rec.measured_kw == [500.0, 500.0, 480.0]
    assert rec.end == T0 + timedelta(minutes=45)
    # a list that stops before the current interval: the current one runs to its end as it was
    rec.modify(EventPatch(targets_kw=[100]), T0 + timedelta(minutes=40))
    assert rec.target_kw == [-500.0, -500.0, -100.0]
    # before the start the whole event takes the new list
    early = EventRecord.new("p1", parse_event_request(body()), T0 - timedelta(hours=1))
    early.modify(EventPatch(targets_kw=[50, 60]), T0 - timedelta(minutes=5))
    assert early.target_kw == [-50.0, -60.0] and early.end == T0 + timedelta(minutes=30)
