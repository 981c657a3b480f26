"""The plan and the clamp apply one policy: a planned setpoint is never changed by the clamp.

``dispatch`` (the plan) and ``adapters.clamp`` (applied before every setpoint
leaves an adapter) never import each other; each states the shared rules in
its own terms (a live state outside its window is held, never forced back; a
departure inside the interval being decided has lapsed). This property test
drives both from the same live state, as the service does, and checks that the
first-interval setpoint the plan chooses passes the clamp unchanged.

The clamp is called as the control loop calls it: a hold of three 10 s periods,
at any moment inside the interval the plan decides, on a real-time clock.
"""

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.clamp import clamp_setpoint
from adapters.types import DeviceLimits, Telemetry
from dispatch import Battery, EvSession, TimeGrid, battery_envelope, build_portfolio, disaggregate
from dispatch import ev_envelope as ev_env

START = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
GRID = TimeGrid(n=4 + 16, step=timedelta(minutes=15), start=START)
EVENT = 4
HOLD_S = 30.0  # ControlSettings: hold_factor 3 x period_s 10 (twice the 5 s default)


def _now(offset_s: float) -> float:
    return (START + timedelta(seconds=offset_s)).timestamp()


@settings(max_examples=300, deadline=None)
@given(
    soc=st.floats(0.0, 1.0),
    soc_min=st.floats(0.0, 0.5),
    soc_max=st.floats(0.5, 1.0),
    capacity=st.floats(50.0, 2000.0),
    charge=st.floats(5.0, 500.0),
    discharge=st.floats(5.0, 500.0),
    target=st.floats(-1000.0, 1000.0),
    offset_s=st.floats(0.0, 900.0 - HOLD_S),
)
def test_battery_setpoint_passes_the_clamp(
    soc: float,
    soc_min: float,
    soc_max: float,
    capacity: float,
    charge: float,
    discharge: float,
    target: float,
    offset_s: float,
) -> None:
    spec = Battery(
        asset_id="b", capacity_kwh=capacity, max_charge_kw=charge, max_discharge_kw=discharge,
        soc=soc, soc_min=soc_min, soc_max=soc_max,
    )  # fmt: skip
    pf = build_portfolio([battery_envelope(spec, GRID)])
    planned = float(disaggregate(pf, np.full(EVENT, target)).setpoints_kw[0, 0])
    limits = DeviceLimits(
        p_min_kw=-discharge, p_max_kw=charge, capacity_kwh=capacity, soc_min=soc_min,
        soc_max=soc_max,
    )  # fmt: skip
    now = _now(offset_s)
    state = Telemetry(asset_id="b", ts=now, power_kw=0.0, soc=soc)
    got = clamp_setpoint(planned, limits, state, now=now, hold_s=HOLD_S)
    assert not got.clamped, (planned, got)


@settings(max_examples=300, deadline=None)
@given(
    departure_min=st.floats(-120.0, 240.0),
    need=st.floats(0.0, 60.0),
    max_kw=st.floats(3.7, 22.0),
    target=st.floats(-30.0, 30.0),
    offset_s=st.floats(0.0, 900.0 - HOLD_S),
)
def test_ev_setpoint_passes_the_clamp(
    departure_min: float, need: float, max_kw: float, target: float, offset_s: float
) -> None:
    """One-way charger; departure from two hours past to four hours ahead."""
    now = _now(offset_s)
    departure = START + timedelta(seconds=offset_s, minutes=departure_min)
    session = EvSession(
        asset_id="ev", arrival=START, departure=departure, energy_needed_kwh=need,
        max_charge_kw=max_kw,
    )  # fmt: skip
    pf = build_portfolio([ev_env(session, GRID)])
    planned = float(disaggregate(pf, np.full(EVENT, target)).setpoints_kw[0, 0])
    limits = DeviceLimits(p_min_kw=0.0, p_max_kw=max_kw, bidirectional=False)
    state = Telemetry(
        asset_id="ev", ts=now, power_kw=0.0, ev_connected=True,
        departure_ts=departure.timestamp(), energy_needed_kwh=need,
    )  # fmt: skip
    got = clamp_setpoint(planned, limits, state, now=now, hold_s=HOLD_S)
    assert not got.clamped, (planned, got)
