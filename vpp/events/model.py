"""Dispatch events from the grid side: payloads, states and the per-interval record.

An event asks the park to deviate from its baseline over a window of equal
intervals. Peak shaving asks for less power from the grid, valley filling
for more; the request states magnitudes (kW ≥ 0) and the kind gives the
direction, so the stored target is a signed deviation in the service's
convention (positive = drawn from the grid)::

    peak_shaving   target_kw = -requested
    valley_filling target_kw = +requested

Life cycle (every change is appended to the park log)::

    received ──► scheduled ──► active ──► completed
        │            │            └─────► failed
        └────────────┴────────────┴─────► cancelled

The event id makes a create idempotent: the same id with the same content
returns the stored event; the same id with other content is a conflict.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from vpp.errors import Conflict, FieldError, InvalidInput
from vpp.model import (
    ID_PATTERN,
    BaselineMethod,
    Integer,
    integral,
    invalid_input,
    parse_json_data,
)

__all__ = [
    "INTERVAL_CHOICES",
    "MAX_INTERVALS",
    "MAX_LEAD",
    "MAX_TARGET_KW",
    "PER_INTERVAL_FIELDS",
    "TERMINAL_STATES",
    "TRACK_INTERVAL_FIELDS",
    "BaselineInfo",
    "EnterpriseTrack",
    "EventKind",
    "EventOverlap",
    "EventPatch",
    "EventRecord",
    "EventRequest",
    "EventState",
    "ExpectedDelivery",
    "IllegalTransition",
    "ReboundBaseline",
    "SeriesBaselines",
    "check_window",
    "first_overlap",
    "parse_event_patch",
    "parse_event_request",
]

#: Longest event accepted: one market day of 15-minute intervals.
MAX_INTERVALS = 96
#: Interval lengths an event may use: those that divide the hour, so intervals
#: line up with the market's quarter-hours and hours.
INTERVAL_CHOICES = tuple(m for m in range(1, 61) if 60 % m == 0)
#: Largest magnitude an event may ask for, kW (10 GW: above any award a park
#: could hold; it keeps energy and money sums finite).
MAX_TARGET_KW = 1e7
#: Largest compensation an event may state, CNY/kWh.
MAX_PRICE_PER_KWH = 1e4
#: How far ahead an event may start (an award is for the next days, not years;
#: it also keeps every interval's time representable).
MAX_LEAD = timedelta(days=366)


class EventKind(StrEnum):
    """What the grid operator asks for."""

    #: reduce the power drawn from the grid (demand response "down")
    PEAK_SHAVING = "peak_shaving"
    #: increase the power drawn from the grid (absorb surplus renewables)
    VALLEY_FILLING = "valley_filling"


class EventState(StrEnum):
    """Where an event is in its life."""

    #: accepted by the API, not yet checked against the portfolio
    RECEIVED = "received"
    #: checked and waiting for its start
    SCHEDULED = "scheduled"
    #: the control loop is delivering it
    ACTIVE = "active"
    #: ran to its end
    COMPLETED = "completed"
    #: withdrawn by the grid operator before its end
    CANCELLED = "cancelled"
    #: could not run (no controllable assets, control loop error)
    FAILED = "failed"


#: States an event never leaves.
TERMINAL_STATES = frozenset({EventState.COMPLETED, EventState.CANCELLED, EventState.FAILED})

_ALLOWED: dict[EventState, frozenset[EventState]] = {
    EventState.RECEIVED: frozenset(
        {EventState.SCHEDULED, EventState.ACTIVE, EventState.CANCELLED, EventState.FAILED}
    ),
    EventState.SCHEDULED: frozenset({EventState.ACTIVE, EventState.CANCELLED, EventState.FAILED}),
    EventState.ACTIVE: frozenset({EventState.COMPLETED, EventState.CANCELLED, EventState.FAILED}),
}


class IllegalTransition(Conflict):
    """An event was asked to do what its current state does not allow (HTTP 409).

    Attributes:
        field: what the request tried to change (``state``, ``targets_kw``).
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")

    @classmethod
    def single(cls, field: str, message: str) -> IllegalTransition:
        """Make the error for one field."""
        return cls(field, message)


