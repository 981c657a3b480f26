"""OpenADR event JSON → :class:`~vpp.openadr.model.GridDispatch`, and time formats.

Mapping of the four dispatch payload types (one value per interval, as the
enumeration schemas require; units from the event's, else the program's,
eventPayloadDescriptor, kW assumed when none is given; W and MW converted):

=============================  =======================================================
payload                        instruction
=============================  =======================================================
DISPATCH_SETPOINT v            ``SetpointKw(v)``: park net import target, ≥ 0
DISPATCH_SETPOINT_RELATIVE v   ``RelativeKw(-v)`` (``relative_is_reduction``, default)
                               or ``RelativeKw(+v)``; < 0 means below baseline
IMPORT_CAPACITY_LIMIT v        ``ImportLimitKw(v)``: import cap
SIMPLE n                       ``SimpleLevel(n, f[n], f[n] × park_capacity_kw)``
=============================  =======================================================

Timing follows User Guide 7.3/7.4: an interval's own intervalPeriod wins over
the event's; a start of 0001-01-01 means "now"; an interval without a start
follows the previous one; ``event.duration`` shorter than the intervals
truncates them (looping by a longer duration is not supported);
``randomizeStart`` is ignored (the park acts as one resource).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from vpp.openadr import constants as c
from vpp.openadr.errors import MappingError
from vpp.openadr.model import (
    DispatchInterval,
    GridDispatch,
    ImportLimitKw,
    Instruction,
    RelativeKw,
    ReportRequest,
    SetpointKw,
    SimpleLevel,
)
from vpp.openadr.settings import VenSettings

Json = dict[str, Any]

_DURATION = re.compile(
    r"^(-?)P(?=\d|T\d)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)([DW]))?"
    r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)
#: Power units this VEN understands, as factors to kW.
_POWER_UNITS = {"KW": 1.0, "W": 0.001, "MW": 1000.0}


def parse_duration(text: str) -> timedelta:
    """Parse an ISO 8601 duration as the spec's pattern allows.

    Years count 365 days and months 30 (the User Guide advises against both);
    ``P9999Y`` ("infinity") thus becomes 9999 × 365 days.

    Raises:
        MappingError: The text is not such a duration.
    """
    match = _DURATION.match(text)
    if match is None:
        raise MappingError(f"not an ISO 8601 duration: {text!r}")
    sign, years, months, days, unit, hours, minutes, seconds = match.groups()
    day_count = int(years or 0) * 365 + int(months or 0) * 30
    if days:
        day_count += int(days) * (7 if unit == "W" else 1)
    result = timedelta(
        days=day_count,
        hours=int(hours or 0),
        minutes=int(minutes or 0),
        seconds=float(seconds or 0),
    )
    return -result if sign else result


def format_duration(value: timedelta) -> str:
    """Format a non-negative timedelta as ``PT<seconds>S`` (fractions kept to ms)."""
    seconds = round(value.total_seconds(), 3)
    if seconds < 0:
        raise ValueError("negative duration")
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"PT{text}S"


def parse_datetime(text: str) -> datetime:
    """Parse an RFC 3339 date-time; a naive one is taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise MappingError(f"not an RFC 3339 date-time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def format_datetime(value: datetime) -> str:
    """Format as RFC 3339 in UTC with a ``Z``."""
    text = value.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _is_now(start: str | None) -> bool:
    return start is not None and start.startswith(c.START_NOW_PREFIX)


def is_cancelled(event: Mapping[str, Any]) -> bool:
    """Whether the event uses the User Guide 7.9 cancellation convention.

    The event's window is set to start 0001-01-01 with a zero duration and no
    interval has a timing of its own.
    """
    period = event.get("intervalPeriod") or {}
    if not _is_now(period.get("start")):
        return False
    try:
        if parse_duration(period.get("duration") or "PT0S") != timedelta(0):
            return False
    except MappingError:
        return False
    return not any((i.get("intervalPeriod") or {}) for i in event.get("intervals") or [])


def _descriptor_units(descriptors: Iterable[Mapping[str, Any]]) -> dict[str, str | None]:
    units: dict[str, str | None] = {}
    for descriptor in descriptors:
        if descriptor.get("objectType", c.EVENT_PAYLOAD_DESCRIPTOR) != c.EVENT_PAYLOAD_DESCRIPTOR:
            continue
        kind = descriptor.get("payloadType")
        if isinstance(kind, str):
            units[kind] = descriptor.get("units")
    return units


def _single_number(payload: Mapping[str, Any], where: str) -> float:
    values = payload.get("values")
    if not isinstance(values, list) or len(values) != 1:
        raise MappingError(f"{where}: {payload.get('type')} needs exactly one value")
    value = values[0]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MappingError(f"{where}: {payload.get('type')} value {value!r} is not a number")
    return float(value)


def _instruction(
    payload: Mapping[str, Any], units: Mapping[str, str | None], settings: VenSettings, where: str
) -> Instruction | None:
    kind = payload.get("type")
    if kind not in c.DISPATCH_PAYLOADS:
        return None  # PRICE, GHG, alerts … are not dispatch instructions
    value = _single_number(payload, where)
    if kind == c.SIMPLE:
        level = int(value)
        if level != value or not 0 <= level <= 3:
            raise MappingError(f"{where}: SIMPLE level {value!r} is not 0, 1, 2 or 3")
        fraction = settings.simple_shed_fractions[level]
        return SimpleLevel(level, fraction, fraction * settings.park_capacity_kw)
    unit = (units.get(kind) or "KW").upper()
    factor = _POWER_UNITS.get(unit)
    if factor is None:
        raise MappingError(f"{where}: {kind} in units {unit!r}; this VEN takes KW, W or MW")
    kw = value * factor
    if kind == c.DISPATCH_SETPOINT:
        return SetpointKw(kw)
    if kind == c.IMPORT_CAPACITY_LIMIT:
        return ImportLimitKw(kw)
    return RelativeKw(-kw if settings.relative_is_reduction else kw)


def _report_requests(event: Mapping[str, Any]) -> tuple[ReportRequest, ...]:
    wanted: list[ReportRequest] = []
    for descriptor in event.get("reportDescriptors") or []:
        kind = descriptor.get("payloadType")
        if kind in c.REPORT_PAYLOADS and all(r.payload_type != kind for r in wanted):
            wanted.append(
                ReportRequest(kind, descriptor.get("readingType"), descriptor.get("units"))
            )
    return tuple(wanted)


def event_to_dispatch(
    event: Mapping[str, Any],
    *,
    program_name: str,
    program_descriptors: Iterable[Mapping[str, Any]] = (),
    settings: VenSettings,
    revision: int = 1,
    now: datetime | None = None,
) -> GridDispatch:
    """Map a (schema-valid) OpenADR ``event`` to a :class:`GridDispatch`.

    Args:
        event: The event as the VTN sent it.
        program_name: Name of the event's program.
        program_descriptors: The program's payloadDescriptors (event ones win).
        settings: Park capacity, SIMPLE fractions and the relative-setpoint direction.
        revision: Version counter kept by the caller.
        now: The time "0001-01-01" stands for; defaults to the current time.

    Raises:
        MappingError: Timing or units this VEN cannot interpret.
    """
    now = now or datetime.now(UTC)
    units = _descriptor_units(program_descriptors)
    units.update(_descriptor_units(event.get("payloadDescriptors") or []))
    period = event.get("intervalPeriod") or {}
    default_start: datetime | None = None
    if period.get("start"):
        default_start = now if _is_now(period["start"]) else parse_datetime(period["start"])
    default_duration = parse_duration(period["duration"]) if period.get("duration") else None
    cancelled = is_cancelled(event)

    intervals: list[DispatchInterval] = []
    cursor: datetime | None = None
    for index, interval in enumerate(event.get("intervals") or []):
        where = f"event {event.get('id')} interval {interval.get('id')}"
        own = interval.get("intervalPeriod") or {}
        own_start = own.get("start")
        if own_start and not _is_now(own_start):
            start = parse_datetime(own_start)
        elif index == 0:
            start = default_start or now
        else:
            assert cursor is not None
            start = cursor
        duration = parse_duration(own["duration"]) if own.get("duration") else default_duration
        if duration is None:
            raise MappingError(f"{where}: no duration in the interval or the event")
        cursor = start + duration
        found = (
            _instruction(payload, units, settings, where)
            for payload in interval.get("payloads") or []
        )
        instructions = tuple(i for i in found if i is not None)
        intervals.append(DispatchInterval(int(interval["id"]), start, duration, instructions))

    if event.get("duration") and intervals and not cancelled:
        limit = intervals[0].start + parse_duration(event["duration"])
        intervals = [
            DispatchInterval(i.interval_id, i.start, min(i.end, limit) - i.start, i.instructions)
            for i in intervals
            if i.start < limit
        ]

    return GridDispatch(
        event_id=str(event["id"]),
        program_id=str(event["programID"]),
        program_name=program_name,
        event_name=event.get("eventName"),
        modification=str(event.get("modificationDateTime", "")),
        revision=revision,
        created=parse_datetime(event["createdDateTime"]),
        start=intervals[0].start if intervals else default_start,
        interval_duration=default_duration,
        intervals=tuple(intervals),
        priority=event.get("priority"),
        report_requests=_report_requests(event),
        cancelled=cancelled,
    )
