"""Issue 8, cases 4 and 5 in the plan: no rule pushes an asset against the event it serves.

A live state outside its window is held, never forced back (every envelope
kind); an EV past (or at) its stated departure has a best-effort need and is
flexible again. The exact inputs of the issue are the first tests.
"""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from dispatch import (
    Battery,
    BidSettings,
    CurtailableLoad,
    EvSession,
    ShiftableLoad,
    ThermalLoad,
    TimeGrid,
    battery_envelope,
    build_bid,
    build_portfolio,
    check_dispatch,
    curtailable_envelope,
    departure_lapsed,
    disaggregate,
    ev_envelope,
    flexibility_envelope,
    shiftable_envelope,
    thermal_envelope,
)

START = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
#: a one-hour event (4 intervals) and the control loop's 4 h after it
GRID = TimeGrid(n=4 + 16, step=timedelta(minutes=15), start=START)
EVENT = 4


def _case4(soc: float) -> Battery:
    return Battery(
        asset_id="low",
        capacity_kwh=1000.0,
        max_charge_kw=500.0,
        max_discharge_kw=500.0,
        soc=soc,
        soc_min=0.10,
        soc_max=0.90,
    )


def _helper_battery() -> Battery:
    return Battery(
        asset_id="ok", capacity_kwh=1000.0, max_charge_kw=500.0, max_discharge_kw=500.0, soc=0.5
    )


def test_case4_battery_below_soc_min_is_held_through_peak_shaving() -> None:
    """SoC 5 % < soc_min 0.10: held at 0 kW (was forced to charge at 210-500 kW)."""
    pf = build_portfolio(
        [battery_envelope(_case4(0.05), GRID), battery_envelope(_helper_battery(), GRID)]
    )
    result = disaggregate(pf, np.full(EVENT, -300.0))
    assert result.setpoints_kw[0] == pytest.approx(np.zeros(EVENT), abs=1e-3)
    assert result.shortfall_kw == pytest.approx(np.zeros(EVENT), abs=1e-3)
    assert check_dispatch(pf, result.full_setpoints_kw) == []


def test_case4_alone_the_battery_neither_discharges_nor_charges() -> None:
    pf = build_portfolio([battery_envelope(_case4(0.05), GRID)])
    result = disaggregate(pf, np.full(EVENT, -300.0))
    assert result.full_setpoints_kw[0] == pytest.approx(np.zeros(GRID.n), abs=1e-3)
    # it may recover whenever an event asks for consumption (valley filling)
    up = disaggregate(pf, np.full(EVENT, 300.0))
    assert up.setpoints_kw[0] == pytest.approx(np.full(EVENT, 300.0), abs=1e-3)


def test_case4_mirror_above_soc_max_is_held_through_valley_filling() -> None:
    pf = build_portfolio(
        [battery_envelope(_case4(0.95), GRID), battery_envelope(_helper_battery(), GRID)]
    )
    result = disaggregate(pf, np.full(EVENT, 300.0))
    assert result.setpoints_kw[0] == pytest.approx(np.zeros(EVENT), abs=1e-3)
    assert result.shortfall_kw == pytest.approx(np.zeros(EVENT), abs=1e-3)


def test_case4_bids_offer_nothing_against_the_window() -> None:
    """A bid made now: no down capacity below soc_min, no up capacity above soc_max."""
    day = TimeGrid(n=96, step=timedelta(minutes=15), start=START)
    rules = BidSettings(min_capacity_kw=0.0, min_duration_minutes=15.0)
    low = build_bid(build_portfolio([battery_envelope(_case4(0.05), day)]), rules)
    assert float(low.down.quantity_kw.max()) == pytest.approx(0.0, abs=1e-6)
    high = build_bid(build_portfolio([battery_envelope(_case4(0.95), day)]), rules)
    assert float(high.up.quantity_kw.max()) == pytest.approx(0.0, abs=1e-6)


def test_case4_live_flexibility_offers_nothing_against_the_window() -> None:
    """The live envelope (GET .../flexibility, vpp_flexibility_down_kw) agrees with the bid."""
    low = flexibility_envelope(build_portfolio([battery_envelope(_case4(0.05), GRID)]))
    assert low.down_kw == pytest.approx(np.zeros(GRID.n)) and low.up_kw[0] == pytest.approx(500.0)
    high = flexibility_envelope(build_portfolio([battery_envelope(_case4(0.95), GRID)]))
    assert high.up_kw == pytest.approx(np.zeros(GRID.n)) and high.down_kw[0] == pytest.approx(500)
    # 11 % SoC: 10 kWh above soc_min can give 38 kW for 15 minutes, not 500 kW
    near = flexibility_envelope(build_portfolio([battery_envelope(_case4(0.11), GRID)]))
    assert near.down_kw[0] == pytest.approx(10.0 * 0.95 / 0.25, rel=1e-4)


