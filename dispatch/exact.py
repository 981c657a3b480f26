"""The exact LP over every asset: the reference the fast path is measured against.

Each asset-interval gets a charge part ``q+ >= 0``, a discharge part ``q- >= 0``
and an energy state; the portfolio constraint ties the sum of powers to the
baseline and the bid or target. Simultaneous ``q+`` and ``q-`` are allowed (the
usual LP relaxation of efficiency losses), so the exact LP's bid is an upper
bound on what the assets can physically deliver. The model is built from sparse
arrays in one call (no per-variable Python), but solving it grows fast with
``N``: use it on small portfolios and in benchmarks, not on the hot path.

The same builder solves the fast path's small cluster models, which are
portfolios of virtual batteries.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import scipy.sparse as sp

from dispatch._lp import DEFAULT_SOLVER, LpResult, hour_flat_rows, solve_lp
from dispatch.portfolio import FloatArray, Portfolio

__all__ = ["Direction", "ExactResult", "exact_bid", "exact_dispatch"]


class Direction(StrEnum):
    """Direction of a bid."""

    UP = "up"  #: consume more than the baseline (valley filling)
    DOWN = "down"  #: consume less than the baseline (peak shaving)


@dataclass(frozen=True, slots=True)
class ExactResult:
    """Result of an exact (or cluster) LP.

    Attributes:
        status: Solver status name.
        setpoints: ``(N, K)`` power per unit, kW (``None`` without a solution).
        deviation_kw: ``(K,)`` portfolio deviation from the baseline, kW.
        seconds: Solver wall time.
    """

    status: str
    setpoints: FloatArray | None
    deviation_kw: FloatArray
    seconds: float


@dataclass(frozen=True, slots=True, eq=False)
class UnitsModel:
    """The exact model as sparse arrays (``min c.x``, ``row_lo <= A x <= row_hi``).

    Attributes:
        c: Objective.
        lb: Column lower bounds.
        ub: Column upper bounds.
        a: Constraint matrix.
        row_lo: Row lower bounds.
        row_hi: Row upper bounds.
        qp: ``(N, K)`` columns of the charge parts ``q+``.
        qm: ``(N, K)`` columns of the discharge parts ``q-``.
    """

    c: FloatArray
    lb: FloatArray
    ub: FloatArray
    a: sp.csr_matrix
    row_lo: FloatArray
    row_hi: FloatArray
    qp: np.ndarray
    qm: np.ndarray


def _units_model(
    pf: Portfolio,
    k: int,
    *,
    direction: Direction | None,
    target: FloatArray | None,
    hourly: bool,
    zero: FloatArray | None,
    penalty: float,
    cost_weight: float,
) -> UnitsModel:
    """Build the LP over the first ``k`` intervals of ``pf``."""
    m = pf.n_assets
    mk = m * k
    dt = pf.grid.dt_h
    p_min, p_max = pf.p_min[:, :k], pf.p_max[:, :k]
    p_ref, base = pf.p_ref[:, :k], pf.baseline[:, :k]
    q_lo, q_hi = p_min - p_ref, p_max - p_ref
    idx = np.arange(mk).reshape(m, k)
    qp, qm, en, dp, dm = (idx + j * mk for j in range(5))
    n_unit_vars = 5 * mk
    extra = n_unit_vars + np.arange(k)
    extra2 = extra + k  # second slack (target mode only)
    n_vars = n_unit_vars + (2 * k if target is not None else k)

    lb = np.zeros(n_vars)
    ub = np.full(n_vars, np.inf)
    ub[qp.ravel()] = np.maximum(q_hi, 0.0).ravel()
    ub[qm.ravel()] = np.maximum(-q_lo, 0.0).ravel()
    lb[en.ravel()] = pf.e_min[:, :k].ravel()
    ub[en.ravel()] = pf.e_max[:, :k].ravel()
    if zero is not None and direction is not None:
        ub[extra[zero]] = 0.0

    rows, cols, vals = [], [], []
    r_lo, r_hi = [], []

    def add(r: np.ndarray, c: np.ndarray, v: np.ndarray | float) -> None:
        rows.append(r.ravel())
        cols.append(c.ravel())
        vals.append(np.broadcast_to(v, r.shape).ravel())

    # power rows: q_lo <= q+ - q- <= q_hi
    r0 = idx
    add(r0, qp, 1.0)
    add(r0, qm, -1.0)
    r_lo.append(q_lo.ravel())
    r_hi.append(q_hi.ravel())
    # energy rows: e[t] - a e[t-1] - dt kc q+ + dt kd q- = a e0 (t = 0) else 0
    r1 = idx + mk
    a = pf.retention[:, None]
    add(r1, en, 1.0)
    add(r1[:, 1:], en[:, :-1], -np.broadcast_to(a, (m, k - 1)))
    add(r1, qp, -dt * np.broadcast_to(pf.k_charge[:, None], (m, k)))
    add(r1, qm, dt * np.broadcast_to(pf.k_discharge[:, None], (m, k)))
    rhs = np.zeros((m, k))
    rhs[:, 0] = pf.retention * pf.e0
    r_lo.append(rhs.ravel())
    r_hi.append(rhs.ravel())
    # deviation rows: dev+ - dev- - q+ + q- = p_ref - baseline
    r2 = idx + 2 * mk
    add(r2, dp, 1.0)
    add(r2, dm, -1.0)
    add(r2, qp, -1.0)
    add(r2, qm, 1.0)
    r_lo.append((p_ref - base).ravel())
    r_hi.append((p_ref - base).ravel())
    # portfolio rows: sum_i (q+ - q-) (+/- extra) = sum(baseline) - sum(p_ref) (+ target)
    r3 = np.broadcast_to(3 * mk + np.arange(k), (m, k))
    add(r3, qp, 1.0)
    add(r3, qm, -1.0)
    agg = base.sum(axis=0) - p_ref.sum(axis=0)
    t_rows = 3 * mk + np.arange(k)
    if target is not None:
        add(t_rows, extra, 1.0)
        add(t_rows, extra2, -1.0)
        agg = agg + target[:k]
    else:
        add(t_rows, extra, 1.0 if direction == Direction.DOWN else -1.0)
    r_lo.append(agg)
    r_hi.append(agg)
    n_rows = 3 * mk + k
    if hourly and direction is not None:
        h_rows, h_cols, h_vals = hour_flat_rows(extra, n_rows, dt)
        add(h_rows, h_cols, h_vals)
        n_new = h_rows.size // 2
        r_lo.append(np.zeros(n_new))
        r_hi.append(np.zeros(n_new))
        n_rows += n_new

    c = np.zeros(n_vars)
    c[dp.ravel()] = cost_weight * dt * np.repeat(pf.cost_up, k)
    c[dm.ravel()] = cost_weight * dt * np.repeat(pf.cost_down, k)
    if target is not None:
        c[extra] = c[extra2] = penalty * dt
    else:
        c[extra] = -dt  # maximise the bid energy: minimise its negative
    mat = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_rows, n_vars)
    )
    return UnitsModel(c, lb, ub, mat, np.concatenate(r_lo), np.concatenate(r_hi), qp, qm)


def _units_lp(
    pf: Portfolio,
    k: int,
    *,
    direction: Direction | None,
    target: FloatArray | None,
    hourly: bool,
    zero: FloatArray | None,
    penalty: float,
    cost_weight: float,
    solver: str,
    time_limit_s: float,
) -> tuple[LpResult, FloatArray | None, FloatArray]:
    """Build and solve the LP over the first ``k`` intervals of ``pf``."""
    mod = _units_model(
        pf,
        k,
        direction=direction,
        target=target,
        hourly=hourly,
        zero=zero,
        penalty=penalty,
        cost_weight=cost_weight,
    )
    res = solve_lp(
        mod.c,
        mod.lb,
        mod.ub,
        mod.a,
        mod.row_lo,
        mod.row_hi,
        solver=solver,
        time_limit_s=time_limit_s,
    )
    return res, *_unit_power(pf, k, res.x, mod)


def _unit_power(
    pf: Portfolio, k: int, x: FloatArray | None, mod: UnitsModel
) -> tuple[FloatArray | None, FloatArray]:
    """Setpoints and portfolio deviation of a solution vector (``None``: no solution)."""
    if x is None:
        return None, np.zeros(k)
    p = pf.p_ref[:, :k] + x[mod.qp] - x[mod.qm]
    dev = p.sum(axis=0) - pf.baseline[:, :k].sum(axis=0)
    return np.asarray(p, dtype=np.float64), np.asarray(dev, dtype=np.float64)


def exact_bid(
    pf: Portfolio,
    direction: Direction,
    *,
    hourly: bool = False,
    zero: FloatArray | None = None,
    cost_weight: float = 0.0,
    solver: str = DEFAULT_SOLVER,
    time_limit_s: float = 120.0,
) -> ExactResult:
    """Largest jointly deliverable bid: maximise the bid energy ``sum_t Q[t] * dt``.

    The whole profile ``Q`` (``Q >= 0`` in every interval) is delivered at once.

    Args:
        pf: Portfolio over the bid horizon.
        direction: Up or down.
        hourly: Force ``Q`` constant within each hour.
        zero: Optional boolean mask of intervals where ``Q`` must be zero.
        cost_weight: Weight of deviation costs subtracted from the bid energy (tie-break).
        solver: ``"highs"`` or ``"glop"``.
        time_limit_s: Solver time limit.

    Returns:
        The per-interval deviation (signed: negative for a down bid) and setpoints.
    """
    res, p, dev = _units_lp(
        pf,
        pf.n_intervals,
        direction=direction,
        target=None,
        hourly=hourly,
        zero=zero,
        penalty=0.0,
        cost_weight=cost_weight,
        solver=solver,
        time_limit_s=time_limit_s,
    )
    return ExactResult(res.status, p, dev, res.seconds)


def exact_dispatch(
    pf: Portfolio,
    target_kw: FloatArray,
    *,
    penalty: float = 10.0,
    solver: str = DEFAULT_SOLVER,
    time_limit_s: float = 120.0,
) -> ExactResult:
    """Cheapest setpoints that track ``target_kw`` (deviation per interval, from interval 0).

    Minimises deviation cost plus ``penalty`` per kWh of tracking error. Energy
    obligations after the target window are kept by solving to the end of the
    grid with a zero target there.

    Args:
        pf: Portfolio; its interval 0 is the first interval of the target.
        target_kw: Target deviation from the portfolio baseline, kW, ``(K,)``.
        penalty: Cost per kWh of shortfall or excess.
        solver: ``"highs"`` or ``"glop"``.
        time_limit_s: Solver time limit.

    Returns:
        Setpoints for all remaining intervals and the deviation they achieve.
    """
    full = np.zeros(pf.n_intervals)
    full[: len(target_kw)] = target_kw
    res, p, dev = _units_lp(
        pf,
        pf.n_intervals,
        direction=None,
        target=full,
        hourly=False,
        zero=None,
        penalty=penalty,
        cost_weight=1.0,
        solver=solver,
        time_limit_s=time_limit_s,
    )
    return ExactResult(res.status, p, dev, res.seconds)
