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
the event's, so intervals may leave gaps, overlap or come in any order; a
start of 0001-01-01 means "now" for the first interval and "right after the
previous one" for the others, as does a missing start; durations are any
ISO 8601 duration the schema allows, and ``P9999Y`` (or anything ending past
year 9999) means "no end" (``DispatchInterval.duration`` None);
``event.duration`` shorter than the intervals truncates them, a longer one
(looping intervals, User Guide 7.5) is refused with a :class:`MappingError`
when the event carries dispatch instructions (a looping tariff of PRICE
intervals is tracked, as it dispatches nothing);
``randomizeStart`` is ignored (the park acts as one resource).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import isodate

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

#: Power units this VEN understands, as factors to kW.
_POWER_UNITS = {"KW": 1.0, "W": 0.001, "MW": 1000.0}
#: Any date-time stands in for the anchor of a zero / non-zero check.
_ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)


def parse_duration(text: str, start: datetime = _ANCHOR) -> timedelta | None:
    """Parse an ISO 8601 duration as the OpenADR 3 schema allows, from ``start``.

    Every form the schema's pattern admits is handled by ``isodate``: years,
    months, weeks, days, hours, minutes and fractional seconds. Years and
    months are calendar units counted from ``start`` (the User Guide 7.3 advises
    against them because of exactly this). ``P9999Y`` is the spec's "infinity"
    (User Guide 7.3), and so is any duration that ends after the last date-time
    Python can represent: both give None, "no end".

    Args:
        text: The duration, e.g. ``PT15M``, ``P1Y2M``, ``P2W``, ``PT0.5S``, ``P9999Y``.
        start: Where the duration starts (matters for years and months only).

    Returns:
        The length, or None for no end.

    Raises:
        MappingError: The text is not an ISO 8601 duration, or it is negative.
    """
    if text == c.DURATION_FOREVER:
        return None
    try:
        value = isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError, TypeError) as exc:
        raise MappingError(f"not an ISO 8601 duration: {text!r}") from exc
    try:
        length: timedelta = (start + value) - start
    except (OverflowError, ValueError):
        return None  # past year 9999: as good as "infinity"
    if length < timedelta(0):
        raise MappingError(f"negative duration {text!r}: an interval cannot end before it starts")
    return length


def format_duration(value: timedelta | None) -> str:
    """Format a non-negative timedelta as ``PT<seconds>S`` (fractions kept to ms).

    None (no end) is the spec's infinity, ``P9999Y``.
    """
    if value is None:
        return c.DURATION_FOREVER
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
    default_text: str | None = period.get("duration")
    cancelled = is_cancelled(event)

    intervals: list[DispatchInterval] = []
    cursor: datetime | None = None  # end of the previous interval; None = it has no end
    for index, interval in enumerate(event.get("intervals") or []):
        where = f"event {event.get('id')} interval {interval.get('id')}"
        own = interval.get("intervalPeriod") or {}
        own_start = own.get("start")
        if own_start and not _is_now(own_start):
            start = parse_datetime(own_start)
        elif index == 0:
            start = default_start or now
        elif cursor is None:
            raise MappingError(f"{where}: follows an interval that never ends")
        else:
            start = cursor
        text = own.get("duration") or default_text
        if text is None:
            raise MappingError(f"{where}: no duration in the interval or the event")
        duration = parse_duration(text, start)
        cursor = None if duration is None else start + duration
        found = (
            _instruction(payload, units, settings, where)
            for payload in interval.get("payloads") or []
        )
        instructions = tuple(i for i in found if i is not None)
        intervals.append(DispatchInterval(int(interval["id"]), start, duration, instructions))

    if event.get("duration") and intervals and not cancelled:
        span = parse_duration(event["duration"], _first(intervals))
        if any(i.instructions for i in intervals):
            intervals = _limit(intervals, span)
        # else (PRICE, GHG ... only): nothing is dispatched, so a loop changes nothing here

    first = _first(intervals) if intervals else default_start
    return GridDispatch(
        event_id=str(event["id"]),
        program_id=str(event["programID"]),
        program_name=program_name,
        event_name=event.get("eventName"),
        modification=str(event.get("modificationDateTime", "")),
        revision=revision,
        created=parse_datetime(event["createdDateTime"]),
        start=first,
        interval_duration=parse_duration(default_text, first or now) if default_text else None,
        intervals=tuple(intervals),
        priority=event.get("priority"),
        report_requests=_report_requests(event),
        cancelled=cancelled,
    )


def _first(intervals: Sequence[DispatchInterval]) -> datetime:
    return min(i.start for i in intervals)


def _limit(intervals: list[DispatchInterval], span: timedelta | None) -> list[DispatchInterval]:
    """Apply ``event.duration`` (User Guide 7.3): truncate, or refuse looping."""
    begin = _first(intervals)
    ends = [i.end for i in intervals]
    last = None if any(e is None for e in ends) else max(e for e in ends if e is not None)
    limit = None if span is None else begin + span
    if limit is None and last is None:
        return intervals  # both "forever": nothing to cut, nothing to repeat
    if last is not None and (limit is None or limit > last):
        raise MappingError(
            "event.duration is longer than its intervals (looping intervals, "
            "User Guide 7.5); this VEN does not repeat intervals"
        )
    assert limit is not None
    out: list[DispatchInterval] = []
    for i in intervals:
        if i.start >= limit:
            continue
        end = limit if i.end is None else min(i.end, limit)
        out.append(DispatchInterval(i.interval_id, i.start, end - i.start, i.instructions))
    return out
