import numpy as np
import pytest

from dispatch import DayHistory, HighXOfY, RecentAverage, pre_event_baseline, same_day_adjusted


def _history() -> DayHistory:
    # day d has a flat load of 10 * (d + 1) kW over 4 intervals
    loads = np.repeat(10.0 * np.arange(1, 13)[:, None], 4, axis=1)
    working = np.ones(12, dtype=bool)
    working[[5, 6]] = False
    event = np.zeros(12, dtype=bool)
    event[10] = True
    return DayHistory(loads_kw=loads, working=working, event=event)


def test_recent_average_skips_event_and_non_working_days() -> None:
    # eligible working days, most recent last: ..., 7, 8, 9, 11 (index 10 is an event day)
    base = RecentAverage(n=3)(_history())
    assert base == pytest.approx(np.full(4, (90 + 100 + 120) / 3))


def test_high_x_of_y() -> None:
    # the last 5 eligible days are indices 4, 7, 8, 9, 11 -> loads 50, 80, 90, 100, 120
    base = HighXOfY(x=2, y=5)(_history())
    assert base == pytest.approx(np.full(4, 110.0))


def test_non_working_day_baseline() -> None:
    assert RecentAverage(n=5, working=False)(_history()) == pytest.approx(np.full(4, 65.0))


def test_same_day_adjustment_is_capped() -> None:
    base = np.full(8, 100.0)
    actual = np.full(8, 150.0)
    assert same_day_adjusted(base, actual, slice(0, 4)) == pytest.approx(np.full(8, 120.0))
    actual = np.full(8, 90.0)
    assert same_day_adjusted(base, actual, slice(0, 4)) == pytest.approx(np.full(8, 90.0))
    assert same_day_adjusted(base, actual, slice(0, 4), cap=0.05) == pytest.approx(np.full(8, 95.0))


def test_pre_event_baseline() -> None:
    assert pre_event_baseline(np.array([1.0, 2.0, 4.0]), 3, last=2) == pytest.approx(
        [3.0, 3.0, 3.0]
    )


def test_no_eligible_day_is_an_error() -> None:
    h = _history()
    h2 = DayHistory(loads_kw=h.loads_kw, working=h.working, event=np.ones(12, dtype=bool))
    with pytest.raises(ValueError):
        RecentAverage()(h2)
