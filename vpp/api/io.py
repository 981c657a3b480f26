"""Reading request bodies and writing model responses."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from vpp.api.problem import Problem

__all__ = ["MAX_BODY", "json_response", "read_json"]

#: Largest request body accepted, bytes.
MAX_BODY = 1 << 20


async def read_json(request: web.Request) -> Any:
    """The request body decoded as JSON.

    Raises:
        Problem: 415 for another media type, 400 for a body that is not JSON.
    """
    if request.content_type not in ("application/json", "application/merge-patch+json"):
        raise Problem(415, f"expected application/json, got {request.content_type or 'nothing'}")
    raw = await request.read()
    try:
        # parse_constant refuses NaN and Infinity, which JSON does not have.
        return json.loads(raw, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise Problem(400, f"the body is not valid JSON: {exc}", slug="bad-json") from exc


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
