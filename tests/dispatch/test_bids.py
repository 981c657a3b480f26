from datetime import timedelta

import numpy as np
import pytest

from dispatch import (
    Battery,
    BidSettings,
    Direction,
    Portfolio,
    TimeGrid,
    apply_rules,
    battery_envelope,
    build_bid,
    build_portfolio,
    check_dispatch,
    disaggregate,
    exact_bid,
)
from dispatch._inner_lp import solve_inner
from dispatch.homothetic import homothetic_labels, inner_model
from tests.support.portfolios import full_range_battery
from tests.support.synthetic import synthetic_park

GRID = TimeGrid(n=8, step=timedelta(minutes=15))


def _one_battery() -> Portfolio:
    """100 kWh at half charge, 40 kW both ways, lossless, 0.1 per kWh."""
    return build_portfolio([full_range_battery(GRID, max_kw=40.0, cost_kwh=0.1)])


def test_single_battery_bid_is_hand_computed() -> None:
    pf = _one_battery()
    rules = BidSettings(min_capacity_kw=0.0, min_duration_minutes=0.0)
    bid = build_bid(pf, rules)
    # 50 kWh can leave and 50 kWh can enter; 40 kW for 2 h would be 80 kWh
    assert bid.down_kw.sum() * GRID.dt_h == pytest.approx(50.0, rel=1e-6)
    assert bid.up_kw.sum() * GRID.dt_h == pytest.approx(50.0, rel=1e-6)
    assert np.all(bid.down_kw <= 40.0 + 1e-9)
    assert bid.jointly_deliverable
    assert bid.down.curve.prices == pytest.approx([0.1])
    exact = exact_bid(pf, Direction.DOWN)
    assert -exact.deviation_kw.sum() * GRID.dt_h == pytest.approx(50.0, rel=1e-6)
    # hourly form: two hour-flat points
    points = bid.hourly_points(Direction.DOWN)
    assert points is not None and len(points) == 2
    assert points.sum() * 1.0 == pytest.approx(50.0, rel=1e-6)


def test_rules_remove_small_and_short_runs() -> None:
    rules = BidSettings(min_capacity_kw=100.0, min_duration_minutes=60.0)
    q = np.array([150, 150, 150, 150, 50, 200, 200, 0.0])
    assert list(apply_rules(q, rules, 0.25)) == [150, 150, 150, 150, 0, 0, 0, 0]


def test_default_rules_zero_a_small_portfolio() -> None:
    bid = build_bid(_one_battery())
    assert not bid.down_kw.any() and bid.jointly_deliverable
    assert "rules" in bid.down.explanation


def test_shortfall_is_reported_not_raised() -> None:
    pf = _one_battery()
    target = np.full(4, -100.0)  # more than the 40 kW the battery can give
    d = disaggregate(pf, target, start=2)
    assert d.delivered_kw == pytest.approx(np.full(4, -40.0))
    assert d.shortfall_kw == pytest.approx(np.full(4, -60.0))
    assert check_dispatch(pf.from_interval(2), d.full_setpoints_kw) == []


def test_redisaggregation_mid_event_with_live_state() -> None:
    pf = _one_battery()
    # the battery is nearly empty now: only 5 kWh can still leave
    d = disaggregate(pf, np.full(4, -40.0), start=4, energy_now=np.array([5.0]))
    assert d.delivered_kw.sum() * GRID.dt_h == pytest.approx(-5.0)
    assert d.energy_kwh[0, -1] >= -1e-9


def test_safe_fill_alone_meets_an_easy_target_without_a_plan() -> None:
    pf = _one_battery()
    d = disaggregate(pf, np.full(4, -10.0), start=2)
    assert not d.planned  # no LP solved: the fill delivered every interval
    assert d.delivered_kw == pytest.approx(np.full(4, -10.0))
    assert check_dispatch(pf.from_interval(2), d.full_setpoints_kw) == []


