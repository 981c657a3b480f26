import csv
import io
import math
from datetime import UTC, datetime, timedelta

import pytest

from vpp.reports import EmissionFactor, SettlementRules, build_report, report_csv

EF = EmissionFactor(0.5703, "MEE/NBS 2024 announcement: 2022 national grid average")
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
        emission=EF,
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
        emission=EF,
    )
    assert rep.intervals[0].delivered_kw == pytest.approx(500)
    assert rep.intervals[0].payable_kwh == pytest.approx(120)  # 240 kW x 0.5 h
    assert rep.intervals[1].payable_kwh == pytest.approx(100)
    assert rep.payment == pytest.approx(220)
    # valley filling takes more energy from the grid: negative avoided CO2
    assert rep.avoided_co2_kg < 0


def test_under_performance_is_penalised_and_unmeasured_counts_as_zero() -> None:
    rep = build_report(
        event_id="e3",
        starts=starts(4),
        interval_s=900,
        target_kw=[-100] * 4,
        baseline_kw=[500] * 4,
        measured_kw=[450, 450, math.nan, math.nan],
        rules=SettlementRules(price_per_kwh=2.0, performance_threshold=0.8, penalty_per_kwh=1.5),
        emission=EF,
    )
    assert rep.delivered_kwh == pytest.approx(25.0)
    assert rep.performance == pytest.approx(0.25)
    assert not rep.threshold_met
    assert rep.payment == 0
    assert rep.penalty == pytest.approx((0.8 * 100 - 25) * 1.5)
    assert rep.settlement == pytest.approx(-rep.penalty)


def test_csv_has_one_row_per_interval() -> None:
    rep = build_report(
        event_id="e4",
        starts=starts(3),
        interval_s=900,
        target_kw=[-10, -10, -10],
        baseline_kw=[50, 50, 50],
        measured_kw=[40, 41, 42],
        rules=SettlementRules(),
        emission=EF,
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
            emission=EF,
        )
    with pytest.raises(ValueError, match="source"):
        EmissionFactor(0.5, " ")
    with pytest.raises(ValueError, match="cap_ratio"):
        SettlementRules(cap_ratio=0.5)
