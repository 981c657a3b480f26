"""Batch envelope builders: many assets of one kind at once, over struct-of-arrays.

The per-asset builders of :mod:`dispatch.envelopes` make one small
:class:`~dispatch.portfolio.Portfolio` per asset; joining a thousand of them
costs a thousand validations and some twenty small arrays each. The builders
here take the parameters of ``N`` assets as columns (``(N,)`` arrays, one per
field of the per-asset spec) and return one ``N``-row portfolio in a handful
of numpy operations.

Contract: for every input, a batch builder returns exactly (element for
element, the same floating-point operations in the same order) what
``Portfolio.concat`` of the per-asset builder's portfolios returns, row ``i``
being asset ``i``. ``tests/dispatch/test_batch.py`` checks it on random assets.

Columns: floats as ``float64`` arrays; an optional field of the per-asset
spec (``None`` there) is NaN here. Times (an EV's arrival, departure and the
moment its state was read) are given as the per-session scalars the grid
needs (`EvColumns.from_sessions` computes them with the grid's own rules), so
the index arithmetic is the grid's, not a float approximation of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dispatch.envelopes import (
    Battery,
    CurtailableLoad,
    EvSession,
    PvCurtailment,
    departure_lapsed,
    elapsed_in_first_interval_h,
)
from dispatch.grid import TimeGrid
from dispatch.portfolio import FlexKind, FloatArray, IntArray, Portfolio

__all__ = [
    "BatteryColumns",
    "CurtailableColumns",
    "EvColumns",
    "PvColumns",
    "battery_envelopes",
    "curtailable_envelopes",
    "ev_envelopes",
    "pv_envelopes",
]


def _f(values: Sequence[float] | FloatArray) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def _opt(values: Sequence[float | None]) -> FloatArray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


@dataclass(frozen=True)
class BatteryColumns:
    """``N`` batteries as columns (the fields of `dispatch.Battery`, each ``(N,)``).

    ``end_soc_min`` / ``end_soc_max``: NaN where the spec has None.
    """

    asset_ids: tuple[str, ...]
    capacity_kwh: FloatArray
    max_charge_kw: FloatArray
    max_discharge_kw: FloatArray
    soc: FloatArray
    soc_min: FloatArray
    soc_max: FloatArray
    end_soc_min: FloatArray
    end_soc_max: FloatArray
    eta_charge: FloatArray
    eta_discharge: FloatArray
    cost_kwh: FloatArray
    owner: IntArray

    @classmethod
    def from_specs(cls, specs: Sequence[Battery]) -> BatteryColumns:
        """Columns of per-asset specs (a convenience; the service fills the columns directly)."""
        return cls(
            asset_ids=tuple(s.asset_id for s in specs),
            capacity_kwh=_f([s.capacity_kwh for s in specs]),
            max_charge_kw=_f([s.max_charge_kw for s in specs]),
            max_discharge_kw=_f([s.max_discharge_kw for s in specs]),
            soc=_f([s.soc for s in specs]),
            soc_min=_f([s.soc_min for s in specs]),
            soc_max=_f([s.soc_max for s in specs]),
            end_soc_min=_opt([s.end_soc_min for s in specs]),
            end_soc_max=_opt([s.end_soc_max for s in specs]),
            eta_charge=_f([s.eta_charge for s in specs]),
            eta_discharge=_f([s.eta_discharge for s in specs]),
            cost_kwh=_f([s.cost_kwh for s in specs]),
            owner=np.array([s.owner for s in specs], dtype=np.int64),
        )


@dataclass(frozen=True)
class EvColumns:
    """``N`` EV sessions as columns (the fields of `dispatch.EvSession`, each ``(N,)``).

    The session's times enter as what the envelope uses of them on the grid:
    ``first`` (first interval at or after the arrival), ``stop`` (one past the
    last interval ending by the departure, or ``grid.n`` when the departure
    has lapsed), ``lapsed`` (`dispatch.departure_lapsed`) and ``gone_h``
    (`dispatch.elapsed_in_first_interval_h` of ``as_of``). ``uncontrolled_kw``:
    NaN where the spec has None.
    """

    asset_ids: tuple[str, ...]
    first: IntArray
    stop: IntArray
    lapsed: np.ndarray
    gone_h: FloatArray
    energy_needed_kwh: FloatArray
    max_charge_kw: FloatArray
    uncontrolled_kw: FloatArray
    max_discharge_kw: FloatArray
    v2g: np.ndarray
    energy_added_kwh: FloatArray
    headroom_kwh: FloatArray
    v2g_floor_kwh: FloatArray
    eta_charge: FloatArray
    eta_discharge: FloatArray
    cost_up: FloatArray
    cost_down: FloatArray
    owner: IntArray

    @staticmethod
    def times(session: EvSession, grid: TimeGrid) -> tuple[int, int, bool, float]:
        """One session's (first, stop, lapsed, gone_h) on ``grid``, by the grid's own rules."""
        lapsed = departure_lapsed(session.departure, grid)
        first = grid.first_index_at_or_after(session.arrival)
        stop = grid.n if lapsed else grid.last_index_ending_by(session.departure)
        return first, stop, lapsed, elapsed_in_first_interval_h(session.as_of, grid)

    @classmethod
    def from_sessions(cls, sessions: Sequence[EvSession], grid: TimeGrid) -> EvColumns:
        """Columns of per-session specs on ``grid``."""
        times = [cls.times(s, grid) for s in sessions]
        return cls(
            asset_ids=tuple(s.asset_id for s in sessions),
            first=np.array([t[0] for t in times], dtype=np.int64),
            stop=np.array([t[1] for t in times], dtype=np.int64),
            lapsed=np.array([t[2] for t in times], dtype=bool),
            gone_h=_f([t[3] for t in times]),
            energy_needed_kwh=_f([s.energy_needed_kwh for s in sessions]),
            max_charge_kw=_f([s.max_charge_kw for s in sessions]),
            uncontrolled_kw=_opt([s.uncontrolled_kw for s in sessions]),
            max_discharge_kw=_f([s.max_discharge_kw for s in sessions]),
            v2g=np.array([s.v2g for s in sessions], dtype=bool),
            energy_added_kwh=_f([s.energy_added_kwh for s in sessions]),
            headroom_kwh=_f([s.headroom_kwh for s in sessions]),
            v2g_floor_kwh=_f([s.v2g_floor_kwh for s in sessions]),
            eta_charge=_f([s.eta_charge for s in sessions]),
            eta_discharge=_f([s.eta_discharge for s in sessions]),
            cost_up=_f([s.cost_up for s in sessions]),
            cost_down=_f([s.cost_down for s in sessions]),
            owner=np.array([s.owner for s in sessions], dtype=np.int64),
        )


@dataclass(frozen=True)
class CurtailableColumns:
    """``N`` curtailable loads as columns (`dispatch.CurtailableLoad`'s fields, each ``(N,)``).

    ``max_rebound_kw``: NaN where the spec has None.
    """

    asset_ids: tuple[str, ...]
    max_shed_kw: FloatArray
    max_shed_minutes: FloatArray
    rebound_share: FloatArray
    max_rebound_kw: FloatArray
    shed_debt_kwh: FloatArray
    cost_down: FloatArray
    cost_up: FloatArray
    owner: IntArray

    @classmethod
    def from_specs(cls, specs: Sequence[CurtailableLoad]) -> CurtailableColumns:
        """Columns of per-asset specs."""
        return cls(
            asset_ids=tuple(s.asset_id for s in specs),
            max_shed_kw=_f([s.max_shed_kw for s in specs]),
            max_shed_minutes=_f([s.max_shed_minutes for s in specs]),
            rebound_share=_f([s.rebound_share for s in specs]),
            max_rebound_kw=_opt([s.max_rebound_kw for s in specs]),
            shed_debt_kwh=_f([s.shed_debt_kwh for s in specs]),
            cost_down=_f([s.cost_down for s in specs]),
            cost_up=_f([s.cost_up for s in specs]),
            owner=np.array([s.owner for s in specs], dtype=np.int64),
        )


@dataclass(frozen=True)
class PvColumns:
    """``N`` curtailable PV arrays as columns (`dispatch.PvCurtailment`'s fields)."""

    asset_ids: tuple[str, ...]
    cost_kwh: FloatArray
    owner: IntArray

    @classmethod
    def from_specs(cls, specs: Sequence[PvCurtailment]) -> PvColumns:
        """Columns of per-asset specs."""
        return cls(
            asset_ids=tuple(s.asset_id for s in specs),
            cost_kwh=_f([s.cost_kwh for s in specs]),
            owner=np.array([s.owner for s in specs], dtype=np.int64),
        )


def _full(column: FloatArray, grid: TimeGrid) -> FloatArray:
    """``(N,)`` -> ``(N, T)``, each row held at its value."""
    return np.repeat(np.asarray(column, dtype=np.float64)[:, None], grid.n, axis=1)


def _rows(x: FloatArray, n: int, grid: TimeGrid) -> FloatArray:
    """A baseline given as ``(T,)`` (shared) or ``(N, T)``, as an ``(N, T)`` copy."""
    return np.broadcast_to(np.asarray(x, dtype=np.float64), (n, grid.n)).copy()


def _many(
    grid: TimeGrid,
    *,
    asset_ids: tuple[str, ...],
    kind: FlexKind,
    owner: IntArray,
    p_min: FloatArray,
    p_max: FloatArray,
    baseline: FloatArray,
    p_ref: FloatArray,
    e_min: FloatArray,
    e_max: FloatArray,
    e0: FloatArray,
    k_charge: FloatArray,
    k_discharge: FloatArray,
    cost_up: FloatArray,
    cost_down: FloatArray,
) -> Portfolio:
    """The batch counterpart of ``dispatch.envelopes._one`` (baseline clipped into the box)."""
    n = len(asset_ids)

    def rows(x: FloatArray) -> FloatArray:
        return np.broadcast_to(np.asarray(x, dtype=np.float64), (n, grid.n)).copy()

    def col(x: FloatArray) -> FloatArray:
        return np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)).copy()

    lo, hi = rows(p_min), rows(p_max)
    return Portfolio(
        grid=grid,
        asset_ids=asset_ids,
        kind=np.full(n, int(kind), dtype=np.int64),
        owner=np.asarray(owner, dtype=np.int64).copy(),
        p_min=lo,
        p_max=hi,
        baseline=np.clip(rows(baseline), lo, hi),
        p_ref=rows(p_ref),
        e_min=rows(e_min),
        e_max=rows(e_max),
        e0=col(e0),
        retention=np.ones(n),
        k_charge=col(k_charge),
        k_discharge=col(k_discharge),
        cost_up=col(cost_up),
        cost_down=col(cost_down),
    )