class EventOverlap(IllegalTransition):
    """An event's window would overlap another open event of the park (HTTP 409).

    The control loop runs one event of a park at a time, so a create or an
    extension that runs into an event that is received, scheduled or active
    is refused at once.

    Attributes:
        other: the event it would overlap.
    """

    def __init__(self, field: str, other: EventRecord) -> None:
        self.other = other
        super().__init__(
            field,
            f"the window overlaps event {other.id}, which is {other.state.value} from "
            f"{other.start.isoformat()} to {other.end.isoformat()}",
        )


def first_overlap(
    event_id: str, start: datetime, end: datetime, others: Sequence[EventRecord]
) -> EventRecord | None:
    """The first open event of ``others`` whose window overlaps ``[start, end)``.

    Args:
        event_id: the event being placed (its own record is skipped).
        start: its window's start.
        end: its window's end.
        others: the park's events.

    Returns:
        An event other than ``event_id`` that is not over (received,
        scheduled or active) and shares some time with the window, or None.
    """
    for other in others:
        open_ = other.id != event_id and not other.terminal
        if open_ and other.start < end and start < other.end:
            return other
    return None


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def check_window(start: datetime, step: timedelta, intervals: int, now: datetime) -> None:
    """Refuse a window that has ended (its end <= ``now``) or starts over `MAX_LEAD` ahead.

    Args:
        start: start of the first interval (aware).
        step: interval length.
        intervals: how many intervals.
        now: the service clock.

    Raises:
        InvalidInput: naming ``start``.
    """
    if start - now > MAX_LEAD:
        message = f"starts more than {MAX_LEAD.days} days after now ({now.isoformat()})"
        raise InvalidInput([FieldError("start", message, "window_too_far")])
    end = start + step * intervals
    if end <= now:
        message = f"the window ended at {end.isoformat()}, not after now ({now.isoformat()})"
        raise InvalidInput([FieldError("start", message, "window_passed")])


def _event_request_schema(schema: dict[str, Any]) -> None:
    """State the cross-field rules of ``EventRequest._shape`` in its JSON Schema."""
    props = schema["properties"]
    props["interval_minutes"]["enum"] = list(INTERVAL_CHOICES)
    props["targets_kw"]["anyOf"][0]["items"].update(minimum=0, maximum=MAX_TARGET_KW)
    null = {"type": "null"}
    # Exactly one form: targets_kw, or target_kw with duration_minutes.
    forms = [
        {"required": ["targets_kw"], "properties": {
            "targets_kw": {"type": "array"}, "target_kw": null, "duration_minutes": null}},
        {"required": ["target_kw", "duration_minutes"], "properties": {
            "targets_kw": null, "target_kw": {"type": "number"},
            "duration_minutes": {"type": "integer"}}},
    ]  # fmt: skip
    # duration_minutes: whole intervals, at most MAX_INTERVALS of them.
    default = schema["properties"]["interval_minutes"]["default"]
    whole = [
        {"properties": {"interval_minutes": {"const": m},
                        "duration_minutes": {"anyOf": [null, {"multipleOf": m,
                                                               "maximum": m * MAX_INTERVALS}]}},
         **({} if m == default else {"required": ["interval_minutes"]})}
        for m in INTERVAL_CHOICES
    ]  # fmt: skip
    schema["allOf"] = [{"oneOf": forms}, {"anyOf": whole}]


