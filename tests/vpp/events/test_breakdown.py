"""Event reports by enterprise: exact sums, shares by contract, meter reconciliation."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from vpp.events import EventState
from vpp.events.breakdown import Reconciliation, apportion, split
from vpp.events.model import BaselineInfo, EnterpriseTrack
from vpp.events.report import (
    EventReport,
    IntervalReport,
    SettlementRules,
    build_report,
    report_csv,
)
from vpp.ledger.factors import ElectricityFactor
from vpp.model import Enterprise

#: a factor of 0.5703 kgCO2/kWh (the old national one), so the sums stay easy to check
EF = ElectricityFactor("provincial", "test", 0.5703, "2022", "MEE 2023 notice: national average")
T0 = datetime(2026, 7, 1, 14, 0, tzinfo=UTC)


def track(
    baseline: Sequence[float | None],
    measured: Sequence[float | None],
    telemetry: Sequence[float | None] | None = None,
    meter: str | None = None,
) -> EnterpriseTrack:
    return EnterpriseTrack(
        meter=meter,
        baseline_source=f"meter:{meter}" if meter else "assets",
        baseline_kw=list(baseline),
        measured_kw=list(measured),
        telemetry_kw=list(measured if telemetry is None else telemetry),
    )


def _sum(values: Iterable[float | None]) -> float:
    return sum((v for v in values if v is not None), 0.0)


def report(
    tracks: Mapping[str, EnterpriseTrack],
    target_kw: Sequence[float],
    *,
    contracts: Mapping[str, Enterprise] | None = None,
    rules: SettlementRules | None = None,
    state: EventState = EventState.COMPLETED,
    reconcile: Reconciliation | None = None,
    park_digits: int = 3,
) -> EventReport:
    """A report whose park figures are the sums of the tracks, as the control loop keeps them."""
    n = len(target_kw)

    def park(name: str) -> list[float | None]:
        out: list[float | None] = []
        for t in range(n):
            parts = [getattr(tr, name)[t] for tr in tracks.values()]
            out.append(None if None in parts else round(_sum(parts), park_digits))
        return out

    by_id = contracts or {}
    return build_report(
        event_id="ev",
        starts=[T0 + timedelta(minutes=15 * i) for i in range(n)],
        interval_s=900,
        target_kw=target_kw,
        baseline_kw=park("baseline_kw"),
        measured_kw=park("measured_kw"),
        rules=rules or SettlementRules(price_per_kwh=3.5, penalty_per_kwh=1.5),
        factor=EF,
        state=state,
        enterprises=tracks,
        contract_of=lambda owner: by_id.get(owner, Enterprise()),
        reconcile=reconcile,
        baseline=BaselineInfo(
            requested="high_x_of_y",
            method="similar_days",
            fallback_reason="3 of 10 similar days in the history",
            note="mean of the 3 most recent working days",
        ),
    )


def dec(value: float | None) -> Decimal:
    """A shown figure as the decimal it prints as (what a spreadsheet adds)."""
    assert value is not None
    return Decimal(repr(value))


def assert_rows_sum_to_park(rep: EventReport) -> None:
    """Enterprise rows sum exactly to the park's, per interval and in total (with the operator)."""
    ents = rep.enterprises
    assert ents, "no breakdown"
    for t, park_row in enumerate(rep.intervals):
        for name in ("baseline_kw", "measured_kw", "delivered_kw", "payable_kwh"):
            park_value = getattr(park_row, name)
            parts = [getattr(e.intervals[t], name) for e in ents]
            if park_value is None:
                assert parts == [None] * len(ents), (t, name)
            else:
                assert sum(dec(p) for p in parts) == dec(park_value), (t, name, parts)
        requested = sum(dec(e.intervals[t].requested_kw) for e in ents)
        assert requested == abs(dec(park_row.target_kw)), t
    for name in ("requested_kwh", "delivered_kwh", "payable_kwh", "avoided_co2_kg"):
        assert sum(dec(getattr(e, name)) for e in ents) == dec(getattr(rep, name)), name
    assert rep.operator is not None
    for name in ("payment", "penalty", "settlement"):
        total = sum(dec(getattr(e, name)) for e in ents) + dec(getattr(rep.operator, name))
        assert total == dec(getattr(rep, name)), name
    for e in ents:
        assert e.settlement is not None and e.payment is not None and e.penalty is not None
        assert dec(e.settlement) == dec(e.payment) - dec(e.penalty)
    assert sum(dec(e.gross_payment) for e in ents) == dec(rep.payment)
    assert sum(dec(e.gross_penalty) for e in ents) == dec(rep.penalty)


