"""The route table: one ``Route`` per operation, feeding the router, auth and OpenAPI.

A route declares who may call it (``roles``; None for the public ops
endpoints), its payload models and the type of each query parameter; the
auth middleware enforces the roles and the ``{park}`` path parameter, the
params middleware (``vpp.api.params``) checks path and query parameters
against what the route declares, and ``vpp.api.openapi`` documents exactly
that. Each API module lists its routes as ``ROUTES`` and
:func:`vpp.api.app.create_app` registers them with ``add_routes(app, [...])``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from vpp.api.context import ROUTE_TABLE
from vpp.auth import Role
from vpp.model import ID_PATTERN

__all__ = ["ALL_ROLES", "Handler", "Query", "Route", "add_routes", "route_of"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Every role (admin is implied everywhere anyway).
ALL_ROLES = frozenset(Role)


@dataclass(frozen=True)
class Query:
    """A query parameter.

    Attributes:
        description: one line for the OpenAPI document.
        type: the type of its value, as pydantic reads it from the query string
            (``Literal["json", "csv"]``, ``Annotated[int, Field(ge=1)]``); its
            JSON Schema is the parameter's schema.
        default: the value when it is absent.
    """

    description: str
    type: Any = str
    default: Any = None


@dataclass(frozen=True)
class Route:
    """One HTTP operation.

    Attributes:
        method: HTTP method.
        path: aiohttp path template, e.g. ``/v1/parks/{park}/assets``.
        handler: the coroutine that serves it.
        operation_id: unique name (OpenAPI ``operationId``).
        summary: one line for the OpenAPI document.
        roles: roles that may call it (admin always may); None = no auth.
        request: the request body's model (use a ``RootModel`` for a union).
        response: the success body's model; None for no body.
        status: the success status.
        errors: the error statuses it may answer (documented as problem+json).
        tags: OpenAPI tags.
        content_type: the success body's media type.
        request_content_type: the request body's media type.
        request_forms: other media types the request body may take, each with
            its model (a ``RootModel[str]`` for a text form such as CSV).
        query: query parameters, name -> ``Query`` (or a description for a plain string).
        creates_park: the route may name a park that is not known yet (it makes
            it); every other route answers 404 for an unknown ``{park}``.
        headers: response headers of the success status, name -> description.
        text_types: other media types the success body may take (a text form
            chosen by a query parameter, e.g. ``text/csv``).
        problems: what an error status means on this route, status -> description
            (the OpenAPI response's description; "problem" where not given).
        path_patterns: path parameters that are not ids, name -> the pattern
            their value must match (a month ``YYYY-MM``, an enterprise id);
            every other path parameter matches ``vpp.model.ID_PATTERN``.
    """

    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    roles: frozenset[Role] | None
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    content_type: str = "application/json"
    request_content_type: str = "application/json"
    request_forms: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    query: Mapping[str, Query | str] = field(default_factory=dict)
    creates_park: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    text_types: tuple[str, ...] = ()
    problems: Mapping[int, str] = field(default_factory=dict)
    path_patterns: Mapping[str, str] = field(default_factory=dict)

    def path_pattern(self, name: str) -> str:
        """The pattern the path parameter ``name`` must match (the id pattern by default)."""
        return self.path_patterns.get(name, ID_PATTERN)

    def query_params(self) -> dict[str, Query]:
        """The declared query parameters, each as a ``Query``."""
        return {n: q if isinstance(q, Query) else Query(q) for n, q in self.query.items()}


def add_routes(app: web.Application, routes: Iterable[Route]) -> None:
    """Register routes on the app's router and in its route table."""
    table: dict[tuple[str, str], Route] = app[ROUTE_TABLE]
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)
        table[(route.method, route.path)] = route


def route_of(request: web.Request) -> Route | None:
    """The ``Route`` a request matched (HEAD counts as GET), or None.

    Routes added to the router directly, not through ``add_routes``, have no
    entry and so no auth: always register through ``add_routes``.
    """
    resource = request.match_info.route.resource
    if resource is None:
        return None
    method = "GET" if request.method == "HEAD" else request.method
    table: dict[tuple[str, str], Route] = request.app[ROUTE_TABLE]
    return table.get((method, resource.canonical))
