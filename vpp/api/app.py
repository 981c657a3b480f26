"""The app factory: one aiohttp app with its middlewares, stores and every API route."""

from __future__ import annotations

from aiohttp import web

from vpp.api import (
    assets,
    bids,
    events,
    flexibility,
    forecast,
    history,
    irradiance,
    ledger,
    meters,
    ops,
    parks,
)
from vpp.api.context import CLOCK, METRICS, ROUTE_TABLE, SETTINGS, STATE, TOKENS
from vpp.api.middleware import auth_middleware, metrics_middleware, problem_middleware
from vpp.api.params import params_middleware
from vpp.api.routing import add_routes
from vpp.auth import TokenStore
from vpp.bids import BidStore
from vpp.clock import Clock
from vpp.events import EventStore
from vpp.forecast.context import park_inputs
from vpp.forecast.store import ForecastStore
from vpp.history.store import HistoryStore
from vpp.ledger.book import LedgerBook
from vpp.ledger.entries import EntryStore
from vpp.market import load_profiles
from vpp.metrics import Metrics
from vpp.settings import Settings
from vpp.state import State

__all__ = ["create_app"]


def create_app(
    settings: Settings,
    state: State,
    *,
    metrics: Metrics | None = None,
    tokens: TokenStore | None = None,
    clock: Clock | None = None,
) -> web.Application:
    """Build the HTTP app: every API module's routes (parks to forecasts, ledger and ops).

    The caller owns ``state`` (opens and closes it). Every route of the API
    modules is registered here through ``vpp.api.add_routes``, so its roles
    are enforced and it appears in ``/openapi.json``; a caller may add more
    the same way before the app starts.

    Args:
        settings: the service settings.
        state: the Redis repository.
        metrics: the metrics to record into; a fresh registry when omitted.
        tokens: the token store; one over ``state`` when omitted.
        clock: the clock events are timed by (compressed in the demo); real time when omitted.
    """
    metrics = metrics if metrics is not None else Metrics()
    if state.on_error is None:
        state.on_error = metrics.redis_failed
    app = web.Application(
        middlewares=[metrics_middleware, problem_middleware, auth_middleware, params_middleware],
        client_max_size=1 << 20,
    )
    app[SETTINGS] = settings
    app[STATE] = state
    app[METRICS] = metrics
    app[TOKENS] = tokens if tokens is not None else TokenStore(state)
    app[ROUTE_TABLE] = {}
    app[events.EVENTS] = EventStore(state)
    app[CLOCK] = clock if clock is not None else Clock()
    app[bids.BIDS] = BidStore(state)
    market = settings.market
    app[bids.PROFILES] = load_profiles(market.profiles_file, market.default_profile)
    recorded = HistoryStore(state, retention_days=settings.history.retention_days)
    entered = EntryStore(state)
    app[history.HISTORY] = recorded
    app[ledger.ENTRIES] = entered
    app[ledger.LEDGER] = LedgerBook(state, recorded, entered, settings.ledger)
    app[forecast.FORECASTS] = ForecastStore(state)
    app[forecast.EXTRA_CONTEXT] = park_inputs(state, retention_days=settings.history.retention_days)
    modules = (
        ops,
        parks,
        assets,
        meters,
        bids,
        flexibility,
        events,
        history,
        irradiance,
        forecast,
        ledger,
    )  # /openapi.json order
    add_routes(app, [route for module in modules for route in module.ROUTES])
    return app
