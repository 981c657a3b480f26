import csv
import io
import math
from datetime import UTC, datetime, timedelta

import pytest

from vpp.events import EventState
from vpp.events.report import SettlementRules, build_report, report_csv
from vpp.ledger.factors import ElectricityFactor

#: a factor of 0.5703 kgCO2/kWh (the old national one), so the sums stay easy to check
EF = ElectricityFactor("provincial", "test", 0.5703, "2022", "MEE 2023 notice: national average")
T0 = datetime(2026, 7, 1, 14, 0, tzinfo=UTC)


def starts(n: int) -> list[datetime]:
    return [T0 + timedelta(minutes=15 * i) for i in range(n)]


def test_peak_shaving_on_target_is_paid() -> None:
    # baseline 1000 kW, asked to reduce 400 kW, measured 600 kW -> exactly on target
    rep = build_report(
        event_id="e1",
        starts=starts(4),
        interval_s=900,
        target_kw=[-400] * 4,
        baseline_kw=[1000] * 4,
        measured_kw=[600] * 4,
        rules=SettlementRules(price_per_kwh=3.5, capacity_price_per_kw=0.0),
        factor=EF,
        state=EventState.COMPLETED,
    )
    assert rep.requested_kwh == pytest.approx(400.0)  # 400 kW x 1 h
    assert rep.delivered_kwh == pytest.approx(400.0)
    assert rep.performance == pytest.approx(1.0)
    assert rep.threshold_met
    assert rep.payment == pytest.approx(1400.0)
    assert rep.penalty == 0
    assert rep.avoided_co2_kg == pytest.approx(400 * 0.5703)
    assert all(r.performance == pytest.approx(1.0) for r in rep.intervals)


def test_over_delivery_is_capped_and_valley_filling_sign() -> None:
    rep = build_report(
        event_id="e2",
        starts=starts(2),
        interval_s=1800,
        target_kw=[200, 200],
        baseline_kw=[100, 100],
        measured_kw=[600, 300],  # delivered 500 (capped at 240) and 200
        rules=SettlementRules(price_per_kwh=1.0, cap_ratio=1.2),
        factor=EF,
        state=EventState.COMPLETED,
    )
    assert rep.intervals[0].delivered_kw == pytest.approx(500)
    assert rep.intervals[0].payable_kwh == pytest.approx(120)  # 240 kW x 0.5 h
    assert rep.intervals[1].payable_kwh == pytest.approx(100)
    assert rep.payment == pytest.approx(220)
    # valley filling takes more energy from the grid: negative avoided CO2
    assert rep.avoided_co2_kg is not None and rep.avoided_co2_kg < 0


def test_under_performance_is_penalised() -> None:
    rep = build_report(
        event_id="e3",
        starts=starts(4),
        interval_s=900,
        target_kw=[-100] * 4,
        baseline_kw=[500] * 4,
        measured_kw=[450, 450, 480, 500],  # 50, 50, 20, 0 kW delivered
        rules=SettlementRules(price_per_kwh=2.0, performance_threshold=0.8, penalty_per_kwh=1.5),
        factor=EF,
        state=EventState.COMPLETED,
    )
    assert rep.delivered_kwh == pytest.approx(30.0)
    assert rep.performance == pytest.approx(0.3)
    assert rep.threshold_met is False
    assert rep.payment == 0
    assert rep.penalty == pytest.approx((0.8 * 100 - 30) * 1.5)
    assert rep.penalty is not None and rep.settlement == pytest.approx(-rep.penalty)
    assert rep.settlement_status == "final" and rep.intervals_measured == 4


def test_unmeasured_intervals_are_left_out_not_counted_as_zero() -> None:
    # A running event: two intervals measured, two to come. Counting the two
    # to come as 0 kW delivered used to make this 25 % and charge a penalty.
    rep = build_report(
        event_id="e3b",
        starts=starts(4),
        interval_s=900,
        target_kw=[-100] * 4,
        baseline_kw=[500] * 4,
        measured_kw=[420, 410, math.nan, None],
        rules=SettlementRules(price_per_kwh=2.0, performance_threshold=0.8, penalty_per_kwh=1.5),
        factor=EF,
        state=EventState.ACTIVE,
    )
    assert rep.intervals_measured == 2
    assert rep.requested_kwh == pytest.approx(50.0)  # 100 kW x 2 x 0.25 h
    assert rep.delivered_kwh == pytest.approx(42.5)  # (80 + 90) kW x 0.25 h
    assert rep.performance == pytest.approx(0.85)
    assert rep.threshold_met is True
    assert rep.payment == pytest.approx(42.5 * 2.0) and rep.penalty == 0
    assert rep.settlement_status == "provisional"
    assert rep.avoided_co2_kg == pytest.approx(42.5 * 0.5703, abs=0.01)
    for row in rep.intervals[2:]:
        assert row.baseline_kw == 500
        assert row.measured_kw is row.delivered_kw is row.performance is row.payable_kwh is None


