"""Homothetic clusters: an inner approximation of the portfolio's feasible set.

Within a cluster ``c`` every member ``i`` follows its own baseline plus a fixed
share ``s_i > 0`` (shares sum to one) of one cluster deviation ``D_c(t)``::

    p_i(t) = b_i(t) + s_i * D_c(t),        D_c = D+ - D-,  D+, D- >= 0

Power bounds become bounds on ``D_c`` alone:
``max_i (p_min_i - b_i) / s_i <= D_c <= min_i (p_max_i - b_i) / s_i``.

Energy. The energy gain of a member is piecewise linear in its power (slope
``k_charge`` above ``p_ref``, ``k_discharge`` below), so a deviation from the
baseline changes the energy by an amount that lies between two linear bounds:
an increase ``x`` gains between ``lo+ * x`` and ``hi+ * x``, a decrease ``y``
loses between ``hi- * y`` and ``lo- * y``, where the slopes are the smallest and
largest slopes met on the way (they depend only on the signs of the baseline and
the power bounds relative to ``p_ref``, so they are known per member and
interval). Taking the worst member of the cluster gives two scalar recursions::

    E_lo(t) = a * E_lo(t-1) + dt * (min_i lo+_i * D+ - max_i lo-_i * D-)
    E_hi(t) = a * E_hi(t-1) + dt * (max_i hi+_i * D+ - min_i hi-_i * D-)

and every member's energy satisfies ``e_base_i + s_i E_lo <= e_i <= e_base_i +
s_i E_hi`` (members of a cluster share the retention ``a``), so the member
bounds become ``E_lo >= max_i (e_min_i - e_base_i) / s_i`` and ``E_hi <= min_i
(e_max_i - e_base_i) / s_i``.

A simultaneous ``D+`` and ``D-`` moves a member by the net only, so the model
also caps the slopes (``lo+ <= lo-`` and ``hi- <= hi+`` per cluster and
interval where ``D`` may take both signs): then both recursions stay valid
bounds for any split of ``D`` into ``D+ - D-``, and no LP optimum can profit
from charging and discharging at once. Where a solve fixes the sign of ``D`` in
a cluster-interval (only ``D+`` or only ``D-``), the uncapped slopes are valid
there and are used instead (see :func:`dispatch._inner_lp.solve_inner`).

Guarantee: for every cluster trajectory that satisfies these constraints, the
proportional split respects every member's power and energy bounds over the
whole grid (up to the LP's feasibility tolerance). So the model is an inner
approximation of the portfolio's feasible set. Where members share efficiencies
and the baseline sits at ``p_ref`` or never crosses it, it is exact for the
members' shared shape; what is lost is the heterogeneity inside a cluster (and
the capped slopes). Clusters therefore group assets of one kind, retention,
efficiency and sign pattern, split by normalised shape.
"""

from __future__ import annotations

import heapq
import warnings
from dataclasses import dataclass

import numpy as np

from dispatch.portfolio import FloatArray, IntArray, Portfolio

__all__ = [
    "DEFAULT_CLUSTERS",
    "InnerModel",
    "homothetic_labels",
    "inner_model",
    "trade_signs",
]

_EPS = 1e-9
#: Cluster budget of the bid and the disaggregation plan (the LP has ``4 * C * T`` columns).
#: The one-way polish (:mod:`dispatch._polish`) takes the room a fixed share leaves
#: unused, so more clusters buy little: on the synthetic N=1,000 park 20 clusters bid
#: as much as 100 (down 129.6 vs 129.1 MWh, up 213.8 vs 213.0 MWh) in a third of the time.
DEFAULT_CLUSTERS = 20


