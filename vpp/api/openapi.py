"""The OpenAPI 3.1 document, generated from the route table and payload models.

OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what pydantic emits,
so the models' schemas go into ``components.schemas`` as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter

from vpp import __version__
from vpp.api.routing import Route
from vpp.api.schemas import ProblemDetails

__all__ = ["build_openapi"]

_REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")


def _schema_name(tp: type[BaseModel]) -> str:
    return tp.__name__


def build_openapi(routes: Iterable[Route], *, title: str = "Park VPP API") -> dict[str, Any]:
    """Build the OpenAPI document for ``routes``.

    Args:
        routes: the app's route table.
        title: the document's title.
    """
    routes = list(routes)
    types: dict[str, type[BaseModel]] = {}
    for route in routes:
        for tp in (route.request, route.response):
            if tp is not None:
                types.setdefault(_schema_name(tp), tp)
    types.setdefault("ProblemDetails", ProblemDetails)
    mode: Literal["validation"] = "validation"
    keyed = [(name, mode, TypeAdapter(tp)) for name, tp in types.items()]
    by_key, defs = TypeAdapter.json_schemas(keyed, ref_template=_REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    refs: dict[str, dict[str, Any]] = {}
    for (name, _), schema in by_key.items():
        if "$ref" in schema:
            refs[name] = schema
        else:
            schemas[name] = schema
            refs[name] = {"$ref": _REF.format(model=name)}

    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = _PARAM.sub(r"{\1}", route.path)
        op: dict[str, Any] = {
            "operationId": route.operation_id,
            "summary": route.summary,
            "tags": list(route.tags),
            "responses": {},
        }
        params = [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}}
            for name in _PARAM.findall(route.path)
        ]  # fmt: skip
        params += [
            {"name": name, "in": "query", "required": False, "description": text,
             "schema": {"type": "string"}}
            for name, text in route.query.items()
        ]  # fmt: skip
        if params:
            op["parameters"] = params
        if route.roles is not None:
            op["security"] = [{"bearer": []}]
            op["description"] = "Roles: " + ", ".join(sorted(r.value for r in route.roles))
        if route.request is not None:
            schema = refs[_schema_name(route.request)]
            op["requestBody"] = {
                "required": True,
                "content": {route.request_content_type: {"schema": schema}},
            }
        ok: dict[str, Any] = {"description": "success"}
        if route.response is not None:
            ok["content"] = {route.content_type: {"schema": refs[_schema_name(route.response)]}}
        op["responses"][str(route.status)] = ok
        errors = set(route.errors) | ({401, 403} if route.roles is not None else set())
        for status in sorted(errors):
            op["responses"][str(status)] = {
                "description": "problem",
                "content": {"application/problem+json": {"schema": refs["ProblemDetails"]}},
            }
        paths.setdefault(path, {})[route.method.lower()] = op

    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
