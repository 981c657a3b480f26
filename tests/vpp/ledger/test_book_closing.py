"""Closed months: frozen against factor and entry changes until recomputed, which is logged.

The park of `test_book_month` (June 2026). Alpha's June import is 216,000 kWh
of which 50,000 are green power deducted, beta's 144,000 kWh; the park's
electricity CO2 is therefore 310,000 kWh × the factor: 125.302 t at the
Southern grid's 0.4042, 164.486 t at the national 0.5306; with beta's gas
(21.62189 t) the totals are 146.92389 and 186.10789 t.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tests.vpp.ledger.support import PARK, lay, meter, profile
from tests.vpp.ledger.test_book_month import CLOSED, JUNE, OPEN, lay_park, row
from vpp.errors import Conflict, InvalidInput
from vpp.ledger.book import LedgerBook
from vpp.ledger.entries import EntryStore, FuelEntry, MonthEntries
from vpp.ledger.factors import ElectricityFactor, electricity_factor_of
from vpp.model import CarbonSettings, ProvincialFactor, parse_asset
from vpp.state import State, unpack

SOUTHERN_T = 146.92389
NATIONAL_T = 310_000 * 0.5306 / 1000 + 21.62189  # 186.10789


async def set_factor(state: State, factor: str) -> None:
    park = await state.get_park(PARK)
    carbon = CarbonSettings(electricity_factor=factor)  # type: ignore[arg-type]
    await state.put_park(park.model_copy(update={"carbon": carbon}))


async def park_co2(book: LedgerBook, now: datetime, period: str = "month") -> float:
    ledger = await book.ledger(PARK, period, JUNE[0], JUNE[-1], now=now)  # type: ignore[arg-type]
    return row(ledger, "park").total_co2_t


async def test_a_factor_change_moves_an_open_month_only(book: LedgerBook, state: State) -> None:
    await lay_park(state)
    assert await park_co2(book, OPEN) == pytest.approx(SOUTHERN_T, abs=1e-5)
    await set_factor(state, "mee-2023-national")
    assert await park_co2(book, OPEN) == pytest.approx(NATIONAL_T, abs=1e-5)
    park_factor = electricity_factor_of((await state.get_park(PARK)).carbon)
    assert (await factor_of_june(book, state)) == park_factor  # open: the park's

    # closed: frozen at the factor of its first use (national)
    assert await park_co2(book, CLOSED) == pytest.approx(NATIONAL_T, abs=1e-5)
    await set_factor(state, "mee-2023-southern")
    frozen = await book.ledger(PARK, "month", JUNE[0], JUNE[-1], now=CLOSED)
    assert row(frozen, "park").total_co2_t == pytest.approx(NATIONAL_T, abs=1e-5)
    assert row(frozen, "park").electricity_factor == "mee-2023-national"
    # (the empty months of the rolling year before June were frozen by the first request,
    # at the Southern factor: they are listed too)
    assert "mee-2023-national" in {f.id for f in frozen.factors}
    assert frozen.electricity_factor.id == "mee-2023-southern"  # the park's, now
    # the year roll-up takes June from the snapshot too
    year = await book.ledger(PARK, "year", date(2026, 1, 1), date(2026, 6, 30), now=CLOSED)
    assert row(year, "park").total_co2_t == pytest.approx(NATIONAL_T, abs=1e-5)
    # day rows inside the closed month: from the history, with the month's frozen factor
    days = await book.ledger(PARK, "day", JUNE[0], JUNE[-1], now=CLOSED)
    park_days = [r for r in days.rows if r.scope == "park"]
    assert {r.electricity_factor for r in park_days} == {"mee-2023-national"}
    assert sum(r.total_co2_t for r in park_days) == pytest.approx(NATIONAL_T, abs=1e-5)
    assert (await factor_of_june(book, state)).id == "mee-2023-national"

    recomputed = await book.recompute(PARK, "2026-06", now=CLOSED)
    assert row(recomputed, "park").total_co2_t == pytest.approx(SOUTHERN_T, abs=1e-5)
    assert row(recomputed, "park").electricity_factor == "mee-2023-southern"
    assert await park_co2(book, CLOSED) == pytest.approx(SOUTHERN_T, abs=1e-5)
    assert (await factor_of_june(book, state)).id == "mee-2023-southern"

    [(_, logged)] = [
        e for e in await state.read_park_log(PARK) if e[1]["event"] == "ledger.recomputed"
    ]
    assert logged["month"] == "2026-06"
    assert logged["factor_before"] == "mee-2023-national"
    assert logged["factor_after"] == "mee-2023-southern"
    assert float(logged["total_co2_t_before"]) == pytest.approx(NATIONAL_T, abs=1e-5)
    assert float(logged["total_co2_t_after"]) == pytest.approx(SOUTHERN_T, abs=1e-5)
    assert logged["data"]["total_tce_after"] == pytest.approx(62.26336)


async def test_entries_changed_after_closing_are_pending_until_recomputed(
    book: LedgerBook, state: State
) -> None:
    await lay_park(state)
    before = await book.ledger(PARK, "month", JUNE[0], JUNE[-1], now=CLOSED)
    assert not any(r.pending_changes for r in before.rows)

    more_gas = MonthEntries(fuels=[FuelEntry(carrier="natural_gas", quantity=20_000, unit="m3")])
    await EntryStore(state).put(PARK, "2026-06", "beta", more_gas)
    after = await book.ledger(PARK, "month", JUNE[0], JUNE[-1], now=CLOSED)
    pending = {r.scope: r.pending_changes for r in after.rows}
    assert pending == {"alpha": False, "beta": True, "park": True}
    assert row(after, "beta").fuels[0].quantity == pytest.approx(10_000)  # frozen
    assert any("recompute" in n for n in after.notes)

    redone = await book.recompute(PARK, "2026-06", now=CLOSED)
    assert not any(r.pending_changes for r in redone.rows)
    assert row(redone, "beta").fuels[0].quantity == pytest.approx(20_000)
    assert row(redone, "beta").fuels_tce == pytest.approx(26.6)  # 20,000 m3 × 1.33 kgce


async def test_recompute_refuses_an_open_month_and_a_bad_month(
    book: LedgerBook, state: State
) -> None:
    await lay_park(state)
    with pytest.raises(Conflict, match="not closed"):
        await book.recompute(PARK, "2026-06", now=OPEN)
    with pytest.raises(InvalidInput) as bad:
        await book.recompute(PARK, "2026-13", now=CLOSED)
    assert bad.value.fields == ["month"]
    assert await state.redis.hlen(state.park(PARK).ledger_months) == 0
    assert not [e for e in await state.read_park_log(PARK) if e[1]["event"] == "ledger.recomputed"]


async def test_a_frozen_month_is_stored_with_what_it_used(book: LedgerBook, state: State) -> None:
    await lay_park(state)
    await book.ledger(PARK, "month", JUNE[0], JUNE[-1], now=CLOSED)
    raw = await state.redis.hget(state.park(PARK).ledger_months, "2026-06")
    assert raw is not None
    frozen = unpack(raw)
    assert frozen["factor"]["id"] == "mee-2023-southern" and frozen["table_version"]
    assert sorted(frozen["entries"]) == ["alpha", "beta"]
    assert all(len(fp) == 16 for fp in frozen["fingerprints"].values())
    assert [r["scope"] for r in frozen["rows"]] == ["alpha", "beta", "park"]
    # an open month is never frozen (the closed ones of its rolling year are)
    await book.ledger(PARK, "month", date(2026, 7, 1), date(2026, 7, 31), now=CLOSED)
    frozen_months = await state.redis.hkeys(state.park(PARK).ledger_months)
    assert b"2026-06" in frozen_months and b"2026-07" not in frozen_months


async def test_a_provincial_factor_is_used_with_its_source(book: LedgerBook, state: State) -> None:
    await lay_park(state)
    park = await state.get_park(PARK)
    own = ProvincialFactor(kg_co2_per_kwh=0.5, vintage="2024", source="a provincial bureau")
    carbon = CarbonSettings(electricity_factor="provincial", provincial_factor=own)
    await state.put_park(park.model_copy(update={"carbon": carbon}))
    ledger = await book.ledger(PARK, "month", JUNE[0], JUNE[-1], now=OPEN)
    # 310,000 kWh × 0.5 / 1000 + the gas
    assert row(ledger, "park").total_co2_t == pytest.approx(155.0 + 21.62189, abs=1e-5)
    [used] = ledger.factors
    assert (used.id, used.vintage, used.source) == ("provincial", "2024", "a provincial bureau")


async def test_the_months_close_after_the_configured_days(book: LedgerBook, state: State) -> None:
    await lay_park(state)
    # 2026-07-06 00:00 in Shanghai is 2026-07-05 16:00 UTC
    just_before = datetime(2026, 7, 5, 15, 59, tzinfo=UTC)
    at = datetime(2026, 7, 5, 16, 0, tzinfo=UTC)
    assert not row(
        await book.ledger(PARK, "month", JUNE[0], JUNE[-1], now=just_before), "park"
    ).closed
    assert row(await book.ledger(PARK, "month", JUNE[0], JUNE[-1], now=at), "park").closed


async def test_an_enterprise_enrolled_after_closing_waits_for_a_recompute(
    book: LedgerBook, state: State
) -> None:
    await lay_park(state)
    await book.ledger(PARK, "month", JUNE[0], JUNE[-1], now=CLOSED)
    await state.enroll(PARK, parse_asset(meter("gamma", "m-g")))
    await lay(state, "m-g", JUNE, profile((0, 96, 10.0)))  # 960 kWh a day, 28,800 in June

    frozen = await book.ledger(PARK, "month", JUNE[0], JUNE[-1], now=CLOSED)
    assert [r.scope for r in frozen.rows] == ["alpha", "beta", "park"]
    assert row(frozen, "park").pending_changes and not row(frozen, "alpha").pending_changes
    assert row(frozen, "park").grid_import_kwh == pytest.approx(360_000)
    # its day rows come from the history: it is there
    days = await book.ledger(PARK, "day", JUNE[0], JUNE[0], now=CLOSED)
    assert row(days, "gamma").grid_import_kwh == pytest.approx(960)

    redone = await book.recompute(PARK, "2026-06", now=CLOSED)
    assert [r.scope for r in redone.rows] == ["alpha", "beta", "gamma", "park"]
    assert row(redone, "park").grid_import_kwh == pytest.approx(360_000 + 28_800)
    assert not row(redone, "park").pending_changes


async def factor_of_june(book: LedgerBook, state: State) -> ElectricityFactor:
    """The factor the book gives an event of 15 June 2026 (`LedgerBook.factor_for`)."""
    return await book.factor_for(await state.get_park(PARK), date(2026, 6, 15))