@dataclass(frozen=True, slots=True, eq=False)
class InnerModel:
    """The cluster constraints of the homothetic inner approximation.

    Attributes:
        labels: ``(N,)`` cluster of each asset, ``0..C-1``.
        shares: ``(N,)`` participation share ``s_i`` of each asset in its cluster.
        d_min: ``(C, T)`` lower bound on the cluster deviation ``D``, kW.
        d_max: ``(C, T)`` upper bound on ``D``, kW.
        e_lo_min: ``(C, T)`` lower bound on the pessimistic energy ``E_lo``, kWh.
        e_hi_max: ``(C, T)`` upper bound on the optimistic energy ``E_hi``, kWh.
        retention: ``(C,)`` shared per-interval retention.
        lo_up: ``(C, T)`` gain per kWh of ``D+`` in ``E_lo``.
        lo_down: ``(C, T)`` loss per kWh of ``D-`` in ``E_lo``.
        hi_up: ``(C, T)`` gain per kWh of ``D+`` in ``E_hi``.
        hi_down: ``(C, T)`` loss per kWh of ``D-`` in ``E_hi``.
        cost_up: ``(C,)`` deviation cost per kWh of ``D+`` (share-weighted).
        cost_down: ``(C,)`` deviation cost per kWh of ``D-``.
        lo_up_free: ``(C, T)`` ``lo_up`` before the cap (valid where ``D`` has one sign).
        hi_down_free: ``(C, T)`` ``hi_down`` before the cap.
        two_way: ``(C, T)`` where ``D`` may take both signs (where the caps bite).
        lossy: ``(C,)`` whether the cluster's slopes differ by direction.
        kind: ``(C,)`` `FlexKind` code of the cluster.
    """

    labels: IntArray
    shares: FloatArray
    d_min: FloatArray
    d_max: FloatArray
    e_lo_min: FloatArray
    e_hi_max: FloatArray
    retention: FloatArray
    lo_up: FloatArray
    lo_down: FloatArray
    hi_up: FloatArray
    hi_down: FloatArray
    cost_up: FloatArray
    cost_down: FloatArray
    lo_up_free: FloatArray
    hi_down_free: FloatArray
    two_way: np.ndarray
    lossy: np.ndarray
    kind: IntArray

    @property
    def n_clusters(self) -> int:
        """Number of clusters ``C``."""
        return int(self.d_min.shape[0])

    def split(self, pf: Portfolio, deviation: FloatArray) -> FloatArray:
        """Member setpoints ``(N, T)`` for cluster deviations ``(C, T)``."""
        return np.asarray(
            pf.baseline + self.shares[:, None] * deviation[self.labels], dtype=np.float64
        )


def _power_weight(pf: Portfolio) -> FloatArray:
    return np.asarray(np.maximum((pf.p_max - pf.p_min).mean(axis=1), _EPS), dtype=np.float64)


def _features(pf: Portfolio, e_base: FloatArray, w: FloatArray) -> FloatArray:
    """Normalised shape of each asset: what decides how well it shares a cluster."""
    t = pf.n_intervals
    hours = max(t * pf.grid.dt_h, _EPS)
    wc = w[:, None]
    up = np.clip((pf.p_max - pf.baseline) / wc, 0.0, 1.0)
    dn = np.clip((pf.baseline - pf.p_min) / wc, 0.0, 1.0)
    with np.errstate(invalid="ignore"):
        room_up = np.clip(np.nan_to_num((pf.e_max - e_base) / wc, posinf=hours), 0.0, hours)
        room_dn = np.clip(np.nan_to_num((e_base - pf.e_min) / wc, posinf=hours), 0.0, hours)
    active = pf.p_max > pf.p_min + _EPS
    any_active = active.any(axis=1)
    first = np.where(any_active, np.argmax(active, axis=1), 0) / t
    last = np.where(any_active, t - np.argmax(active[:, ::-1], axis=1), t) / t
    cols = [
        up.mean(axis=1),
        dn.mean(axis=1),
        room_up.min(axis=1) / hours,
        room_dn.min(axis=1) / hours,
        room_up.mean(axis=1) / hours,
        room_dn.mean(axis=1) / hours,
        2.0 * first,
        2.0 * last,
    ]
    return np.asarray(np.stack(cols, axis=1), dtype=np.float64)


