from datetime import timedelta

import numpy as np
import pytest

from dispatch import (
    Battery,
    CurtailableLoad,
    EvSession,
    FlexKind,
    PvCurtailment,
    ShiftableLoad,
    ThermalLoad,
    TimeGrid,
    battery_envelope,
    build_portfolio,
    check_dispatch,
    curtailable_envelope,
    ev_envelope,
    pv_envelope,
    shiftable_envelope,
    thermal_envelope,
)

GRID = TimeGrid(n=8)  # two hours of 15-minute intervals


def test_battery_envelope_hand_computed() -> None:
    pf = build_portfolio(
        [
            battery_envelope(
                Battery(
                    asset_id="b",
                    capacity_kwh=100.0,
                    max_charge_kw=40.0,
                    max_discharge_kw=50.0,
                    soc=0.5,
                    end_soc_min=0.4,
                    eta_charge=0.9,
                    eta_discharge=0.8,
                ),
                GRID,
            )
        ]
    )
    assert pf.kind[0] == FlexKind.BATTERY
    assert np.all(pf.p_min == -50.0) and np.all(pf.p_max == 40.0)
    assert pf.e0[0] == 50.0
    assert pf.e_min[0, 0] == pytest.approx(10.0) and pf.e_max[0, 0] == pytest.approx(90.0)
    assert pf.e_min[0, -1] == pytest.approx(40.0)
    # charging 40 kW for 15 min stores 40 * 0.25 * 0.9 = 9 kWh
    p = np.zeros((1, 8))
    p[0, 0] = 40.0
    p[0, 1] = -50.0  # discharging 50 kW for 15 min takes 12.5 / 0.8 = 15.625 kWh
    e = pf.energy_trajectory(p)
    assert e[0, 0] == pytest.approx(59.0)
    assert e[0, 1] == pytest.approx(43.375)


def test_battery_end_window_is_checked() -> None:
    pf = build_portfolio(
        [
            battery_envelope(
                Battery(
                    asset_id="b",
                    capacity_kwh=100.0,
                    max_charge_kw=50.0,
                    max_discharge_kw=50.0,
                    soc=0.5,
                    end_soc_min=0.45,
                    eta_charge=1.0,
                    eta_discharge=1.0,
                ),
                GRID,
            )
        ]
    )
    p = np.zeros((1, 8))
    p[0, 0] = -40.0  # 10 kWh out -> ends at 40 kWh < 45
    bad = check_dispatch(pf, p)
    assert [(v.bound, v.interval) for v in bad] == [("e_min", 7)]


def test_ev_envelope_asap_baseline_and_departure_energy() -> None:
    session = EvSession(
        asset_id="ev",
        arrival=GRID.start + timedelta(minutes=10),
        departure=GRID.start + timedelta(minutes=100),
        energy_needed_kwh=5.0,
        max_charge_kw=11.0,
        eta_charge=1.0,
    )
    pf = build_portfolio([ev_envelope(session, GRID)])
    # present in intervals 1..5 (first whole interval after arrival, last ending by departure)
    assert list(pf.p_max[0]) == [0, 11, 11, 11, 11, 11, 0, 0]
    assert np.all(pf.p_min == 0.0)
    # ASAP: 11 kW * 0.25 h = 2.75 kWh, then 2.25 kWh = 9 kW
    assert pf.baseline[0, :4] == pytest.approx([0.0, 11.0, 9.0, 0.0])
    assert pf.e_min[0, 5] == pytest.approx(5.0)
    assert check_dispatch(pf, pf.baseline) == []
    late = np.zeros((1, 8))
    late[0, 5] = 11.0
    assert [v.bound for v in check_dispatch(pf, late)] == ["e_min"] * 3


def test_ev_unreachable_energy_is_relaxed_to_what_is_reachable() -> None:
    session = EvSession(
        asset_id="ev",
        arrival=GRID.start,
        departure=GRID.start + timedelta(minutes=30),
        energy_needed_kwh=50.0,
        max_charge_kw=10.0,
        eta_charge=1.0,
    )
    pf = build_portfolio([ev_envelope(session, GRID)])
    assert pf.e_min[0, 1] == pytest.approx(5.0)  # 2 intervals * 10 kW * 0.25 h


