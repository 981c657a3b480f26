"""Typed keys for what the app and each request carry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from vpp.auth import Principal, TokenStore
from vpp.metrics import Metrics
from vpp.settings import Settings
from vpp.state import State

__all__ = [
    "COMPONENTS",
    "METRICS",
    "PRINCIPAL",
    "ROUTE_TABLE",
    "SETTINGS",
    "STATE",
    "TOKENS",
    "principal",
]

SETTINGS = web.AppKey("vpp.settings", Settings)
STATE = web.AppKey("vpp.state", State)
TOKENS = web.AppKey("vpp.tokens", TokenStore)
METRICS = web.AppKey("vpp.metrics", Metrics)
#: (method, route template) -> Route; filled by ``vpp.api.routing.add_routes``.
ROUTE_TABLE: web.AppKey[dict[tuple[str, str], Any]] = web.AppKey("vpp.routes")
PRINCIPAL = web.RequestKey("vpp.principal", Principal)
#: Background components that report their health in ``/readyz`` (name -> summary),
#: e.g. the OpenADR VEN; filled by the runtime.
COMPONENTS: web.AppKey[dict[str, Callable[[], dict[str, Any]]]] = web.AppKey("vpp.components")


def principal(request: web.Request) -> Principal:
    """The authenticated principal of a request (set by the auth middleware)."""
    return request[PRINCIPAL]
