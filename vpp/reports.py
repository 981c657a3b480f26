"""Event performance reports: delivered versus target, settlement and avoided CO2.

Sign convention (the whole service's): power is positive when drawn from the
grid. A dispatch target is a *deviation from the baseline* in that
convention, so peak shaving asks for a negative deviation and valley filling
for a positive one. A report measures each interval as::

    deviation   = measured - baseline                 (kW, signed)
    requested   = |target|                            (kW)
    delivered   = deviation * sign(target)            (kW in the asked direction)
    performance = delivered / requested               (1.0 = exactly on target)

Settlement is an estimate, not an invoice. It follows the usual shape of a
Chinese provincial demand-response compensation (Guangdong's market DR rules
pay effective response energy, cap what counts above the declared quantity
and withhold or penalise poor performance); every number is a parameter of
`SettlementRules`:

* per interval, the payable energy is ``min(delivered, cap_ratio * requested)
  * Δt`` (never negative);
* the event's performance is ``Σ delivered·Δt / Σ requested·Δt``; at or above
  ``performance_threshold`` the payable energy is paid at ``price_per_kwh``,
  below it nothing is paid and the shortfall to the threshold is charged at
  ``penalty_per_kwh``;
* an optional capacity payment ``awarded_kw × capacity_price_per_kw`` is added
  when the threshold is met.

Avoided CO2 is the net energy reduction over the reported intervals times a
grid emission factor whose source is named in the configuration. For a load
shift it is honest only when the rebound falls inside the reported window, so
callers should report the rebound intervals too (the service does).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np

__all__ = [
    "EmissionFactor",
    "EventReport",
    "IntervalReport",
    "SettlementRules",
    "build_report",
    "report_csv",
]


@dataclass(frozen=True)
class SettlementRules:
    """Parameters of the settlement estimate.

    Attributes:
        price_per_kwh: compensation per kWh of effective response (currency units).
        performance_threshold: event performance below which nothing is paid.
        penalty_per_kwh: charge per kWh of shortfall below the threshold.
        cap_ratio: delivery above ``cap_ratio × requested`` is not paid.
        capacity_price_per_kw: optional payment per awarded kW per event.
        currency: ISO currency code used in the report.
    """

    price_per_kwh: float = 3.5
    performance_threshold: float = 0.8
    penalty_per_kwh: float = 1.0
    cap_ratio: float = 1.2
    capacity_price_per_kw: float = 0.0
    currency: str = "CNY"

    def __post_init__(self) -> None:
        for name in ("price_per_kwh", "penalty_per_kwh", "capacity_price_per_kw"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not 0 <= self.performance_threshold <= 1.5:
            raise ValueError("performance_threshold must be within [0, 1.5]")
        if self.cap_ratio < 1:
            raise ValueError("cap_ratio must be >= 1")


@dataclass(frozen=True)
class EmissionFactor:
    """A grid emission factor with its source.

    Attributes:
        t_co2_per_mwh: tonnes of CO2 per MWh taken from the grid.
        source: where the number comes from (publication and year).
    """

    t_co2_per_mwh: float
    source: str

    def __post_init__(self) -> None:
        if self.t_co2_per_mwh < 0:
            raise ValueError("t_co2_per_mwh must be >= 0")
        if not self.source.strip():
            raise ValueError("an emission factor needs its source")


@dataclass(frozen=True)
class IntervalReport:
    """One interval of an event report (powers in kW, energy in kWh)."""

    start: str
    target_kw: float
    baseline_kw: float
    measured_kw: float
    delivered_kw: float
    performance: float | None
    payable_kwh: float


@dataclass(frozen=True)
class EventReport:
    """A whole event's report."""

    event_id: str
    interval_s: float
    intervals: list[IntervalReport]
    requested_kwh: float
    delivered_kwh: float
    performance: float | None
    threshold_met: bool
    payment: float
    penalty: float
    settlement: float
    currency: str
    avoided_co2_kg: float
    emission_factor_t_per_mwh: float
    emission_factor_source: str

    def as_dict(self) -> dict[str, object]:
        """Return the report as plain JSON-ready data."""
        return asdict(self)