def test_thermal_load_outside_its_band_is_not_forced_to_full_power() -> None:
    """A chiller already 2 K too warm keeps its baseline through peak shaving (was: 100 kW)."""
    load = ThermalLoad(
        asset_id="chiller", rated_kw=100.0, capacity_kwh_per_k=20.0, setpoint_c=22.0,
        comfort_min_c=20.0, comfort_max_c=24.0, temperature_c=26.0,
    )  # fmt: skip
    pf = build_portfolio([thermal_envelope(load, GRID, np.full(GRID.n, 40.0))])
    result = disaggregate(pf, np.full(EVENT, -10.0))
    # never above its baseline during the event (no forced cooling against the event)
    assert np.all(result.setpoints_kw[0] <= 40.0 + 1e-6)
    # and never further out of its band than it is (its retention pulls it back)
    assert np.all(result.energy_kwh[0] >= pf.e0[0] - 1e-6)


def test_curtailable_load_beyond_its_shed_budget_is_not_forced_to_rebound() -> None:
    """Debt 30 kWh over a 25 kWh budget: no rebound during peak shaving (was: forced)."""
    load = CurtailableLoad(
        asset_id="pump", max_shed_kw=50.0, max_shed_minutes=30.0, rebound_share=0.5,
        shed_debt_kwh=30.0,
    )  # fmt: skip
    pf = build_portfolio([curtailable_envelope(load, GRID, np.full(GRID.n, 80.0))])
    result = disaggregate(pf, np.full(EVENT, -5.0))
    assert np.all(result.setpoints_kw[0] <= 80.0 + 1e-6)
    assert check_dispatch(pf, result.full_setpoints_kw) == []


def test_stated_obligations_stay_firm() -> None:
    """Windows hold, but an owner's stated need by a time is still met (shiftable, EV)."""
    job = ShiftableLoad(
        asset_id="batch", energy_kwh=20.0, max_kw=40.0, earliest_start=START,
        deadline=START + timedelta(minutes=30),
    )  # fmt: skip
    pf = build_portfolio([shiftable_envelope(job, GRID)])
    result = disaggregate(pf, np.full(EVENT, -40.0))
    assert result.energy_kwh[0, 1] == pytest.approx(20.0, abs=1e-6)


def _case5(departure: datetime) -> EvSession:
    return EvSession(
        asset_id="ev", arrival=START, departure=departure, energy_needed_kwh=10.0,
        max_charge_kw=11.0,
    )  # fmt: skip


@pytest.mark.parametrize("minutes", [-10, 5])
def test_case5_lapsed_departure_is_best_effort_and_flexible(minutes: int) -> None:
    """Departure now - 10 min (or now + 5 min, inside interval 0), 10 kWh still needed.

    The EV is still plugged in: its baseline charges uncontrolled (11 kW), it may be
    held at 0 kW through peak shaving, and no energy is required (it was left out
    of the plan at 0 kW while the clamp sent 11 kW).
    """
    departure = START + timedelta(minutes=minutes)
    assert departure_lapsed(departure, GRID)
    pf = build_portfolio([ev_envelope(_case5(departure), GRID)])
    assert pf.baseline[0, 0] == pytest.approx(11.0)
    assert pf.p_max[0] == pytest.approx(np.full(GRID.n, 11.0))
    result = disaggregate(pf, -pf.baseline[0, :EVENT])
    assert result.setpoints_kw[0] == pytest.approx(np.zeros(EVENT), abs=1e-6)
    assert result.shortfall_kw == pytest.approx(np.zeros(EVENT), abs=1e-6)


def test_case5_departure_after_the_first_interval_stays_firm() -> None:
    departure = START + timedelta(minutes=20)
    assert not departure_lapsed(departure, GRID)
    pf = build_portfolio([ev_envelope(_case5(departure), GRID)])
    # the need by the end of interval 0 cannot be met: the most it can reach, 11 kW
    result = disaggregate(pf, np.full(EVENT, -11.0))
    assert result.setpoints_kw[0, 0] == pytest.approx(11.0)


def test_ev_baseline_is_its_uncontrolled_draw_not_the_nameplate() -> None:
    """Case 10 in the plan: a vehicle drawing 7.4 kW on an 11 kW charger."""
    session = EvSession(
        asset_id="ev", arrival=START, departure=START + timedelta(hours=3),
        energy_needed_kwh=10.0, max_charge_kw=11.0, uncontrolled_kw=7.4,
    )  # fmt: skip
    pf = build_portfolio([ev_envelope(session, GRID)])
    assert pf.baseline[0, 0] == pytest.approx(7.4)
    assert pf.p_max[0, 0] == pytest.approx(11.0)
