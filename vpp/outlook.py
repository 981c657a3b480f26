"""What a flexibility view knows beyond the live state, read from the stores.

`load_outlook` gathers, for one park and one grid, the park's latest
forecast (`vpp.forecast.ForecastStore.latest`; issued on the spot when the
park has none yet, `vpp.forecast.refresh.issue_forecast`), whether the grid is a later
window (`is_later`), the availability history of the devices that are silent
now (`availability`, from `vpp.history.HistoryStore`) and, for a bid, the
forecast-error margin from the latest backtest (`margin_from_backtest`).
`vpp.flex.build_view` takes the result as its ``outlook``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

import dispatch as dx
from vpp.flex import Margin, Outlook
from vpp.forecast import BacktestSummary, ForecastStore
from vpp.forecast.context import park_inputs
from vpp.forecast.kinds import FORECASTERS
from vpp.forecast.refresh import issue_forecast
from vpp.history.store import HistoryStore
from vpp.model import Asset, LiveState, Meter
from vpp.settings import Settings
from vpp.state import State

__all__ = [
    "MARGIN_KINDS",
    "MarginSource",
    "availability",
    "is_later",
    "load_outlook",
    "margin_from_backtest",
]

#: The kinds whose forecast error a bid's margin covers (`vpp.flex.Margin`).
MARGIN_KINDS = ("flexible_load", "pv")


def is_later(start: datetime, now: datetime, step: timedelta, live_ttl_s: float) -> bool:
    """Whether a window starting at ``start`` lies beyond the live state's relevance.

    The service's rule: a live reading describes the interval it falls in and
    lives ``live_ttl_s`` (``[redis] live_ttl_s``); a window that starts at or
    after the end of the current interval plus that TTL is *later* (a device
    silent now may well be back by then), one that starts before it is *now*.
    The current interval is ``now`` floored to ``step`` on the epoch (whole
    minutes; the park's grids are aligned the same way for whole-hour offsets).
    """
    seconds = step.total_seconds()
    current = now.timestamp() - now.timestamp() % seconds
    return start.timestamp() >= current + seconds + live_ttl_s


async def availability(
    history: HistoryStore, park: str, asset_ids: Sequence[str], now: datetime, days: int
) -> dict[str, float]:
    """Each asset's share of covered intervals over the ``days`` local days before today (0-1).

    Coverage is the interval history's covered fraction per slot
    (`vpp.history.store.DayArrays.coverage`: telemetry held or imported); a
    day with nothing stored counts as uncovered, so an asset enrolled since
    has a low share.

    Raises:
        StateUnavailable: Redis did not answer.
    """
    if not asset_ids or days < 1:
        return {}
    tz = await history.zone(park)
    today = now.astimezone(tz).date()
    span = [today - timedelta(days=d) for d in range(days, 0, -1)]
    block = await history.read_arrays(park, list(asset_ids), span)
    share = np.mean(block.coverage, axis=(1, 2))
    return {a: float(share[i]) for i, a in enumerate(asset_ids)}


@dataclass(frozen=True)
class MarginSource:
    """The margin a bid applies and where it came from.

    Attributes:
        quantile: ``[forecast] bid_quantile``.
        margin: the margin per kind (None: no backtest stored, or none of
            `MARGIN_KINDS` in it).
        backtest: the backtest it was taken from (None: none stored).
        note: what was used or why nothing was, in words.
    """

    quantile: float
    margin: Margin | None
    backtest: BacktestSummary | None
    note: str


def margin_from_backtest(summary: BacktestSummary | None, quantile: float) -> MarginSource:
    """The margin at ``quantile`` from a backtest's error distribution (`vpp.flex.Margin`)."""
    if summary is None:
        return MarginSource(quantile, None, None, "no backtest stored: no margin")
    errors: dict[str, tuple[float, float]] = {}
    for kind in MARGIN_KINDS:
        low, high = summary.error_at(kind, quantile), summary.error_at(kind, 1.0 - quantile)
        if low is not None and high is not None:
            errors[kind] = (low, high)
    if not errors:
        note = f"the backtest of {summary.computed_at.date()} holds no error of loads or PV"
        return MarginSource(quantile, None, summary, note + ": no margin")
    note = (
        f"forecast error at the {quantile:g} / {1 - quantile:g} quantiles of the backtest "
        f"{summary.first_day}..{summary.last_day}: loads shed from their {quantile:g} "
        f"quantile and take more from their {1 - quantile:g} quantile, PV is curtailed "
        f"from its {1 - quantile:g} quantile of power (less generation)"
    )
    return MarginSource(quantile, Margin(quantile, errors), summary, note)


async def load_outlook(
    state: State,
    park: str,
    assets: Sequence[Asset],
    live: Mapping[str, LiveState | None],
    grid: dx.TimeGrid,
    now: datetime,
    settings: Settings,
    *,
    with_margin: bool = False,
) -> tuple[Outlook, MarginSource | None]:
    """The outlook of ``park`` on ``grid`` as of ``now`` (and the bid's margin when asked).

    Raises:
        StateUnavailable: Redis did not answer.
    """
    forecasts = ForecastStore(state)
    forecast = await forecasts.latest(park)
    fs = settings.forecast
    history = HistoryStore(state, retention_days=settings.history.retention_days)
    if forecast is None:
        # none issued yet (a park enrolled after the refresher's last round): issue it now,
        # so the first bid or view of a park is built on a forecast, not on a snapshot
        forecast = await issue_forecast(
            state, history, forecasts, park, now, fs, FORECASTERS,
            park_inputs(state, retention_days=settings.history.retention_days),
        )  # fmt: skip
    later = is_later(grid.start, now, grid.step, settings.redis.live_ttl_s)
    shares: dict[str, float] = {}
    if later:
        silent = [a.id for a in assets if not isinstance(a, Meter) and live.get(a.id) is None]
        shares = await availability(history, park, silent, now, fs.availability_days)
    source = None
    if with_margin:
        source = margin_from_backtest(await forecasts.backtest(park), fs.bid_quantile)
    outlook = Outlook(
        forecast=forecast,
        later=later,
        availability=shares,
        min_availability=fs.min_availability,
        availability_days=fs.availability_days,
        margin=source.margin if source is not None else None,
    )
    return outlook, source
