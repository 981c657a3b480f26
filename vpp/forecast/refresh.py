"""Issuing a park's forecast and its backtest from the stored history, now and on a schedule.

`issue_forecast` reads the park and its assets, the history of every series
whose kind has a forecaster (`vpp.forecast.kinds.FORECASTERS`) over the
``[forecast] training_days`` before today and today up to now
(`vpp.forecast.window.read_window`), runs the forecasters over
``horizon_days`` local days from today's midnight and stores the
`ParkForecast` as the park's latest (`ForecastStore.put`). `run_backtest`
replays the day-ahead forecast over the stored history
(`vpp.forecast.backtest.backtest`) and stores its summary. The model's work
runs in a worker thread, so the event loop (the control loops) keeps running.

`ForecastRefresher` is the background service that re-issues every park's
forecast every ``[forecast] refresh_s`` and its backtest once a day (the
bids' margin reads the backtest's error quantiles).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from adapters.lifecycle import BackgroundService
from vpp.clock import Clock
from vpp.errors import VppError
from vpp.forecast.backtest import backtest
from vpp.forecast.inputs import FloatArray, ForecastContext, Forecaster, HistoryWindow
from vpp.forecast.kinds import FORECASTERS, SessionForecaster, by_forecaster
from vpp.forecast.model import BacktestSummary, ExpectedSession, ParkForecast, SeriesForecast
from vpp.forecast.store import ForecastStore
from vpp.forecast.window import read_window
from vpp.history.grid import locate
from vpp.history.store import HistoryStore
from vpp.model import Asset, Meter, Park, revenue_meters
from vpp.settings import ForecastSettings
from vpp.state import State

__all__ = [
    "ContextParts",
    "ExtraContext",
    "ForecastRefresher",
    "forecast_window",
    "issue_forecast",
    "park_total_members",
    "run_backtest",
    "run_forecasters",
]

log = logging.getLogger("vpp.forecast")


@dataclass(frozen=True)
class ContextParts:
    """What a park's forecasters read besides the history (`ForecastContext` fields).

    Attributes:
        irradiance: local day -> uploaded irradiance per slot, W/m² (NaN = not given).
        extra: forecaster-specific inputs by name (``sessions``, ...).
    """

    irradiance: Mapping[date, FloatArray] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


#: Reads the extra inputs of a park's forecast over some local days (first, last):
#: the PV helper's irradiance, the charger helper's sessions. None: nothing extra.
ExtraContext = Callable[[Park, date, date], Awaitable[ContextParts]]


def park_total_members(assets: Sequence[Asset], forecasters: Mapping[str, Forecaster]) -> list[str]:
    """The series the backtest sums into the park's total: its revenue meters, else its devices.

    Every enterprise's revenue meter (`vpp.model.revenue_meters`) when the
    park has any (what the grid company settles; an enterprise without one is
    then not in the total); with none, every device whose kind has a
    forecaster. Never a meter and the devices behind it both.
    """
    meters = sorted(m.id for m in revenue_meters(assets).values())
    if meters:
        return meters
    return sorted(a.id for a in assets if not isinstance(a, Meter) and a.kind in forecasters)


def _series(assets: Sequence[Asset], forecasters: Mapping[str, Forecaster]) -> list[Asset]:
    """The assets (meters included) whose kind has a forecaster, by id."""
    return sorted((a for a in assets if a.kind in forecasters), key=lambda a: a.id)


async def forecast_window(
    state: State,
    history: HistoryStore,
    park_id: str,
    now: datetime,
    days: int,
    forecasters: Mapping[str, Forecaster],
) -> tuple[Park, list[Asset], HistoryWindow]:
    """The park, its assets and its forecast series' history: ``days`` days, then today to ``now``.

    Raises:
        NotFound: no such park.
        StateUnavailable: Redis did not answer.
    """
    park = await state.get_park(park_id)
    assets = await state.list_assets(park_id)
    tz = ZoneInfo(park.timezone)
    today = locate(now, tz)[0]
    span = [today - timedelta(days=k) for k in range(days, -1, -1)]
    chosen = _series(assets, forecasters)
    window = await read_window(
        history, park_id, [a.id for a in chosen], [a.kind for a in chosen], span, now, tz
    )
    return park, assets, window


def run_forecasters(
    window: HistoryWindow, ctx: ForecastContext, forecasters: Mapping[str, Forecaster]
) -> tuple[dict[str, SeriesForecast], dict[str, tuple[ExpectedSession, ...]]]:
    """Every series' forecast by its kind's forecaster, and the chargers' expected sessions.

    Kinds sharing a forecaster go to it in one call (`vpp.forecast.kinds.by_forecaster`);
    a forecaster whose kinds have no series is not called.
    """
    curves: dict[str, SeriesForecast] = {}
    sessions: dict[str, tuple[ExpectedSession, ...]] = {}
    for forecaster, rows in by_forecaster(window.kinds, forecasters):
        curves.update(forecaster(window, rows, ctx))
        if isinstance(forecaster, SessionForecaster):
            found = forecaster.sessions(window, rows, ctx)
            sessions.update({k: tuple(v) for k, v in found.items()})
    return curves, sessions


def _context(
    park: Park, assets: Sequence[Asset], issued_at: datetime, targets: Sequence[date],
    parts: ContextParts, settings: ForecastSettings,
) -> ForecastContext:  # fmt: skip
    return ForecastContext(
        park=park,
        assets={a.id: a for a in assets},
        issued_at=issued_at,
        targets=tuple(targets),
        irradiance=parts.irradiance,
        extra={"min_history_days": settings.min_history_days, **parts.extra},
    )


async def issue_forecast(
    state: State,
    history: HistoryStore,
    store: ForecastStore,
    park_id: str,
    now: datetime,
    settings: ForecastSettings,
    forecasters: Mapping[str, Forecaster] = FORECASTERS,
    extra_context: ExtraContext | None = None,
) -> ParkForecast:
    """Forecast every series of the park from its history, store it as the latest, return it.

    Args:
        state: the service's Redis repository (the park, its assets).
        history: the interval history.
        store: where forecasts are kept.
        park_id: the park.
        now: the issue time (aware).
        settings: ``[forecast]``: ``training_days``, ``horizon_days``, ``min_history_days``.
        forecasters: kind -> forecaster; series of other kinds are left out.
        extra_context: reads the inputs besides the history (irradiance, sessions).

    Returns:
        The `ParkForecast`: ``horizon_days`` days from today's local midnight.

    Raises:
        NotFound: no such park.
        StateUnavailable: Redis did not answer.
    """
    park, assets, window = await forecast_window(
        state, history, park_id, now, settings.training_days, forecasters
    )
    today = window.days[-1]
    targets = [today + timedelta(days=k) for k in range(settings.horizon_days)]
    parts = (
        await extra_context(park, window.days[0], targets[-1])
        if extra_context is not None
        else ContextParts()
    )
    ctx = _context(park, assets, now, targets, parts, settings)
    curves, sessions = await asyncio.to_thread(run_forecasters, window, ctx, forecasters)
    forecast = ParkForecast(
        park=park_id,
        issued_at=now.astimezone(UTC),
        timezone=park.timezone,
        start_day=today,
        days=settings.horizon_days,
        series=curves,
        sessions=sessions,
    )
    await store.put(forecast)
    log.info(
        "park %s: forecast issued for %d series over %d days (%s)",
        park_id, len(curves), settings.horizon_days,
        ", ".join(f"{m} {n}" for m, n in _count_methods(curves).items()),
    )  # fmt: skip
    return forecast


def _count_methods(curves: Mapping[str, SeriesForecast]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for curve in curves.values():
        counts[curve.method] = counts.get(curve.method, 0) + 1
    return counts


async def run_backtest(
    state: State,
    history: HistoryStore,
    store: ForecastStore,
    park_id: str,
    now: datetime,
    settings: ForecastSettings,
    days: int,
    forecasters: Mapping[str, Forecaster] = FORECASTERS,
    extra_context: ExtraContext | None = None,
) -> BacktestSummary:
    """Backtest the day-ahead forecast over the park's last ``days`` complete days; store it.

    Reads ``days + training_days + 1`` days of history; each day is forecast at
    ``[forecast] issue_time`` the day before (`vpp.forecast.backtest.backtest`).

    Raises:
        NotFound: no such park.
        ValueError: ``days`` below 1, or too little history (3 complete days at
            least, and something recorded on the days scored).
        StateUnavailable: Redis did not answer.
    """
    park, assets, window = await forecast_window(
        state, history, park_id, now, days + settings.training_days + 1, forecasters
    )
    tz = ZoneInfo(park.timezone)
    parts = (
        await extra_context(park, window.days[0], window.days[-1])
        if extra_context is not None
        else ContextParts()
    )

    def ctx_factory(issued_at: datetime, targets: Sequence[date]) -> ForecastContext:
        return _context(park, assets, issued_at, targets, parts, settings)

    members = park_total_members(assets, forecasters)
    summary = await asyncio.to_thread(
        backtest, window, ctx_factory, forecasters, days, time.fromisoformat(settings.issue_time),
        tz=tz, park=park_id, park_members=members, training_days=settings.training_days, now=now,
    )  # fmt: skip
    await store.put_backtest(summary)
    return summary


class ForecastRefresher(BackgroundService):
    """Re-issues every park's forecast every ``refresh_s``, and its backtest once a day.

    Use as ``async with ForecastRefresher(...):``; the work is the task
    ``forecast-refresh``. `refresh` does one round at once (also without
    entering, in tests). A park whose refresh fails is logged and keeps its
    last forecast; the others go on.

    Args:
        state: the service's Redis repository.
        history: the interval history.
        store: where forecasts and backtests are kept.
        parks: returns the ids of the parks to refresh (e.g. ``State.list_parks``).
        settings: ``[forecast]`` (``refresh_s`` between rounds, real seconds).
        clock: the service clock, for "now" (wall time when None).
        forecasters: kind -> forecaster.
        extra_context: reads the inputs besides the history.
        backtest_days: days a backtest scores (None: no backtest).
        backtest_every_s: seconds of the service clock between a park's backtests.

    Raises:
        ValueError: ``refresh_s`` not above 0.
    """

    _task_name = "forecast-refresh"

    def __init__(
        self,
        state: State,
        history: HistoryStore,
        store: ForecastStore,
        parks: Callable[[], Awaitable[list[str]]],
        settings: ForecastSettings,
        *,
        clock: Clock | None = None,
        forecasters: Mapping[str, Forecaster] = FORECASTERS,
        extra_context: ExtraContext | None = None,
        backtest_days: int | None = 14,
        backtest_every_s: float = 86400.0,
    ) -> None:
        if settings.refresh_s <= 0:
            raise ValueError("refresh_s must be above 0")
        self.state, self.history, self.store = state, history, store
        self._parks = parks
        self.settings = settings
        self._clock = clock
        self.forecasters = forecasters
        self.extra_context = extra_context
        self.backtest_days = backtest_days
        self.backtest_every_s = backtest_every_s

    def _now(self) -> datetime:
        return self._clock.now() if self._clock is not None else datetime.now(UTC)

    async def refresh(self) -> dict[str, ParkForecast]:
        """One round over every park; the forecasts issued, by park (failed parks left out)."""
        done: dict[str, ParkForecast] = {}
        try:
            parks = await self._parks()
        except VppError as exc:
            log.warning("forecast: cannot list the parks: %s", exc)
            return done
        for park in parks:
            try:
                now = self._now()
                done[park] = await issue_forecast(
                    self.state, self.history, self.store, park, now, self.settings,
                    self.forecasters, self.extra_context,
                )  # fmt: skip
                await self._backtest_if_due(park, now)
            except Exception:
                # One park's fault (Redis, a bug, a corrupt record) must not end the
                # refresh of every park: it is logged with its traceback.
                log.exception("forecast of park %s not refreshed", park)
        return done

    async def _backtest_if_due(self, park: str, now: datetime) -> None:
        if self.backtest_days is None:
            return
        last = await self.store.backtest(park)
        if last is not None and (now - last.computed_at).total_seconds() < self.backtest_every_s:
            return
        try:
            await run_backtest(
                self.state, self.history, self.store, park, now, self.settings,
                self.backtest_days, self.forecasters, self.extra_context,
            )  # fmt: skip
        except ValueError as exc:  # too little history yet
            log.info("park %s: no backtest yet: %s", park, exc)

    async def _run(self) -> None:
        while not self._closing:
            await self.refresh()
            await self._wait_closing(self.settings.refresh_s)
