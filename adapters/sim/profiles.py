"""Load shapes of a simulated park: how its enterprises draw power over a day and a year.

Each shape is a per-unit curve of a local day (1.0 = the load's nominal
draw, a working day's daytime level, i.e. a flexible load's ``baseline_kw``)
for each kind of day, times a slow seasonal and level drift, times seeded
noise. Everything is deterministic per seed: the same seed, day and day type
give the same values, in the history generator as in the live simulators, so
a simulated event day's live telemetry looks like its history.

The kind of day is the caller's (``adapters`` knows no calendar): the history
generator passes the official Chinese calendar's (adjusted working days and
public holidays included); a live simulator with none told uses
:func:`weekday_type` (Monday to Friday work, no holidays).

Shapes and their assumptions (a working day's curve; fractions of nominal):

* ``two_shift``: a Chinese two-shift factory, shifts 08:00-16:00 and
  16:00-24:00 (两班制), dips at the 12:00 lunch and 18:00 dinner breaks and
  at the 16:00 shift change; 0.30 at night (compressors idling, lighting,
  security, process cooling). Weekend: one day shift at 60 % (overtime,
  maintenance). Public holiday: 0.20 standby all day (plant shut).
* ``office_hvac``: an office building's HVAC, occupied 08:30-18:00, with a
  07:30-08:30 pre-cooling ramp and the afternoon cooling peak near 14:30;
  0.12 at night (ventilation, server rooms). Weekend: 0.30 from 10:00 to
  17:00 (partial occupancy). Public holiday: 0.10 all day.
* ``cold_store``: refrigeration compressors running day and night, following
  the ambient temperature (high at 15:00, low at 05:00), plus the morning
  dispatch (05:30-10:00: doors open, goods in and out) on working days, less
  of it at weekends and none on holidays.
* ``continuous``: 24/7 process or data centre (IT load plus cooling): flat
  within a few per cent, the cooling following the afternoon heat; the
  same every day.

Season: cooling dominates the year in southern China; each shape's level
swings by ``±amplitude`` around its annual mean, highest in late July
(day 205): ±5 % two-shift, ±30 % office HVAC, ±12 % cold store, ±4 %
continuous (cooling share of each load; assumptions, not measurements).
Level drift: two slow sinusoids (17 and 41 days, ±2 % and ±1.5 %) with seeded
phases, and ±1.5 % day-to-day noise. Within the day: AR(1) noise per
15-minute slot (lag-one correlation 0.7), 3 % standard deviation by default,
held constant over each slot.

PV (:func:`pv_day_output_kw`) follows the sun's elevation (the standard
declination, hour-angle and equation-of-time formulas, e.g. Duffie &
Beckman, *Solar Engineering of Thermal Processes*, ch. 1) with a seeded daily
clearness and cloud noise. EV chargers (:func:`ev_day_kw`) draw from
sessions whose arrivals follow a pattern: ``workplace`` (staff cars arriving
08:00-09:30 on working days) or ``depot`` (logistics vans returning
18:00-21:00, topping up at noon); :func:`ev_visits` gives those sessions
with each vehicle's departure (staff stay the working day, vans the night),
which the generated history records as the chargers' session history.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "SLOTS_PER_DAY",
    "DayType",
    "EvPattern",
    "EvVisit",
    "LoadProfile",
    "Shape",
    "ev_day_kw",
    "ev_visits",
    "pv_day_output_kw",
    "stable_seed",
    "weekday_type",
]

#: Slots of a local day (15-minute intervals, the market's grid).
SLOTS_PER_DAY = 96
_SLOT_H = 24.0 / SLOTS_PER_DAY
#: Per-unit curves are averaged over each slot at one-minute midpoints; with
#: breakpoints on whole minutes this is the exact mean of the piecewise-linear curve.
_MINUTES = (np.arange(24 * 60) + 0.5) / 60.0
#: Day of the year when cooling peaks in southern China (late July).
_SEASON_PEAK_DOY = 205


class DayType(StrEnum):
    """The kind of a day, as far as a load's shape is concerned."""

    WORKDAY = "workday"  #: a working day, adjusted working days (调休) included
    WEEKEND = "weekend"  #: a rest day that is not a public holiday
    HOLIDAY = "holiday"  #: a public holiday (法定节假日) and the rest days bridged to it


