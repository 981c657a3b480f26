"""Helpers shared by the OpenADR tests (imported as a plain module)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.vpp.openadr.vtn_sim import VtnSim
from vpp.openadr import DispatchInterval, GridDispatch, IntervalReading, VenSettings
from vpp.openadr.mapping import format_datetime


class RecordingSink:
    """A DispatchSink that remembers every call."""

    def __init__(self) -> None:
        self.dispatches: list[GridDispatch] = []
        self.cancels: list[str] = []
        self.renewals: list[GridDispatch] = []

    async def on_dispatch(self, dispatch: GridDispatch) -> None:
        self.dispatches.append(dispatch)

    async def on_cancel(self, event_id: str) -> None:
        self.cancels.append(event_id)

    async def on_renew(self, dispatch: GridDispatch) -> None:
        self.renewals.append(dispatch)


class FixedReadings:
    """A ReportSource answering the same readings for every interval."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []

    async def readings(
        self, dispatch: GridDispatch, intervals: Sequence[DispatchInterval]
    ) -> Sequence[IntervalReading]:
        self.calls.append((dispatch.event_id, [i.interval_id for i in intervals]))
        return [
            IntervalReading(
                interval_id=i.interval_id,
                usage_kwh=100.0 + i.interval_id,
                baseline_kwh=150.0,
                storage_charge_level=0.4,
            )
            for i in intervals
        ]


def ven_settings(vtn: VtnSim, **overrides: Any) -> VenSettings:
    values: dict[str, Any] = {
        "vtn_url": vtn.url,
        "client_id": "ven",
        "client_secret": "ven-secret",
        "ven_name": "park-ven-1",
        "program_names": ("park-dr",),
        "park_capacity_kw": 2000.0,
        "poll_interval_s": 0.1,
        "backoff_scale_s": 0.05,
        "request_timeout_s": 2.0,
        "use_mqtt": False,
    }
    values.update(overrides)
    return VenSettings(**values)


def event_body(
    program_id: str,
    payloads: list[dict[str, Any]],
    *,
    start: datetime | None = None,
    duration: str = "PT15M",
    intervals: int = 1,
    descriptors: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    start = start or datetime.now(UTC) + timedelta(minutes=5)
    body: dict[str, Any] = {
        "programID": program_id,
        "eventName": "test event",
        "intervalPeriod": {"start": format_datetime(start), "duration": duration},
        "intervals": [{"id": i, "payloads": payloads} for i in range(intervals)],
        **extra,
    }
    if descriptors is not None:
        body["payloadDescriptors"] = descriptors
    return body
