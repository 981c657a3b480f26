"""The rebound window of an event: its length, its baselines, and its power from the history."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from vpp.events import EventRecord, EventState, parse_event_request
from vpp.events.model import EnterpriseTrack, ReboundBaseline, SeriesBaselines
from vpp.events.rebound import NOT_RECORDED, interval_means, measure, rebound_window

T0 = datetime(2026, 7, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
STEP = timedelta(minutes=15)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def record(
    n: int = 4,
    *,
    measured: list[float | None] | None = None,
    state: EventState = EventState.COMPLETED,
    after: int = 16,
    load_minutes: float = 0.0,
) -> EventRecord:
    """An event of ``n`` 15-minute intervals at T0, baseline 1000 kW (a: 600, b: 400)."""
    body = {"id": "e", "kind": "peak_shaving", "start": T0.isoformat(), "targets_kw": [300] * n}
    r = EventRecord.new("p", parse_event_request(body), T0 - timedelta(hours=1))
    r.state = state
    r.baseline_kw = [1000.0] * n
    r.measured_kw = list(measured) if measured is not None else [700.0] * n
    r.enterprises = {
        "a": EnterpriseTrack(meter="m-a", series=["m-a"], baseline_kw=[600.0] * n,
                             rebound_baseline_kw=[610.0 + i for i in range(after)]),
        "b": EnterpriseTrack(series=["b1", "b2"], baseline_kw=[400.0] * n,
                             rebound_baseline_kw=[400.0] * after),
    }  # fmt: skip
    r.rebound = ReboundBaseline(
        start=r.end,
        baseline_kw=[1010.0 + i for i in range(after)],
        load_rebound_minutes=load_minutes,
    )
    return r


def test_the_window_is_at_least_an_hour_past_the_end() -> None:
    window = rebound_window(record(2), floor_h=1.0)  # a 30-minute event
    assert window.counted and window.length_h == 1.0
    assert window.starts == tuple(T0 + STEP * i for i in range(2, 6))
    # the baseline the loop fixed past the end, interval by interval
    assert window.baseline_kw.tolist() == [1010.0, 1011.0, 1012.0, 1013.0]
    assert window.owner_baseline_kw["a"].tolist() == [610.0, 611.0, 612.0, 613.0]
    assert window.owner_baseline_kw["b"].tolist() == [400.0] * 4
    assert np.isnan(window.measured_kw).all()  # nothing read yet
    assert "the longest of [reports] rebound_window_h (1 h)" in window.note


@pytest.mark.parametrize(
    ("n", "load_minutes", "floor_h", "intervals"),
    [
        (2, 100.0, 1.0, 7),  # a load rebounds over 100 minutes: 6.67 intervals, rounded up
        (8, 30.0, 1.0, 8),  # a 2-hour event: a battery recharging at its rate takes as long
        (2, 0.0, 1.5, 6),  # the setting
    ],
)
def test_the_window_takes_the_longest_of_its_reasons(
    n: int, load_minutes: float, floor_h: float, intervals: int
) -> None:
    window = rebound_window(record(n, load_minutes=load_minutes), floor_h=floor_h)
    assert len(window.starts) == intervals
    assert window.length_h == pytest.approx(intervals / 4)


def test_the_window_goes_no_further_than_the_baseline_fixed_past_the_end() -> None:
    window = rebound_window(record(12, after=4), floor_h=1.0)  # a 3-hour event
    assert len(window.starts) == 4 and window.length_h == 1.0
    assert "horizon_after_h" in window.note


def test_the_window_ends_where_the_next_event_starts() -> None:
    next_start = T0 + STEP * 6 + timedelta(minutes=5)  # inside the third interval after
    window = rebound_window(record(4), floor_h=1.0, next_start=next_start)
    assert window.starts == (T0 + STEP * 4, T0 + STEP * 5)
    assert window.length_h == 0.5 and "next event" in window.note


def test_an_event_stopped_midway_counts_its_unrun_intervals_too() -> None:
    cut = record(4, measured=[700.0, 720.0, None, None], state=EventState.CANCELLED)
    window = rebound_window(cut, floor_h=1.0)
    # from the end of its last measured interval, against the event's baseline, then past its end
    assert window.starts == tuple(T0 + STEP * i for i in range(2, 8))
    assert window.baseline_kw.tolist() == [1000.0, 1000.0, 1010.0, 1011.0, 1012.0, 1013.0]
    assert window.owner_baseline_kw["a"].tolist()[:3] == [600.0, 600.0, 610.0]
    assert "the end of its last measured interval" in window.note
    # a running event: the window is after its end, whatever it measured so far
    running = record(4, measured=[700.0, None, None, None], state=EventState.ACTIVE)
    assert rebound_window(running, floor_h=1.0).starts[0] == T0 + STEP * 4


def test_a_rebound_baseline_written_before_an_extension_is_read_by_time() -> None:
    r = record(4, state=EventState.ACTIVE)
    r.resize([300.0] * 5, T0 + timedelta(minutes=20))  # one interval more; the loop rewrites later
    window = rebound_window(r, floor_h=1.0)
    assert window.starts[0] == T0 + STEP * 5
    assert window.baseline_kw.tolist()[:2] == [1011.0, 1012.0]  # at their own times


def test_no_window_without_a_baseline_past_the_end() -> None:
    r = record(4)
    r.rebound = None
    window = rebound_window(r, floor_h=1.0)
    assert not window.counted and window.note == NOT_RECORDED and window.starts == ()
    r = record(4)
    assert r.rebound is not None
    r.rebound.note = "the history cannot serve the baseline past the end: too few days"
    window = rebound_window(r, floor_h=1.0)
    assert not window.counted and "too few days" in window.note


def day_arrays(levels_kw: dict[int, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """One series, one day: slot -> (mean kW over its covered part, coverage)."""
    energy, coverage = np.zeros((1, 1, 96)), np.zeros((1, 1, 96))
    for slot, (kw, covered) in levels_kw.items():
        energy[0, 0, slot] = kw * 0.25 * covered
        coverage[0, 0, slot] = covered
    return energy, coverage


DAY = date(2026, 7, 1)
LATE = datetime(2026, 7, 2, tzinfo=UTC)


def test_an_interval_is_the_time_weighted_mean_of_its_slots() -> None:
    # slots 40-43 (10:00-11:00 local): 100, 200, 300 kW, then 400 kW over half the slot
    energy, coverage = day_arrays({40: (100, 1), 41: (200, 1), 42: (300, 1), 43: (400, 0.5)})
    hour = [T0]
    kw, least = interval_means(energy, coverage, [DAY], hour, 3600, SHANGHAI, LATE)
    assert kw[0, 0] == pytest.approx(250.0)  # the partly covered slot at its covered mean
    assert least[0, 0] == 0.5
    quarters = [T0 + STEP * i for i in range(4)]
    kw, _ = interval_means(energy, coverage, [DAY], quarters, 900, SHANGHAI, LATE)
    assert kw[0].tolist() == pytest.approx([100.0, 200.0, 300.0, 400.0])
    # 10-minute intervals: 10:00-10:10 lies in one slot, 10:10-10:20 in two
    tens = [T0, T0 + timedelta(minutes=10)]
    kw, _ = interval_means(energy, coverage, [DAY], tens, 600, SHANGHAI, LATE)
    assert kw[0].tolist() == pytest.approx([100.0, (5 * 100 + 5 * 200) / 10])


def test_an_interval_not_closed_or_without_data_is_not_measured() -> None:
    energy, coverage = day_arrays({40: (100, 1), 41: (200, 1)})  # 42 has no data
    quarters = [T0 + STEP * i for i in range(3)]
    kw, least = interval_means(energy, coverage, [DAY], quarters, 900, SHANGHAI, LATE)
    assert kw[0, :2].tolist() == [100.0, 200.0] and math.isnan(kw[0, 2])
    assert least[0, 2] == 0.0  # closed, but no data: never 0 kW
    # the service clock at 10:20: only the first slot has closed
    now = T0 + timedelta(minutes=20)
    kw, least = interval_means(energy, coverage, [DAY], quarters, 900, SHANGHAI, now)
    assert kw[0, 0] == 100.0 and np.isnan(kw[0, 1:]).all() and np.isnan(least[0, 1:]).all()


def test_a_silent_device_counts_at_its_baseline_once_the_telemetry_is_written() -> None:
    r = record(2)  # window: 4 intervals after a 30-minute event
    window = rebound_window(r, floor_h=1.0)
    nan = np.nan
    kw = {
        "m-a": np.array([700.0, 650.0, 600.0, nan]),  # the meter's last interval: not there yet
        "b1": np.array([300.0, 280.0, nan, nan]),  # b1 reports, then nothing is written
        "b2": np.array([nan, nan, nan, nan]),  # b2 is silent throughout
    }
    coverage = {s: np.where(np.isnan(v), 0.0, 1.0) for s, v in kw.items()}
    # each device's baseline from the event's start: 2 event intervals, then past the end
    devices = SeriesBaselines(
        start=T0, baseline_kw={"b1": [250.0] * 18, "b2": [150.0, 150.0, 140.0, 130.0, 120.0, 110.0]}
    )
    measured = measure(window, r.enterprises, kw, coverage, devices)
    b = measured.owner_measured_kw["b"]
    assert b[:2].tolist() == [300.0 + 140.0, 280.0 + 130.0]  # b2 at its baseline then
    assert np.isnan(b[2:]).all()  # nothing of b written yet: not measured, never 0 kW
    assert measured.silent.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert measured.owner_measured_kw["a"].tolist()[:3] == [700.0, 650.0, 600.0]
    assert measured.measured_kw[:2].tolist() == [1140.0, 1060.0]
    assert np.isnan(measured.measured_kw[2:]).all()
    assert measured.coverage[:3].tolist() == [1.0, 1.0, 1.0] and np.isnan(measured.coverage[3])
    # without the devices' baselines a silent device leaves its interval unmeasured
    unknown = measure(window, r.enterprises, kw, coverage, None)
    assert np.isnan(unknown.owner_measured_kw["b"]).all() and unknown.silent.sum() == 0
