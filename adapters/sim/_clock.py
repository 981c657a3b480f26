"""Simulation time: wall-clock seconds scaled by ``time_scale``."""

from __future__ import annotations

import time

__all__ = ["SimClock"]


class SimClock:
    """A clock whose seconds run ``time_scale`` times faster than the wall clock.

    Args:
        time_scale: simulated seconds per wall-clock second (1.0 = real time).
    """

    def __init__(self, *, time_scale: float = 1.0) -> None:
        if not time_scale > 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self._wall0 = time.monotonic()

    def now(self) -> float:
        """Simulated seconds since the clock started."""
        return (time.monotonic() - self._wall0) * self.time_scale

    def sim_seconds(self, wall_seconds: float) -> float:
        """Convert a wall-clock duration into simulated seconds."""
        return wall_seconds * self.time_scale
