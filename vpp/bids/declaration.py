"""The Guangdong declaration of a bid, per trading unit, checked against a rule profile.

As reported of Guangdong's VPP market plan (广东省虚拟电厂参与电力市场交易实施方案,
2024-11; sources in ``vpp/market/profiles.toml``), a load-type VPP declares
per trading unit the 24 hourly energies with prices and the upper and lower
bounds of its demand; a generation-type VPP declares a 96-point power
forecast. `declare` gives both for each trading unit of a bid (its
``units``, one per clearing node, `vpp.bids.units`):

* ``hours``: per hour the unit's baseline energy (MWh, positive =
  consumption, net of its generation), its demand bounds (MW: upper =
  hourly baseline + up offer, lower = hourly baseline - down offer, the
  hour-flat offers) and its regulating capability (the profile's
  ``capacity_measure``: ``range`` = upper - lower, ``down``, ``up``);
* ``down_steps`` / ``up_steps``: the price-quantity steps of the unit's
  hour-flat curves (MW per hour offered at or below each price), the price
  declared in CNY/MWh;
* ``generation``: for a unit holding PV, its forecast output per interval (MW).

Every unit is checked against the profile, never shrunk to fit it: the
minimum capacity (per unit, or for the whole VPP when the profile's
``capacity_scope`` is ``vpp``), per hour with capability, the minimum
continuous response, the market day and the 96 points of a generation
curve. The market day is the park's local calendar day (``Park.timezone``),
00:00-24:00 on whole hours: a declaration whose hours do not start at the
park-local midnight, or do not run 24 hours, misses ``market_day`` (one miss
for the start, in park time, one for the number of hours). What misses is
a `RuleMiss` (which rule, the required and the actual value and by how much
it misses) in ``violations``, and the unit (or the declaration) is not
``compliant``.

Prices (the documented rule): a step's declared price is the bid's price
clipped to the profile's [floor, cap] (the market refuses a price outside
it); the step keeps its quantity, and each clip is listed in ``capped``
(rule ``price_cap`` or ``price_floor``, with the bid's price and the amount
cut), so an offer declared below its cost is visible. A capped price does
not make the declaration non-compliant: the declared price is within the rules.
A bid built under the profile's own rules needs no clip above the cap: the
engine leaves assets dearer than the bid's cap out of the bid
(`dispatch.bids`); a clip shows when the bid's own ``rules`` allowed more.

Precedence of rules (`apply_profile`): a field the bid request's own
``rules`` give wins; every field it leaves out comes from the named profile
(and without a profile, from `BidRules`' defaults). The declaration is
checked against the bid's profile, or ``[market] default_profile`` when it
names none, whatever rules built it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from dispatch.portfolio import FloatArray
from vpp.bids.model import BidOffer, BidRecord, BidRequest, BidRules, UnitBid, _Time
from vpp.errors import Conflict, FieldError, InvalidInput
from vpp.market import MarketProfile
from vpp.model import invalid_input

__all__ = [
    "Declaration",
    "DeclaredHour",
    "GenerationCurve",
    "PriceStep",
    "RuleMiss",
    "UnitDeclaration",
    "apply_profile",
    "declaration_csv",
    "declare",
]

_EPS = 1e-6
#: Points of a generation-type declaration (one market day at 15 minutes).
GENERATION_POINTS = 96
MARKET_DAY_HOURS = 24


class RuleMiss(BaseModel):
    """A rule a declaration misses, or a price it had to clip.

    Attributes:
        rule: ``min_capacity``, ``min_duration``, ``market_day``,
            ``generation_points``, ``price_cap`` or ``price_floor``.
        scope: what misses it: the ``declaration`` (the whole VPP), a ``unit``,
            an ``hour`` (or a run of hours starting there), or a price ``step``.
        start: the hour (or the run's first hour); absent for a unit or the declaration.
        direction: ``up`` or ``down`` for a price step.
        required: the rule's value (a minimum, or the cap / floor).
        actual: the declaration's value.
        miss: by how much it misses (>= 0, in ``unit``).
        unit: unit of the three values: ``MW``, ``min``, ``h``, ``points``, ``CNY/MWh``.
        detail: what is off, in words (a ``market_day`` miss: the start in park time).
    """

    rule: Literal[
        "min_capacity",
        "min_duration",
        "market_day",
        "generation_points",
        "price_cap",
        "price_floor",
    ]
    scope: Literal["declaration", "unit", "hour", "step"]
    start: _Time | None = None
    direction: Literal["up", "down"] | None = None
    required: float
    actual: float
    miss: float
    unit: str
    detail: str | None = None


class DeclaredHour(BaseModel):
    """One hour of a load-type declaration (MWh and MW).

    Attributes:
        start: start of the hour, in the park's time zone.
        energy_mwh: the unit's baseline energy in the hour (positive = consumption).
        upper_mw: upper bound of its demand (hourly baseline + hour-flat up offer).
        lower_mw: lower bound (hourly baseline - hour-flat down offer).
        capability_mw: its regulating capability by the profile's measure.
    """

    start: _Time
    energy_mwh: float
    upper_mw: float
    lower_mw: float
    capability_mw: float


class PriceStep(BaseModel):
    """One step of a declared price-quantity curve.

    Attributes:
        price_cny_per_mwh: the declared price (the bid's, clipped to the profile's limits).
        bid_price_cny_per_mwh: the bid's price of the step.
        mw: per hour, the capacity offered at or below this price, MW.
    """

    price_cny_per_mwh: float
    bid_price_cny_per_mwh: float
    mw: list[float]


class GenerationCurve(BaseModel):
    """A generation-type declaration: the unit's forecast generation (MW >= 0).

    Attributes:
        asset_ids: the generating assets (PV).
        interval_minutes: length of a point.
        mw: one value per interval of the bid (96 on a market day at 15 minutes).
    """

    asset_ids: list[str]
    interval_minutes: int
    mw: list[float]


class UnitDeclaration(BaseModel):
    """The declaration of one trading unit.

    Attributes:
        node: its clearing node (the assets' ``grid_node``).
        asset_ids: its assets.
        capability_mw: its largest hourly regulating capability.
        hours: the load-type table, one row per hour.
        down_steps: the peak-shaving price-quantity steps.
        up_steps: the valley-filling steps.
        generation: the generation-type curve (absent without generating assets).
        compliant: whether the unit meets every rule of the profile.
        violations: the rules it misses (empty when compliant).
        capped: the prices clipped to the profile's limits.
    """

    node: str
    asset_ids: list[str]
    capability_mw: float
    hours: list[DeclaredHour]
    down_steps: list[PriceStep]
    up_steps: list[PriceStep]
    generation: GenerationCurve | None = None
    compliant: bool
    violations: list[RuleMiss]
    capped: list[RuleMiss]


class Declaration(BaseModel):
    """A bid's declaration per trading unit, checked against a market rule profile.

    Attributes:
        bid: the bid's id.
        park: its park.
        profile: the rule profile it is checked against, with its sources.
        price_cap_cny_per_mwh: that profile's declared price cap (spot cap x factor).
        hours: hours of the declaration (24 on a market day).
        timezone: the park's time zone (``Park.timezone``), whose calendar day is the market day.
        units: one per trading unit, ordered by clearing node.
        capability_mw: the largest hourly capability of the units together.
        compliant: whether every unit and the whole meet the profile.
        violations: what the whole misses (the market day, a VPP-wide minimum).
    """

    bid: str
    park: str
    profile: MarketProfile
    price_cap_cny_per_mwh: float
    hours: int
    timezone: str
    units: list[UnitDeclaration]
    capability_mw: float
    compliant: bool
    violations: list[RuleMiss] = Field(default_factory=list)


def apply_profile(req: BidRequest, profiles: Mapping[str, MarketProfile]) -> BidRequest:
    """The request with its rules from its profile, field by field.

    A rule the request's ``rules`` give (in its ``model_fields_set``) wins;
    every other rule is the profile's, so ``{"profile": "gd-market-dr",
    "rules": {"price_cap": 9}}`` keeps the profile's 5 MW minimum. The
    merged rules are validated again (a given ``price_floor`` above the
    profile's cap is 422 naming ``rules.price_floor``).

    Raises:
        InvalidInput: naming ``profile`` when it names no configured profile,
            or ``rules.<field>`` when the merged rules are inconsistent.
    """
    if req.profile is None:
        return req
    profile = profiles.get(req.profile)
    if profile is None:
        known = ", ".join(sorted(profiles))
        message = f"no market profile {req.profile!r} is configured (known: {known})"
        raise InvalidInput([FieldError("profile", message)])
    given = req.rules.model_dump(include=req.rules.model_fields_set)
    rules = {**profile.bid_rules(), **given}
    try:
        merged = BidRules.model_validate(rules)
    except ValidationError as exc:
        raise invalid_input(exc, prefix="rules") from exc
    return req.model_copy(update={"rules": merged})


def _per_hour(values: list[float], k: int, how: Literal["sum", "mean", "min"]) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1, k)
    if how == "sum":
        return np.asarray(arr.sum(axis=1), dtype=np.float64)
    if how == "mean":
        return np.asarray(arr.mean(axis=1), dtype=np.float64)
    return np.asarray(arr.min(axis=1), dtype=np.float64)


def _hourly_offer(hourly: BidOffer | None, quarter: BidOffer) -> tuple[BidOffer, bool]:
    """The hour-flat offer when the unit has one, else the quarter-hour one (held per hour)."""
    return (hourly, True) if hourly is not None else (quarter, False)


def _hour_values(values: list[float], k: int, flat: bool) -> FloatArray:
    # An hour-flat row holds one value per hour; otherwise what holds the whole hour.
    return np.asarray(values[::k]) if flat else _per_hour(values, k, "min")


def _steps(
    offer: BidOffer,
    flat: bool,
    k: int,
    profile: MarketProfile,
    direction: Literal["up", "down"],
    capped: list[RuleMiss],
) -> list[PriceStep]:
    cap, floor = profile.price_cap_cny_per_mwh, profile.price_floor_cny_per_mwh
    steps = []
    for price_kwh, row in zip(offer.prices, offer.curve_kw, strict=True):
        price = round(price_kwh * 1000.0, 3)
        declared = min(max(price, floor), cap)
        if price > cap + _EPS:
            capped.append(
                RuleMiss(rule="price_cap", scope="step", direction=direction, required=cap,
                         actual=price, miss=round(price - cap, 3), unit="CNY/MWh")
            )  # fmt: skip
        elif price < floor - _EPS:
            capped.append(
                RuleMiss(rule="price_floor", scope="step", direction=direction, required=floor,
                         actual=price, miss=round(floor - price, 3), unit="CNY/MWh")
            )  # fmt: skip
        mw = [round(v / 1000.0, 6) for v in _hour_values(row, k, flat)]
        steps.append(PriceStep(price_cny_per_mwh=declared, bid_price_cny_per_mwh=price, mw=mw))
    return steps


def _capacity_misses(
    capability: FloatArray, starts: list[_Time], profile: MarketProfile, scope: str
) -> list[RuleMiss]:
    """The minimum capacity (of the whole, and per hour with capability) and duration checks."""
    need = profile.min_capacity_mw
    misses: list[RuleMiss] = []
    best = float(capability.max()) if len(capability) else 0.0
    whole: Literal["declaration", "unit"] = "declaration" if scope == "declaration" else "unit"
    if best < need - _EPS:
        misses.append(
            RuleMiss(rule="min_capacity", scope=whole, required=need, actual=round(best, 6),
                     miss=round(need - best, 6), unit="MW")
        )  # fmt: skip
    for h, cap in enumerate(capability):
        if _EPS < cap < need - _EPS:
            misses.append(
                RuleMiss(rule="min_capacity", scope="hour", start=starts[h], required=need,
                         actual=round(float(cap), 6), miss=round(need - float(cap), 6), unit="MW")
            )  # fmt: skip
    on = np.concatenate([[0], (capability >= max(need, _EPS) - _EPS).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(on))
    for s, e in zip(edges[::2], edges[1::2], strict=True):
        minutes = 60.0 * float(e - s)
        if minutes < profile.min_duration_minutes - _EPS:
            misses.append(
                RuleMiss(rule="min_duration", scope="hour", start=starts[s],
                         required=profile.min_duration_minutes, actual=minutes,
                         miss=profile.min_duration_minutes - minutes, unit="min")
            )  # fmt: skip
    return misses


def _capability(profile: MarketProfile, up: FloatArray, down: FloatArray) -> FloatArray:
    if profile.capacity_measure == "down":
        return down
    if profile.capacity_measure == "up":
        return up
    return up + down


def _unit(
    unit: UnitBid, bid: BidRecord, profile: MarketProfile, starts: list[_Time], k: int
) -> tuple[UnitDeclaration, FloatArray]:
    dt_h = bid.interval_minutes / 60.0
    energy = _per_hour(unit.baseline_kw, k, "sum") * dt_h / 1000.0
    base = _per_hour(unit.baseline_kw, k, "mean")
    up_offer, up_flat = _hourly_offer(unit.hourly_up, unit.up)
    down_offer, down_flat = _hourly_offer(unit.hourly_down, unit.down)
    up = _hour_values(up_offer.quantity_kw, k, up_flat)
    down = _hour_values(down_offer.quantity_kw, k, down_flat)
    capability = _capability(profile, up, down) / 1000.0
    hours = [
        DeclaredHour(
            start=starts[h],
            energy_mwh=round(float(energy[h]), 6),
            upper_mw=round(float(base[h] + up[h]) / 1000.0, 6),
            lower_mw=round(float(base[h] - down[h]) / 1000.0, 6),
            capability_mw=round(float(capability[h]), 6),
        )
        for h in range(len(starts))
    ]
    violations = []
    if profile.capacity_scope == "unit":
        violations = _capacity_misses(capability, starts, profile, "unit")
    generation = None
    if unit.generation_kw is not None:
        generation = GenerationCurve(
            asset_ids=unit.generation_ids,
            interval_minutes=bid.interval_minutes,
            mw=[round(v / 1000.0, 6) for v in unit.generation_kw],
        )
        points = len(unit.generation_kw) * bid.interval_minutes / 15.0
        if bid.interval_minutes != 15 or len(unit.generation_kw) != GENERATION_POINTS:
            violations.append(
                RuleMiss(rule="generation_points", scope="unit", required=GENERATION_POINTS,
                         actual=len(unit.generation_kw),
                         miss=abs(GENERATION_POINTS - points), unit="points")
            )  # fmt: skip
    capped: list[RuleMiss] = []
    declared = UnitDeclaration(
        node=unit.node,
        asset_ids=unit.asset_ids,
        capability_mw=round(float(capability.max()), 6) if len(capability) else 0.0,
        hours=hours,
        down_steps=_steps(down_offer, down_flat, k, profile, "down", capped),
        up_steps=_steps(up_offer, up_flat, k, profile, "up", capped),
        generation=generation,
        compliant=not violations,
        violations=violations,
        capped=capped,
    )
    return declared, capability


def _market_day_misses(start: datetime, n_hours: int, tz: ZoneInfo) -> list[RuleMiss]:
    """The market-day checks: the hours start at the park-local midnight and run 24 hours."""
    misses: list[RuleMiss] = []
    local = start.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    past = (local - midnight).total_seconds() / 60.0
    if past > _EPS:
        off = min(past, 24 * 60.0 - past)  # to the nearest park-local midnight
        detail = (
            f"the hours start at {local:%Y-%m-%d %H:%M:%S} {tz.key} (UTC{local:%z}), "
            f"not at the park's local midnight"
        )
        misses.append(
            RuleMiss(rule="market_day", scope="declaration", start=local, required=0.0,
                     actual=round(past, 3), miss=round(off, 3), unit="min", detail=detail)
        )  # fmt: skip
    if n_hours != MARKET_DAY_HOURS:
        misses.append(
            RuleMiss(rule="market_day", scope="declaration", required=MARKET_DAY_HOURS,
                     actual=n_hours, miss=abs(MARKET_DAY_HOURS - n_hours), unit="h",
                     detail=f"{n_hours} hours, not the market day's {MARKET_DAY_HOURS}")
        )  # fmt: skip
    return misses


def declare(bid: BidRecord, profile: MarketProfile, timezone: str) -> Declaration:
    """The bid's declaration per trading unit, checked against ``profile``.

    Args:
        bid: a stored bid with its ``units``.
        profile: the rule profile to check against.
        timezone: the park's time zone (``Park.timezone``, an IANA name): its
            calendar day 00:00-24:00 is the market day the hours must fill.

    Returns:
        The declaration; what misses a rule is in ``violations``, never dropped.

    Raises:
        Conflict: the bid has no trading units (stored before they were built)
            or its window is not whole hours (no hourly declaration exists).
    """
    if bid.units is None:
        raise Conflict("format: this bid has no trading units (it was stored before they were)")
    if (len(bid.starts) * bid.interval_minutes) % 60:
        raise Conflict("format: the bid's window is not whole hours; no hourly declaration")
    tz = ZoneInfo(timezone)
    k = 60 // bid.interval_minutes
    n_hours = len(bid.starts) // k
    starts = [(bid.start + timedelta(hours=h)).astimezone(tz) for h in range(n_hours)]
    units, caps = [], []
    for unit in bid.units:
        declared, capability = _unit(unit, bid, profile, starts, k)
        units.append(declared)
        caps.append(capability)
    total = np.asarray(np.sum(caps, axis=0)) if caps else np.zeros(n_hours)
    violations = _market_day_misses(bid.start, n_hours, tz)
    if profile.capacity_scope == "vpp":
        violations += _capacity_misses(total, starts, profile, "declaration")
    return Declaration(
        bid=bid.id,
        park=bid.park,
        profile=profile,
        price_cap_cny_per_mwh=profile.price_cap_cny_per_mwh,
        hours=n_hours,
        timezone=timezone,
        units=units,
        capability_mw=round(float(total.max()), 6) if n_hours else 0.0,
        compliant=not violations and all(u.compliant for u in units),
        violations=violations,
    )


def _miss_text(miss: RuleMiss) -> str:
    # e.g. "min_capacity 1.2/5 MW" (actual/required unit)
    return f"{miss.rule} {miss.actual:g}/{miss.required:g} {miss.unit}"


def _joined(misses: list[RuleMiss]) -> str:
    return "; ".join(_miss_text(m) for m in misses)


def declaration_csv(decl: Declaration) -> str:
    """The load-type tables as one CSV: a row per unit and hour.

    Columns:

    * ``node``, ``start`` (ISO 8601, park time), ``energy_mwh``, ``lower_mw``,
      ``upper_mw``, ``capability_mw``: the `DeclaredHour`;
    * ``unit_compliant``: the unit's ``compliant`` (``true``/``false``);
    * ``declaration_compliant``: the whole declaration's ``compliant``, the
      same on every row (a compliant unit of a non-compliant VPP is still
      not declarable as is);
    * ``hour_violations``: the misses of the row's hour (``scope`` ``hour``
      starting there: a per-hour minimum, or a run too short that starts
      there), the unit's as ``unit: …`` and the VPP's as ``vpp: …``;
    * ``unit_violations``: the unit's whole-unit misses (``scope`` ``unit``);
    * ``declaration_violations``: the declaration's whole misses (``scope``
      ``declaration``, e.g. ``market_day``, a VPP-wide minimum).

    A miss reads ``rule actual/required unit`` (``min_capacity 1.2/5 MW``),
    several joined by ``; ``; empty when none. The JSON form has the same
    misses with their ``miss`` and ``detail``.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["node", "start", "energy_mwh", "lower_mw", "upper_mw", "capability_mw",
         "unit_compliant", "declaration_compliant", "hour_violations", "unit_violations",
         "declaration_violations"]
    )  # fmt: skip
    whole = _joined([v for v in decl.violations if v.scope == "declaration"])
    vpp_hours = [v for v in decl.violations if v.scope == "hour"]
    for unit in decl.units:
        unit_hours = [v for v in unit.violations if v.scope == "hour"]
        unit_whole = _joined([v for v in unit.violations if v.scope == "unit"])
        for h in unit.hours:
            at = [f"unit: {_miss_text(v)}" for v in unit_hours if v.start == h.start]
            at += [f"vpp: {_miss_text(v)}" for v in vpp_hours if v.start == h.start]
            writer.writerow(
                [unit.node, h.start.isoformat(), h.energy_mwh, h.lower_mw, h.upper_mw,
                 h.capability_mw, str(unit.compliant).lower(),
                 str(decl.compliant).lower(), "; ".join(at), unit_whole, whole]
            )  # fmt: skip
    return out.getvalue()
