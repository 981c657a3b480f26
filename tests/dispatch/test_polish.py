"""The one-way polish of a bid and the sign patterns of the inner model (hand-computed cases)."""

from datetime import timedelta

import numpy as np
import pytest

from dispatch import (
    BidSettings,
    CurtailableLoad,
    Direction,
    Portfolio,
    TimeGrid,
    apply_rules,
    build_bid,
    build_portfolio,
    check_dispatch,
    curtailable_envelope,
    disaggregate,
    tight_bid,
)
from dispatch._inner_lp import solve_inner
from dispatch._polish import between, push
from dispatch.homothetic import homothetic_labels, inner_model, trade_signs
from tests.support.portfolios import full_range_battery
from tests.support.synthetic import synthetic_park

RULES_OFF = BidSettings(min_capacity_kw=0.0, min_duration_minutes=0.0)
HALF_DAY = TimeGrid(n=48, step=timedelta(minutes=15))


def _rebound_park() -> tuple[TimeGrid, Portfolio]:
    """A 40 kW shed with a 10 kWh debt budget (one interval at full shed), a quarter
    of the shed energy consumed again, and a 10 kWh battery at half charge."""
    grid = TimeGrid(n=16, step=timedelta(minutes=15))
    load = CurtailableLoad(
        asset_id="c", max_shed_kw=40.0, max_shed_minutes=15.0, rebound_share=0.25, cost_down=0.1
    )
    pf = build_portfolio(
        [
            curtailable_envelope(load, grid, np.full(grid.n, 100.0)),
            full_range_battery(grid, capacity_kwh=10.0, max_kw=40.0, soc=0.5),
        ]
    )
    return grid, pf


def test_a_rebounding_load_bids_its_net_shed() -> None:
    # Each cycle sheds 40 kW for 15 min (10 kWh of debt, the whole budget) and repays
    # it with 2.5 kWh at 10 kW in the next interval: 7.5 kWh net per two intervals.
    # The tight reference runs 8 cycles (60 kWh) plus the battery's 5 kWh: 65 kWh.
    # With the capped slopes a rebound repaid only its own kWh and the load bid
    # nothing net (only the battery's 5 kWh).
    grid, pf = _rebound_park()
    bid = build_bid(pf, RULES_OFF, hourly=False)
    dev = bid.down.dispatch.setpoints_kw - pf.baseline
    shed_net = -dev[0].sum() * grid.dt_h
    assert shed_net == pytest.approx(7 * 7.5, rel=1e-6)  # one cycle lost to the phase
    assert bid.down_kw.sum() * grid.dt_h >= 0.85 * 65.0
    tight = tight_bid(pf, Direction.DOWN, time_limit_s=10.0)
    assert tight.energy_kwh == pytest.approx(65.0, rel=1e-6)
    assert check_dispatch(pf, bid.down.dispatch.full_setpoints_kw) == []


def test_rebound_runs_respect_the_debt_budget() -> None:
    # the budget holds one interval of full shed: shed and rebound alternate
    grid, pf = _rebound_park()
    model = inner_model(pf, homothetic_labels(pf))
    signs = trade_signs(model, grid.dt_h)
    assert signs is not None
    load_row = signs[model.labels[0]]
    fixed = load_row[load_row != 0]
    assert fixed.size == grid.n
    assert np.all(fixed[1:] != fixed[:-1])  # never two sheds in a row


def test_polish_only_grows_the_bid_and_stays_certified() -> None:
    pf = synthetic_park(60, seed=3, grid=HALF_DAY)
    model = inner_model(pf, homothetic_labels(pf))
    for sign, direction in ((-1.0, "down"), (1.0, "up")):
        sol = solve_inner(model, pf.grid.dt_h, sign=sign, signs=trade_signs(model, pf.grid.dt_h))
        assert sol.deviation is not None
        near = np.clip(model.split(pf, sol.deviation), pf.p_min, pf.p_max)
        far = push(pf, near, np.full(pf.n_intervals, sign))
        assert np.all(sign * (far - near) >= -1e-9)  # every asset only moves the bid's way
        assert check_dispatch(pf, far) == []
        bid = build_bid(pf, RULES_OFF, hourly=False)
        part = bid.up if direction == "up" else bid.down
        q_model = np.maximum(sign * sol.deviation.sum(axis=0), 0.0)
        assert part.quantity_kw.sum() >= q_model.sum() - 1e-6
        assert check_dispatch(pf, part.dispatch.full_setpoints_kw) == []


def test_between_meets_a_goal_exactly_and_feasibly() -> None:
    pf = synthetic_park(40, seed=5, grid=HALF_DAY)
    model = inner_model(pf, homothetic_labels(pf))
    sol = solve_inner(model, pf.grid.dt_h, sign=-1.0)
    assert sol.deviation is not None
    near = np.clip(model.split(pf, sol.deviation), pf.p_min, pf.p_max)
    far = push(pf, near, np.full(pf.n_intervals, -1.0))
    base = pf.total_baseline()
    q_near = base - near.sum(axis=0)
    q_far = base - far.sum(axis=0)
    goal = 0.3 * q_near + 0.7 * q_far
    p = between(near, far, base, -1.0, goal)
    assert base - p.sum(axis=0) == pytest.approx(goal, abs=1e-6)
    assert check_dispatch(pf, p) == []


def test_hour_flat_polished_bid_is_flat_and_certified() -> None:
    pf = synthetic_park(60, seed=11, grid=HALF_DAY)
    bid = build_bid(pf, RULES_OFF)
    for part in (bid.hourly_up, bid.hourly_down):
        assert part is not None and part.deliverable
        q = part.quantity_kw.reshape(-1, 4)
        assert np.allclose(q, q[:, :1])
        assert check_dispatch(pf, part.dispatch.full_setpoints_kw) == []
        sign = 1.0 if part.direction == Direction.UP else -1.0
        got = sign * (part.dispatch.setpoints_kw.sum(axis=0) - pf.total_baseline())
        assert got == pytest.approx(part.quantity_kw, abs=1e-5)
    # the hour-flat bid is never more than the quarter-hour one
    assert bid.hourly_down is not None
    assert bid.hourly_down.quantity_kw.sum() <= bid.down_kw.sum() + 1e-6


def test_a_polished_bid_awarded_in_full_is_delivered() -> None:
    pf = synthetic_park(30, seed=2, grid=HALF_DAY)
    bid = build_bid(pf, RULES_OFF, hourly=False)
    for target in (-bid.down_kw, bid.up_kw):
        d = disaggregate(pf, target)
        assert np.all(np.abs(d.shortfall_kw) <= 1e-5 * (1.0 + np.abs(target)))
        assert check_dispatch(pf, d.full_setpoints_kw) == []


def test_under_market_rules_the_polish_keeps_every_rule() -> None:
    # the default rules (1 MW minimum, 1 h minimum run): the polished quantities obey
    # them, never fall below the model's, and the quarter-hour bid is never less
    # than the hour-flat one (an hour-flat profile is a quarter-hour profile too)
    pf = synthetic_park(300, seed=4)
    rules = BidSettings()
    bid = build_bid(pf, rules)
    for part, flat in ((bid.up, bid.hourly_up), (bid.down, bid.hourly_down)):
        q = part.quantity_kw
        assert np.array_equal(apply_rules(q, rules, pf.grid.dt_h), q)
        assert part.deliverable
        assert check_dispatch(pf, part.dispatch.full_setpoints_kw) == []
        assert flat is not None and q.sum() >= flat.quantity_kw.sum() - 1e-6
