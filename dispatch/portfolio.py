"""The portfolio: every asset as a generalized battery, stored as struct-of-arrays.

Sign convention (used everywhere in the package): power is positive when drawn
from the grid. *Up* flexibility means the portfolio consumes more than its
baseline (valley filling); *down* flexibility means it consumes less (peak
shaving). A deviation is ``p - baseline``.

Asset model, for asset ``i`` and interval ``t`` on a :class:`~dispatch.grid.TimeGrid`::

    p_min[i, t] <= p[i, t] <= p_max[i, t]                      (kW)
    q = p - p_ref                                              (kW)
    e[i, t] = a[i] * e[i, t-1] + dt * (k_c[i] * max(q, 0) - k_d[i] * max(-q, 0))
    e_min[i, t] <= e[i, t] <= e_max[i, t]                      (kWh)
    e[i, -1] = e0[i]

``p_ref`` is the power at which the energy state does not move: zero for a
battery, an EV or a shiftable load (the state is stored energy), the baseline for
loads whose state is a deviation from normal operation (shed debt of a
curtailable load, temperature deviation of a thermal load).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from dispatch.grid import TimeGrid

__all__ = ["FlexKind", "FloatArray", "IntArray", "Portfolio"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class FlexKind(IntEnum):
    """The flexibility model of an asset row (stored in :attr:`Portfolio.kind`).

    The engine's own classification, by how the row's envelope is built, not
    by device: a service maps its enrolled kinds onto it (a flexible load may
    be a curtailable, shiftable or thermal row).
    """

    BATTERY = 0  #: stationary battery storage
    EV = 1  #: one EV charging session (V2G optional)
    CURTAILABLE = 2  #: load that can shed for a while and rebounds
    SHIFTABLE = 3  #: load with a fixed energy over a window
    THERMAL = 4  #: thermal load, a leaky battery over its comfort band
    PV = 5  #: PV generation that can be curtailed


_PER_INTERVAL = ("p_min", "p_max", "baseline", "p_ref", "e_min", "e_max")
_PER_ASSET = ("kind", "owner", "e0", "retention", "k_charge", "k_discharge", "cost_up", "cost_down")


@dataclass(frozen=True, eq=False)
class Portfolio:
    """Struct-of-arrays description of ``N`` assets over ``T`` intervals.

    Attributes:
        grid: The time grid (``grid.n == T``).
        asset_ids: Asset identifiers, length ``N``.
        kind: ``(N,)`` :class:`FlexKind` codes.
        owner: ``(N,)`` owner enterprise codes (any integers).
        p_min: ``(N, T)`` lower power bound, kW.
        p_max: ``(N, T)`` upper power bound, kW.
        baseline: ``(N, T)`` power without demand response, kW; inside the bounds.
        p_ref: ``(N, T)`` power at which the energy state stands still, kW.
        e_min: ``(N, T)`` lower energy bound at the end of each interval, kWh.
        e_max: ``(N, T)`` upper energy bound at the end of each interval, kWh.
        e0: ``(N,)`` energy state now (before interval 0), kWh.
        retention: ``(N,)`` per-interval energy retention ``a`` in ``(0, 1]``.
        k_charge: ``(N,)`` energy per kWh of ``q > 0`` (charge efficiency).
        k_discharge: ``(N,)`` energy per kWh of ``q < 0`` (1 / discharge efficiency).
        cost_up: ``(N,)`` cost per kWh of consuming above baseline.
        cost_down: ``(N,)`` cost per kWh of consuming below baseline.
    """

    grid: TimeGrid
    asset_ids: tuple[str, ...]
    kind: IntArray
    owner: IntArray
    p_min: FloatArray
    p_max: FloatArray
    baseline: FloatArray
    p_ref: FloatArray
    e_min: FloatArray
    e_max: FloatArray
    e0: FloatArray
    retention: FloatArray
    k_charge: FloatArray
    k_discharge: FloatArray
    cost_up: FloatArray
    cost_down: FloatArray

    def __post_init__(self) -> None:
        n, t = len(self.asset_ids), self.grid.n
        for name in _PER_INTERVAL:
            if getattr(self, name).shape != (n, t):
                raise ValueError(f"{name} must have shape ({n}, {t})")
        for name in _PER_ASSET:
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},)")
        if np.any(self.p_min > self.p_max + 1e-9):
            raise ValueError("p_min exceeds p_max")
        if np.any(self.retention <= 0) or np.any(self.retention > 1):
            raise ValueError("retention must lie in (0, 1]")
        if np.any(self.k_charge < 0) or np.any(self.k_discharge < 0):
            raise ValueError("energy coefficients must be non-negative")

    @property
    def n_assets(self) -> int:
        """Number of assets ``N``."""
        return len(self.asset_ids)

    @property
    def n_intervals(self) -> int:
        """Number of intervals ``T``."""
        return self.grid.n

    def total_baseline(self) -> FloatArray:
        """Portfolio baseline per interval, kW, shape ``(T,)``."""
        return np.asarray(self.baseline.sum(axis=0), dtype=np.float64)

    def energy_trajectory(self, power: FloatArray) -> FloatArray:
        """Energy states ``(N, T)`` that the setpoints ``power`` ``(N, T)`` lead to."""
        q = power - self.p_ref
        inc = self.grid.dt_h * (
            self.k_charge[:, None] * np.maximum(q, 0.0)
            - self.k_discharge[:, None] * np.maximum(-q, 0.0)
        )
        out = np.empty_like(q)
        e = self.e0.copy()
        for t in range(q.shape[1]):
            e = self.retention * e + inc[:, t]
            out[:, t] = e
        return out

    def subset(self, index: IntArray | NDArray[np.bool_]) -> Portfolio:
        """The portfolio restricted to the assets selected by ``index`` (mask or indices)."""
        idx = np.flatnonzero(index) if index.dtype == np.bool_ else np.asarray(index)
        changes: dict[str, object] = {
            name: getattr(self, name)[idx] for name in _PER_INTERVAL + _PER_ASSET
        }
        changes["asset_ids"] = tuple(self.asset_ids[i] for i in idx)
        return replace(self, **changes)  # type: ignore[arg-type]

    def from_interval(self, start: int, e0: FloatArray | None = None) -> Portfolio:
        """The portfolio on the grid that begins at interval ``start``.

        Args:
            start: First interval kept, ``0 <= start < T``.
            e0: Energy state of each asset at that point (live state). When omitted,
                the state the baseline leads to is used.

        Returns:
            A portfolio with ``T - start`` intervals.
        """
        if not 0 <= start < self.n_intervals:
            raise ValueError(f"start must lie in [0, {self.n_intervals})")
        if e0 is None:
            e0 = self.e0 if start == 0 else self.energy_trajectory(self.baseline)[:, start - 1]
        grid = replace(
            self.grid, n=self.grid.n - start, start=self.grid.start + start * self.grid.step
        )
        changes: dict[str, object] = {
            name: getattr(self, name)[:, start:] for name in _PER_INTERVAL
        }
        return replace(self, grid=grid, e0=np.asarray(e0, dtype=np.float64), **changes)  # type: ignore[arg-type]

    @staticmethod
    def concat(parts: Sequence[Portfolio]) -> Portfolio:
        """Join portfolios that share one grid into one."""
        if not parts:
            raise ValueError("nothing to concatenate")
        grid = parts[0].grid
        if any(p.grid != grid for p in parts):
            raise ValueError("all parts must share one grid")
        values: dict[str, object] = {"grid": grid}
        for f in fields(Portfolio):
            if f.name == "grid":
                continue
            if f.name == "asset_ids":
                values[f.name] = tuple(a for p in parts for a in p.asset_ids)
            else:
                values[f.name] = np.concatenate([getattr(p, f.name) for p in parts])
        return Portfolio(**values)  # type: ignore[arg-type]
