"""Measurement scopes of an event: what is measured, and against which baseline.

Grid settlement in China runs on each enrolled user's metering point; where an
enterprise of the park has a revenue meter, its delivery is what that meter
shows, its whole load (unenrolled machines included) moving with the event.
An event's delivery is therefore measured per *scope*, fixed when it becomes
active:

* an enterprise with a revenue meter that has a reading at activation is one
  scope, the meter: its measured power is the meter's (kW, primary side,
  positive = drawn from the grid), its baseline the meter's;
* every device of any other enterprise is a scope of its own: its
  telemetry, against its own baseline.

The park's baseline and measured power are the sums over its scopes, an
enterprise's the sums over its own, so the enterprises sum exactly to the
park. A scope measured by the control loop's per-device anchors (a device
scope under ``model`` / ``pre_event``) has no baseline of its own: it reads
the device's anchor, which moves when a silent device's first reading arrives
(see `vpp.control`). Every other scope owns its baseline, fixed at activation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np

from vpp.events import EventStore
from vpp.history.baselines import (
    HISTORICAL_METHODS,
    HistoricalMethod,
    HistoryTooShort,
    load_baselines,
)
from vpp.history.store import HistoryStore
from vpp.model import Asset, BaselineMethod, LiveState, Meter, Park
from vpp.state import State

__all__ = [
    "HISTORICAL_METHODS",
    "LIVE_METHODS",
    "LIVE_NOTES",
    "Scope",
    "ScopeBaselines",
    "device_scopes",
    "historical_bases",
    "metered_live_base",
    "metered_scopes",
    "telemetry_kw",
]

#: Baseline methods set from the live state at activation.
LIVE_METHODS: tuple[BaselineMethod, ...] = ("model", "pre_event")
#: The live methods in words, for the event's `BaselineInfo`.
LIVE_NOTES: dict[str, str] = {
    "model": "model: each device's own forecast at activation (metered enterprises: the"
    " meter's reading then, with its devices at their forecast)",
    "pre_event": "pre_event: the power measured just before the event, held flat",
}


@dataclass
class Scope:
    """One measured part of the park.

    Attributes:
        id: the meter id (a metered enterprise) or the device id.
        owner: the enterprise.
        kind: the asset kind measured (``meter`` for a metered enterprise).
        meter: the revenue meter, or None for a device scope.
        members: the enrolled devices inside the scope.
        base: the scope's own baseline per event interval (kW), or None when it
            is the device's anchor (`vpp.control`'s per-device baseline).
    """

    id: str
    owner: str
    kind: str
    meter: str | None
    members: tuple[str, ...]
    base: np.ndarray | None = None

    def baseline(self, anchors: Mapping[str, np.ndarray]) -> np.ndarray:
        """The scope's baseline per event interval (kW)."""
        if self.base is not None:
            return self.base
        return anchors[self.members[0]]

    def now_kw(
        self, measured_kw: Mapping[str, float], live: Mapping[str, LiveState | None]
    ) -> float | None:
        """The scope's measured power now (kW), or None when it has no fresh reading."""
        if self.meter is not None:
            reading = live.get(self.meter)
            return None if reading is None else reading.power_kw
        return measured_kw.get(self.id)

    def cover(self, n: int) -> None:
        """Hold the scope's own baseline at its last value up to ``n`` intervals."""
        if self.base is not None and len(self.base) < n:
            self.base = np.pad(self.base, (0, n - len(self.base)), mode="edge")


def device_scopes(devices: Iterable[Asset]) -> list[Scope]:
    """One scope per device, measured by its telemetry against its anchor."""
    return [Scope(a.id, a.owner, a.kind, None, (a.id,)) for a in devices]


def metered_scopes(
    devices: Iterable[Asset], meters: Mapping[str, Meter], live: Mapping[str, LiveState | None]
) -> tuple[list[Scope], list[Scope]]:
    """Split the park into metered enterprises and the remaining devices.

    An enterprise whose revenue meter has no fresh reading at activation is
    measured by its devices for this event (a meter cannot anchor a baseline
    it does not see).

    Returns:
        ``(metered, devices)``: one scope per metered enterprise (no baseline
        yet) and one per device of every other enterprise.
    """
    devices = list(devices)
    metered: list[Scope] = []
    taken: set[str] = set()
    for owner, meter in sorted(meters.items()):
        if live.get(meter.id) is None:
            continue
        members = tuple(a.id for a in devices if a.owner == owner)
        metered.append(Scope(meter.id, owner, "meter", meter.id, members))
        taken.add(owner)
    return metered, device_scopes(a for a in devices if a.owner not in taken)


