"""Jittered, growing reconnect delays of the device adapters ("full jitter").

"Full jitter" and "equal jitter" are the standard names (AWS Architecture
Blog, "Exponential Backoff And Jitter", 2015). Every adapter waits
``random.uniform(0, 1.5 ** min(10, attempt))`` seconds (scaled by ``base``)
before its next connection attempt, so a park of devices that lost the
broker together does not reconnect in lock-step. The VEN uses equal jitter
instead (``vpp.openadr.backoff``: every delay at least half its cap), since
there one client retries one server.
"""

from __future__ import annotations

import asyncio
import random

__all__ = ["Backoff", "full_jitter_delay"]

_CAP_EXPONENT = 10


def full_jitter_delay(attempt: int, *, base: float = 1.0) -> float:
    """Return the delay before reconnect attempt ``attempt`` (0-based).

    Args:
        attempt: how many attempts failed in a row so far.
        base: a scale on the delay (tests shorten it; 1.0 in production).
    """
    return base * random.uniform(0, 1.5 ** min(_CAP_EXPONENT, max(0, attempt)))


class Backoff:
    """A reconnect delay that grows with failures and resets on success.

    Args:
        base: a scale on every delay (1.0 in production).
    """

    def __init__(self, *, base: float = 1.0) -> None:
        self.base = base
        self.attempt = 0

    async def wait(self) -> None:
        """Sleep the next delay and count the attempt."""
        delay = full_jitter_delay(self.attempt, base=self.base)
        self.attempt += 1
        await asyncio.sleep(delay)

    def reset(self) -> None:
        """Forget past failures (call once a connection is up)."""
        self.attempt = 0
