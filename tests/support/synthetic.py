"""Seeded synthetic parks for the benchmark and the tests.

About 40 % batteries, 30 % EV sessions and 30 % loads (curtailable, thermal,
shiftable, PV), with sizes, windows and costs drawn from one seeded generator.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from dispatch.envelopes import (
    Battery,
    CurtailableLoad,
    EvSession,
    PvCurtailment,
    ShiftableLoad,
    ThermalLoad,
    battery_envelope,
    build_portfolio,
    curtailable_envelope,
    ev_envelope,
    pv_envelope,
    shiftable_envelope,
    thermal_envelope,
)
from dispatch.grid import TimeGrid
from dispatch.portfolio import FloatArray, Portfolio

__all__ = ["synthetic_park"]


def _load_shape(grid: TimeGrid, rng: np.random.Generator, peak_kw: float) -> FloatArray:
    hours = (np.arange(grid.n) + 0.5) * grid.dt_h
    day = 0.55 + 0.45 * np.clip(np.sin((hours - 6.0) / 14.0 * np.pi), 0.0, None)
    noise = 1.0 + 0.05 * rng.standard_normal(grid.n)
    return np.asarray(peak_kw * day * noise, dtype=np.float64)


def synthetic_park(
    n: int, *, seed: int = 0, grid: TimeGrid | None = None, owners: int = 8
) -> Portfolio:
    """Build a seeded synthetic park of ``n`` assets.

    Args:
        n: Number of assets.
        seed: Random seed; the same seed gives the same park.
        grid: Time grid (default: one day of 15-minute intervals).
        owners: Number of owner enterprises the assets are spread over.

    Returns:
        The portfolio.
    """
    grid = grid or TimeGrid()
    rng = np.random.default_rng(seed)
    n_bat = round(0.4 * n)
    n_ev = round(0.3 * n)
    kinds = ["bat"] * n_bat + ["ev"] * n_ev
    rest = n - len(kinds)
    kinds += list(rng.choice(["curt", "thermal", "shift", "pv"], size=rest, p=[0.4, 0.3, 0.2, 0.1]))
    day_h = grid.n * grid.dt_h
    parts: list[Portfolio] = []
    for i, kind in enumerate(kinds):
        aid = f"{kind}-{i}"
        owner = int(rng.integers(owners))
        if kind == "bat":
            cap = float(rng.choice([50.0, 100.0, 200.0, 500.0]))
            c_rate = float(rng.uniform(0.25, 1.0))
            parts.append(
                battery_envelope(
                    Battery(
                        asset_id=aid,
                        capacity_kwh=cap,
                        max_charge_kw=cap * c_rate,
                        max_discharge_kw=cap * c_rate,
                        soc=float(rng.uniform(0.3, 0.8)),
                        cost_kwh=float(rng.uniform(0.02, 0.08)),
                        owner=owner,
                    ),
                    grid,
                )
            )
        elif kind == "ev":
            arrive_h = float(rng.uniform(0.0, max(day_h - 2.0, 0.25)))
            stay_h = float(rng.uniform(1.5, 10.0))
            kw = float(rng.choice([7.0, 11.0, 22.0, 60.0]))
            v2g = bool(rng.random() < 0.3)
            need = float(rng.uniform(0.2, 0.7)) * kw * stay_h
            parts.append(
                ev_envelope(
                    EvSession(
                        asset_id=aid,
                        arrival=grid.start + timedelta(hours=arrive_h),
                        departure=grid.start + timedelta(hours=arrive_h + stay_h),
                        energy_needed_kwh=need,
                        max_charge_kw=kw,
                        max_discharge_kw=kw if v2g else 0.0,
                        v2g=v2g,
                        headroom_kwh=need * 1.5 + 10.0,
                        v2g_floor_kwh=10.0 if v2g else 0.0,
                        cost_down=float(rng.uniform(0.04, 0.12)),
                        owner=owner,
                    ),
                    grid,
                )
            )
        elif kind == "curt":
            peak = float(rng.uniform(20.0, 300.0))
            parts.append(
                curtailable_envelope(
                    CurtailableLoad(
                        asset_id=aid,
                        max_shed_kw=peak * float(rng.uniform(0.1, 0.4)),
                        max_shed_minutes=float(rng.choice([30.0, 60.0, 120.0])),
                        rebound_share=float(rng.choice([0.0, 0.3, 0.6])),
                        cost_down=float(rng.uniform(0.1, 0.4)),
                        owner=owner,
                    ),
                    grid,
                    _load_shape(grid, rng, peak),
                )
            )
        elif kind == "thermal":
            rated = float(rng.uniform(20.0, 200.0))
            parts.append(
                thermal_envelope(
                    ThermalLoad(
                        asset_id=aid,
                        rated_kw=rated,
                        capacity_kwh_per_k=rated * float(rng.uniform(0.3, 1.0)),
                        setpoint_c=22.0,
                        comfort_min_c=21.0,
                        comfort_max_c=24.0,
                        temperature_c=float(rng.uniform(21.5, 23.0)),
                        time_constant_h=float(rng.choice([2.0, 4.0, 8.0])),
                        owner=owner,
                    ),
                    grid,
                    _load_shape(grid, rng, rated * 0.5),
                )
            )
        elif kind == "shift":
            kw = float(rng.uniform(10.0, 100.0))
            start_h = float(rng.uniform(0.0, max(day_h - 4.0, 0.25)))
            window_h = float(rng.uniform(3.0, 8.0))
            parts.append(
                shiftable_envelope(
                    ShiftableLoad(
                        asset_id=aid,
                        energy_kwh=kw * window_h * float(rng.uniform(0.2, 0.6)),
                        max_kw=kw,
                        earliest_start=grid.start + timedelta(hours=start_h),
                        deadline=grid.start + timedelta(hours=start_h + window_h),
                        owner=owner,
                    ),
                    grid,
                )
            )
        else:
            peak = float(rng.uniform(50.0, 500.0))
            hours = (np.arange(grid.n) + 0.5) * grid.dt_h
            forecast = peak * np.clip(np.sin((hours - 6.0) / 12.0 * np.pi), 0.0, None)
            parts.append(pv_envelope(PvCurtailment(asset_id=aid, owner=owner), grid, forecast))
    return build_portfolio(parts)