def weekday_type(day: date) -> DayType:
    """Monday to Friday work, Saturday and Sunday rest; no public holidays.

    What a live simulator uses when its caller gives no calendar; the service
    passes the official one instead.
    """
    return DayType.WORKDAY if day.weekday() < 5 else DayType.WEEKEND


class Shape(StrEnum):
    """The load shapes (see the module docstring for each one's assumptions)."""

    TWO_SHIFT = "two_shift"  #: a two-shift factory, 08:00-24:00
    OFFICE_HVAC = "office_hvac"  #: an office building's HVAC, 08:30-18:00
    COLD_STORE = "cold_store"  #: a cold store: day and night, morning dispatch
    CONTINUOUS = "continuous"  #: 24/7 process or data centre


#: (hour, per-unit) breakpoints of a day, linear in between.
_Curve = tuple[tuple[float, float], ...]


def _flat(level: float) -> _Curve:
    return ((0.0, level), (24.0, level))


_WORK_TWO_SHIFT: _Curve = (
    (0.0, 0.30), (7.5, 0.30), (8.0, 0.95), (11.75, 1.0), (12.0, 0.7), (12.75, 0.7),
    (13.0, 1.0), (15.75, 1.0), (16.0, 0.85), (16.25, 1.0), (17.75, 1.0), (18.0, 0.75),
    (18.5, 0.75), (18.75, 0.95), (23.5, 0.95), (24.0, 0.30),
)  # fmt: skip
_WEEKEND_TWO_SHIFT: _Curve = (
    (0.0, 0.30), (7.5, 0.30), (8.0, 0.6), (15.75, 0.6), (16.25, 0.30), (24.0, 0.30),
)  # fmt: skip
_WORK_OFFICE: _Curve = (
    (0.0, 0.12), (7.5, 0.12), (8.5, 0.85), (12.0, 0.95), (14.5, 1.0), (17.5, 0.9),
    (18.0, 0.5), (19.0, 0.25), (21.0, 0.12), (24.0, 0.12),
)  # fmt: skip
_WEEKEND_OFFICE: _Curve = (
    (0.0, 0.12), (9.5, 0.12), (10.0, 0.3), (17.0, 0.3), (17.5, 0.12), (24.0, 0.12),
)  # fmt: skip
# ambient-driven compressor duty: low before dawn, high mid-afternoon
_COLD_AMBIENT: _Curve = (
    (0.0, 0.82), (5.0, 0.78), (10.0, 0.86), (15.0, 0.95), (20.0, 0.88), (24.0, 0.82),
)  # fmt: skip


def _with_dispatch(base: _Curve, extra: float) -> _Curve:
    """The cold store's ambient curve plus the morning dispatch (05:30-10:00)."""
    hours = sorted({h for h, _ in base} | {5.5, 6.0, 9.5, 10.0})
    bump = ((5.5, 0.0), (6.0, extra), (9.5, extra), (10.0, 0.0))
    bh, bv = zip(*bump, strict=True)
    ah, av = zip(*base, strict=True)
    return tuple(
        (h, float(np.interp(h, ah, av) + np.interp(h, bh, bv, left=0.0, right=0.0))) for h in hours
    )


_CONTINUOUS: _Curve = ((0.0, 0.95), (6.0, 0.93), (14.5, 1.0), (20.0, 0.97), (24.0, 0.95))


@dataclass(frozen=True, slots=True)
class _ShapeDef:
    curves: Mapping[DayType, _Curve]
    seasonal: float  # ± share of the level over the year


_TWO_SHIFT_DAYS = {
    DayType.WORKDAY: _WORK_TWO_SHIFT,
    DayType.WEEKEND: _WEEKEND_TWO_SHIFT,
    DayType.HOLIDAY: _flat(0.20),
}
_OFFICE_DAYS = {
    DayType.WORKDAY: _WORK_OFFICE,
    DayType.WEEKEND: _WEEKEND_OFFICE,
    DayType.HOLIDAY: _flat(0.10),
}
_COLD_DAYS = {
    DayType.WORKDAY: _with_dispatch(_COLD_AMBIENT, 0.12),
    DayType.WEEKEND: _with_dispatch(_COLD_AMBIENT, 0.05),
    DayType.HOLIDAY: _COLD_AMBIENT,
}
_SHAPES: dict[Shape, _ShapeDef] = {
    Shape.TWO_SHIFT: _ShapeDef(_TWO_SHIFT_DAYS, 0.05),
    Shape.OFFICE_HVAC: _ShapeDef(_OFFICE_DAYS, 0.30),
    Shape.COLD_STORE: _ShapeDef(_COLD_DAYS, 0.12),
    Shape.CONTINUOUS: _ShapeDef(dict.fromkeys(DayType, _CONTINUOUS), 0.04),
}


