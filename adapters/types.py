"""Device-language types shared by every adapter and simulator.

Sign convention everywhere in :mod:`adapters`: ``power_kw`` is positive when
the device draws power from the grid (charging, consuming) and negative when
it feeds power into the grid (discharging, V2G export).
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

__all__ = [
    "Adapter",
    "AdapterStats",
    "Confirmation",
    "DeviceLimits",
    "Setpoint",
    "Telemetry",
    "TelemetrySource",
]


class TelemetrySource(StrEnum):
    """Which protocol produced a reading."""

    #: MQTT flexible load.
    MQTT = "mqtt"
    #: Modbus TCP / SunSpec battery.
    MODBUS = "modbus"
    #: OCPP EV charger.
    OCPP = "ocpp"


@dataclass(frozen=True, slots=True, kw_only=True)
class Telemetry:
    """One reading of one asset, in device language.

    Attributes:
        asset_id: the asset the reading belongs to (the id in the adapter settings).
        ts: wall-clock time of the reading (UNIX seconds).
        power_kw: active power, positive = drawn from the grid.
        soc: state of charge 0..1, where the device has one.
        energy_kwh: a cumulative energy register (imported minus exported), if any.
        available: whether the device is online and accepts setpoints.
        max_charge_kw: what the device can draw right now (live limit), if known.
        max_discharge_kw: what it can feed in right now (>= 0), if known.
        ev_connected: for chargers, whether an EV is plugged in (None: not a charger).
        departure_ts: for an EV session, the stated departure time (UNIX seconds).
        energy_needed_kwh: for an EV session, energy still needed by departure.
        source: the protocol that produced the reading.
    """

    asset_id: str
    ts: float
    power_kw: float
    soc: float | None = None
    energy_kwh: float | None = None
    available: bool = True
    max_charge_kw: float | None = None
    max_discharge_kw: float | None = None
    ev_connected: bool | None = None
    departure_ts: float | None = None
    energy_needed_kwh: float | None = None
    source: TelemetrySource | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Setpoint:
    """A power setpoint for one asset.

    Attributes:
        asset_id: the target asset.
        power_kw: requested active power, positive = draw from the grid.
        hold_s: how long the setpoint holds; afterwards the device reverts to its
            own behaviour. Adapters refresh it against device revert timers until
            then.
    """

    asset_id: str
    power_kw: float
    hold_s: float = 900.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.power_kw):
            raise ValueError(f"setpoint for {self.asset_id!r} is not finite: {self.power_kw}")
        if not self.hold_s > 0:
            raise ValueError(f"hold_s must be positive, got {self.hold_s}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Confirmation:
    """What became of a setpoint.

    Attributes:
        asset_id: the target asset.
        requested_kw: what the caller asked for.
        sent_kw: what left for the device after clamping (None if nothing was sent).
        clamped: whether ``sent_kw`` differs from ``requested_kw``.
        confirmed: whether the device acknowledged the value it was sent.
        rtt_s: send-to-acknowledgement time (None if nothing came back).
        reason: why it was clamped or not confirmed (empty when all is well).
    """

    asset_id: str
    requested_kw: float
    sent_kw: float | None
    clamped: bool
    confirmed: bool
    rtt_s: float | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceLimits:
    """The enrolled limits of one asset (the contract with its owner).

    Attributes:
        p_min_kw: lowest allowed power (negative = may feed in).
        p_max_kw: highest allowed power draw.
        capacity_kwh: usable energy capacity, for SoC-bounded devices.
        soc_min: lowest SoC the service may discharge to (0..1).
        soc_max: highest SoC the service may charge to (0..1).
        bidirectional: False for devices that must never feed in (a one-way EV
            charger, an EV session without V2G enrolment); clamps ``p_min_kw`` at 0.
        charge_efficiency: share of the drawn energy that reaches the storage
            (0 < eta <= 1; the enrolled ``EvCharger.charge_efficiency``, the
            ``eta_charge`` the plan uses). An EV's ``energy_needed_kwh`` is
            energy in the vehicle, so the grid must supply it divided by this.
    """

    p_min_kw: float
    p_max_kw: float
    capacity_kwh: float | None = None
    soc_min: float = 0.0
    soc_max: float = 1.0
    bidirectional: bool = True
    charge_efficiency: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.p_min_kw) and math.isfinite(self.p_max_kw)):
            raise ValueError("power limits must be finite")
        if self.p_min_kw > self.p_max_kw:
            raise ValueError(f"p_min_kw {self.p_min_kw} > p_max_kw {self.p_max_kw}")
        if not 0.0 <= self.soc_min <= self.soc_max <= 1.0:
            raise ValueError(
                f"need 0 <= soc_min <= soc_max <= 1, got {self.soc_min}, {self.soc_max}"
            )
        if self.capacity_kwh is not None and not self.capacity_kwh > 0:
            raise ValueError("capacity_kwh must be positive")
        if not 0.0 < self.charge_efficiency <= 1.0:
            raise ValueError(f"need 0 < charge_efficiency <= 1, got {self.charge_efficiency}")


@dataclass(slots=True)
class AdapterStats:
    """Counters and state a supervisor can export as metrics.

    Plain numbers, updated in place by the adapter; read them at any time.

    Attributes:
        connected: whether the transport is up right now.
        messages: telemetry readings accepted.
        bad_payloads: incoming payloads rejected whole (not decodable at all).
        rejected_fields: fields dropped from otherwise kept readings, by
            ``(field, reason)`` (garbage, out of range, not implemented...).
        dropped: readings dropped because the telemetry queue was full.
        stale: readings not taken as live, by reason (``old``, ``replayed``,
            ``retained``, ``unsynced``: :class:`adapters.freshness.Stale`).
        clock_skew_s: the device clock offset of largest magnitude among the
            adapter's devices (device minus receive time, seconds; 0 = in step
            or unknown).
        reconnects: transport (re)connections after the first.
        setpoints_sent: setpoints that left for a device.
        setpoints_confirmed: setpoints the device acknowledged.
        setpoints_clamped: setpoints changed by the clamp before sending.
        last_telemetry_ts: wall-clock time of the last accepted reading (0 = never).
        rtt_s: the most recent setpoint round-trip times (bounded window).
    """

    connected: bool = False
    messages: int = 0
    bad_payloads: int = 0
    rejected_fields: Counter[tuple[str, str]] = field(default_factory=Counter)
    dropped: int = 0
    stale: Counter[str] = field(default_factory=Counter)
    clock_skew_s: float = 0.0
    reconnects: int = 0
    setpoints_sent: int = 0
    setpoints_confirmed: int = 0
    setpoints_clamped: int = 0
    last_telemetry_ts: float = 0.0
    rtt_s: deque[float] = field(default_factory=lambda: deque(maxlen=1024))

    def record_telemetry(self, n: int = 1) -> None:
        """Count ``n`` accepted readings and stamp their arrival."""
        self.messages += n
        self.last_telemetry_ts = time.time()

    def record_rejected_field(self, name: str, reason: str) -> None:
        """Count one field dropped from a reading that was otherwise kept.

        Args:
            name: the field in device-language terms (``soc``, ``power_kw``...).
            reason: a short, low-cardinality reason (``out_of_range``,
                ``not_a_number``, ``not_implemented``...).
        """
        self.rejected_fields[(name, reason)] += 1

    def record_stale(self, reason: str) -> None:
        """Count one reading not taken as live (too old, replayed, retained...)."""
        self.stale[reason] += 1

    def record_confirmation(self, conf: Confirmation) -> None:
        """Count the outcome of one setpoint."""
        if conf.sent_kw is not None:
            self.setpoints_sent += 1
        if conf.clamped:
            self.setpoints_clamped += 1
        if conf.confirmed:
            self.setpoints_confirmed += 1
        if conf.rtt_s is not None:
            self.rtt_s.append(conf.rtt_s)


@runtime_checkable
class Adapter(Protocol):
    """The one shape every adapter has (MQTT, Modbus, OCPP).

    Use it as ``async with adapter:``; entering starts its connection tasks
    (entering does not wait for the device to be reachable: it reconnects by
    itself), leaving stops them.
    """

    @property
    def stats(self) -> AdapterStats:
        """Counters for metrics (read-only: the adapter updates them in place)."""
        ...

    def telemetry(self) -> AsyncIterator[Telemetry]:
        """Readings from every asset of this adapter, as they arrive (one consumer)."""
        ...

    def telemetry_batches(self) -> AsyncIterator[list[Telemetry]]:
        """The same readings in the batches they arrived in (one consumer, instead)."""
        ...

    async def apply(self, setpoint: Setpoint) -> Confirmation:
        """Clamp, send and await the device's acknowledgement of one setpoint."""
        ...

    async def release(self, asset_id: str) -> bool:
        """Hand control back to the device's own behaviour; True if acknowledged."""
        ...

    def last(self, asset_id: str) -> Telemetry | None:
        """The latest reading of one asset (the live state the clamp uses)."""
        ...
