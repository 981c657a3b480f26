"""Typed keys for what the app and each request carry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from vpp.auth import Principal, TokenStore
from vpp.clock import Clock
from vpp.metrics import Metrics
from vpp.settings import Settings
from vpp.state import State

__all__ = [
    "CLOCK",
    "COMPONENTS",
    "METRICS",
    "PRINCIPAL",
    "ROUTE_TABLE",
    "SETTINGS",
    "STATE",
    "TOKENS",
    "principal",
    "service_now",
]

SETTINGS = web.AppKey("vpp.settings", Settings)
STATE = web.AppKey("vpp.state", State)
TOKENS = web.AppKey("vpp.tokens", TokenStore)
METRICS = web.AppKey("vpp.metrics", Metrics)
#: The clock the app and its control loops share (compressed in the demo).
CLOCK = web.AppKey("vpp.clock", Clock)
#: (method, route template) -> Route; filled by ``vpp.api.routing.add_routes``.
ROUTE_TABLE: web.AppKey[dict[tuple[str, str], Any]] = web.AppKey("vpp.routes")
PRINCIPAL = web.RequestKey("vpp.principal", Principal)
#: Background components that report their health in ``/readyz`` (name -> summary),
#: e.g. the OpenADR VEN; filled by the runtime.
COMPONENTS: web.AppKey[dict[str, Callable[[], dict[str, Any]]]] = web.AppKey("vpp.components")


def principal(request: web.Request) -> Principal:
    """The authenticated principal of a request (set by the auth middleware)."""
    return request[PRINCIPAL]


def service_now(request: web.Request) -> datetime:
    """The service clock's time for a request (`CLOCK`; real time on an app without one)."""
    clock = request.app.get(CLOCK)
    return clock.now() if clock is not None else datetime.now(UTC)
