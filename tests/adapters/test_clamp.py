import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.clamp import clamp_setpoint
from adapters.types import DeviceLimits, Setpoint, Telemetry

NOW = 1_800_000_000.0

powers = st.floats(-500, 500, allow_nan=False)


@st.composite
def limits_strategy(draw: st.DrawFn) -> DeviceLimits:
    lo = draw(st.floats(-300, 300))
    hi = draw(st.floats(lo, 400))
    soc_min = draw(st.floats(0, 1))
    soc_max = draw(st.floats(soc_min, 1))
    return DeviceLimits(
        p_min_kw=lo,
        p_max_kw=hi,
        capacity_kwh=draw(st.none() | st.floats(1, 1000)),
        soc_min=soc_min,
        soc_max=soc_max,
        bidirectional=draw(st.booleans()),
    )


@st.composite
def state_strategy(draw: st.DrawFn) -> Telemetry | None:
    if draw(st.booleans()):
        return None
    return Telemetry(
        asset_id="a",
        ts=NOW,
        power_kw=0.0,
        soc=draw(st.none() | st.floats(0, 1)),
        max_charge_kw=draw(st.none() | st.floats(0, 300)),
        max_discharge_kw=draw(st.none() | st.floats(0, 300)),
        ev_connected=draw(st.none() | st.booleans()),
        departure_ts=draw(st.none() | st.floats(NOW - 100, NOW + 20_000)),
        energy_needed_kwh=draw(st.none() | st.floats(0, 200)),
    )


@given(powers, limits_strategy(), state_strategy(), st.floats(1, 7200))
def test_clamp_stays_inside_hard_limits(
    req: float, limits: DeviceLimits, state: Telemetry | None, hold: float
) -> None:
    res = clamp_setpoint(req, limits, state, now=NOW, hold_s=hold)
    p = res.power_kw
    assert math.isfinite(p)
    if not limits.bidirectional or (state is not None and state.ev_connected is False):
        assert p >= 0.0
    # Within the enrolled window unless that window excludes zero and a live limit forced zero.
    if limits.p_min_kw <= 0.0 <= limits.p_max_kw:
        assert limits.p_min_kw - 1e-9 <= p <= limits.p_max_kw + 1e-9
    if state is not None:
        if state.max_charge_kw is not None:
            assert p <= max(0.0, state.max_charge_kw) + 1e-9
        if state.max_discharge_kw is not None:
            assert p >= -state.max_discharge_kw - 1e-9
        if state.soc is not None and limits.capacity_kwh is not None:
            soc_after = state.soc + p * hold / 3600.0 / limits.capacity_kwh
            if p > 0:
                assert soc_after <= max(limits.soc_max, state.soc) + 1e-6
            if p < 0:
                assert soc_after >= min(limits.soc_min, state.soc) - 1e-6
    assert res.clamped == (abs(p - req) > 1e-9)


@given(st.floats(-50, 50), limits_strategy())
def test_inside_window_is_untouched(frac: float, limits: DeviceLimits) -> None:
    lo = max(limits.p_min_kw, 0.0) if not limits.bidirectional else limits.p_min_kw
    if lo > limits.p_max_kw:
        return
    req = lo + (limits.p_max_kw - lo) * (abs(frac) % 1.0)
    res = clamp_setpoint(req, limits, None, now=NOW, hold_s=900)
    assert not res.clamped
    assert res.power_kw == pytest.approx(req)


def test_one_way_ev_never_discharges() -> None:
    limits = DeviceLimits(p_min_kw=-11, p_max_kw=11, bidirectional=False)
    res = clamp_setpoint(-7, limits, None, now=NOW, hold_s=900)
    assert res.power_kw == 0.0 and res.clamped and "one-way" in res.reason