def _regime_keys(pf: Portfolio, e_base: FloatArray) -> IntArray:
    """Assets that may share a cluster have the same key."""
    q_min = pf.p_min - pf.p_ref
    q_max = pf.p_max - pf.p_ref
    tol = 1e-6 * (1.0 + np.abs(pf.e_min) + np.abs(pf.e_max))
    with np.errstate(invalid="ignore"):
        bad = np.any((e_base < pf.e_min - tol) | (e_base > pf.e_max + tol), axis=1)
    cols = np.stack(
        [
            pf.kind.astype(np.float64),
            np.round(pf.retention, 9),
            np.any(q_min < -_EPS, axis=1).astype(np.float64),
            np.any(q_max > _EPS, axis=1).astype(np.float64),
            np.round(pf.k_charge, 6),
            np.round(pf.k_discharge, 6),
            np.any(pf.p_max > pf.p_min + _EPS, axis=1).astype(np.float64),
        ],
        axis=1,
    )
    _, keys = np.unique(cols, axis=0, return_inverse=True)
    keys = np.asarray(keys, dtype=np.int64).ravel()
    # An asset whose own baseline breaks a bound must deviate on its own: a singleton.
    lone = np.flatnonzero(bad)
    keys[lone] = keys.max(initial=-1) + 1 + np.arange(lone.size)
    return keys


def _kd_split(feat: FloatArray, budget: int) -> list[IntArray]:
    """Split rows into ``budget`` groups by repeated median cuts of the widest feature."""
    groups: list[tuple[float, int, IntArray]] = []
    tick = iter(range(2 * budget + 2))

    def push(idx: IntArray) -> None:
        spread = np.ptp(feat[idx], axis=0) if idx.size > 1 else np.zeros(feat.shape[1])
        heapq.heappush(groups, (-float(spread.max()) * idx.size, next(tick), idx))

    push(np.arange(feat.shape[0]))
    done: list[IntArray] = []
    while groups and len(groups) + len(done) < budget:
        score, _, idx = heapq.heappop(groups)
        if score >= -_EPS or idx.size < 2:
            done.append(idx)
            continue
        axis = int(np.argmax(np.ptp(feat[idx], axis=0)))
        order = idx[np.argsort(feat[idx, axis], kind="stable")]
        half = order.size // 2
        push(order[:half])
        push(order[half:])
    return done + [g[2] for g in groups]