def stable_seed(*parts: str | int) -> int:
    """A seed from names and numbers, the same in every process (unlike ``hash``).

    CRC-32 of the parts' text joined by ``/``: enough to give each asset of a
    park its own noise from one park-wide seed.
    """
    return zlib.crc32("/".join(str(p) for p in parts).encode())


@functools.lru_cache(maxsize=64)
def _curve_arrays(shape: Shape, day_type: DayType) -> tuple[NDArray[np.float64], ...]:
    """The curve's breakpoints and its exact mean per slot (cached: shapes never change)."""
    hours, values = (
        np.array(v, dtype=np.float64) for v in zip(*_SHAPES[shape].curves[day_type], strict=True)
    )
    slots = np.interp(_MINUTES, hours, values).reshape(SLOTS_PER_DAY, -1).mean(axis=1)
    return hours, values, slots


@functools.lru_cache(maxsize=4096)
def _day_factors(seed: int, ordinal: int, noise: float, seasonal: float) -> NDArray[np.float64]:
    """``(96,)`` the day's level (season x drift x daily noise) times its slot noise.

    Cached: a live load asks for the same day once per step.
    """
    rng = np.random.default_rng([seed & 0xFFFFFFFF, ordinal])
    phases = np.random.default_rng([seed & 0xFFFFFFFF, 0]).uniform(0, 2 * math.pi, 2)
    doy = date.fromordinal(ordinal).timetuple().tm_yday
    season = 1.0 + seasonal * math.cos(2 * math.pi * (doy - _SEASON_PEAK_DOY) / 365.25)
    drift = (
        1.0
        + 0.02 * math.sin(2 * math.pi * ordinal / 17.0 + phases[0])
        + 0.015 * math.sin(2 * math.pi * ordinal / 41.0 + phases[1])
    )
    daily = 1.0 + 0.015 * float(rng.standard_normal())
    # AR(1) across the day's slots with stationary standard deviation `noise`
    phi = 0.7
    shocks = rng.standard_normal(SLOTS_PER_DAY) * noise * math.sqrt(1.0 - phi * phi)
    ar = np.empty(SLOTS_PER_DAY)
    prev = float(rng.standard_normal()) * noise
    for i in range(SLOTS_PER_DAY):
        prev = phi * prev + float(shocks[i])
        ar[i] = prev
    factors = season * drift * daily * (1.0 + np.clip(ar, -0.5, 0.5))
    factors.setflags(write=False)
    return factors


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadProfile:
    """A load's shape, seeded: kW per slot of a day and kW at an instant.

    Attributes:
        shape: which shape.
        seed: the noise's seed (give each load its own, e.g. `stable_seed`
            of the park's seed and the asset id).
        noise: standard deviation of the per-slot noise, per unit (0 = none;
            the season and drift remain).
        timezone: the IANA zone whose clock the shape's hours are read on
            (the park's); live simulators place their instants in it.
    """

    shape: Shape
    seed: int = 0
    noise: float = 0.03
    timezone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise <= 0.25:
            raise ValueError(f"noise must be within 0..0.25, not {self.noise}")
        ZoneInfo(self.timezone)  # an unknown zone fails here, not in a running simulator

    @property
    def tz(self) -> ZoneInfo:
        """The zone of the shape's clock."""
        return ZoneInfo(self.timezone)

    def day_pu(self, day: date, day_type: DayType) -> NDArray[np.float64]:
        """``(96,)`` mean per-unit level of each 15-minute slot of the local ``day``."""
        factors = _day_factors(self.seed, day.toordinal(), self.noise, _SHAPES[self.shape].seasonal)
        return _curve_arrays(self.shape, day_type)[2] * factors

    def day_kw(self, day: date, day_type: DayType, nominal_kw: float) -> NDArray[np.float64]:
        """``(96,)`` mean kW of each 15-minute slot of the local ``day`` (never negative).

        Args:
            day: the local calendar day.
            day_type: its kind (the caller's calendar decides).
            nominal_kw: the load's nominal draw (a working day's daytime level).
        """
        return self.day_pu(day, day_type) * nominal_kw

    def kw_at(self, local: datetime, day_type: DayType, nominal_kw: float) -> float:
        """Power (kW) at the wall-clock time ``local`` (its date and clock fields are read).

        The slot's noise is held over the slot, so the mean of this over a
        slot is that slot's `day_kw` (the curve is linear between whole minutes).

        Args:
            local: a time on the profile's ``timezone`` clock.
            day_type: the kind of ``local``'s day.
            nominal_kw: the load's nominal draw.
        """
        hour = local.hour + local.minute / 60.0 + (local.second + local.microsecond / 1e6) / 3600.0
        slot = min(int(hour / _SLOT_H), SLOTS_PER_DAY - 1)
        hours, values, _ = _curve_arrays(self.shape, day_type)
        factors = _day_factors(
            self.seed, local.toordinal(), self.noise, _SHAPES[self.shape].seasonal
        )
        return float(np.interp(hour, hours, values)) * float(factors[slot]) * nominal_kw

    def kw_after(
        self,
        origin: datetime,
        seconds: float,
        nominal_kw: float,
        day_type: Callable[[date], DayType] = weekday_type,
    ) -> float:
        """Power (kW) ``seconds`` after the aware instant ``origin``: a live simulator's clock.

        The instant is placed on the profile's ``timezone`` clock and its day's
        kind asked of ``day_type`` (the caller's calendar). A simulated meter's
        base load, say, is ``lambda t: profile.kw_after(origin, t, base_kw)``.
        """
        when = (origin + timedelta(seconds=seconds)).astimezone(self.tz)
        return self.kw_at(when, day_type(when.date()), nominal_kw)


