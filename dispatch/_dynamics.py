"""Energy-state arithmetic shared by the fast path: viability bands and power ranges.

For one generalized battery the set of energy states from which every future
bound can still be met is an interval (the dynamics are scalar and monotone in
both the state and the power), so the whole viability kernel is two arrays
computed by one backward pass, vectorised over assets.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from dispatch.portfolio import FloatArray, Portfolio

#: Energy margin (kWh) kept inside the viable band when choosing setpoints, so that
#: rounding never pushes a state across a bound.
MARGIN_KWH = 1e-7


def _gain(q: FloatArray, kc: FloatArray, kd: FloatArray) -> FloatArray:
    """Energy gain per hour of power ``q`` (kW) relative to ``p_ref``."""
    return np.asarray(kc * np.maximum(q, 0.0) - kd * np.maximum(-q, 0.0), dtype=np.float64)


def _q_upper(y: FloatArray, kc: FloatArray, kd: FloatArray) -> FloatArray:
    """Largest ``q`` whose gain is at most ``y`` (``+inf`` when the gain saturates)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = np.where(kc > 0, y / np.where(kc > 0, kc, 1.0), np.inf)
        neg = np.where(kd > 0, y / np.where(kd > 0, kd, 1.0), -np.inf)
    return np.asarray(np.where(y >= 0, pos, neg), dtype=np.float64)


def _q_lower(y: FloatArray, kc: FloatArray, kd: FloatArray) -> FloatArray:
    """Smallest ``q`` whose gain is at least ``y`` (``-inf`` when the loss saturates)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        neg = np.where(kd > 0, y / np.where(kd > 0, kd, 1.0), -np.inf)
        pos = np.where(kc > 0, y / np.where(kc > 0, kc, 1.0), np.inf)
    return np.asarray(np.where(y <= 0, neg, pos), dtype=np.float64)


def viable_band(pf: Portfolio) -> tuple[FloatArray, FloatArray]:
    """Viability kernel: bounds ``(lo, hi)``, shape ``(N, T)``, on ``e[t]``.

    A state ``e[t]`` inside ``[lo[t], hi[t]]`` can be continued to the end of the
    grid without breaking any power or energy bound; one outside cannot.
    """
    dt = pf.grid.dt_h
    kc, kd, a = pf.k_charge, pf.k_discharge, pf.retention
    gmax = _gain(pf.p_max - pf.p_ref, kc[:, None], kd[:, None]) * dt
    gmin = _gain(pf.p_min - pf.p_ref, kc[:, None], kd[:, None]) * dt
    lo = pf.e_min.copy()
    hi = pf.e_max.copy()
    for t in range(pf.n_intervals - 1, 0, -1):
        with np.errstate(invalid="ignore"):
            lo[:, t - 1] = np.maximum(lo[:, t - 1], (lo[:, t] - gmax[:, t]) / a)
            hi[:, t - 1] = np.minimum(hi[:, t - 1], (hi[:, t] - gmin[:, t]) / a)
    return lo, hi


def repair(pf: Portfolio) -> Portfolio:
    """Relax energy bounds that cannot be met from the current state.

    The bounds move by the least amount that makes the state ``e0`` viable: an
    EV that cannot reach its requested energy by departure gets the most it can
    reach. (A live state outside a per-interval window never gets here: the
    envelope builders widen that window to it, so no asset is forced back at
    full power; see :mod:`dispatch.envelopes`.)
    """
    dt = pf.grid.dt_h
    kc, kd, a = pf.k_charge, pf.k_discharge, pf.retention
    gmax = _gain(pf.p_max - pf.p_ref, kc[:, None], kd[:, None]) * dt
    gmin = _gain(pf.p_min - pf.p_ref, kc[:, None], kd[:, None]) * dt
    e_min = pf.e_min.copy()
    e_max = pf.e_max.copy()
    r_lo = pf.e0.copy()
    r_hi = pf.e0.copy()
    for t in range(pf.n_intervals):
        r_lo = a * r_lo + gmin[:, t]
        r_hi = a * r_hi + gmax[:, t]
        e_min[:, t] = np.minimum(e_min[:, t], r_hi)
        e_max[:, t] = np.maximum(e_max[:, t], r_lo)
        r_lo = np.maximum(r_lo, e_min[:, t])
        r_hi = np.minimum(r_hi, e_max[:, t])
    return replace(pf, e_min=e_min, e_max=e_max)


def power_range(
    pf: Portfolio,
    t: int,
    e_prev: FloatArray,
    band: tuple[FloatArray, FloatArray],
) -> tuple[FloatArray, FloatArray]:
    """Setpoints ``(lo, hi)`` in kW for interval ``t`` that keep every asset viable.

    Args:
        pf: The portfolio.
        t: Interval index.
        e_prev: Energy state of each asset before interval ``t``.
        band: The viability band from :func:`viable_band`.

    Returns:
        Per-asset power bounds; any setpoint inside them keeps the asset inside its
        limits now and able to meet every later obligation.
    """
    dt = pf.grid.dt_h
    kc, kd, a = pf.k_charge, pf.k_discharge, pf.retention
    base = a * e_prev
    q_min = pf.p_min[:, t] - pf.p_ref[:, t]
    q_max = pf.p_max[:, t] - pf.p_ref[:, t]
    b_lo, b_hi = band[0][:, t], band[1][:, t]
    width = b_hi - b_lo
    margin = np.minimum(MARGIN_KWH, np.maximum(width, 0.0) * 0.25)
    need_lo = _q_lower((b_lo + margin - base) / dt, kc, kd)
    need_hi = _q_upper((b_hi - margin - base) / dt, kc, kd)
    q_lo = np.maximum(q_min, need_lo)
    q_hi = np.minimum(q_max, need_hi)
    bad = q_lo > q_hi
    if np.any(bad):
        # Numerically empty (a point band, or a state a rounding error outside it):
        # push the state back towards the band as hard as the power bounds allow.
        inner = np.where(np.isfinite(need_lo), need_lo, need_hi)
        fallback = np.where(
            need_lo > q_max, q_max, np.where(need_hi < q_min, q_min, np.clip(inner, q_min, q_max))
        )
        q_lo = np.where(bad, fallback, q_lo)
        q_hi = np.where(bad, fallback, q_hi)
    p_ref = pf.p_ref[:, t]
    return p_ref + q_lo, p_ref + q_hi


def step_energy(pf: Portfolio, t: int, e_prev: FloatArray, power: FloatArray) -> FloatArray:
    """Energy state after interval ``t`` given the state before it and the setpoints."""
    q = power - pf.p_ref[:, t]
    return np.asarray(
        pf.retention * e_prev + pf.grid.dt_h * _gain(q, pf.k_charge, pf.k_discharge),
        dtype=np.float64,
    )