def homothetic_labels(pf: Portfolio, n_clusters: int = DEFAULT_CLUSTERS) -> IntArray:
    """Cluster assets of one kind, retention and sign pattern by normalised shape.

    Args:
        pf: The portfolio.
        n_clusters: Cluster budget; each regime (kind, retention, efficiency, sign
            pattern) gets a share proportional to its size, at least one.

    Returns:
        ``(N,)`` cluster label per asset, labels ``0..C-1``.
    """
    n = pf.n_assets
    labels = np.zeros(n, dtype=np.int64)
    if n == 0:
        return labels
    e_base = pf.energy_trajectory(pf.baseline)
    keys = _regime_keys(pf, e_base)
    feat = _features(pf, e_base, _power_weight(pf))
    n_keys = int(keys.max()) + 1
    sizes = np.bincount(keys, minlength=n_keys)
    budget = np.maximum(1, np.floor(max(n_clusters - n_keys, 0) * sizes / n).astype(np.int64) + 1)
    order = np.argsort(keys, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    nxt = 0
    for k in range(n_keys):
        members = order[bounds[k] : bounds[k + 1]]
        for part in _kd_split(feat[members], int(budget[k])):
            labels[members[part]] = nxt
            nxt += 1
    return labels


def _slopes(pf: Portfolio) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per member and interval: ``lo+, lo-, hi+, hi-`` (``nan`` where no move is possible)."""
    q_b = pf.baseline - pf.p_ref
    q_min = pf.p_min - pf.p_ref
    q_max = pf.p_max - pf.p_ref
    kc = np.broadcast_to(pf.k_charge[:, None], q_b.shape)
    kd = np.broadcast_to(pf.k_discharge[:, None], q_b.shape)
    nan = np.full(q_b.shape, np.nan)

    def span(pos: np.ndarray, neg: np.ndarray) -> tuple[FloatArray, FloatArray]:
        lo = np.where(pos & neg, np.minimum(kc, kd), np.where(pos, kc, np.where(neg, kd, nan)))
        hi = np.where(pos & neg, np.maximum(kc, kd), np.where(pos, kc, np.where(neg, kd, nan)))
        return lo, hi

    can_up = q_max > q_b + _EPS
    can_dn = q_min < q_b - _EPS
    up_min, up_max = span(can_up & (q_max > _EPS), can_up & (q_b < -_EPS))
    dn_min, dn_max = span(can_dn & (q_b > _EPS), can_dn & (q_min < -_EPS))
    # increase x: gain in [up_min x, up_max x]; decrease y: loss in [dn_min y, dn_max y]
    return up_min, dn_max, up_max, dn_min


def _reduce(
    x: FloatArray, order: IntArray, starts: IntArray, how: np.ufunc, fill: FloatArray | float
) -> FloatArray:
    """Per-cluster ``how``-reduction of rows of ``x``, ignoring ``nan`` (then ``fill``)."""
    xs = x[order]
    neutral = np.inf if how is np.minimum else -np.inf
    red = how.reduceat(np.where(np.isnan(xs), neutral, xs), starts, axis=0)
    return np.asarray(np.where(np.isinf(red) & (red == neutral), fill, red), dtype=np.float64)


def inner_model(pf: Portfolio, labels: IntArray) -> InnerModel:
    """The homothetic inner approximation for given clusters.

    Shares are proportional to each member's power range (``p_max - p_min``
    averaged over the grid), so the shares do not depend on the bid direction and
    a bid and its disaggregation use one model.

    Args:
        pf: The portfolio.
        labels: ``(N,)`` cluster labels ``0..C-1`` (every label used, members of a
            cluster sharing kind and retention, e.g. from :func:`homothetic_labels`).

    Returns:
        The cluster constraints.
    """
    c = int(labels.max()) + 1 if labels.size else 0
    w = _power_weight(pf)
    shares = w / np.bincount(labels, w, minlength=c)[labels]
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=c))[:-1]])
    s = shares[:, None]
    e_base = pf.energy_trajectory(pf.baseline)
    with np.errstate(invalid="ignore"):
        d_min = _reduce((pf.p_min - pf.baseline) / s, order, starts, np.maximum, 0.0)
        d_max = _reduce((pf.p_max - pf.baseline) / s, order, starts, np.minimum, 0.0)
        e_lo = _reduce((pf.e_min - e_base) / s, order, starts, np.maximum, -np.inf)
        e_hi = _reduce((pf.e_max - e_base) / s, order, starts, np.minimum, np.inf)
    lo_up, lo_dn, hi_up, hi_dn = _slopes(pf)
    kc_mean = np.asarray(np.bincount(labels, shares * pf.k_charge, minlength=c), np.float64)
    kd_mean = np.asarray(np.bincount(labels, shares * pf.k_discharge, minlength=c), np.float64)
    lo_up_c = _reduce(lo_up, order, starts, np.minimum, kc_mean[:, None])
    lo_dn_c = _reduce(lo_dn, order, starts, np.maximum, kd_mean[:, None])
    hi_up_c = _reduce(hi_up, order, starts, np.maximum, kc_mean[:, None])
    hi_dn_c = _reduce(hi_dn, order, starts, np.minimum, kd_mean[:, None])
    # With both D+ and D- positive in one interval the member moves by the net only;
    # these two caps keep both trajectories valid bounds then, so no LP optimum can
    # exploit a simultaneous charge and discharge (the price: a cluster whose slopes
    # differ by direction books its cheaper side conservatively in one trajectory).
    # Only where both signs are allowed: elsewhere one of D+ / D- is fixed at zero.
    both = (d_min < -_EPS) & (d_max > _EPS)
    lo_up_free, hi_dn_free = lo_up_c, hi_dn_c
    lo_up_c = np.where(both, np.minimum(lo_up_c, lo_dn_c), lo_up_c)
    hi_dn_c = np.where(both, np.minimum(hi_dn_c, hi_up_c), hi_dn_c)
    retention = np.zeros(c)
    retention[labels] = pf.retention
    kind = np.zeros(c, dtype=np.int64)
    kind[labels] = pf.kind
    lossy = np.zeros(c, dtype=bool)
    lossy[labels] = np.abs(pf.k_charge - pf.k_discharge) > _EPS
    return InnerModel(
        labels=labels,
        shares=np.asarray(shares, dtype=np.float64),
        d_min=d_min,
        d_max=d_max,
        e_lo_min=e_lo,
        e_hi_max=e_hi,
        retention=retention,
        lo_up=lo_up_c,
        lo_down=lo_dn_c,
        hi_up=hi_up_c,
        hi_down=hi_dn_c,
        cost_up=np.bincount(labels, shares * pf.cost_up, minlength=c).astype(np.float64),
        cost_down=np.bincount(labels, shares * pf.cost_down, minlength=c).astype(np.float64),
        lo_up_free=lo_up_free,
        hi_down_free=hi_dn_free,
        two_way=both,
        lossy=lossy,
        kind=kind,
    )


def trade_signs(model: InnerModel, dt: float) -> FloatArray | None:
    """Signs of ``D`` per cluster-interval for the sign-fixed (uncapped) pass.

    Where a cap of :func:`inner_model` bites (a cluster that may move both ways
    and whose slopes differ by direction), the sign of ``D`` is fixed (``+1``:
    only ``D+``, ``-1``: only ``D-``) so that the uncapped slopes apply there:

    * lossy batteries and V2G sessions (the cap on ``hi-`` bites) alternate by
      cluster and interval, so that one can charge while another discharges: a
      physical trade that burns the round-trip loss, which the tight reference
      finds too;
    * loads that rebound (the cap on ``lo+`` bites: a kWh above the baseline repays
      ``1 / rebound_share`` kWh of shed debt) shed in runs and rebound once per
      period, so shedding pays its debt back at the true rate (with the cap a
      rebound repaid only its own kWh and such a load offered nothing net:
      N=100 down bid 83.9 % of the tight reference before, 98.5 % with it).

    Every other cluster-interval stays free (``0``: capped slopes, both signs).
    The pattern depends on the model alone, not on any solution, so a bid solved
    with it and a disaggregation plan of that bid solve one and the same LP
    (a bid awarded in full is a feasible point of the plan's model).

    Args:
        model: The inner model.
        dt: Interval length, hours.

    Returns:
        ``(C, T)`` signs, or ``None`` when no cap bites anywhere.
    """
    c, t = model.d_min.shape
    lo_bites = model.two_way & (model.lo_up_free > model.lo_down + _EPS)
    hi_bites = model.two_way & (model.hi_down_free > model.hi_up + _EPS)
    fixed = lo_bites | hi_bites
    if not fixed.any():
        return None
    # A rebound cluster (the lo cap bites: a kWh up repays more than a kWh down)
    # rebounds once per period and sheds in the other intervals. A run of sheds is
    # one interval shorter than what one rebound interval at full power could repay,
    # so the rebounds stay below their limit and others can cover them (synthetic
    # park N=100, down: runs of 2 gave 98.5 % of the tight reference, runs of 3 gave
    # 95.0 %), and no longer than the debt budget allows at full shed. A trading
    # cluster (the hi cap bites: lossy batteries) alternates.
    shed = -model.d_min * model.lo_down * dt
    with np.errstate(divide="ignore", invalid="ignore"):
        repay = np.where(lo_bites, model.d_max * model.lo_up_free * dt / shed, np.nan)
        budget = np.where(lo_bites & (model.e_lo_min < 0), -model.e_lo_min / shed, np.nan)
    run = np.ones(c)
    some = lo_bites.any(axis=1)
    if some.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-nan rows of free clusters
            by_repay = np.floor(np.nanmedian(repay[some], axis=1) + 1e-9) - 1.0
            by_budget = np.floor(np.nanmax(budget[some], axis=1) + 1e-9)
        run[some] = np.nan_to_num(np.minimum(by_repay, by_budget), nan=1.0)
    period = 1.0 + np.clip(run, 1.0, 7.0)
    f = (1.0 / period)[:, None]
    pos = np.arange(t)[None, :] + np.arange(c)[:, None]
    plus = np.floor((pos + 1) * f) > np.floor(pos * f)
    return np.asarray(np.where(fixed, np.where(plus, 1.0, -1.0), 0.0), dtype=np.float64)
