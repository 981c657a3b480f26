"""Benchmark: ``python -m tests.benchmarks.ledger [--assets 1000] [--repeats 5] [--out FILE]``.

The energy-carbon ledger of a park over a year of 15-minute history (issue
12: 1,000 assets and 50 enterprises; the monthly ledger for all enterprises,
median goal <= 1 s; the yearly roll-up, goal <= 5 s).

Setup, under a namespace of its own that it deletes afterwards: ``--assets``
assets in ``--enterprises`` enterprises of 20 (90 % with a revenue meter,
2 PV, 2 batteries, 3 EV chargers and flexible loads; the rest measured by
their devices), every one with a day vector on every day of 2025 (365 days)
and monthly entries (gas and green power) for every enterprise. A day
vector per series and day, packed with `vpp.history.store.pack_day` (a few
day shapes per series, reused over the year) and written with plain ``SET``
(no expiry: the keys are deleted at the end). The ledger's history store has
``--retention-days`` (default: the service's, 400): at a ``now`` in January
2026 the rolling years of early 2025 reach back before it, and those days,
gone in a real park, are not read (``--retention-days 36500`` reads them).
The ledger reads what the balance needs: each metered enterprise's meter,
PV, batteries and chargers, and every device of the others.

Medians over ``--repeats`` runs, ms (month = December 2025 for all
enterprises and the park, with its indicators: the month and the rolling
year to it; year = 2025):

* ``month_cold`` / ``year_cold``: nothing frozen and nothing closes (a book
  with a ``close_after_days`` beyond the data): every month computed from
  the history, the indicators' rolling years included;
* ``month_open``: December still open (2 January 2026), the months before
  it closed and frozen: December from the history, the rest from snapshots
  (the usual case of a month's ledger);
* ``month_frozen`` / ``year_frozen``: every month closed and frozen
  (10 January 2026): snapshots only;
* ``freeze_year``: the first yearly request once the months are closed:
  compute and freeze every month (measured once, after the snapshots are
  deleted, per repeat);

and, in the same run as references: ``mget_month`` / ``mget_year``: a raw
``MGET`` (pipelined in chunks of 2,000 keys) of the same day vectors the
ledger reads for December / for the year, not decoded; ``read_month`` /
``read_year``: `HistoryStore.read_arrays` of them (MGET and decode).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from tests.benchmarks.support import (
    REDIS_URL,
    add_verbose,
    configure_logging,
    machine,
    write_report,
)
from tests.vpp.ledger.support import device, meter
from vpp.history.grid import INTERVAL_S, SLOTS_PER_DAY
from vpp.history.store import HistoryStore, pack_day
from vpp.ledger.balance import plan_balance
from vpp.ledger.book import LedgerBook
from vpp.ledger.entries import EntryStore, FuelEntry, GreenPowerEntry, MonthEntries
from vpp.model import Asset, Enterprise, Park, parse_asset
from vpp.settings import HistorySettings, LedgerSettings
from vpp.state import State

__all__ = ["main", "run_bench"]

_PARK = "bench"
_TZ = ZoneInfo("Asia/Shanghai")
YEAR = 2025
FIRST, LAST = date(YEAR, 1, 1), date(YEAR, 12, 31)
DECEMBER = date(YEAR, 12, 1)
#: December open (closes 6 January), the months before it closed.
DECEMBER_OPEN = datetime(YEAR + 1, 1, 2, tzinfo=UTC)
#: every month of the year closed.
ALL_CLOSED = datetime(YEAR + 1, 1, 10, tzinfo=UTC)
#: Distinct day shapes per series, reused over the year.
_SHAPES = 7
GOALS_MS = {"month": 1000.0, "year": 5000.0}


def _assets(n_assets: int, n_enterprises: int) -> list[Asset]:
    """``n_assets`` in ``n_enterprises`` enterprises: a meter, PV, batteries, chargers, loads."""
    per = max(1, n_assets // n_enterprises)
    out: list[dict[str, Any]] = []
    for e in range(n_enterprises):
        owner = f"ent-{e:03d}"
        metered = e % 10 != 9  # one in ten is measured by its devices
        kinds = (["meter"] if metered else []) + ["pv"] * 2 + ["battery"] * 2 + ["ev_charger"] * 3
        kinds += ["flexible_load"] * (per - len(kinds))
        for i, kind in enumerate(kinds):
            asset_id = f"{owner}-{kind}-{i:02d}"
            out.append(meter(owner, asset_id) if kind == "meter" else device(kind, owner, asset_id))
    return [parse_asset(p) for p in out]


def _shapes(rng: np.random.Generator, kind: str) -> list[bytes]:
    """A few packed day vectors of ``kind`` (kWh per slot), every slot covered."""
    hours = np.arange(SLOTS_PER_DAY) * INTERVAL_S / 3600
    day = (hours >= 8) & (hours < 18)
    sun = np.clip(np.sin((hours - 6) / 12 * np.pi), 0, None)
    out = []
    for _ in range(_SHAPES):
        noise = rng.normal(1.0, 0.05, SLOTS_PER_DAY)
        if kind == "meter":
            kw = (800 + 1200 * day) * noise - 900 * sun  # exports at noon on sunny days
        elif kind == "pv":
            kw = -400 * sun * noise
        elif kind == "battery":
            kw = np.where(hours < 6, 200.0, np.where((hours >= 18) & (hours < 22), -180.0, 0.0))
        elif kind == "ev_charger":
            kw = np.where(day, 40.0 * noise, np.where(hours >= 20, -20.0, 0.0))
        else:
            kw = (100 + 100 * day) * noise
        energy = kw * INTERVAL_S / 3600
        out.append(pack_day(energy, np.full(SLOTS_PER_DAY, INTERVAL_S), np.zeros(96, bool)))
    return out


async def _populate(state: State, assets: Sequence[Asset], days: Sequence[date], seed: int) -> None:
    rng = np.random.default_rng(seed)
    keys = state.park(_PARK)
    for chunk in range(0, len(assets), 25):
        async with state.redis.pipeline(transaction=False) as pipe:
            for asset in assets[chunk : chunk + 25]:
                shapes = _shapes(rng, asset.kind)
                for i, day in enumerate(days):
                    _ = pipe.set(keys.history(asset.id, day), shapes[i % _SHAPES])
            await pipe.execute()


async def _entries(state: State, owners: Sequence[str]) -> None:
    store = EntryStore(state)
    entries = MonthEntries(
        fuels=[FuelEntry(carrier="natural_gas", quantity=5_000, unit="m3")],
        green_power=[GreenPowerEntry(kind="trading", kwh=100_000, certificates=["GEC-1"])],
    )
    for month in range(1, 13):
        for owner in owners:
            await store.put(_PARK, f"{YEAR}-{month:02d}", owner, entries)


async def _median_ms(
    run: Callable[[], Awaitable[object]],
    repeats: int,
    before: Callable[[], Awaitable[object]] | None = None,
) -> float:
    times = []
    for _ in range(repeats):
        if before is not None:
            await before()
        t0 = time.perf_counter()
        await run()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


async def run_bench(
    *,
    assets: int = 1000,
    enterprises: int = 50,
    repeats: int = 5,
    retention_days: int = HistorySettings.retention_days,
    redis_url: str = REDIS_URL,
    seed: int = 7,
) -> dict[str, Any]:
    """Lay down the year, time the ledger and the references, delete the keys.

    Returns:
        The report: setup, medians in ms (see the module docstring), goals,
        and the park's year row as a sanity check.
    """
    namespace = f"vppbench{uuid.uuid4().hex[:10]}"
    state = State.from_url(redis_url, namespace=namespace, timeout=60.0)
    store = HistoryStore(state, retention_days=retention_days)
    entries = EntryStore(state)
    closing = LedgerBook(state, store, entries, LedgerSettings(close_after_days=5))
    never = LedgerBook(state, store, entries, LedgerSettings(close_after_days=100_000))
    days = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
    december = [d for d in days if d >= DECEMBER]
    fleet = _assets(assets, enterprises)
    owners = sorted({a.owner for a in fleet})
    park = Park(id=_PARK, name="bench park", enterprises={o: Enterprise(name=o) for o in owners})
    months_key = state.park(_PARK).ledger_months
    medians: dict[str, float] = {}
    try:
        await state.put_park(park)
        for asset in fleet:
            await state.enroll(_PARK, asset)
        t0 = time.perf_counter()
        await _populate(state, fleet, days, seed)
        populate_s = time.perf_counter() - t0
        await _entries(state, owners)
        plan = plan_balance(park, fleet)

        async def unfreeze() -> object:
            return await state.redis.delete(months_key)

        async def month(book: LedgerBook, now: datetime) -> object:
            return await book.ledger(_PARK, "month", DECEMBER, LAST, now=now)

        async def year(book: LedgerBook, now: datetime) -> object:
            return await book.ledger(_PARK, "year", FIRST, LAST, now=now)

        medians["month_cold"] = await _median_ms(lambda: month(never, ALL_CLOSED), repeats)
        medians["year_cold"] = await _median_ms(lambda: year(never, ALL_CLOSED), repeats)
        medians["freeze_year"] = await _median_ms(
            lambda: year(closing, ALL_CLOSED), repeats, before=unfreeze
        )
        medians["year_frozen"] = await _median_ms(lambda: year(closing, ALL_CLOSED), repeats)
        medians["month_frozen"] = await _median_ms(lambda: month(closing, ALL_CLOSED), repeats)
        # December open again: drop its snapshot, keep the months before it frozen
        await state.redis.hdel(months_key, f"{YEAR}-12")
        medians["month_open"] = await _median_ms(lambda: month(closing, DECEMBER_OPEN), repeats)
        assert await state.redis.hexists(months_key, f"{YEAR}-12") == 0  # open: never frozen

        keys = state.park(_PARK)

        async def mget(chosen: Sequence[date]) -> object:
            names = [keys.history(s, d) for s in plan.series for d in chosen]
            async with state.batch(keys.meta) as pipe:
                for i in range(0, len(names), 2000):
                    _ = pipe.mget(names[i : i + 2000])
                return await pipe.execute()

        medians["mget_month"] = await _median_ms(lambda: mget(december), repeats)
        medians["read_month"] = await _median_ms(
            lambda: store.read_arrays(_PARK, plan.series, december), repeats
        )
        medians["mget_year"] = await _median_ms(lambda: mget(days), repeats)
        medians["read_year"] = await _median_ms(
            lambda: store.read_arrays(_PARK, plan.series, days), repeats
        )
        ledger = await closing.ledger(_PARK, "year", FIRST, LAST, now=ALL_CLOSED)
        park_year = next(r for r in ledger.rows if r.scope == "park")
        check = {
            "rows": len(ledger.rows),
            "indicators": len(ledger.indicators),
            "park_total_tce": round(park_year.total_tce, 3),
            "park_total_co2_t": round(park_year.total_co2_t, 3),
            "park_coverage": park_year.coverage,
        }
    finally:
        async for key in state.redis.scan_iter(match=f"{namespace}:*", count=1000):
            await state.redis.delete(key)
        await state.aclose()
    return {
        "assets": len(fleet),
        "enterprises": len(owners),
        "metered_enterprises": sum(1 for s in plan.scopes if s.basis == "revenue_meter"),
        "series_read": len(plan.series),
        "days": len(days),
        "retention_days": retention_days,
        "populate_s": round(populate_s, 1),
        "repeats": repeats,
        "median_ms": {k: round(v, 1) for k, v in medians.items()},
        "goal_ms": GOALS_MS,
        "check": check,
        "namespace": namespace,
        "machine": machine(),
    }


def _table(report: dict[str, Any]) -> str:
    ms = report["median_ms"]
    goal = report["goal_ms"]
    return "\n".join(
        [
            f"{report['assets']} assets, {report['enterprises']} enterprises"
            f" ({report['metered_enterprises']} metered), {report['days']} days of 15-min history;"
            f" {report['series_read']} series read; retention {report['retention_days']} days;"
            f" median of {report['repeats']} runs:",
            f"  month, nothing frozen (12 months from history)  {ms['month_cold']:9.1f} ms"
            f"   (goal <= {goal['month']:g})",
            f"  month open, the months before frozen            {ms['month_open']:9.1f} ms",
            f"  month, frozen                                   {ms['month_frozen']:9.1f} ms",
            f"  year, nothing frozen                            {ms['year_cold']:9.1f} ms"
            f"   (goal <= {goal['year']:g})",
            f"  year, computing and freezing every month        {ms['freeze_year']:9.1f} ms",
            f"  year, frozen                                    {ms['year_frozen']:9.1f} ms",
            f"  references: raw MGET month {ms['mget_month']:.1f} ms,"
            f" year {ms['mget_year']:.1f} ms; read_arrays month {ms['read_month']:.1f} ms,"
            f" year {ms['read_year']:.1f} ms",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and write the JSON report."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.ledger", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--assets", type=int, default=1000, help="enrolled assets")
    parser.add_argument("--enterprises", type=int, default=50, help="enterprises")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (medians)")
    parser.add_argument(
        "--retention-days",
        type=int,
        default=HistorySettings.retention_days,
        help="the history's retention the ledger assumes (days older at 'now' are not read)",
    )
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--out", default="bench-ledger.json", help="JSON output file")
    add_verbose(parser)
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    report = asyncio.run(
        run_bench(
            assets=args.assets,
            enterprises=args.enterprises,
            repeats=max(1, args.repeats),
            retention_days=args.retention_days,
            redis_url=args.redis_url,
        )
    )
    print(_table(report))
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
