"""Benchmark: ``python -m tests.benchmarks.baselines [--series 1000] [--repeats 15] [--out FILE]``.

A historical baseline for every series of a park at once, from 10 days of
interval history in a real Redis (issue 10: a baseline for every one of 1,000
assets from 10 days of history, goal <= 100 ms). Setup: ``--series`` series
get 10 days of history before an event day (a working Monday) and that day's
morning (the same-day adjustment reads it), written as imported metering days
under a unique namespace, deleted afterwards. The event: 14:00-16:00 in
15-minute intervals; settings: N = 5 similar days, high 4 of 5, lookback 10
days, a same-day adjustment over the 2 h before the start capped at ±20 %.

Medians over ``--repeats`` runs, ms:

* ``compute_<method>``: `compute_baselines` over the history already read
  as a `HistoryBlock` (the vectorised computation alone);
* ``load_<method>``: `load_baselines`: the park's event days, the history
  read from Redis and unpacked, then the computation (what the control loop
  pays when an event starts);

and, measured in the same run as references:

* ``numpy_mean``: ``mean(axis=1)`` over a ready ``(series, 10, 96)`` array
  (the arithmetic floor of an N-day mean);
* ``stack``: building that array from `DayVector` objects (what a
  computation that starts from per-day objects pays first; the loader
  decodes Redis values straight into arrays instead);
* ``mget``: one raw ``MGET`` of the same day vectors, not decoded (the
  Redis floor of the read); ``read``: `HistoryStore.read` (MGET and decode).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime, timedelta
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
from vpp.events import EventStore
from vpp.history.baselines import (
    HISTORICAL_METHODS,
    HistoryBlock,
    compute_baselines,
    load_baselines,
)
from vpp.history.grid import INTERVAL_S, SLOTS_PER_DAY
from vpp.history.store import HistoryStore
from vpp.model import BaselineAdjustment, BaselineSettings, Park
from vpp.state import State

__all__ = ["main", "run_bench"]

_PARK = "bench"
_TZ = ZoneInfo("Asia/Shanghai")
#: The event day: an ordinary working Monday the calendar knows.
EVENT_DAY = date(2026, 11, 23)
HISTORY_DAYS = 10
#: Kept long enough that the fixed dates above never expire during a run.
_RETENTION_DAYS = 36500
_GOAL_MS = 100.0


def _settings() -> BaselineSettings:
    return BaselineSettings(
        days=5,
        x=4,
        y=5,
        lookback_days=HISTORY_DAYS,
        adjustment=BaselineAdjustment(hours=2, cap=0.2),
    )


def _day_kwh(rng: np.random.Generator, level: float, working: bool) -> list[float]:
    """One believable day: a base load, a daytime plateau on working days, noise (kWh per slot)."""
    hours = np.arange(SLOTS_PER_DAY) * INTERVAL_S / 3600
    shape = 0.4 + (0.6 if working else 0.15) * ((hours >= 8) & (hours < 18))
    kw = level * shape * rng.normal(1.0, 0.05, SLOTS_PER_DAY)
    return [float(v) for v in kw * INTERVAL_S / 3600]


async def _populate(store: HistoryStore, names: Sequence[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    days = [EVENT_DAY - timedelta(days=k) for k in range(HISTORY_DAYS + 1)]
    for chunk in range(0, len(names), 50):
        writes = []
        for name in names[chunk : chunk + 50]:
            level = float(rng.uniform(20, 500))
            series = {d: _day_kwh(rng, level, d.weekday() < 5) for d in days}
            writes.append(store.put_days(_PARK, name, series, tz=_TZ))
        await asyncio.gather(*writes)


async def _median_ms(run: Callable[[], Awaitable[object]], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        await run()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


async def run_bench(
    *, series: int = 1000, repeats: int = 15, redis_url: str = REDIS_URL, seed: int = 7
) -> dict[str, Any]:
    """Lay down the history, time the baselines and the references, delete the keys.

    Returns:
        The report: settings, medians in ms (see the module docstring), the
        goal, and how many series got a baseline (the rest fell short).
    """
    namespace = f"vppbench{uuid.uuid4().hex[:10]}"
    state = State.from_url(redis_url, namespace=namespace)
    store = HistoryStore(state, retention_days=_RETENTION_DAYS)
    events = EventStore(state)
    park = Park(id=_PARK, baseline=_settings())
    names = [f"s{i:04d}" for i in range(series)]
    start = datetime(EVENT_DAY.year, EVENT_DAY.month, EVENT_DAY.day, 14, tzinfo=_TZ)
    window: dict[str, Any] = {"start": start, "interval_s": 900, "n": 8}
    first = EVENT_DAY - timedelta(days=HISTORY_DAYS)
    try:
        await _populate(store, names, seed)
        history = await store.read(_PARK, names, first, EVENT_DAY)
        block = HistoryBlock.from_days(history)
        keys = [state.park(_PARK).history(s, d) for s in names for d in sorted(history[s])]
        medians: dict[str, float] = {}
        found: dict[str, int] = {}
        for method in HISTORICAL_METHODS:

            async def compute(method: Any = method) -> object:
                return compute_baselines(
                    block, method, park.baseline, tz=_TZ, event_days=(), now=start, **window
                )

            async def load(method: Any = method) -> object:
                return await load_baselines(store, events, park, names, method, now=start, **window)

            medians[f"compute_{method}"] = await _median_ms(compute, repeats)
            medians[f"load_{method}"] = await _median_ms(load, repeats)
            results = await load_baselines(store, events, park, names, method, now=start, **window)
            found[method] = sum(1 for r in results.values() if r.complete)

        past = [first + timedelta(days=k) for k in range(HISTORY_DAYS)]

        async def stack() -> object:
            return np.stack([np.stack([history[s][d].mean_kw for d in past]) for s in names])

        array = np.stack([np.stack([history[s][d].mean_kw for d in past]) for s in names])

        async def numpy_mean() -> object:
            return array.mean(axis=1)

        async def mget() -> object:
            return await state.redis.mget(keys)

        async def read() -> object:
            return await store.read(_PARK, names, first, EVENT_DAY)

        medians["numpy_mean"] = await _median_ms(numpy_mean, repeats)
        medians["stack"] = await _median_ms(stack, repeats)
        medians["mget"] = await _median_ms(mget, repeats)
        medians["read"] = await _median_ms(read, repeats)
    finally:
        async for key in state.redis.scan_iter(match=f"{namespace}:*", count=1000):
            await state.redis.delete(key)
        await state.aclose()
    return {
        "series": series,
        "history_days": HISTORY_DAYS,
        "event": {"day": EVENT_DAY.isoformat(), "start": "14:00", "intervals": 8, "minutes": 15},
        "settings": park.baseline.model_dump(mode="json"),
        "repeats": repeats,
        "median_ms": {k: round(v, 3) for k, v in medians.items()},
        "complete": found,
        "goal_ms": _GOAL_MS,
        "namespace": namespace,
        "machine": machine(),
    }


def _table(report: dict[str, Any]) -> str:
    ms = report["median_ms"]
    lines = [
        f"{report['series']} series, {report['history_days']} days of history, "
        f"median of {report['repeats']} runs (goal <= {report['goal_ms']:g} ms):"
    ]
    for method in HISTORICAL_METHODS:
        lines.append(
            f"  {method:<13} compute {ms[f'compute_{method}']:8.2f} ms   "
            f"load+compute {ms[f'load_{method}']:8.2f} ms   "
            f"({report['complete'][method]} complete)"
        )
    lines.append(
        f"  references    numpy mean {ms['numpy_mean']:.2f} ms, stack from DayVectors "
        f"{ms['stack']:.2f} ms, raw MGET {ms['mget']:.2f} ms, HistoryStore.read {ms['read']:.2f} ms"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and write the JSON report."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.baselines", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--series", type=int, default=1000, help="series (assets or meters)")
    parser.add_argument("--repeats", type=int, default=15, help="runs per figure (medians)")
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--out", default="bench-baselines.json", help="JSON output file")
    add_verbose(parser)
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    report = asyncio.run(
        run_bench(series=args.series, repeats=max(1, args.repeats), redis_url=args.redis_url)
    )
    print(_table(report))
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
