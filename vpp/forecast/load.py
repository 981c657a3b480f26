"""The load model: one LightGBM model over every load and meter of a park, direct multi-day.

`LoadModel` is the forecaster (`vpp.forecast.inputs.Forecaster`) of the kinds
``flexible_load`` and ``meter``. Per call it learns ONE global model over all
the series it is given (`vpp.forecast.features`: calendar, similar days,
yesterday, a week ago, today so far, the recent level; each series
normalised by its own recent level), from rows replayed at the live issue
time of day on every earlier day of the window, and forecasts each target
day directly by its lead (0 = the rest of the issue day, 1 = tomorrow, ...):
no forecast is fed back as an input.

Speed (goal: a refresh of 1,000 series within 5 s on 2 cores): the training
rows are a random sample (`max_rows`), the model is small (`trees` trees of
`leaves` leaves, 63 histogram bins), it runs on one thread (``threads``:
under load on this 2-core machine two OpenMP threads measured 2-5x slower
per tree than one) with a fixed seed and LightGBM's deterministic mode, so
the same history gives the same forecast.

While a series has fewer than ``min_history_days`` days with data (setting
``[forecast] min_history_days``, taken from ``ctx.extra["min_history_days"]``
when given), or no data over the last `LEVEL_DAYS` complete days, its
forecast is the similar-day profile (`vpp.forecast.similar.similar_day`,
method ``similar_day``) and its note says why. LightGBM: Ke et al., "LightGBM:
A Highly Efficient Gradient Boosting Decision Tree", NeurIPS 2017.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import lightgbm as lgb
import numpy as np

from vpp.forecast.features import FEATURES, LEVEL_DAYS, Features, sample_rows
from vpp.forecast.inputs import ForecastContext, HistoryWindow
from vpp.forecast.model import SeriesForecast
from vpp.forecast.similar import similar_day
from vpp.forecast.window import closed_slots
from vpp.history.grid import SLOTS_PER_DAY

__all__ = ["LoadModel"]


@dataclass(frozen=True)
class LoadModel:
    """The load and meter forecaster (see the module).

    Attributes:
        min_history_days: days with data a series needs for the model (else
            the similar-day profile); ``ctx.extra["min_history_days"]`` wins.
        max_rows: training rows sampled at most.
        trees: boosting rounds.
        leaves: leaves per tree.
        bins: histogram bins per feature (LightGBM's ``max_bin``; fewer = faster).
        learning_rate: LightGBM's shrinkage.
        objective: LightGBM's loss: ``l1`` fits the median, what nMAE scores.
        seed: the sampling's and LightGBM's seed.
        threads: LightGBM's ``num_threads``.
    """

    min_history_days: int = 14
    max_rows: int = 30_000
    trees: int = 60
    leaves: int = 31
    bins: int = 63
    learning_rate: float = 0.1
    objective: str = "l2"
    residual: bool = True
    seed: int = 0
    threads: int = 1

    def params(self) -> dict[str, Any]:
        """The LightGBM parameters used."""
        return {
            "objective": self.objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.leaves,
            "min_data_in_leaf": 40,
            "max_bin": self.bins,
            "num_threads": self.threads,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }

    def __call__(
        self, window: HistoryWindow, rows: Sequence[int], ctx: ForecastContext
    ) -> dict[str, SeriesForecast]:
        """Forecast ``rows`` of ``window`` over ``ctx.targets`` (``len(targets) * 96`` kW each)."""
        if not rows:
            return {}
        issue_day = window.days[-1]
        leads = [(t - issue_day).days for t in ctx.targets]
        if min(leads) < 0:
            raise ValueError(f"a target day before the issue day {issue_day}")
        need = int(ctx.extra.get("min_history_days", self.min_history_days))
        index = np.asarray(rows, dtype=np.int64)
        kw = window.kw[index]
        days_with_data = (window.coverage[index].sum(axis=2) > 0).sum(axis=1)
        q = closed_slots(issue_day, ctx.issued_at, ctx.tz)
        later = [issue_day + timedelta(days=k) for k in range(1, max(leads) + 1)]
        features = Features.build(kw, window.days, later, ctx.park.baseline.days, q)
        last = len(window.days) - 1
        level_now = features.level[:, last] if last >= 1 else np.full(len(index), np.nan)
        modelled = (days_with_data >= need) & np.isfinite(level_now) & (level_now > 1e-9)
        out: dict[str, SeriesForecast] = {}
        short = [int(row) for row, ok in zip(index, modelled, strict=True) if not ok]
        if short:
            fallback = similar_day(window, short, ctx)
            for r, row in enumerate(index):
                if modelled[r]:
                    continue
                name = window.series[row]
                why = (
                    f"{days_with_data[r]} days with data, fewer than the {need} the model needs"
                    if days_with_data[r] < need
                    else f"no data over the {LEVEL_DAYS} complete days before {issue_day}"
                )
                f = fallback[name]
                out[name] = SeriesForecast(name, f.kind, f.method, f.kw, f"{why}; {f.note}")
        if not modelled.any():
            return out
        rng = np.random.default_rng(self.seed)
        train = sample_rows(features, sorted(set(leads)), 1, self.max_rows, rng)
        if train[0].size < 100:
            return {**out, **similar_day(window, [int(r) for r in index[modelled]], ctx)}
        x, norm = features.rows(*train)
        y = window.kw[index][train[0], train[1] + train[2], train[3]] / norm - self._base(x)
        booster = lgb.train(
            self.params(),
            lgb.Dataset(x, label=y, feature_name=list(FEATURES), free_raw_data=True),
            num_boost_round=self.trees,
        )
        chosen = np.flatnonzero(modelled)
        predicted = self._predict(booster, features, chosen, last, leads)
        first_day, used = window.days[0], len(window.days)
        for k, c in enumerate(chosen.tolist()):
            name = window.series[index[c]]
            note = (
                f"LightGBM {lgb.__version__}: one model over {int(modelled.sum())} series, "
                f"{train[0].size} rows sampled from issue days {first_day}..{issue_day} "
                f"({used} days, {days_with_data[c]} with data for this series); "
                f"level {level_now[c]:.1f} kW (mean |kW| of the {LEVEL_DAYS} days before "
                f"{issue_day})"
            )
            out[name] = SeriesForecast(name, window.kinds[index[c]], "model", predicted[k], note)
        return {window.series[row]: out[window.series[row]] for row in index}

    def _predict(
        self,
        booster: lgb.Booster,
        features: Features,
        chosen: np.ndarray,
        last: int,
        leads: list[int],
    ) -> np.ndarray:
        """``(len(chosen), len(leads) * 96)`` kW for the target days of the live issue day."""
        n, width = len(chosen), len(leads) * SLOTS_PER_DAY
        series = np.repeat(chosen, width)
        lead = np.tile(np.repeat(np.asarray(leads, dtype=np.int64), SLOTS_PER_DAY), n)
        slot = np.tile(np.arange(SLOTS_PER_DAY, dtype=np.int64), n * len(leads))
        issue = np.full(series.size, last, dtype=np.int64)
        x, norm = features.rows(series.astype(np.int64), issue, lead, slot)
        predicted = (booster.predict(x, num_threads=self.threads) + self._base(x)) * norm
        return np.asarray(predicted, dtype=np.float64).reshape(n, width)

    def _base(self, x: np.ndarray) -> np.ndarray:
        """What the trees correct (``residual``): the similar-day mean, else the last, else 0."""
        if not self.residual:
            return np.zeros(len(x))
        mean, last = x[:, FEATURES.index("similar_mean")], x[:, FEATURES.index("similar_last")]
        return np.where(np.isfinite(mean), mean, np.where(np.isfinite(last), last, 0.0))
