"""The rebound window of an event: the intervals after it that its avoided CO2 counts.

A peak-shaving event mostly moves energy rather than saving it: a shed load
draws part of it back afterwards (its ``rebound_fraction`` within its
``rebound_minutes``), a battery that discharged recharges, a held-back EV
catches up. Counting only the event's intervals credits all of that as
avoided CO2, so an event's report counts its net reduction over the event
*and* over the window after it, and shows the rebound apart
(`vpp.events.carbon`).

**The window** runs from where the control loop stopped measuring the event
(its end; for an event cancelled or failed midway, the end of its last
measured interval, so that a rebound in the intervals it did not run counts
too) to ``length`` past the event's end, in the event's intervals. The
length is the longest of

* ``[reports] rebound_window_h`` (1 h by default), so that a short event
  still sees its immediate rebound;
* the longest ``rebound_minutes`` of the park's flexible loads at the
  event's activation: the time a load takes, by its enrolled model, to draw
  its shed energy back (the model the control loop plans with, `vpp.flex`);
* the event's own length: a battery or an EV makes up the energy it shifted
  within about as long again when it does so at the rate it shifted it (a
  battery recharging at the power it discharged, an EV catching up at the
  rate it was held back);

rounded up to whole intervals, and no longer than the baseline the control
loop fixed past the end (``[control] horizon_after_h``, 4 h by default: the
loop plans no further). It ends early where another event of the park that
ran starts: from there on the park's power is that event's delivery, and a
rebound left in it lowers that event's figures. A device that makes its
energy up more slowly, or later by its own schedule (a battery charging in
the night valley), falls outside any fixed window; the report cannot count it.

**Baselines** are the event's own: in the event's intervals it did not run
the event's baseline, after its end the `vpp.events.model.ReboundBaseline`
the control loop fixed at activation with the event's method.

**Measured power** comes from the interval history
(`vpp.history.store.HistoryStore.read_arrays`) of the series that measured
each enterprise during the event (`vpp.events.model.EnterpriseTrack.series`:
its revenue meter, or its devices); the park's is the sum of its
enterprises'. An interval's power is the time-weighted mean of the
15-minute slots it overlaps, each slot's mean over its covered part (as the
history gives it), once every slot it overlaps has closed on the service
clock. A revenue meter must have data in them (read live, or imported
later); a device with none counts at its baseline, as the control loop
counts a silent device during the event (its baseline is kept beside the
event, `vpp.events.model.SeriesBaselines`), once the interval's telemetry
has been written (some device of the event has data in it). Until then the
interval is not measured (never counted as 0 kW).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from vpp.events.model import EnterpriseTrack, EventRecord, SeriesBaselines
from vpp.events.store import EventStore
from vpp.history.grid import INTERVAL_S, locate, slot_start
from vpp.history.store import HistoryStore
from vpp.model import Park

__all__ = [
    "NOT_RECORDED",
    "Rebound",
    "interval_means",
    "load_rebound",
    "measure",
    "rebound_window",
]

FloatArray = NDArray[np.float64]

_SLOT = timedelta(seconds=INTERVAL_S)

#: Why an event without a `ReboundBaseline` has no rebound window.
NOT_RECORDED = (
    "no baseline past the event's end was recorded (the event never became active, "
    "or it was recorded before the rebound window was kept)"
)


@dataclass(frozen=True, eq=False)
class Rebound:
    """An event's rebound window: baseline and measured power per interval (kW; NaN = not known).

    Attributes:
        starts: each interval's start.
        interval_s: the event's interval length, s.
        baseline_kw: ``(R,)`` the park's baseline.
        measured_kw: ``(R,)`` the park's measured mean power (NaN: not measured yet).
        coverage: ``(R,)`` the least covered fraction of any slot read for the
            interval, over the series with history in it (NaN: none, or not
            closed yet).
        silent: ``(R,)`` devices with no history in the interval, counted
            at their baseline (`measure`).
        owner_baseline_kw: enterprise -> ``(R,)`` its baseline.
        owner_measured_kw: enterprise -> ``(R,)`` its measured power.
        length_h: how far past the event's end the window reaches, hours.
        counted: False when the window cannot be counted (``note`` says why):
            the event's avoided CO2 is then its own intervals' alone.
        note: how the window was chosen, or why it is not counted.
    """

    starts: tuple[datetime, ...]
    interval_s: int
    baseline_kw: FloatArray
    measured_kw: FloatArray
    coverage: FloatArray
    silent: FloatArray
    owner_baseline_kw: Mapping[str, FloatArray]
    owner_measured_kw: Mapping[str, FloatArray]
    length_h: float
    counted: bool
    note: str

    @classmethod
    def not_counted(cls, note: str, interval_s: int = INTERVAL_S) -> Rebound:
        """No window to count, and why."""
        empty = np.zeros(0)
        return cls((), interval_s, empty, empty, empty, empty, {}, {}, 0.0, False, note)

    @property
    def known(self) -> NDArray[np.bool_]:
        """``(R,)`` the measured intervals: baseline and measured power both known."""
        return ~np.isnan(self.baseline_kw) & ~np.isnan(self.measured_kw)


def _stop(record: EventRecord) -> int:
    """The interval the window starts at: the event's end, or after its last measured one."""
    n = len(record.target_kw)
    if not record.terminal:
        return n
    measured = [i for i, v in enumerate(record.measured_kw) if v is not None and not math.isnan(v)]
    return measured[-1] + 1 if measured else n