def test_scheduled_event_report_is_pending_with_nothing_counted() -> None:
    # Issue 8, a scheduled event 30 min ahead: it answered penalty 2400,
    # settlement -2400, threshold_met false and delivered 0.0 per interval.
    rep = build_report(
        event_id="ev-ahead",
        starts=starts(8),
        interval_s=900,
        target_kw=[-1500] * 8,
        baseline_kw=[None] * 8,
        measured_kw=[None] * 8,
        rules=SettlementRules(),
        factor=EF,
        state=EventState.SCHEDULED,
    )
    assert rep.settlement_status == "pending" and rep.intervals_measured == 0
    assert rep.requested_kwh is rep.delivered_kwh is rep.performance is None
    assert rep.threshold_met is None
    assert rep.payment is rep.penalty is rep.settlement is rep.avoided_co2_kg is None
    assert "no interval measured yet" in rep.settlement_note
    for row in rep.intervals:
        assert row.target_kw == -1500
        assert row.baseline_kw is row.measured_kw is row.delivered_kw is None
        assert row.performance is row.payable_kwh is None
    text = report_csv(rep)
    assert "nan" not in text.lower()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 8
    for r in rows:
        assert r["target_kw"] == "-1500.0"
        empty = ("baseline_kw", "measured_kw", "delivered_kw", "performance", "payable_kwh")
        assert [r[k] for k in empty] == [""] * 5


def test_event_failed_before_running_has_no_settlement_and_no_penalty() -> None:
    # Issue 8: an event refused for overlapping another answered penalty 4000000.0.
    why = "failed: overlaps event ev-ahead, which is scheduled"
    rep = build_report(
        event_id="ev-huge",
        starts=starts(8),
        interval_s=900,
        target_kw=[-2_500_000] * 8,
        baseline_kw=[None] * 8,
        measured_kw=[None] * 8,
        rules=SettlementRules(),
        factor=EF,
        state=EventState.FAILED,
        why=why,
    )
    assert rep.settlement_status == "none"
    assert rep.payment is rep.penalty is rep.settlement is None
    assert rep.performance is None and rep.threshold_met is None
    assert rep.settlement_note.startswith(why) and "no penalty" in rep.settlement_note


def test_event_cancelled_midway_settles_on_its_measured_intervals() -> None:
    # baseline known for all four intervals, two measured before the cancel
    rep = build_report(
        event_id="ev-cut",
        starts=starts(4),
        interval_s=900,
        target_kw=[-400] * 4,
        baseline_kw=[1600] * 4,
        measured_kw=[1250, 1300, None, None],  # 350 and 300 kW delivered
        rules=SettlementRules(price_per_kwh=3.5),
        factor=EF,
        state=EventState.CANCELLED,
        why="cancelled: cancelled by the grid operator",
    )
    assert rep.intervals_measured == 2 and rep.settlement_status == "final"
    assert rep.requested_kwh == pytest.approx(200.0)
    assert rep.delivered_kwh == pytest.approx(162.5)
    assert rep.performance == pytest.approx(0.8125) and rep.threshold_met is True
    assert rep.payment == pytest.approx(162.5 * 3.5) and rep.penalty == 0
    assert rep.settlement == pytest.approx(568.75)
    assert rep.avoided_co2_kg == pytest.approx(162.5 * 0.5703, abs=0.01)
    assert "2 of 4" in rep.settlement_note


def test_a_measurement_without_baseline_credits_nothing() -> None:
    # No baseline, no change in power to credit: the interval is not measured.
    rep = build_report(
        event_id="e5",
        starts=starts(2),
        interval_s=900,
        target_kw=[-100, -100],
        baseline_kw=[None, math.nan],
        measured_kw=[300, 300],
        rules=SettlementRules(),
        factor=EF,
        state=EventState.ACTIVE,
    )
    assert rep.intervals_measured == 0 and rep.settlement_status == "pending"
    assert all(r.delivered_kw is None and r.measured_kw is None for r in rep.intervals)
    assert rep.settlement is None and rep.avoided_co2_kg is None


def test_measured_intervals_that_ask_nothing_settle_to_zero() -> None:
    rep = build_report(
        event_id="e6",
        starts=starts(2),
        interval_s=900,
        target_kw=[0, 0],
        baseline_kw=[100, 100],
        measured_kw=[90, 100],
        rules=SettlementRules(),
        factor=EF,
        state=EventState.COMPLETED,
    )
    assert rep.performance is None and rep.threshold_met is None
    assert rep.payment == rep.penalty == rep.settlement == 0
    assert rep.intervals[0].performance is None and rep.intervals[0].delivered_kw == 0


def test_csv_has_one_row_per_interval() -> None:
    rep = build_report(
        event_id="e4",
        starts=starts(3),
        interval_s=900,
        target_kw=[-10, -10, -10],
        baseline_kw=[50, 50, 50],
        measured_kw=[40, 41, 42],
        rules=SettlementRules(),
        factor=EF,
        state=EventState.COMPLETED,
    )
    rows = list(csv.DictReader(io.StringIO(report_csv(rep))))
    assert [float(r["delivered_kw"]) for r in rows] == [10, 9, 8]
    assert rows[0]["start"] == T0.isoformat()


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="equal length"):
        build_report(
            event_id="x",
            starts=starts(2),
            interval_s=900,
            target_kw=[1],
            baseline_kw=[1, 1],
            measured_kw=[1, 1],
            rules=SettlementRules(),
            factor=EF,
            state=EventState.COMPLETED,
        )
    with pytest.raises(ValueError, match="cap_ratio"):
        SettlementRules(cap_ratio=0.5)