# --- PV -----------------------------------------------------------------------------------------


def pv_day_output_kw(
    day: date,
    rated_kw: float,
    *,
    seed: int,
    latitude: float = 23.1,
    longitude: float = 113.3,
    utc_offset_h: float = 8.0,
) -> NDArray[np.float64]:
    """``(96,)`` mean AC output of a PV array per slot of the local ``day``, kW (>= 0).

    Clear-sky output is ``0.85 x rated x sin(elevation)^1.15`` (0.85: a
    typical performance ratio; the exponent stands in for the air mass),
    the elevation from the solar declination, hour angle and equation of
    time at the array's position (default Guangzhou, UTC+8). Each day draws
    a clearness from the seed (about 60 % clear, 30 % broken cloud, 10 %
    overcast) and broken-cloud days add AR(1) noise per slot; the output is
    clipped to ``rated_kw`` (the inverter's limit).

    Args:
        day: the local day.
        rated_kw: the inverter's AC rating.
        seed: the array's seed.
        latitude: degrees north.
        longitude: degrees east.
        utc_offset_h: the local clock's offset from UTC (no daylight saving).
    """
    n = day.timetuple().tm_yday
    hours = (np.arange(24 * 4 * 3) + 0.5) / 12.0  # 5-minute midpoints
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + n) / 365.0)
    b = 2 * math.pi * (n - 81) / 364.0
    eot_h = (9.87 * math.sin(2 * b) - 7.53 * math.cos(b) - 1.5 * math.sin(b)) / 60.0
    solar = hours + (longitude - 15.0 * utc_offset_h) / 15.0 + eot_h
    hour_angle = np.radians(15.0 * (solar - 12.0))
    lat = math.radians(latitude)
    sin_el = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * np.cos(hour_angle)
    clear = 0.85 * np.power(np.clip(sin_el, 0.0, None), 1.15)
    clear = clear.reshape(SLOTS_PER_DAY, 3).mean(axis=1)

    rng = np.random.default_rng([seed & 0xFFFFFFFF, day.toordinal(), 1])
    sky = rng.uniform()
    if sky < 0.6:
        k, sd = rng.uniform(0.9, 1.0), 0.02
    elif sky < 0.9:
        k, sd = rng.uniform(0.55, 0.9), 0.2
    else:
        k, sd = rng.uniform(0.15, 0.4), 0.1
    cloud = np.empty(SLOTS_PER_DAY)
    prev = 0.0
    for i, shock in enumerate(rng.standard_normal(SLOTS_PER_DAY)):
        prev = 0.8 * prev + sd * 0.6 * float(shock)
        cloud[i] = prev
    out: NDArray[np.float64] = rated_kw * clear * k * np.clip(1.0 + cloud, 0.05, 1.3)
    return np.clip(out, 0.0, rated_kw)


