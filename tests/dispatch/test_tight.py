"""The tight reference: no simultaneous charge and discharge, hand-computed and checked."""

from datetime import timedelta

import numpy as np
import pytest

from dispatch import (
    CurtailableLoad,
    Direction,
    TimeGrid,
    build_portfolio,
    check_dispatch,
    curtailable_envelope,
    exact_bid,
)
from dispatch.tight import tight_bid
from tests.support.portfolios import full_range_battery
from tests.support.synthetic import synthetic_park

GRID = TimeGrid(n=4, step=timedelta(hours=1))


def test_lossy_battery_up_bid_hand_computed() -> None:
    pf = build_portfolio([full_range_battery(GRID, "a", eta=0.8)])  # 100 kWh at 50 %, 50 kW
    # Relaxed: charge 50 kW all along and discharge Y kWh at once, burning 0.45 kWh of
    # storage per kWh of Y: 0.8 * 200 - 1.25 * Y = 50 -> Y = 88, bid 200 - 88 = 112 kWh.
    relaxed = exact_bid(pf, Direction.UP)
    assert relaxed.deviation_kw.sum() == pytest.approx(112.0, rel=1e-6)
    # Physically: 50 kWh of room at 0.8 kWh per kWh drawn: 62.5 kWh.
    tight = tight_bid(pf, Direction.UP, relaxed=relaxed, time_limit_s=10.0)
    assert tight.energy_kwh == pytest.approx(62.5, rel=1e-6)
    assert tight.bound_kwh == pytest.approx(62.5, rel=1e-4)
    assert tight.gap <= 1e-4
    assert tight.setpoints is not None
    assert check_dispatch(pf, tight.setpoints) == []


def test_tight_reference_is_feasible_and_between_the_bounds() -> None:
    pf = synthetic_park(30, seed=3, grid=TimeGrid(n=24, step=timedelta(hours=1)))
    for direction in (Direction.DOWN, Direction.UP):
        relaxed = exact_bid(pf, direction)
        tight = tight_bid(pf, direction, relaxed=relaxed, time_limit_s=3.0)
        sign = 1.0 if direction == Direction.UP else -1.0
        upper = float(np.clip(sign * relaxed.deviation_kw, 0, None).sum() * pf.grid.dt_h)
        assert tight.setpoints is not None
        assert check_dispatch(pf, tight.setpoints) == []
        assert tight.energy_kwh <= tight.bound_kwh + 1e-6 <= upper * (1 + 1e-6) + 2e-6
        assert np.all(sign * tight.deviation_kw >= -1e-6)


def test_rebound_runs_pattern_finds_the_shed_and_repay_cycle_without_the_milp() -> None:
    # 40 kW shed, 10 kWh debt budget (one quarter-hour at full shed), a quarter of the
    # shed energy consumed again: shed one interval, repay 2.5 kWh in the next, 7.5 kWh
    # net per cycle, 8 cycles in 4 h, plus the 10 kWh battery's 5 kWh: 65 kWh. The
    # relaxed signs repay by a simultaneous move and the battery shuffle does not
    # touch the load; the rebound runs find the cycle with the MILP skipped.
    grid = TimeGrid(n=16, step=timedelta(minutes=15))
    load = CurtailableLoad(
        asset_id="c", max_shed_kw=40.0, max_shed_minutes=15.0, rebound_share=0.25
    )
    pf = build_portfolio(
        [
            curtailable_envelope(load, grid, np.full(grid.n, 100.0)),
            full_range_battery(grid, capacity_kwh=10.0, max_kw=40.0, soc=0.5),
        ]
    )
    tight = tight_bid(pf, Direction.DOWN, time_limit_s=0.0)
    assert tight.status == "LP (rebound runs)"
    assert tight.energy_kwh == pytest.approx(65.0, rel=1e-6)
    assert tight.setpoints is not None and check_dispatch(pf, tight.setpoints) == []
