"""Jittered, growing reconnect delays.

Every adapter waits ``random.uniform(0, 1.5 ** min(10, attempt))`` seconds
(scaled by ``base``) before its next connection attempt, so a park of devices
that lost the broker together does not reconnect in lock-step.
"""

from __future__ import annotations

import asyncio
import random

__all__ = ["Backoff", "backoff_delay"]

_CAP_EXPONENT = 10


def backoff_delay(attempt: int, *, base: float = 1.0) -> float:
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
        delay = backoff_delay(self.attempt, base=self.base)
        self.attempt += 1
        await asyncio.sleep(delay)

    def reset(self) -> None:
        """Forget past failures (call once a connection is up)."""
        self.attempt = 0
