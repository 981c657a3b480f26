"""The physically tight reference: the exact bid without simultaneous charge and discharge.

The exact LP of :mod:`dispatch.exact` lets an asset charge and discharge in one
interval (``q+ > 0`` and ``q- > 0``). Where the two directions have different
energy slopes (a lossy battery, a V2G session, a curtailable load whose rebound
repays its shed debt at ``1 / rebound_share``), that burns or creates energy at
no net power, which no device can do: the LP is a *relaxation* and its bid an
upper bound. This module adds one binary per such asset-interval (``z = 1``:
only charge, ``z = 0``: only discharge)::

    q+ <= q_hi * z,        q- <= -q_lo * (1 - z)

and solves the MILP with HiGHS under a time limit and a relative gap. Where the
slopes are equal the split is irrelevant (the energy depends on the net power
only), so those asset-intervals get no binary.

The result carries both ends: ``energy_kwh`` is the best physically feasible
bid found (every setpoint passes the independent checker) and ``bound_kwh`` the
solver's proven upper bound on the tight optimum (capped by the relaxed LP). Two
sign-fixed LPs (each asset-interval held to one sign, see :func:`_patterns`)
supply a feasible end when the MILP finds nothing better in time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from dispatch._lp import DEFAULT_SOLVER, solve_lp
from dispatch.exact import (
    Direction,
    ExactResult,
    UnitsModel,
    _unit_power,
    _units_model,
    exact_bid,
)
from dispatch.portfolio import FlexKind, FloatArray, Portfolio

__all__ = ["TightResult", "tight_bid"]

_TOL = 1e-9


@dataclass(frozen=True, slots=True)
class TightResult:
    """The tight reference of one direction.

    Attributes:
        status: Which solve found the feasible end (``"MILP OPTIMAL"``, ``"LP (...)"``).
        setpoints: ``(N, T)`` power per asset of the best feasible bid (``None``: none).
        deviation_kw: ``(T,)`` portfolio deviation of that bid (signed).
        energy_kwh: Bid energy of the best feasible bid (lower end of the tight optimum).
        bound_kwh: Proven upper bound on the tight optimum's bid energy.
        gap: ``(bound - energy) / bound`` (0 when solved to optimality).
        n_binaries: Asset-intervals that needed a binary.
        seconds: Wall time of the MILP (and the fallback LP).
    """

    status: str
    setpoints: FloatArray | None
    deviation_kw: FloatArray
    energy_kwh: float
    bound_kwh: float
    gap: float
    n_binaries: int
    seconds: float


def _two_way(pf: Portfolio, mod: UnitsModel) -> np.ndarray:
    """``(N, T)`` mask of asset-intervals where a simultaneous move changes the energy."""
    lossy = np.abs(pf.k_charge - pf.k_discharge) > _TOL
    both = (mod.ub[mod.qp] > _TOL) & (mod.ub[mod.qm] > _TOL)
    return np.asarray(both & lossy[:, None], dtype=bool)


def _with_binaries(mod: UnitsModel, mask: np.ndarray) -> tuple[UnitsModel, np.ndarray]:
    """The model with one binary and two big-M rows per masked asset-interval."""
    qp, qm = mod.qp[mask], mod.qm[mask]
    m = qp.size
    n0, r0 = mod.c.size, mod.a.shape[0]
    z = n0 + np.arange(m)
    hi_p, hi_m = mod.ub[qp], mod.ub[qm]
    rows = np.concatenate([np.arange(m), np.arange(m), m + np.arange(m), m + np.arange(m)])
    cols = np.concatenate([qp, z, qm, z])
    vals = np.concatenate([np.ones(m), -hi_p, np.ones(m), hi_m])
    extra = sp.csr_matrix((vals, (rows, cols)), shape=(2 * m, n0 + m))
    a = sp.vstack([sp.hstack([mod.a, sp.csr_matrix((r0, m))]), extra], format="csr")
    grown = UnitsModel(
        c=np.concatenate([mod.c, np.zeros(m)]),
        lb=np.concatenate([mod.lb, np.zeros(m)]),
        ub=np.concatenate([mod.ub, np.ones(m)]),
        a=a,
        row_lo=np.concatenate([mod.row_lo, np.full(2 * m, -np.inf)]),
        row_hi=np.concatenate([mod.row_hi, np.zeros(m), hi_m]),
        qp=mod.qp,
        qm=mod.qm,
    )
    return grown, z


def _sign_fixed(
    pf: Portfolio, mod: UnitsModel, mask: np.ndarray, net: FloatArray, solver: str, limit: float
) -> tuple[FloatArray | None, float, float]:
    """The LP with each masked asset-interval held to the sign of ``net``."""
    ub = mod.ub.copy()
    ub[mod.qm[mask & (net >= 0)]] = 0.0
    ub[mod.qp[mask & (net < 0)]] = 0.0
    res = solve_lp(
        mod.c, mod.lb, ub, mod.a, mod.row_lo, mod.row_hi, solver=solver, time_limit_s=limit
    )
    return res.x, res.objective, res.seconds


def _patterns(pf: Portfolio, net: FloatArray) -> list[tuple[str, FloatArray]]:
    """Sign patterns for the fallback LPs: the relaxed optimum's, and two that shuffle.

    Two lossy batteries that trade energy (one charging while the other discharges)
    burn the round-trip loss without any simultaneous move inside one device, which
    the relaxed optimum does inside each battery instead. Alternating the sign of
    batteries by index and interval lets the LP find such trades.

    A load that rebounds (a kWh above its baseline repays more than a kWh of shed
    debt) earns most by shedding and repaying in turns; the relaxed optimum repays
    by a simultaneous move instead. The third pattern lets each such load rebound
    once per period and shed in between, the period as long as one rebound interval
    at full power can repay and the debt budget allows (with the batteries shuffled
    as in the second).
    """
    i = np.arange(pf.n_assets)[:, None]
    t = np.arange(pf.n_intervals)[None, :]
    battery = (pf.kind == FlexKind.BATTERY)[:, None]
    parity = np.where((i + t) % 2 == 0, 1.0, -1.0)
    shuffled = np.where(battery, parity, net)
    out = [("relaxed signs", net), ("battery shuffle", shuffled)]
    rebound = pf.k_charge > pf.k_discharge + _TOL
    if rebound.any():
        dt = pf.grid.dt_h
        up = np.maximum(pf.p_max - pf.p_ref, 0.0).max(axis=1)
        down = np.maximum(pf.p_ref - pf.p_min, 0.0).max(axis=1)
        shed = np.maximum(down * pf.k_discharge * dt, _TOL)
        repay = up * pf.k_charge * dt / shed
        budget = (pf.e_max - pf.e_min).max(axis=1) / shed
        run = np.clip(np.floor(np.minimum(repay, budget) + 1e-9), 1.0, 8.0)[:, None]
        rebound_now = (i + t) % (run + 1.0) == run
        runs = np.where(rebound_now, 1.0, -1.0)
        out.append(("rebound runs", np.where(rebound[:, None], runs, shuffled)))
    return out


def tight_bid(
    pf: Portfolio,
    direction: Direction,
    *,
    relaxed: ExactResult | None = None,
    time_limit_s: float = 120.0,
    mip_gap: float = 0.01,
    solver: str = DEFAULT_SOLVER,
) -> TightResult:
    """Largest bid with no simultaneous charge and discharge inside any asset.

    Feasible end: the best of two sign-fixed LPs (see :func:`_patterns`) and the
    MILP's incumbent. Upper end: the MILP's proven bound, capped by the relaxed LP.

    Args:
        pf: Portfolio over the bid horizon (use on small portfolios: ``N <= 1,000``).
        direction: Up or down.
        relaxed: The relaxed exact LP's result for this direction (solved when omitted).
        time_limit_s: Time limit of the MILP (0: skip it) and of each LP.
        mip_gap: Relative gap at which the MILP stops.
        solver: MILP solver (``"highs"``).

    Returns:
        The best feasible bid found and the proven bound on the tight optimum.
    """
    k = pf.n_intervals
    dt = pf.grid.dt_h
    sign = 1.0 if direction == Direction.UP else -1.0
    mod = _units_model(
        pf,
        k,
        direction=direction,
        target=None,
        hourly=False,
        zero=None,
        penalty=0.0,
        cost_weight=0.0,
    )
    mask = _two_way(pf, mod)
    limit = max(time_limit_s, 1.0)
    if relaxed is None:
        relaxed = exact_bid(pf, direction, solver=solver, time_limit_s=limit)
    seconds = 0.0
    status = "NOT_SOLVED"
    x: FloatArray | None = None
    best = -np.inf
    bound = np.inf
    if relaxed.setpoints is not None:
        bound = float(np.clip(sign * relaxed.deviation_kw, 0, None).sum())
        for name, pattern in _patterns(pf, relaxed.setpoints - pf.p_ref):
            fx, fobj, fs = _sign_fixed(pf, mod, mask, pattern, solver, limit)
            seconds += fs
            if fx is not None and -fobj / dt > best:
                x, best, status = fx, -fobj / dt, f"LP ({name})"
    if time_limit_s > 0 and mask.any():
        grown, z = _with_binaries(mod, mask)
        res = solve_lp(
            grown.c,
            grown.lb,
            grown.ub,
            grown.a,
            grown.row_lo,
            grown.row_hi,
            solver=solver,
            time_limit_s=time_limit_s,
            integer=z,
            mip_gap=mip_gap,
        )
        seconds += res.seconds
        if res.x is not None and -res.objective / dt > best:
            x, best, status = res.x[: mod.c.size], -res.objective / dt, f"MILP {res.status}"
        if np.isfinite(res.bound):
            bound = min(bound, -res.bound / dt)
    elif not mask.any() and x is not None:
        bound = best  # nothing to relax: the relaxed LP is tight
    p, dev = _unit_power(pf, k, x, mod)
    energy = float(np.clip(sign * dev, 0, None).sum() * dt) if p is not None else 0.0
    bound_kwh = max(float(bound * dt), energy)
    gap = (bound_kwh - energy) / bound_kwh if np.isfinite(bound_kwh) and bound_kwh > _TOL else 0.0
    return TightResult(
        status=status,
        setpoints=p,
        deviation_kw=dev,
        energy_kwh=energy,
        bound_kwh=bound_kwh,
        gap=gap,
        n_binaries=int(mask.sum()),
        seconds=seconds,
    )