def build_report(
    *,
    event_id: str,
    starts: Sequence[datetime],
    interval_s: float,
    target_kw: Sequence[float],
    baseline_kw: Sequence[float],
    measured_kw: Sequence[float],
    rules: SettlementRules,
    emission: EmissionFactor,
    awarded_kw: float = 0.0,
) -> EventReport:
    """Compute the per-interval and total figures of an event.

    Intervals without a measurement yet (NaN in ``measured_kw``) count as
    nothing delivered so an event can be reported while it runs.

    Args:
        event_id: the event's id.
        starts: each interval's start time.
        interval_s: interval length in seconds.
        target_kw: requested deviation per interval (signed, see module doc).
        baseline_kw: the park's baseline per interval.
        measured_kw: the park's measured mean power per interval.
        rules: settlement parameters.
        emission: the grid emission factor.
        awarded_kw: the awarded capacity, for the capacity payment.

    Returns:
        The report.

    Raises:
        ValueError: when the sequences differ in length or ``interval_s`` ≤ 0.
    """
    n = len(starts)
    if not (len(target_kw) == len(baseline_kw) == len(measured_kw) == n):
        raise ValueError("starts, target_kw, baseline_kw and measured_kw must have equal length")
    if interval_s <= 0:
        raise ValueError("interval_s must be > 0")
    hours = interval_s / 3600.0
    target = np.asarray(target_kw, dtype=float)
    baseline = np.asarray(baseline_kw, dtype=float)
    measured = np.asarray(measured_kw, dtype=float)
    known = ~np.isnan(measured)
    direction = np.sign(target)
    requested = np.abs(target)
    delivered = np.where(known, (np.nan_to_num(measured) - baseline) * direction, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        performance = np.where(requested > 0, delivered / requested, np.nan)
    payable = np.clip(np.minimum(delivered, rules.cap_ratio * requested), 0.0, None) * hours

    requested_kwh = float(requested.sum() * hours)
    delivered_kwh = float(delivered.sum() * hours)
    event_perf = delivered_kwh / requested_kwh if requested_kwh > 0 else None
    met = event_perf is not None and event_perf >= rules.performance_threshold
    if met:
        payment = float(payable.sum()) * rules.price_per_kwh
        payment += awarded_kw * rules.capacity_price_per_kw
        penalty = 0.0
    else:
        payment = 0.0
        shortfall = max(0.0, rules.performance_threshold * requested_kwh - delivered_kwh)
        penalty = shortfall * rules.penalty_per_kwh
    # Net energy taken from the grid relative to baseline, over all intervals.
    net_reduction_kwh = float(
        np.where(known, baseline - np.nan_to_num(measured), 0.0).sum() * hours
    )
    avoided_kg = net_reduction_kwh / 1000.0 * emission.t_co2_per_mwh * 1000.0

    rows = [
        IntervalReport(
            start=starts[i].isoformat(),
            target_kw=round(float(target[i]), 3),
            baseline_kw=round(float(baseline[i]), 3),
            measured_kw=round(float(measured[i]), 3) if known[i] else float("nan"),
            delivered_kw=round(float(delivered[i]), 3),
            performance=None if np.isnan(performance[i]) else round(float(performance[i]), 4),
            payable_kwh=round(float(payable[i]), 3),
        )
        for i in range(n)
    ]
    return EventReport(
        event_id=event_id,
        interval_s=interval_s,
        intervals=rows,
        requested_kwh=round(requested_kwh, 3),
        delivered_kwh=round(delivered_kwh, 3),
        performance=None if event_perf is None else round(event_perf, 4),
        threshold_met=met,
        payment=round(payment, 2),
        penalty=round(penalty, 2),
        settlement=round(payment - penalty, 2),
        currency=rules.currency,
        avoided_co2_kg=round(avoided_kg, 2),
        emission_factor_t_per_mwh=emission.t_co2_per_mwh,
        emission_factor_source=emission.source,
    )


def report_csv(report: EventReport) -> str:
    """Return the per-interval table of a report as CSV text (with a header row)."""
    out = io.StringIO()
    fields = [f for f in IntervalReport.__dataclass_fields__]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in report.intervals:
        writer.writerow(asdict(row))
    return out.getvalue()
