"""The day-ahead backtest: how the service's forecast would have done over the stored history.

For each of the last ``days`` complete days ``D`` of the history, the
forecasters are run as the service would have run them at ``issue_time``
(park-local) on ``D - 1``: the history is cut to the training window ending
on ``D - 1`` and masked after the issue time (`vpp.forecast.window.mask_after`),
so nothing of ``D - 1`` after the issue time, nor of ``D``, is seen. Each
day's forecast of ``D`` is scored against what was recorded on ``D``, beside
the two references (`vpp.forecast.kinds.REFERENCES`): ``persistence`` (the
last complete day repeated: ``D - 2``, what is complete at the issue time)
and ``similar_day`` (the mean of the recent similar days).

Scores (`vpp.forecast.model.ForecastScore`) per group: each asset kind that
has a forecaster, and ``park``, the park's total (the members the caller
gives: its revenue meters when it has any, else its devices,
`vpp.forecast.refresh.park_total_members`). All
methods of a group are scored on the same intervals (those where the actual
and every method's forecast are known), so their figures compare:

* nMAE = Σ|f − a| / Σ|a|, bias = Σ(f − a) / Σ|a| (positive: too high),
  summed over the group's series and intervals (a common definition of the
  normalised MAE for load forecasts, e.g. Hong & Fan, "Probabilistic
  electric load forecasting: A tutorial review", IJF 2016);
* error quantiles of the service's forecast (0.05 .. 0.95): the normalised
  error (a − f) / (the series' mean |a| over the day) of every scored
  interval, pooled over the group: what a bid's margin is taken from
  (`vpp.forecast.model.BacktestSummary.error_at`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from vpp.forecast.inputs import FloatArray, ForecastContext, Forecaster, HistoryWindow
from vpp.forecast.kinds import REFERENCES, by_forecaster
from vpp.forecast.model import BacktestSummary, ForecastScore
from vpp.forecast.window import mask_after, window_rows
from vpp.history.grid import SLOTS_PER_DAY

__all__ = ["QUANTILES", "ContextFactory", "backtest", "score"]

#: The quantiles of the normalised error a backtest keeps.
QUANTILES: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
#: The name the service's own forecast is scored under.
FORECAST = "forecast"

#: Makes the context of a forecast issued at a time for some target days.
ContextFactory = Callable[[datetime, Sequence[date]], ForecastContext]


def score(forecast: FloatArray, actual: FloatArray) -> ForecastScore:
    """nMAE, bias and count over the intervals where both are known (any equal shapes).

    nMAE and bias are NaN when nothing is scored or Σ|a| is 0.
    """
    both = np.isfinite(forecast) & np.isfinite(actual)
    f, a = forecast[both], actual[both]
    scale = float(np.abs(a).sum())
    if not both.any() or scale <= 0:
        return ForecastScore(float("nan"), float("nan"), int(both.sum()))
    return ForecastScore(
        float(np.abs(f - a).sum() / scale), float((f - a).sum() / scale), int(both.sum())
    )


def _quantiles(forecast: FloatArray, actual: FloatArray) -> dict[str, float]:
    """Quantiles of (a − f) / (mean |a| of the series-day); arrays ``(series, days, 96)``."""
    known = np.isfinite(actual)
    count = known.sum(axis=2)
    total = np.where(known, np.abs(actual), 0.0).sum(axis=2)
    # a series-day with nothing recorded has no level (NaN), and scores nothing
    level = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        errors = (actual - forecast) / level[:, :, None]
    values = errors[np.isfinite(errors)]
    if values.size == 0:
        return {}
    return {
        f"{q:g}": float(v) for q, v in zip(QUANTILES, np.quantile(values, QUANTILES), strict=True)
    }


def backtest(
    window_full: HistoryWindow,
    ctx_factory: ContextFactory,
    forecasters: Mapping[str, Forecaster],
    days: int,
    issue_time: time,
    *,
    tz: ZoneInfo,
    park: str,
    park_members: Sequence[str] = (),
    training_days: int = 56,
    references: Mapping[str, Forecaster] = REFERENCES,
    now: datetime | None = None,
) -> BacktestSummary:
    """Replay the day-ahead forecast over the last ``days`` complete days of ``window_full``.

    Args:
        window_full: the stored history, its last day today (not scored,
            not complete); at least two days before a scored day are needed.
        ctx_factory: the context of a forecast issued at a time for target days.
        forecasters: kind -> forecaster (the service's, `vpp.forecast.kinds.FORECASTERS`);
            series of other kinds are not scored.
        days: complete days to score (the most recent ones), >= 1.
        issue_time: park-local time of the day before at which each day is forecast.
        tz: the park's time zone.
        park: the park id.
        park_members: the series summed into the park's total (see the module).
        training_days: days of history before each issue day the forecasters get.
        references: name -> reference forecaster.
        now: when the backtest runs (the summary's ``computed_at``; wall time when None).

    Returns:
        The `BacktestSummary` (scores per group and method, the forecast's error quantiles).

    Raises:
        ValueError: ``days`` below 1, a window too short for one scored day, or
            nothing recorded on the scored days.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    complete = list(window_full.days[:-1])
    scored = complete[-days:]
    first_index = complete.index(scored[0])
    if first_index < 2:
        scored = complete[2:]
        if not scored:
            raise ValueError("the history is too short for a backtest (3 complete days at least)")
    rows = [i for i, k in enumerate(window_full.kinds) if k in forecasters]
    methods = [FORECAST, *references]
    index = {d: j for j, d in enumerate(window_full.days)}
    out = {m: np.full((len(rows), len(scored), SLOTS_PER_DAY), np.nan) for m in methods}
    for n, day in enumerate(scored):
        j = index[day]
        issue_day = window_full.days[j - 1]
        issued_at = datetime.combine(issue_day, issue_time, tzinfo=tz)
        span = window_full.days[max(0, j - 1 - training_days) : j]
        masked = mask_after(window_rows(window_full, span), issued_at, tz)
        ctx = ctx_factory(issued_at, [day])
        made: dict[str, dict[str, FloatArray]] = {m: {} for m in methods}
        for forecaster, its_rows in by_forecaster(window_full.kinds, forecasters):
            made[FORECAST].update({s: f.kw for s, f in forecaster(masked, its_rows, ctx).items()})
        for name, reference in references.items():
            made[name].update({s: f.kw for s, f in reference(masked, rows, ctx).items()})
        for m in methods:
            for r, i in enumerate(rows):
                kw = made[m].get(window_full.series[i])
                if kw is not None:
                    out[m][r, n] = kw[:SLOTS_PER_DAY]
    actual = window_full.kw[rows][:, [index[d] for d in scored]]
    if not np.isfinite(actual).any():
        raise ValueError(f"no history to score: nothing recorded on {scored[0]}..{scored[-1]}")
    common = np.isfinite(actual)
    for m in methods:
        common &= np.isfinite(out[m])

    def masked_by(a: FloatArray, keep: NDArray[np.bool_]) -> FloatArray:
        return np.asarray(np.where(keep, a, np.nan), dtype=np.float64)

    kinds = [window_full.kinds[i] for i in rows]
    groups = {kind: [r for r, k in enumerate(kinds) if k == kind] for kind in dict.fromkeys(kinds)}
    scores: dict[str, dict[str, ForecastScore]] = {}
    quantiles: dict[str, dict[str, float]] = {}
    for group, members in groups.items():
        keep = common[members]
        a = masked_by(actual[members], keep)
        scores[group] = {m: score(masked_by(out[m][members], keep), a) for m in methods}
        quantiles[group] = _quantiles(masked_by(out[FORECAST][members], keep), a)
    position = {window_full.series[i]: r for r, i in enumerate(rows)}
    inside = [position[s] for s in park_members if s in position]
    left_out = [s for s in park_members if s not in position]
    if inside and not left_out:
        keep = np.asarray(common[inside].all(axis=0), dtype=bool)[None]
        a = masked_by(actual[inside].sum(axis=0)[None], keep)
        scores["park"] = {
            m: score(masked_by(out[m][inside].sum(axis=0)[None], keep), a) for m in methods
        }
        quantiles["park"] = _quantiles(masked_by(out[FORECAST][inside].sum(axis=0)[None], keep), a)
    park_note = (
        f"park: the sum of {', '.join(window_full.series[rows[r]] for r in inside)}"
        if inside and not left_out
        else "park: not scored"
        + (f" ({', '.join(left_out)} have no forecaster)" if left_out else " (no members)")
    )
    with_data = int(np.sum(common.any(axis=(0, 2))))
    scored_days = f"{len(scored)} day" + ("s" if len(scored) != 1 else "")
    if with_data < len(scored):
        scored_days += f", {with_data} of them with intervals every method could score"
    note = (
        f"day-ahead: each of {scored[0]}..{scored[-1]} ({scored_days}) forecast at "
        f"{issue_time:%H:%M} the day before, the history masked after that, "
        f"{training_days} days of training history at most; persistence = the last complete "
        f"day at the issue time (two days before); every method scored on the same intervals "
        f"(actual and all forecasts known); {park_note}"
    )
    return BacktestSummary(
        park=park,
        computed_at=(now or datetime.now(UTC)).astimezone(UTC),
        first_day=scored[0],
        last_day=scored[-1],
        issue_time=f"{issue_time:%H:%M}",
        scores=scores,
        error_quantiles=quantiles,
        note=note,
    )