def battery_envelopes(
    b: BatteryColumns, grid: TimeGrid, baseline: FloatArray | None = None
) -> Portfolio:
    """`dispatch.battery_envelope` for ``N`` batteries at once.

    Args:
        b: the batteries' parameters and live SoC, as columns.
        grid: the time grid.
        baseline: ``(T,)`` or ``(N, T)`` power without demand response (default idle).

    Returns:
        An ``N``-row portfolio (row ``i`` = battery ``i``).
    """
    n = len(b.asset_ids)
    cap = b.capacity_kwh
    lo = np.minimum(b.soc_min, b.soc)
    hi = np.maximum(b.soc_max, b.soc)
    e_min = _full(lo * cap, grid)
    e_max = _full(hi * cap, grid)
    end_lo = np.where(np.isnan(b.end_soc_min), lo, b.end_soc_min)
    end_hi = np.where(np.isnan(b.end_soc_max), hi, b.end_soc_max)
    e_min[:, -1], e_max[:, -1] = end_lo * cap, end_hi * cap
    zeros = np.zeros((n, grid.n))
    return _many(
        grid,
        asset_ids=b.asset_ids,
        kind=FlexKind.BATTERY,
        owner=b.owner,
        p_min=_full(-b.max_discharge_kw, grid),
        p_max=_full(b.max_charge_kw, grid),
        baseline=zeros if baseline is None else _rows(baseline, n, grid),
        p_ref=zeros,
        e_min=e_min,
        e_max=e_max,
        e0=b.soc * cap,
        k_charge=b.eta_charge,
        k_discharge=1.0 / b.eta_discharge,
        cost_up=b.cost_kwh,
        cost_down=b.cost_kwh,
    )


