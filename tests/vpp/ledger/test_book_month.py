"""A month of a two-enterprise park computed by hand, against the ledger.

The park (Asia/Shanghai, the default grid factor: MEE/NBS 2023 Southern grid,
0.4042 kgCO2/kWh) has two enterprises with a revenue meter each. June 2026
(30 days, 720 h); every day the same, energies per 15-minute slot:

alpha ("Alpha Castings"), meter m-a, PV pv-a, battery b-a:
  m-a:  slots 0-39 +100 kWh, 40-55 −20 kWh (export), 56-95 +80 kWh
        → import 40×100 + 40×80 = 7,200 kWh/day, export 16×20 = 320 kWh/day
  pv-a: slots 32-63 −50 kWh → PV generation 32×50 = 1,600 kWh/day
        self-consumed max(PV − export, 0): slots 32-39 8×50 = 400,
        40-55 16×(50−20) = 480, 56-63 8×50 = 400 → 1,280 kWh/day
  b-a:  slots 8-15 +25 kWh (charge 200 kWh), 72-79 −22.5 kWh (discharge
        180 kWh) → a round trip losing 20 kWh/day
  entries: green-power trading 50,000 kWh (two certificates)
beta, meter m-b: +50 kWh every slot → import 4,800 kWh/day
  entries: natural gas 10,000 m3

Month (× 30):
alpha: import 216,000; export 9,600; PV 48,000; self-consumed 38,400;
  charge 6,000, discharge 5,400, loss 600;
  consumption = 216,000 − 9,600 + 48,000 = 254,400 kWh
  green deducted = min(50,000, 216,000) = 50,000 kWh
  electricity tce = 254,400 × 0.1229e-3 = 31.26576 tce (no fuels)
  CO2 = (216,000 − 50,000) × 0.4042 / 1000 = 67.0972 t
  clean tce = (38,400 + 50,000) × 0.1229e-3 = 10.86436
  green share = 88,400 / 254,400 = 0.3474843; clean share the same
  intensity = 67.0972 / 31.26576 = 2.146028 tCO2/tce
beta: consumption = import = 144,000 kWh → 17.6976 tce, 58.2048 t
  gas: 10,000 m3 × 1.3300 kgce/m3 = 13.3 tce;
       10,000 × 38.931e-3 GJ × 15.3 tC/TJ / 1000 × 0.99 × 44/12 = 21.62189 t
  total 30.9976 tce, 79.82669 t; intensity 2.575254; shares 0
park: consumption 398,400 kWh; 62.26336 tce; 146.92389 t;
  clean 10.86436 tce → clean share 0.1744904; green share 88,400 / 398,400
  = 0.2218876; intensity 146.92389 / 62.26336 = 2.359717 tCO2/tce
indicator (June and the rolling year to it: one month with data):
  annual 62.26336 × 12 = 747.16 tce → "below 0.2 Mtce/a", compared with 0.2
  → not met; clean share 0.174 < 0.90 → not met.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tests.vpp.ledger.support import PARK, days_of, device, lay, meter, profile
from vpp.ledger.book import LedgerBook
from vpp.ledger.entries import EntryStore, FuelEntry, GreenPowerEntry, MonthEntries
from vpp.ledger.rows import Ledger, LedgerRow
from vpp.model import Enterprise, Park, parse_asset
from vpp.state import State

JUNE = days_of(date(2026, 6, 1), date(2026, 6, 30))
#: June is closed from 2026-07-06 00:00 Asia/Shanghai (5 days after its end)
OPEN = datetime(2026, 7, 3, tzinfo=UTC)
CLOSED = datetime(2026, 7, 10, tzinfo=UTC)


async def lay_park(state: State) -> None:
    await state.put_park(
        Park(id=PARK, name="Nansha Park", enterprises={"alpha": Enterprise(name="Alpha Castings")})
    )
    for payload in (
        meter("alpha", "m-a"),
        device("pv", "alpha", "pv-a"),
        device("battery", "alpha", "b-a"),
        meter("beta", "m-b"),
    ):
        await state.enroll(PARK, parse_asset(payload))
    await lay(state, "m-a", JUNE, profile((0, 40, 100.0), (40, 56, -20.0), (56, 96, 80.0)))
    await lay(state, "pv-a", JUNE, profile((32, 64, -50.0)))
    await lay(state, "b-a", JUNE, profile((8, 16, 25.0), (72, 80, -22.5)))
    await lay(state, "m-b", JUNE, profile((0, 96, 50.0)))
    entries = EntryStore(state)
    await entries.put(
        PARK,
        "2026-06",
        "alpha",
        MonthEntries(
            green_power=[
                GreenPowerEntry(kind="trading", kwh=50_000, certificates=["GEC-1", "GEC-2"])
            ]
        ),
    )
    await entries.put(
        PARK,
        "2026-06",
        "beta",
        MonthEntries(fuels=[FuelEntry(carrier="natural_gas", quantity=10_000, unit="m3")]),
    )


def row(ledger: Ledger, scope: str, period: str | None = None) -> LedgerRow:
    found = [r for r in ledger.rows if r.scope == scope and (period is None or r.period == period)]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("now", [OPEN, CLOSED], ids=["open", "closed-and-frozen"])
async def test_a_hand_computed_month(book: LedgerBook, state: State, now: datetime) -> None:
    await lay_park(state)
    ledger = await book.ledger(PARK, "month", JUNE[0], JUNE[-1], now=now)

    assert [(r.scope, r.period) for r in ledger.rows] == [
        ("alpha", "2026-06"),
        ("beta", "2026-06"),
        ("park", "2026-06"),
    ]
    alpha, beta, park = ledger.rows
    assert alpha.name == "Alpha Castings" and beta.name == "beta" and park.name == "Nansha Park"
    assert alpha.basis == beta.basis == "revenue_meter" and park.basis == "park"
    assert all(r.coverage == 1.0 and r.closed is (now == CLOSED) for r in ledger.rows)
    assert not any(r.entries_prorated or r.pending_changes for r in ledger.rows)
    assert {r.electricity_factor for r in ledger.rows} == {"mee-2023-southern"}

    approx = pytest.approx
    assert alpha.grid_import_kwh == approx(216_000) and alpha.grid_export_kwh == approx(9_600)
    assert alpha.pv_generation_kwh == approx(48_000)
    assert alpha.pv_self_consumed_kwh == approx(38_400)
    assert alpha.storage_charge_kwh == approx(6_000)
    assert alpha.storage_discharge_kwh == approx(5_400)
    assert alpha.storage_loss_kwh == approx(600)
    assert alpha.consumption_kwh == approx(254_400)
    assert alpha.green_trading_kwh == approx(50_000) and alpha.green_deducted_kwh == approx(50_000)
    assert alpha.electricity_tce == approx(31.26576) and alpha.fuels_tce == 0
    assert alpha.electricity_co2_t == approx(67.0972) and alpha.total_co2_t == approx(67.0972)
    assert alpha.clean_tce == approx(10.86436)
    assert alpha.green_power_share == approx(0.3474843, abs=1e-7)
    assert alpha.clean_energy_share == approx(0.3474843, abs=1e-7)
    assert alpha.carbon_intensity_t_per_tce == approx(2.146028, abs=1e-6)

    assert beta.consumption_kwh == approx(144_000) and beta.electricity_tce == approx(17.6976)
    assert beta.electricity_co2_t == approx(58.2048)
    [gas] = beta.fuels
    assert (gas.carrier, gas.unit) == ("natural_gas", "m3") and gas.quantity == approx(10_000)
    assert gas.tce == approx(13.3) and gas.co2_t == approx(21.62189, abs=1e-5)
    assert beta.total_tce == approx(30.9976) and beta.total_co2_t == approx(79.82669, abs=1e-5)
    assert beta.green_power_share == 0 and beta.clean_energy_share == 0
    assert beta.carbon_intensity_t_per_tce == approx(2.575254, abs=1e-6)

    assert park.grid_import_kwh == approx(360_000) and park.consumption_kwh == approx(398_400)
    assert park.total_tce == approx(62.26336) and park.total_co2_t == approx(146.92389, abs=1e-5)
    assert park.clean_tce == approx(10.86436)
    assert park.green_power_share == approx(0.2218876, abs=1e-7)
    assert park.clean_energy_share == approx(0.1744904, abs=1e-7)
    assert park.carbon_intensity_t_per_tce == approx(2.359717, abs=1e-6)

    assert [(i.window, i.period, i.months) for i in ledger.indicators] == [
        ("month", "2026-06", 1),
        ("rolling_year", "2026-06", 1),
    ]
    for ind in ledger.indicators:
        assert ind.energy_tce == approx(62.26336) and ind.annual_tce == approx(747.16032)
        assert ind.size_class == "below 0.2 Mtce/a" and ind.carbon_intensity_threshold == 0.2
        assert "sets no class below 0.2 Mtce/a" in ind.source
        assert ind.carbon_intensity_t_per_tce == approx(2.359717, abs=1e-6)
        assert ind.carbon_intensity_met is False
        assert ind.clean_energy_share == approx(0.1744904, abs=1e-7)
        assert ind.clean_energy_threshold == 0.9 and ind.clean_energy_met is False

    assert [f.id for f in ledger.factors] == ["mee-2023-southern"]
    assert ledger.electricity_factor.kg_co2_per_kwh == 0.4042
    # the Southern factor includes traded green power: the MEE guidance is named, not applied
    assert any("0.6096" in n and "mee-2023-southern" in n for n in ledger.notes)
    assert any("not credited" in n for n in ledger.notes)
    assert any("less than 0.2 Mtce" in n for n in ledger.notes)
    assert {(c.carrier, c.unit) for c in ledger.carriers} >= {("electricity", "kWh"), ("lpg", "kg")}


async def test_the_year_is_the_sum_of_its_months(book: LedgerBook, state: State) -> None:
    await lay_park(state)
    year = await book.ledger(PARK, "year", date(2026, 1, 1), date(2026, 12, 31), now=CLOSED)
    month = await book.ledger(PARK, "month", date(2026, 1, 1), date(2026, 12, 31), now=CLOSED)

    assert [(r.scope, r.period) for r in year.rows] == [
        ("alpha", "2026"),
        ("beta", "2026"),
        ("park", "2026"),
    ]
    park_year = row(year, "park")
    park_months = [r for r in month.rows if r.scope == "park"]
    assert len(park_months) == 12
    assert park_year.total_co2_t == pytest.approx(sum(r.total_co2_t for r in park_months))
    assert park_year.total_tce == pytest.approx(62.26336)
    assert park_year.start.isoformat() == "2026-01-01T00:00:00+08:00"
    assert park_year.end.isoformat() == "2027-01-01T00:00:00+08:00"
    # June has data, July..December do not (yet): coverage is June's share of the year
    assert park_year.coverage == pytest.approx(30 / 365)
    assert not park_year.closed  # the months after June are open at CLOSED
    # indicators: for every month that has ended (January..June), the month and its year
    assert [(i.window, i.period) for i in year.indicators][-2:] == [
        ("month", "2026-06"),
        ("rolling_year", "2026-06"),
    ]
    assert [i.months for i in year.indicators if i.window == "rolling_year"] == [0] * 5 + [1]
    assert year.indicators[0].carbon_intensity_t_per_tce is None
    assert year.indicators[0].carbon_intensity_met is None


async def test_a_month_of_fuel_entries_only_counts_in_the_rolling_year(
    book: LedgerBook, state: State
) -> None:
    # May has no metering data, only a diesel bill of 2 t (2.9142 tce)
    await lay_park(state)
    diesel = MonthEntries(fuels=[FuelEntry(carrier="diesel", quantity=2.0, unit="t")])
    await EntryStore(state).put(PARK, "2026-05", "beta", diesel)
    year = await book.ledger(PARK, "year", date(2026, 1, 1), date(2026, 12, 31), now=CLOSED)
    rolling = year.indicators[-1]
    assert (rolling.window, rolling.period, rolling.months) == ("rolling_year", "2026-06", 2)
    assert rolling.energy_tce == pytest.approx(62.26336 + 2.9142)
    assert rolling.energy_tce == pytest.approx(row(year, "park").total_tce)


async def test_green_power_beyond_the_import_is_named_in_a_note(
    book: LedgerBook, state: State
) -> None:
    # beta imports 144,000 kWh in June and bought 200,000 kWh of green power
    await lay_park(state)
    green = GreenPowerEntry(kind="direct", kwh=200_000)
    gas = FuelEntry(carrier="natural_gas", quantity=10_000, unit="m3")
    await EntryStore(state).put(
        PARK, "2026-06", "beta", MonthEntries(fuels=[gas], green_power=[green])
    )
    ledger = await book.ledger(PARK, "month", date(2026, 6, 1), date(2026, 6, 30), now=CLOSED)
    assert row(ledger, "beta").green_deducted_kwh == pytest.approx(144_000)
    assert (
        "beta: 56,000.0 kWh of the green power bought for 2026-06 is not deducted: it is"
        " beyond the grid import of its rows (only the import can be deducted)"
    ) in ledger.notes
    assert not any(n.startswith("alpha:") and "not deducted" in n for n in ledger.notes)
