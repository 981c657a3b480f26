"""Request middlewares: metrics (outermost), problem+json errors, auth (innermost)."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from vpp.api.context import METRICS, PRINCIPAL, TOKENS
from vpp.api.problem import Problem, to_problem
from vpp.api.routing import Handler, route_of
from vpp.errors import VppError

__all__ = ["auth_middleware", "metrics_middleware", "problem_middleware"]

log = logging.getLogger("vpp.api")


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count each request and its latency by route template, method and status."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        request.app[METRICS].observe_request(
            route, request.method, status, time.perf_counter() - started
        )


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error as ``application/problem+json``."""
    try:
        return await handler(request)
    except (VppError, Problem) as exc:
        return to_problem(exc, request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return to_problem(exc, request)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return to_problem(Problem(500, "internal error"), request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate the bearer token and check the route's roles and the park.

    401 comes before 403, and 403 before anything the handler could answer
    (a 404 would tell a stranger which assets exist).
    """
    route = route_of(request)
    if route is None or route.roles is None:
        return await handler(request)
    who = await request.app[TOKENS].authenticate(request.headers.get("Authorization"))
    who.require(route.roles, request.match_info.get("park"))
    request[PRINCIPAL] = who
    return await handler(request)
