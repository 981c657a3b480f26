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

Only *measured* intervals (baseline and measured power both known) count:
an interval not measured yet delivered nothing and fell short of nothing, so
it is left out of every sum above, never counted as 0 kW. A scheduled event
is therefore pending (no performance, no settlement), a running one is
settled provisionally over what was measured so far, one cancelled midway is
settled over its measured intervals, and one that failed or was cancelled
before any interval was measured has no settlement and no penalty.

Avoided CO2 is the net energy reduction over the measured intervals times a
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
from typing import Literal

import numpy as np

__all__ = [
    "EmissionFactor",
    "EventReport",
    "IntervalReport",
    "SettlementRules",
    "SettlementStatus",
    "build_report",
    "report_csv",
]


#: Where an event's settlement stands: ``pending`` (no interval measured and
#: the event not over), ``provisional`` (settled over the intervals measured
#: so far, the event not over), ``final`` (over, settled over its measured
#: intervals) or ``none`` (over before any interval was measured: no
#: settlement and no penalty).
SettlementStatus = Literal["pending", "provisional", "final", "none"]


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
    """One interval of an event report (powers in kW, energy in kWh).

    An interval is *measured* once it has both its baseline and its measured
    mean power: only then is a delivery known. Until then ``measured_kw``,
    ``delivered_kw``, ``performance`` and ``payable_kwh`` are None (null in
    JSON, empty in CSV), never 0: an unmeasured interval neither delivered
    nor failed to deliver. ``baseline_kw`` is None until the control loop has
    set it, and ``performance`` is also None for an interval that asks for
    nothing (target 0 kW).
    """

    start: str
    target_kw: float
    baseline_kw: float | None
    measured_kw: float | None
    delivered_kw: float | None
    performance: float | None
    payable_kwh: float | None


@dataclass(frozen=True)
class EventReport:
    """A whole event's report.

    Every total (``requested_kwh``, ``delivered_kwh``, ``performance``, the
    settlement and ``avoided_co2_kg``) is taken over the measured intervals
    only; they are None while no interval is measured. See `SettlementStatus`
    for ``settlement_status``; ``settlement_note`` says the same in words.
    ``threshold_met`` is None while there is no performance (nothing measured,
    or the measured intervals ask for nothing).
    """

    event_id: str
    interval_s: float
    intervals: list[IntervalReport]
    intervals_measured: int
    requested_kwh: float | None
    delivered_kwh: float | None
    performance: float | None
    threshold_met: bool | None
    payment: float | None
    penalty: float | None
    settlement: float | None
    settlement_status: SettlementStatus
    settlement_note: str
    currency: str
    avoided_co2_kg: float | None
    emission_factor_t_per_mwh: float
    emission_factor_source: str

    def as_dict(self) -> dict[str, object]:
        """Return the report as plain JSON-ready data (no NaN: unknown values are None)."""
        return asdict(self)


