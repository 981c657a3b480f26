"""A believable history for a simulated park: N past days of every asset and revenue meter.

The demo needs a week or two of history before its event so that a
historical baseline (similar days, high X of Y) has something to work on,
and revenue meters so that the report can break down by enterprise. This
module lays that history down from the park's enrolled assets, with the load
shapes of ``adapters.sim.profiles`` (the same ones the live simulators
follow, seeded the same way, so the event day's live telemetry looks like
its history):

* a flexible load follows its enterprise's shape (or its own) times its
  ``baseline_kw``;
* PV produces a clear-day curve scaled by ``rated_kw`` with cloud noise
  (negative: the service's sign is positive = drawn from the grid);
* a battery idles near 0, drawing its standby (auxiliaries: BMS, container
  cooling, 0.4 % of its capacity in kW, an assumption);
* an EV charger draws from sessions of its enterprise's arrival pattern;
  the sessions themselves (`vpp.forecast.sessions.ChargerSession`) come
  with the history, as the live recorder would have recorded them;
* each enterprise's revenue meter reads the sum of that enterprise's devices
  plus an unenrolled base load (``EnterpriseProfile.base_kw`` of its shape):
  what the grid company's metering system would export for its account.

Realism: the kind of each day comes from the official Chinese calendar
(public holidays and adjusted working days); one past day carries an event
(flexible loads shed, batteries discharge, loads rebound afterwards);
device telemetry has a few gaps (partial coverage, never stored as zero) and
one day a gateway outage takes every flexible load off line for 2.5 hours
(that day's coverage drops under a baseline's usual 0.9). Revenue meters are
complete: their data is imported, revenue grade. Today can be laid down up
to "now" as well (``through_slot``), so that a same-day adjustment has the
hours before an event; the live recorder carries on from there.

`generate_history` is pure (arrays in memory, about 0.1 s for 14 days of
the demo park's 56 series); `write_history` writes it through the history
store, devices as telemetry and meters as imported metering data, leaving
every series' day that already holds data as it is, and the charger sessions
through the session store (an upsert: writing twice adds nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from adapters.sim.park import SimParkSpec
from adapters.sim.profiles import (
    DayType,
    EvPattern,
    LoadProfile,
    Shape,
    ev_day_kw,
    ev_visits,
    pv_day_output_kw,
    stable_seed,
)
from vpp.forecast.sessions import ChargerSession, SessionStore
from vpp.history import calendar
from vpp.history.grid import INTERVAL_S, SLOTS_PER_DAY, DayVector, day_start, slot_start
from vpp.history.store import HistoryStore, IntervalDelta
from vpp.model import Asset, Battery, EvCharger, FlexibleLoad, Meter, Park, Pv

__all__ = [
    "EnterpriseProfile",
    "GeneratedHistory",
    "PastEvent",
    "Written",
    "base_profile",
    "generate_history",
    "load_profiles",
    "official_day_type",
    "with_load_profiles",
    "write_history",
]

#: Hours of a slot.
_SLOT_H = INTERVAL_S / 3600.0
#: A battery's standby draw (BMS, container cooling) per kWh of capacity, kW.
_STANDBY_KW_PER_KWH = 0.004
#: The default past event: 14:00-16:00, inside Guangdong's afternoon peak (14:00-19:00).
_EVENT_START_SLOT, _EVENT_SLOTS = 56, 8
#: Chance that a device's telemetry has a short gap on a given day, and its length in slots.
_GAP_CHANCE, _GAP_SLOTS = 0.12, (1, 4)
#: The gateway outage: slots every flexible load loses on one day.
_OUTAGE_SLOTS = 10


def official_day_type(day: date) -> DayType:
    """The kind of ``day`` for a load shape, per the official calendar (`vpp.history.calendar`).

    A working day, adjusted working days (调休) included, is ``WORKDAY``; a
    public holiday, and the rest days bridged to it, is ``HOLIDAY``; any other
    rest day is ``WEEKEND``. Outside the calendar's years: Monday to Friday
    work (the calendar warns).
    """
    kind = calendar.day_type(day)
    if kind.working:
        return DayType.WORKDAY
    return DayType.HOLIDAY if kind.holiday is not None else DayType.WEEKEND


@dataclass(frozen=True, slots=True, kw_only=True)
class EnterpriseProfile:
    """How one enterprise of the park draws power.

    Attributes:
        shape: the shape of its flexible loads and of its base load.
        base_kw: nominal of its load not enrolled in the park (lighting,
            production, IT), which its revenue meter sees and the VPP does not.
        ev: when its chargers' vehicles come.
    """

    shape: Shape = Shape.TWO_SHIFT
    base_kw: float = 0.0
    ev: EvPattern = EvPattern.WORKPLACE


@dataclass(frozen=True, slots=True)
class PastEvent:
    """A demand-response event in the history.

    Attributes:
        day: its local day.
        start_slot: its first slot (0-95).
        slots: its length in slots.
        share: the share of each flexible load's ``max_shed_kw`` it shed and
            of each battery's ``max_discharge_kw`` it discharged at.
    """

    day: date
    start_slot: int = _EVENT_START_SLOT
    slots: int = _EVENT_SLOTS
    share: float = 0.8

    def __post_init__(self) -> None:
        if not (
            self.start_slot >= 0
            and self.slots > 0
            and self.start_slot + self.slots <= SLOTS_PER_DAY
        ):
            raise ValueError("a past event lies within one day's 96 slots")


@dataclass(frozen=True)
class GeneratedHistory:
    """A park's generated history.

    Attributes:
        park: the park id.
        days: the local days, oldest first.
        day_types: the kind of each day (the calendar's).
        series: per series (asset or meter id), per day, its day vector:
            devices as recorded from telemetry (gaps = partial coverage),
            meters as imported (full coverage, ``imported`` set).
        drawn_kw: ``(days, 96)`` what each device really drew per slot, kW
            (the truth behind its telemetry gaps).
        base_kw: ``(days, 96)`` each enterprise's unenrolled base load, kW.
        meters: the revenue meter of each enterprise that has one, by owner.
        event: the past event, if any.
        outage_day: the day of the gateway outage, if any.
        partial_day: today, laid down up to ``through_slot`` (the last of
            ``days``), if asked for.
        sessions: the charger sessions the chargers' curves come from, by
            arrival: those that arrived on the history's days and had left
            by its end (a vehicle still plugged in then is the live
            recorder's to see). Each vehicle states its real departure, and
            its wanted energy as its need at plug-in.
    """

    park: str
    days: tuple[date, ...]
    day_types: dict[date, DayType]
    series: dict[str, dict[date, DayVector]]
    drawn_kw: dict[str, NDArray[np.float64]]
    base_kw: dict[str, NDArray[np.float64]]
    meters: dict[str, str] = field(default_factory=dict)
    event: PastEvent | None = None
    outage_day: date | None = None
    partial_day: date | None = None
    sessions: tuple[ChargerSession, ...] = ()


def load_profiles(
    park: Park,
    assets: Sequence[Asset],
    enterprises: Mapping[str, EnterpriseProfile],
    *,
    seed: int = 0,
    shapes: Mapping[str, Shape] | None = None,
) -> dict[str, LoadProfile]:
    """The profile of each flexible load: its own shape if given, else its enterprise's.

    The same profiles drive the generated history and, given to the live
    simulators (`with_load_profiles`), the live loads, so a live day looks
    like its history.

    Args:
        park: the park (its time zone is the profiles' clock).
        assets: its assets; only flexible loads get a profile.
        enterprises: by owner; an owner not listed draws two-shift.
        seed: the park-wide seed (each load's is derived from it and its id).
        shapes: a shape per asset id, overriding its enterprise's.
    """
    shapes = shapes or {}
    return {
        a.id: LoadProfile(
            shape=shapes.get(a.id, enterprises.get(a.owner, EnterpriseProfile()).shape),
            seed=stable_seed(seed, park.id, a.id),
            timezone=park.timezone,
        )
        for a in assets
        if isinstance(a, FlexibleLoad)
    }


def base_profile(
    park: Park, owner: str, enterprises: Mapping[str, EnterpriseProfile], *, seed: int = 0
) -> LoadProfile:
    """The profile of an enterprise's unenrolled base load (its nominal: ``base_kw``).

    What its revenue meter sees beside its devices, in the generated history
    and, given to a live simulated meter as its base load
    (``lambda t: profile.kw_after(origin, t, base_kw)``), live.
    """
    return LoadProfile(
        shape=enterprises.get(owner, EnterpriseProfile()).shape,
        seed=stable_seed(seed, park.id, "base", owner),
        timezone=park.timezone,
    )


def with_load_profiles(spec: SimParkSpec, profiles: Mapping[str, LoadProfile]) -> SimParkSpec:
    """The simulated park with each load following its profile (loads not listed stay flat)."""
    loads = [
        replace(load, profile=profiles.get(load.asset_id, load.profile)) for load in spec.loads
    ]
    return replace(spec, loads=loads)


def _pick_event(days: Sequence[date], day_types: Mapping[date, DayType]) -> PastEvent | None:
    """The latest working day but the last one of the window, 14:00-16:00."""
    working = [d for d in days[:-1] if day_types[d] is DayType.WORKDAY]
    return PastEvent(working[-1]) if working else None


def _shift(
    kw: NDArray[np.float64], event: PastEvent, cut: NDArray[np.float64], back: float, over: int
) -> None:
    """Take ``cut`` kW off the event's slots; return ``back`` of that energy over the next slots."""
    lo, hi = event.start_slot, event.start_slot + event.slots
    kw[lo:hi] -= cut
    after = kw[hi : hi + over]
    if back > 0 and after.size:
        after += cut.sum() * back / after.size


def _flexible(
    asset: FlexibleLoad, profile: LoadProfile, days: Sequence[date],
    day_types: Mapping[date, DayType], event: PastEvent | None,
) -> NDArray[np.float64]:  # fmt: skip
    out = np.stack([profile.day_kw(d, day_types[d], asset.baseline_kw) for d in days])
    if event is not None and event.day in days:
        row = out[days.index(event.day)]
        window = row[event.start_slot : event.start_slot + event.slots]
        # the live window scales with the level: a load at half its baseline sheds half as much
        cut = event.share * asset.max_shed_kw * np.minimum(window / asset.baseline_kw, 1.0)
        over = max(1, round(asset.rebound_minutes * 60 / INTERVAL_S))
        _shift(row, event, np.minimum(cut, window), asset.rebound_fraction, over)
    return out


def _battery(
    asset: Battery, days: Sequence[date], seed: int, event: PastEvent | None
) -> NDArray[np.float64]:
    standby = _STANDBY_KW_PER_KWH * asset.capacity_kwh
    noise = [np.random.default_rng([seed, d.toordinal(), 4]).standard_normal(96) for d in days]
    out = standby * (1.0 + 0.15 * np.stack(noise))
    if event is not None and event.day in days:
        row = out[days.index(event.day)]
        kw = event.share * asset.max_discharge_kw
        kwh = min(kw * event.slots * _SLOT_H, asset.capacity_kwh * (asset.soc_max - asset.soc_min))
        row[event.start_slot : event.start_slot + event.slots] = -kwh / (event.slots * _SLOT_H)
        # recharged from 22:00 at half power, as much as fits before midnight
        lost = kwh / (asset.charge_efficiency * asset.discharge_efficiency)
        per_slot = 0.5 * asset.max_charge_kw * _SLOT_H
        for s in range(88, SLOTS_PER_DAY):
            take = min(per_slot, lost)
            row[s] += take / _SLOT_H
            lost -= take
    return out


def _charger(
    asset: EvCharger, pattern: EvPattern, days: Sequence[date], day_type: Callable[[date], DayType],
    seed: int, event: PastEvent | None,
) -> NDArray[np.float64]:  # fmt: skip
    out = np.stack([
        ev_day_kw(d, day_type(d), previous=day_type(d - timedelta(days=1)),
                  max_kw=asset.max_charge_kw, pattern=pattern, seed=seed)
        for d in days
    ])  # fmt: skip
    if event is not None and event.day in days:
        # a smart charger holds at its minimum through the event, the energy comes after
        row = out[days.index(event.day)]
        window = row[event.start_slot : event.start_slot + event.slots]
        _shift(row, event, np.clip(window - asset.min_charge_kw, 0.0, None), 1.0, 4)
        np.minimum(row, asset.max_charge_kw, out=row)
    return out


def _charger_sessions(
    asset: EvCharger, pattern: EvPattern, days: Sequence[date], day_type: Callable[[date], DayType],
    seed: int, tz: ZoneInfo, cut: datetime,
) -> list[ChargerSession]:  # fmt: skip
    """The sessions behind `_charger`'s curve that arrived on ``days`` and left before ``cut``."""
    out = []
    for day in days:
        midnight = day_start(day, tz)
        kind = day_type(day)
        for v in ev_visits(day, kind, max_kw=asset.max_charge_kw, pattern=pattern, seed=seed):
            departure = midnight + timedelta(hours=v.departure_h)
            if departure > cut:
                continue
            out.append(
                ChargerSession(
                    asset_id=asset.id,
                    arrival=midnight + timedelta(hours=v.arrival_h),
                    departure=departure,
                    stated_departure=departure,
                    energy_needed_kwh=v.wanted_kwh,
                    energy_delivered_kwh=v.energy_kwh,
                    seen=departure,
                )
            )
    return out


def _pv(asset: Pv, days: Sequence[date], tz: ZoneInfo, seed: int) -> NDArray[np.float64]:
    def offset_h(day: date) -> float:
        delta = datetime.combine(day, time(12), tzinfo=tz).utcoffset() or timedelta()
        return delta.total_seconds() / 3600.0

    return -np.stack([
        pv_day_output_kw(d, asset.rated_kw, seed=seed, utc_offset_h=offset_h(d)) for d in days
    ])  # fmt: skip


def _coverage(
    ids: Sequence[str], flexible: set[str], days: Sequence[date], seed: int, outage: int | None
) -> dict[str, NDArray[np.float64]]:
    """Each device's covered fraction per slot: short gaps, and the gateway outage.

    A series' gaps on a day depend on the seed, the series and the day only,
    so a day keeps its gaps whatever window it is generated in.
    """
    out: dict[str, NDArray[np.float64]] = {}
    for series in ids:
        cov = np.ones((len(days), SLOTS_PER_DAY))
        for d, day in enumerate(days):
            rng = np.random.default_rng([stable_seed(seed, series), day.toordinal(), 5])
            if rng.uniform() < _GAP_CHANCE:
                n = int(rng.integers(_GAP_SLOTS[0], _GAP_SLOTS[1] + 1))
                s = int(rng.integers(0, SLOTS_PER_DAY - n))
                cov[d, s : s + n] = 0.0
                # the gap starts and ends inside a slot: those slots are partly covered
                cov[d, s] = rng.uniform(0.2, 0.8)
                if n > 1:
                    cov[d, s + n - 1] = rng.uniform(0.2, 0.8)
        if outage is not None and series in flexible:
            cov[outage, 40 : 40 + _OUTAGE_SLOTS] = 0.0  # 10:00-12:30
        # whole seconds, as the store keeps them
        out[series] = np.round(cov * INTERVAL_S) / INTERVAL_S
    return out


def _vector(kw: NDArray[np.float64], coverage: NDArray[np.float64], imported: bool) -> DayVector:
    return DayVector(
        energy_kwh=kw * _SLOT_H * coverage,
        coverage=coverage,
        imported=np.full(SLOTS_PER_DAY, imported, dtype=bool),
    )


def generate_history(
    park: Park,
    assets: Sequence[Asset],
    *,
    end: date,
    days: int = 14,
    seed: int = 0,
    enterprises: Mapping[str, EnterpriseProfile] | None = None,
    shapes: Mapping[str, Shape] | None = None,
    day_type: Callable[[date], DayType] = official_day_type,
    event: PastEvent | Literal["auto"] | None = "auto",
    gaps: bool = True,
    through_slot: int | None = None,
) -> GeneratedHistory:
    """Lay down ``days`` local days of history before ``end`` for a park's assets.

    Deterministic: the same arguments give the same history.

    Args:
        park: the park (its id, time zone).
        assets: its enrolled assets; flexible loads, PV, batteries and EV
            chargers get a series each, revenue meters the sum of their
            enterprise's devices plus its base load; other meters none
            (what a sub-meter measures is not in the model).
        end: the first day not generated (today): the history is
            ``end - days`` .. ``end - 1``.
        days: how many days.
        seed: the park-wide seed.
        enterprises: how each owner draws, by owner (two-shift, no base load
            when not listed).
        shapes: a shape per flexible load's id, overriding its enterprise's.
        day_type: the kind of a day (the official calendar).
        event: the past event; ``"auto"`` puts one on the latest working day
            before the window's last day, 14:00-16:00; None for none.
        gaps: whether device telemetry has gaps (and the gateway outage).
        through_slot: also lay down ``end`` itself (today) up to this slot
            (0-96, exclusive: the slot of "now"), so a same-day adjustment
            has the hours before an event; its meters as if read live (not
            imported: the grid's metering data of a day comes the day after).

    Raises:
        ValueError: ``days`` is not positive, ``through_slot`` is outside
            0..96, or the event lies outside the window.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    if through_slot is not None and not 0 <= through_slot <= SLOTS_PER_DAY:
        raise ValueError(f"through_slot must be within 0..{SLOTS_PER_DAY}")
    enterprises = enterprises or {}
    tz = ZoneInfo(park.timezone)
    window = tuple(end - timedelta(days=n) for n in range(days, 0, -1))
    every = window if through_slot is None else (*window, end)
    kinds = {d: day_type(d) for d in every}
    if event == "auto":
        event = _pick_event(window, kinds)
    elif event is not None and event.day not in window:
        raise ValueError(f"the past event's day {event.day} is outside the history")
    profiles = load_profiles(park, assets, enterprises, seed=seed, shapes=shapes)

    drawn: dict[str, NDArray[np.float64]] = {}
    owner_of: dict[str, str] = {}
    sessions: list[ChargerSession] = []
    cut = day_start(end, tz) if through_slot is None else slot_start(end, through_slot, tz)
    for asset in assets:
        own_seed = stable_seed(seed, park.id, asset.id)
        profile = enterprises.get(asset.owner, EnterpriseProfile())
        match asset:
            case FlexibleLoad():
                kw = _flexible(asset, profiles[asset.id], every, kinds, event)
            case Battery():
                kw = _battery(asset, every, own_seed, event)
            case EvCharger():
                kw = _charger(asset, profile.ev, every, day_type, own_seed, event)
                sessions += _charger_sessions(asset, profile.ev, every, day_type, own_seed, tz, cut)
            case Pv():
                kw = _pv(asset, every, tz, own_seed)
            case Meter():
                continue
        drawn[asset.id], owner_of[asset.id] = kw, asset.owner

    outage = None
    if gaps and days > 2:
        candidates = [i for i, d in enumerate(window[:-1]) if event is None or d != event.day]
        rng = np.random.default_rng([stable_seed(seed, park.id), window[0].toordinal(), 3])
        outage = int(rng.choice(candidates))
    flexible = {a.id for a in assets if isinstance(a, FlexibleLoad)}
    if gaps:
        coverage = _coverage(list(drawn), flexible, every, stable_seed(seed, park.id), outage)
    else:
        coverage = {s: np.ones((len(every), SLOTS_PER_DAY)) for s in drawn}
    # today's slots from "now" on are not there yet
    full = np.ones((len(every), SLOTS_PER_DAY))
    full[len(window) :, through_slot:] = 0.0
    for cov in coverage.values():
        cov *= full
    series = {
        s: {d: _vector(kw[i], coverage[s][i], False) for i, d in enumerate(every)}
        for s, kw in drawn.items()
    }

    base: dict[str, NDArray[np.float64]] = {}
    meters: dict[str, str] = {}
    for meter in assets:
        if not (isinstance(meter, Meter) and meter.revenue):
            continue
        ent = enterprises.get(meter.owner, EnterpriseProfile())
        shape = base_profile(park, meter.owner, enterprises, seed=seed)
        base[meter.owner] = np.stack([shape.day_kw(d, kinds[d], ent.base_kw) for d in every])
        total = base[meter.owner] + sum(
            (kw for s, kw in drawn.items() if owner_of[s] == meter.owner),
            np.zeros((len(every), SLOTS_PER_DAY)),
        )
        series[meter.id] = {d: _vector(total[i], full[i], d in window) for i, d in enumerate(every)}
        meters[meter.owner] = meter.id
    return GeneratedHistory(
        park=park.id, days=every, day_types=kinds, series=series, drawn_kw=drawn,
        base_kw=base, meters=meters, event=event,
        outage_day=None if outage is None else window[outage],
        partial_day=None if through_slot is None else end,
        sessions=tuple(sorted(sessions, key=lambda s: (s.arrival, s.asset_id))),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Written:
    """What `write_history` did, in series-days.

    Attributes:
        written: series-days written.
        kept: series-days that held data already and were left as they were.
    """

    written: int
    kept: int


async def write_history(
    store: HistoryStore, history: GeneratedHistory, *, tz: ZoneInfo | None = None
) -> Written:
    """Write a generated history through the history store.

    Devices go in as telemetry (`HistoryStore.add`: each slot's energy over
    its covered seconds, gaps left without data), revenue meters' whole days
    as imported metering data (`HistoryStore.put_days`: full coverage,
    flagged imported), today's part of a meter as telemetry; the charger
    sessions through the `SessionStore` (same retention as the history).
    A series' day that holds data already (live telemetry, an import, an
    earlier run) is left as it is, and so are the sessions that arrived on
    a charger's day left as it is: writing twice adds nothing, and nothing
    real is overwritten. Days past the store's retention expire at once.

    Args:
        store: the history store.
        history: what `generate_history` returned.
        tz: the park's time zone (the store reads it from the park when omitted).

    Raises:
        StateUnavailable: Redis did not answer (part of the history may be written).
    """
    first, last = history.days[0], history.days[-1]
    there = await store.read(history.park, list(history.series), first, last)
    deltas: list[IntervalDelta] = []
    written = kept = 0
    fresh_days: dict[str, set[date]] = {}
    for series, days in history.series.items():
        fresh = {d: v for d, v in days.items() if not (there[series][d].coverage > 0).any()}
        fresh_days[series] = set(fresh)
        kept += len(days) - len(fresh)
        written += len(fresh)
        imported = {d: v.energy_kwh.tolist() for d, v in fresh.items() if v.imported.all()}
        if imported:
            await store.put_days(history.park, series, imported, tz=tz)
        for day, vector in fresh.items():
            if day in imported:
                continue
            covered = vector.coverage * INTERVAL_S
            deltas += [
                IntervalDelta(
                    series, day, slot, float(vector.energy_kwh[slot]), float(covered[slot])
                )
                for slot in np.flatnonzero(covered).tolist()
            ]
    await store.add(history.park, deltas, tz=tz)
    zone = tz if tz is not None else await store.zone(history.park)
    sessions = SessionStore(store.state, retention_days=store.retention_days)
    await sessions.add(
        history.park,
        (
            s
            for s in history.sessions
            if s.arrival.astimezone(zone).date() in fresh_days.get(s.asset_id, ())
        ),
    )
    return Written(written=written, kept=kept)
