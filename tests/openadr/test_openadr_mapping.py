"""Spec loading, errata, event mapping and report bodies, without a network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from oadr_helpers import event_body

import vpp.openadr

from vpp.openadr import (
    GridDispatch,
    ImportLimitKw,
    IntervalReading,
    OpenAdrSchema,
    RelativeKw,
    SetpointKw,
    SimpleLevel,
    locate_spec,
)
from vpp.openadr.errors import MappingError
from vpp.openadr.mapping import event_to_dispatch, parse_duration
from vpp.openadr.reports import build_report, report_interval

NOW = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
META = {
    "id": "event-1",
    "createdDateTime": "2026-11-28T07:00:00Z",
    "modificationDateTime": "2026-11-28T07:30:00Z",
    "objectType": "EVENT",
}


def settings(**overrides: object):  # type: ignore[no-untyped-def]
    from vpp.openadr import VenSettings

    values: dict[str, object] = {
        "vtn_url": "http://127.0.0.1:1",
        "client_id": "ven",
        "client_secret": "s",
        "ven_name": "v",
        "program_names": ("p",),
        "park_capacity_kw": 2000.0,
    }
    values.update(overrides)
    return VenSettings(**values)  # type: ignore[arg-type]


def mapped(spec: OpenAdrSchema, body: dict[str, object], **kw: object) -> GridDispatch:
    event = {**META, **body}
    assert spec.errors("event", event) == []
    return event_to_dispatch(
        event, program_name="park-dr", settings=kw.pop("s", settings()), now=NOW, **kw
    )  # type: ignore[arg-type]


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
    assert parse_duration("P9999Y") == timedelta(days=9999 * 365)
    assert parse_duration("PT1.5S") == timedelta(seconds=1.5)


def test_report_body_validates(spec: OpenAdrSchema) -> None:
    body = event_body("p1", [{"type": "SIMPLE", "values": [1]}], start=NOW, intervals=2)
    dispatch = mapped(spec, body)
    wanted = ("USAGE", "BASELINE", "DELTA_USAGE", "STORAGE_CHARGE_LEVEL")
    intervals = [
        report_interval(i, IntervalReading(i.interval_id, 90.0, 120.0, None, 1.2), wanted)
        for i in dispatch.intervals
    ]
    report = build_report(dispatch, intervals, client_name="park-ven-1", wanted=wanted)
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
