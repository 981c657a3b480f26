"""Per-field checks for what a charger sends: one bad field is dropped, never the message.

Every number and time the CSMS reads from a charger passes through these
helpers (enumerations are checked by the CALL's OCPP schema, see
:mod:`adapters.ocpp.session`). A field that fails is reported to a
:data:`Reject` sink (the adapter counts it as ``(field, reason)`` and logs it)
and read as absent; the rest of the message is still used.

Reasons are short and low-cardinality: these helpers give ``not_a_number``,
``out_of_range`` and ``not_a_time``; the decoders that use them add
``unit``, ``missing``, ``not_an_object``, ``not_a_list`` (meter values,
charging needs), ``invalid``, ``not_a_boolean`` (transaction events) and
``stale``, ``future`` (a power sample's time).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Reject", "number", "timestamp"]

#: ``reject(field, reason, value)``: count and log one dropped field.
Reject = Callable[[str, str, object], None]


def number(
    value: object, name: str, reject: Reject, *, lo: float = -math.inf, hi: float = math.inf
) -> float | None:
    """A finite JSON number within ``[lo, hi]``, or None (and one rejection).

    Args:
        value: the raw JSON value (absent = None, which is not a rejection).
        name: the field name to count a rejection under.
        reject: the sink for a dropped field.
        lo: lowest allowed value (inclusive).
        hi: highest allowed value (inclusive).

    Returns:
        The value as a float, or None when absent or dropped.
    """
    if value is None:
        return None
    # JSON true/false are ints to Python; a boolean is never a measurement.
    if isinstance(value, bool) or not isinstance(value, int | float):
        reject(name, "not_a_number", value)
        return None
    result = float(value)
    if not math.isfinite(result):
        reject(name, "not_a_number", value)
        return None
    if not lo <= result <= hi:
        reject(name, "out_of_range", value)
        return None
    return result


def timestamp(value: object, name: str, reject: Reject) -> float | None:
    """An OCPP ``dateTime`` (RFC 3339, ``Z`` or an offset) as UNIX seconds, or None.

    A time without an offset is read as UTC (OCPP requires UTC; some chargers
    omit the ``Z``).
    """
    if value is None:
        return None
    if not isinstance(value, str):
        reject(name, "not_a_time", value)
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        reject(name, "not_a_time", value)
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        reject(name, "not_a_time", value)
        return None
