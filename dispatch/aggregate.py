"""Aggregation of a portfolio into clusters of similar assets (virtual batteries).

A cluster model is a :class:`~dispatch.portfolio.Portfolio` whose "assets" are
clusters: power bounds, baseline and energy bands are the sums of the members'
(the energy band being each member's viability kernel, so future obligations
such as EV departure energy are inside it), and the efficiencies, retention and
costs are power-weighted means.

Guarantee, stated plainly: the cluster model is a *plan*, not a promise. It is
close to the Minkowski sum of its members, which is an outer approximation, so
a cluster trajectory may not split exactly. What the product promises comes from
two other places:

* every setpoint the disaggregator emits lies inside the asset's own viable range
  (:mod:`dispatch._dynamics`), so no asset ever breaks a limit or loses the
  ability to meet a later obligation, whatever the plan said; and
* a bid quantity is only offered after the disaggregator has delivered it in
  full, every interval at once, from the same state (:mod:`dispatch.bids`): the
  bid is a point of the true aggregate feasible set, i.e. an inner approximation
  witnessed by a concrete dispatch that the independent checker accepts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dispatch._dynamics import power_range, step_energy, viable_band
from dispatch.grid import TimeGrid
from dispatch.portfolio import FlexKind, FloatArray, IntArray, Portfolio

__all__ = ["FlexibilityEnvelope", "cluster_labels", "cluster_model", "flexibility_envelope"]


def cluster_labels(pf: Portfolio, per_kind: int = 6) -> IntArray:
    """Group assets of one kind and similar shape into at most ``per_kind`` clusters each.

    Batteries are grouped by energy-to-power ratio, EV sessions by departure,
    other kinds by deviation cost; groups hold equal numbers of assets.

    Args:
        pf: The portfolio.
        per_kind: Largest number of clusters per `FlexKind`.

    Returns:
        ``(N,)`` cluster label per asset, labels ``0..C-1``.
    """
    labels = np.zeros(pf.n_assets, dtype=np.int64)
    next_label = 0
    power = np.maximum(np.abs(pf.p_max).max(axis=1), np.abs(pf.p_min).max(axis=1))
    for kind in FlexKind:
        members = np.flatnonzero(pf.kind == int(kind))
        if members.size == 0:
            continue
        if kind == FlexKind.BATTERY:
            width = (pf.e_max[members, 0] - pf.e_min[members, 0]) / np.maximum(power[members], 1e-9)
            feature = np.asarray(width, dtype=np.float64)
        elif kind == FlexKind.EV:
            present = pf.p_max[members] > 0
            last = pf.n_intervals - np.argmax(present[:, ::-1], axis=1)
            feature = last + np.argmax(present, axis=1) / (pf.n_intervals + 1.0)
        else:
            feature = pf.cost_down[members] + pf.cost_up[members]
        order = members[np.argsort(feature, kind="stable")]
        k = min(per_kind, members.size)
        for j, chunk in enumerate(np.array_split(order, k)):
            labels[chunk] = next_label + j
        next_label += k
    return labels


def _weighted_mean(values: FloatArray, weight: FloatArray, labels: IntArray, c: int) -> FloatArray:
    total = np.bincount(labels, weight, minlength=c)
    mean = np.bincount(labels, values * weight, minlength=c)
    plain = np.bincount(labels, values, minlength=c) / np.maximum(
        np.bincount(labels, minlength=c), 1
    )
    return np.asarray(
        np.where(total > 0, mean / np.where(total > 0, total, 1.0), plain), dtype=np.float64
    )


def cluster_model(
    pf: Portfolio,
    labels: IntArray,
    band: tuple[FloatArray, FloatArray] | None = None,
) -> Portfolio:
    """Virtual-battery model of each cluster, as a portfolio with one unit per cluster.

    Args:
        pf: The portfolio.
        labels: Cluster label per asset (from :func:`cluster_labels`).
        band: Viability band of ``pf`` (computed when omitted).

    Returns:
        A portfolio of ``C`` virtual batteries on the same grid.
    """
    lo, hi = viable_band(pf) if band is None else band
    c = int(labels.max()) + 1 if labels.size else 0
    onehot_rows = labels

    def total(x: FloatArray) -> FloatArray:
        out = np.zeros((c, x.shape[1]))
        np.add.at(out, onehot_rows, x)
        return out

    weight = np.abs(pf.p_max - pf.p_min).mean(axis=1) + 1e-9
    kind = np.zeros(c, dtype=np.int64)
    kind[labels] = pf.kind
    return Portfolio(
        grid=pf.grid,
        asset_ids=tuple(f"cluster-{j}" for j in range(c)),
        kind=kind,
        owner=np.zeros(c, dtype=np.int64),
        p_min=total(pf.p_min),
        p_max=total(pf.p_max),
        baseline=total(pf.baseline),
        p_ref=total(pf.p_ref),
        e_min=total(lo),
        e_max=total(hi),
        e0=np.bincount(labels, pf.e0, minlength=c).astype(np.float64),
        retention=np.clip(_weighted_mean(pf.retention, weight, labels, c), 1e-6, 1.0),
        k_charge=_weighted_mean(pf.k_charge, weight, labels, c),
        k_discharge=_weighted_mean(pf.k_discharge, weight, labels, c),
        cost_up=_weighted_mean(pf.cost_up, weight, labels, c),
        cost_down=_weighted_mean(pf.cost_down, weight, labels, c),
    )


@dataclass(frozen=True, slots=True)
class FlexibilityEnvelope:
    """Live aggregate flexibility per interval (for display and monitoring).

    The power figures are per-interval headroom from the current state: in each
    interval on its own, what the energy state the baseline leads to allows (a
    battery below its SoC window offers no reduction, one above it no extra
    consumption). They are not jointly deliverable over many intervals (use a
    bid for that).

    Attributes:
        grid: Time grid.
        baseline_kw: Portfolio baseline.
        up_kw: Most extra consumption possible in each interval on its own.
        down_kw: Most reduction possible in each interval on its own.
        energy_min_kwh: Sum of the members' viable lower energy bounds.
        energy_max_kwh: Sum of the members' viable upper energy bounds.
    """

    grid: TimeGrid
    baseline_kw: FloatArray
    up_kw: FloatArray
    down_kw: FloatArray
    energy_min_kwh: FloatArray
    energy_max_kwh: FloatArray


def flexibility_envelope(pf: Portfolio) -> FlexibilityEnvelope:
    """Aggregate per-interval power headroom and energy band of a portfolio."""
    band = viable_band(pf)
    lo, hi = band
    finite_lo = np.where(np.isfinite(lo), lo, 0.0)
    finite_hi = np.where(np.isfinite(hi), hi, 0.0)
    # Each interval on its own, from the state the baseline leads to: an asset
    # whose live state is outside its window offers nothing that needs it to
    # move further out, and nothing that needs a move in the other direction first.
    up = np.zeros((pf.n_assets, pf.n_intervals))
    down = np.zeros((pf.n_assets, pf.n_intervals))
    e = pf.e0.copy()
    for t in range(pf.n_intervals):
        p_lo, p_hi = power_range(pf, t, e, band)
        down[:, t] = pf.baseline[:, t] - p_lo
        up[:, t] = p_hi - pf.baseline[:, t]
        e = step_energy(pf, t, e, np.clip(pf.baseline[:, t], p_lo, p_hi))
    return FlexibilityEnvelope(
        grid=pf.grid,
        baseline_kw=pf.total_baseline(),
        up_kw=np.asarray(np.maximum(up, 0.0).sum(axis=0), dtype=np.float64),
        down_kw=np.asarray(np.maximum(down, 0.0).sum(axis=0), dtype=np.float64),
        energy_min_kwh=np.asarray(finite_lo.sum(axis=0), dtype=np.float64),
        energy_max_kwh=np.asarray(finite_hi.sum(axis=0), dtype=np.float64),
    )
