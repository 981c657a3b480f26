"""The time grid every array in the package is laid out on."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["TimeGrid"]


@dataclass(frozen=True, slots=True)
class TimeGrid:
    """A fixed grid of ``n`` equal intervals starting at ``start``.

    Interval ``t`` covers ``[start + t*step, start + (t+1)*step)``. Power values
    on the grid are interval averages in kW; energies are kWh at interval ends.

    Attributes:
        n: Number of intervals (96 for a day of 15-minute intervals).
        step: Interval length.
        start: Start of interval 0 (timezone-aware or naive, used consistently).
    """

    n: int = 96
    step: timedelta = timedelta(minutes=15)
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError("a grid needs at least one interval")
        if self.step <= timedelta(0):
            raise ValueError("the grid step must be positive")

    @property
    def dt_h(self) -> float:
        """Interval length in hours."""
        return self.step.total_seconds() / 3600.0

    @property
    def end(self) -> datetime:
        """End of the last interval."""
        return self.start + self.n * self.step

    def intervals_per_hour(self) -> float:
        """Number of intervals in one hour (4.0 for 15-minute steps)."""
        return 1.0 / self.dt_h

    def first_index_at_or_after(self, when: datetime) -> int:
        """Index of the first interval that starts at or after ``when``, clipped to ``[0, n]``."""
        k = math.ceil((when - self.start) / self.step - 1e-9)
        return min(max(k, 0), self.n)

    def last_index_ending_by(self, when: datetime) -> int:
        """One past the last interval ending at or before ``when``, in ``[0, n]``."""
        k = math.floor((when - self.start) / self.step + 1e-9)
        return min(max(k, 0), self.n)