def _hours(value: float) -> str:
    return f"{value:g} h"


def rebound_window(
    record: EventRecord, floor_h: float, next_start: datetime | None = None
) -> Rebound:
    """The rebound window of an event with its baselines, nothing measured yet.

    Args:
        record: the event.
        floor_h: ``[reports] rebound_window_h``, the least window past the end, hours.
        next_start: the start of the park's next event that ran after this
            one, or None; the window ends before it.

    Returns:
        The window (the module doc gives its rule and says where each
        baseline comes from), or one not counted with the reason: the
        record has no baseline past its end, or it could not be set.
    """
    past = record.rebound
    if past is None:
        return Rebound.not_counted(NOT_RECORDED, record.interval_s)
    if past.note:
        return Rebound.not_counted(past.note, record.interval_s)
    step = timedelta(seconds=record.interval_s)
    n = len(record.target_kw)
    reasons = {
        "[reports] rebound_window_h": floor_h,
        "the flexible loads' longest rebound": past.load_rebound_minutes / 60.0,
        "the event's length": n * record.interval_s / 3600.0,
    }
    wanted_h = max(reasons.values())
    wanted = math.ceil(wanted_h * 3600.0 / record.interval_s - 1e-9)
    after = min(wanted, len(past.baseline_kw))
    stop = _stop(record)
    starts = [record.start + i * step for i in range(stop, n + after)]
    said = ", ".join(f"{name} ({_hours(round(h, 3))})" for name, h in reasons.items())
    parts = [
        f"up to {_hours(after * step.total_seconds() / 3600)} past the end: the longest of {said}"
    ]
    if after < wanted:
        parts.append(f"no further than the {len(past.baseline_kw)} intervals the baseline was "
                     "fixed for past the end ([control] horizon_after_h)")  # fmt: skip
    if stop < n:
        parts.append(f"from {starts[0].isoformat()}, the end of its last measured interval")
    if next_start is not None and starts and starts[-1] + step > next_start:
        starts = [t for t in starts if t + step <= next_start]
        parts.append(f"cut at {next_start.isoformat()}, where the park's next event starts")
    end = starts[-1] + step if starts else record.end
    offset = round((record.end - past.start) / step)  # the loop rewrites a stale start

    def baseline(event_kw: Sequence[float | None], after_kw: Sequence[float | None]) -> FloatArray:
        out = np.full(len(starts), np.nan)
        for j, t in enumerate(starts):
            i = round((t - record.start) / step)
            k = i - n + offset
            value = event_kw[i] if i < n else after_kw[k] if 0 <= k < len(after_kw) else None
            out[j] = np.nan if value is None else value
        return out

    unknown = np.full(len(starts), np.nan)
    return Rebound(
        starts=tuple(starts),
        interval_s=record.interval_s,
        baseline_kw=baseline(record.baseline_kw, past.baseline_kw),
        measured_kw=unknown,
        coverage=unknown,
        silent=np.zeros(len(starts)),
        owner_baseline_kw={
            owner: baseline(track.baseline_kw, track.rebound_baseline_kw)
            for owner, track in record.enterprises.items()
        },
        owner_measured_kw={owner: unknown for owner in record.enterprises},
        length_h=max((end - record.end).total_seconds(), 0.0) / 3600.0,
        counted=True,
        note="; ".join(parts),
    )


