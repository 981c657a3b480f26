"""The history window: mean kW per slot from Redis, and nothing after the issue time."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np

from tests.vpp.forecast.support import TZ
from vpp.forecast.window import closed_slots, read_window
from vpp.history.store import HistoryStore, IntervalDelta
from vpp.state import State

DAY = date(2026, 11, 24)
YESTERDAY = date(2026, 11, 23)


def test_closed_slots_counts_only_slots_that_ended() -> None:
    assert closed_slots(DAY, datetime(2026, 11, 24, 10, 7, tzinfo=TZ), TZ) == 40
    assert closed_slots(DAY, datetime(2026, 11, 24, 10, 0, tzinfo=TZ), TZ) == 40
    assert closed_slots(YESTERDAY, datetime(2026, 11, 24, 10, tzinfo=TZ), TZ) == 96
    assert closed_slots(date(2026, 11, 25), datetime(2026, 11, 24, 10, tzinfo=TZ), TZ) == 0


async def test_read_window_gives_kw_and_masks_after_the_issue_time(state: State) -> None:
    store = HistoryStore(state)
    await store.put_days("p", "load-1", {YESTERDAY: [25.0] * 96, DAY: [50.0] * 96}, tz=TZ)
    # half a slot of telemetry: 10 kWh over 450 s = 80 kW
    await store.add("p", [IntervalDelta("m-1", YESTERDAY, 5, 10.0, 450.0)], tz=TZ)
    issued = datetime(2026, 11, 24, 10, 7, tzinfo=TZ)
    window = await read_window(
        store, "p", ["load-1", "m-1"], ["flexible_load", "meter"], [YESTERDAY, DAY], issued, TZ
    )

    assert window.kw.shape == window.coverage.shape == (2, 2, 96)
    assert np.all(window.kw[0, 0] == 100.0)  # 25 kWh per 15 minutes
    assert np.all(window.kw[0, 1, :40] == 200.0)
    # 10:00-10:15 is still running at 10:07, and everything after is the future
    assert np.all(np.isnan(window.kw[0, 1, 40:]))
    assert np.all(window.coverage[0, 1, 40:] == 0.0)
    assert window.kw[1, 0, 5] == 80.0
    assert window.coverage[1, 0, 5] == 0.5
    # no data is NaN, never zero
    assert np.isnan(window.kw[1, 0, 4])
    assert np.isnan(window.kw[1, 1]).all()
