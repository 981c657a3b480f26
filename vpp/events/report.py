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

Avoided CO2 is the net energy reduction over the measured intervals *and*
the rebound window after the event, times the park's grid emission factor.
A load shift mostly moves energy: a shed load draws part of it back, a
battery recharges, an EV catches up, so the event's intervals alone would
credit energy that came back an hour later. The rebound window
(`vpp.events.rebound`: its length and why, its baseline fixed at activation
with the event's method, its measured power from the interval history) is
reported interval by interval (``rebound_intervals``), and the event's own
reduction, the rebound and the net are shown apart
(``event_reduction_kwh``, ``rebound_kwh``, ``net_reduction_kwh``,
``event_avoided_co2_kg`` beside ``avoided_co2_kg``), with
``avoided_co2_status`` saying whether the figure is provisional (rebound
intervals not measured yet) or counts the event alone (no rebound window
recorded); the formulas are in `vpp.events.carbon`. The settlement is over
the event's intervals only: the rebound changes the CO2, not the money.

The factor is the park's (``Park.carbon.electricity_factor``,
`vpp.ledger.factors`: by default the MEE/NBS 2023 Southern grid region
factor, 0.4042 kgCO2/kWh, Guangdong's region), and the report names it with
its id, name, vintage and source (``emission_factor``).

The report also names how the baseline was set (``baseline``: the method
requested, the one used, why it fell back; per enterprise its source, the
history days and the same-day adjustment).

Per enterprise
--------------
An event whose record carries its enterprises' tracks
(`vpp.events.model.EnterpriseTrack`; the control loop sets the park's
baseline and measured power to the sums of its enterprises') is broken down
by enterprise, the assets' ``owner`` (`vpp.events.breakdown`). An
enterprise's baseline, measured power and delivery per interval are its
track's: its revenue meter's where it has one (its whole load), else the sum
of its assets'. Its money follows three rules, chosen so that an enterprise
can check its part from its own metered data and the park's figures, without
the aggregator's dispatch plan:

* **Its share of the request** in an interval is the park's request in
  proportion to its baseline (a negative baseline counts as 0; equal shares
  when no enterprise has a positive one): every enterprise is asked the same
  fraction of its own load, the pro-rata rule of orderly power use (有序用电).
* **The payment follows the energy that earned it.** In each interval the
  park's payable energy is shared among the enterprises that moved in the
  asked direction, in proportion to how far each moved; the park's payment
  (a capacity payment included) is shared in proportion to these payable
  energies. A move the other way earns nothing (it lowered the park's
  delivery, and with it everyone's pay) and adds to its shortfall.
* **The penalty follows the shortfall that caused it.** An enterprise's
  shortfall is ``max(0, performance_threshold × its requested energy - its
  delivered energy)`` over the measured intervals; the park's penalty is
  shared in proportion to the shortfalls. They add up to at least the park's
  own, so a penalised park always has someone to bear it, and an enterprise
  that met the threshold on its share bears none of it.

Then each enterprise's contract (`vpp.model.Enterprise`) applies: it
receives ``revenue_share`` of its gross payment (收益分成) and bears
``penalty_share`` of its gross penalty (考核分摊). The park's operator (the
aggregator) keeps the rest of each payment and bears the rest of each
penalty: its own row (``operator``).

Figures are rounded as the park's (kW and kWh to 0.001, money to 0.01, CO2
to 0.01 kg), and each set of rounded parts is apportioned by the largest
remainder (`vpp.events.breakdown.apportion`), so the enterprise rows sum
exactly to the park's baseline, measured, delivered, requested and payable
figures per interval and in total, and to its rebound and avoided CO2
(an enterprise's rebound window is measured by its own series against its
own baseline past the end, `vpp.events.model.EnterpriseTrack`); with the
operator's row they sum exactly to the park's payment, penalty and
settlement. Exactly as decimals: add them as decimals (Python's `Decimal`, a
spreadsheet's ROUND), as binary floats add 0.1 + 0.2 to 0.30000000000000004.
A record whose tracks do not add up to the park's figures beyond rounding (a
track missing a value the park has) is shown as the tracks give it and
``breakdown_note`` names the intervals; money no enterprise can be given
stays in the operator's row. An event recorded without tracks (stored before
they existed, or with no enterprise enrolled) has the park's report alone: no
enterprise rows and no operator row.