def interval_means(
    energy_kwh: FloatArray,
    coverage: FloatArray,
    days: Sequence[date],
    starts: Sequence[datetime],
    interval_s: int,
    tz: ZoneInfo,
    now: datetime,
) -> tuple[FloatArray, FloatArray]:
    """Mean power of each series over each interval, from its history slots.

    Args:
        energy_kwh: ``(S, D, 96)`` energy per slot over its covered part, kWh.
        coverage: ``(S, D, 96)`` covered fraction per slot (0 = no data).
        days: the ``D`` local days of the arrays; they hold every slot the
            intervals overlap.
        starts: each interval's start (aware).
        interval_s: the intervals' length, s.
        tz: the park's time zone.
        now: the service clock; a slot that has not closed by then is not read.

    Returns:
        ``(S, R)`` mean kW (the time-weighted mean of the slots each interval
        overlaps; NaN where a slot has no data or has not closed) and ``(S,
        R)`` the least coverage of those slots (NaN where one has not closed).

    Raises:
        KeyError: a slot lies on a day not in ``days``.
    """
    hours = INTERVAL_S / 3600.0
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(coverage > 0, energy_kwh / (coverage * hours), np.nan)
    column = {d: j for j, d in enumerate(days)}
    count = energy_kwh.shape[0]
    kw = np.full((count, len(starts)), np.nan)
    least = np.full((count, len(starts)), np.nan)
    step = timedelta(seconds=interval_s)
    for r, begin in enumerate(starts):
        end = begin + step
        slot = slot_start(*locate(begin, tz), tz)
        total, low = np.zeros(count), np.ones(count)
        while slot < end and slot + _SLOT <= now:
            day, index = locate(slot, tz)
            weight = (min(slot + _SLOT, end) - max(slot, begin)) / step
            total += weight * mean[:, column[day], index]
            low = np.minimum(low, coverage[:, column[day], index])
            slot += _SLOT
        if slot >= end:  # every slot it overlaps has closed
            kw[:, r], least[:, r] = total, low
    return kw, least


def _days(starts: Sequence[datetime], interval_s: int, tz: ZoneInfo) -> list[date]:
    """The local days the intervals touch, in order."""
    first = locate(starts[0], tz)[0]
    last = locate(starts[-1] + timedelta(seconds=interval_s - 1), tz)[0]
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


async def _next_start(
    events: EventStore, park: str, record: EventRecord, until: datetime
) -> datetime | None:
    """The start of the park's first event after ``record`` that ran, before ``until``."""
    later = await events.starting_between(park, record.start, until)
    starts = [e.start for e in later if e.id != record.id and e.start > record.start and e.ran]
    return min(starts, default=None)


