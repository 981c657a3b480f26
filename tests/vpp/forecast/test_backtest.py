"""The day-ahead backtest, the references and the scores."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time

import numpy as np
import pytest

from tests.vpp.forecast.support import TZ, context, synthetic_window
from vpp.forecast.backtest import QUANTILES, backtest, score
from vpp.forecast.inputs import ForecastContext, HistoryWindow
from vpp.forecast.kinds import FORECASTERS
from vpp.forecast.model import SeriesForecast
from vpp.forecast.similar import persistence, similar_day
from vpp.forecast.window import mask_after

TODAY = date(2026, 11, 24)


def _ctx(issued_at: datetime, targets: Sequence[date]) -> ForecastContext:
    return context(issued_at, targets)


def test_score_is_hand_checked() -> None:
    s = score(np.array([1.0, 2.0, np.nan]), np.array([2.0, 2.0, 5.0]))
    assert (s.nmae, s.bias, s.intervals) == (0.25, -0.25, 2)
    assert np.isnan(score(np.array([1.0]), np.array([0.0])).nmae)


def test_the_forecast_beats_persistence_and_matches_similar_days_on_a_weekly_shape() -> None:
    window, _ = synthetic_window(TODAY, days=40, series=8, issue_at=time(0))
    members = ["s01", "s03", "s05", "s07"]  # the meters
    summary = backtest(
        window, _ctx, FORECASTERS, 7, time(9), tz=TZ, park="synthetic", park_members=members,
        training_days=30, now=datetime(2026, 11, 24, tzinfo=TZ),
    )  # fmt: skip

    assert (summary.first_day, summary.last_day) == (date(2026, 11, 17), date(2026, 11, 23))
    assert summary.issue_time == "09:00"
    assert set(summary.scores) == {"flexible_load", "meter", "park"}
    for group, scores in summary.scores.items():
        assert set(scores) == {"forecast", "persistence", "similar_day"}
        # every method on the same intervals: 7 days x 96 slots x the group's series
        counts = {s.intervals for s in scores.values()}
        assert counts == {7 * 96 * (1 if group == "park" else 4)}
        # Monday after Sunday, Saturday after Friday: persistence is far off
        assert scores["forecast"].nmae < 0.5 * scores["persistence"].nmae
        assert scores["forecast"].nmae < 0.05
    assert set(summary.error_quantiles["park"]) == {f"{q:g}" for q in QUANTILES}
    q = summary.error_quantiles["flexible_load"]
    assert q["0.05"] < q["0.5"] < q["0.95"]
    assert "park: the sum of s01, s03, s05, s07" in summary.note


def test_each_day_is_forecast_from_what_was_known_at_the_issue_time() -> None:
    full, _ = synthetic_window(TODAY, days=10, series=1, issue_at=time(0))
    seen: list[tuple[date, datetime, int]] = []

    def spy(
        window: HistoryWindow, rows: Sequence[int], ctx: ForecastContext
    ) -> dict[str, SeriesForecast]:
        # the issue day is known up to 09:00 (36 slots), nothing after it
        seen.append((window.days[-1], ctx.issued_at, int(np.isfinite(window.kw[0, -1]).sum())))
        return {"s00": SeriesForecast("s00", "flexible_load", "spy", np.zeros(96))}

    backtest(full, _ctx, {"flexible_load": spy}, 2, time(9), tz=TZ, park="p")
    assert seen == [
        (date(2026, 11, 21), datetime(2026, 11, 21, 9, tzinfo=TZ), 36),
        (date(2026, 11, 22), datetime(2026, 11, 22, 9, tzinfo=TZ), 36),
    ]


def test_a_park_member_without_a_forecaster_leaves_the_park_unscored() -> None:
    window, _ = synthetic_window(TODAY, days=10, series=2, issue_at=time(0))
    only_loads = {"flexible_load": FORECASTERS["flexible_load"]}
    summary = backtest(
        window, _ctx, only_loads, 2, time(9), tz=TZ, park="p", park_members=["s00", "s01"]
    )
    assert set(summary.scores) == {"flexible_load"}
    assert "park: not scored (s01 have no forecaster)" in summary.note


def test_too_short_a_history_is_refused() -> None:
    window, _ = synthetic_window(TODAY, days=2, series=1)
    with pytest.raises(ValueError, match="too short"):
        backtest(window, _ctx, FORECASTERS, 5, time(9), tz=TZ, park="p")


def test_persistence_repeats_the_last_complete_day_and_similar_day_averages_its_type() -> None:
    window, _ = synthetic_window(TODAY, days=14, series=1, noise=0.0)
    issued = datetime.combine(TODAY, time(9), tzinfo=TZ)
    ctx = context(issued, [TODAY, date(2026, 11, 28)])  # Tuesday, Saturday
    masked = mask_after(window, issued, TZ)
    p = persistence(masked, [0], ctx)["s00"]
    assert np.array_equal(p.kw[:96], window.kw[0, -2])  # Monday
    assert np.array_equal(p.kw[96:], window.kw[0, -2])
    s = similar_day(masked, [0], ctx)["s00"]
    assert s.method == "similar_day"
    assert np.allclose(s.kw[:96], window.kw[0, -2])  # a working day like Monday
    assert np.allclose(s.kw[96:], window.kw[0, -3])  # a rest day like Sunday
    assert "2026-11-28: mean of the 4 most recent non-working days" in s.note
