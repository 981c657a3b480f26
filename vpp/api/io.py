"""Reading request bodies and writing model responses."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from vpp.api.problem import Problem

__all__ = ["MAX_BODY", "MAX_DEPTH", "json_response", "read_csv", "read_json"]

#: Largest request body accepted, bytes.
MAX_BODY = 1 << 20
#: Deepest nesting of arrays and objects accepted in a body (ours need about 4);
#: deeper bodies are refused before anything walks them recursively.
MAX_DEPTH = 32

_TOO_DEEP = f"the body is not valid JSON for this API: nested deeper than {MAX_DEPTH} levels"


async def read_csv(request: web.Request) -> str:
    """The request body decoded as UTF-8 text (a CSV body; its media type is the caller's).

    Raises:
        Problem: 400 for a body that is not UTF-8.
    """
    raw = await request.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(400, f"the CSV body is not UTF-8 text: {exc}", slug="bad-csv") from exc


async def read_json(request: web.Request) -> Any:
    """The request body decoded as JSON.

    Raises:
        Problem: 415 for another media type, 400 for a body that is not JSON or
            nests deeper than `MAX_DEPTH`.
    """
    if request.content_type not in ("application/json", "application/merge-patch+json"):
        raise Problem(415, f"expected application/json, got {request.content_type or 'nothing'}")
    raw = await request.read()
    try:
        # parse_constant refuses NaN and Infinity, which JSON does not have.
        data = json.loads(raw, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise Problem(400, f"the body is not valid JSON: {exc}", slug="bad-json") from exc
    except RecursionError as exc:
        raise Problem(400, _TOO_DEEP, slug="bad-json") from exc
    if _depth(data) > MAX_DEPTH:
        raise Problem(400, _TOO_DEEP, slug="bad-json")
    return data


def _depth(data: Any) -> int:
    """How deeply arrays and objects nest in decoded JSON (a scalar is 0), without recursion."""
    deepest, stack = 0, [(data, 0)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, level + 1)
            if deepest > MAX_DEPTH:
                break
            stack.extend((v, level + 1) for v in value)
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_response(
    body: BaseModel,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    exclude_none: bool = True,
) -> web.Response:
    """A JSON response from a pydantic model.

    Nulls of unset optionals are dropped unless ``exclude_none`` is False (for
    a model whose nullable fields are required, such as a report).
    """
    return web.Response(
        status=status,
        body=body.model_dump_json(exclude_none=exclude_none),
        content_type="application/json",
        headers=headers,
    )
