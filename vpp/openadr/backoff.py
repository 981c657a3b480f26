"""Retry delays of the VEN that provably grow: exponential with "equal jitter".

"Full jitter" (``uniform(0, cap)``) can draw about 0 s several times in a
row, so a VTN that is down can be hit again at once. Here the n-th delay in
a row (n ≥ 1) is drawn from ``[cap/2, cap]`` with ``cap = scale × 1.5**min(n, 10)``:
the spread still de-synchronises many VENs, and every delay is at least
half its cap, so the lower bound grows by 1.5× per failure until the cap.
(The device adapters' reconnects use full jitter: ``adapters.backoff``.)
"""

from __future__ import annotations

import random

__all__ = ["GROWTH", "MAX_EXPONENT", "backoff_bounds", "equal_jitter_delay"]

#: Factor by which the delay bounds grow per failure in a row.
GROWTH = 1.5
#: Failures after which the bounds stop growing (1.5**10 ≈ 58 × scale).
MAX_EXPONENT = 10


def backoff_bounds(failures: int, scale: float) -> tuple[float, float]:
    """The ``(lowest, highest)`` delay in seconds after ``failures`` failures in a row.

    Args:
        failures: Failures in a row so far (≥ 1; 0 gives the bounds of the first).
        scale: Seconds; the delay after the first failure lies in [0.75, 1.5] × scale.
    """
    cap = scale * GROWTH ** min(max(failures, 1), MAX_EXPONENT)
    return cap / 2, cap


def equal_jitter_delay(failures: int, scale: float, rng: random.Random | None = None) -> float:
    """A delay in seconds drawn uniformly within :func:`backoff_bounds`."""
    low, high = backoff_bounds(failures, scale)
    return (rng or random).uniform(low, high)
