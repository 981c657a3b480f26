"""Path and query parameters checked against what the route declares.

The OpenAPI document states a pattern for every path parameter (the id
pattern, or the route's own, ``Route.path_patterns``) and a schema for every
query parameter (``Route.query``); this middleware applies exactly those, so
a request the document calls invalid is a 422 naming the parameter, and one
it calls valid is served. It runs after auth (401 and 403 come first) and
also answers 404 for a park that is not known, except on the routes that
create one (``Route.creates_park``).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from vpp.api.context import STATE
from vpp.api.routing import Handler, Query, route_of
from vpp.errors import FieldError, InvalidInput

__all__ = ["PARAMS", "params_middleware", "query"]

#: The validated query parameters of a request, name -> value (default when absent).
PARAMS: web.RequestKey[dict[str, Any]] = web.RequestKey("vpp.params")


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def _query_value(name: str, spec: Query, values: list[str]) -> Any:
    if not values:
        return spec.default
    if len(values) > 1:
        raise InvalidInput([FieldError(name, "given more than once", "repeated")])
    try:
        return _adapter(spec.type).validate_strings(values[0])
    except ValidationError as exc:
        message = exc.errors(include_url=False)[0]["msg"]
        raise InvalidInput([FieldError(name, message, "query")]) from exc


@web.middleware
async def params_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check path and query parameters; 404 for an unknown park.

    Raises:
        InvalidInput: a path parameter outside its pattern (the id pattern
            unless the route says otherwise, ``Route.path_patterns``), or a query
            parameter its schema refuses (named either way).
        NotFound: the ``{park}`` is not known and the route does not create it.
    """
    route = route_of(request)
    if route is None:
        return await handler(request)
    bad = [
        FieldError(name, f"must match {pattern}", "pattern")
        for name, value in request.match_info.items()
        if _compiled(pattern := route.path_pattern(name)).fullmatch(value) is None
    ]
    if bad:
        raise InvalidInput(bad)
    request[PARAMS] = {
        name: _query_value(name, spec, request.query.getall(name, []))
        for name, spec in route.query_params().items()
    }
    park = request.match_info.get("park")
    if park is not None and not route.creates_park:
        await request.app[STATE].get_park(park)  # NotFound for a park never made
    return await handler(request)


def query(request: web.Request) -> dict[str, Any]:
    """The request's validated query parameters (see ``Route.query``)."""
    return request[PARAMS]
