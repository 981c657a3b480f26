"""Helpers shared by the OpenADR tests: recording sinks, VEN settings, events, a park to serve."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

from tests.support import eventually
from tests.vpp.openadr.vtn_sim import VtnSim
from vpp.model import LiveState, parse_asset
from vpp.openadr import DispatchInterval, GridDispatch, IntervalReading, Ven, VenSettings
from vpp.openadr.mapping import format_datetime
from vpp.state import State

#: The message of the RuntimeError :func:`crash_one_poll` raises in the VEN's poll task.
POLL_BUG = "a bug in a poll cycle"

#: A 1000 kW flexible load with 300 kW of shed for two hours, on MQTT.
LOAD_1: dict[str, Any] = {
    "kind": "flexible_load", "id": "load-1", "owner": "B", "grid_node": "n1",
    "connection": {"protocol": "mqtt", "topic_prefix": "x/load-1"},
    "baseline_kw": 1000, "max_shed_kw": 300, "max_shed_minutes": 120,
}  # fmt: skip
#: A 1000 kWh, 500 kW battery, on Modbus.
BESS_1: dict[str, Any] = {
    "kind": "battery", "id": "bess-1", "owner": "A", "grid_node": "n1",
    "connection": {"protocol": "modbus", "host": "127.0.0.1", "unit_id": 1},
    "capacity_kwh": 1000, "max_charge_kw": 500, "max_discharge_kw": 500,
}  # fmt: skip


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


async def enroll_live(
    state: State, park: str, assets: Sequence[tuple[dict[str, Any], LiveState]], ttl_s: float
) -> None:
    """Enroll each asset payload in ``park`` and write its live state (kept ``ttl_s`` seconds)."""
    for payload, _ in assets:
        await state.enroll(park, parse_asset(payload))
    await state.write_live_many(park, {payload["id"]: live for payload, live in assets}, ttl=ttl_s)


async def crash_one_poll(ven: Ven) -> None:
    """Make the VEN's next poll cycle raise ``RuntimeError(POLL_BUG)`` once (a bug, not the VTN).

    Returns once the poll task has been restarted and has polled twice more.
    """
    real = ven.poll_once
    crashed: list[bool] = []

    async def crash_once() -> None:
        if not crashed:
            crashed.append(True)
            raise RuntimeError(POLL_BUG)
        await real()

    with mock.patch.object(ven, "poll_once", crash_once):
        await eventually(lambda: ven.status.tasks["poll"].restarts == 1)
        polls = ven.status.polls
        await eventually(lambda: ven.status.polls >= polls + 2)
