"""Benchmark: ``python -m tests.benchmarks.forecast [--series N] [--repeats N] [--days N]``.

Two figures of issue 11:

* **refresh**: the median wall time of `vpp.forecast.refresh.issue_forecast`
  for a synthetic park of ``--series`` assets — 70 % flexible loads and 10 %
  meters (a weekly shape each with its own level, noise and a slow drift,
  the official calendar's holidays as rest days), 10 % PV arrays (pvlib's
  clear sky of the array times a seeded daily clearness) and 10 % batteries
  (not forecast: their envelope is their state) — with 56 days of history
  before today in a real Redis under a namespace of its own (deleted
  afterwards): the history read, the LightGBM model learned and applied to
  every load and meter, every array's clear-sky model and index, the
  forecast stored (goal: <= 5 s on this 2-core machine). Chargers are left
  out here: their forecast learns from session history, which the demo
  backtest below has;
* **backtest**: the day-ahead backtest (`vpp.forecast.backtest.backtest`,
  issued at 09:00 the day before) over the last ``--days`` days of the demo
  park's generated history (`vpp.history.generate.generate_history`, 63 days,
  the seed and enterprises of `vpp.demo_park`): nMAE and bias per kind and
  for the park, of the forecast against persistence and the similar-day
  profile (goal: better than both for loads).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
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
from vpp.demo_park import DEMO_ENTERPRISES, SEED
from vpp.forecast.backtest import backtest
from vpp.forecast.chargers import SESSIONS
from vpp.forecast.inputs import ForecastContext, HistoryWindow
from vpp.forecast.kinds import FORECASTERS
from vpp.forecast.model import BacktestSummary
from vpp.forecast.pv import clear_sky_kw
from vpp.forecast.refresh import issue_forecast, park_total_members
from vpp.forecast.sessions import ChargerSession
from vpp.forecast.store import ForecastStore
from vpp.forecast.window import mean_kw
from vpp.history.calendar import day_type
from vpp.history.generate import generate_history
from vpp.history.grid import INTERVAL_S, SLOTS_PER_DAY
from vpp.history.store import HistoryStore
from vpp.model import (
    Battery,
    FlexibleLoad,
    Meter,
    ModbusConnection,
    MqttConnection,
    Park,
    ParkLocation,
    Pv,
)
from vpp.parkfile import load_park_file
from vpp.settings import ForecastSettings
from vpp.state import State

__all__ = [
    "DEMO_END",
    "DEMO_FILE",
    "demo_backtest",
    "demo_window",
    "main",
    "run_bench",
    "scores_table",
]

_PARK = "bench-forecast"
_TZ = ZoneInfo("Asia/Shanghai")
_LOCATION = ParkLocation(latitude=22.8, longitude=113.55)
#: "Today" of the synthetic park: an ordinary working Tuesday the calendar knows.
TODAY = date(2026, 11, 24)
HISTORY_DAYS = 56
#: Kept long enough that the fixed dates above never expire during a run.
_RETENTION_DAYS = 36500
_GOAL_S = 5.0
#: The demo park and the day after its generated history.
DEMO_FILE = "config/demo-park.toml"
DEMO_END = date(2026, 11, 30)
DEMO_DAYS = 63


def _shape(working: bool, holiday: bool, rng: np.random.Generator) -> np.ndarray:
    """A per-unit day: a night base, a daytime plateau on working days, less on rest days."""
    hours = np.arange(SLOTS_PER_DAY) * INTERVAL_S / 3600
    day = (hours >= 8) & (hours < 18)
    top = 0.7 if working else (0.05 if holiday else 0.25)
    return 0.35 + top * day + 0.1 * np.sin(np.pi * hours / 24) + rng.normal(0, 0.04, SLOTS_PER_DAY)


async def _populate(store: HistoryStore, assets: Sequence[Any], seed: int) -> None:
    rng = np.random.default_rng(seed)
    days = [TODAY - timedelta(days=k) for k in range(HISTORY_DAYS, 0, -1)]
    kinds = [day_type(d) for d in days]
    clear: dict[tuple[float, float], np.ndarray] = {}
    for chunk in range(0, len(assets), 50):
        writes = []
        for asset in assets[chunk : chunk + 50]:
            name = asset.id
            if isinstance(asset, Battery):
                continue
            if isinstance(asset, Pv):
                orientation = (asset.tilt_deg, asset.azimuth_deg)
                if orientation not in clear:
                    unit = Pv(**{**asset.model_dump(), "rated_kw": 1.0})
                    clear[orientation] = clear_sky_kw(_LOCATION, unit, days, _TZ)
                clearness = rng.uniform(0.3, 1.0, (len(days), 1))
                kw = -asset.rated_kw * clear[orientation] * clearness
                pv_days = {d: list(kw[k] * INTERVAL_S / 3600) for k, d in enumerate(days)}
                writes.append(store.put_days(_PARK, name, pv_days, tz=_TZ))
                continue
            level = float(rng.uniform(20, 500))
            drift = 1 + 0.05 * np.sin(np.arange(len(days)) / 9 + rng.uniform(0, 6))
            series = {
                d: list(
                    level
                    * drift[k]
                    * _shape(t.working, t.holiday is not None, rng)
                    * INTERVAL_S
                    / 3600
                )
                for k, (d, t) in enumerate(zip(days, kinds, strict=True))
            }
            writes.append(store.put_days(_PARK, name, series, tz=_TZ))
        await asyncio.gather(*writes)


async def _enroll(state: State, series: int) -> list[Any]:
    await state.put_park(Park(id=_PARK, timezone=str(_TZ), location=_LOCATION))
    enrolled = []
    for i in range(series):
        if i % 10 == 4:
            asset: Any = Meter(
                id=f"m{i:04d}", owner=f"e{i:04d}", grid_node="n", account_no=f"{i:04d}"
            )
        elif i % 10 == 9:
            asset = Pv(
                id=f"pv{i:04d}", owner=f"e{i:04d}", grid_node="n",
                rated_kw=float(50 + (i * 37) % 950), tilt_deg=float(5 * (i % 4)),
                azimuth_deg=180.0 + 20 * (i % 3 - 1),
                connection=ModbusConnection(host="127.0.0.1", port=1502 + i % 1000),
            )  # fmt: skip
        elif i % 10 == 7:
            asset = Battery(
                id=f"b{i:04d}", owner=f"e{i:04d}", grid_node="n", capacity_kwh=200.0,
                max_charge_kw=100.0, max_discharge_kw=100.0,
                connection=ModbusConnection(host="127.0.0.1", port=1502 + i % 1000),
            )  # fmt: skip
        else:
            asset = FlexibleLoad(
                id=f"l{i:04d}", owner=f"e{i:04d}", grid_node="n", baseline_kw=100.0,
                max_shed_kw=30.0, max_shed_minutes=60,
                connection=MqttConnection(topic_prefix=f"bench/l{i:04d}"),
            )  # fmt: skip
        await state.enroll(_PARK, asset)
        enrolled.append(asset)
    return enrolled


async def run_refresh(
    *, series: int = 1000, repeats: int = 5, redis_url: str = REDIS_URL, seed: int = 7
) -> dict[str, Any]:
    """Lay down the synthetic park and its history, time `issue_forecast`, delete the keys."""
    namespace = f"vppbench{uuid.uuid4().hex[:10]}"
    state = State.from_url(redis_url, namespace=namespace)
    history = HistoryStore(state, retention_days=_RETENTION_DAYS)
    store = ForecastStore(state)
    settings = ForecastSettings(training_days=HISTORY_DAYS)
    now = datetime(TODAY.year, TODAY.month, TODAY.day, 9, tzinfo=_TZ)
    try:
        assets = await _enroll(state, series)
        await _populate(history, assets, seed)
        times = []
        methods: dict[str, int] = {}
        for _ in range(repeats):
            t0 = time.perf_counter()
            forecast = await issue_forecast(state, history, store, _PARK, now, settings)
            times.append(time.perf_counter() - t0)
        for curve in forecast.series.values():
            methods[curve.method] = methods.get(curve.method, 0) + 1
    finally:
        async for key in state.redis.scan_iter(match=f"{namespace}:*", count=1000):
            await state.redis.delete(key)
        await state.aclose()
    return {
        "series": series,
        "history_days": HISTORY_DAYS,
        "repeats": repeats,
        "median_s": round(statistics.median(times), 3),
        "times_s": [round(t, 3) for t in times],
        "methods": methods,
        "goal_s": _GOAL_S,
        "namespace": namespace,
    }


def demo_window(
    days: int = DEMO_DAYS, end: date = DEMO_END
) -> tuple[HistoryWindow, Park, dict[str, Any], list[str], tuple[ChargerSession, ...]]:
    """The demo park's generated history as a window (its last day ``end``, with no data yet).

    Returns:
        ``(window, park, assets by id, the park total's members, the charger sessions)``.
    """
    park_file = load_park_file(DEMO_FILE)
    park, assets = park_file.park, park_file.assets
    generated = generate_history(
        park, assets, end=end, days=days, seed=SEED, enterprises=DEMO_ENTERPRISES
    )
    kinds = {a.id: a.kind for a in assets}
    names = sorted(generated.series)
    energy = np.array([[generated.series[s][d].energy_kwh for d in generated.days] for s in names])
    coverage = np.array([[generated.series[s][d].coverage for d in generated.days] for s in names])
    # today: nothing recorded yet
    energy = np.concatenate([energy, np.zeros((len(names), 1, SLOTS_PER_DAY))], axis=1)
    coverage = np.concatenate([coverage, np.zeros((len(names), 1, SLOTS_PER_DAY))], axis=1)
    window = HistoryWindow(
        tuple(names), tuple(kinds[s] for s in names), (*generated.days, end),
        mean_kw(energy, coverage), coverage,
    )  # fmt: skip
    members = park_total_members(assets, FORECASTERS)
    return window, park, {a.id: a for a in assets}, members, generated.sessions


def demo_backtest(days: int = 14, issue: str = "09:00") -> BacktestSummary:
    """The day-ahead backtest over the last ``days`` days of the demo park's generated history."""
    window, park, assets, members, sessions = demo_window()
    settings = ForecastSettings()

    def ctx_factory(issued_at: datetime, targets: Sequence[date]) -> ForecastContext:
        return ForecastContext(
            park, assets, issued_at, tuple(targets),
            extra={"min_history_days": settings.min_history_days, SESSIONS: sessions},
        )  # fmt: skip

    return backtest(
        window, ctx_factory, FORECASTERS, days, clock_time.fromisoformat(issue),
        tz=ZoneInfo(park.timezone), park=park.id, park_members=members,
        training_days=settings.training_days, now=datetime(2026, 11, 30, tzinfo=UTC),
    )  # fmt: skip


def scores_table(scores: dict[str, Any]) -> list[str]:
    """Lines: per group, nMAE and bias of forecast, persistence and similar_day."""
    methods = ("forecast", "persistence", "similar_day")
    lines = [f"  {'group':<14}" + "".join(f"{m + ' nMAE/bias':>26}" for m in methods)]
    for group, by_method in scores.items():
        cells = []
        for m in methods:
            s = by_method.get(m)
            cells.append(
                f"{'-':>26}"
                if s is None
                else f"{s['nmae'] * 100:>14.1f} % {s['bias'] * 100:+7.1f} %"
            )
        lines.append(f"  {group:<14}" + "".join(cells))
    return lines


async def run_bench(
    *, series: int = 1000, repeats: int = 5, days: int = 14, redis_url: str = REDIS_URL
) -> dict[str, Any]:
    """Both figures (see the module)."""
    refresh = await run_refresh(series=series, repeats=repeats, redis_url=redis_url)
    t0 = time.perf_counter()
    summary = await asyncio.to_thread(demo_backtest, days)
    elapsed = time.perf_counter() - t0
    scores = {
        g: {m: {"nmae": s.nmae, "bias": s.bias, "intervals": s.intervals} for m, s in ms.items()}
        for g, ms in summary.scores.items()
    }
    return {
        "refresh": refresh,
        "backtest": {
            "days": days,
            "first_day": summary.first_day.isoformat(),
            "last_day": summary.last_day.isoformat(),
            "issue_time": summary.issue_time,
            "seconds": round(elapsed, 2),
            "scores": scores,
            "error_quantiles": {g: dict(q) for g, q in summary.error_quantiles.items()},
        },
        "machine": machine(),
    }


def _text(report: dict[str, Any]) -> str:
    r, b = report["refresh"], report["backtest"]
    lines = [
        f"forecast refresh: {r['series']} series, {r['history_days']} days of history: median "
        f"{r['median_s']:.2f} s of {r['repeats']} (goal <= {r['goal_s']:g} s); "
        f"methods {r['methods']}",
        f"backtest of the demo park's generated history, {b['first_day']}..{b['last_day']}, "
        f"issued {b['issue_time']} the day before ({b['seconds']:.1f} s):",
        *scores_table(b["scores"]),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the figures and write the JSON report."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.forecast", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--series", type=int, default=1000, help="assets of the synthetic park")
    parser.add_argument("--repeats", type=int, default=5, help="refreshes timed (median)")
    parser.add_argument("--days", type=int, default=14, help="days the backtest scores")
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--out", default="bench-forecast.json", help="JSON output file")
    add_verbose(parser)
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    report = asyncio.run(
        run_bench(
            series=args.series,
            repeats=max(1, args.repeats),
            days=args.days,
            redis_url=args.redis_url,
        )
    )
    print(_text(report))
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
