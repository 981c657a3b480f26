"""The Guangdong declaration per trading unit, hand-checked against the rule profiles."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.vpp.samples import stored_bid
from vpp.bids import BidRecord, declare, parse_bid_request
from vpp.bids.declaration import apply_profile, declaration_csv
from vpp.errors import InvalidInput
from vpp.market import shipped_profiles

TZ = "Asia/Shanghai"
DAY = datetime(2026, 12, 1, tzinfo=ZoneInfo(TZ))  # a market day in Guangdong
PROFILES = shipped_profiles()
SPOT, DR = PROFILES["gd-spot-unit"], PROFILES["gd-market-dr"]


def _offer(quantity_kw: list[float], prices: list[float]) -> dict[str, Any]:
    # Every step offers the same share of the quantity: step i offers (i + 1) / S of it.
    steps = len(prices)
    curve = [[q * (i + 1) / steps for q in quantity_kw] for i in range(steps)]
    return {"quantity_kw": quantity_kw, "prices": prices, "curve_kw": curve,
            "deliverable": True, "explanation": "hand-made"}  # fmt: skip


def _unit(node: str, baseline: list[float], up: float, down: float, **extra: Any) -> dict[str, Any]:
    n = len(baseline)
    prices = extra.pop("prices", [0.3, 1.0])
    return {
        "node": node,
        "asset_ids": [f"{node}-a"],
        "baseline_kw": baseline,
        "up": _offer([up] * n, prices),
        "down": _offer([down] * n, prices),
        "hourly_up": _offer([up] * n, prices),
        "hourly_down": _offer([down] * n, prices),
        "jointly_deliverable": True,
        **extra,
    }


def _bid(*units: dict[str, Any], intervals: int = 96, start: datetime = DAY) -> BidRecord:
    starts = [(start + timedelta(minutes=15 * i)).isoformat() for i in range(intervals)]
    return BidRecord.model_validate(
        stored_bid(start=start.isoformat(), starts=starts, baseline_kw=[0.0] * intervals,
                   units=list(units))
    )  # fmt: skip


# -- the declaration, hand-checked ------------------------------------------------------


def test_hourly_energies_sum_to_the_unit_baseline_energy() -> None:
    baseline = [1000.0 + 10.0 * i for i in range(96)]
    decl = declare(_bid(_unit("n1", baseline, up=400.0, down=800.0)), SPOT, TZ)
    unit = decl.units[0]
    assert decl.hours == 24 and len(unit.hours) == 24
    # hour 0: (1000 + 1010 + 1020 + 1030) kW x 0.25 h = 1015 kWh
    assert unit.hours[0].energy_mwh == pytest.approx(1.015)
    total_mwh = sum(baseline) * 0.25 / 1000.0
    assert sum(h.energy_mwh for h in unit.hours) == pytest.approx(total_mwh)
    # bounds: hourly mean baseline 1015 kW + 400 up / - 800 down
    assert unit.hours[0].upper_mw == pytest.approx(1.415)
    assert unit.hours[0].lower_mw == pytest.approx(0.215)
    assert unit.hours[0].capability_mw == pytest.approx(1.2)  # range: 0.4 + 0.8
    assert unit.compliant and decl.compliant and unit.violations == []


def test_a_unit_under_1_mw_says_which_rule_and_by_how_much() -> None:
    small = _unit("n-small", [500.0] * 96, up=100.0, down=300.0)
    big = _unit("n-big", [2000.0] * 96, up=500.0, down=1000.0)
    decl = declare(_bid(big, small), SPOT, TZ)
    by_node = {u.node: u for u in decl.units}
    assert by_node["n-big"].compliant
    unit = by_node["n-small"]
    assert not unit.compliant and not decl.compliant
    whole = [v for v in unit.violations if v.scope == "unit"]
    assert len(whole) == 1
    miss = whole[0]
    assert (miss.rule, miss.required, miss.unit) == ("min_capacity", 1.0, "MW")
    assert miss.actual == pytest.approx(0.4) and miss.miss == pytest.approx(0.6)
    # every hour is declared as it is (not zeroed) and each says what it misses
    assert [h.capability_mw for h in unit.hours] == [pytest.approx(0.4)] * 24
    assert len([v for v in unit.violations if v.scope == "hour"]) == 24


def test_market_dr_caps_prices_at_150_percent_of_the_spot_cap() -> None:
    unit = _unit("n1", [8000.0] * 96, up=0.0, down=6000.0, prices=[0.3, 3.0])
    decl = declare(_bid(unit), DR, TZ)
    steps = decl.units[0].down_steps
    assert [s.bid_price_cny_per_mwh for s in steps] == [300.0, 3000.0]
    assert [s.price_cny_per_mwh for s in steps] == [300.0, 2250.0]  # capped at 1500 x 150 %
    capped = [c for c in decl.units[0].capped if c.direction == "down"]
    assert len(capped) == 1
    assert (capped[0].rule, capped[0].required, capped[0].actual) == ("price_cap", 2250.0, 3000.0)
    assert capped[0].miss == pytest.approx(750.0)
    assert steps[1].mw == [pytest.approx(6.0)] * 24  # the step keeps its quantity
    assert decl.compliant  # 6 MW down >= 5 MW for the VPP, prices within the cap once capped
    # the spot profile caps the same price at the spot cap itself
    spot = declare(_bid(unit), SPOT, TZ).units[0].down_steps
    assert spot[1].price_cny_per_mwh == 1500.0


def test_market_dr_minimum_is_for_the_whole_vpp() -> None:
    units = [_unit(f"n{i}", [3000.0] * 96, up=0.0, down=2000.0) for i in range(2)]
    decl = declare(_bid(*units), DR, TZ)
    assert decl.capability_mw == pytest.approx(4.0)  # two units of 2 MW down
    assert all(u.compliant for u in decl.units)  # no per-unit minimum under market DR
    whole = [v for v in decl.violations if v.scope == "declaration"]
    assert (whole[0].rule, whole[0].required, whole[0].actual) == ("min_capacity", 5.0, 4.0)
    assert whole[0].miss == pytest.approx(1.0) and not decl.compliant
    three = declare(_bid(*units, _unit("n9", [3000.0] * 96, 0.0, 2000.0)), DR, TZ)
    assert three.compliant


def test_a_short_run_breaks_the_minimum_duration() -> None:
    down = [0.0] * 96
    down[40:44] = [1500.0] * 4  # one hour, 10:00-11:00
    unit = _unit("n1", [2000.0] * 96, up=0.0, down=0.0)
    unit["hourly_down"] = _offer(down, [0.3])
    unit["down"] = _offer(down, [0.3])
    two_hours = SPOT.model_copy(update={"min_duration_minutes": 120.0})
    decl = declare(_bid(unit), two_hours, TZ)
    misses = [v for v in decl.units[0].violations if v.rule == "min_duration"]
    assert len(misses) == 1
    assert misses[0].start == DAY + timedelta(hours=10)
    assert (misses[0].required, misses[0].actual, misses[0].miss) == (120.0, 60.0, 60.0)
    assert declare(_bid(unit), SPOT, TZ).units[0].compliant  # one hour meets the 1 h rule


def test_a_pv_unit_has_a_96_point_generation_curve() -> None:
    gen = [0.0] * 96
    gen[48] = 800.0
    unit = _unit("n1", [1500.0] * 96, 500.0, 600.0, generation_kw=gen, generation_ids=["pv-1"])
    curve = declare(_bid(unit), SPOT, TZ).units[0].generation
    assert curve is not None and curve.asset_ids == ["pv-1"]
    assert len(curve.mw) == 96 and curve.mw[48] == pytest.approx(0.8)
    two_hours = _unit("n1", [1500.0] * 8, 500.0, 600.0, generation_kw=gen[:8])
    short = _bid({**two_hours, "generation_ids": ["pv-1"]}, intervals=8)
    decl = declare(short, SPOT, TZ)
    rules = {v.rule for v in decl.violations} | {v.rule for v in decl.units[0].violations}
    assert {"market_day", "generation_points"} <= rules and not decl.compliant


# -- the market day is the park's local day -----------------------------------------------


def test_a_window_seven_minutes_past_midnight_misses_the_market_day() -> None:
    # the user's bid {"start": "2026-12-02T00:07:00+08:00"}: 96 x 15 min, 24 hours, but
    # from 00:07 to 00:07 Beijing time - not the market day's 00:00-24:00
    start = datetime.fromisoformat("2026-12-02T00:07:00+08:00")
    decl = declare(_bid(_unit("n1", [2000.0] * 96, 0.0, 1500.0), start=start), SPOT, TZ)
    assert decl.hours == 24 and decl.units[0].compliant  # the unit itself meets 1 MW, 1 h
    (day,) = [v for v in decl.violations if v.rule == "market_day"]
    assert (day.required, day.actual, day.miss, day.unit) == (0.0, 7.0, 7.0, "min")
    assert day.start is not None and day.start.isoformat() == "2026-12-02T00:07:00+08:00"
    assert day.detail is not None and "00:07:00 Asia/Shanghai" in day.detail
    assert not decl.compliant


def test_a_midnight_in_another_offset_is_not_the_parks_midnight() -> None:
    # 2026-12-02T00:00+05:45 (Kathmandu) is 02:15 Beijing time
    start = datetime.fromisoformat("2026-12-02T00:00:00+05:45")
    decl = declare(_bid(_unit("n1", [2000.0] * 96, 0.0, 1500.0), start=start), SPOT, TZ)
    (day,) = [v for v in decl.violations if v.rule == "market_day"]
    assert (day.actual, day.miss) == (135.0, 135.0)
    assert day.detail is not None and "2026-12-02 02:15:00 Asia/Shanghai" in day.detail
    assert decl.units[0].hours[0].start.isoformat() == "2026-12-02T02:15:00+08:00"
    assert not decl.compliant
    # the same instant is midnight for a park in Kathmandu
    assert declare(_bid(_unit("n1", [2000.0] * 96, 0.0, 1500.0), start=start), SPOT,
                   "Asia/Kathmandu").compliant  # fmt: skip


def test_a_park_local_midnight_on_24_hours_is_the_market_day() -> None:
    decl = declare(_bid(_unit("n1", [2000.0] * 96, 0.0, 1500.0)), SPOT, TZ)
    assert decl.violations == [] and decl.compliant and decl.timezone == TZ


def test_a_short_window_at_the_wrong_time_misses_both_start_and_hours() -> None:
    start = DAY + timedelta(hours=1, minutes=30)  # 01:30 Beijing time, 2 hours
    decl = declare(_bid(_unit("n1", [2000.0] * 8, 0.0, 1500.0), intervals=8, start=start),
                   SPOT, TZ)  # fmt: skip
    misses = {(v.unit, v.actual, v.miss) for v in decl.violations if v.rule == "market_day"}
    assert misses == {("min", 90.0, 90.0), ("h", 2.0, 22.0)}


# -- the CSV says what the JSON says ---------------------------------------------------------


def test_the_csv_of_a_non_compliant_vpp_is_not_compliant_on_any_row() -> None:
    # gd-market-dr: the VPP holds 1.2 MW against the 5 MW minimum; the unit alone has no
    # minimum of its own (capacity_scope vpp), so it is compliant - the declaration is not
    decl = declare(_bid(_unit("n1", [3000.0] * 96, 0.0, 1200.0)), DR, TZ)
    assert decl.units[0].compliant and not decl.compliant
    rows = list(csv.DictReader(io.StringIO(declaration_csv(decl))))
    assert len(rows) == 24
    assert {r["unit_compliant"] for r in rows} == {"true"}
    assert {r["declaration_compliant"] for r in rows} == {"false"}
    assert {r["declaration_violations"] for r in rows} == {"min_capacity 1.2/5 MW"}
    # every hour has 1.2 MW, under the 5 MW the VPP needs in an hour with capability
    assert rows[3]["hour_violations"] == "vpp: min_capacity 1.2/5 MW"
    assert rows[3]["start"] == "2026-12-01T03:00:00+08:00" and rows[3]["unit_violations"] == ""


def test_the_csv_names_a_units_own_misses() -> None:
    decl = declare(_bid(_unit("n1", [2000.0] * 96, 0.0, 400.0)), SPOT, TZ)
    rows = list(csv.DictReader(io.StringIO(declaration_csv(decl))))
    assert {(r["unit_compliant"], r["declaration_compliant"]) for r in rows} == {("false", "false")}
    assert rows[0]["unit_violations"] == "min_capacity 0.4/1 MW"
    assert rows[0]["hour_violations"] == "unit: min_capacity 0.4/1 MW"
    assert rows[0]["declaration_violations"] == ""


# -- the request's rules override the profile's field by field --------------------------------


def test_rules_given_with_a_profile_override_only_their_fields() -> None:
    req = parse_bid_request(
        {"start": "2026-12-02T00:00:00+08:00", "profile": "gd-market-dr", "rules": {"price_cap": 9}}
    )
    rules = apply_profile(req, PROFILES).rules
    assert rules.price_cap == 9.0  # given
    assert rules.min_capacity_kw == 5000.0  # the profile's 5 MW, not BidRules' 1 MW default
    assert rules.min_duration_minutes == DR.min_duration_minutes
    assert rules.price_floor == DR.price_floor_cny_per_mwh / 1000.0


def test_no_rules_with_a_profile_are_the_profiles_and_a_profile_less_request_is_unchanged() -> None:
    req = parse_bid_request({"start": "2026-12-02T00:00:00+08:00", "profile": "gd-market-dr"})
    assert apply_profile(req, PROFILES).rules.model_dump() == DR.bid_rules()
    bare = parse_bid_request({"start": "2026-12-02T00:00:00+08:00", "rules": {"price_cap": 9}})
    assert apply_profile(bare, PROFILES).rules.min_capacity_kw == 1000.0


def test_a_given_floor_above_the_profiles_cap_is_422_naming_the_field() -> None:
    cap = DR.price_cap_cny_per_mwh / 1000.0
    body = {"start": "2026-12-02T00:00:00+08:00", "profile": "gd-market-dr",
            "rules": {"price_floor": cap + 1.0}}  # fmt: skip
    with pytest.raises(InvalidInput) as err:
        apply_profile(parse_bid_request(body), PROFILES)
    assert [e.field for e in err.value.errors] == ["rules.price_floor"]
