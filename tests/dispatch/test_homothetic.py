"""The homothetic inner approximation: hand-computed bounds and the inner guarantee."""

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatch import (
    Portfolio,
    TimeGrid,
    build_portfolio,
    check_dispatch,
    flexibility_envelope,
)
from dispatch._inner_lp import solve_inner
from dispatch.homothetic import homothetic_labels, inner_model
from tests.support.portfolios import PROPERTY_SETTINGS, full_range_battery, synthetic_parks

GRID = TimeGrid(n=4, step=timedelta(hours=1))


def test_two_batteries_in_one_cluster_hand_computed() -> None:
    # A: 100 kWh, 50 kW, at 50 kWh; B: 40 kWh, 20 kW, at 10 kWh; lossless, idle baseline.
    a = full_range_battery(GRID, "a", capacity_kwh=100.0, max_kw=50.0, soc=0.5)
    b = full_range_battery(GRID, "b", capacity_kwh=40.0, max_kw=20.0, soc=0.25)
    pf = build_portfolio([a, b])
    model = inner_model(pf, np.array([0, 0]))
    # shares follow the power range: 100 / 140 and 40 / 140
    assert model.shares == pytest.approx([5 / 7, 2 / 7])
    # power: -50 / (5/7) = -20 / (2/7) = -70 kW, and +70 kW
    assert model.d_min == pytest.approx(np.full((1, 4), -70.0))
    assert model.d_max == pytest.approx(np.full((1, 4), 70.0))
    # energy: B can give 10 kWh = 2/7 of 35; A can take 50 kWh = 5/7 of 70
    assert model.e_lo_min == pytest.approx(np.full((1, 4), -35.0))
    assert model.e_hi_max == pytest.approx(np.full((1, 4), 70.0))
    down = solve_inner(model, GRID.dt_h, sign=-1.0, cost_weight=0.0)
    up = solve_inner(model, GRID.dt_h, sign=1.0, cost_weight=0.0)
    assert down.deviation is not None and up.deviation is not None
    # the inner bid: 35 kWh down (exact: 60), 70 kWh up (exact: 80)
    assert -down.deviation.sum() * GRID.dt_h == pytest.approx(35.0, rel=1e-6)
    assert up.deviation.sum() * GRID.dt_h == pytest.approx(70.0, rel=1e-6)
    for sol in (down, up):
        assert sol.deviation is not None
        assert check_dispatch(pf, model.split(pf, sol.deviation)) == []


def test_lossy_slopes_are_capped_against_simultaneous_moves() -> None:
    lossy = full_range_battery(GRID, "a", capacity_kwh=100.0, max_kw=50.0, soc=0.5, eta=0.8)
    pf = build_portfolio([lossy])
    model = inner_model(pf, np.array([0]))
    # charge gains 0.8 kWh per kWh, discharge loses 1 / 0.8 = 1.25 kWh per kWh
    assert model.lo_up == pytest.approx(np.full((1, 4), 0.8))
    assert model.lo_down == pytest.approx(np.full((1, 4), 1.25))
    assert model.hi_up == pytest.approx(np.full((1, 4), 0.8))
    # the optimistic trajectory books discharge at 0.8 so that D+ = D- gains nothing
    assert model.hi_down == pytest.approx(np.full((1, 4), 0.8))
    down = solve_inner(model, GRID.dt_h, sign=-1.0, cost_weight=0.0)
    assert down.deviation is not None
    # 50 kWh above the floor, 1.25 kWh lost per kWh delivered: 40 kWh (exact here)
    assert -down.deviation.sum() * GRID.dt_h == pytest.approx(40.0, rel=1e-6)
    assert check_dispatch(pf, model.split(pf, down.deviation)) == []


@PROPERTY_SETTINGS
@given(pf=synthetic_parks(2, 60), data=st.data())
def test_any_trajectory_of_the_inner_model_splits_feasibly(
    pf: Portfolio, data: st.DataObject
) -> None:
    """Points of the inner model (LP optima and their convex mixes) split into feasible members."""
    budget = data.draw(st.integers(1, 40))
    model = inner_model(pf, homothetic_labels(pf, budget))
    env = flexibility_envelope(pf)
    scale = max(float(env.up_kw.max()), float(env.down_kw.max()), 1.0)
    k = data.draw(st.integers(1, pf.n_intervals))
    target = np.array(data.draw(st.lists(st.floats(-2.0, 2.0), min_size=k, max_size=k))) * scale
    dt = pf.grid.dt_h
    points = [
        solve_inner(model, dt, sign=-1.0, time_limit_s=10.0).deviation,
        solve_inner(model, dt, sign=1.0, time_limit_s=10.0).deviation,
        solve_inner(model, dt, target=target, cost_weight=1.0, time_limit_s=10.0).deviation,
    ]
    assert all(p is not None for p in points)
    weights = np.array(data.draw(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3))) + 1e-3
    weights /= weights.sum()
    mix = sum(w * p for w, p in zip(weights, points, strict=True))
    for deviation in [*points, mix]:
        assert check_dispatch(pf, model.split(pf, deviation)) == []
