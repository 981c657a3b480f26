"""An event report broken down by enterprise, summing exactly to the park.

The rules (each enterprise's share of the request, of the payment and of the
penalty, its contract, the operator's part, the rounding, the meter
reconciliation) are stated in `vpp.events.report`'s module doc, section "Per
enterprise"; this module carries them out. `apportion` is the rounding that
makes rounded parts add up to a rounded whole, `split` shares a whole in
proportion to weights with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vpp.events.model import EnterpriseTrack
from vpp.events.rebound import Rebound
from vpp.model import Enterprise

__all__ = [
    "Breakdown",
    "EnterpriseInterval",
    "EnterpriseReport",
    "OperatorReport",
    "ParkFigures",
    "ReboundFigures",
    "Reconciliation",
    "apportion",
    "enterprise_breakdown",
    "split",
]

#: Decimal places of the figures: kW and kWh, money, kg of CO2, performance.
KW_DIGITS = 3
MONEY_DIGITS = 2
CO2_DIGITS = 2
PERF_DIGITS = 4


@dataclass(frozen=True)
class Reconciliation:
    """When a revenue meter and its enterprise's telemetry sum disagree.

    An interval's meter reading ``m`` (kW) and telemetry sum ``t`` disagree
    when ``|m - t| > max(tolerance × |m|, floor_kw)``. The settings are
    ``[reports] reconcile_tolerance`` and ``reconcile_floor_kw``; the reason
    for their defaults is in `vpp.events.report`'s module doc.

    Attributes:
        tolerance: the allowed difference as a fraction of the meter's reading.
        floor_kw: the allowed difference at least, kW (small loads, where a
            fraction of the reading is below the telemetry's resolution).
    """

    tolerance: float = 0.05
    floor_kw: float = 1.0

    def __post_init__(self) -> None:
        for name in ("tolerance", "floor_kw"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0")

    def disagrees(self, meter_kw: float, telemetry_kw: float) -> bool:
        """Whether the two readings differ by more than the tolerance allows."""
        return abs(meter_kw - telemetry_kw) > max(self.tolerance * abs(meter_kw), self.floor_kw)


class EnterpriseInterval(BaseModel):
    """One interval of an enterprise (kW, kWh; null where not known or not measured yet).

    ``requested_kw`` is the enterprise's share of the park's request (a
    magnitude); ``baseline_kw``, ``measured_kw``, ``delivered_kw`` and
    ``payable_kwh`` are its parts of the park's figures of the interval, and
    sum over the enterprises exactly to them. ``telemetry_kw`` (its assets'
    telemetry sum), ``meter_gap_kw`` (meter minus telemetry) and
    ``meter_disagrees`` are there only for an enterprise with a revenue meter.
    """

    model_config = ConfigDict(frozen=True)

    start: datetime
    requested_kw: float | None = Field(description="its share of the park's request (magnitude)")
    baseline_kw: float | None
    measured_kw: float | None = Field(description="its revenue meter's where it has one")
    delivered_kw: float | None = Field(description="in the asked direction")
    performance: float | None = Field(description="delivered / requested")
    payable_kwh: float | None = Field(description="its part of the park's payable energy")
    telemetry_kw: float | None = Field(description="its assets' telemetry sum (meter only)")
    meter_gap_kw: float | None = Field(description="meter minus telemetry (meter only)")
    meter_disagrees: bool | None = Field(
        description="the gap exceeds the report's reconcile tolerance (meter only)"
    )


class EnterpriseReport(BaseModel):
    """One enterprise's part of an event: its intervals, its totals, its settlement.

    Totals are over the park's measured intervals and null while none is
    measured; the money is null while the park's settlement is (pending, or
    none). ``gross_payment`` and ``gross_penalty`` are its shares of the
    park's payment and penalty; its contract then gives it ``payment`` =
    ``revenue_share × gross_payment`` and ``penalty`` = ``penalty_share ×
    gross_penalty`` (the operator's row holds the rest).
    """

    model_config = ConfigDict(frozen=True)

    enterprise: str = Field(description="the assets' owner")
    name: str
    meter: str | None = Field(description="its revenue meter, or null (its assets' telemetry)")
    baseline_source: str = Field(description="meter:<id>, assets (their history) or live")
    baseline_days: list[date] = Field(description="history days its baseline was taken from")
    baseline_adjustment: float | None = Field(description="same-day adjustment ratio (1 = none)")
    revenue_share: float = Field(description="its contract's share of its gross payment")
    penalty_share: float = Field(description="its contract's share of its gross penalty")
    intervals: list[EnterpriseInterval]
    requested_kwh: float | None = Field(description="its share of the request")
    delivered_kwh: float | None
    payable_kwh: float | None
    performance: float | None = Field(description="delivered_kwh / requested_kwh")
    shortfall_kwh: float | None = Field(
        description="max(0, threshold × requested_kwh - delivered_kwh): its penalty weight"
    )
    gross_payment: float | None = Field(description="its share of the park's payment")
    gross_penalty: float | None = Field(description="its share of the park's penalty")
    payment: float | None = Field(description="revenue_share × gross_payment")
    penalty: float | None = Field(description="penalty_share × gross_penalty")
    settlement: float | None = Field(description="payment - penalty")
    rebound_kwh: float | None = Field(
        description="its part of the park's rebound_kwh (its own rebound window figures)"
    )
    avoided_co2_kg: float | None = Field(
        description="its net reduction (event and rebound window) × the factor"
    )
    intervals_disagreeing: int = Field(ge=0, description="intervals its meter disagrees in")


class OperatorReport(BaseModel):
    """The park operator's (the aggregator's) part of the settlement.

    ``payment`` is what it keeps of the enterprises' gross payments,
    ``penalty`` what it bears of their gross penalties (and any amount no
    enterprise could be given, see ``breakdown_note``); null while the park's
    settlement is.
    """

    model_config = ConfigDict(frozen=True)

    payment: float | None
    penalty: float | None
    settlement: float | None


@dataclass(frozen=True)
class ReboundFigures:
    """The park's rebound window as its report counts it, for the enterprise rows.

    Attributes:
        known: ``(R,)`` the window's measured intervals.
        baseline_kw: enterprise -> ``(R,)`` its baseline (kW).
        measured_kw: enterprise -> ``(R,)`` its measured power (kW).
        rebound_kwh: the park's ``rebound_kwh`` as shown (None: not counted).
    """

    known: np.ndarray
    baseline_kw: Mapping[str, np.ndarray]
    measured_kw: Mapping[str, np.ndarray]
    rebound_kwh: float | None

    @classmethod
    def of(
        cls, rebound: Rebound | None, known: np.ndarray, rebound_kwh: float | None
    ) -> ReboundFigures | None:
        """The figures of a counted window (None when it is not counted)."""
        if rebound is None or not rebound.counted:
            return None
        return cls(known, rebound.owner_baseline_kw, rebound.owner_measured_kw, rebound_kwh)

    def parts(self, owners: Sequence[str], hours: float) -> tuple[list[float], bool]:
        """Each enterprise's rebound over the measured intervals (kWh, unrounded).

        Returns:
            The parts (0 for an enterprise without figures), and whether they
            add up to the park's ``rebound_kwh`` within what rounding explains
            (each baseline rounded to ``KW_DIGITS``; the park's is the sum of
            its enterprises' measured power).
        """
        parts = []
        for owner in owners:
            base, measured = self.baseline_kw.get(owner), self.measured_kw.get(owner)
            if base is None or measured is None:
                parts.append(0.0)
            else:
                parts.append(math.fsum(np.nan_to_num((measured - base)[self.known])) * hours)
        if self.rebound_kwh is None:
            return parts, True
        slack = (len(owners) / 2 + 1) * 10.0**-KW_DIGITS * (float(self.known.sum()) * hours + 1)
        return parts, abs(math.fsum(parts) - self.rebound_kwh) <= slack


@dataclass(frozen=True)
class ParkFigures:
    """The park's figures as its report shows them, for the enterprise rows to add up to.

    Arrays have one value per interval, rounded as shown, NaN where the
    report shows null; ``known`` marks the measured intervals. ``rebound``
    is the rebound window after the event (None: not counted).
    """

    hours: float
    direction: np.ndarray
    requested_kw: np.ndarray
    baseline_kw: np.ndarray
    measured_kw: np.ndarray
    delivered_kw: np.ndarray
    payable_kwh: np.ndarray
    known: np.ndarray
    requested_kwh: float | None
    delivered_kwh: float | None
    payable_kwh_total: float | None
    payment: float | None
    penalty: float | None
    avoided_co2_kg: float | None
    threshold: float
    kg_co2_per_kwh: float
    rebound: ReboundFigures | None = None


@dataclass(frozen=True)
class Breakdown:
    """The enterprise rows, the operator's row and a note on how they add up."""

    enterprises: list[EnterpriseReport]
    operator: OperatorReport | None
    note: str


def apportion(total: int, quotas: Sequence[float]) -> list[int]:
    """Whole units that sum exactly to ``total``, each close to its quota.

    Hamilton's largest-remainder method. The quotas are first shifted evenly
    by whatever they miss of ``total`` (nothing when they are shares of it, a
    rounding gap when they are parts rounded separately from their whole),
    then each is rounded down and the units still missing go one each to the
    largest remainders (ties: the earlier quota).

    Args:
        total: the whole, in units (thousandths of a kW, cents).
        quotas: each part's exact value in the same units.

    Returns:
        One integer per quota; they sum to ``total``.

    Raises:
        ValueError: a non-zero total with no quota to give it to.
    """
    n = len(quotas)
    if n == 0:
        if total:
            raise ValueError("no quota to give a non-zero total to")
        return []
    shift = (total - math.fsum(quotas)) / n
    shifted = [q + shift for q in quotas]
    units = [math.floor(q) for q in shifted]
    # Largest remainder first; float error can leave one unit too many or too few.
    order = sorted(range(n), key=lambda i: units[i] - shifted[i])
    left = total - sum(units)
    for k in range(abs(left)):
        if left > 0:
            units[order[k % n]] += 1
        else:
            units[order[n - 1 - k % n]] -= 1
    return units


def split(total: int, weights: Sequence[float]) -> list[int] | None:
    """``total`` units shared in proportion to ``weights`` (each ≥ 0), summing exactly.

    Returns:
        The shares (`apportion`), or None when the weights sum to 0.
    """
    whole = math.fsum(weights)
    if whole <= 0:
        return None
    return apportion(total, [total * w / whole for w in weights])


def _units(value: float, digits: int) -> int:
    return round(value * 10.0**digits)


def _value(units: int, digits: int) -> float:
    # units / 10**digits is the double nearest the decimal, so it prints as it.
    return units / 10.0**digits


def _shown(value: float, digits: int) -> float | None:
    return None if math.isnan(value) else round(float(value), digits) + 0.0


def _matrix(tracks: Sequence[EnterpriseTrack], name: str) -> np.ndarray:
    return np.array(
        [[np.nan if v is None else v for v in getattr(t, name)] for t in tracks], dtype=float
    )


def _column(park: np.ndarray, parts: np.ndarray, bad: set[int]) -> np.ndarray:
    """Each part rounded to ``KW_DIGITS`` so that they sum exactly to the park's value.

    Where the park shows nothing the parts are NaN. Where a part is missing or
    the parts miss the park's value by more than rounding can explain (half a
    unit per part, and one for the park's own rounding), the interval is added
    to ``bad`` and the parts are rounded on their own.
    """
    out = np.full(parts.shape, np.nan)
    for t in np.flatnonzero(~np.isnan(park)):
        col = parts[:, t] * 10**KW_DIGITS
        total = _units(float(park[t]), KW_DIGITS)
        if np.isnan(col).any() or abs(math.fsum(col) - total) > len(col) / 2 + 1:
            bad.add(int(t))
            out[:, t] = np.round(parts[:, t], KW_DIGITS)
        else:
            out[:, t] = [_value(u, KW_DIGITS) for u in apportion(total, list(col))]
    return out


def _request_shares(baseline: np.ndarray, requested: np.ndarray) -> np.ndarray:
    """Each enterprise's share of the park's request (kW, unrounded; NaN without baselines).

    In proportion to its baseline (0 when negative); equal shares when no
    enterprise has a positive baseline in the interval.
    """
    weights = np.clip(baseline, 0.0, None)
    count = baseline.shape[0]
    out = np.full(baseline.shape, np.nan)
    for t in range(baseline.shape[1]):
        w = weights[:, t]
        if np.isnan(w).any():
            continue
        whole = w.sum()
        out[:, t] = requested[t] * (w / whole if whole > 0 else np.full(count, 1.0 / count))
    return out


def _payable_shares(delivered: np.ndarray, park: ParkFigures, bad: set[int]) -> np.ndarray:
    """Each enterprise's part of the park's payable energy (kWh, unrounded).

    In proportion to its delivery in the asked direction (none for a move
    the other way). A measured interval with payable energy and no
    enterprise delivering is added to ``bad`` (its parts are NaN).
    """
    out = np.full(delivered.shape, np.nan)
    for t in np.flatnonzero(park.known):
        total = float(park.payable_kwh[t])
        w = np.clip(delivered[:, t], 0.0, None)
        whole = w.sum() if not np.isnan(w).any() else math.nan
        if whole > 0:
            out[:, t] = total * w / whole
        elif total == 0:
            out[:, t] = 0.0
        else:
            bad.add(int(t))
    return out


def _rounded_parts(shares: np.ndarray, park: np.ndarray) -> np.ndarray:
    """Shares of the park's per-interval figure, rounded to sum exactly to it."""
    out = np.full(shares.shape, np.nan)
    for t in range(shares.shape[1]):
        col = shares[:, t]
        if math.isnan(park[t]) or np.isnan(col).any():
            continue
        units = apportion(_units(float(park[t]), KW_DIGITS), list(col * 10**KW_DIGITS))
        out[:, t] = [_value(u, KW_DIGITS) for u in units]
    return out


def _totals(quotas: list[float], total: float | None, digits: int, exact: bool) -> list[float]:
    """Per-enterprise totals, apportioned to the park's total when ``exact``."""
    if total is None or not exact:
        return [round(q, digits) + 0.0 for q in quotas]
    units = apportion(_units(total, digits), [q * 10**digits for q in quotas])
    return [_value(u, digits) for u in units]


@dataclass(frozen=True)
class _Parts:
    """The enterprises' per-interval figures (one row per enterprise, NaN = not known).

    ``shown`` holds the columns as the report shows them, named as the
    fields of `EnterpriseInterval`, rounded so that they sum to the park's.
    """

    measured: np.ndarray
    telemetry: np.ndarray
    delivered: np.ndarray
    requested: np.ndarray
    shown: dict[str, np.ndarray]


def enterprise_breakdown(
    *,
    starts: Sequence[datetime],
    park: ParkFigures,
    tracks: Mapping[str, EnterpriseTrack],
    contract_of: Callable[[str], Enterprise],
    reconcile: Reconciliation,
) -> Breakdown:
    """Break the park's figures down by enterprise (rules: `vpp.events.report`).

    Args:
        starts: each interval's start.
        park: the park's figures as its report shows them.
        tracks: each enterprise's track (owner -> track), every list one
            value per interval.
        contract_of: the contract of an owner (`vpp.model.Park.enterprise`).
        reconcile: when a meter and its telemetry sum disagree.

    Returns:
        The enterprise rows (by owner), the operator's row and a note; no
        rows and no operator for an event without tracks.

    Raises:
        ValueError: a track whose lists are not one value per interval.
    """
    if not tracks:
        return Breakdown([], None, "")
    owners = sorted(tracks)
    ordered = [tracks[o] for o in owners]
    for owner, track in zip(owners, ordered, strict=True):
        lengths = {len(track.baseline_kw), len(track.measured_kw), len(track.telemetry_kw)}
        if lengths != {len(starts)}:
            raise ValueError(f"the track of {owner!r} must have one value per interval")
    bad: set[int] = set()
    baseline = _matrix(ordered, "baseline_kw")
    measured = _matrix(ordered, "measured_kw")
    delivered = (measured - baseline) * park.direction
    requested = _request_shares(baseline, park.requested_kw)
    payable = _payable_shares(delivered, park, bad)
    parts = _Parts(
        measured=measured,
        telemetry=_matrix(ordered, "telemetry_kw"),
        delivered=delivered,
        requested=requested,
        shown={
            "baseline_kw": _column(park.baseline_kw, baseline, bad),
            "measured_kw": _column(park.measured_kw, measured, bad),
            "delivered_kw": _column(park.delivered_kw, delivered, bad),
            "requested_kw": _rounded_parts(requested, park.requested_kw),
            "payable_kwh": _rounded_parts(payable, park.payable_kwh),
        },
    )

    # Totals over the park's measured intervals.
    def total(values: np.ndarray) -> list[float]:
        return [math.fsum(np.nan_to_num(row[park.known])) for row in values]

    req_kwh = [q * park.hours for q in total(requested)]
    del_kwh = [q * park.hours for q in total(delivered)]
    pay_kwh = total(payable)
    rebound = park.rebound
    back_kwh, adds_up = (
        rebound.parts(owners, park.hours) if rebound else ([0.0] * len(owners), True)
    )
    co2_kg = [
        (q * park.hours - back) * park.kg_co2_per_kwh
        for q, back in zip(total(baseline - measured), back_kwh, strict=True)
    ]
    shortfall = [max(0.0, park.threshold * r - d) for r, d in zip(req_kwh, del_kwh, strict=True)]
    money = _money(owners, contract_of, park, pay_kwh, shortfall)
    measured_any = bool(park.known.any())

    def shown(
        values: list[float], park_total: float | None, digits: int, exact: bool = not bad
    ) -> list[float | None]:
        if not measured_any:
            return [None] * len(values)
        return list(_totals(values, park_total, digits, exact))

    req_shown = shown(req_kwh, park.requested_kwh, KW_DIGITS)
    del_shown = shown(del_kwh, park.delivered_kwh, KW_DIGITS)
    pay_shown = shown(pay_kwh, park.payable_kwh_total, KW_DIGITS)
    co2_shown = shown(co2_kg, park.avoided_co2_kg, CO2_DIGITS, not bad and adds_up)
    back_shown: list[float | None] = [None] * len(owners)
    if rebound is not None and rebound.rebound_kwh is not None:
        back_shown = shown(back_kwh, rebound.rebound_kwh, KW_DIGITS, not bad and adds_up)
    short_shown = shown(shortfall, None, KW_DIGITS)
    rows: list[EnterpriseReport] = []
    for e, (owner, track) in enumerate(zip(owners, ordered, strict=True)):
        contract = contract_of(owner)
        intervals = _interval_rows(e, track, starts, parts, park.known, reconcile)
        perf = del_kwh[e] / req_kwh[e] if measured_any and req_kwh[e] > 0 else None
        rows.append(
            EnterpriseReport(
                enterprise=owner,
                name=contract.name,
                meter=track.meter,
                baseline_source=track.baseline_source,
                baseline_days=list(track.days),
                baseline_adjustment=track.adjustment,
                revenue_share=contract.revenue_share,
                penalty_share=contract.penalty_share,
                intervals=intervals,
                requested_kwh=req_shown[e],
                delivered_kwh=del_shown[e],
                payable_kwh=pay_shown[e],
                performance=None if perf is None else round(perf, PERF_DIGITS),
                shortfall_kwh=short_shown[e],
                gross_payment=money.gross_payment[e],
                gross_penalty=money.gross_penalty[e],
                payment=money.payment[e],
                penalty=money.penalty[e],
                settlement=money.settlement[e],
                rebound_kwh=back_shown[e],
                avoided_co2_kg=co2_shown[e],
                intervals_disagreeing=sum(bool(r.meter_disagrees) for r in intervals),
            )
        )
    return Breakdown(rows, money.operator, _note(sorted(bad), starts, adds_up))


def _interval_rows(
    e: int,
    track: EnterpriseTrack,
    starts: Sequence[datetime],
    parts: _Parts,
    known: np.ndarray,
    reconcile: Reconciliation,
) -> list[EnterpriseInterval]:
    """The intervals of enterprise ``e``; the meter's reconciliation where it has one."""
    rows = []
    for t, start in enumerate(starts):
        meter_kw, telemetry_kw = float(parts.measured[e, t]), float(parts.telemetry[e, t])
        reconciled = track.meter is not None and not math.isnan(meter_kw - telemetry_kw)
        requested = parts.requested[e, t]
        perf = parts.delivered[e, t] / requested if known[t] and requested > 0 else math.nan
        values = {name: _shown(column[e, t], KW_DIGITS) for name, column in parts.shown.items()}
        rows.append(
            EnterpriseInterval(
                start=start,
                **values,
                performance=_shown(perf, PERF_DIGITS),
                telemetry_kw=_shown(telemetry_kw, KW_DIGITS) if track.meter else None,
                meter_gap_kw=_shown(meter_kw - telemetry_kw, KW_DIGITS) if reconciled else None,
                meter_disagrees=reconcile.disagrees(meter_kw, telemetry_kw) if reconciled else None,
            )
        )
    return rows


@dataclass(frozen=True)
class _Money:
    """Each enterprise's money (None while the park's settlement is) and the operator's."""

    gross_payment: list[float | None]
    gross_penalty: list[float | None]
    payment: list[float | None]
    penalty: list[float | None]
    settlement: list[float | None]
    operator: OperatorReport


def _money(
    owners: Sequence[str],
    contract_of: Callable[[str], Enterprise],
    park: ParkFigures,
    payable_kwh: Sequence[float],
    shortfall_kwh: Sequence[float],
) -> _Money:
    """Share the park's payment and penalty, apply the contracts, in whole cents.

    Payment in proportion to the payable energy, penalty in proportion to the
    shortfall; what no enterprise can be given (no weight at all) and what
    the contracts leave stays with the operator, so the rows sum exactly.
    """
    n = len(owners)
    if park.payment is None or park.penalty is None:
        none: list[float | None] = [None] * n
        pending = OperatorReport(payment=None, penalty=None, settlement=None)
        return _Money(none, none, none, none, none, pending)
    pay_total = _units(park.payment, MONEY_DIGITS)
    pen_total = _units(park.penalty, MONEY_DIGITS)
    gross_pay = split(pay_total, payable_kwh) or [0] * n
    gross_pen = split(pen_total, shortfall_kwh) or [0] * n
    contracts = [contract_of(o) for o in owners]
    # A share of at most 1 of a whole number of cents, rounded: never above it.
    pay = [round(c.revenue_share * g) for c, g in zip(contracts, gross_pay, strict=True)]
    pen = [round(c.penalty_share * g) for c, g in zip(contracts, gross_pen, strict=True)]
    op_pay = pay_total - sum(pay)
    op_pen = pen_total - sum(pen)

    def money(units: Sequence[int]) -> list[float | None]:
        return [_value(u, MONEY_DIGITS) for u in units]

    return _Money(
        gross_payment=money(gross_pay),
        gross_penalty=money(gross_pen),
        payment=money(pay),
        penalty=money(pen),
        settlement=money([p - q for p, q in zip(pay, pen, strict=True)]),
        operator=OperatorReport(
            payment=_value(op_pay, MONEY_DIGITS),
            penalty=_value(op_pen, MONEY_DIGITS),
            settlement=_value(op_pay - op_pen, MONEY_DIGITS),
        ),
    )


def _note(bad: Sequence[int], starts: Sequence[datetime], rebound_adds_up: bool = True) -> str:
    rebound = (
        ""
        if rebound_adds_up
        else "; their rebound window figures do not add up to the park's beyond rounding: "
        "their rebound and avoided CO2 are shown as their own figures give them"
    )
    if not bad:
        return (
            "enterprise rows sum exactly to the park's figures, per interval and in total; "
            "with the operator's row, to its payment, penalty and settlement" + rebound
        )
    named = ", ".join(starts[t].isoformat() for t in bad[:5]) + (" …" if len(bad) > 5 else "")
    return (
        f"the enterprises' tracks do not add up to the park's figures in {len(bad)} "
        f"interval(s) ({named}): a track misses a value the park has, or the parts differ "
        "by more than rounding; those intervals and the totals are shown as the tracks give "
        "them, and money no enterprise can be given stays in the operator's row" + rebound
    )