def test_apportion_is_exact_and_within_a_unit() -> None:
    assert apportion(1000, [333.4, 333.3, 333.3]) == [334, 333, 333]
    assert apportion(10, [10 / 3] * 3) == [4, 3, 3]  # ties go to the earlier quota
    # parts rounded apart from their whole: the gap is spread, then largest remainder
    assert apportion(1000, [333.0, 333.0, 333.0]) == [334, 333, 333]
    assert apportion(-7, [-2.5, -2.5, -2.0]) == [-2, -3, -2]
    assert apportion(0, []) == []
    with pytest.raises(ValueError, match="no quota"):
        apportion(5, [])
    assert split(10000, [1.0, 1.0, 1.0]) == [3334, 3333, 3333]
    assert split(500, [0.0, 0.0]) is None
    rng = np.random.default_rng(7)
    for _ in range(200):
        weights = list(rng.uniform(0, 10, size=int(rng.integers(1, 9))))
        total = int(rng.integers(-(10**6), 10**6))
        shares = split(total, weights)
        assert shares is not None and sum(shares) == total
        for s, w in zip(shares, weights, strict=True):
            assert abs(s - total * w / sum(weights)) < 1 + 1e-9


def test_two_enterprises_paid_by_contract_one_under_delivering() -> None:
    # Peak shaving 300 kW for an hour. Baselines 600 + 400 kW: A is asked
    # 180 kW, B 120 kW (the same 30 % of each one's load). A delivers 200 kW,
    # B 80 kW (under its share); the park delivers 280 kW: 93 %, paid.
    tracks = {
        "A": track([600] * 4, [400] * 4),
        "B": track([400] * 4, [320] * 4),
    }
    contracts = {
        "A": Enterprise(name="Castings", revenue_share=0.8, penalty_share=0.5),
        "B": Enterprise(name="Logistics", revenue_share=1.0, penalty_share=1.0),
    }
    rep = report(tracks, [-300] * 4, contracts=contracts)
    assert rep.threshold_met and rep.payment == 980.0  # 4 x 70 kWh x 3.5
    assert rep.payable_kwh == 280.0
    a, b = rep.enterprises
    assert (a.enterprise, a.name, b.enterprise) == ("A", "Castings", "B")
    assert [r.requested_kw for r in a.intervals] == [180.0] * 4
    assert [r.requested_kw for r in b.intervals] == [120.0] * 4
    assert a.requested_kwh == 180.0 and b.requested_kwh == 120.0
    assert a.delivered_kwh == 200.0 and b.delivered_kwh == 80.0
    assert a.performance == pytest.approx(1.1111) and b.performance == pytest.approx(0.6667)
    # the park's 70 kWh paid per interval, shared 200 : 80
    assert [r.payable_kwh for r in a.intervals] == [50.0] * 4
    assert [r.payable_kwh for r in b.intervals] == [20.0] * 4
    assert (a.gross_payment, b.gross_payment) == (700.0, 280.0)
    assert (a.payment, b.payment) == (560.0, 280.0)  # 80 % and 100 % of it
    assert a.penalty == b.penalty == 0.0
    assert rep.operator is not None
    assert (rep.operator.payment, rep.operator.penalty) == (140.0, 0.0)  # 20 % of A's 700
    assert b.shortfall_kwh == 16.0 and a.shortfall_kwh == 0.0  # 0.8 x 120 - 80
    # 200 and 80 kWh avoided x 0.5703: 114.06 and 45.624, apportioned to the park's 159.68
    assert (a.avoided_co2_kg, b.avoided_co2_kg, rep.avoided_co2_kg) == (114.06, 45.62, 159.68)
    assert_rows_sum_to_park(rep)


