"""The load model: a weekly shape recovered, a holiday forecast as a rest day, short history."""

from __future__ import annotations

from datetime import date, datetime, time

import numpy as np

from tests.vpp.forecast.support import TZ, context, rest_shape, synthetic_window, working_shape
from vpp.forecast.backtest import score
from vpp.forecast.kinds import FORECASTERS, by_forecaster
from vpp.forecast.load import LoadModel
from vpp.history.calendar import day_type

ISSUE_DAY = date(2026, 9, 30)  # a Wednesday; 2026-10-01 is National Day (a Thursday)
HOLIDAY = date(2026, 10, 1)


def test_the_calendar_knows_the_holiday_the_test_relies_on() -> None:
    kind = day_type(HOLIDAY)
    assert (kind.working, kind.holiday) == (False, "National Day")
    assert HOLIDAY.weekday() == 3  # a Thursday: a weekday model would call it working


def test_a_known_weekly_shape_is_recovered_and_the_holiday_is_a_rest_day() -> None:
    window, levels = synthetic_window(ISSUE_DAY)
    issued = datetime.combine(ISSUE_DAY, time(9), tzinfo=TZ)
    ctx = context(issued, [ISSUE_DAY, HOLIDAY])
    got = LoadModel()(window, list(range(len(window.series))), ctx)

    assert {f.method for f in got.values()} == {"model"}
    assert all("LightGBM" in f.note for f in got.values())
    forecast = np.stack([got[s].kw for s in window.series])
    assert forecast.shape == (len(window.series), 2 * 96)
    working_truth = levels[:, None] * working_shape()[None, :]
    rest_truth = levels[:, None] * rest_shape()[None, :]
    # the rest of today (a working day) and the holiday: within 5 % nMAE of the noise-free shape
    assert score(forecast[:, 36:96], working_truth[:, 36:]).nmae < 0.05
    holiday = forecast[:, 96:]
    assert score(holiday, rest_truth).nmae < 0.05
    # and nowhere near the working day it would be on the weekday calendar
    assert score(holiday, working_truth).nmae > 0.3
    daytime = slice(9 * 4, 17 * 4)
    assert np.all(holiday[:, daytime].mean(axis=1) < 0.7 * working_truth[:, daytime].mean(axis=1))


def test_the_same_history_gives_the_same_forecast() -> None:
    window, _ = synthetic_window(ISSUE_DAY, series=4)
    ctx = context(datetime.combine(ISSUE_DAY, time(9), tzinfo=TZ), [ISSUE_DAY, HOLIDAY])
    a = LoadModel()(window, [0, 1, 2, 3], ctx)
    b = LoadModel()(window, [0, 1, 2, 3], ctx)
    assert all(np.array_equal(a[s].kw, b[s].kw) for s in a)


def test_a_short_history_gets_the_similar_day_profile_named_as_such() -> None:
    window, levels = synthetic_window(ISSUE_DAY, data_days=10)
    ctx = context(
        datetime.combine(ISSUE_DAY, time(9), tzinfo=TZ), [ISSUE_DAY, HOLIDAY], min_history_days=14
    )
    got = LoadModel()(window, [0, 1], ctx)

    assert {f.method for f in got.values()} == {"similar_day"}
    # 10 complete days and this morning
    assert "11 days with data, fewer than the 14 the model needs" in got["s00"].note
    # the holiday: the non-working days of Sep 20-29 are Mid-Autumn's Sep 25-27 (Sunday
    # Sep 20 was an adjusted working day)
    assert "2026-10-01: mean of the 3 most recent non-working days" in got["s00"].note
    rest = levels[0] * rest_shape()
    assert score(got["s00"].kw[96:], rest).nmae < 0.03


def test_loads_and_meters_share_one_model() -> None:
    groups = by_forecaster(["flexible_load", "battery", "meter", "pv"], FORECASTERS)
    # loads and meters in one call to the load model; PV to its own; batteries to none
    assert [rows for _, rows in groups] == [[0, 2], [3]]
