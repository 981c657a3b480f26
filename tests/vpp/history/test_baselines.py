"""Historical baselines (similar days, high X of Y), hand-computed, and their loader on Redis.

Calendar facts used (State Council notice for 2026, via chinesecalendar):
National Day 2026-10-01 (Thu) .. 10-07 (Wed) off; Saturday 10-10 and Sunday
09-20 are adjusted working days; Mid-autumn 09-25 (Fri) .. 09-27 off.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from vpp.events import EventKind, EventRequest, EventState, EventStore
from vpp.history.baselines import (
    HISTORICAL_METHODS,
    Baseline,
    BaselineResult,
    HistoricalMethod,
    HistoryTooShort,
    compute_baselines,
    event_days,
    load_baselines,
)
from vpp.history.grid import INTERVAL_S, SLOTS_PER_DAY, DayVector
from vpp.history.store import HistoryStore
from vpp.model import BaselineAdjustment, BaselineSettings, Park
from vpp.state import State

TZ = ZoneInfo("Asia/Shanghai")
SLOT_H = INTERVAL_S / 3600


def vec(kw: float | np.ndarray, coverage: float = 1.0) -> DayVector:
    """A day at ``kw`` (flat, or per slot) over ``coverage`` of every slot."""
    power = np.broadcast_to(np.asarray(kw, dtype=np.float64), (SLOTS_PER_DAY,))
    cov = np.full(SLOTS_PER_DAY, coverage)
    return DayVector(power * cov * SLOT_H, cov, np.zeros(SLOTS_PER_DAY, dtype=bool))


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=TZ)


def settings(**kw: object) -> BaselineSettings:
    base: dict[str, object] = {"days": 3, "x": 2, "y": 4, "adjustment": None}
    return BaselineSettings.model_validate(base | kw)


def one(
    history: Mapping[date, DayVector],
    method: HistoricalMethod = "similar_days",
    *,
    start: datetime,
    interval_s: int = 900,
    n: int = 8,
    cfg: BaselineSettings | None = None,
    events: frozenset[date] = frozenset(),
    now: datetime | None = None,
) -> BaselineResult:
    out = compute_baselines(
        {"m1": history},
        method,
        cfg or settings(),
        start=start,
        interval_s=interval_s,
        n=n,
        tz=TZ,
        event_days=events,
        now=now,
    )
    return out["m1"]


def ok(result: BaselineResult) -> Baseline:
    assert isinstance(result, Baseline), result
    return result


MON = date(2026, 10, 12)  # an ordinary Monday after National Day


def october() -> dict[date, DayVector]:
    """Flat days: the adjusted working Saturday 100 kW, Fri 90, Thu 80, the holiday 500, ..."""
    days = {
        date(2026, 10, 11): vec(999),  # Sunday: not similar to a Monday
        date(2026, 10, 10): vec(100),  # Saturday, adjusted working day: similar
        date(2026, 10, 9): vec(90),
        date(2026, 10, 8): vec(80),
        date(2026, 9, 30): vec(70),
        date(2026, 9, 29): vec(60),
    }
    for i in range(1, 8):  # the National Day holiday, weekdays included
        days[date(2026, 10, i)] = vec(500)
    return days


# -- similar days ------------------------------------------------------------


def test_similar_days_takes_the_adjusted_working_day_and_skips_the_holiday() -> None:
    result = ok(one(october(), start=at(MON, 14)))
    assert result.days == (date(2026, 10, 10), date(2026, 10, 9), date(2026, 10, 8))
    np.testing.assert_allclose(result.kw, np.full(8, (100 + 90 + 80) / 3))
    assert result.adjustment is None and result.calendar_known and result.complete
    assert "2026-10-12 working day" in result.note and "no same-day adjustment (off)" in result.note


def test_similar_days_of_a_holiday_are_non_working_days_including_a_weekday_holiday() -> None:
    # before Thursday 10-01 (a holiday): Sun 09-27, Sat 09-26 and Fri 09-25 (Mid-autumn) are
    # non-working; Sunday 09-20 was worked and is not
    history = {
        date(2026, 9, 28): vec(1000),  # Monday, working
        date(2026, 9, 27): vec(30),
        date(2026, 9, 26): vec(20),
        date(2026, 9, 25): vec(10),
        date(2026, 9, 20): vec(1000),
        date(2026, 9, 19): vec(40),
    }
    result = ok(one(history, start=at(date(2026, 10, 1), 10)))
    assert result.days == (date(2026, 9, 27), date(2026, 9, 26), date(2026, 9, 25))
    np.testing.assert_allclose(result.kw, 20.0)
    assert "2026-10-01 non-working day (National Day)" in result.note


def test_an_event_day_is_left_out() -> None:
    result = ok(one(october(), start=at(MON, 14), events=frozenset({date(2026, 10, 9)})))
    assert result.days == (date(2026, 10, 10), date(2026, 10, 8), date(2026, 9, 30))
    np.testing.assert_allclose(result.kw, (100 + 80 + 70) / 3)


def test_a_day_below_the_coverage_threshold_is_left_out() -> None:
    history = october()
    history[date(2026, 10, 8)] = vec(80, coverage=0.85)  # below 0.9
    history[date(2026, 10, 9)] = vec(90, coverage=0.95)  # above: its mean over what it covers
    result = ok(one(history, start=at(MON, 14)))
    assert result.days == (date(2026, 10, 10), date(2026, 10, 9), date(2026, 9, 30))
    np.testing.assert_allclose(result.kw, (100 + 90 + 70) / 3)


def test_too_short_a_history_is_a_reason_not_a_shorter_average() -> None:
    history = {d: v for d, v in october().items() if d >= date(2026, 10, 1)}
    result = one(history, start=at(MON, 14), cfg=settings(days=5))
    assert isinstance(result, HistoryTooShort)
    assert result.reason.startswith("3 of the 5 working days needed")
    assert result.days == (date(2026, 10, 10), date(2026, 10, 9), date(2026, 10, 8))
    assert not result.complete


def test_the_lookback_bounds_the_candidates() -> None:
    # 09-29 and 09-30 lie 12 and 13 days before the Monday: outside a 10-day lookback
    result = one(october(), start=at(MON, 14), cfg=settings(days=4, lookback_days=10))
    assert (
        isinstance(result, HistoryTooShort) and "in the 10 days before 2026-10-12" in result.reason
    )


# -- high X of Y -------------------------------------------------------------


def test_high_x_of_y_ranks_the_days_on_the_event_hours() -> None:
    peaky = np.full(SLOTS_PER_DAY, 10.0)
    peaky[56:64] = 200.0  # 14:00-16:00
    history = october()
    history[date(2026, 10, 9)] = vec(peaky)  # lowest whole-day energy, highest event hours
    history[date(2026, 10, 8)] = vec(150)
    result = ok(one(history, "high_x_of_y", start=at(MON, 14)))
    # the 4 most recent working days: 10-10 (100), 10-09 (200 in the event), 10-08 (150), 09-30
    assert result.considered == (
        date(2026, 10, 10),
        date(2026, 10, 9),
        date(2026, 10, 8),
        date(2026, 9, 30),
    )
    assert result.days == (date(2026, 10, 9), date(2026, 10, 8))
    np.testing.assert_allclose(result.kw, (200 + 150) / 2)
    assert result.complete and "2 highest (mean load over the event hours) of the 4" in result.note


def test_high_x_of_y_with_x_but_fewer_than_y_days_says_so() -> None:
    history = {d: v for d, v in october().items() if d >= date(2026, 10, 1)}
    result = ok(one(history, "high_x_of_y", start=at(MON, 14)))
    assert result.days == (date(2026, 10, 10), date(2026, 10, 9))
    assert not result.complete and "only 3 candidate days found" in result.note
    short = one(history, "high_x_of_y", start=at(MON, 14), cfg=settings(x=4, y=6))
    assert isinstance(short, HistoryTooShort)
    assert short.reason.startswith("3 of the 4 working days needed")


# -- same-day adjustment -----------------------------------------------------


def adjusted(actual: np.ndarray | None, now: datetime | None = None) -> Baseline:
    history = {d: vec(100) for d in (date(2026, 10, 8), date(2026, 10, 9), date(2026, 10, 10))}
    if actual is not None:
        history[MON] = vec(actual)
    cfg = settings(adjustment=BaselineAdjustment(hours=2, cap=0.2))
    return ok(one(history, start=at(MON, 14), cfg=cfg, now=now))


def test_the_adjustment_is_capped_both_ways() -> None:
    up = adjusted(np.full(SLOTS_PER_DAY, 150.0))
    assert up.adjustment == pytest.approx(1.2)
    np.testing.assert_allclose(up.kw, 120.0)
    assert "capped at 1 ± 0.2" in up.note and "= 1.500" in up.note
    down = adjusted(np.full(SLOTS_PER_DAY, 50.0))
    assert down.adjustment == pytest.approx(0.8)
    np.testing.assert_allclose(down.kw, 80.0)
    inside = adjusted(np.full(SLOTS_PER_DAY, 110.0))
    assert inside.adjustment == pytest.approx(1.1) and "capped" not in inside.note
    np.testing.assert_allclose(inside.kw, 110.0)


def test_the_adjustment_reads_only_the_window_and_what_has_closed() -> None:
    actual = np.full(SLOTS_PER_DAY, 1000.0)  # outside 12:00-14:00: not read
    actual[48:50] = 105.0  # 12:00-12:30
    actual[50:56] = 90.0  # 12:30-14:00
    # at 12:40 only 12:00-12:30 has closed: 105 / 100
    assert adjusted(actual, now=at(MON, 12, 40)).adjustment == pytest.approx(1.05)
    # after the start the whole window counts: (2 * 105 + 6 * 90) / 800
    assert adjusted(actual, now=at(MON, 14)).adjustment == pytest.approx(750 / 800)


def test_no_data_in_the_adjustment_window_means_no_adjustment_and_says_so() -> None:
    missing = adjusted(None)
    assert missing.adjustment is None
    np.testing.assert_allclose(missing.kw, 100.0)
    assert "no same-day adjustment: no metered data in the 2 h before the start" in missing.note
    early = adjusted(np.full(SLOTS_PER_DAY, 150.0), now=at(MON, 11))
    assert early.adjustment is None and "had closed" in early.note


# -- event intervals ---------------------------------------------------------


def ramp_history() -> dict[date, DayVector]:
    """Three working days whose load in slot i is i kW."""
    ramp = np.arange(SLOTS_PER_DAY, dtype=np.float64)
    return {d: vec(ramp) for d in (date(2026, 10, 8), date(2026, 10, 9), date(2026, 10, 10))}


def test_resampled_to_5_minute_intervals_each_takes_its_slot() -> None:
    result = ok(one(ramp_history(), start=at(MON, 14), interval_s=300, n=6))
    np.testing.assert_allclose(result.kw, [56, 56, 56, 57, 57, 57])


def test_resampled_to_60_minute_intervals_each_is_the_mean_of_its_slots() -> None:
    result = ok(one(ramp_history(), start=at(MON, 14), interval_s=3600, n=2))
    np.testing.assert_allclose(result.kw, [57.5, 61.5])


def test_an_interval_off_the_slot_grid_is_time_weighted() -> None:
    # 14:05-14:20: 10 minutes of slot 56, 5 of slot 57
    result = ok(one(ramp_history(), start=at(MON, 14, 5), interval_s=900, n=1))
    np.testing.assert_allclose(result.kw, [(2 * 56 + 57) / 3])


def test_a_window_across_midnight_takes_each_day_from_its_own_similar_days() -> None:
    # Saturday 10-10 23:00 (an adjusted working day) to Sunday 10-11 01:00 (non-working)
    history = {
        date(2026, 10, 9): vec(100),
        date(2026, 10, 8): vec(110),
        date(2026, 10, 7): vec(40),  # National Day: non-working
        date(2026, 10, 6): vec(50),
        date(2026, 10, 5): vec(60),  # left out: N = 2
    }
    result = ok(
        one(history, start=at(date(2026, 10, 10), 23), interval_s=3600, n=2, cfg=settings(days=2))
    )
    np.testing.assert_allclose(result.kw, [105.0, 45.0])
    assert result.days == (
        date(2026, 10, 9),
        date(2026, 10, 8),
        date(2026, 10, 7),
        date(2026, 10, 6),
    )
    assert "2026-10-10 working day (adjusted, National Day)" in result.note
    assert "2026-10-11 non-working day" in result.note


def test_a_year_the_calendar_does_not_know_is_reported() -> None:
    # 2099: typed Mon-Fri by the fallback; Monday 2099-01-05, candidates Fri 01-02, Thu 01-01
    history = {date(2099, 1, d): vec(10.0 * d) for d in range(1, 5)}
    result = ok(one(history, start=at(date(2099, 1, 5), 9), cfg=settings(days=2)))
    assert result.days == (date(2099, 1, 2), date(2099, 1, 1))  # New Year's Day not known
    np.testing.assert_allclose(result.kw, 15.0)
    assert not result.calendar_known
    assert "Mon-Fri fallback" in result.note and "does not know some of the days" in result.note


def test_many_series_at_once_match_each_alone() -> None:
    rng = np.random.default_rng(7)
    days = [date(2026, 10, 12) - timedelta(days=k) for k in range(1, 21)]
    history = {
        f"s{i}": {d: vec(rng.uniform(0, 100, SLOTS_PER_DAY), rng.choice([0.5, 1.0])) for d in days}
        for i in range(12)
    }
    cfg = settings(adjustment=BaselineAdjustment(hours=1, cap=0.1))
    for method in HISTORICAL_METHODS:
        together = compute_baselines(
            history,
            method,
            cfg,
            start=at(MON, 0, 30),
            interval_s=600,
            n=9,
            tz=TZ,
        )
        for name, series in history.items():
            alone = compute_baselines(
                {name: series},
                method,
                cfg,
                start=at(MON, 0, 30),
                interval_s=600,
                n=9,
                tz=TZ,
            )[name]
            both = together[name]
            assert type(alone) is type(both)
            if isinstance(alone, Baseline) and isinstance(both, Baseline):
                np.testing.assert_allclose(both.kw, alone.kw)
                assert both.days == alone.days
                assert both.adjustment == pytest.approx(alone.adjustment)


# -- event days and the loader on Redis ---------------------------------------


async def make_event(
    events: EventStore, park: str, ident: str, start: datetime, minutes: int, *states: EventState
) -> None:
    request = EventRequest(
        id=ident, kind=EventKind.PEAK_SHAVING, start=start, target_kw=100, duration_minutes=minutes
    )
    await events.create(park, request, start - timedelta(hours=1))
    for k, state in enumerate(states):
        await events.transition(park, ident, state, start + timedelta(minutes=10 * k))


async def test_event_days_are_the_days_events_ran(state: State) -> None:
    events = EventStore(state)
    park = "p-ev"
    await make_event(
        events, park, "done", at(date(2026, 10, 8), 14), 60, EventState.ACTIVE, EventState.COMPLETED
    )
    # across midnight: both days
    await make_event(
        events,
        park,
        "night",
        at(date(2026, 10, 9), 23),
        120,
        EventState.ACTIVE,
        EventState.COMPLETED,
    )
    # cancelled before it started: its day stays a candidate
    await make_event(events, park, "never", at(date(2026, 10, 13), 14), 60, EventState.CANCELLED)
    # cancelled 10 minutes after it became active, before it reached the next day
    await make_event(
        events,
        park,
        "cut",
        at(date(2026, 10, 14), 23, 40),
        120,
        EventState.ACTIVE,
        EventState.CANCELLED,
    )
    # started before the range, reaches into it
    await make_event(
        events,
        park,
        "long",
        at(date(2026, 9, 30), 20),
        24 * 60,
        EventState.ACTIVE,
        EventState.COMPLETED,
    )
    got = await event_days(events, park, date(2026, 10, 1), date(2026, 10, 31), TZ)
    assert got == {
        date(2026, 10, 1),
        date(2026, 10, 8),
        date(2026, 10, 9),
        date(2026, 10, 10),
        date(2026, 10, 14),
    }


async def test_load_baselines_reads_the_history_and_the_event_days(state: State) -> None:
    store = HistoryStore(state, retention_days=400)
    events = EventStore(state)
    park = Park(
        id="p-cbl",
        baseline=settings(
            days=3, adjustment=BaselineAdjustment(hours=1, cap=0.3), lookback_days=60
        ),
    )
    monday = date(2026, 11, 23)
    full: dict[str, dict[date, DayVector]] = {"m1": {}, "m2": {}, "m3": {}}
    for k in range(1, 50):
        day = monday - timedelta(days=k)
        full["m1"][day] = vec(100 + k)
        if k > 30:  # m2 has only old history: found by reading further back
            full["m2"][day] = vec(200 + k)
        # m3 has no history at all
    full["m1"][monday] = vec(130)  # the event day's own readings, for the adjustment
    for series, days in full.items():
        await store.put_days(
            park.id, series, {d: (v.energy_kwh).tolist() for d, v in days.items()}, tz=TZ
        )
    await make_event(events, park.id, "e1", at(monday - timedelta(days=1), 14), 60)  # Sunday: no
    await make_event(
        events, park.id, "e2", at(monday - timedelta(days=3), 14), 60, EventState.ACTIVE
    )  # Friday 11-20 ran
    start = at(monday, 14)
    got = await load_baselines(
        store, events, park, ["m1", "m2", "m3"], "similar_days",
        start=start, interval_s=900, n=4, now=start,
    )  # fmt: skip
    m1 = ok(got["m1"])
    # working days before Monday 11-23 without the event Friday: Thu 19 (k=4), Wed 18, Tue 17
    assert m1.days == (date(2026, 11, 19), date(2026, 11, 18), date(2026, 11, 17))
    assert m1.adjustment == pytest.approx(130 / 105)
    np.testing.assert_allclose(m1.kw, 130.0)
    m2 = ok(got["m2"])
    assert m2.days == (date(2026, 10, 23), date(2026, 10, 22), date(2026, 10, 21))  # k = 31..33
    assert m2.adjustment is None and "no metered data" in m2.note
    assert isinstance(got["m3"], HistoryTooShort)
    assert got["m3"].reason.startswith("0 of the 3 working days needed in the 60 days")
    # the same as computing over the whole history at once
    whole = compute_baselines(
        full, "similar_days", park.baseline, start=start, interval_s=900, n=4, tz=TZ,
        event_days={date(2026, 11, 20)}, now=start,
    )  # fmt: skip
    for name in ("m1", "m2"):
        expect = ok(whole[name])
        np.testing.assert_allclose(ok(got[name]).kw, expect.kw)
        assert ok(got[name]).days == expect.days
