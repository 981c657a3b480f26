import numpy as np
import pytest

from dispatch import (
    DayHistory,
    HighXOfY,
    RecentAverage,
    adjustment_ratio,
    highest_days,
    mean_of_days,
    pre_event_baseline,
    recent_days,
    same_day_adjusted,
)


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
    assert RecentAverage(n=2, working=False)(_history()) == pytest.approx(np.full(4, 65.0))


def test_fewer_days_than_asked_is_an_error_not_a_shorter_average() -> None:
    # only two non-working days (indices 5, 6): never a mean of two when five are asked
    with pytest.raises(ValueError, match="2 eligible non-working days in the history, 5 needed"):
        RecentAverage(n=5, working=False)(_history())
    with pytest.raises(ValueError, match="2 eligible non-working days"):
        HighXOfY(x=3, y=5, working=False)(_history())


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


def test_the_vectorised_primitives_choose_per_series() -> None:
    # two series, four days newest first; series 1 cannot use day 0
    eligible = np.array([[True, True, True, True], [False, True, True, True]])
    assert recent_days(eligible, 2).tolist() == [
        [True, True, False, False],
        [False, True, True, False],
    ]
    score = np.array([[1.0, 5.0, 3.0, 9.0], [9.0, np.nan, 2.0, 1.0]])
    # series 0: of the 3 most recent (scores 1, 5, 3) the 2 highest; series 1: of days
    # 1-3 the day with no score ranks last
    assert highest_days(eligible, score, 2, 3).tolist() == [
        [False, True, True, False],
        [False, False, True, True],
    ]
    loads = np.array([[[1.0, 2.0], [3.0, np.nan], [5.0, 6.0], [7.0, 8.0]]] * 2)
    chosen = np.array([[True, True, False, False], [False, False, False, False]])
    means = mean_of_days(loads, chosen)
    assert means[0].tolist() == [2.0, 2.0]  # the missing value is skipped, not zero
    assert np.isnan(means[1]).all()  # nothing chosen: no data


def test_adjustment_ratio_is_capped_and_needs_data() -> None:
    actual = np.array([[150.0, 150.0], [50.0, 50.0], [np.nan, np.nan], [110.0, np.nan]])
    base = np.array([[100.0, 100.0], [100.0, 100.0], [100.0, 100.0], [100.0, 100.0]])
    ratio, raw = adjustment_ratio(actual, base, 0.2)
    assert ratio[[0, 1, 3]].tolist() == pytest.approx([1.2, 0.8, 1.1])
    assert raw[[0, 1, 3]].tolist() == pytest.approx([1.5, 0.5, 1.1])
    assert np.isnan(ratio[2]) and np.isnan(raw[2])