def _asap_rows(limit: FloatArray, energy: FloatArray, gain: FloatArray, dt: float) -> FloatArray:
    """``dispatch.envelopes._asap`` per row: each row takes its energy as early as it can."""
    need = np.maximum(energy, 0.0) / gain
    steps = limit * dt
    cum_before = np.zeros_like(limit)
    cum_before[:, 1:] = np.cumsum(steps, axis=1)[:, :-1]
    return np.asarray(np.clip(need[:, None] - cum_before, 0.0, steps) / dt, dtype=np.float64)


def ev_envelopes(s: EvColumns, grid: TimeGrid, baseline: FloatArray | None = None) -> Portfolio:
    """`dispatch.ev_envelope` for ``N`` sessions at once (the same rules, row by row).

    Args:
        s: the sessions as columns (their times already on ``grid``).
        grid: the time grid.
        baseline: ``(T,)`` or ``(N, T)`` power without demand response
            (default: each session charging uncontrolled, as `dispatch.ev_envelope`).

    Returns:
        An ``N``-row portfolio (zero power outside each session).
    """
    n = len(s.asset_ids)
    t = np.arange(grid.n)[None, :]
    present = (t >= s.first[:, None]) & (t < s.stop[:, None])
    p_max = np.where(present, s.max_charge_kw[:, None], 0.0)
    p_min = np.where(present & s.v2g[:, None], -s.max_discharge_kw[:, None], 0.0)
    remaining = s.energy_needed_kwh - s.energy_added_kwh
    if baseline is None:
        unc = s.uncontrolled_kw
        rate = np.where(np.isnan(unc), s.max_charge_kw, np.minimum(s.max_charge_kw,
                        np.maximum(np.nan_to_num(unc), 0.0)))  # fmt: skip
        base = _asap_rows(np.where(present, rate[:, None], 0.0), remaining, s.eta_charge,
                          grid.dt_h)  # fmt: skip
    else:
        base = _rows(baseline, n, grid)
    e_min = _full(s.energy_added_kwh - np.maximum(s.v2g_floor_kwh, 0.0), grid)
    due = (s.stop > 0) & (s.stop <= grid.n) & ~s.lapsed
    gone = np.where(s.first == 0, s.gone_h, 0.0)
    phantom = s.eta_charge * s.max_charge_kw * gone
    need = s.energy_needed_kwh + phantom
    tail = due[:, None] & (t >= (s.stop - 1)[:, None])
    e_min = np.where(tail, need[:, None], e_min)
    e_max = _full(s.energy_added_kwh + np.maximum(s.headroom_kwh, 0.0), grid)
    return _many(
        grid,
        asset_ids=s.asset_ids,
        kind=FlexKind.EV,
        owner=s.owner,
        p_min=p_min,
        p_max=p_max,
        baseline=base,
        p_ref=np.zeros((n, grid.n)),
        e_min=e_min,
        e_max=np.maximum(e_max, e_min),
        e0=s.energy_added_kwh,
        k_charge=s.eta_charge,
        k_discharge=1.0 / s.eta_discharge,
        cost_up=s.cost_up,
        cost_down=s.cost_down,
    )


