"""The interval grid of the history: local days of the park, 96 slots of 15 minutes.

Settlement in China runs on 96 interval energies per day of each metering
point, on the local (Beijing) day; the history keeps every series on that
grid. A day is the park's local calendar day (``Park.timezone``); slot ``i``
of a day starts ``i × 15 min`` after its local midnight. Parks in a time zone
with daylight saving get 92 or 100 intervals on the change days; the grid
keeps 96 slots and drops the surplus hour's readings (Chinese parks, the
service's users, have no daylight saving).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "INTERVAL_S",
    "SLOTS_PER_DAY",
    "DayVector",
    "day_start",
    "locate",
    "slot_start",
]

#: Length of a history interval, seconds (the market's quarter-hour).
INTERVAL_S = 900
#: Slots of a day.
SLOTS_PER_DAY = 96


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """The aware start (local midnight) of ``day`` in ``tz``."""
    return datetime.combine(day, time(0), tzinfo=tz)


def slot_start(day: date, slot: int, tz: ZoneInfo) -> datetime:
    """The aware start of ``slot`` (0-95) of ``day`` in ``tz``."""
    return day_start(day, tz) + timedelta(seconds=slot * INTERVAL_S)


def locate(ts: datetime, tz: ZoneInfo) -> tuple[date, int]:
    """The local day and slot (0-95) that contain the aware time ``ts``.

    Raises:
        ValueError: ``ts`` is naive.
    """
    if ts.tzinfo is None:
        raise ValueError("the time needs a UTC offset")
    local = ts.astimezone(tz)
    day = local.date()
    offset = (ts - day_start(day, tz)).total_seconds()
    return day, min(int(offset // INTERVAL_S), SLOTS_PER_DAY - 1)


@dataclass(frozen=True, slots=True, eq=False)
class DayVector:
    """One series' day on the grid.

    Attributes:
        energy_kwh: ``(96,)`` energy per slot over its covered part, kWh
            (positive = drawn from the grid).
        coverage: ``(96,)`` covered fraction of each slot, 0..1; 0 = no data
            (never "zero load").
        imported: ``(96,)`` True where the slot comes from imported metering
            data (revenue grade, full coverage).
    """

    energy_kwh: NDArray[np.float64]
    coverage: NDArray[np.float64]
    imported: NDArray[np.bool_]

    @classmethod
    def empty(cls) -> DayVector:
        """A day with no data."""
        return cls(
            np.zeros(SLOTS_PER_DAY), np.zeros(SLOTS_PER_DAY), np.zeros(SLOTS_PER_DAY, dtype=bool)
        )

    @property
    def mean_kw(self) -> NDArray[np.float64]:
        """``(96,)`` mean power over each slot's covered part, kW; NaN where not covered."""
        hours = self.coverage * (INTERVAL_S / 3600.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.coverage > 0, self.energy_kwh / hours, np.nan)

    @property
    def day_coverage(self) -> float:
        """The covered fraction of the whole day, 0..1."""
        return float(self.coverage.mean())