def test_ev_departure_need_sets_a_floor() -> None:
    limits = DeviceLimits(p_min_kw=-11, p_max_kw=11)
    state = Telemetry(
        asset_id="ev",
        ts=NOW,
        power_kw=0,
        ev_connected=True,
        departure_ts=NOW + 3600,
        energy_needed_kwh=10.0,
    )
    # 10 kWh in 1 h with 11 kW max: after a 15-min hold only 8.25 kWh fit, so >= 7 kW now.
    res = clamp_setpoint(-11, limits, state, now=NOW, hold_s=900)
    assert res.power_kw == pytest.approx(7.0)
    assert res.reason == "EV departure need"


def test_ev_departure_need_is_energy_in_the_vehicle() -> None:
    """The need goes through the charge efficiency, as the plan's ``eta_charge``.

    8 kWh in 1 h at 11 kW max, 15-min hold: with eta 0.8 the grid must supply
    10 kWh, so >= (10 - 11 x 0.75) / 0.25 = 7 kW now; at eta 1 only
    (8 - 8.25) / 0.25 < 0: no floor.
    """
    state = Telemetry(
        asset_id="ev", ts=NOW, power_kw=0, ev_connected=True, departure_ts=NOW + 3600,
        energy_needed_kwh=8.0,
    )  # fmt: skip
    lossy = DeviceLimits(p_min_kw=0, p_max_kw=11, bidirectional=False, charge_efficiency=0.8)
    res = clamp_setpoint(0.0, lossy, state, now=NOW, hold_s=900)
    assert res.power_kw == pytest.approx(7.0)
    assert res.reason == "EV departure need"
    ideal = DeviceLimits(p_min_kw=0, p_max_kw=11, bidirectional=False)
    assert not clamp_setpoint(0.0, ideal, state, now=NOW, hold_s=900).clamped
    with pytest.raises(ValueError, match="charge_efficiency"):
        DeviceLimits(p_min_kw=0, p_max_kw=11, charge_efficiency=0.0)


def test_soc_floor_stops_discharge() -> None:
    limits = DeviceLimits(p_min_kw=-100, p_max_kw=100, capacity_kwh=200, soc_min=0.1)
    state = Telemetry(asset_id="b", ts=NOW, power_kw=0, soc=0.1)
    assert clamp_setpoint(-50, limits, state, now=NOW, hold_s=900).power_kw == 0.0
    full = Telemetry(asset_id="b", ts=NOW, power_kw=0, soc=1.0)
    assert clamp_setpoint(50, limits, full, now=NOW, hold_s=900).power_kw == 0.0


def test_setpoint_rejects_nan() -> None:
    with pytest.raises(ValueError):
        Setpoint(asset_id="a", power_kw=float("nan"))


def test_time_scale_stretches_departure_and_soc_windows() -> None:
    """Under a 120x simulated clock, 60 wall seconds are two device hours."""
    limits = DeviceLimits(p_min_kw=-11.0, p_max_kw=11.0, bidirectional=True)
    ev = Telemetry(
        asset_id="ev", ts=1000.0, power_kw=11.0, ev_connected=True,
        departure_ts=2000.0, energy_needed_kwh=10.0,
    )  # fmt: skip
    # 1000 s ahead (firm): 10 kWh cannot be reached at 11 kW, so the most it can get
    real = clamp_setpoint(0.0, limits, ev, now=1000.0, hold_s=6.0)
    assert real.power_kw == 11.0 and real.reason == "EV departure need"
    fast = clamp_setpoint(0.0, limits, ev, now=1000.0, hold_s=6.0, time_scale=120.0)
    assert not fast.clamped  # 10 kWh in 33 h at 11 kW leaves room to pause
    # 60 wall seconds ahead is 60 s of a real device (lapsed, best effort) but two
    # hours of a simulated one at 120x (firm: a hold over all of it needs 10 kWh / 2 h)
    soon = Telemetry(
        asset_id="ev", ts=1000.0, power_kw=11.0, ev_connected=True,
        departure_ts=1060.0, energy_needed_kwh=10.0,
    )  # fmt: skip
    assert not clamp_setpoint(0.0, limits, soon, now=1000.0, hold_s=6.0).clamped
    got = clamp_setpoint(0.0, limits, soon, now=1000.0, hold_s=60.0, time_scale=120.0)
    assert got.power_kw == pytest.approx(5.0) and got.reason == "EV departure need"
    battery = DeviceLimits(p_min_kw=-100.0, p_max_kw=100.0, capacity_kwh=100.0, soc_min=0.1)
    low = Telemetry(asset_id="b", ts=0.0, power_kw=0.0, soc=0.15)
    # 5 kWh above soc_min: 60 s at 120x is 2 h, so at most 2.5 kW of discharge
    got = clamp_setpoint(-100.0, battery, low, now=0.0, hold_s=60.0, time_scale=120.0)
    assert got.power_kw == pytest.approx(-2.5)


