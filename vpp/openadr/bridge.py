"""The OpenADR VEN wired into the service: dispatches become events, events become reports.

`OpenAdrBridge` is the `vpp.openadr.DispatchSink` and `vpp.openadr.ReportSource`
of one park. Each OpenADR event becomes one service event (id
``oadr-<event id>``) that the park's control loop delivers like any other.

OpenADR instructions are absolute or relative; service events are deviations
from the park's baseline. The baseline used for the conversion is the park's
power when the event is first seen (the "load just before the event" method
for real-time response): the sum of the live power of every device, with
silent devices at their nominal draw (meters left out: they measure those
devices, and counting both would count the devices twice). It is kept for every later version, so
a modification never re-reads a park that is already being controlled.

=============================  =============================================
OpenADR payload                deviation of the service event (kW)
=============================  =============================================
DISPATCH_SETPOINT v            v − baseline
DISPATCH_SETPOINT_RELATIVE d   d (the VEN already applied the program's sign)
IMPORT_CAPACITY_LIMIT c        min(0, c − baseline)
SIMPLE level                   −shed_kw of the level
=============================  =============================================

Timing: every interval is placed at its own start (gaps, overlaps and any
order are kept; slots no interval covers get a zero target; where intervals
overlap the strictest instruction wins) on a grid of equal slots, the longest
length dividing 60 minutes that tiles every interval's start and duration.
Slots that already ended when the event is first seen are dropped.

Horizon: a service event covers at most :data:`HORIZON` ahead (and at most
`vpp.events.MAX_INTERVALS` slots when it is made). An open-ended (``P9999Y``)
or longer event becomes a service event over the horizon, rolled forward in
place as time passes (`on_renew`, at every VEN poll) until the VTN modifies
or deletes it.

A service event has one direction. When an OpenADR event asks for both (some
intervals up, some down), the direction of the larger energy wins and the
other slots get a zero target; the log says so.

A new version of an OpenADR event changes the same service event in place
(`vpp.events.EventStore.resize`: targets from the current slot on, more
or fewer slots; nothing measured is lost and no device is released) when
its slot grid and direction are unchanged and, if it has not started yet,
its start too; otherwise the old service event is cancelled and a new one
(``oadr-<id>-r<n>``) is made. A version the
service cannot take (it would overlap another event, or fails validation) is
refused with `vpp.openadr.DispatchRejected`, so the VEN rejects it alone.

The tracking state (OpenADR event id → service event id, version, slot grid,
baseline, window end) is a Redis hash under the park's hash tag
(`vpp.keys.Keys.openadr_events`), so after a restart the VEN recognises the
events it already mapped instead of making them again.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from vpp.clock import Clock
from vpp.errors import Conflict, InvalidInput, NotFound
from vpp.events import (
    MAX_INTERVALS,
    EventOverlap,
    EventRecord,
    EventState,
    EventStore,
    IllegalTransition,
    parse_event_request,
)
from vpp.flex import nominal_kw
from vpp.model import Battery, LiveState, Meter
from vpp.openadr.errors import DispatchRejected
from vpp.openadr.model import (
    DispatchInterval,
    GridDispatch,
    ImportLimitKw,
    Instruction,
    IntervalReading,
    RelativeKw,
    SetpointKw,
    SimpleLevel,
)
from vpp.state import State, pack, unpack

__all__ = ["HORIZON", "OpenAdrBridge", "deviation_of", "service_event_id"]

log = logging.getLogger("vpp.openadr.bridge")

#: How far ahead a service event of a long or open-ended OpenADR event reaches:
#: one market day, the longest window the service plans (96 slots of 15 min).
HORIZON = timedelta(hours=24)
_ZERO = timedelta(0)

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


def _step_minutes(intervals: Sequence[DispatchInterval], origin: datetime) -> int:
    """The longest slot (minutes, dividing 60) that tiles every interval's start and length."""
    g = 0
    for i in intervals:
        g = math.gcd(g, round((i.start - origin).total_seconds() / 60))
        if i.duration is not None:
            g = math.gcd(g, max(1, round(i.duration.total_seconds() / 60)))
    if g == 0:
        return 60  # one open-ended interval: hourly slots
    for step in (60, 30, 20, 15, 12, 10, 6, 5, 4, 3, 2, 1):
        if g % step == 0:
            return step
    return 1


def _targets(
    intervals: Sequence[DispatchInterval],
    start: datetime,
    end: datetime,
    width: timedelta,
    baseline_kw: float,
) -> list[float]:
    """Signed deviation per slot from ``start`` to ``end``, each interval at its own time.

    A slot takes the instructions of every interval under way at its start
    (the strictest wins, see `deviation_of`); a slot in a gap gets 0.
    """
    out: list[float] = []
    slot = start
    while slot < end:
        found = [
            ins
            for i in intervals
            if i.start <= slot and ((e := i.end) is None or slot < e)
            for ins in i.instructions
        ]
        out.append(round(deviation_of(found, baseline_kw), 3))
        slot += width
    return out


