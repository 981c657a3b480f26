"""One-way bounds around a feasible dispatch: the polish of a bid and of a plan.

The homothetic inner model (:mod:`dispatch.homothetic`) keeps each member on a
fixed share of its cluster's deviation, so a member with more room than its
cluster's tightest member ends with room to spare (a battery with more energy
than its share, a thermal load with a wider band, an EV with more headroom).
The polish takes it: from a feasible dispatch ``p`` it looks for setpoints
``p'`` with ``p' <= p`` in the intervals that ask for less consumption and
``p' >= p`` in those that ask for more, each asset inside its own limits over
the whole grid. Every asset then only moves the way the target asks, so the
portfolio deviation grows in every such interval at once and nothing another
interval was promised is taken back.

The bounds are those of a portfolio (:func:`one_way_portfolio`). On it,
:func:`push` takes each asset as far as it can go (viability kernel, greedy
interval by interval), and :func:`between` finds, between the start and that
extreme, setpoints that deliver a given quantity exactly (every dispatch between
two one-way feasible ones is feasible). Neither solves an LP.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from dispatch._dynamics import power_range, step_energy, viable_band
from dispatch.portfolio import FloatArray, Portfolio

__all__ = ["FREE", "between", "one_way_portfolio", "push"]

#: ``side`` value of an interval where the asset keeps its own power bounds.
FREE = 2.0


def one_way_portfolio(pf: Portfolio, setpoints: FloatArray, side: FloatArray) -> Portfolio:
    """The portfolio whose power bounds keep every asset on one side of ``setpoints``.

    Args:
        pf: The portfolio.
        setpoints: ``(N, T)`` a feasible dispatch (clipped into the power bounds here).
        side: ``(T,)`` per interval: ``+1`` (``p' >= p``), ``-1`` (``p' <= p``),
            ``0`` (``p' = p``) or :data:`FREE` (the asset's own bounds).

    Returns:
        The portfolio with those power bounds (energy bounds unchanged).
    """
    p = np.clip(setpoints, pf.p_min, pf.p_max)
    s = np.asarray(side, dtype=np.float64)[None, :]
    p_min = np.where((s < 0) | (s == FREE), pf.p_min, p)
    p_max = np.where(s > 0, pf.p_max, p)  # FREE > 0
    return replace(pf, p_min=np.asarray(p_min), p_max=np.asarray(p_max))


def push(pf: Portfolio, setpoints: FloatArray, side: FloatArray) -> FloatArray:
    """Setpoints ``(N, T)`` as far as each asset can go the way ``side`` says.

    Interval by interval (greedily), every asset takes the extreme of the range
    that keeps it viable on the one-way portfolio (:func:`one_way_portfolio`):
    the highest setpoint where ``side > 0``, the lowest where ``side < 0``, its
    own setpoint where ``side == 0``. ``side`` must not be :data:`FREE` here.

    Args:
        pf: The portfolio.
        setpoints: ``(N, T)`` a feasible dispatch.
        side: ``(T,)`` ``+1``, ``-1`` or ``0`` per interval.

    Returns:
        Setpoints inside every asset's limits over the whole grid, on ``side`` of
        ``setpoints`` in every interval.
    """
    one = one_way_portfolio(pf, setpoints, side)
    band = viable_band(one)
    out = np.empty_like(one.p_min)
    e = one.e0.copy()
    for t in range(one.n_intervals):
        lo, hi = power_range(one, t, e, band)
        p = hi if side[t] > 0 else lo if side[t] < 0 else np.clip(one.p_min[:, t], lo, hi)
        out[:, t] = p
        e = step_energy(one, t, e, p)
    return out


def between(
    near: FloatArray, far: FloatArray, baseline_kw: FloatArray, sign: float, goal_kw: FloatArray
) -> FloatArray:
    """Setpoints between two dispatches whose portfolio deviation meets ``goal_kw``.

    When ``far`` lies on one side of ``near`` for every asset and interval (as
    :func:`push` leaves it), every dispatch between them is feasible too: the
    energy state grows with the power in every interval (a non-negative gain
    per kWh and a positive retention), so its trajectory lies between the two
    feasible ones. Per interval the assets move the same fraction of the way
    from ``near`` to ``far``.

    Args:
        near: ``(N, T)`` the dispatch to start from.
        far: ``(N, T)`` the one-way extreme (:func:`push`).
        baseline_kw: ``(T,)`` portfolio baseline.
        sign: ``+1`` (up) or ``-1`` (down): the quantity is ``sign * deviation``.
        goal_kw: ``(T,)`` quantity wanted per interval (met exactly where it lies
            between the quantities of ``near`` and ``far``).

    Returns:
        The setpoints ``(N, T)``.
    """
    q_near = sign * (near.sum(axis=0) - baseline_kw)
    q_far = sign * (far.sum(axis=0) - baseline_kw)
    span = q_far - q_near
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = np.where(span > 1e-12, np.clip((goal_kw - q_near) / span, 0.0, 1.0), 0.0)
    return np.asarray(near + mu[None, :] * (far - near), dtype=np.float64)
