"""Operations routes: liveness, readiness, Prometheus metrics, the OpenAPI document."""

from __future__ import annotations

import logging

from aiohttp import web

from vpp.api.context import COMPONENTS, METRICS, ROUTE_TABLE, STATE
from vpp.api.io import json_response
from vpp.api.openapi import build_openapi
from vpp.api.routing import Route
from vpp.api.schemas import Health, Readiness
from vpp.errors import StateError
from vpp.metrics import EXPOSITION_CONTENT_TYPE
from vpp.redis_client import ping_nodes

__all__ = ["ROUTES"]

log = logging.getLogger("vpp.api")


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves HTTP."""
    return json_response(Health())


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 when Redis answers (every master of a cluster), 503 while it does not.

    Answers within about ``[redis] timeout_s`` even when Redis hangs
    (`vpp.redis_client.ping_nodes`); ``redis_nodes`` says which node failed.
    """
    nodes = await ping_nodes(request.app[STATE].redis)
    up = bool(nodes) and all(nodes.values())
    request.app[METRICS].redis_up.set(1 if up else 0)
    if not up:
        request.app[METRICS].redis_failed("ping")  # as State.ping counted it
        log.warning(
            "not ready: Redis nodes down: %s", sorted(n for n, ok in nodes.items() if not ok)
        )
    components = {name: check() for name, check in request.app.get(COMPONENTS, {}).items()}
    body = Readiness(ready=up, redis=up, redis_nodes=nodes, components=components)
    return json_response(body, status=200 if up else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition; the asset gauge is refreshed from Redis first."""
    state, registry = request.app[STATE], request.app[METRICS]
    try:
        counts = {park: await state.count_assets(park) for park in await state.list_parks()}
    except StateError:
        # Keep the last counts; vpp_redis_errors_total already says why.
        log.debug("asset gauge not refreshed: Redis unavailable")
    else:
        registry.set_assets(counts)
    resp = web.Response(body=registry.exposition())
    resp.headers["Content-Type"] = EXPOSITION_CONTENT_TYPE
    return resp


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of every registered route."""
    return web.json_response(build_openapi(request.app[ROUTE_TABLE].values()))


ROUTES = [
    Route("GET", "/healthz", healthz, "healthz", "Liveness", None, response=Health,
          tags=("ops",)),
    Route("GET", "/readyz", readyz, "readyz", "Readiness (every Redis node answers)", None,
          response=Readiness, errors=(503,), tags=("ops",)),
    Route("GET", "/metrics", metrics, "metrics", "Prometheus metrics", None,
          content_type="text/plain", tags=("ops",)),
    Route("GET", "/openapi.json", openapi, "openapi", "This OpenAPI document", None,
          tags=("ops",)),
]  # fmt: skip