def _kind(targets: Sequence[float]) -> str:
    down = -sum(t for t in targets if t < 0)
    up = sum(t for t in targets if t > 0)
    return "peak_shaving" if down >= up else "valley_filling"


def _magnitudes(targets: Sequence[float], kind: str) -> list[float]:
    if kind == "peak_shaving":
        return [round(max(0.0, -t), 3) for t in targets]
    return [round(max(0.0, t), 3) for t in targets]


@dataclass(slots=True)
class _Tracking:
    """What the bridge remembers of one OpenADR event (stored in Redis)."""

    service_id: str
    generation: int
    modification: str
    origin: datetime
    step_min: int
    baseline_kw: float
    end: datetime  #: end of the service event's window as last written

    def to_json(self) -> dict[str, object]:
        return {
            "service_id": self.service_id,
            "generation": self.generation,
            "modification": self.modification,
            "origin": self.origin.isoformat(),
            "step_min": self.step_min,
            "baseline_kw": self.baseline_kw,
            "end": self.end.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> _Tracking:
        return cls(
            service_id=str(data["service_id"]),
            generation=int(str(data["generation"])),
            modification=str(data["modification"]),
            origin=datetime.fromisoformat(str(data["origin"])),
            step_min=int(str(data["step_min"])),
            baseline_kw=float(str(data["baseline_kw"])),
            end=datetime.fromisoformat(str(data["end"])),
        )


class OpenAdrBridge:
    """Dispatch sink and report source of one park.

    Args:
        park: the park the VEN speaks for.
        state: the Redis state (assets, live telemetry, the VEN's tracking hash).
        events: the event store.
        clock: the service clock.
        horizon: how far ahead a service event reaches (default :data:`HORIZON`).
    """

    def __init__(
        self,
        *,
        park: str,
        state: State,
        events: EventStore,
        clock: Clock,
        horizon: timedelta = HORIZON,
    ) -> None:
        self.park = park
        self.state = state
        self.events = events
        self.clock = clock
        self.horizon = horizon

    async def park_power_kw(self) -> float:
        """The park's present power (kW): its devices' live power, silent ones at nominal.

        Meters are left out (see the module docstring).
        """
        assets = [a for a in await self.state.list_assets(self.park) if not isinstance(a, Meter)]
        live = await self.state.read_live_many(self.park, [a.id for a in assets])
        total = 0.0
        for asset in assets:
            reading = live.get(asset.id)
            total += reading.power_kw if reading is not None else nominal_kw(asset)
        return total

    # -- tracking state in Redis ------------------------------------------------

    async def tracking(self, event_id: str) -> _Tracking | None:
        """The stored tracking state of an OpenADR event, if any."""
        key = self.state.park(self.park).openadr_events
        async with self.state.guard("openadr_tracking"):
            raw = await self.state.redis.hget(key, event_id)
        return None if raw is None else _Tracking.from_json(unpack(raw))

    async def _save(self, event_id: str, tracking: _Tracking) -> None:
        key = self.state.park(self.park).openadr_events
        async with self.state.guard("openadr_tracking"):
            await self.state.redis.hset(key, event_id, pack(tracking.to_json()))

    async def _forget(self, event_id: str) -> None:
        key = self.state.park(self.park).openadr_events
        async with self.state.guard("openadr_tracking"):
            await self.state.redis.hdel(key, event_id)

    # -- DispatchSink --------------------------------------------------------

    async def on_dispatch(self, dispatch: GridDispatch) -> None:
        """Create, or change in place, the service event of an OpenADR event.

        Raises:
            DispatchRejected: the service cannot take this version (it overlaps
                another event, or fails the event rules); the VEN rejects it alone.
        """
        await self._sync(dispatch, renew=False)

    async def on_renew(self, dispatch: GridDispatch) -> None:
        """Roll the service event of a long or open-ended event forward over the horizon."""
        await self._sync(dispatch, renew=True)

    async def _sync(self, dispatch: GridDispatch, *, renew: bool) -> None:
        now = self.clock.now()
        intervals = [i for i in dispatch.intervals if i.duration is None or i.duration > _ZERO]
        tracking = await self.tracking(dispatch.event_id)
        if renew and (tracking is None or tracking.modification != dispatch.modification):
            return  # nothing of ours to roll forward (a new version comes by on_dispatch)
        if not intervals:
            await self.on_cancel(dispatch.event_id)
            return
        origin = min(i.start for i in intervals)
        if tracking is not None and tracking.modification == dispatch.modification:
            # The same version mapped again (after a restart): a "now" start
            # (0001-01-01) meant the time of the first mapping, not this one.
            shift = tracking.origin - origin
            intervals = [replace(i, start=i.start + shift) for i in intervals]
            origin = tracking.origin
        step = _step_minutes(intervals, origin)
        width = timedelta(minutes=step)
        first = origin + max(0, (now - origin) // width) * width  # the slot under way, or origin
        horizon = width * min(MAX_INTERVALS, max(1, round(self.horizon / width)))
        end = first + horizon
        ends = [i.end for i in intervals]
        if all(e is not None for e in ends):
            # whole slots: an event ending mid-slot keeps the slot it ends in
            last = max(e for e in ends if e is not None)
            end = min(end, origin + max(1, math.ceil((last - origin) / width)) * width)
        if renew and tracking is not None and end <= tracking.end:
            return
        baseline = tracking.baseline_kw if tracking is not None else await self.park_power_kw()
        record: EventRecord | None = None
        if tracking is not None:
            with contextlib.suppress(NotFound):
                record = await self.events.get(self.park, tracking.service_id)
        if renew and (record is None or record.terminal):
            return  # over (completed, failed, cancelled): only a new version makes a new one
        if record is not None and not record.terminal:
            aligned = (record.start - origin) % width == _ZERO and record.interval_s == step * 60
            # before it starts, a service event follows a moved start by being made anew
            moved = record.start > now and record.start != first
            if aligned and not moved:
                targets = _targets(intervals, record.start, end, width, baseline)
                if _kind(targets[record.started(now) :] or targets) == record.kind.value:
                    await self._resize(record, targets, now)
                    assert tracking is not None
                    tracking.modification, tracking.origin, tracking.end = (
                        dispatch.modification, origin, end
                    )  # fmt: skip
                    await self._save(dispatch.event_id, tracking)
                    return
            await self._cancel_service_event(record.id, "replaced by a new OpenADR version")
        if end <= max(now, first):
            log.info("OpenADR event %s is over; no service event", dispatch.event_id)
            return
        targets = _targets(intervals, first, end, width, baseline)
        generation = tracking.generation + 1 if tracking is not None else 1
        service_id, generation = await self._create(dispatch, first, step, targets, generation)
        tracking = _Tracking(
            service_id, generation, dispatch.modification, origin, step, baseline, end
        )
        await self._save(dispatch.event_id, tracking)

    async def _resize(self, record: EventRecord, targets: list[float], now: datetime) -> None:
        magnitudes = _magnitudes(targets, record.kind.value)
        signed = [(-m if record.kind.value == "peak_shaving" else m) for m in magnitudes]
        if len(signed) == len(record.target_kw) and all(
            abs(a - b) < 1e-6 for a, b in zip(signed, record.target_kw, strict=True)
        ):
            return  # the same version again (a restart, or a renewal with nothing new)
        try:
            updated = await self.events.resize(self.park, record.id, magnitudes, now)
        except (IllegalTransition, InvalidInput) as exc:
            raise DispatchRejected(f"service event {record.id}: {exc}") from exc
        log.info(
            "OpenADR event of %s: service event %s now %d slots of %d min",
            self.park, record.id, len(updated.target_kw), record.interval_s // 60,
        )  # fmt: skip

    async def _create(
        self, dispatch: GridDispatch, start: datetime, step: int, targets: list[float], gen: int
    ) -> tuple[str, int]:
        kind = _kind(targets)
        down = -sum(t for t in targets if t < 0)
        up = sum(t for t in targets if t > 0)
        if down > 0 and up > 0:
            log.warning(
                "OpenADR event %s asks for both directions; keeping %s only",
                dispatch.event_id, kind,
            )  # fmt: skip
        magnitudes = _magnitudes(targets, kind)
        for generation in range(gen, gen + 5):
            event_id = service_event_id(dispatch.event_id, generation)
            try:
                request = parse_event_request(
                    {
                        "id": event_id,
                        "kind": kind,
                        "start": start.isoformat(),
                        "interval_minutes": step,
                        "targets_kw": magnitudes,
                        "source": "openadr",
                    }
                )
                record, created = await self.events.create(self.park, request, self.clock.now())
            except InvalidInput as exc:
                raise DispatchRejected(f"not a valid service event: {exc}") from exc
            except EventOverlap as exc:
                raise DispatchRejected(f"service event {event_id}: {exc}") from exc
            except Conflict:
                continue  # the id is taken (an earlier life of this event): next generation
            if created or not record.terminal:
                log.info(
                    "OpenADR event %s -> service event %s (%s, %d slots of %d min from %s)",
                    dispatch.event_id, event_id, kind, len(magnitudes), step, start.isoformat(),
                )  # fmt: skip
                return event_id, generation
        raise DispatchRejected(f"no free service event id for {dispatch.event_id}")

    async def on_cancel(self, event_id: str) -> None:
        """Cancel the service event of an OpenADR event and forget its tracking state."""
        tracking = await self.tracking(event_id)
        known = tracking.service_id if tracking is not None else service_event_id(event_id)
        await self._cancel_service_event(known, "cancelled on the VTN")
        await self._forget(event_id)

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
        tracking = await self.tracking(dispatch.event_id)
        event_id = (
            tracking.service_id if tracking is not None else service_event_id(dispatch.event_id)
        )
        try:
            record = await self.events.get(self.park, event_id)
        except NotFound:
            return []
        soc = await self._storage_level()
        out: list[IntervalReading] = []
        for interval in intervals:
            if interval.end is None:
                continue  # an interval with no end never ends: nothing to report yet
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