# --- EV chargers --------------------------------------------------------------------------------


class EvPattern(StrEnum):
    """When the vehicles of a charger come (see the module docstring)."""

    WORKPLACE = "workplace"  #: staff cars: arrive 08:00-09:30 on working days
    DEPOT = "depot"  #: logistics vans: return 18:00-21:00, top up at noon


@dataclass(frozen=True, slots=True)
class _Arrivals:
    mean_h: float  # arrival time, local hours
    sd_h: float
    sessions: float  # expected sessions per charger and day
    energy_kwh: tuple[float, float]  # uniform range of the energy a vehicle takes
    stay_h: tuple[float, float]  # uniform range of how long it stays parked after it arrived


_A = _Arrivals
# Stays (assumptions): staff stay a working day (8.5-9.5 h), visitors 1-3 h,
# weekend and holiday drivers 2-5 h; depot vans stay the night (out at 06:00),
# the noon top-up lasts a lunch break (0.75-1.5 h).
_EV: dict[EvPattern, dict[DayType, tuple[_Arrivals, ...]]] = {
    EvPattern.WORKPLACE: {
        DayType.WORKDAY: (
            _A(8.6, 0.5, 0.9, (8.0, 30.0), (8.5, 9.5)),
            _A(13.5, 1.0, 0.3, (5.0, 15.0), (1.0, 3.0)),
        ),
        DayType.WEEKEND: (_A(10.0, 1.5, 0.25, (5.0, 20.0), (2.0, 5.0)),),
        DayType.HOLIDAY: (_A(11.0, 2.0, 0.1, (5.0, 20.0), (2.0, 5.0)),),
    },
    EvPattern.DEPOT: {
        DayType.WORKDAY: (
            _A(19.0, 1.2, 1.0, (25.0, 60.0), (11.0, 14.0)),
            _A(12.5, 0.7, 0.4, (10.0, 25.0), (0.75, 1.5)),
        ),
        DayType.WEEKEND: (_A(18.0, 1.5, 0.6, (20.0, 50.0), (10.0, 14.0)),),
        DayType.HOLIDAY: (_A(18.0, 2.0, 0.3, (20.0, 50.0), (10.0, 14.0)),),
    },
}
#: A vehicle leaves at most this long after it arrived, charged or not.
_MAX_STAY_H = 14.0
#: Vehicles arrive from 06:00 and leave by 06:00 the next day (vans go out in the
#: morning): a day's sessions never meet the next day's on one charger.
_FIRST_ARRIVAL_H = 6.0


@dataclass(frozen=True, slots=True)
class EvVisit:
    """One vehicle's visit to a charger, in local hours of the day it came (may pass 24).

    Attributes:
        arrival_h: when it plugged in (it came at or before this, and waited
            while the vehicle before it still held the charger); charging starts here.
        end_h: when its charging ended: it had its energy, had stayed 14 h, or
            it was 06:00 the next day.
        departure_h: when it unplugged and left, at or after ``end_h``: the
            end of its stay (drawn from the pattern's stays), but never after
            14 h, 06:00 the next day or the next vehicle's plug-in.
        kw: its charging power.
        wanted_kwh: the energy it came for (it leaves with less when cut short).
    """

    arrival_h: float
    end_h: float
    departure_h: float
    kw: float
    wanted_kwh: float

    @property
    def energy_kwh(self) -> float:
        """The energy it took, kWh."""
        return self.kw * (self.end_h - self.arrival_h)


