"""The OpenADR VEN wired into the service: dispatches become events, events become reports.

`OpenAdrBridge` is the `vpp.openadr.DispatchSink` and `vpp.openadr.ReportSource`
of one park. Each OpenADR event becomes one service event (id
``oadr-<event id>``) that the park's control loop delivers like any other.

OpenADR instructions are absolute or relative; service events are deviations
from the park's baseline. The baseline used for the conversion is the park's
power just before the event (the "load just before the event" method for
real-time response): the sum of the live power of every asset, with silent
assets at their nominal draw.

=============================  =============================================
OpenADR payload                deviation of the service event (kW)
=============================  =============================================
DISPATCH_SETPOINT v            v − baseline
DISPATCH_SETPOINT_RELATIVE d   d (the VEN already applied the program's sign)
IMPORT_CAPACITY_LIMIT c        min(0, c − baseline)
SIMPLE level                   −shed_kw of the level
=============================  =============================================

A service event has one direction. When an OpenADR event asks for both (some
intervals up, some down), the direction of the larger energy wins and the
other intervals get a zero target; the log says so.

A modified OpenADR event (a new revision) modifies the service event's
targets when its window is unchanged; otherwise the old event is cancelled and
a new one (``oadr-<id>-r<revision>``) is created.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from vpp.clock import Clock
from vpp.errors import Conflict, NotFound
from vpp.event_store import EventStore
from vpp.events import EventPatch, EventRecord, EventState, parse_event_request
from vpp.flex import nominal_kw
from vpp.model import Battery, LiveState
from vpp.openadr import (
    DispatchInterval,
    GridDispatch,
    ImportLimitKw,
    Instruction,
    IntervalReading,
    RelativeKw,
    SetpointKw,
    SimpleLevel,
)
from vpp.state import State

__all__ = ["OpenAdrBridge", "deviation_of", "service_event_id"]

log = logging.getLogger("vpp.openadr_bridge")

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def service_event_id(event_id: str, revision: int = 1) -> str:
    """The service event id of an OpenADR event (and of a re-created revision)."""
    base = "oadr-" + _UNSAFE.sub("-", event_id)[:50]
    return base if revision <= 1 else f"{base}-r{revision}"


def deviation_of(instructions: Sequence[Instruction], baseline_kw: float) -> float:
    """The deviation (kW, negative = less load) that an interval's instructions ask for.

    Several instructions in one interval combine to the strictest: the lowest
    of the reductions asked for, or the highest of the increases.
    """
    asks: list[float] = []
    for ins in instructions:
        if isinstance(ins, SetpointKw):
            asks.append(ins.target_kw - baseline_kw)
        elif isinstance(ins, RelativeKw):
            asks.append(ins.delta_kw)
        elif isinstance(ins, ImportLimitKw):
            asks.append(min(0.0, ins.max_import_kw - baseline_kw))
        elif isinstance(ins, SimpleLevel):
            asks.append(-ins.shed_kw)
    if not asks:
        return 0.0
    downs = [a for a in asks if a < 0]
    return min(downs) if downs else max(asks)


def _step_minutes(intervals: Sequence[DispatchInterval]) -> int:
    """The longest interval length (minutes, dividing 60) that tiles every interval."""
    minutes = [max(1, round(i.duration.total_seconds() / 60)) for i in intervals]
    g = 0
    for m in minutes:
        g = math.gcd(g, m)
    for step in (60, 30, 20, 15, 12, 10, 6, 5, 4, 3, 2, 1):
        if g % step == 0:
            return step
    return 1


class OpenAdrBridge:
    """Dispatch sink and report source of one park.

    Args:
        park: the park the VEN speaks for.
        state: the Redis state (assets and live telemetry).
        events: the event store.
        clock: the service clock.
    """

    def __init__(self, *, park: str, state: State, events: EventStore, clock: Clock) -> None:
        self.park = park
        self.state = state
        self.events = events
        self.clock = clock
        self._ids: dict[str, str] = {}  # OpenADR event id -> service event id
        self._windows: dict[str, tuple[datetime, int, int]] = {}

    async def park_power_kw(self) -> float:
        """The park's present power: live readings, silent assets at their nominal draw."""
        assets = await self.state.list_assets(self.park)
        live = await self.state.read_live_many(self.park, [a.id for a in assets])
        total = 0.0
        for asset in assets:
            reading = live.get(asset.id)
            total += reading.power_kw if reading is not None else nominal_kw(asset)
        return total

    # -- DispatchSink --------------------------------------------------------

    async def on_dispatch(self, dispatch: GridDispatch) -> None:
        """Create (or modify) the service event of an OpenADR event."""
        intervals = [i for i in dispatch.intervals if i.duration > timedelta(0)]
        if not intervals:
            await self.on_cancel(dispatch.event_id)
            return
        baseline = await self.park_power_kw()
        step = _step_minutes(intervals)
        targets: list[float] = []
        for interval in intervals:
            pieces = max(1, round(interval.duration.total_seconds() / 60 / step))
            targets.extend([deviation_of(interval.instructions, baseline)] * pieces)
        down = -sum(t for t in targets if t < 0)
        up = sum(t for t in targets if t > 0)
        kind = "peak_shaving" if down >= up else "valley_filling"
        if down > 0 and up > 0:
            log.warning(
                "OpenADR event %s asks for both directions; keeping %s only",
                dispatch.event_id, kind,
            )  # fmt: skip
        magnitudes = [max(0.0, -t) if kind == "peak_shaving" else max(0.0, t) for t in targets]
        start = intervals[0].start
        window = (start, step, len(magnitudes))
        known = self._ids.get(dispatch.event_id)
        if known is not None and self._windows.get(dispatch.event_id) == window:
            now = self.clock.now()
            patch = EventPatch(targets_kw=[round(m, 3) for m in magnitudes])
            try:
                await self.events.update(self.park, known, lambda r: r.modify(patch, now))
                log.info("OpenADR event %s r%d modified %s", dispatch.event_id,
                         dispatch.revision, known)  # fmt: skip
                return
            except Conflict:
                pass  # it is over; create a new one below
        if known is not None:
            await self._cancel_service_event(known, "replaced by a new OpenADR revision")
        event_id = service_event_id(dispatch.event_id, dispatch.revision if known else 1)
        request = parse_event_request(
            {
                "id": event_id,
                "kind": kind,
                "start": start.isoformat(),
                "interval_minutes": step,
                "targets_kw": [round(m, 3) for m in magnitudes],
                "source": "openadr",
            }
        )
        await self.events.create(self.park, request, self.clock.now())
        self._ids[dispatch.event_id] = event_id
        self._windows[dispatch.event_id] = window
        log.info("OpenADR event %s -> service event %s (%s, %d intervals of %d min)",
                 dispatch.event_id, event_id, kind, len(magnitudes), step)  # fmt: skip

    async def on_cancel(self, event_id: str) -> None:
        """Cancel the service event of an OpenADR event."""
        known = self._ids.get(event_id, service_event_id(event_id))
        await self._cancel_service_event(known, "cancelled on the VTN")

    async def _cancel_service_event(self, event_id: str, reason: str) -> None:
        try:
            await self.events.transition(
                self.park, event_id, EventState.CANCELLED, self.clock.now(), reason
            )
        except (NotFound, Conflict) as exc:
            log.info("nothing to cancel for %s: %s", event_id, exc)

    # -- ReportSource --------------------------------------------------------

    async def readings(
        self, dispatch: GridDispatch, intervals: Sequence[DispatchInterval]
    ) -> Sequence[IntervalReading]:
        """USAGE, BASELINE and STORAGE_CHARGE_LEVEL of the ended intervals asked for."""
        event_id = self._ids.get(dispatch.event_id, service_event_id(dispatch.event_id))
        try:
            record = await self.events.get(self.park, event_id)
        except NotFound:
            return []
        soc = await self._storage_level()
        out: list[IntervalReading] = []
        for interval in intervals:
            usage, base = _energy(record, interval.start, interval.end)
            if usage is None or base is None:
                continue
            out.append(
                IntervalReading(
                    interval_id=interval.interval_id,
                    usage_kwh=round(max(usage, 0.0), 3),
                    baseline_kwh=round(max(base, 0.0), 3),
                    delta_usage_kwh=round(usage - base, 3),
                    storage_charge_level=soc,
                )
            )
        return out

    async def _storage_level(self) -> float | None:
        """Capacity-weighted state of charge of the park's batteries, 0..1."""
        assets = [a for a in await self.state.list_assets(self.park) if isinstance(a, Battery)]
        if not assets:
            return None
        live = await self.state.read_live_many(self.park, [a.id for a in assets])
        stored = capacity = 0.0
        for asset in assets:
            reading: LiveState | None = live.get(asset.id)
            if reading is not None and reading.soc is not None:
                stored += reading.soc * asset.capacity_kwh
                capacity += asset.capacity_kwh
        return round(stored / capacity, 4) if capacity else None


def _energy(
    record: EventRecord, start: datetime, end: datetime
) -> tuple[float | None, float | None]:
    """Measured and baseline energy (kWh) of the record's intervals inside [start, end)."""
    usage = base = 0.0
    found = False
    hours = record.interval_s / 3600.0
    for t, s in enumerate(record.interval_starts()):
        if s < start or s >= end:
            continue
        m, b = record.measured_kw[t], record.baseline_kw[t]
        if m is None or b is None:
            return None, None
        usage += m * hours
        base += b * hours
        found = True
    return (usage, base) if found else (None, None)
