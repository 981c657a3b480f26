"""The LP over a homothetic inner model (:mod:`dispatch.homothetic`), built from arrays.

Per cluster and interval there are four variables (``D+``, ``D-``, ``E_lo``,
``E_hi``), so the LP is ``4 * C * T`` columns whatever the number of assets.
Two modes share one builder: a *bid* (maximise the bid energy ``sum_t Q[t] * dt``
with ``sum_c D_c(t) = ±Q(t)``, ``Q >= 0``) and a *target* (track a deviation over
the first ``K`` intervals with a penalised slack, cheapest deviation cost).

The model's slopes are capped so that any split of ``D`` into ``D+ - D-`` keeps
the guarantee (see :mod:`dispatch.homothetic`), so one solve is enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from dispatch._lp import DEFAULT_SOLVER, hour_flat_rows, solve_lp
from dispatch.homothetic import InnerModel
from dispatch.portfolio import FloatArray

#: Cost per kWh on every cluster move, so idle clusters stay at their baselines.
_NUDGE = 1e-6


@dataclass(frozen=True, slots=True)
class InnerSolution:
    """Outcome of an inner-model LP.

    Attributes:
        status: Solver status of the last solve.
        deviation: ``(C, T)`` cluster deviations ``D``, or ``None`` without a solution.
        seconds: Solver wall time.
    """

    status: str
    deviation: FloatArray | None
    seconds: float


def solve_inner(
    model: InnerModel,
    dt: float,
    *,
    sign: float = 0.0,
    target: FloatArray | None = None,
    hourly: bool = False,
    zero: np.ndarray | None = None,
    penalty: float = 10.0,
    cost_weight: float = 1e-3,
    signs: np.ndarray | None = None,
    solver: str = DEFAULT_SOLVER,
    time_limit_s: float = 2.0,
) -> InnerSolution:
    """Solve the bid (``sign = ±1``) or target (``target`` given) LP of ``model``.

    Args:
        model: The inner model.
        dt: Interval length, hours.
        sign: ``+1`` for an up bid, ``-1`` for a down bid (ignored with a target).
        target: ``(K,)`` deviation to track over the first ``K`` intervals.
        hourly: Bid mode: keep ``Q`` constant within each hour.
        zero: Bid mode: ``(T,)`` mask of intervals where ``Q`` must be zero.
        penalty: Target mode: cost per kWh of tracking error.
        cost_weight: Weight of the deviation costs.
        signs: ``(C, T)`` fixed sign of ``D`` where the cluster may move both ways
            (``> 0``: only ``D+``, ``< 0``: only ``D-``, ``0``: free); where fixed,
            the uncapped slopes apply (no simultaneous move is possible there).
        solver: LP solver.
        time_limit_s: Time limit of each solve.

    Returns:
        The cluster deviations.
    """
    c, t = model.d_min.shape
    ct = c * t
    idx = np.arange(ct).reshape(c, t)
    dp, dm, el, eh = (idx + j * ct for j in range(4))
    n_unit = 4 * ct
    k = t if target is None else len(target)
    extra = n_unit + np.arange(k)
    n_vars = n_unit + (k if target is None else 2 * k)

    lb = np.zeros(n_vars)
    ub = np.full(n_vars, np.inf)
    ub[dp.ravel()] = np.maximum(model.d_max, 0.0).ravel()
    ub[dm.ravel()] = np.maximum(-model.d_min, 0.0).ravel()
    lb[el.ravel()] = model.e_lo_min.ravel()
    lb[eh.ravel()] = -np.inf
    ub[eh.ravel()] = model.e_hi_max.ravel()
    if target is None and zero is not None:
        ub[extra[np.asarray(zero, dtype=bool)]] = 0.0
    lo_up, hi_down = model.lo_up, model.hi_down
    if signs is not None:
        fixed = model.two_way & (signs != 0)
        ub[dp[fixed & (signs < 0)]] = 0.0
        ub[dm[fixed & (signs > 0)]] = 0.0
        lo_up = np.where(fixed, model.lo_up_free, lo_up)
        hi_down = np.where(fixed, model.hi_down_free, hi_down)

    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    r_lo: list[np.ndarray] = []
    r_hi: list[np.ndarray] = []

    def add(r: np.ndarray, col: np.ndarray, v: np.ndarray | float) -> None:
        rows.append(r.ravel())
        cols.append(col.ravel())
        vals.append(np.broadcast_to(v, r.shape).ravel())

    add(idx, dp, 1.0)
    add(idx, dm, -1.0)
    r_lo.append(model.d_min.ravel())
    r_hi.append(model.d_max.ravel())
    a = np.broadcast_to(model.retention[:, None], (c, t - 1))
    for block, var, up, down in (
        (1, el, lo_up, model.lo_down),
        (2, eh, model.hi_up, hi_down),
    ):
        r = idx + block * ct
        add(r, var, 1.0)
        add(r[:, 1:], var[:, :-1], -a)
        add(r, dp, -dt * up)
        add(r, dm, dt * down)
        r_lo.append(np.zeros(ct))
        r_hi.append(np.zeros(ct))
    n_rows = 3 * ct
    port = np.broadcast_to(n_rows + np.arange(k), (c, k))
    add(port, dp[:, :k], 1.0)
    add(port, dm[:, :k], -1.0)
    if target is None:
        add(port[0], extra, -1.0 if sign > 0 else 1.0)
        r_lo.append(np.zeros(k))
        r_hi.append(np.zeros(k))
    else:
        add(port[0], extra, 1.0)
        add(port[0], extra + k, -1.0)
        r_lo.append(np.asarray(target, dtype=np.float64))
        r_hi.append(np.asarray(target, dtype=np.float64))
    n_rows += k
    if hourly and target is None:
        h_rows, h_cols, h_vals = hour_flat_rows(extra, n_rows, dt)
        add(h_rows, h_cols, h_vals)
        n_new = h_rows.size // 2
        r_lo.append(np.zeros(n_new))
        r_hi.append(np.zeros(n_new))
        n_rows += n_new

    cost = np.zeros(n_vars)
    cost[dp.ravel()] = (cost_weight * dt * np.repeat(model.cost_up, t)) + _NUDGE
    cost[dm.ravel()] = (cost_weight * dt * np.repeat(model.cost_down, t)) + _NUDGE
    if target is None:
        cost[extra] = -dt
    else:
        cost[n_unit:] = penalty * dt
    mat = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_rows, n_vars),
    )
    row_lo, row_hi = np.concatenate(r_lo), np.concatenate(r_hi)

    res = solve_lp(cost, lb, ub, mat, row_lo, row_hi, solver=solver, time_limit_s=time_limit_s)
    if res.x is None:
        return InnerSolution(res.status, None, res.seconds)
    return InnerSolution(res.status, res.x[dp] - res.x[dm], res.seconds)