# -- issue 8: the clamp states the plan's rules (dispatch.envelopes) -----------------

BIG = DeviceLimits(p_min_kw=-500, p_max_kw=500, capacity_kwh=1000, soc_min=0.10, soc_max=0.90)


def test_battery_below_soc_min_is_held_not_forced_to_charge() -> None:
    """Case 4: 1000 kWh, +-500 kW, soc_min 0.10, SoC 5 % during peak shaving."""
    low = Telemetry(asset_id="b", ts=NOW, power_kw=0.0, soc=0.05)
    held = clamp_setpoint(0.0, BIG, low, now=NOW, hold_s=30)
    assert held.power_kw == 0.0 and not held.clamped
    no_discharge = clamp_setpoint(-300.0, BIG, low, now=NOW, hold_s=30)
    assert no_discharge.power_kw == 0.0 and no_discharge.reason == "soc_min"
    # moving back towards the window is allowed (valley filling), never required
    assert not clamp_setpoint(200.0, BIG, low, now=NOW, hold_s=30).clamped


def test_battery_above_soc_max_is_held_not_forced_to_discharge() -> None:
    """Case 4's mirror: SoC 95 % above soc_max 0.90 during valley filling."""
    high = Telemetry(asset_id="b", ts=NOW, power_kw=0.0, soc=0.95)
    held = clamp_setpoint(0.0, BIG, high, now=NOW, hold_s=30)
    assert held.power_kw == 0.0 and not held.clamped
    no_charge = clamp_setpoint(300.0, BIG, high, now=NOW, hold_s=30)
    assert no_charge.power_kw == 0.0 and no_charge.reason == "soc_max"
    assert not clamp_setpoint(-200.0, BIG, high, now=NOW, hold_s=30).clamped


ONE_WAY_11 = DeviceLimits(p_min_kw=0.0, p_max_kw=11.0, bidirectional=False)


@pytest.mark.parametrize("departure_in_s", [-600.0, 300.0])
def test_ev_past_or_imminent_departure_keeps_the_planned_setpoint(departure_in_s: float) -> None:
    """Case 5: departure now - 10 min (and now + 5 min), 10 kWh still needed.

    The plan gives 0 kW during peak shaving (the need has lapsed, best effort); the
    clamp used to send 11 kW (its floor with no time left was the top of the window).
    """
    ev = Telemetry(
        asset_id="ev", ts=NOW, power_kw=11.0, ev_connected=True,
        departure_ts=NOW + departure_in_s, energy_needed_kwh=10.0,
    )  # fmt: skip
    res = clamp_setpoint(0.0, ONE_WAY_11, ev, now=NOW, hold_s=30)
    assert res.power_kw == 0.0 and not res.clamped


def test_ev_need_is_firm_beyond_one_interval() -> None:
    """16 minutes ahead the need is firm again: 10 kWh cannot be reached, so 11 kW."""
    ev = Telemetry(
        asset_id="ev", ts=NOW, power_kw=11.0, ev_connected=True,
        departure_ts=NOW + 960.0, energy_needed_kwh=10.0,
    )  # fmt: skip
    res = clamp_setpoint(0.0, ONE_WAY_11, ev, now=NOW, hold_s=30)
    assert res.power_kw == 11.0 and res.reason == "EV departure need"
