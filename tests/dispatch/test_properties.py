"""Property-based checks over random synthetic portfolios and targets."""

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from dispatch import (
    BidSettings,
    FlexKind,
    Portfolio,
    build_bid,
    check_dispatch,
    disaggregate,
    flexibility_envelope,
)
from tests.support.portfolios import PROPERTY_SETTINGS, synthetic_parks

RULES = BidSettings(min_capacity_kw=0.0, min_duration_minutes=0.0, time_limit_s=5.0)


@PROPERTY_SETTINGS
@given(pf=synthetic_parks(3, 40), data=st.data())
def test_any_target_gives_a_feasible_dispatch(pf: Portfolio, data: st.DataObject) -> None:
    t = pf.n_intervals
    start = data.draw(st.integers(0, t - 1))
    k = data.draw(st.integers(1, t - start))
    env = flexibility_envelope(pf)
    scale = max(float(env.up_kw.max()), float(env.down_kw.max()), 1.0)
    target = np.array(data.draw(st.lists(st.floats(-2.0, 2.0), min_size=k, max_size=k))) * scale
    fair = data.draw(st.booleans())
    d = disaggregate(pf, target, start, fairness=fair)
    sub = pf.from_interval(start)
    assert check_dispatch(sub, d.full_setpoints_kw) == []
    # SoC trajectories stay inside their bounds
    energy = sub.energy_trajectory(d.full_setpoints_kw)
    assert np.all(energy >= sub.e_min - 1e-6) and np.all(energy <= sub.e_max + 1e-6)
    # EV departure energy is met (the envelope already relaxed unreachable requests)
    ev = sub.kind == FlexKind.EV
    assert np.all(energy[ev, -1] >= sub.e_min[ev, -1] - 1e-6)
    assert np.allclose(d.delivered_kw + d.shortfall_kw, target)


@PROPERTY_SETTINGS
@given(pf=synthetic_parks(3, 40), data=st.data())
def test_bid_awarded_in_full_or_in_part_is_delivered(pf: Portfolio, data: st.DataObject) -> None:
    bid = build_bid(pf, RULES, hourly=False)
    for part, sign in ((bid.down, -1.0), (bid.up, 1.0)):
        assert np.all(part.quantity_kw >= 0)
        # the certificate is a feasible dispatch, and the inner model needs no rounds
        assert check_dispatch(pf, part.dispatch.full_setpoints_kw) == []
        assert part.deliverable, part.explanation
        # awarded in full, it disaggregates without shortfall
        d = disaggregate(pf, sign * part.quantity_kw)
        tol = 1e-5 * (1.0 + part.quantity_kw)
        assert np.all(np.abs(d.shortfall_kw) <= tol)
        assert check_dispatch(pf, d.full_setpoints_kw) == []
        # the price curve is monotone and ends at the quantity
        q = part.curve.quantity_kw
        assert np.all(np.diff(q, axis=0) >= -1e-9)
        assert np.allclose(q[-1], part.quantity_kw)
        assert np.all(np.diff(part.curve.prices) > 0)


@PROPERTY_SETTINGS
@given(pf=synthetic_parks(3, 40), fraction=st.floats(0.0, 1.0))
def test_scaled_award_is_delivered_exactly(pf: Portfolio, fraction: float) -> None:
    """A uniformly scaled award of the down bid is tracked in every interval."""
    bid = build_bid(pf, RULES, hourly=False)
    assume(bid.down.deliverable)
    target = -fraction * bid.down_kw
    d = disaggregate(pf, target)
    assert check_dispatch(pf, d.full_setpoints_kw) == []
    # the bid's certificate shows the full award; a scaled one must not fall short by more
    # than the full award's own gap (zero) plus what the safe rule could not move in time
    assert np.all(
        np.abs(d.delivered_kw - target) <= 1e-5 * (1.0 + np.abs(target)) + 0.05 * np.abs(target)
    )