def ev_visits(
    day: date, day_type: DayType, *, max_kw: float, pattern: EvPattern, seed: int
) -> list[EvVisit]:
    """The visits whose charging starts on ``day``, by arrival (what `ev_day_kw` draws).

    Each charges at full power from its ``arrival_h`` to its ``end_h``; the
    departures come from their own seeded stream, so the charging (and
    `ev_day_kw`) is the same with or without them. Args as `ev_day_kw`.
    """
    rng = np.random.default_rng([seed & 0xFFFFFFFF, day.toordinal(), 2])
    wanted: list[tuple[float, float, tuple[float, float]]] = []
    for arrivals in _EV[pattern][day_type]:
        for _ in range(int(rng.poisson(arrivals.sessions))):
            mean, sd = arrivals.mean_h, arrivals.sd_h
            at = float(np.clip(rng.normal(mean, sd), _FIRST_ARRIVAL_H, 23.75))
            wanted.append((at, float(rng.uniform(*arrivals.energy_kwh)), arrivals.stay_h))
    stays = np.random.default_rng([seed & 0xFFFFFFFF, day.toordinal(), 6])
    runs: list[tuple[float, float, float, float, float]] = []  # at, start, end, kW, wanted
    leave: list[float] = []
    free_at = 0.0
    for at, energy, stay_h in sorted(wanted):
        # A DC charger is limited by the vehicle's acceptance; an AC one rarely is.
        kw = max_kw if max_kw <= 11.0 else max_kw * float(rng.uniform(0.6, 1.0))
        start = max(at, free_at)  # one vehicle at a time: the next one waits
        if start >= 24.0:
            break
        cap = min(at + _MAX_STAY_H, 24.0 + _FIRST_ARRIVAL_H)
        end = min(start + energy / kw, cap)
        if end > start:
            runs.append((at, start, end, kw, energy))
            leave.append(min(at + float(stays.uniform(*stay_h)), cap))
            free_at = end
    out: list[EvVisit] = []
    for i, (_, start, end, kw, energy) in enumerate(runs):
        # it gives the plug up when the next vehicle takes it, and never before it is done
        departure = min(leave[i], runs[i + 1][1]) if i + 1 < len(runs) else leave[i]
        out.append(EvVisit(start, end, max(departure, end), kw, energy))
    return out


def _sessions(
    day: date, day_type: DayType, *, max_kw: float, pattern: EvPattern, seed: int
) -> list[tuple[float, float, float]]:
    """The charging sessions that start on ``day``: ``(start h, end h, kW)``, end may pass 24."""
    visits = ev_visits(day, day_type, max_kw=max_kw, pattern=pattern, seed=seed)
    return [(v.arrival_h, v.end_h, v.kw) for v in visits]


def ev_day_kw(
    day: date,
    day_type: DayType,
    *,
    previous: DayType,
    max_kw: float,
    pattern: EvPattern,
    seed: int,
) -> NDArray[np.float64]:
    """``(96,)`` mean kW a charger draws in each slot of the local ``day`` (>= 0).

    Sessions start on ``day`` at times drawn from ``pattern`` for its
    ``day_type`` (a Poisson number of vehicles, normal arrival times, uniform
    energy, arrivals from 06:00), one vehicle at a time, charging at full
    power (a DC charger at the vehicle's acceptance, 60-100 % of ``max_kw``)
    until it has its energy, has stayed 14 h or it is 06:00 the next day; a
    session of the day before that runs past midnight (an evening van)
    carries on into this one.

    Args:
        day: the local day.
        day_type: its kind.
        previous: the kind of the day before.
        max_kw: the charger's power limit.
        pattern: when its vehicles come.
        seed: the charger's seed.
    """
    edges = np.arange(SLOTS_PER_DAY + 1) * _SLOT_H
    kw = np.zeros(SLOTS_PER_DAY)
    yesterday = date.fromordinal(day.toordinal() - 1)
    runs: Sequence[tuple[float, float, float]] = [
        (s - 24.0, e - 24.0, p)
        for s, e, p in _sessions(yesterday, previous, max_kw=max_kw, pattern=pattern, seed=seed)
    ] + _sessions(day, day_type, max_kw=max_kw, pattern=pattern, seed=seed)
    for start, end, power in runs:
        overlap = np.clip(np.minimum(edges[1:], end) - np.maximum(edges[:-1], start), 0.0, None)
        kw += power * overlap / _SLOT_H
    return kw
