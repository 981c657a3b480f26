"""Disaggregation: a portfolio deviation target -> per-asset setpoints.

Two stages:

1. *Plan* (optional, cheap): the homothetic inner model of
   :mod:`dispatch.homothetic` (about a hundred clusters, each member on a fixed
   share of its cluster's deviation) is solved as an LP over the rest of the grid
   that minimises deviation cost plus a tracking penalty inside the event window.
   Split by the shares, the plan is a per-asset trajectory that respects every
   asset's limits to the end of the grid: a target inside the inner model (a bid
   awarded in full, or any part of it the model holds) is reproduced exactly.
2. *Realise* (always): interval by interval, every asset gets the range of
   setpoints that keeps it inside its limits *and* able to meet every later
   obligation (the viability kernel). Each asset takes its planned setpoint
   clipped into that range (its baseline without a plan), then the whole
   portfolio closes the remaining gap in proportion to the assets' headroom
   (the *safe fill*). The total is clipped to what the assets can do; the rest
   is reported as shortfall.

Stage 2 runs first on its own (baselines, then the fill): when it delivers the
whole target, that is the result and no LP is solved, which is the common case
of a control cycle. Only a shortfall calls for the plan. When the realised plan
still falls short, it is polished one way (:mod:`dispatch._polish`: in each
short interval every asset may move further the way the shortfall asks, never
back), and a one-signed target that is still missed is met the way a bid is
built (the model's largest bid, polished, cut back to the target), so a bid
awarded in full, or a part of one, is delivered. Stage 2 alone is
already safe, so the result never violates a limit and never fails; stage 1
only decides who moves (and makes a target inside the inner model reachable).
After the event window the assets follow the plan (without a plan: track their
baselines where they can), which shows rebound and proves that later obligations stay reachable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dispatch._dynamics import power_range, step_energy, viable_band
from dispatch._inner_lp import solve_inner
from dispatch._lp import DEFAULT_SOLVER
from dispatch._polish import FREE, between, one_way_portfolio, push
from dispatch.homothetic import (
    DEFAULT_CLUSTERS,
    InnerModel,
    homothetic_labels,
    inner_model,
    trade_signs,
)
from dispatch.portfolio import FloatArray, IntArray, Portfolio

__all__ = ["Dispatch", "disaggregate"]

#: Relative shortfall (per interval, of ``1 + |target|``) below which the safe fill
#: alone is kept and the plan is skipped.
_SHORT_TOL = 1e-6


@dataclass(frozen=True, slots=True, eq=False)
class Dispatch:
    """Per-asset setpoints for an event window.

    Attributes:
        asset_ids: Assets, in row order.
        start: Index of the first event interval on the caller's grid.
        target_kw: ``(K,)`` requested deviation from the portfolio baseline (+ = more consumption).
        delivered_kw: ``(K,)`` deviation the setpoints achieve.
        shortfall_kw: ``(K,)`` ``target - delivered`` (zero when the target is met).
        setpoints_kw: ``(N, K)`` power per asset and interval (+ = drawn from the grid).
        energy_kwh: ``(N, K)`` energy state of each asset after each interval.
        continuation_kw: ``(N, T - start - K)`` setpoints after the window that keep
            every later obligation (tracking the baseline where possible).
        planned: Whether the cluster plan was used (False: the safe fill alone met the
            target, or no plan was found in time).
    """

    asset_ids: tuple[str, ...]
    start: int
    target_kw: FloatArray
    delivered_kw: FloatArray
    shortfall_kw: FloatArray
    setpoints_kw: FloatArray
    energy_kwh: FloatArray
    continuation_kw: FloatArray
    planned: bool

    @property
    def full_setpoints_kw(self) -> FloatArray:
        """Setpoints from ``start`` to the end of the grid (window + continuation)."""
        return np.concatenate([self.setpoints_kw, self.continuation_kw], axis=1)


def _fill(
    p: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    goal: FloatArray,
    groups: IntArray,
    n_groups: int,
) -> FloatArray:
    """Move each group's total towards ``goal`` in proportion to its members' headroom."""
    need = goal - np.bincount(groups, p, minlength=n_groups)
    room_up = np.bincount(groups, hi - p, minlength=n_groups)
    room_dn = np.bincount(groups, p - lo, minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu_up = np.where(need > 0, np.clip(need / room_up, 0.0, 1.0), 0.0)
        mu_dn = np.where(need < 0, np.clip(-need / room_dn, 0.0, 1.0), 0.0)
    mu_up = np.nan_to_num(mu_up)
    mu_dn = np.nan_to_num(mu_dn)
    out = p + mu_up[groups] * (hi - p) - mu_dn[groups] * (p - lo)
    return np.asarray(np.clip(out, lo, hi), dtype=np.float64)


def _plans(
    sub: Portfolio,
    target: FloatArray,
    n_clusters: int,
    penalty: float,
    solver: str,
    time_limit_s: float,
) -> tuple[InnerModel, list[FloatArray]]:
    """The inner model and the per-asset setpoints ``(N, T)`` of its cheapest tracking plans.

    The capped model is solved first (it holds every per-interval power the
    clusters can give). When it misses the target, the sign-fixed model of the bid
    (:func:`dispatch.homothetic.trade_signs`, which depends on the clusters
    alone) is solved too, so a bid built with it, or any part of one, is reproduced.
    That second solve puts tracking first (a trade can cost more per delivered kWh
    than the penalty). The caller keeps the plan that tracks best once realised.
    """
    model = inner_model(sub, homothetic_labels(sub, n_clusters))
    k = len(target)

    def solve(signs: FloatArray | None, weight: float) -> FloatArray | None:
        sol = solve_inner(
            model,
            sub.grid.dt_h,
            target=target,
            penalty=penalty,
            cost_weight=weight,
            signs=signs,
            solver=solver,
            time_limit_s=time_limit_s,
        )
        return sol.deviation

    out = []
    first = solve(None, 1.0)
    if first is not None:
        out.append(first)
    patterns = trade_signs(model, sub.grid.dt_h)
    miss = np.inf if first is None else float(np.abs(first[:, :k].sum(axis=0) - target).sum())
    if patterns is not None and miss > _SHORT_TOL * (1.0 + np.abs(target).sum()):
        # A trade costs both sides' deviation costs per kWh it moves, which can exceed
        # the penalty: here tracking comes first, cost only breaks ties.
        again = solve(patterns, 1e-3)
        if again is not None:
            out.append(again)
    return model, [model.split(sub, dev) for dev in out]


def disaggregate(
    pf: Portfolio,
    target_kw: FloatArray,
    start: int = 0,
    *,
    energy_now: FloatArray | None = None,
    fairness: bool = False,
    clusters_per_kind: int = 6,
    penalty: float = 10.0,
    n_clusters: int = DEFAULT_CLUSTERS,
    solver: str = DEFAULT_SOLVER,
    time_limit_s: float = 1.0,
) -> Dispatch:
    """Split a portfolio deviation target into per-asset setpoints.

    Args:
        pf: Portfolio on the market-day grid (or any grid).
        target_kw: ``(K,)`` deviation from the portfolio baseline for intervals
            ``start .. start+K-1``: negative = reduce consumption (peak shaving),
            positive = increase it (valley filling).
        start: Grid index of the first event interval.
        energy_now: Live energy state of each asset at ``start`` (kWh). Default:
            the state the baseline leads to. The closed loop passes the measured
            states here every cycle, with the remaining window as ``target_kw`` and
            only the assets still online in ``pf``.
        fairness: Use one proportional rule for the whole portfolio (every asset
            gives the same share of its headroom, so owner enterprises share the
            effort in proportion to their flexibility) instead of the cost plan.
        clusters_per_kind: Kept for compatibility; the plan's clusters are set by
            ``n_clusters``.
        penalty: Tracking penalty per kWh in the plan (keep above every deviation cost).
        n_clusters: Cluster budget of the plan's inner model.
        solver: LP solver for the plan.
        time_limit_s: Time limit of the plan LP; without a plan in time the
            proportional rule is used.

    Returns:
        The dispatch. It never raises for an unreachable target: it delivers the
        most it can and reports the rest in ``shortfall_kw``.
    """
    target = np.asarray(target_kw, dtype=np.float64)
    sub = pf.from_interval(start, energy_now)
    k = len(target)
    if k > sub.n_intervals:
        raise ValueError("the target runs past the end of the grid")
    band = viable_band(sub)
    out = _realise(sub, target, start, band, None)
    short = np.abs(out.shortfall_kw) > _SHORT_TOL * (1.0 + np.abs(target))
    if fairness or sub.n_assets == 0 or k == 0 or not short.any():
        return out
    best = out
    model, plans = _plans(sub, target, n_clusters, penalty, solver, time_limit_s)
    for plan in plans:
        planned = _realise(sub, target, start, band, plan)
        short = np.abs(planned.shortfall_kw) > _SHORT_TOL * (1.0 + np.abs(target))
        if short.any():
            planned = min(planned, _polish_plan(sub, target, start, planned, short), key=_miss)
        if _miss(planned) <= _miss(best) + _SHORT_TOL:
            best = planned
    if _miss(best) > _SHORT_TOL * (1.0 + np.abs(target).sum()):
        award = _as_bid(sub, model, target, start, solver, time_limit_s)
        if award is not None and _miss(award) < _miss(best):
            best = award
    return best


def _as_bid(
    sub: Portfolio,
    model: InnerModel,
    target: FloatArray,
    start: int,
    solver: str,
    time_limit_s: float,
) -> Dispatch | None:
    """A one-signed target met the way :mod:`dispatch.bids` builds a bid (``None``: not one-signed).

    The inner model's largest bid in the target's direction (zero where the target
    is zero, and after the window), pushed one way (:func:`dispatch._polish.push`),
    then cut back to the target between the two (:func:`dispatch._polish.between`).
    A bid awarded in full, or any part of one, is met this way: the plan's tracking
    LP may reach the model's part by another optimum that the polish cannot extend.
    """
    k = len(target)
    sign = 1.0 if target.sum() >= 0 else -1.0
    if np.any(sign * target < -_SHORT_TOL * (1.0 + np.abs(target))):
        return None
    goal = np.zeros(sub.n_intervals)
    goal[:k] = sign * target
    after = np.arange(sub.n_intervals) >= k
    patterns = trade_signs(model, sub.grid.dt_h)
    base = sub.total_baseline()
    best: Dispatch | None = None
    # the bid's own LP first (free inside the window), then one held at zero where
    # the target is zero (a part of a bid); sign-fixed before capped, as the bid
    tries = [
        (zero, signs)
        for zero in (after, after | (goal <= _SHORT_TOL * (1.0 + goal)))
        for signs in ((patterns, None) if patterns is not None else (None,))
    ]
    for zero, signs in tries:
        sol = solve_inner(
            model,
            sub.grid.dt_h,
            sign=sign,
            zero=zero,
            cost_weight=1e-3,
            signs=signs,
            solver=solver,
            time_limit_s=time_limit_s,
        )
        if sol.deviation is None:
            continue
        near = np.clip(model.split(sub, sol.deviation), sub.p_min, sub.p_max)
        far = push(sub, near, np.where(zero, 0.0, sign))
        got = _as_dispatch(sub, target, start, between(near, far, base, sign, goal))
        if best is None or _miss(got) < _miss(best):
            best = got
        if _miss(best) <= _SHORT_TOL * (1.0 + np.abs(target).sum()):
            break
    return best


def _as_dispatch(
    sub: Portfolio,
    target: FloatArray,
    start: int,
    full: FloatArray,
    energy: FloatArray | None = None,
    planned: bool = True,
) -> Dispatch:
    """The dispatch of setpoints ``(N, T)`` over the rest of the grid (``energy``: their states)."""
    k = len(target)
    delivered = full[:, :k].sum(axis=0) - sub.baseline[:, :k].sum(axis=0)
    states = sub.energy_trajectory(full) if energy is None else energy
    return Dispatch(
        asset_ids=sub.asset_ids,
        start=start,
        target_kw=target,
        delivered_kw=delivered,
        shortfall_kw=target - delivered,
        setpoints_kw=full[:, :k],
        energy_kwh=states[:, :k],
        continuation_kw=full[:, k:],
        planned=planned,
    )


def _miss(d: Dispatch) -> float:
    return float(np.abs(d.shortfall_kw).sum())


def _polish_plan(
    sub: Portfolio, target: FloatArray, start: int, planned: Dispatch, short: np.ndarray
) -> Dispatch:
    """The realised plan polished one way where it falls short (:mod:`dispatch._polish`).

    In a short interval every asset may move further the way the shortfall asks
    (never back), in the others it holds its planned setpoint; after the window
    it keeps its own bounds. The inner model keeps each member on its cluster's
    share; this lets the members with room to spare deliver the rest.
    """
    k = len(target)
    side = np.full(sub.n_intervals, FREE)
    side[:k] = np.where(short, np.sign(planned.shortfall_kw), 0.0)
    one = one_way_portfolio(sub, planned.full_setpoints_kw, side)
    return _realise(one, target, start, viable_band(one), planned.full_setpoints_kw)


def _realise(
    sub: Portfolio,
    target: FloatArray,
    start: int,
    band: tuple[FloatArray, FloatArray],
    plan: FloatArray | None,
) -> Dispatch:
    """Stage 2: the plan (or the baselines) clipped into the viable ranges, then the fill."""
    k = len(target)
    n = sub.n_assets
    whole = np.zeros(n, dtype=np.int64)
    base_total = sub.baseline.sum(axis=0)
    setpoints = np.empty((n, sub.n_intervals))
    energy = np.empty((n, sub.n_intervals))
    e = sub.e0.copy()
    for t in range(sub.n_intervals):
        lo, hi = power_range(sub, t, e, band)
        p = np.clip(sub.baseline[:, t] if plan is None else plan[:, t], lo, hi)
        if plan is None or t < k:
            goal = base_total[t] + (target[t] if t < k else 0.0)
            p = _fill(p, lo, hi, np.array([goal]), whole, 1)
        setpoints[:, t] = p
        e = step_energy(sub, t, e, p)
        energy[:, t] = e
    return _as_dispatch(sub, target, start, setpoints, energy, plan is not None)