def test_penalty_follows_the_shortfall_and_the_contract() -> None:
    # Same shares (A 180, B 120 kW); A delivers 120 kW, B 30 kW: the park
    # 150 of 300 kW, 50 %, below the 80 % threshold. Shortfalls: park
    # 0.8 x 300 - 150 = 90 kWh (x 1.5 = 135.00); A 144 - 120 = 24, B 96 - 30 = 66.
    tracks = {
        "A": track([600] * 4, [480] * 4),
        "B": track([400] * 4, [370] * 4),
    }
    contracts = {
        "A": Enterprise(revenue_share=0.8, penalty_share=0.5),
        "B": Enterprise(revenue_share=1.0, penalty_share=1.0),
    }
    rep = report(tracks, [-300] * 4, contracts=contracts)
    assert rep.threshold_met is False and rep.payment == 0 and rep.penalty == 135.0
    a, b = rep.enterprises
    assert (a.shortfall_kwh, b.shortfall_kwh) == (24.0, 66.0)
    assert (a.gross_penalty, b.gross_penalty) == (36.0, 99.0)  # 135 x 24/90, x 66/90
    assert (a.penalty, b.penalty) == (18.0, 99.0)  # A bears half by contract
    assert (a.settlement, b.settlement) == (-18.0, -99.0)
    assert a.gross_payment == b.gross_payment == 0.0
    assert rep.operator is not None
    assert (rep.operator.payment, rep.operator.penalty, rep.operator.settlement) == (
        0.0,
        18.0,
        -18.0,
    )
    assert rep.settlement == -135.0
    assert_rows_sum_to_park(rep)


def test_an_enterprise_that_met_its_share_bears_no_penalty_and_a_wrong_way_move_earns_nothing() -> (
    None
):
    # A sheds 200 of its 180 kW share; B raises its load by 40 kW instead of
    # shedding 120: the park delivers 160 of 300 kW, under the threshold.
    tracks = {"A": track([600] * 2, [400] * 2), "B": track([400] * 2, [440] * 2)}
    rep = report(tracks, [-300] * 2)
    a, b = rep.enterprises
    assert rep.threshold_met is False and rep.penalty is not None and rep.penalty > 0
    assert a.gross_penalty == 0.0 and b.gross_penalty == rep.penalty
    assert [r.delivered_kw for r in b.intervals] == [-40.0, -40.0]
    # the park's payable 160 kW x 15 min is all A's: B moved the other way
    assert [r.payable_kwh for r in a.intervals] == [40.0, 40.0]
    assert [r.payable_kwh for r in b.intervals] == [0.0, 0.0]
    assert_rows_sum_to_park(rep)


def test_rows_sum_exactly_with_awkward_rounding() -> None:
    # Three enterprises whose figures round apart from the park's: 333.3334 +
    # 333.3333 + 333.3333 = 1000.0, but each rounds to 333.333.
    tracks = {
        "A": track([333.3334, 333.3334], [233.3337, 233.3338]),
        "B": track([333.3333, 333.3333], [233.3331, 233.3333]),
        "C": track([333.3333, 333.3333], [233.3332, 233.3329]),
    }
    rules = SettlementRules(price_per_kwh=1.0, capacity_price_per_kw=0.01)
    rep = report(tracks, [-299.9999, -300.0001], rules=rules)
    assert rep.intervals[0].baseline_kw == 1000.0
    assert sorted(r.intervals[0].baseline_kw or 0 for r in rep.enterprises) == [
        333.333,
        333.333,
        333.334,
    ]
    assert_rows_sum_to_park(rep)
    # and a payment that does not divide: 3 equal deliveries of 100.00 CNY / 3
    equal = {k: track([100], [66.6667]) for k in "XYZ"}
    even = report(equal, [-100], rules=SettlementRules(price_per_kwh=4.0))
    assert even.payment == 100.0
    assert [e.gross_payment for e in even.enterprises] == [33.34, 33.33, 33.33]
    assert_rows_sum_to_park(even)