def test_battery_trade_pass_is_reproduced_by_the_plan() -> None:
    """Lossy battery clusters may trade (one charges, one discharges): the bid books it,
    and the plan solves the same sign-fixed model, so the full award has no shortfall."""
    pf = synthetic_park(6, seed=0, grid=TimeGrid(n=48, step=timedelta(minutes=15)))
    model = inner_model(pf, homothetic_labels(pf))
    capped = solve_inner(model, pf.grid.dt_h, sign=1.0, cost_weight=1e-3)
    assert capped.deviation is not None
    rules = BidSettings(min_capacity_kw=0.0, min_duration_minutes=0.0)
    bid = build_bid(pf, rules, hourly=False)
    assert bid.up_kw.sum() > 1.05 * capped.deviation.sum()  # the trade adds bid
    assert check_dispatch(pf, bid.up.dispatch.full_setpoints_kw) == []
    d = disaggregate(pf, bid.up_kw)
    assert np.all(np.abs(d.shortfall_kw) <= 1e-5 * (1.0 + bid.up_kw))
    assert check_dispatch(pf, d.full_setpoints_kw) == []


def test_identical_battery_fleet_bids_down_under_market_rules() -> None:
    """Regression: a homogeneous fleet must not alternate itself out of a down bid."""
    from datetime import UTC, datetime, timedelta

    import dispatch as dx

    grid = dx.TimeGrid(n=96, step=timedelta(minutes=15), start=datetime(2026, 11, 30, tzinfo=UTC))
    parts = [
        dx.battery_envelope(
            dx.Battery(
                asset_id=f"b{i}", capacity_kwh=1000, max_charge_kw=500, max_discharge_kw=500,
                soc=0.5, soc_min=0.1, soc_max=0.95, cost_kwh=0.05,
            ),
            grid,
        )
        for i in range(4)
    ]  # fmt: skip
    bid = dx.build_bid(dx.build_portfolio(parts), dx.BidSettings(min_capacity_kw=100))
    assert bid.down.deliverable
    # 4 x 400 kWh above soc_min (x 0.95 discharge efficiency) can be offered down
    assert bid.down_kw.max() >= 1000
    assert bid.down_kw.sum() * grid.dt_h >= 1000


def test_no_asset_within_the_price_cap_bids_nothing() -> None:
    # 0.1 per kWh against a cap of 0.05: the asset is left out, and the curve is one
    # step at the floor offering nothing (it used to raise IndexError on the empty set).
    rules = BidSettings(min_capacity_kw=0.0, min_duration_minutes=0.0, price_cap=0.05)
    bid = build_bid(_one_battery(), rules)
    assert not bid.down_kw.any() and not bid.up_kw.any()
    assert list(bid.down.curve.prices) == [0.0]
    assert bid.down.curve.quantity_kw.shape == (1, GRID.n)


def test_the_hour_flat_form_of_a_battery_fleet_is_not_empty() -> None:
    # 4 x 1 MWh / 500 kW at SoC 0.5 (floor 0.1, 95 % discharge): 4 x 0.4 x 1000 x 0.95 =
    # 1,520 kWh can leave in one hour. The sign-fixed inner model found 0 kW here in the
    # hour-flat form; the capped model finds the hand-computed hour.
    grid = TimeGrid(n=96, step=timedelta(minutes=15))
    specs = [
        Battery(asset_id=f"b{i}", capacity_kwh=1000.0, max_charge_kw=500.0,
                max_discharge_kw=500.0, soc=0.5, soc_min=0.1, soc_max=0.95,
                eta_charge=0.95, eta_discharge=0.95, cost_kwh=0.05)
        for i in range(4)
    ]  # fmt: skip
    pf = build_portfolio([battery_envelope(s, grid) for s in specs])
    bid = build_bid(pf, BidSettings(min_capacity_kw=0.0, min_duration_minutes=0.0))
    points = bid.hourly_points(Direction.DOWN)
    assert points is not None and points.max() == pytest.approx(1520.0, rel=1e-6)
    assert bid.hourly_down is not None and bid.hourly_down.deliverable
