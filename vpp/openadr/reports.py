"""Building OpenADR ``report`` bodies from the park's interval readings.

One report per event and VEN: the first send is a ``POST /reports``, later
sends ``PUT`` the same report with every interval reported so far. The park
reports as one resource, ``AGGREGATED_REPORT`` (Definition.md Table 5).

================  =====  ============  ==========================================
payload           units  readingType   value
================  =====  ============  ==========================================
USAGE             KWH    DIRECT_READ   energy drawn in the interval (≥ 0 by schema)
BASELINE          KWH    ESTIMATED     energy the park would have drawn
DELTA_USAGE       KWH    ESTIMATED     USAGE − BASELINE (< 0 is a reduction)
STORAGE_CHARGE…   PERCENT DIRECT_READ  0.0-1.0 at interval end (schema bound)
================  =====  ============  ==========================================
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from vpp.openadr import constants as c
from vpp.openadr.mapping import format_datetime, format_duration
from vpp.openadr.model import DispatchInterval, GridDispatch, IntervalReading

log = logging.getLogger("vpp.openadr.reports")

Json = dict[str, Any]

#: Units and reading type of each report payload this VEN sends.
PAYLOAD_DESCRIPTORS: dict[str, tuple[str, str]] = {
    c.USAGE: ("KWH", "DIRECT_READ"),
    c.BASELINE: ("KWH", "ESTIMATED"),
    c.DELTA_USAGE: ("KWH", "ESTIMATED"),
    c.STORAGE_CHARGE_LEVEL: ("PERCENT", "DIRECT_READ"),
}


def _clamp(kind: str, value: float, low: float, high: float | None = None) -> float:
    clamped = max(low, value if high is None else min(high, value))
    if clamped != value:
        log.warning("%s %.3f outside the schema's range; sent as %.3f", kind, value, clamped)
    return clamped


def reading_payloads(reading: IntervalReading, wanted: Iterable[str]) -> list[Json]:
    """The valuesMap list of one interval (types with no value are left out)."""
    delta = reading.delta_usage_kwh
    if delta is None and reading.usage_kwh is not None and reading.baseline_kwh is not None:
        delta = reading.usage_kwh - reading.baseline_kwh
    values: dict[str, float | None] = {
        c.USAGE: None if reading.usage_kwh is None else _clamp(c.USAGE, reading.usage_kwh, 0.0),
        c.BASELINE: reading.baseline_kwh,
        c.DELTA_USAGE: delta,
        c.STORAGE_CHARGE_LEVEL: None
        if reading.storage_charge_level is None
        else _clamp(c.STORAGE_CHARGE_LEVEL, reading.storage_charge_level, 0.0, 1.0),
    }
    return [
        {"type": kind, "values": [float(value)]}
        for kind in wanted
        if (value := values.get(kind)) is not None
    ]


def report_interval(
    interval: DispatchInterval, reading: IntervalReading, wanted: Iterable[str]
) -> Json:
    """One report interval, echoing the event interval's id and timing."""
    return {
        "id": interval.interval_id,
        "intervalPeriod": {
            "start": format_datetime(interval.start),
            "duration": format_duration(interval.duration),
        },
        "payloads": reading_payloads(reading, wanted),
    }


def wanted_payloads(dispatch: GridDispatch) -> tuple[str, ...]:
    """Report types to send: those the event asks for, else all four."""
    asked = tuple(r.payload_type for r in dispatch.report_requests)
    return asked or c.REPORT_PAYLOADS


def build_report_request(
    dispatch: GridDispatch,
    intervals: Sequence[Json],
    *,
    client_name: str,
    wanted: Sequence[str],
    resource_name: str = c.AGGREGATED_REPORT,
) -> Json:
    """A ``reportRequest`` body for ``dispatch`` with the given report intervals."""
    return {
        "eventID": dispatch.event_id,
        "clientName": client_name,
        "reportName": f"{client_name} on {dispatch.event_id}"[:128],
        "payloadDescriptors": [
            {
                "objectType": c.REPORT_PAYLOAD_DESCRIPTOR,
                "payloadType": kind,
                "readingType": PAYLOAD_DESCRIPTORS[kind][1],
                "units": PAYLOAD_DESCRIPTORS[kind][0],
            }
            for kind in wanted
        ],
        "resources": [
            {
                "resourceName": resource_name,
                "intervals": sorted(intervals, key=lambda i: int(i["id"])),
            }
        ],
    }
