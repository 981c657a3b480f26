"""Day types from the official Chinese calendar, and the visible fallback outside its years."""

from __future__ import annotations

import logging
from datetime import date, datetime

import pytest

from vpp.history import calendar
from vpp.history.calendar import CALENDAR_VERSION, day_type, working_day


def test_holidays_and_adjusted_working_days_follow_the_official_calendar() -> None:
    # 2026: National Day 10-01..10-07 (Thu-Wed) off, Saturday 10-10 and Sunday 09-20 worked
    assert not working_day(date(2026, 10, 1))
    assert not working_day(date(2026, 10, 5))  # a Monday inside the holiday
    assert working_day(date(2026, 10, 10))  # Saturday, adjusted working day (调休上班)
    assert working_day(date(2026, 9, 20))  # Sunday, adjusted working day
    assert not working_day(date(2026, 10, 11))  # an ordinary Sunday
    assert working_day(date(2026, 10, 12))  # an ordinary Monday
    holiday = day_type(date(2026, 10, 1))
    assert (holiday.known, holiday.holiday) == (True, "National Day")
    assert holiday.note == "2026-10-01 non-working day (National Day)"
    assert day_type(date(2026, 10, 10)).note == "2026-10-10 working day (adjusted, National Day)"


def test_a_year_the_calendar_does_not_know_falls_back_to_monday_friday_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    day_type.cache_clear()
    calendar._warn_unknown.cache_clear()  # other tests may have met 2099 already
    with caplog.at_level(logging.WARNING, logger="vpp.history.calendar"):
        monday = day_type(date(2099, 1, 5))
        saturday = day_type(date(2099, 1, 3))
    assert (monday.working, monday.known, monday.holiday) == (True, False, None)
    assert (saturday.working, saturday.known) == (False, False)
    assert "Mon-Fri fallback" in monday.note and CALENDAR_VERSION in monday.note
    warnings = [r for r in caplog.records if "2099" in r.getMessage()]
    assert len(warnings) == 1  # once per year, not once per day


def test_a_datetime_is_refused() -> None:
    with pytest.raises(TypeError):
        day_type(datetime(2026, 10, 1, 12))