class EventRequest(_Payload):
    """The body of ``POST /v1/parks/{park}/events``.

    Give either ``targets_kw`` (one magnitude per interval) or ``target_kw``
    with ``duration_minutes`` (a flat target). The window is checked against
    the service clock when the event is received (`check_window`): it must not
    have ended already and may start at most `MAX_LEAD` ahead.
    """

    model_config = ConfigDict(json_schema_extra=_event_request_schema)

    id: str = Field(
        pattern=ID_PATTERN, description="Event id, unique per park; makes the create idempotent."
    )
    kind: EventKind = Field(
        description="peak_shaving (reduce load) or valley_filling (raise load)."
    )
    start: datetime = Field(
        description="Start of the first interval, with a UTC offset. The window must not have "
        f"ended on the service clock and may start at most {MAX_LEAD.days} days ahead (422)."
    )
    interval_minutes: Integer = Field(
        default=15, ge=1, le=60, description="Length of each interval; divides 60."
    )
    targets_kw: list[float] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_INTERVALS,
        description=f"Requested deviation magnitude per interval, 0 ≤ kW ≤ {MAX_TARGET_KW:g}.",
    )
    target_kw: float | None = Field(
        default=None, ge=0, le=MAX_TARGET_KW, description="A flat magnitude, kW."
    )
    duration_minutes: Annotated[int, Field(gt=0), BeforeValidator(integral)] | None = Field(
        default=None,
        description=f"With target_kw: whole intervals, at most {MAX_INTERVALS} of them.",
    )
    price_per_kwh: float | None = Field(
        default=None, ge=0, le=MAX_PRICE_PER_KWH, description="Compensation, CNY/kWh."
    )
    bid_id: str | None = Field(default=None, pattern=ID_PATTERN, description="The awarded bid.")
    source: Literal["rest", "openadr"] = Field(default="rest", description="Who sent it.")
    baseline_method: BaselineMethod | None = Field(
        default=None, description="Overrides the park's baseline method for this event."
    )

    @model_validator(mode="after")
    def _shape(self) -> EventRequest:
        if self.start.tzinfo is None:
            raise ValueError("start: needs a UTC offset, e.g. 2026-07-01T14:00:00+08:00")
        if 60 % self.interval_minutes:
            raise ValueError("interval_minutes: must divide 60 (1, 5, 15, 30, 60, ...)")
        if self.targets_kw is not None:
            if self.target_kw is not None or self.duration_minutes is not None:
                raise ValueError("targets_kw: give targets_kw or target_kw, not both")
            bad = [i for i, v in enumerate(self.targets_kw) if v < 0]
            if bad:
                raise ValueError(f"targets_kw: must be >= 0 (index {bad[0]})")
            big = [i for i, v in enumerate(self.targets_kw) if v > MAX_TARGET_KW]
            if big:
                raise ValueError(f"targets_kw: must be <= {MAX_TARGET_KW:g} (index {big[0]})")
        elif self.target_kw is None or self.duration_minutes is None:
            raise ValueError("targets_kw: give targets_kw, or target_kw with duration_minutes")
        elif self.duration_minutes % self.interval_minutes:
            raise ValueError("duration_minutes: must be a multiple of interval_minutes")
        elif self.duration_minutes // self.interval_minutes > MAX_INTERVALS:
            raise ValueError(f"duration_minutes: at most {MAX_INTERVALS} intervals")
        return self

    def check_window(self, now: datetime) -> None:
        """Refuse a window that has already passed or starts too far ahead.

        "Passed" means its end is at or before ``now`` on the service clock; a
        window that started but has not ended is accepted and served from the
        current interval on.

        Raises:
            InvalidInput: naming ``start``.
        """
        step = timedelta(minutes=self.interval_minutes)
        check_window(self.start, step, len(self.magnitudes()), now)

    def magnitudes(self) -> list[float]:
        """Requested magnitude per interval, kW."""
        if self.targets_kw is not None:
            return list(self.targets_kw)
        assert self.target_kw is not None and self.duration_minutes is not None
        return [self.target_kw] * (self.duration_minutes // self.interval_minutes)

    def signed_targets(self) -> list[float]:
        """Target deviation per interval in the grid convention (negative = less load)."""
        sign = -1.0 if self.kind is EventKind.PEAK_SHAVING else 1.0
        return [sign * v if v else 0.0 for v in self.magnitudes()]

    def fingerprint(self) -> str:
        """A digest of the content that defines the event (for idempotent creates)."""
        body = {
            "kind": self.kind.value,
            "start": self.start.timestamp(),
            "interval_s": self.interval_minutes * 60,
            "targets": [round(v, 6) for v in self.signed_targets()],
            "price": self.price_per_kwh,
            "bid": self.bid_id,
        }
        if self.baseline_method is not None:  # absent: the fingerprints stored before it
            body["baseline_method"] = self.baseline_method
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class EventPatch(_Payload):
    """The body of ``PATCH /v1/parks/{park}/events/{event}``: new magnitudes.

    ``targets_kw`` lists every interval from the event's start, like the
    create body; its length is the event's new length, so a PATCH can extend
    or shorten the event (same start and interval length). Intervals already
    past keep their targets; the present and future intervals take the new
    ones. The current interval always runs to its end: a list too short to
    reach it ends the event after it, with its target unchanged (an interval
    is measured and settled whole; DELETE stops an event at once).
    """

    # The same bounds as the create's (`EventRequest`), stated per item in the schema.
    targets_kw: list[Annotated[float, Field(ge=0, le=MAX_TARGET_KW)]] = Field(
        min_length=1,
        max_length=MAX_INTERVALS,
        description=f"Requested deviation magnitude per interval from the event's start, "
        f"0 ≤ kW ≤ {MAX_TARGET_KW:g}.",
    )


def _parse(model: type[_Payload], data: Any) -> Any:
    try:
        return parse_json_data(model, data)
    except ValidationError as exc:
        raise invalid_input(exc) from exc


def parse_event_request(data: Any) -> EventRequest:
    """Validate a create body; raise `InvalidInput` naming every bad field."""
    result: EventRequest = _parse(EventRequest, data)
    return result


def parse_event_patch(data: Any) -> EventPatch:
    """Validate a modify body; raise `InvalidInput` naming every bad field."""
    result: EventPatch = _parse(EventPatch, data)
    return result


class ExpectedDelivery(BaseModel):
    """What the park expects to deliver against an event, estimated when it is received.

    An award stands whatever the park can do, so an event larger than the
    park is accepted; this says how much of it the park expects to deliver,
    from its live flexibility at receipt (`vpp.events.expected.expected_delivery`).
    """

    as_of: datetime = Field(description="When the estimate was made (service clock).")
    flat_kw: float = Field(
        ge=0, description="Largest constant deviation the park can hold over the window, kW."
    )
    expected_kw: list[float | None] = Field(
        description="Expected magnitude per interval, kW (null: over before the event arrived)."
    )
    requested_kwh: float = Field(ge=0, description="Energy asked for over the estimated intervals.")
    expected_kwh: float = Field(ge=0, description="Energy the park expects to deliver of it.")
    share: float | None = Field(
        ge=0, le=1, description="expected_kwh / requested_kwh (null when nothing is asked)."
    )
    assets_included: int = Field(ge=0, description="Assets flexible at receipt.")
    note: str = Field(description="The estimate in words.")


#: The per-interval lists of an event record.
PER_INTERVAL_FIELDS = ("baseline_kw", "measured_kw", "delivered_kw", "shortfall_kw")
#: The per-interval lists of an enterprise's track (`EnterpriseTrack`).
TRACK_INTERVAL_FIELDS = ("baseline_kw", "measured_kw", "telemetry_kw")


class BaselineInfo(BaseModel):
    """How an event's baseline was set, fixed when the event became active.

    Attributes:
        requested: the method the event (or else its park) asked for.
        method: the method used: ``requested``, or the park's ``fallback``
            when the history was too short for it (``fallback_reason`` says why).
        fallback_reason: why the requested method could not be used, or None.
        note: the method in words (days, X of Y, adjustment window and cap).
    """

    requested: BaselineMethod
    method: BaselineMethod
    fallback_reason: str | None = None
    note: str = ""


class ReboundBaseline(BaseModel):
    """The park's baseline past an event's end, fixed with the event's at activation.

    A load shift comes back after the event (a shed load rebounds, a battery
    recharges, a held-back EV catches up), so the event report counts the
    intervals after the end too (`vpp.events.rebound`). Their baseline is the
    event's own method carried on past the end (`vpp.control`): a live method's
    devices held as at activation (an EV on its charging forecast), a
    historical method's similar days over those hours, with the same
    same-day adjustment. It reaches as far past the end as the control loop
    plans (``[control] horizon_after_h``), in the event's interval length.

    Attributes:
        start: the start of its first interval (the event's end when it was
            written; the loop writes it again when the event is resized).
        baseline_kw: the park's baseline per interval (kW; null = not known,
            e.g. the history cannot serve the method past the end).
        load_rebound_minutes: the longest ``rebound_minutes`` of the park's
            flexible loads at activation (0 without any).
        note: why the baseline is not known, or empty.
    """

    start: datetime
    baseline_kw: list[float | None] = Field(default_factory=list)
    load_rebound_minutes: float = Field(default=0.0, ge=0)
    note: str = ""


class SeriesBaselines(BaseModel):
    """Each device's baseline over an event and past its end, fixed with the event's.

    Stored beside the record (`vpp.keys.Keys.event_rebound`), not in it: a
    park of a thousand devices would make the record, which the control loop
    rewrites every cycle, many times larger. The rebound window counts a
    device with no history in an interval at this baseline, as the control
    loop counts a silent device during the event (`vpp.events.rebound`).

    Attributes:
        start: the start of its first interval (the event's start).
        baseline_kw: device (asset id) -> its baseline per interval over the
            event and the `ReboundBaseline`'s intervals (kW; null = not
            known). The devices of an enterprise measured by its revenue
            meter are not here: the meter measures them.
    """

    start: datetime
    baseline_kw: dict[str, list[float | None]] = Field(default_factory=dict)


class EnterpriseTrack(BaseModel):
    """One enterprise's part of an event, interval by interval (kW; null = not known).

    The park's ``baseline_kw`` and ``measured_kw`` are the sums of its
    enterprises'. Where the enterprise has a revenue meter, its baseline and
    measured power are the meter's (its whole load), and ``telemetry_kw`` is
    the sum of its assets' telemetry, for reconciliation; elsewhere the
    enterprise is the sum of its assets and ``telemetry_kw`` equals ``measured_kw``.

    Attributes:
        meter: the revenue meter its measured power comes from, or None.
        baseline_source: ``meter:<id>``, ``assets`` (their interval history)
            or ``live`` (the live state at activation: model / pre_event).
        days: the history days the baseline was taken from (historical methods).
        adjustment: the same-day adjustment ratio applied (1.0 = none), or None.
        series: the history series (asset or meter ids) that measure it, so
            its power after the event can be read from the interval history.
        rebound_baseline_kw: its part of the park's `ReboundBaseline`, one
            value per interval after the event's end (kW; null = not known).
    """

    meter: str | None = None
    baseline_source: str = "live"
    days: list[date] = Field(default_factory=list)
    adjustment: float | None = None
    baseline_kw: list[float | None] = Field(default_factory=list)
    measured_kw: list[float | None] = Field(default_factory=list)
    telemetry_kw: list[float | None] = Field(default_factory=list)
    series: list[str] = Field(
        default_factory=list,
        description="The interval-history series its measured power is the sum of: its revenue "
        "meter, or its devices (set at activation; empty for an event recorded before).",
    )
    rebound_baseline_kw: list[float | None] = Field(
        default_factory=list,
        description="Its baseline per interval after the event's end (`ReboundBaseline`).",
    )

    def fit(self, n: int) -> None:
        """Give each per-interval list ``n`` values: cut, or padded with unknowns."""
        for name in TRACK_INTERVAL_FIELDS:
            values: list[float | None] = getattr(self, name)
            setattr(self, name, (values + [None] * n)[:n])


class EventRecord(BaseModel):
    """An event as stored and returned by ``GET …/events/{event}``.

    ``baseline_kw``, ``measured_kw`` and ``delivered_kw`` are filled by the
    control loop interval by interval (NaN until measured, null in JSON).
    """

    model_config = ConfigDict(extra="ignore")

    park: str
    id: str
    kind: EventKind
    state: EventState
    source: str
    start: datetime
    interval_s: int
    target_kw: list[float]
    baseline_kw: list[float | None]
    measured_kw: list[float | None]
    delivered_kw: list[float | None]
    shortfall_kw: list[float | None]
    price_per_kwh: float | None
    bid_id: str | None
    fingerprint: str
    created: datetime
    updated: datetime
    reason: str | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    expected: ExpectedDelivery | None = Field(
        default=None, description="What the park expects to deliver (estimated at receipt)."
    )
    baseline_method: BaselineMethod | None = Field(
        default=None, description="The event's own baseline method (None: the park's)."
    )
    baseline: BaselineInfo | None = Field(
        default=None, description="How the baseline was set (at activation)."
    )
    enterprises: dict[str, EnterpriseTrack] = Field(
        default_factory=dict, description="Each enterprise's part (owner -> track)."
    )
    rebound: ReboundBaseline | None = Field(
        default=None,
        description="The baseline past the event's end (at activation; null for an event "
        "recorded before it was kept, or not active yet).",
    )

    @classmethod
    def new(cls, park: str, request: EventRequest, now: datetime) -> EventRecord:
        """Make the record of a freshly received event."""
        targets = request.signed_targets()
        empty: list[float | None] = [None] * len(targets)
        return cls(
            park=park,
            id=request.id,
            kind=request.kind,
            state=EventState.RECEIVED,
            source=request.source,
            start=request.start,
            interval_s=request.interval_minutes * 60,
            target_kw=targets,
            baseline_kw=list(empty),
            measured_kw=list(empty),
            delivered_kw=list(empty),
            shortfall_kw=list(empty),
            price_per_kwh=request.price_per_kwh,
            bid_id=request.bid_id,
            baseline_method=request.baseline_method,
            fingerprint=request.fingerprint(),
            created=now,
            updated=now,
            history=[{"state": EventState.RECEIVED.value, "at": now.isoformat()}],
        )

    def as_request(self) -> EventRequest:
        """The create body of the event as it stands now (its current targets as magnitudes).

        Used to estimate delivery (`vpp.events.expected.expected_delivery`) again after a change.
        """
        return EventRequest(
            id=self.id,
            kind=self.kind,
            start=self.start,
            interval_minutes=self.interval_s // 60,
            targets_kw=[abs(v) for v in self.target_kw],
            price_per_kwh=self.price_per_kwh,
            bid_id=self.bid_id,
            source="openadr" if self.source == "openadr" else "rest",
            baseline_method=self.baseline_method,
        )

    @property
    def end(self) -> datetime:
        """End of the last interval."""
        return self.start + timedelta(seconds=self.interval_s * len(self.target_kw))

    @property
    def terminal(self) -> bool:
        """Whether the event is over."""
        return self.state in TERMINAL_STATES

    @property
    def ran(self) -> bool:
        """Whether the event was delivered at all: it is, or once was, active."""
        if self.state in (EventState.ACTIVE, EventState.COMPLETED):
            return True
        return any(entry.get("state") == EventState.ACTIVE.value for entry in self.history)

    def interval_at(self, when: datetime) -> int | None:
        """Index of the interval containing ``when``, or None outside the window."""
        offset = (when - self.start).total_seconds()
        if offset < 0 or when >= self.end:
            return None
        return int(offset // self.interval_s)

    def interval_starts(self) -> list[datetime]:
        """Start time of each interval."""
        step = timedelta(seconds=self.interval_s)
        return [self.start + i * step for i in range(len(self.target_kw))]

    def transition(self, to: EventState, now: datetime, reason: str | None = None) -> None:
        """Move to state ``to``; raise `IllegalTransition` when the life cycle forbids it."""
        if to == self.state:
            return
        if to not in _ALLOWED.get(self.state, frozenset()):
            raise IllegalTransition.single(
                "state", f"an event that is {self.state.value} cannot become {to.value}"
            )
        self.state = to
        self.updated = now
        if reason:
            self.reason = reason
        entry: dict[str, Any] = {"state": to.value, "at": now.isoformat()}
        if reason:
            entry["reason"] = reason
        self.history.append(entry)

    def modify(self, patch: EventPatch, now: datetime) -> None:
        """Apply a PATCH: new targets and length (see `EventPatch` and `resize`)."""
        self.resize(patch.targets_kw, now)

    def started(self, now: datetime) -> int:
        """How many intervals have started by ``now`` (past ones and the current one)."""
        if now < self.start:
            return 0
        current = self.interval_at(now)
        return len(self.target_kw) if current is None else current + 1

    def resize(self, magnitudes: Sequence[float], now: datetime) -> None:
        """Give the event ``len(magnitudes)`` intervals and these magnitudes (kW ≥ 0).

        The event is extended or shortened in place: start, interval length,
        id and everything measured so far are kept, so the control loop goes
        on delivering it without releasing a device. Intervals that ended keep
        their targets. The current interval takes its new magnitude if the
        list reaches it, else it keeps its target and the event ends with it:
        an interval is never cut short. New intervals start unmeasured.

        Raises:
            IllegalTransition: The event is over (completed, cancelled, failed).
            InvalidInput: naming ``targets_kw``: no magnitudes, or one outside
                0 ≤ kW ≤ `MAX_TARGET_KW` (the create's bounds, for callers that do
                not go through `EventPatch`). The length is not capped here: the
                OpenADR bridge rolls an open-ended event forward past `MAX_INTERVALS`.
        """
        if self.terminal:
            raise IllegalTransition.single("state", f"a {self.state.value} event cannot change")
        bad = [i for i, v in enumerate(magnitudes) if not 0 <= v <= MAX_TARGET_KW]
        if bad or not magnitudes:
            where = f"index {bad[0]} is {magnitudes[bad[0]]!r}" if bad else "none given"
            message = f"at least one magnitude, each 0 ≤ kW ≤ {MAX_TARGET_KW:g} ({where})"
            raise InvalidInput([FieldError("targets_kw", message)])
        sign = -1.0 if self.kind is EventKind.PEAK_SHAVING else 1.0
        new = [sign * v if v else 0.0 for v in magnitudes]
        started = self.started(now)
        current = self.interval_at(now)
        past = started - 1 if current is not None else started  # intervals that ended
        kept = self.target_kw[:past]
        if current is not None and len(new) <= current:
            targets = [*kept, self.target_kw[current]]  # the current interval runs to its end
        else:
            targets = kept + new[past:]
        before = len(self.target_kw)
        n = len(targets)
        for name in PER_INTERVAL_FIELDS:
            values: list[float | None] = getattr(self, name)
            setattr(self, name, (values + [None] * n)[:n])
        for track in self.enterprises.values():
            track.fit(n)
        self.target_kw = targets
        self.updated = now
        entry: dict[str, Any] = {"state": self.state.value, "at": now.isoformat(), "modified": True}
        if n != before:
            entry["intervals"] = n
        self.history.append(entry)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (NaN never appears: unmeasured values are null)."""
        data = self.model_dump(mode="json")
        for name in PER_INTERVAL_FIELDS:
            data[name] = _nulls(data[name])
        for track in data["enterprises"].values():
            for name in (*TRACK_INTERVAL_FIELDS, "rebound_baseline_kw"):
                track[name] = _nulls(track[name])
        if data["rebound"] is not None:
            data["rebound"]["baseline_kw"] = _nulls(data["rebound"]["baseline_kw"])
        return data


def _nulls(values: list[float | None]) -> list[float | None]:
    """``values`` with NaN as None (JSON has no NaN)."""
    return [None if v is None or math.isnan(v) else v for v in values]