def curtailable_envelopes(c: CurtailableColumns, grid: TimeGrid, baseline: FloatArray) -> Portfolio:
    """`dispatch.curtailable_envelope` for ``N`` loads at once.

    Args:
        c: the loads' parameters and live shed debt, as columns.
        grid: the time grid.
        baseline: ``(N, T)`` (or a shared ``(T,)``) forecast consumption, kW.

    Returns:
        An ``N``-row portfolio whose energy state is minus each load's debt.
    """
    n = len(c.asset_ids)
    b = np.maximum(_rows(baseline, n, grid), 0.0)
    share = np.minimum(np.maximum(c.rebound_share, 0.0), 1.0)
    rebound = np.where(np.isnan(c.max_rebound_kw), c.max_shed_kw, c.max_rebound_kw)
    budget = c.max_shed_kw * c.max_shed_minutes / 60.0
    e_min = _full(np.minimum(-budget, -c.shed_debt_kwh), grid)
    e_min[:, -1] = np.where(share > 0, 0.0, e_min[:, -1])
    positive = share > 0
    k_charge = np.zeros(n)
    np.divide(1.0, share, out=k_charge, where=positive)
    return _many(
        grid,
        asset_ids=c.asset_ids,
        kind=FlexKind.CURTAILABLE,
        owner=c.owner,
        p_min=np.maximum(b - c.max_shed_kw[:, None], 0.0),
        p_max=np.where(positive[:, None], b + rebound[:, None], b),
        baseline=b,
        p_ref=b,
        e_min=e_min,
        e_max=np.zeros((n, grid.n)),
        e0=-c.shed_debt_kwh,
        k_charge=k_charge,
        k_discharge=np.ones(n),
        cost_up=c.cost_up,
        cost_down=c.cost_down,
    )


def pv_envelopes(p: PvColumns, grid: TimeGrid, forecast_kw: FloatArray) -> Portfolio:
    """`dispatch.pv_envelope` for ``N`` arrays at once.

    Args:
        p: the arrays' parameters, as columns.
        grid: the time grid.
        forecast_kw: ``(N, T)`` (or a shared ``(T,)``) forecast generation (positive kW).

    Returns:
        An ``N``-row portfolio with no energy state.
    """
    n = len(p.asset_ids)
    gen = np.maximum(_rows(forecast_kw, n, grid), 0.0)
    return _many(
        grid,
        asset_ids=p.asset_ids,
        kind=FlexKind.PV,
        owner=p.owner,
        p_min=-gen,
        p_max=np.zeros((n, grid.n)),
        baseline=-gen,
        p_ref=-gen,
        e_min=np.full((n, grid.n), -np.inf),
        e_max=np.full((n, grid.n), np.inf),
        e0=np.zeros(n),
        k_charge=np.ones(n),
        k_discharge=np.ones(n),
        cost_up=p.cost_kwh,
        cost_down=p.cost_kwh,
    )
