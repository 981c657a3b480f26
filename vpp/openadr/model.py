"""What the VEN hands to the service, and what it asks of it.

The VEN turns OpenADR events into :class:`GridDispatch` values and hands them
to a :class:`DispatchSink`; for reports it asks a :class:`ReportSource` for
per-interval readings. Sign convention throughout: positive kW is power drawn
from the grid (as everywhere in the service and in ``dispatch``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class SetpointKw:
    """DISPATCH_SETPOINT: hold the park's net import at ``target_kw`` (≥ 0, drawn from grid)."""

    target_kw: float


@dataclass(frozen=True, slots=True)
class RelativeKw:
    """DISPATCH_SETPOINT_RELATIVE: move ``delta_kw`` away from baseline.

    ``delta_kw`` < 0 is a reduction (consume less than baseline), > 0 an increase.
    """

    delta_kw: float


@dataclass(frozen=True, slots=True)
class ImportLimitKw:
    """IMPORT_CAPACITY_LIMIT: never draw more than ``max_import_kw`` from the grid."""

    max_import_kw: float


@dataclass(frozen=True, slots=True)
class SimpleLevel:
    """SIMPLE: a level 0-3 and the reduction it means for this park.

    Attributes:
        level: 0 normal, 1 moderate, 2 high, 3 emergency shed.
        shed_fraction: Configured fraction of park capacity to shed at this level.
        shed_kw: ``shed_fraction × park_capacity_kw``; a reduction below baseline (≥ 0).
    """

    level: int
    shed_fraction: float
    shed_kw: float


#: One instruction of an interval.
Instruction = SetpointKw | RelativeKw | ImportLimitKw | SimpleLevel


@dataclass(frozen=True, slots=True)
class DispatchInterval:
    """One event interval with its resolved timing.

    Attributes:
        interval_id: The event's interval id (reports echo it).
        start: Absolute start (UTC).
        duration: Length, resolved from the interval's own start (calendar years
            and months); None means no end (``P9999Y``, the spec's infinity).
        instructions: The dispatch payloads of the interval; empty if it has none.
    """

    interval_id: int
    start: datetime
    duration: timedelta | None
    instructions: tuple[Instruction, ...]

    @property
    def end(self) -> datetime | None:
        """Start plus duration; None when the interval has no end."""
        return None if self.duration is None else self.start + self.duration


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """A reportDescriptor of the event that asks for one of the VEN's report types."""

    payload_type: str
    reading_type: str | None
    units: str | None


@dataclass(frozen=True, slots=True)
class GridDispatch:
    """A grid operator's OpenADR event, in the service's terms.

    Attributes:
        event_id: The VTN's event id; stable across modifications.
        program_id: The VTN's program id.
        program_name: The programName the VEN was configured with.
        event_name: eventName, if any.
        modification: The VTN's modificationDateTime (RFC 3339); 3.1.1 has no
            modification number, so this and ``revision`` identify a version.
        revision: 1 for the first version this VEN saw, +1 per modification.
        created: The VTN's createdDateTime.
        start: Start of the earliest interval (UTC).
        interval_duration: The event's default interval length, if it sets one
            (None also when it is "no end").
        intervals: Intervals in the event's order, each placed by its own timing
            (they may leave gaps, overlap, or come in any order).
        priority: Event priority (lower is more important), if any.
        report_requests: Report types among USAGE, BASELINE, DELTA_USAGE,
            STORAGE_CHARGE_LEVEL that the event's reportDescriptors ask for.
        cancelled: True when the VTN cancelled by the User Guide 7.9 convention
            (start 0001-01-01, duration 0); the VEN then calls ``on_cancel``.
        source: Always ``"openadr"``.
    """

    event_id: str
    program_id: str
    program_name: str
    event_name: str | None
    modification: str
    revision: int
    created: datetime
    start: datetime | None
    interval_duration: timedelta | None
    intervals: tuple[DispatchInterval, ...]
    priority: int | None = None
    report_requests: tuple[ReportRequest, ...] = ()
    cancelled: bool = False
    source: Literal["openadr"] = "openadr"

    @property
    def end(self) -> datetime | None:
        """End of the latest interval; None when there is none or one has no end."""
        ends = [i.end for i in self.intervals]
        if not ends or any(e is None for e in ends):
            return None
        return max(e for e in ends if e is not None)

    @property
    def open_ended(self) -> bool:
        """Whether an interval of the event never ends (``P9999Y``)."""
        return any(i.duration is None for i in self.intervals)

    @property
    def has_instructions(self) -> bool:
        """Whether any interval carries a dispatch instruction."""
        return any(i.instructions for i in self.intervals)


class DispatchSink(Protocol):
    """Where the VEN delivers dispatches; implemented by the service."""

    async def on_dispatch(self, dispatch: GridDispatch) -> None:
        """A new event, or a new version of one (same ``event_id``, higher ``revision``).

        Raising makes the VEN offer the same version again at the next poll.
        """

    async def on_cancel(self, event_id: str) -> None:
        """The event was deleted on the VTN or cancelled; stop acting on it."""

    async def on_renew(self, dispatch: GridDispatch) -> None:
        """The same version again, offered at every poll while the event runs.

        A sink whose own events have a horizon (the service plans a bounded
        window) rolls it forward here for open-ended or very long events;
        others do nothing. Must be idempotent. Raising is logged and counted,
        and the next poll offers it again.
        """


@dataclass(frozen=True, slots=True)
class IntervalReading:
    """What the park did in one event interval, for a report.

    Attributes:
        interval_id: The event interval's id.
        usage_kwh: Energy drawn from the grid during the interval (USAGE, ≥ 0).
        baseline_kwh: Energy the park would have drawn with no event (BASELINE).
        delta_usage_kwh: usage − baseline (DELTA_USAGE; < 0 is a reduction); None
            with both of the others set means "compute it".
        storage_charge_level: Aggregate state of charge of the park's storage,
            0.0 empty to 1.0 full, at the end of the interval (STORAGE_CHARGE_LEVEL;
            the enumeration schema bounds it to [0, 1] with units PERCENT).

    Fields left None are omitted from the report.
    """

    interval_id: int
    usage_kwh: float | None = None
    baseline_kwh: float | None = None
    delta_usage_kwh: float | None = None
    storage_charge_level: float | None = None


class ReportSource(Protocol):
    """Where the VEN gets report data; implemented by the service."""

    async def readings(
        self, dispatch: GridDispatch, intervals: Sequence[DispatchInterval]
    ) -> Sequence[IntervalReading]:
        """Readings for the given (ended) intervals of ``dispatch``; may skip some."""
        ...
