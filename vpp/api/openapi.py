"""The OpenAPI 3.1 document, generated from the route table and payload models.

OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what pydantic emits,
so the models' schemas go into ``components.schemas`` as they are. Path and
query parameters are documented from the same declarations the params
middleware enforces (``vpp.api.params``), and each operation lists every
error status it can answer, derived from what it declares: 401/403/503 with
auth, 422 with parameters or a body, 400/413/415 with a body (413: over the
app's 1 MiB ``client_max_size``), 404 on a park.
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


def _errors(route: Route) -> set[int]:
    """Every error status the route can answer, from its declaration."""
    errors = set(route.errors)
    if route.roles is not None:
        errors |= {401, 403, 503}  # the token is looked up in Redis
    if route.query or _PARAM.search(route.path):
        errors.add(422)
    if route.request is not None:
        errors |= {400, 413, 415, 422}
    if "{park}" in route.path and not route.creates_park:
        errors.add(404)
    return errors


def _query_schema(tp: Any, default: Any) -> dict[str, Any]:
    schema: dict[str, Any] = TypeAdapter(tp).json_schema()
    if default is not None:
        schema["default"] = default
    return schema


def build_openapi(routes: Iterable[Route], *, title: str = "Park VPP API") -> dict[str, Any]:
    """Build the OpenAPI document for ``routes``.

    Args:
        routes: the app's route table.
        title: the document's title.
    """
    routes = list(routes)
    types: dict[str, type[BaseModel]] = {}
    for route in routes:
        for tp in (route.request, route.response, *route.request_forms.values()):
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
             "schema": {"type": "string", "pattern": route.path_pattern(name)}}
            for name in _PARAM.findall(route.path)
        ]  # fmt: skip
        params += [
            {"name": name, "in": "query", "required": False, "description": q.description,
             "schema": _query_schema(q.type, q.default)}
            for name, q in route.query_params().items()
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
            for media, form in route.request_forms.items():
                op["requestBody"]["content"][media] = {"schema": refs[_schema_name(form)]}
        ok: dict[str, Any] = {"description": "success"}
        if route.response is not None:
            ok["content"] = {route.content_type: {"schema": refs[_schema_name(route.response)]}}
        elif route.content_type.startswith("text/"):
            ok["content"] = {route.content_type: {"schema": {"type": "string"}}}
        for media in route.text_types:
            ok.setdefault("content", {})[media] = {"schema": {"type": "string"}}
        if route.headers:
            ok["headers"] = {
                name: {"description": text, "schema": {"type": "string"}}
                for name, text in route.headers.items()
            }
        op["responses"][str(route.status)] = ok
        for status in sorted(_errors(route)):
            op["responses"][str(status)] = {
                "description": route.problems.get(status, "problem"),
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
