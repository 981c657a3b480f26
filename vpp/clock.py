"""Wall-clock or compressed time for the control loop, the event schedule and the demo.

A real deployment runs at ``time_scale = 1``. The demo runs a 2-hour event in about
a minute by scaling time: ``now()`` advances ``time_scale`` seconds per real second
from an ``origin``, and ``sleep(s)`` waits ``s / time_scale`` real seconds. The
service's parts that reason about time (the control loop, the event schedule,
the API's event checks) take the same `Clock`; the device simulators
(``adapters.sim``, which do not import ``vpp``) run their physics on a clock
of their own at the same speed-up (also ``time_scale``), so they stay
consistent.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = ["Clock"]


@dataclass(frozen=True)
class Clock:
    """A clock that may run faster than real time.

    Attributes:
        time_scale: simulated seconds per real second (1.0 = real time).
        origin: the simulated time at the moment the clock was made.
    """

    time_scale: float = 1.0
    origin: datetime = field(default_factory=lambda: datetime.now(UTC))
    _t0: float = field(default_factory=time.monotonic, repr=False)
    _wall0: float = field(default_factory=time.time, repr=False)

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        if self.origin.tzinfo is None:
            raise ValueError("origin must be timezone-aware")

    def now(self) -> datetime:
        """The current (possibly simulated) time."""
        return self.origin + timedelta(seconds=(time.monotonic() - self._t0) * self.time_scale)

    def from_wall(self, epoch_s: float) -> datetime:
        """This clock's reading at the wall-clock instant ``epoch_s`` (UNIX seconds).

        A device that schedules on the wall clock (an EV leaving at 18:00 real
        time) is placed on this clock's timeline; with ``time_scale = 1`` and the
        default origin this is just the instant itself.
        """
        return self.origin + timedelta(seconds=(epoch_s - self._wall0) * self.time_scale)

    def real_seconds(self, simulated_s: float) -> float:
        """Real seconds that ``simulated_s`` simulated seconds take."""
        return simulated_s / self.time_scale

    async def sleep(self, simulated_s: float) -> None:
        """Sleep for ``simulated_s`` seconds of this clock's time."""
        await asyncio.sleep(max(0.0, simulated_s) / self.time_scale)

    async def sleep_until(self, when: datetime) -> None:
        """Sleep until this clock reads ``when`` (returns at once if it is past)."""
        await self.sleep((when - self.now()).total_seconds())