Where an enterprise has a revenue meter, each interval also shows its assets'
telemetry sum beside the meter and flags ``meter_disagrees`` when
``|meter - telemetry| > max(reconcile_tolerance × |meter|,
reconcile_floor_kw)`` (`vpp.events.breakdown.Reconciliation`; settings
``[reports] reconcile_tolerance`` and ``reconcile_floor_kw``, named in the
report): a broken or mis-wired meter (wrong CT ratio), or a load behind the
meter that is not enrolled. The defaults, 5 % and 1 kW, leave room for what
honest readings differ by: a revenue meter's accuracy class (0.2S to 1,
DL/T 448-2016), device telemetry's (about 1 to 2 %), losses between them and
telemetry's coarser resolution at small loads, while an unenrolled load of a
few percent of the site or a meter off by its CT ratio shows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vpp.events.breakdown import (
    EnterpriseInterval,
    EnterpriseReport,
    OperatorReport,
    ParkFigures,
    ReboundFigures,
    Reconciliation,
    enterprise_breakdown,
)
from vpp.events.carbon import Co2Status, ReboundInterval, avoided_co2
from vpp.events.model import TERMINAL_STATES, BaselineInfo, EnterpriseTrack, EventState
from vpp.events.rebound import Rebound
from vpp.ledger.factors import ElectricityFactor
from vpp.ledger.rows import FactorInfo
from vpp.model import Enterprise

