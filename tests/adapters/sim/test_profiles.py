"""Load shapes: the documented day-type differences, determinism per seed, physical bounds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from adapters.sim.profiles import (
    SLOTS_PER_DAY,
    DayType,
    EvPattern,
    LoadProfile,
    Shape,
    ev_day_kw,
    pv_day_output_kw,
    stable_seed,
    weekday_type,
)

DAY = date(2026, 11, 25)  # a Wednesday
WORK, WEEKEND, HOLIDAY = DayType.WORKDAY, DayType.WEEKEND, DayType.HOLIDAY


def slot(hour: float) -> int:
    return int(hour * 4)


def test_weekday_type_knows_weekends_only() -> None:
    assert [weekday_type(DAY + timedelta(days=i)) for i in range(7)] == [WORK] * 3 + [
        WEEKEND
    ] * 2 + [WORK] * 2
    assert weekday_type(date(2026, 10, 1)) is WORK  # National Day: the caller's calendar knows


@pytest.mark.parametrize(
    ("shape", "hour", "work", "weekend", "holiday"),
    [
        # two-shift factory: 08:00-24:00 shifts at 1.0, Saturday day shift 0.6, holiday 0.2
        (Shape.TWO_SHIFT, 14.0, 1.0, 0.6, 0.2),
        (Shape.TWO_SHIFT, 20.0, 0.95, 0.30, 0.2),
        (Shape.TWO_SHIFT, 3.0, 0.30, 0.30, 0.2),
        # office HVAC: occupied 08:30-18:00 (afternoon peak), weekend 0.3 from 10:00, holiday 0.1
        (Shape.OFFICE_HVAC, 14.5, 1.0, 0.3, 0.1),
        (Shape.OFFICE_HVAC, 3.0, 0.12, 0.12, 0.1),
        # cold store: the morning dispatch on top of the ambient curve (0.12 / 0.05 / none)
        (Shape.COLD_STORE, 7.0, 0.812 + 0.12, 0.812 + 0.05, 0.812),
        (Shape.COLD_STORE, 15.0, 0.95, 0.95, 0.95),
        # continuous: the same every day
        (Shape.CONTINUOUS, 14.5, 1.0, 1.0, 1.0),
    ],
)
def test_day_types_differ_as_documented(
    shape: Shape, hour: float, work: float, weekend: float, holiday: float
) -> None:
    # Without slot noise the day's level factor is common to all three day types.
    profile = LoadProfile(shape=shape, seed=7, noise=0.0)
    at = datetime.combine(DAY, datetime.min.time()) + timedelta(hours=hour)
    level = profile.kw_at(at, WORK, 1.0) / work
    for day_type, expected in ((WEEKEND, weekend), (HOLIDAY, holiday)):
        assert profile.kw_at(at, day_type, 1.0) == pytest.approx(expected * level, rel=1e-3)
    assert 0.8 < level < 1.2  # season x drift x daily noise stay near 1


def test_a_two_shift_working_day_has_its_shifts_and_a_quiet_night() -> None:
    kw = LoadProfile(shape=Shape.TWO_SHIFT, seed=1).day_kw(DAY, WORK, 400.0)
    night, shifts = kw[: slot(7.5)], kw[slot(8.25) : slot(23.5)]
    assert night.mean() == pytest.approx(0.3 * 400.0, rel=0.15)
    assert shifts.mean() > 2.5 * night.mean()
    assert kw[slot(12.25)] < 0.85 * kw[slot(11.0)]  # the lunch break


def test_the_same_seed_gives_the_same_values_and_another_seed_other_ones() -> None:
    a = LoadProfile(shape=Shape.OFFICE_HVAC, seed=stable_seed(42, "ahu-04"))
    b = LoadProfile(shape=Shape.OFFICE_HVAC, seed=stable_seed(42, "ahu-04"))
    c = LoadProfile(shape=Shape.OFFICE_HVAC, seed=stable_seed(42, "ahu-05"))
    assert np.array_equal(a.day_kw(DAY, WORK, 150.0), b.day_kw(DAY, WORK, 150.0))
    assert not np.allclose(a.day_kw(DAY, WORK, 150.0), c.day_kw(DAY, WORK, 150.0))
    assert stable_seed("x") == stable_seed("x") != stable_seed("y")


@pytest.mark.parametrize("shape", list(Shape))
def test_loads_are_never_negative_even_with_the_most_noise(shape: Shape) -> None:
    profile = LoadProfile(shape=shape, seed=3, noise=0.25)
    for i in range(60):
        for day_type in DayType:
            kw = profile.day_kw(DAY + timedelta(days=i), day_type, 100.0)
            assert kw.shape == (SLOTS_PER_DAY,)
            assert (kw >= 0).all()


def test_an_instants_power_averages_to_its_slot_over_the_slot() -> None:
    # what makes a live load's intervals look like its history
    profile = LoadProfile(shape=Shape.TWO_SHIFT, seed=5)
    day_kw = profile.day_kw(DAY, WORK, 900.0)
    start = datetime.combine(DAY, datetime.min.time())
    for s in (slot(7.75), slot(12.0), slot(16.0), slot(23.75)):
        minutes = [start + timedelta(minutes=15 * s + m + 0.5) for m in range(15)]
        live = np.mean([profile.kw_at(t, WORK, 900.0) for t in minutes])
        assert live == pytest.approx(day_kw[s], rel=1e-9)


def test_office_cooling_is_higher_in_summer_than_in_winter() -> None:
    profile = LoadProfile(shape=Shape.OFFICE_HVAC, seed=2, noise=0.0)
    july = profile.day_kw(date(2026, 7, 22), WORK, 100.0).sum()
    january = profile.day_kw(date(2026, 1, 21), WORK, 100.0).sum()
    assert july > 1.4 * january


def test_a_profile_refuses_an_unknown_zone_or_wild_noise() -> None:
    with pytest.raises(ValueError, match="noise"):
        LoadProfile(shape=Shape.TWO_SHIFT, noise=0.5)
    with pytest.raises(Exception, match="Mars"):
        LoadProfile(shape=Shape.TWO_SHIFT, timezone="Mars/Olympus")


def test_pv_follows_the_sun_within_its_rating() -> None:
    for i in range(30):
        day = date(2026, 6, 1) + timedelta(days=i)
        kw = pv_day_output_kw(day, 800.0, seed=9)
        assert (kw >= 0).all() and (kw <= 800.0).all()
        assert kw[: slot(5.0)].max() == 0.0 and kw[slot(20.0) :].max() == 0.0  # night
        assert slot(10.0) <= int(np.argmax(kw)) <= slot(15.0)
    assert np.array_equal(
        pv_day_output_kw(DAY, 800.0, seed=9), pv_day_output_kw(DAY, 800.0, seed=9)
    )
    # the clearest of a month's days: a summer noon is higher than a winter one
    june = max(pv_day_output_kw(date(2026, 6, d), 1000.0, seed=1).max() for d in range(1, 29))
    december = max(pv_day_output_kw(date(2026, 12, d), 1000.0, seed=1).max() for d in range(1, 29))
    assert june > december > 0.4 * 1000.0


def test_ev_charging_stays_within_the_charger_and_follows_its_arrivals() -> None:
    def energy(pattern: EvPattern, day_type: DayType, hours: tuple[float, float]) -> float:
        total = 0.0
        for seed in range(200):
            kw = ev_day_kw(
                DAY, day_type, previous=day_type, max_kw=60.0, pattern=pattern, seed=seed
            )
            assert (kw >= 0).all() and (kw <= 60.0 + 1e-9).all()
            total += kw[slot(hours[0]) : slot(hours[1])].sum() / 4
        return total / 200

    # staff cars charge in the morning on working days, hardly at all on holidays
    assert energy(EvPattern.WORKPLACE, WORK, (8.0, 12.0)) > 10.0
    assert energy(EvPattern.WORKPLACE, HOLIDAY, (0.0, 24.0)) < 0.2 * energy(
        EvPattern.WORKPLACE, WORK, (0.0, 24.0)
    )
    # depot vans charge in the evening, and not before 06:00 on their day of arrival
    assert energy(EvPattern.DEPOT, WORK, (18.0, 24.0)) > energy(EvPattern.DEPOT, WORK, (6.0, 12.0))


def test_an_evening_session_runs_on_past_midnight() -> None:
    spilled = 0.0
    for seed in range(50):
        kw = ev_day_kw(DAY, HOLIDAY, previous=WORK, max_kw=7.0, pattern=EvPattern.DEPOT, seed=seed)
        spilled += kw[: slot(6.0)].sum()
        # a 7 kW charger: one vehicle at a time, and everyone gone by 06:00
        assert kw.max() <= 7.0 + 1e-9
    assert spilled > 0  # vans that came back late yesterday still charge after midnight


def test_a_live_clock_reads_the_profile_on_its_local_clock() -> None:
    profile = LoadProfile(shape=Shape.TWO_SHIFT, seed=4)
    origin = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai, a Wednesday
    local = datetime(2026, 11, 25, 14, 0)
    assert profile.kw_after(origin, 0.0, 100.0) == profile.kw_at(local, WORK, 100.0)
    saturday = 3 * 86400.0
    assert profile.kw_after(origin, saturday, 100.0) == profile.kw_at(
        local + timedelta(days=3), WEEKEND, 100.0
    )
    assert profile.kw_after(origin, 0.0, 100.0, lambda _: HOLIDAY) == profile.kw_at(
        local, HOLIDAY, 100.0
    )