def telemetry_kw(
    scope: Scope, measured_kw: Mapping[str, float], anchors: Mapping[str, np.ndarray], k: int
) -> float:
    """The sum of the scope's devices' telemetry (kW); a silent device counts at its anchor."""
    total = 0.0
    for member in scope.members:
        value = measured_kw.get(member)
        if value is None:
            anchor = anchors.get(member)
            value = float(anchor[k]) if anchor is not None else 0.0
        total += value
    return total


def metered_live_base(
    scope: Scope,
    anchors: Mapping[str, np.ndarray],
    measured_kw: Mapping[str, float],
    live: Mapping[str, LiveState | None],
    n: int,
) -> np.ndarray:
    """A metered enterprise's baseline under a live method (kW per event interval, ``(n,)``).

    The meter's reading at activation, with each of its devices that has a
    reading replaced by its anchor: under ``pre_event`` the anchor is the
    reading, so the meter's reading is held flat; under ``model`` a plugged-in
    vehicle's forecast moves it as the vehicle would have charged.

    Raises:
        ValueError: the scope has no meter or its meter no reading.
    """
    reading = live.get(scope.meter) if scope.meter is not None else None
    if reading is None:
        raise ValueError(f"scope {scope.id} has no meter reading to anchor on")
    base = np.full(n, reading.power_kw)
    for member in scope.members:
        if member in measured_kw and member in anchors:
            base = base + anchors[member] - measured_kw[member]
    return base


@dataclass
class ScopeBaselines:
    """Historical baselines of an event's scopes.

    Attributes:
        kw: scope id -> baseline kW per event interval.
        source: enterprise -> ``meter:<id>`` or ``assets``.
        days: enterprise -> the history days its baselines were taken from.
        adjustment: enterprise -> the same-day adjustment ratio applied to its
            baseline as a whole (adjusted / unadjusted energy over the event),
            or None when none was applied.
        note: the method in words (the first scope's; they share the settings).
    """

    kw: dict[str, np.ndarray] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    days: dict[str, list[date]] = field(default_factory=dict)
    adjustment: dict[str, float | None] = field(default_factory=dict)
    note: str = ""


async def historical_bases(
    state: State,
    events: EventStore,
    park: Park,
    scopes: Sequence[Scope],
    method: HistoricalMethod,
    *,
    start: datetime,
    interval_s: int,
    n: int,
    now: datetime,
) -> ScopeBaselines | str:
    """Each scope's baseline from its series' history (a meter's, or a device's).

    One method serves the whole event: when a scope's history cannot serve
    it (too few eligible days, or an interval no chosen day covers), the
    event falls back as a whole.

    Returns:
        The baselines, or why the history cannot serve ``method`` (the first
        scope it fails for, in words), so that the caller falls back.
    """
    if not scopes:
        return "nothing to measure"
    results = await load_baselines(
        HistoryStore(state), events, park, [s.id for s in scopes], method,
        start=start, interval_s=interval_s, n=n, now=now,
    )  # fmt: skip
    out = ScopeBaselines()
    unadjusted: dict[str, float] = {}
    adjusted: dict[str, float] = {}
    owners_adjusted: set[str] = set()
    for scope in scopes:
        result = results[scope.id]
        what = f"meter {scope.id}" if scope.meter else f"{scope.kind} {scope.id}"
        if isinstance(result, HistoryTooShort):
            return f"{method} needs more history: {what}: {result.reason}"
        if np.isnan(result.kw).any():
            gaps = int(np.isnan(result.kw).sum())
            return f"{method}: {what}: no day used covers {gaps} of the event's intervals"
        out.kw[scope.id] = np.asarray(result.kw, dtype=float)
        out.source[scope.owner] = f"meter:{scope.meter}" if scope.meter else "assets"
        out.days[scope.owner] = sorted(set(out.days.get(scope.owner, [])) | set(result.days))
        energy = float(np.sum(result.kw))
        ratio = result.adjustment
        adjusted[scope.owner] = adjusted.get(scope.owner, 0.0) + energy
        unadjusted[scope.owner] = unadjusted.get(scope.owner, 0.0) + (
            energy / ratio if ratio else energy
        )
        if ratio is not None:
            owners_adjusted.add(scope.owner)
        out.note = out.note or result.note
    for owner in out.source:
        applied = owner in owners_adjusted and unadjusted[owner] != 0
        out.adjustment[owner] = round(adjusted[owner] / unadjusted[owner], 4) if applied else None
    return out
