"""Working days and non-working days of the official Chinese calendar.

A customer baseline averages *similar* days: working days for a working day,
non-working days (weekends and public holidays) for a non-working day. Which
is which follows the State Council's yearly holiday notice (国务院办公厅关于
部分节假日安排的通知), including the adjusted working days (调休上班): a
Saturday or Sunday worked in exchange for a bridged holiday is a working day,
a weekday bridged into a holiday is not. The notice's dates come from the
``chinesecalendar`` package (``chinese_calendar``), not from code here.

The package knows the years it was released with (2004-2026 in 1.11). A day
outside them gets the fallback Monday-Friday = working, and says so:
`DayType.known` is False, the note names the fallback, and the first such
day of each year is logged as a warning. Callers report it (a baseline's
``calendar_known``); nothing is silently guessed.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import date

import chinese_calendar  # type: ignore[import-untyped]

__all__ = ["CALENDAR_VERSION", "DayType", "day_type", "working_day"]

log = logging.getLogger("vpp.history.calendar")

#: The version of the ``chinesecalendar`` package the day types come from.
CALENDAR_VERSION: str = str(chinese_calendar.__version__)


@dataclass(frozen=True, slots=True)
class DayType:
    """What kind of day a local calendar day is.

    Attributes:
        day: the day.
        working: True for a working day (Monday-Friday that is not a public
            holiday, or an adjusted working day 调休上班).
        known: True when the official calendar covers the day's year; False
            when ``working`` is the Monday-Friday fallback.
        holiday: the public holiday the day belongs to (as a holiday, or as its
            adjusted working day), in the package's English name, e.g.
            ``National Day``; None for an ordinary day or an unknown year.
    """

    day: date
    working: bool
    known: bool
    holiday: str | None = None

    @property
    def note(self) -> str:
        """The day type in words, e.g. ``2026-10-10 working day (adjusted, National Day)``."""
        kind = "working day" if self.working else "non-working day"
        if not self.known:
            return (
                f"{self.day} {kind} (Mon-Fri fallback: chinesecalendar {CALENDAR_VERSION} "
                f"does not know {self.day.year})"
            )
        if self.holiday is None:
            return f"{self.day} {kind}"
        if self.working:
            return f"{self.day} {kind} (adjusted, {self.holiday})"
        return f"{self.day} {kind} ({self.holiday})"


@functools.lru_cache(maxsize=4096)
def day_type(day: date) -> DayType:
    """The type of ``day`` per the official Chinese calendar, or the Mon-Fri fallback.

    Raises:
        TypeError: ``day`` is a ``datetime`` (give the park's local date).
    """
    if type(day) is not date:
        raise TypeError(f"a local date is needed, not {type(day).__name__}")
    try:
        holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        _warn_unknown(day.year)
        return DayType(day, working=day.weekday() < 5, known=False)
    return DayType(day, working=not holiday, known=True, holiday=name)


def working_day(day: date) -> bool:
    """Whether ``day`` is a working day (see `day_type`; Mon-Fri outside the known years)."""
    return day_type(day).working


@functools.lru_cache(maxsize=64)
def _warn_unknown(year: int) -> None:
    log.warning(
        "chinesecalendar %s does not know %d: its days are typed Mon-Fri = working, "
        "holidays and adjusted working days ignored (update the package)",
        CALENDAR_VERSION,
        year,
    )