@pytest.mark.parametrize("seed", range(12))
def test_rows_sum_exactly_for_random_parks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    owners = [f"ent-{i}" for i in range(int(rng.integers(1, 7)))]
    tracks = {}
    for owner in owners:
        base = rng.uniform(-50, 900, n).round(4)
        tracks[owner] = track(list(base), list((base - rng.uniform(-30, 200, n)).round(4)))
    contracts = {
        o: Enterprise(revenue_share=float(rng.uniform()), penalty_share=float(rng.uniform()))
        for o in owners
    }
    kind = 1 if seed % 3 == 0 else -1  # some valley filling
    targets = list(kind * rng.uniform(0, 600, n).round(5))
    rules = SettlementRules(
        price_per_kwh=float(rng.uniform(0.5, 5)),
        penalty_per_kwh=float(rng.uniform(0.5, 3)),
        performance_threshold=float(rng.uniform(0.2, 1.0)),
    )
    rep = report(tracks, targets, contracts=contracts, rules=rules)
    assert rep.breakdown_note.startswith("enterprise rows sum exactly"), rep.breakdown_note
    assert_rows_sum_to_park(rep)
    for e, c in zip(rep.enterprises, contracts.values(), strict=True):
        assert e.payment == pytest.approx(c.revenue_share * (e.gross_payment or 0), abs=0.005)
        assert e.penalty == pytest.approx(c.penalty_share * (e.gross_penalty or 0), abs=0.005)


def test_reconciliation_flags_a_meter_beyond_the_tolerance_only() -> None:
    # Defaults: 5 % of the meter's reading, at least 1 kW.
    tracks = {
        "metered": track(
            [520] * 5,
            [500, 500, 10, 10, 500],
            telemetry=[480, 470, 9.2, 8.8, None],
            meter="m-1",
        ),
        "assets": track([100] * 5, [90] * 5),
    }
    rep = report(tracks, [-30] * 5)
    metered, assets = sorted(rep.enterprises, key=lambda e: e.enterprise != "metered")
    assert metered.meter == "m-1" and metered.baseline_source == "meter:m-1"
    rows = metered.intervals
    # 20 kW of 500 within 25; 30 beyond; 0.8 kW within the 1 kW floor; 1.2 beyond
    assert [r.meter_disagrees for r in rows] == [False, True, False, True, None]
    assert [r.meter_gap_kw for r in rows] == [20.0, 30.0, 0.8, 1.2, None]
    assert [r.telemetry_kw for r in rows] == [480.0, 470.0, 9.2, 8.8, None]
    assert metered.intervals_disagreeing == 2
    # an enterprise measured by its assets has nothing to reconcile
    assert all(
        r.telemetry_kw is r.meter_disagrees is r.meter_gap_kw is None for r in assets.intervals
    )
    assert assets.intervals_disagreeing == 0
    assert (rep.reconcile_tolerance, rep.reconcile_floor_kw) == (0.05, 1.0)
    # a looser setting, named in the report, passes the 30 kW gap
    loose = report(tracks, [-30] * 5, reconcile=Reconciliation(tolerance=0.1, floor_kw=2.0))
    flags = next(e for e in loose.enterprises if e.meter).intervals
    assert [r.meter_disagrees for r in flags] == [False, False, False, False, None]
    assert (loose.reconcile_tolerance, loose.reconcile_floor_kw) == (0.1, 2.0)
    with pytest.raises(ValueError, match="tolerance"):
        Reconciliation(tolerance=-0.1)


def test_baseline_is_named_per_event_and_per_enterprise() -> None:
    t = track([100, 100], [80, 80], meter="m-9").model_copy(
        update={"days": [date(2026, 6, 29), date(2026, 6, 30)], "adjustment": 1.08}
    )
    rep = report({"A": t}, [-20, -20])
    assert rep.baseline is not None
    assert (rep.baseline.requested, rep.baseline.method) == ("high_x_of_y", "similar_days")
    assert rep.baseline.fallback_reason == "3 of 10 similar days in the history"
    (a,) = rep.enterprises
    assert a.baseline_days == [date(2026, 6, 29), date(2026, 6, 30)]
    assert a.baseline_adjustment == 1.08 and a.baseline_source == "meter:m-9"
    data = rep.model_dump(mode="json")
    assert data["baseline"]["method"] == "similar_days"
    assert data["enterprises"][0]["baseline_days"] == ["2026-06-29", "2026-06-30"]


