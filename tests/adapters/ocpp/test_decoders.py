"""The OCPP decoders alone: sampled values, charging needs, transaction rules."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.ocpp.meter import LIVE_CONTEXTS, SOC_LOCATIONS, decode, pick
from adapters.ocpp.needs import decode_needs
from adapters.ocpp.state import Register, SessionState


class Sink:
    """Collects rejected fields as ``(field, reason)``."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()

    def __call__(self, name: str, reason: str, value: object) -> None:
        self.seen[(name, reason)] += 1


def _mv(*sampled: Any, ts: str = "2026-07-01T10:00:00Z") -> list[dict[str, Any]]:
    return [{"timestamp": ts, "sampledValue": list(sampled)}]


def _transaction(st: SessionState) -> str | None:
    """The EVSE's transaction, read afresh (mypy keeps an earlier narrowing across calls)."""
    return st.transaction_id


def _p(value: Any, **kw: Any) -> dict[str, Any]:
    return {"value": value, "measurand": "Power.Active.Import", **kw}


@pytest.mark.parametrize(
    ("sampled", "kw"),
    [
        ([_p(1000, phase="L1"), _p(2000, phase="L2"), _p(3000, phase="L3")], 6.0),
        ([_p(1000, phase="L1-N"), _p(2000, phase="L2-N"), _p(3000, phase="L3-N")], 6.0),
        ([_p(1000, phase="L1"), _p(1000, phase="L1-N"), _p(500, phase="N")], 1.0),
        ([_p(1000, phase="L1-L2"), _p(1000, phase="L2-L3"), _p(1000, phase="L3-L1")], 3.0),
        ([_p(4, unitOfMeasure={"unit": "kW"}), _p(1000, phase="L1")], 4.0),
        ([_p(22, unitOfMeasure={"unit": "W", "multiplier": 2})], 2.2),
        ([_p(7400, unitOfMeasure={"unit": "kW", "multiplier": -3})], 7.4),
        ([_p(3.7, unitOfMeasure={"unit": "kw"})], 3.7),
    ],
)
def test_power_total_first_then_sum_of_phases(sampled: list[dict[str, Any]], kw: float) -> None:
    sink = Sink()
    picked = pick(decode(_mv(*sampled), sink), "Power.Active.Import", contexts=LIVE_CONTEXTS)
    assert picked is not None and picked.value / 1000 == pytest.approx(kw)
    assert not sink.seen


def test_units_defaults_and_bad_fields() -> None:
    sink = Sink()
    samples = decode(
        _mv(
            {"value": 12.5, "unitOfMeasure": {"unit": "kWh"}},  # the default measurand
            {"value": 50, "measurand": "SoC"},  # Percent by default
            {"value": 101, "measurand": "SoC", "location": "EV"},
            {"value": True, "measurand": "Voltage"},
            {"value": 230, "measurand": "Voltage", "unitOfMeasure": {"unit": "furlong"}},
            {"value": -5, "measurand": "Energy.Active.Import.Register"},
            {"measurand": "Current.Import"},
            "garbage",
        ),
        sink,
    )
    register = pick(samples, "Energy.Active.Import.Register")
    assert register is not None and register.value == pytest.approx(12500)
    soc = pick(samples, "SoC", locations=SOC_LOCATIONS)
    assert soc is not None and soc.value == 50  # the impossible EV SoC was dropped
    assert sink.seen == {
        ("soc", "out_of_range"): 1,
        ("Voltage", "not_a_number"): 1,
        ("Voltage", "unit"): 1,
        ("energy_kwh", "out_of_range"): 1,
        ("Current.Import", "missing"): 1,
        ("sampledValue", "not_an_object"): 1,
    }


def test_newest_sample_and_context_filter() -> None:
    sink = Sink()
    samples = decode(
        [
            *_mv(_p(1000), ts="2026-07-01T10:05:00Z"),
            *_mv(_p(2000), ts="2026-07-01T10:00:00Z"),
            *_mv(_p(9000, context="Transaction.Begin"), ts="2026-07-01T10:06:00Z"),
        ],
        sink,
    )
    picked = pick(samples, "Power.Active.Import", contexts=LIVE_CONTEXTS)
    assert picked is not None and picked.value == 1000


def test_needs_every_form_field_by_field() -> None:
    sink = Sink()
    now = time.time()
    needs = decode_needs(
        {
            "departureTime": "1970-01-01T00:00:00Z",
            "dcChargingParameters": {"evMaxPower": "lots", "energyAmount": 4e9},
            "v2xChargingParameters": {"targetSoC": 85, "maxDischargePower": -7000},
        },
        sink,
        now=now,
    )
    assert needs.departure_ts is None and needs.energy_wh is None
    assert needs.target_soc == pytest.approx(0.85) and needs.max_discharge_w == 7000
    assert sink.seen == {
        ("departure_ts", "out_of_range"): 1,
        ("max_charge_kw", "not_a_number"): 1,
        ("energy_needed_kwh", "out_of_range"): 1,
    }
    assert decode_needs("nope", sink, now=now).energy_wh is None


def test_register_restarts_are_rebased_and_old_values_ignored() -> None:
    reg = Register()
    for raw, ts in ((1000.0, 1.0), (1500.0, 2.0), (200.0, 3.0), (100.0, 2.5), (400.0, 4.0)):
        reg.step(raw, ts)
    assert reg.total_wh == pytest.approx(1000 + 500 + 200 + 200)


def test_transaction_rules() -> None:
    st = SessionState(version="ocpp2.0.1")
    assert (
        st.transaction(tx_id="T2", event_type="Started", seq_no=0, offline=False, ts=100) == "live"
    )
    assert (
        st.transaction(tx_id="T1", event_type="Ended", seq_no=9, offline=True, ts=50) == "history"
    )
    assert st.transaction_id == "T2"
    assert st.transaction(tx_id="T1", event_type="Updated", seq_no=10, offline=False, ts=200) == (
        "ignored"
    )
    assert st.transaction(tx_id="T2", event_type="Updated", seq_no=0, offline=False, ts=110) == (
        "ignored"
    )
    # An undated event of another transaction never takes the EVSE over.
    assert st.transaction(tx_id="T3", event_type="Updated", seq_no=1, offline=False, ts=None) == (
        "history"
    )
    assert st.transaction_id == "T2"
    st.boot()
    assert _transaction(st) is None
    assert st.transaction(tx_id="T1", event_type="Started", seq_no=0, offline=False, ts=300) == (
        "ignored"
    )


def test_needs_discharge_from_the_evs_power_schedule_offer() -> None:
    sink = Sink()
    now = time.time()
    anchor = datetime.fromtimestamp(now - 600, UTC).isoformat()
    offer = {
        "evPowerSchedule": {
            "timeAnchor": anchor,
            "evPowerScheduleEntries": [
                {"duration": 300, "power": 11000},
                {"duration": 3600, "power": -7000},
            ],
        }
    }
    needs = decode_needs({"evEnergyOffer": offer, "v2xChargingParameters": {}}, sink, now=now)
    assert needs.max_discharge_w == 7000 and not sink.seen
    stated = {"evEnergyOffer": offer, "v2xChargingParameters": {"maxDischargePower": 3000}}
    assert decode_needs(stated, sink, now=now).max_discharge_w == 3000