__all__ = [
    "EnterpriseInterval",
    "EnterpriseReport",
    "EventReport",
    "IntervalReport",
    "OperatorReport",
    "ReboundInterval",
    "Reconciliation",
    "ReportRows",
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

#: The rows of a report's CSV: the park's intervals (the table as it always
#: was), one row per enterprise and interval, or the rebound window's intervals.
ReportRows = Literal["park", "enterprise", "rebound"]


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


class IntervalReport(BaseModel):
    """One interval of a report (kW, kWh; null where not measured yet, never 0).

    An interval is *measured* once it has both its baseline and its measured
    mean power: only then is a delivery known. Until then ``measured_kw``,
    ``delivered_kw``, ``performance`` and ``payable_kwh`` are null (empty in
    CSV), never 0: an unmeasured interval neither delivered nor failed to
    deliver. ``baseline_kw`` is null until the control loop has set it, and
    ``performance`` is also null for an interval that asks for nothing
    (target 0 kW).
    """

    model_config = ConfigDict(frozen=True)

    start: datetime
    target_kw: float = Field(description="signed deviation asked (negative = less load)")
    baseline_kw: float | None
    measured_kw: float | None
    delivered_kw: float | None = Field(description="in the asked direction")
    performance: float | None = Field(description="delivered / requested")
    payable_kwh: float | None


class EventReport(BaseModel):
    """An event's performance report, as ``GET …/events/{event}/report`` returns it.

    Totals (``requested_kwh``, ``delivered_kwh``, ``performance`` and the
    settlement) are over the measured intervals only and null while none is
    measured; ``avoided_co2_kg`` adds the rebound window after the event
    (``avoided_co2_status`` and ``avoided_co2_note`` say what it counts).
    ``threshold_met`` is null while there is no performance (nothing
    measured, or the measured intervals ask for nothing).
    ``settlement_status`` says whether the settlement is pending,
    provisional, final or none (the event ended before any interval was
    measured: no settlement and no penalty), and ``settlement_note`` says why.

    ``baseline`` says how the baseline was set (null for an event recorded
    before it was kept). ``enterprises`` breaks the report down by enterprise
    and ``operator`` is the park operator's part of the settlement (empty and
    null for an event recorded without enterprise tracks); the rules, and
    how the rows sum exactly to the park's, are in the module doc of
    ``vpp.events.report``.
    """

    model_config = ConfigDict(frozen=True)

    event_id: str
    state: EventState
    interval_s: float
    intervals: list[IntervalReport]
    intervals_measured: int = Field(ge=0, description="intervals the totals are taken over")
    requested_kwh: float | None = Field(description="asked over the measured intervals")
    delivered_kwh: float | None
    payable_kwh: float | None = Field(description="paid energy over the measured intervals")
    performance: float | None
    threshold_met: bool | None
    payment: float | None
    penalty: float | None
    settlement: float | None
    settlement_status: SettlementStatus
    settlement_note: str
    currency: str
    avoided_co2_kg: float | None = Field(
        description="net_reduction_kwh × the factor: the event and its rebound window"
    )
    avoided_co2_status: Co2Status = Field(
        description="pending, none, provisional (rebound not all measured yet), final, or "
        "event_only (no rebound window recorded: the event's intervals alone)"
    )
    avoided_co2_note: str
    event_reduction_kwh: float | None = Field(
        description="Σ (baseline - measured) · Δt over the event's measured intervals"
    )
    rebound_kwh: float | None = Field(
        description="Σ (measured - baseline) · Δt over the rebound window's measured intervals"
    )
    net_reduction_kwh: float | None = Field(description="event_reduction_kwh - rebound_kwh")
    event_avoided_co2_kg: float | None = Field(
        description="event_reduction_kwh × the factor: the event's intervals alone"
    )
    rebound_window_h: float | None = Field(
        description="how far past the event's end the rebound window reaches (null: none)"
    )
    rebound_intervals: list[ReboundInterval] = Field(
        description="the rebound window: the event's unrun intervals, then those after its end"
    )
    emission_factor: FactorInfo = Field(description="the park's grid emission factor")
    emission_factor_t_per_mwh: float = Field(description="emission_factor's value (= kg/kWh)")
    emission_factor_source: str = Field(description="emission_factor's name, vintage and source")
    baseline: BaselineInfo | None = Field(description="how the baseline was set")
    enterprises: list[EnterpriseReport] = Field(description="by owner; sums to the park's")
    operator: OperatorReport | None = Field(description="the park operator's part")
    breakdown_note: str = Field(description="how the enterprise rows add up to the park's")
    reconcile_tolerance: float = Field(description="meter vs telemetry: fraction allowed")
    reconcile_floor_kw: float = Field(description="meter vs telemetry: kW allowed at least")


def build_report(
    *,
    event_id: str,
    starts: Sequence[datetime],
    interval_s: float,
    target_kw: Sequence[float],
    baseline_kw: Sequence[float | None],
    measured_kw: Sequence[float | None],
    rules: SettlementRules,
    factor: ElectricityFactor,
    state: EventState,
    why: str | None = None,
    awarded_kw: float = 0.0,
    baseline: BaselineInfo | None = None,
    enterprises: Mapping[str, EnterpriseTrack] | None = None,
    contract_of: Callable[[str], Enterprise] | None = None,
    reconcile: Reconciliation | None = None,
    rebound: Rebound | None = None,
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
        factor: the park's grid emission factor (`vpp.ledger.factors`).
        state: the event's state; a terminal one (`TERMINAL_STATES`) means the
            event is over and no further interval will be measured.
        why: how the event ended, in words (e.g. ``"failed: no flexible asset
            online"``), for the settlement note of a final report.
        awarded_kw: the awarded capacity, for the capacity payment.
        baseline: how the baseline was set, or None (not recorded).
        enterprises: each enterprise's track (owner -> track, one value per
            interval in each list); None or empty: no breakdown.
        contract_of: the contract of an owner (`vpp.model.Park.enterprise`);
            None: every enterprise on the default contract (all its own).
        reconcile: when a revenue meter and its telemetry sum disagree; None:
            the defaults of `Reconciliation`.
        rebound: the rebound window after the event, measured so far
            (`vpp.events.rebound.load_rebound`); None: not counted, and the
            avoided CO2 is the event's alone (``event_only``).

    Returns:
        The report.

    Raises:
        ValueError: when the sequences (or an enterprise's track) differ in
            length or ``interval_s`` ≤ 0.
    """
    n = len(starts)
    if not (len(target_kw) == len(baseline_kw) == len(measured_kw) == n):
        raise ValueError("starts, target_kw, baseline_kw and measured_kw must have equal length")
    if interval_s <= 0:
        raise ValueError("interval_s must be > 0")
    hours = interval_s / 3600.0
    target = np.asarray(target_kw, dtype=float)
    base_kw = _floats(baseline_kw)
    measured = _floats(measured_kw)
    # Delivery is a change in measured power against the baseline: without
    # both, nothing is known about the interval, so it is left out of every total.
    known = ~np.isnan(measured) & ~np.isnan(base_kw)
    direction = np.sign(target)
    requested = np.abs(target)
    delivered = np.where(known, (measured - base_kw) * direction, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        performance = np.where(known & (requested > 0), delivered / requested, np.nan)
    payable = np.where(
        known,
        np.clip(np.minimum(delivered, rules.cap_ratio * requested), 0.0, None) * hours,
        np.nan,
    )

    count = int(known.sum())
    status = _status(count, final=state in TERMINAL_STATES)
    rows = [
        IntervalReport(
            start=starts[i],
            target_kw=round(float(target[i]), 3),
            baseline_kw=_rounded_or_none(base_kw[i], 3),
            measured_kw=_rounded_or_none(measured[i], 3) if known[i] else None,
            delivered_kw=_rounded_or_none(delivered[i], 3),
            performance=_rounded_or_none(performance[i], 4),
            payable_kwh=_rounded_or_none(payable[i], 3),
        )
        for i in range(n)
    ]
    totals = _settle(requested, delivered, payable, known, hours, rules, awarded_kw)
    final = state in TERMINAL_STATES
    co2 = avoided_co2(
        hours=hours,
        reduction_kw=base_kw - measured,
        known=known,
        factor=factor,
        rebound=rebound,
        final=final,
    )
    check = reconcile or Reconciliation()
    park = ParkFigures(
        hours=hours,
        direction=direction,
        requested_kw=np.round(requested, 3),
        baseline_kw=np.array([_nan(r.baseline_kw) for r in rows]),
        measured_kw=np.array([_nan(r.measured_kw) for r in rows]),
        delivered_kw=np.array([_nan(r.delivered_kw) for r in rows]),
        payable_kwh=np.array([_nan(r.payable_kwh) for r in rows]),
        known=known,
        requested_kwh=totals.requested_kwh,
        delivered_kwh=totals.delivered_kwh,
        payable_kwh_total=totals.payable_kwh,
        payment=totals.payment,
        penalty=totals.penalty,
        avoided_co2_kg=co2.avoided_co2_kg,
        threshold=rules.performance_threshold,
        kg_co2_per_kwh=factor.kg_co2_per_kwh,
        rebound=ReboundFigures.of(rebound, co2.known, co2.rebound_kwh),
    )
    parts = enterprise_breakdown(
        starts=starts,
        park=park,
        tracks=enterprises or {},
        contract_of=contract_of or (lambda owner: Enterprise()),
        reconcile=check,
    )
    return EventReport(
        event_id=event_id,
        state=state,
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
        avoided_co2_kg=co2.avoided_co2_kg,
        avoided_co2_status=co2.status,
        avoided_co2_note=co2.note,
        event_reduction_kwh=co2.event_reduction_kwh,
        rebound_kwh=co2.rebound_kwh,
        net_reduction_kwh=co2.net_reduction_kwh,
        event_avoided_co2_kg=co2.event_avoided_co2_kg,
        rebound_window_h=round(rebound.length_h, 4) if rebound and rebound.counted else None,
        rebound_intervals=co2.rows,
        emission_factor=FactorInfo.of(factor),
        emission_factor_t_per_mwh=factor.kg_co2_per_kwh,
        emission_factor_source=f"{factor.name}, {factor.vintage}: {factor.source}",
        payable_kwh=totals.payable_kwh,
        baseline=baseline,
        enterprises=parts.enterprises,
        operator=parts.operator,
        breakdown_note=parts.note,
        reconcile_tolerance=check.tolerance,
        reconcile_floor_kw=check.floor_kw,
    )


@dataclass(frozen=True)
class _Totals:
    """An event's settled totals (all None while no interval is measured)."""

    requested_kwh: float | None = None
    delivered_kwh: float | None = None
    payable_kwh: float | None = None
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
        payable_kwh=round(float(payable[known].sum()), 3),
        performance=None if perf is None else round(perf, 4),
        threshold_met=met,
        payment=round(payment, 2),
        penalty=round(penalty, 2),
        settlement=round(payment - penalty, 2),
    )


def _floats(values: Sequence[float | None]) -> np.ndarray:
    """Values as a float array, None as NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _nan(value: float | None) -> float:
    """A shown value as a float, null as NaN."""
    return np.nan if value is None else value


def _rounded_or_none(value: float, digits: int) -> float | None:
    """``value`` rounded, or None for NaN (JSON has no NaN, CSV shows an empty cell)."""
    # + 0.0 turns -0.0 (a zero target's delivery) into 0.0
    return None if np.isnan(value) else round(float(value), digits) + 0.0


def _status(measured: int, *, final: bool) -> SettlementStatus:
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


def report_csv(report: EventReport, by: ReportRows = "park") -> str:
    """Return a per-interval table of a report as CSV text (with a header row).

    ``by="park"`` gives the park's intervals (`IntervalReport`'s columns, the
    table as it always was); ``by="enterprise"`` a long table with one row per
    enterprise and interval: an ``enterprise`` column, then
    `EnterpriseInterval`'s (no rows for an event without enterprise tracks);
    ``by="rebound"`` the rebound window's intervals (`ReboundInterval`'s
    columns; no rows when the window is not counted).
    A value not known (an interval not measured yet, a column that does not
    apply) is an empty cell; a start time is written by ``datetime.isoformat``
    (``+00:00``, where the JSON form has ``Z``), as the table always showed it.
    """
    out = io.StringIO()
    rows: list[dict[str, object]]
    if by == "park":
        fields = list(IntervalReport.model_fields)
        rows = [{**r.model_dump(), "start": r.start.isoformat()} for r in report.intervals]
    elif by == "rebound":
        fields = list(ReboundInterval.model_fields)
        rows = [{**r.model_dump(), "start": r.start.isoformat()} for r in report.rebound_intervals]
    else:
        fields = ["enterprise", *EnterpriseInterval.model_fields]
        rows = [
            {"enterprise": e.enterprise, **r.model_dump(), "start": r.start.isoformat()}
            for e in report.enterprises
            for r in e.intervals
        ]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