def measure(
    window: Rebound,
    tracks: Mapping[str, EnterpriseTrack],
    kw: Mapping[str, FloatArray],
    coverage: Mapping[str, FloatArray],
    devices: SeriesBaselines | None,
) -> Rebound:
    """A window with its measured power, from each series' interval means (`interval_means`).

    A metered enterprise is its meter's power, which must be in the history
    (read, or imported later). Another enterprise is the sum of its devices';
    a device with no history in an interval counts at its baseline
    (``devices``), as the control loop counts a silent device during the
    event, once the interval's telemetry has been written (some device of
    the event has history in it); until then, and for a device without a
    baseline, the interval is not measured yet.

    Args:
        window: the window (`rebound_window`).
        tracks: the event's enterprises (their ``meter`` and ``series``).
        kw: series -> ``(R,)`` mean kW (NaN: no data, or not closed).
        coverage: series -> ``(R,)`` least coverage (NaN: not closed).
        devices: each device's baseline over the event and after it, or None.

    Returns:
        The window with ``measured_kw``, ``owner_measured_kw``, ``coverage``
        (over the series with history) and ``silent`` (devices counted at
        their baseline) per interval.
    """
    count = len(window.starts)
    device_series = [s for t in tracks.values() if t.meter is None for s in t.series]
    written = np.zeros(count, dtype=bool)
    for series in device_series:
        written |= ~np.isnan(kw[series])
    baseline = _device_baselines(window, devices)
    silent = np.zeros(count)
    owners: dict[str, FloatArray] = {}
    for owner, track in tracks.items():
        total = np.zeros(count)
        for series in track.series:
            values = kw[series]
            if track.meter is None:
                held = baseline.get(series, np.full(count, np.nan))
                fill = written & np.isnan(values) & ~np.isnan(held)
                silent += fill
                values = np.where(fill, held, values)
            total = total + values
        owners[owner] = total
    least = np.full(count, np.nan)
    for series in kw:
        least = np.fmin(least, np.where(np.isnan(kw[series]), np.nan, coverage[series]))
    return replace(
        window,
        measured_kw=np.sum(list(owners.values()), axis=0) if owners else np.full(count, np.nan),
        coverage=least,
        silent=silent,
        owner_measured_kw=owners,
    )


def _device_baselines(window: Rebound, devices: SeriesBaselines | None) -> dict[str, FloatArray]:
    """Each device's baseline in the window's intervals, by time (NaN: not known)."""
    if devices is None:
        return {}
    step = timedelta(seconds=window.interval_s)
    at = [round((t - devices.start) / step) for t in window.starts]
    return {
        series: np.array(
            [np.nan if not 0 <= i < len(kw) or kw[i] is None else kw[i] for i in at], dtype=float
        )
        for series, kw in devices.baseline_kw.items()
    }


async def load_rebound(
    history: HistoryStore,
    events: EventStore,
    park: Park,
    record: EventRecord,
    *,
    floor_h: float,
    now: datetime,
) -> Rebound:
    """An event's rebound window, measured from the interval history so far.

    Args:
        history: the interval history.
        events: the park's events (the window ends where the next one
            starts) and each device's baseline (`EventStore.series_baselines`).
        park: the park (its time zone).
        record: the event.
        floor_h: ``[reports] rebound_window_h``, hours.
        now: the service clock; slots not closed by then are not read.

    Returns:
        The window (`rebound_window`) with its measured power (`measure`).

    Raises:
        StateUnavailable: Redis did not answer.
    """
    reach = record.end + timedelta(
        seconds=record.interval_s * len(record.rebound.baseline_kw if record.rebound else [])
    )
    window = rebound_window(record, floor_h, await _next_start(events, park.id, record, reach))
    step = timedelta(seconds=record.interval_s)
    if not window.counted or not window.starts or window.starts[0] + step > now:
        return window  # nothing to read (yet)
    tracks = record.enterprises
    series = sorted({s for track in tracks.values() for s in track.series})
    if not tracks or any(not track.series for track in tracks.values()):
        why = "the event's enterprises do not name the series that measured them"
        return Rebound.not_counted(why, record.interval_s)
    tz = ZoneInfo(park.timezone)
    days = _days(window.starts, record.interval_s, tz)
    arrays = await history.read_arrays(park.id, series, days)
    kw, least = interval_means(
        arrays.energy_kwh, arrays.coverage, days, window.starts, record.interval_s, tz, now
    )
    devices = await events.series_baselines(park.id, record.id)
    return measure(
        window,
        tracks,
        {s: kw[i] for i, s in enumerate(series)},
        {s: least[i] for i, s in enumerate(series)},
        devices,
    )