def build_report(
    *,
    event_id: str,
    starts: Sequence[datetime],
    interval_s: float,
    target_kw: Sequence[float],
    baseline_kw: Sequence[float | None],
    measured_kw: Sequence[float | None],
    rules: SettlementRules,
    emission: EmissionFactor,
    final: bool,
    why: str | None = None,
    awarded_kw: float = 0.0,
) -> EventReport:
    """Compute the per-interval and total figures of an event.

    Intervals without a baseline or a measurement yet (None or NaN) are not
    measured: they count neither as delivered nor as a shortfall, so a
    scheduled event is pending, a running one is settled provisionally over
    what was measured so far, and an event that failed or was cancelled before
    any interval was measured has no settlement and no penalty.

    Args:
        event_id: the event's id.
        starts: each interval's start time.
        interval_s: interval length in seconds.
        target_kw: requested deviation per interval (signed, see module doc).
        baseline_kw: the park's baseline per interval (kW; None/NaN = not set).
        measured_kw: the park's measured mean power per interval (kW; None/NaN
            = not measured).
        rules: settlement parameters.
        emission: the grid emission factor.
        final: whether the event is over (no further interval will be measured).
        why: how the event ended, in words (e.g. ``"failed: no flexible asset
            online"``), for the settlement note of a final report.
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
    baseline = _floats(baseline_kw)
    measured = _floats(measured_kw)
    # Delivery is a change in measured power against the baseline: without
    # both, nothing is known about the interval, so it is left out of every total.
    known = ~np.isnan(measured) & ~np.isnan(baseline)
    direction = np.sign(target)
    requested = np.abs(target)
    delivered = np.where(known, (measured - baseline) * direction, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        performance = np.where(known & (requested > 0), delivered / requested, np.nan)
    payable = np.where(
        known,
        np.clip(np.minimum(delivered, rules.cap_ratio * requested), 0.0, None) * hours,
        np.nan,
    )

    count = int(known.sum())
    status = _status(count, final)
    rows = [
        IntervalReport(
            start=starts[i].isoformat(),
            target_kw=round(float(target[i]), 3),
            baseline_kw=_rounded_or_none(baseline[i], 3),
            measured_kw=_rounded_or_none(measured[i], 3) if known[i] else None,
            delivered_kw=_rounded_or_none(delivered[i], 3),
            performance=_rounded_or_none(performance[i], 4),
            payable_kwh=_rounded_or_none(payable[i], 3),
        )
        for i in range(n)
    ]
    totals = _settle(requested, delivered, payable, known, hours, rules, awarded_kw)
    # Net energy taken from the grid relative to baseline, over the measured intervals.
    net_reduction_kwh = float((baseline[known] - measured[known]).sum() * hours)
    avoided_kg = net_reduction_kwh / 1000.0 * emission.t_co2_per_mwh * 1000.0
    return EventReport(
        event_id=event_id,
        interval_s=interval_s,
        intervals=rows,
        intervals_measured=count,
        requested_kwh=totals.requested_kwh,
        delivered_kwh=totals.delivered_kwh,
        performance=totals.performance,
        threshold_met=totals.threshold_met,
        payment=totals.payment,
        penalty=totals.penalty,
        settlement=totals.settlement,
        settlement_status=status,
        settlement_note=_note(status, count, n, why),
        currency=rules.currency,
        avoided_co2_kg=round(avoided_kg, 2) if count else None,
        emission_factor_t_per_mwh=emission.t_co2_per_mwh,
        emission_factor_source=emission.source,
    )


@dataclass(frozen=True)
class _Totals:
    """An event's settled totals (all None while no interval is measured)."""

    requested_kwh: float | None = None
    delivered_kwh: float | None = None
    performance: float | None = None
    threshold_met: bool | None = None
    payment: float | None = None
    penalty: float | None = None
    settlement: float | None = None


def _settle(
    requested: np.ndarray,
    delivered: np.ndarray,
    payable: np.ndarray,
    known: np.ndarray,
    hours: float,
    rules: SettlementRules,
    awarded_kw: float,
) -> _Totals:
    """Settle the measured intervals (``known``) by the rules of the module doc."""
    if not known.any():
        return _Totals()
    requested_kwh = float(requested[known].sum() * hours)
    delivered_kwh = float(delivered[known].sum() * hours)
    perf = delivered_kwh / requested_kwh if requested_kwh > 0 else None
    met = None if perf is None else perf >= rules.performance_threshold
    if met:
        payment = float(payable[known].sum()) * rules.price_per_kwh
        payment += awarded_kw * rules.capacity_price_per_kw
        penalty = 0.0
    else:
        # Below the threshold nothing is paid and the shortfall to it is
        # charged; when nothing was asked of the measured intervals, both are 0.
        payment = 0.0
        shortfall = max(0.0, rules.performance_threshold * requested_kwh - delivered_kwh)
        penalty = shortfall * rules.penalty_per_kwh
    return _Totals(
        requested_kwh=round(requested_kwh, 3),
        delivered_kwh=round(delivered_kwh, 3),
        performance=None if perf is None else round(perf, 4),
        threshold_met=met,
        payment=round(payment, 2),
        penalty=round(penalty, 2),
        settlement=round(payment - penalty, 2),
    )


def _floats(values: Sequence[float | None]) -> np.ndarray:
    """Values as a float array, None as NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _rounded_or_none(value: float, digits: int) -> float | None:
    """``value`` rounded, or None for NaN (JSON has no NaN, CSV shows an empty cell)."""
    # + 0.0 turns -0.0 (a zero target's delivery) into 0.0
    return None if np.isnan(value) else round(float(value), digits) + 0.0


def _status(measured: int, final: bool) -> SettlementStatus:
    if measured == 0:
        return "none" if final else "pending"
    return "final" if final else "provisional"


def _note(status: SettlementStatus, measured: int, total: int, why: str | None) -> str:
    ended = why or "the event is over"
    if status == "pending":
        return "no interval measured yet: settled over the intervals once measured"
    if status == "none":
        return f"{ended}; no interval was measured: no settlement and no penalty"
    if status == "provisional":
        return f"provisional: over the {measured} of {total} intervals measured so far"
    return f"{ended}; settled over the {measured} of {total} intervals measured"


def report_csv(report: EventReport) -> str:
    """Return the per-interval table of a report as CSV text (with a header row).

    A value not known (an interval not measured yet) is an empty cell.
    """
    out = io.StringIO()
    fields = [f for f in IntervalReport.__dataclass_fields__]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in report.intervals:
        writer.writerow(asdict(row))
    return out.getvalue()
