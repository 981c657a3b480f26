"""Benchmark: ``python -m tests.benchmarks.history [--series 1000] [--closes 25] [--out FILE]``.

Against the Redis of ``python -m tests.testenv`` (or ``VPP_TEST_REDIS_URL``),
under a namespace of its own that it deletes afterwards, it reports the
medians over ``--closes`` interval closes of:

* ``close_write_ms``: `HistoryStore.add` of the closing interval of every
  series (one slot each: energy and covered seconds merged into its day
  vector by the Lua script, with its expiry), the write the recorder makes
  when an interval closes;
* ``recorder_close_ms``: `HistoryRecorder.flush` at an interval close with
  every series live (two readings each in the last 20 s): the integration,
  the lease renewal and the same write;
* ``reference_set_ms``: a pipeline of as many plain ``SET`` of 6 bytes, in
  the same run: the floor any per-series write stands on;

and ``bytes_per_asset_day``: Redis's ``MEMORY USAGE`` of a full day vector
(every slot written), the median over the series; ``used_memory_per_day``
cross-checks it with the growth of ``used_memory`` per day vector.
Goals (issue 10): close-write <= 50 ms, <= 1 KB per asset-day.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.benchmarks.support import (
    REDIS_URL,
    add_verbose,
    configure_logging,
    machine,
    write_report,
)
from vpp.history.grid import SLOTS_PER_DAY, slot_start
from vpp.history.recorder import HistoryRecorder
from vpp.history.store import HistoryStore, IntervalDelta
from vpp.model import LiveState
from vpp.state import State

PARK = "bench"
TZ = ZoneInfo("Asia/Shanghai")
GOALS = {"close_write_ms": 50.0, "bytes_per_asset_day": 1024.0}


async def run_bench(series: int, closes: int, url: str) -> dict[str, Any]:
    """Measure, delete every key written, return the figures (see the module docstring)."""
    namespace = f"benchhist{uuid.uuid4().hex[:8]}"
    state = State.from_url(url, namespace=namespace, timeout=30.0)
    store = HistoryStore(state)
    ids = [f"asset-{i:05d}" for i in range(series)]
    day = date.today() - timedelta(days=1)
    ref_keys = [f"{state.park(PARK).prefix}:ref:{i}" for i in range(series)]
    written: set[str] = set(ref_keys)
    try:
        close_ms, ref_ms = [], []
        for slot in range(closes):
            deltas = [IntervalDelta(s, day, slot, 2.5 + i * 1e-3, 900) for i, s in enumerate(ids)]
            t0 = time.perf_counter()
            await store.add(PARK, deltas, tz=TZ)
            close_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            async with state.redis.pipeline(transaction=False) as pipe:
                for key in ref_keys:
                    _ = pipe.set(key, b"\x00" * 6)
                await pipe.execute()
            ref_ms.append((time.perf_counter() - t0) * 1000)
        written.update(state.park(PARK).history(s, day) for s in ids)

        recorder = HistoryRecorder(store, hold_s=60.0, flush_s=60.0)
        rec_day = day - timedelta(days=1)
        recorder_ms = []
        for slot in range(1, closes + 1):
            close = slot_start(rec_day, slot, TZ)
            for back in (20, 10):
                ts = close - timedelta(seconds=back)
                recorder.record(PARK, {s: LiveState(power_kw=10.0, ts=ts) for s in ids})
            t0 = time.perf_counter()
            await recorder.flush(now=close + timedelta(seconds=1))
            recorder_ms.append((time.perf_counter() - t0) * 1000)
        written.update(state.park(PARK).history(s, rec_day) for s in ids)
        written.add(state.park(PARK).history_lease)

        # full days: every slot of every series written
        full = day - timedelta(days=2)
        before = int((await state.redis.info("memory"))["used_memory"])
        await store.add(
            PARK,
            [IntervalDelta(s, full, k, 1.0, 900) for s in ids for k in range(SLOTS_PER_DAY)],
            tz=TZ,
        )
        after = int((await state.redis.info("memory"))["used_memory"])
        full_keys = [state.park(PARK).history(s, full) for s in ids]
        written.update(full_keys)
        usage = [int(await state.redis.memory_usage(k, samples=0) or 0) for k in full_keys]
        return {
            "series": series,
            "closes": closes,
            "close_write_ms": statistics.median(close_ms),
            "close_write_ms_max": max(close_ms),
            "recorder_close_ms": statistics.median(recorder_ms),
            "reference_set_ms": statistics.median(ref_ms),
            "bytes_per_asset_day": statistics.median(usage),
            "used_memory_per_day": (after - before) / series,
            "key_example": full_keys[0],
            "namespace": namespace,
        }
    finally:
        keys = sorted(written)
        for i in range(0, len(keys), 1000):
            await state.redis.delete(*keys[i : i + 1000])
        # and what the recorder made beside the history (its readings stream for other replicas)
        async for key in state.redis.scan_iter(match=f"{namespace}:*", count=1000):
            await state.redis.delete(key)
        await state.aclose()


def _table(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"series {r['series']}, {r['closes']} interval closes (medians)",
            f"  close write (store.add, all series)  {r['close_write_ms']:8.2f} ms"
            f"   (max {r['close_write_ms_max']:.2f}; goal <= {GOALS['close_write_ms']:.0f})",
            f"  recorder close (flush, all series)   {r['recorder_close_ms']:8.2f} ms",
            f"  reference: pipeline of plain SETs    {r['reference_set_ms']:8.2f} ms",
            f"  bytes per asset-day (MEMORY USAGE)   {r['bytes_per_asset_day']:8.0f}"
            f"      (goal <= {GOALS['bytes_per_asset_day']:.0f}; used_memory growth "
            f"{r['used_memory_per_day']:.0f})",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and write the JSON report."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.history", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--series", type=int, default=1000, help="assets and meters recorded")
    parser.add_argument("--closes", type=int, default=25, help="interval closes (at least 20)")
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--out", default="bench-history.json", help="JSON output file")
    add_verbose(parser)
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    result = asyncio.run(run_bench(args.series, max(args.closes, 1), args.redis_url))
    print(_table(result))
    report = {"goals": GOALS, "machine": machine(), "result": result}
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