def test_ev_v2g_may_discharge() -> None:
    session = EvSession(
        asset_id="ev",
        arrival=GRID.start,
        departure=GRID.end,
        energy_needed_kwh=0.0,
        max_charge_kw=7.0,
        max_discharge_kw=7.0,
        v2g=True,
        v2g_floor_kwh=3.0,
    )
    pf = build_portfolio([ev_envelope(session, GRID)])
    assert np.all(pf.p_min == -7.0)
    assert pf.e_min[0, 0] == pytest.approx(-3.0)


def test_curtailable_shed_budget_and_rebound() -> None:
    load = CurtailableLoad(asset_id="c", max_shed_kw=20.0, max_shed_minutes=30.0, rebound_share=0.5)
    pf = build_portfolio([curtailable_envelope(load, GRID, np.full(8, 100.0))])
    assert np.all(pf.p_min == 80.0) and np.all(pf.p_max == 120.0)
    assert pf.e_min[0, 0] == pytest.approx(-10.0)  # 20 kW for 0.5 h
    assert pf.e_min[0, -1] == 0.0  # the debt is repaid by the end
    p = np.full((1, 8), 100.0)
    p[0, :2] = 80.0  # shed 10 kWh
    p[0, 2] = 110.0  # 2.5 kWh extra repays 5 kWh of debt (rebound share 0.5)
    p[0, 3] = 110.0
    assert check_dispatch(pf, p) == []
    p[0, 3] = 100.0
    assert [v.bound for v in check_dispatch(pf, p)] == ["e_min"]  # not repaid at the end
    p[0, :3] = 80.0
    assert "e_min" in {v.bound for v in check_dispatch(pf, p)[:1]}  # 15 kWh > budget


def test_curtailable_without_rebound_has_no_up_flex() -> None:
    load = CurtailableLoad(asset_id="c", max_shed_kw=20.0, max_shed_minutes=60.0, rebound_share=0.0)
    pf = build_portfolio([curtailable_envelope(load, GRID, np.full(8, 50.0))])
    assert np.all(pf.p_max == 50.0)
    assert pf.k_charge[0] == 0.0


def test_shiftable_fixed_energy_window() -> None:
    load = ShiftableLoad(
        asset_id="s",
        energy_kwh=10.0,
        max_kw=20.0,
        earliest_start=GRID.start + timedelta(minutes=30),
        deadline=GRID.start + timedelta(minutes=90),
    )
    pf = build_portfolio([shiftable_envelope(load, GRID)])
    assert list(pf.p_max[0]) == [0, 0, 20, 20, 20, 20, 0, 0]
    assert pf.baseline[0] == pytest.approx([0, 0, 20, 20, 0, 0, 0, 0])
    assert pf.e_min[0, 5] == 10.0 and pf.e_max[0, 0] == 10.0
    moved = np.zeros((1, 8))
    moved[0, 4:6] = 20.0
    assert check_dispatch(pf, moved) == []


def test_thermal_is_a_leaky_battery_over_the_comfort_band() -> None:
    load = ThermalLoad(
        asset_id="t",
        rated_kw=50.0,
        capacity_kwh_per_k=10.0,
        setpoint_c=22.0,
        comfort_min_c=21.0,
        comfort_max_c=24.0,
        temperature_c=23.0,
        time_constant_h=2.0,
        cooling=True,
    )
    pf = build_portfolio([thermal_envelope(load, GRID, np.full(8, 20.0))])
    # cooling: colder = stored cold = positive state; band (22-24)*10 .. (22-21)*10
    assert pf.e_min[0, 0] == pytest.approx(-20.0) and pf.e_max[0, 0] == pytest.approx(10.0)
    assert pf.e0[0] == pytest.approx(-10.0)
    assert pf.retention[0] == pytest.approx(np.exp(-0.125))
    e = pf.energy_trajectory(pf.baseline)
    assert e[0, 0] == pytest.approx(-10.0 * np.exp(-0.125))


def test_pv_curtailment_only_up() -> None:
    pf = build_portfolio([pv_envelope(PvCurtailment(asset_id="pv"), GRID, np.full(8, 30.0))])
    assert np.all(pf.baseline == -30.0) and np.all(pf.p_min == -30.0) and np.all(pf.p_max == 0.0)
    assert check_dispatch(pf, np.zeros((1, 8))) == []
