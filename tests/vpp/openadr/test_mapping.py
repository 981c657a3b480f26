"""Spec loading, errata, event mapping and report bodies, without a network."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import vpp.openadr
from tests.vpp.openadr.helpers import event_body
from vpp.openadr import (
    GridDispatch,
    ImportLimitKw,
    IntervalReading,
    OpenAdrSchema,
    RelativeKw,
    SetpointKw,
    SimpleLevel,
    VenSettings,
    locate_spec,
)
from vpp.openadr.errors import MappingError
from vpp.openadr.mapping import event_to_dispatch, parse_duration
from vpp.openadr.reports import build_report_request, report_interval

NOW = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
META = {
    "id": "event-1",
    "createdDateTime": "2026-11-28T07:00:00Z",
    "modificationDateTime": "2026-11-28T07:30:00Z",
    "objectType": "EVENT",
}


def settings(**overrides: Any) -> VenSettings:
    values: dict[str, Any] = {
        "vtn_url": "http://127.0.0.1:1",
        "client_id": "ven",
        "client_secret": "s",
        "ven_name": "v",
        "program_names": ("p",),
        "park_capacity_kw": 2000.0,
    }
    values.update(overrides)
    return VenSettings(**values)


def mapped(spec: OpenAdrSchema, body: Mapping[str, Any], **kw: Any) -> GridDispatch:
    event = {**META, **body}
    assert spec.errors("event", event) == []
    return event_to_dispatch(
        event, program_name="park-dr", settings=kw.pop("s", settings()), now=NOW, **kw
    )


def test_locate_spec_prefers_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VPP_OPENADR_SPEC", raising=False)
    found = locate_spec()
    # The spec ships inside the package, with its license, so every clone and wheel has it.
    assert found is not None and found.name == "openadr3.yaml"
    assert found.parent == Path(vpp.openadr.__file__).parent / "spec"
    assert {"LICENSE", "NOTICE"} <= {p.name for p in found.parent.iterdir()}
    assert (found.parent / "enumerations" / "event-interval-payloads.schema.yaml").is_file()
    copy = tmp_path / "openadr3.yaml"
    copy.write_bytes(found.read_bytes())
    monkeypatch.setenv("VPP_OPENADR_SPEC", str(copy))
    assert locate_spec() == copy
    assert locate_spec(found) == found
    # An override naming a missing file falls back to the packaged copy, never to None.
    monkeypatch.setenv("VPP_OPENADR_SPEC", str(tmp_path / "missing.yaml"))
    assert locate_spec() == found


def test_errata_let_valid_ven_and_notification_pass(spec: OpenAdrSchema) -> None:
    ven = {**META, "id": "ven-1", "objectType": "VEN", "venName": "v", "clientID": "c"}
    assert spec.errors("ven", ven) == []
    event = {**META, "programID": "p1", "intervals": []}
    assert (
        spec.errors("notification", {"objectType": "EVENT", "operation": "CREATE", "object": event})
        == []
    )


def test_enumeration_schemas_check_payload_values(spec: OpenAdrSchema) -> None:
    bad = {**META, **event_body("p1", [{"type": "SIMPLE", "values": [4]}])}
    assert any("SIMPLE" in e for e in spec.errors("event", bad))
    two = {**META, **event_body("p1", [{"type": "DISPATCH_SETPOINT", "values": [1.0, 2.0]}])}
    assert spec.errors("event", two)


@pytest.mark.parametrize(
    ("payload", "units", "expected"),
    [
        ({"type": "DISPATCH_SETPOINT", "values": [1500.0]}, "KW", SetpointKw(1500.0)),
        ({"type": "DISPATCH_SETPOINT", "values": [1.5]}, "MW", SetpointKw(1500.0)),
        ({"type": "DISPATCH_SETPOINT_RELATIVE", "values": [300]}, "KW", RelativeKw(-300.0)),
        ({"type": "IMPORT_CAPACITY_LIMIT", "values": [800000]}, "W", ImportLimitKw(800.0)),
        ({"type": "SIMPLE", "values": [2]}, None, SimpleLevel(2, 0.25, 500.0)),
    ],
)
def test_each_payload_type_maps_to_an_instruction(
    spec: OpenAdrSchema, payload: dict[str, object], units: str | None, expected: object
) -> None:
    descriptors = (
        [{"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": payload["type"], "units": units}]
        if units
        else None
    )
    start = NOW + timedelta(hours=1)
    body = event_body("p1", [payload], start=start, intervals=3, descriptors=descriptors)
    dispatch = mapped(spec, body)
    assert [i.instructions for i in dispatch.intervals] == [(expected,)] * 3
    assert [i.start for i in dispatch.intervals] == [
        start + timedelta(minutes=15 * k) for k in range(3)
    ]
    assert dispatch.interval_duration == timedelta(minutes=15)
    assert (dispatch.event_id, dispatch.program_id, dispatch.revision) == ("event-1", "p1", 1)
    assert dispatch.modification == META["modificationDateTime"] and not dispatch.cancelled


def test_relative_direction_and_program_units(spec: OpenAdrSchema) -> None:
    body = event_body("p1", [{"type": "DISPATCH_SETPOINT_RELATIVE", "values": [0.2]}])
    program_units = [
        {
            "objectType": "EVENT_PAYLOAD_DESCRIPTOR",
            "payloadType": "DISPATCH_SETPOINT_RELATIVE",
            "units": "MW",
        }
    ]
    up = mapped(
        spec, body, s=settings(relative_is_reduction=False), program_descriptors=program_units
    )
    assert up.intervals[0].instructions == (RelativeKw(200.0),)


def test_timing_now_overrides_and_truncation(spec: OpenAdrSchema) -> None:
    body = {
        "programID": "p1",
        "duration": "PT40M",
        "intervalPeriod": {"start": "0001-01-01T00:00:00Z", "duration": "PT15M"},
        "intervals": [
            {"id": 7, "payloads": [{"type": "SIMPLE", "values": [1]}]},
            {
                "id": 8,
                "intervalPeriod": {"duration": "PT30M"},
                "payloads": [{"type": "SIMPLE", "values": [3]}],
            },
        ],
    }
    dispatch = mapped(spec, body)
    first, second = dispatch.intervals
    assert (first.interval_id, first.start, first.duration) == (7, NOW, timedelta(minutes=15))
    assert (second.start, second.duration) == (NOW + timedelta(minutes=15), timedelta(minutes=25))
    assert second.instructions == (SimpleLevel(3, 0.5, 1000.0),)


def test_cancel_convention_and_bad_units(spec: OpenAdrSchema) -> None:
    cancelled = {
        "programID": "p1",
        "intervalPeriod": {"start": "0001-01-01T00:00:00Z", "duration": "PT0S"},
        "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}],
    }
    assert mapped(spec, cancelled).cancelled
    kwh = event_body(
        "p1",
        [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5.0]}],
        descriptors=[
            {
                "objectType": "EVENT_PAYLOAD_DESCRIPTOR",
                "payloadType": "IMPORT_CAPACITY_LIMIT",
                "units": "KWH",
            }
        ],
    )
    with pytest.raises(MappingError):
        mapped(spec, kwh)


JAN31 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P9999Y", None),  # the spec's "infinity" (User Guide 7.3)
        ("P9000Y", None),  # ends past year 9999: no end either
        ("PT15M", timedelta(minutes=15)),
        ("PT1.5S", timedelta(seconds=1.5)),
        ("PT0.6S", timedelta(seconds=0.6)),
        ("P2W", timedelta(days=14)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("P1M", timedelta(days=28)),  # a calendar month from 31 January 2026
        ("P1Y", timedelta(days=365)),
        ("P1Y1M", timedelta(days=365 + 28)),
        ("PT0S", timedelta(0)),
        ("P0D", timedelta(0)),
    ],
)
def test_every_schema_duration_is_read(text: str, expected: timedelta | None) -> None:
    assert parse_duration(text, JAN31) == expected


@pytest.mark.parametrize("text", ["-PT5M", "15 minutes", "P"])
def test_bad_or_negative_durations_are_mapping_errors(text: str) -> None:
    with pytest.raises(MappingError):
        parse_duration(text, JAN31)


def test_open_ended_event_maps_without_an_end(spec: OpenAdrSchema) -> None:
    body: dict[str, Any] = {
        "programID": "p1",
        "intervalPeriod": {"start": "2026-07-01T10:00:00Z", "duration": "P9999Y"},
        "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [800]}]}],
    }
    dispatch = mapped(spec, body)
    (only,) = dispatch.intervals
    assert only.start == datetime(2026, 7, 1, 10, tzinfo=UTC)
    assert only.duration is None and only.end is None
    assert dispatch.end is None and dispatch.open_ended
    assert only.instructions == (ImportLimitKw(800.0),)
    # an interval that would follow one that never ends cannot be placed
    body["intervals"].append({"id": 1, "payloads": [{"type": "SIMPLE", "values": [1]}]})
    with pytest.raises(MappingError, match="never ends"):
        mapped(spec, body)


def test_intervals_are_placed_by_their_own_period(spec: OpenAdrSchema) -> None:
    def at(minutes: int) -> str:
        return (NOW + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")

    simple = [{"type": "SIMPLE", "values": [1]}]
    body = {
        "programID": "p1",
        "intervalPeriod": {"start": at(0), "duration": "PT15M"},
        "intervals": [
            # out of order, with a gap between 15 and 60 and a different length
            {"id": 2, "intervalPeriod": {"start": at(60), "duration": "PT30M"}, "payloads": simple},
            {"id": 0, "payloads": simple},
            {"id": 1, "intervalPeriod": {"start": at(90)}, "payloads": simple},
        ],
    }
    dispatch = mapped(spec, body)
    timing = {i.interval_id: (i.start, i.duration) for i in dispatch.intervals}
    assert timing == {
        2: (NOW + timedelta(minutes=60), timedelta(minutes=30)),
        # without a start of its own, an interval follows the previous one in the list
        0: (NOW + timedelta(minutes=90), timedelta(minutes=15)),
        1: (NOW + timedelta(minutes=90), timedelta(minutes=15)),
    }
    assert dispatch.start == NOW + timedelta(minutes=60)
    assert dispatch.end == NOW + timedelta(minutes=105)


def test_event_duration_truncates_and_looping_is_refused(spec: OpenAdrSchema) -> None:
    body = event_body("p1", [{"type": "SIMPLE", "values": [1]}], start=NOW, intervals=2)
    assert mapped(spec, {**body, "duration": "PT20M"}).end == NOW + timedelta(minutes=20)
    for longer in ("PT45M", "P9999Y"):
        with pytest.raises(MappingError, match="looping"):
            mapped(spec, {**body, "duration": longer})
    # a looping tariff (PRICE only) dispatches nothing: it is tracked, not refused
    tariff = event_body("p1", [{"type": "PRICE", "values": [0.2]}], start=NOW, intervals=24,
                        duration="PT1H")  # fmt: skip
    looped = mapped(spec, {**tariff, "duration": "P9999Y"})
    assert len(looped.intervals) == 24 and not looped.has_instructions


def test_report_body_validates(spec: OpenAdrSchema) -> None:
    body = event_body("p1", [{"type": "SIMPLE", "values": [1]}], start=NOW, intervals=2)
    dispatch = mapped(spec, body)
    wanted = ("USAGE", "BASELINE", "DELTA_USAGE", "STORAGE_CHARGE_LEVEL")
    intervals = [
        report_interval(i, IntervalReading(i.interval_id, 90.0, 120.0, None, 1.2), wanted)
        for i in dispatch.intervals
    ]
    report = build_report_request(dispatch, intervals, client_name="park-ven-1", wanted=wanted)
    assert spec.errors("reportRequest", report) == []
    payloads = {
        p["type"]: p["values"][0] for p in report["resources"][0]["intervals"][0]["payloads"]
    }
    assert payloads == {
        "USAGE": 90.0,
        "BASELINE": 120.0,
        "DELTA_USAGE": -30.0,
        "STORAGE_CHARGE_LEVEL": 1.0,
    }
