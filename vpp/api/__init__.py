"""The HTTP API (aiohttp): app factory, route table, problem+json, OpenAPI.

Extending it: write handlers, describe them as ``Route`` entries (roles,
payload models, ``Query`` parameters) and call ``add_routes(app, routes)`` on the app from
``create_app``; auth, metrics, problem+json and ``/openapi.json`` follow.
"""

from vpp.api.app import create_app
from vpp.api.context import METRICS, SETTINGS, STATE, TOKENS, principal
from vpp.api.io import json_response, read_json
from vpp.api.problem import Problem, problem_response
from vpp.api.routing import ALL_ROLES, Query, Route, add_routes

__all__ = [
    "ALL_ROLES",
    "METRICS",
    "SETTINGS",
    "STATE",
    "TOKENS",
    "Problem",
    "Query",
    "Route",
    "add_routes",
    "create_app",
    "json_response",
    "principal",
    "problem_response",
    "read_json",
]