def test_a_record_without_tracks_has_the_park_report_alone() -> None:
    def legacy(tracks: Mapping[str, EnterpriseTrack] | None) -> EventReport:
        return build_report(
            event_id="old",
            starts=[T0 + timedelta(minutes=15 * i) for i in range(3)],
            interval_s=900,
            target_kw=[-10.0] * 3,
            baseline_kw=[50.0] * 3,
            measured_kw=[40.0, 41.0, 42.0],
            rules=SettlementRules(),
            factor=EF,
            state=EventState.COMPLETED,
            enterprises=tracks,
        )

    rep = legacy(None)
    assert rep.enterprises == [] and rep.operator is None and rep.baseline is None
    assert rep.breakdown_note == ""
    assert rep.delivered_kwh == 6.75 and rep.payment == 23.62  # 6.75 kWh x 3.5
    assert legacy({}) == rep
    # the park's CSV keeps its columns; the enterprise table is a header alone
    park_rows = list(csv.DictReader(io.StringIO(report_csv(rep))))
    assert list(park_rows[0]) == list(IntervalReport.model_fields)
    assert list(park_rows[0]) == [
        "start",
        "target_kw",
        "baseline_kw",
        "measured_kw",
        "delivered_kw",
        "performance",
        "payable_kwh",
    ]
    assert report_csv(rep, "enterprise").splitlines() == [
        "enterprise,start,requested_kw,baseline_kw,measured_kw,delivered_kw,performance,"
        "payable_kwh,telemetry_kw,meter_gap_kw,meter_disagrees"
    ]


def test_pending_event_has_rows_but_no_money() -> None:
    tracks = {"A": track([300, 300], [None, None]), "B": track([100, 100], [None, None])}
    rep = report(tracks, [-40, -40], state=EventState.SCHEDULED)
    assert rep.settlement_status == "pending"
    a, b = rep.enterprises
    assert [r.requested_kw for r in a.intervals] == [30.0, 30.0]  # 3/4 of 40 kW
    assert [r.baseline_kw for r in b.intervals] == [100.0, 100.0]
    assert all(r.measured_kw is r.delivered_kw is r.payable_kwh is None for r in a.intervals)
    assert a.delivered_kwh is a.payment is a.gross_penalty is a.avoided_co2_kg is None
    assert rep.operator is not None and rep.operator.settlement is None


def test_tracks_that_do_not_add_up_are_named_and_money_still_sums() -> None:
    # B's meter reading of the second interval is missing, the park has one.
    tracks = {"A": track([600, 600], [400, 400]), "B": track([400, 400], [320, None])}
    rep = build_report(
        event_id="ev",
        starts=[T0, T0 + timedelta(minutes=15)],
        interval_s=900,
        target_kw=[-300, -300],
        baseline_kw=[1000, 1000],
        measured_kw=[720, 720],
        rules=SettlementRules(),
        factor=EF,
        state=EventState.COMPLETED,
        enterprises=tracks,
    )
    assert "1 interval(s)" in rep.breakdown_note
    assert (T0 + timedelta(minutes=15)).isoformat() in rep.breakdown_note
    a, b = rep.enterprises
    assert b.intervals[1].measured_kw is None and a.intervals[1].measured_kw == 400.0
    assert rep.operator is not None and rep.payment is not None
    total = sum(dec(e.payment) for e in rep.enterprises) + dec(rep.operator.payment)
    assert total == dec(rep.payment)


def test_csv_by_enterprise_is_a_long_table() -> None:
    tracks = {
        "A": track([600, 600], [400, None], telemetry=[390, None], meter="m-1"),
        "B": track([400, 400], [320, None]),
    }
    rep = report(tracks, [-300, -300], state=EventState.ACTIVE)
    rows = list(csv.DictReader(io.StringIO(report_csv(rep, "enterprise"))))
    assert [(r["enterprise"], r["start"]) for r in rows] == [
        ("A", T0.isoformat()),
        ("A", (T0 + timedelta(minutes=15)).isoformat()),
        ("B", T0.isoformat()),
        ("B", (T0 + timedelta(minutes=15)).isoformat()),
    ]
    assert [r["delivered_kw"] for r in rows] == ["200.0", "", "80.0", ""]
    assert [r["requested_kw"] for r in rows] == ["180.0", "180.0", "120.0", "120.0"]
    assert [r["telemetry_kw"] for r in rows] == ["390.0", "", "", ""]
    assert [r["meter_disagrees"] for r in rows] == ["False", "", "", ""]
    assert "nan" not in report_csv(rep, "enterprise").lower()


def test_bad_tracks_are_refused() -> None:
    with pytest.raises(ValueError, match="one value per interval"):
        report({"A": track([1.0], [1.0]), "B": track([1.0, 2.0], [1.0])}, [-1.0])
