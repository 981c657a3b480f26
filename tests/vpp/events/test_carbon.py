"""An event's avoided CO2 with its rebound window, at the park's named factor (hand-computed)."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from vpp.events import EventState
from vpp.events.model import EnterpriseTrack
from vpp.events.rebound import Rebound
from vpp.events.report import EventReport, SettlementRules, build_report, report_csv
from vpp.ledger.factors import ELECTRICITY_FACTORS, ElectricityFactor

SOUTHERN = ELECTRICITY_FACTORS["mee-2023-southern"]  # 0.4042 kgCO2/kWh
T0 = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)
STEP = timedelta(minutes=15)
NAN = float("nan")


def window(measured_a: list[float], measured_b: list[float], *, counted: bool = True) -> Rebound:
    """Four 15-minute intervals after a one-hour event: a's baseline 600 kW, b's 400 kW."""
    a, b = np.array(measured_a), np.array(measured_b)
    return Rebound(
        starts=tuple(T0 + STEP * (4 + j) for j in range(4)),
        interval_s=900,
        baseline_kw=np.full(4, 1000.0),
        measured_kw=a + b,
        coverage=np.where(np.isnan(a + b), np.nan, 1.0),
        silent=np.zeros(4),
        owner_baseline_kw={"a": np.full(4, 600.0), "b": np.full(4, 400.0)},
        owner_measured_kw={"a": a, "b": b},
        length_h=1.0,
        counted=counted,
        note="up to 1 h past the end",
    )


def tracks() -> dict[str, EnterpriseTrack]:
    """a sheds 200 kW of 600, b 100 kW of 400, over four intervals."""
    return {
        "a": EnterpriseTrack(baseline_kw=[600.0] * 4, measured_kw=[400.0] * 4,
                             telemetry_kw=[400.0] * 4),
        "b": EnterpriseTrack(baseline_kw=[400.0] * 4, measured_kw=[300.0] * 4,
                             telemetry_kw=[300.0] * 4),
    }  # fmt: skip


def report(
    rebound: Rebound | None,
    factor: ElectricityFactor = SOUTHERN,
    state: EventState = EventState.COMPLETED,
) -> EventReport:
    """A one-hour, 300 kW peak-shaving event, delivered in full (700 kW against 1000)."""
    return build_report(
        event_id="shift",
        starts=[T0 + STEP * i for i in range(4)],
        interval_s=900,
        target_kw=[-300.0] * 4,
        baseline_kw=[1000.0] * 4,
        measured_kw=[700.0] * 4,
        rules=SettlementRules(price_per_kwh=3.5),
        factor=factor,
        state=state,
        enterprises=tracks(),
        rebound=rebound,
    )


def test_a_load_shift_rebound_inside_the_window_reduces_the_avoided_co2() -> None:
    # after the event a draws 200 and 100 kW above its baseline, b 20 kW once:
    # rebound (200 + 20 + 100) kW x 0.25 h = 80 kWh of the 300 kWh the event shed
    rep = report(window([800, 700, 600, 600], [420, 400, 400, 400]))
    assert rep.event_reduction_kwh == 300.0
    assert rep.rebound_kwh == 80.0
    assert rep.net_reduction_kwh == 220.0
    assert rep.event_avoided_co2_kg == 121.26  # 300 x 0.4042
    assert rep.avoided_co2_kg == 88.92  # 220 x 0.4042 = 88.924
    assert rep.avoided_co2_status == "final"
    assert "4 intervals to 2026-07-01T08:00:00+00:00" in rep.avoided_co2_note
    assert [r.rebound_kw for r in rep.rebound_intervals] == [220.0, 100.0, 0.0, 0.0]
    assert [r.baseline_kw for r in rep.rebound_intervals] == [1000.0] * 4
    assert rep.rebound_window_h == 1.0
    # the settlement is the event's alone, whatever came back after it
    alone = report(None)
    for name in ("requested_kwh", "delivered_kwh", "payable_kwh", "payment", "settlement"):
        assert getattr(rep, name) == getattr(alone, name), name
    assert alone.avoided_co2_kg == 121.26 and alone.avoided_co2_status == "event_only"
    assert alone.rebound_kwh is None and alone.rebound_intervals == []


def test_the_factor_is_named_and_changes_the_figure() -> None:
    shift = window([800, 700, 600, 600], [420, 400, 400, 400])
    rep = report(shift)
    assert rep.emission_factor.id == "mee-2023-southern"
    assert rep.emission_factor.vintage == "2023" and rep.emission_factor.kg_co2_per_kwh == 0.4042
    assert "生态环境部" in rep.emission_factor.source
    assert rep.emission_factor_t_per_mwh == 0.4042
    assert rep.emission_factor_source.startswith("Southern grid region")
    national = report(shift, ELECTRICITY_FACTORS["mee-2023-national"])
    assert national.avoided_co2_kg == 116.73  # 220 x 0.5306 = 116.732
    assert national.emission_factor.name == "national average"


def test_the_enterprises_carry_their_rebound_and_sum_to_the_park() -> None:
    rep = report(window([800, 700, 600, 600], [420, 400, 400, 400]))
    a, b = rep.enterprises
    # a: 200 kWh shed, 75 back; b: 100 shed, 5 back
    assert (a.rebound_kwh, b.rebound_kwh) == (75.0, 5.0)
    # 125 and 95 kWh x 0.4042 = 50.525 and 38.399, apportioned to the park's 88.92
    assert (a.avoided_co2_kg, b.avoided_co2_kg) == (50.52, 38.4)
    total = Decimal(repr(a.avoided_co2_kg)) + Decimal(repr(b.avoided_co2_kg))
    assert total == Decimal(repr(rep.avoided_co2_kg))
    assert "sum exactly" in rep.breakdown_note


def test_an_interval_of_the_window_not_measured_yet_makes_it_provisional() -> None:
    rep = report(window([800, 700, NAN, NAN], [420, 400, NAN, NAN]))
    assert rep.avoided_co2_status == "provisional"
    assert "2 of the 4 intervals" in rep.avoided_co2_note
    assert rep.rebound_kwh == 80.0 and rep.avoided_co2_kg == 88.92  # over what is measured
    assert [r.measured_kw for r in rep.rebound_intervals][2:] == [None, None]
    nothing_yet = report(window([NAN] * 4, [NAN] * 4))
    assert nothing_yet.rebound_kwh is None and nothing_yet.avoided_co2_kg == 121.26
    assert nothing_yet.avoided_co2_status == "provisional"
    running = report(window([NAN] * 4, [NAN] * 4), state=EventState.ACTIVE)
    assert running.avoided_co2_status == "provisional"
    assert running.avoided_co2_note.startswith("the event is running")


def test_a_window_that_cannot_be_counted_says_so() -> None:
    shift = window([800] * 4, [400] * 4, counted=False)
    rep = report(replace(shift, note="the history cannot serve the baseline past the end"))
    assert rep.avoided_co2_status == "event_only" and rep.avoided_co2_kg == 121.26
    assert "overstates a load shift" in rep.avoided_co2_note
    assert "history cannot serve" in rep.avoided_co2_note
    assert rep.rebound_window_h is None and rep.enterprises[0].rebound_kwh is None


def test_the_rebound_window_as_csv() -> None:
    rep = report(window([800, 700, NAN, NAN], [420, 400, NAN, NAN]))
    rows = list(csv.DictReader(io.StringIO(report_csv(rep, "rebound"))))
    assert [r["start"] for r in rows] == [(T0 + STEP * (4 + j)).isoformat() for j in range(4)]
    assert [r["rebound_kw"] for r in rows] == ["220.0", "100.0", "", ""]
    assert [r["coverage"] for r in rows] == ["1.0", "1.0", "", ""]
