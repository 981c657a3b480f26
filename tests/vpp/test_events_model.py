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
    with pytest.raises(IllegalTransition):
        rec.modify(EventPatch(targets_kw=[100] * 3), T0 + timedelta(minutes=31))
    rec.transition(EventState.CANCELLED, T0 + timedelta(minutes=40), reason="grid request")
    with pytest.raises(IllegalTransition):
        rec.modify(EventPatch(targets_kw=[100] * 8), T0 + timedelta(minutes=41))
    assert rec.to_json()["delivered_kw"] == [None] * 8
