"""Rows of the ledger: devices-only enterprises, missing data, prorating, roll-ups, queries."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tests.vpp.ledger.support import PARK, device, lay, meter, profile
from tests.vpp.ledger.test_book_month import CLOSED, JUNE, OPEN, lay_park, row
from vpp.errors import InvalidInput, NotFound
from vpp.ledger.book import LedgerBook
from vpp.model import Enterprise, Park, parse_asset
from vpp.state import State

DAY = date(2026, 6, 10)


async def test_an_enterprise_without_a_revenue_meter_is_the_sum_of_its_devices(
    book: LedgerBook, state: State
) -> None:
    """gamma: a load of 10 kWh every slot, PV −15 kWh on slots 40-47, an EV charger
    +6 kWh on 70-73 and −3 kWh (V2G) on 80-81. Per slot E = load + PV + EV:
    slots 40-47: 10 − 15 = −5 → export 8 × 5 = 40 kWh; 70-73: 16; 80-81: 7; others 10
    → import 82 × 10 + 4 × 16 + 2 × 7 = 898 kWh. PV 8 × 15 = 120, self-consumed
    8 × (15 − 5) = 80; EV 24, V2G 6; consumption 898 − 40 + 120 = 978 kWh
    (= the load 960 + EV 24 − V2G 6).
    """
    await state.put_park(Park(id=PARK))
    for kind, asset_id in (("flexible_load", "l-g"), ("pv", "pv-g"), ("ev_charger", "ev-g")):
        await state.enroll(PARK, parse_asset(device(kind, "gamma", asset_id)))
    await lay(state, "l-g", [DAY], profile((0, 96, 10.0)))
    await lay(state, "pv-g", [DAY], profile((40, 48, -15.0)))
    await lay(state, "ev-g", [DAY], profile((70, 74, 6.0), (80, 82, -3.0)))

    ledger = await book.ledger(PARK, "day", DAY, DAY, now=OPEN)
    gamma = row(ledger, "gamma")
    assert gamma.basis == "devices" and gamma.coverage == 1.0
    assert gamma.grid_import_kwh == pytest.approx(898) and gamma.grid_export_kwh == pytest.approx(
        40
    )
    assert gamma.pv_generation_kwh == pytest.approx(120)
    assert gamma.pv_self_consumed_kwh == pytest.approx(80)
    assert gamma.ev_charge_kwh == pytest.approx(24)
    assert gamma.v2g_discharge_kwh == pytest.approx(6)
    assert gamma.consumption_kwh == pytest.approx(978)
    assert gamma.electricity_co2_t == pytest.approx(898 * 0.4042 / 1000)
    assert row(ledger, "park").grid_import_kwh == pytest.approx(898)
    assert any(n.startswith("gamma: no revenue meter") and "unmetered" in n for n in ledger.notes)


async def test_missing_data_is_not_counted_as_zero(book: LedgerBook, state: State) -> None:
    """delta's meter: slots 0-47 hold 5 kWh over 450 s (coverage 0.5: 10 kWh over the
    slot), slots 48-95 nothing. Its battery charges 1 kWh in every slot.
    → import 48 × 10 = 480 kWh (not 240, and the empty half is no zero load);
    coverage 48 × 0.5 / 96 = 0.25; the battery counts only where the meter sees:
    48 kWh. epsilon (devices only): two loads of 4 kWh per slot, one silent all day
    → import 384 kWh, coverage (1 + 0) / 2 = 0.5.
    """
    await state.put_park(Park(id=PARK))
    for payload in (
        meter("delta", "m-d"),
        device("battery", "delta", "b-d"),
        device("flexible_load", "epsilon", "l-e1"),
        device("flexible_load", "epsilon", "l-e2"),
    ):
        await state.enroll(PARK, parse_asset(payload))
    covered = [450] * 48 + [0] * 48
    await lay(state, "m-d", [DAY], profile((0, 48, 5.0)), covered_s=covered)
    await lay(state, "b-d", [DAY], profile((0, 96, 1.0)))
    await lay(state, "l-e1", [DAY], profile((0, 96, 4.0)))

    ledger = await book.ledger(PARK, "day", DAY, DAY, now=OPEN)
    delta, epsilon, park = row(ledger, "delta"), row(ledger, "epsilon"), row(ledger, "park")
    assert delta.grid_import_kwh == pytest.approx(480) and delta.coverage == pytest.approx(0.25)
    assert delta.storage_charge_kwh == pytest.approx(48)
    assert epsilon.grid_import_kwh == pytest.approx(384) and epsilon.coverage == 0.5
    assert park.coverage == pytest.approx((0.25 + 0.5) / 2)
    assert any("coverage below 1" in n for n in ledger.notes)

    month = await book.ledger(PARK, "month", JUNE[0], JUNE[-1], now=OPEN)
    assert row(month, "delta").coverage == pytest.approx(0.25 / 30)
    assert row(month, "delta").grid_import_kwh == pytest.approx(480)


async def test_day_rows_spread_the_months_entries_by_hours(book: LedgerBook, state: State) -> None:
    """June has 720 h: a day carries 24/720 = 1/30 of the month's entries.
    alpha: 50,000 / 30 = 1,666.667 kWh green power, all deducted (import 7,200 kWh/day):
    CO2 (7,200 − 1,666.667) × 0.4042 / 1000 = 2.236573 t. beta: 10,000 / 30 = 333.333 m3
    of gas = 0.443333 tce. The thirty days sum to the month.
    """
    await lay_park(state)
    days = await book.ledger(PARK, "day", JUNE[0], JUNE[-1], now=OPEN)
    assert len(days.rows) == 3 * 30
    alpha = row(days, "alpha", "2026-06-10")
    assert alpha.entries_prorated and alpha.green_trading_kwh == pytest.approx(50_000 / 30)
    assert alpha.green_deducted_kwh == pytest.approx(50_000 / 30)
    assert alpha.electricity_co2_t == pytest.approx(2.236573, abs=1e-6)
    beta = row(days, "beta", "2026-06-10")
    assert beta.fuels[0].quantity == pytest.approx(10_000 / 30)
    assert beta.fuels_tce == pytest.approx(0.443333, abs=1e-6)
    assert alpha.start.isoformat() == "2026-06-10T00:00:00+08:00"
    parks = [r for r in days.rows if r.scope == "park"]
    assert sum(r.total_co2_t for r in parks) == pytest.approx(146.92389, abs=1e-5)
    assert any("spread by hours" in n for n in days.notes)
    assert days.indicators == [] and any("indicators" in n for n in days.notes)

    # a month row over part of the month is prorated the same way: 10 days = 1/3
    part = await book.ledger(PARK, "month", date(2026, 6, 1), date(2026, 6, 10), now=OPEN)
    assert row(part, "beta").fuels[0].quantity == pytest.approx(10_000 / 3)
    assert row(part, "park").entries_prorated and part.indicators == []
    assert row(part, "park").end.isoformat() == "2026-06-11T00:00:00+08:00"


async def test_interval_rows_deduct_green_power_up_to_each_intervals_import(
    book: LedgerBook, state: State
) -> None:
    """An interval carries 0.25/720 of the month: 50,000 / 2,880 = 17.3611 kWh of green
    power. Slot 0 imports 100 kWh: all of it deducted; slot 40 exports: none."""
    await lay_park(state)
    ledger = await book.ledger(PARK, "interval", DAY, DAY, now=OPEN)
    assert len(ledger.rows) == 3 * 96
    first = row(ledger, "alpha", "2026-06-10T00:00:00+08:00")
    assert first.grid_import_kwh == pytest.approx(100)
    assert first.green_deducted_kwh == pytest.approx(50_000 / 2880)
    export = row(ledger, "alpha", "2026-06-10T10:00:00+08:00")  # slot 40
    assert export.grid_export_kwh == pytest.approx(20) and export.pv_self_consumed_kwh == 30
    assert export.green_trading_kwh == pytest.approx(50_000 / 2880)
    assert export.green_deducted_kwh == 0 and export.electricity_co2_t == 0
    assert export.end.isoformat() == "2026-06-10T10:15:00+08:00"
    park_rows = [r for r in ledger.rows if r.scope == "park"]
    assert sum(r.grid_import_kwh for r in park_rows) == pytest.approx(7_200 + 4_800)


async def test_one_enterprise_alone(book: LedgerBook, state: State) -> None:
    await lay_park(state)
    ledger = await book.ledger(PARK, "month", JUNE[0], JUNE[-1], enterprise="beta", now=CLOSED)
    assert [(r.scope, r.period) for r in ledger.rows] == [("beta", "2026-06")]
    assert ledger.indicators == []
    assert row(ledger, "beta").total_co2_t == pytest.approx(79.82669, abs=1e-5)
    days = await book.ledger(PARK, "day", DAY, DAY, enterprise="alpha", now=CLOSED)
    assert [r.scope for r in days.rows] == ["alpha"]


async def test_an_enterprise_known_only_by_its_contract_has_empty_rows(
    book: LedgerBook, state: State
) -> None:
    await state.put_park(Park(id=PARK, enterprises={"zeta": Enterprise(name="Zeta Foods")}))
    ledger = await book.ledger(PARK, "month", JUNE[0], JUNE[-1], now=OPEN)
    zeta = row(ledger, "zeta")
    assert (zeta.name, zeta.basis, zeta.coverage, zeta.total_tce) == ("Zeta Foods", "devices", 0, 0)
    assert zeta.green_power_share is None and zeta.carbon_intensity_t_per_tce is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"period": "week"}, "period"),
        ({"first": date(2026, 6, 2), "last": date(2026, 6, 1)}, "to"),
        ({"period": "interval", "last": date(2026, 7, 2)}, "to"),
        ({"period": "day", "last": date(2027, 6, 2)}, "to"),
        ({"enterprise": "nobody"}, "enterprise"),
    ],
)
async def test_bad_queries_name_their_field(
    book: LedgerBook, state: State, query: dict[str, object], field: str
) -> None:
    await lay_park(state)
    args: dict[str, object] = {"period": "month", "first": date(2026, 6, 1), "last": JUNE[-1]}
    args.update(query)
    with pytest.raises(InvalidInput) as bad:
        await book.ledger(PARK, now=OPEN, **args)  # type: ignore[arg-type]
    assert bad.value.fields == [field]
    assert await state.redis.hlen(state.park(PARK).ledger_months) == 0


async def test_an_unknown_park(book: LedgerBook) -> None:
    with pytest.raises(NotFound):
        await book.ledger("nowhere", "month", JUNE[0], JUNE[-1], now=OPEN)


async def test_the_indicators_of_the_last_complete_month(book: LedgerBook, state: State) -> None:
    await lay_park(state)
    # in the middle of July: the last complete month is June (open still)
    mid_july = datetime(2026, 7, 3, tzinfo=UTC)
    month, year = await book.indicators(PARK, now=mid_july)
    assert (month.window, month.period, month.months) == ("month", "2026-06", 1)
    assert (year.window, year.start.isoformat()) == ("rolling_year", "2025-07-01T00:00:00+08:00")
    assert year.end.isoformat() == "2026-07-01T00:00:00+08:00"
    assert month.energy_tce == pytest.approx(62.26336) == year.energy_tce
    # in August, July is the last complete month: the rolling year still holds June
    july, rolling = await book.indicators(PARK, now=datetime(2026, 8, 20, tzinfo=UTC))
    assert (july.period, july.months, july.carbon_intensity_met) == ("2026-07", 0, None)
    assert rolling.months == 1 and rolling.annual_tce == pytest.approx(747.16032)
