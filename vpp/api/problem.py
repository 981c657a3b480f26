"""RFC 9457 problem details (``application/problem+json``).

Handlers raise the service's exceptions (``vpp.errors``) or ``Problem``; the
error middleware turns each into a response through ``to_problem``.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web

from vpp.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    StateError,
    StateUnavailable,
    Unauthenticated,
    VppError,
)

__all__ = ["PROBLEM_CONTENT_TYPE", "Problem", "problem_response", "to_problem"]

#: The Content-Type of an RFC 9457 problem details body.
PROBLEM_CONTENT_TYPE = "application/problem+json"
_TYPE_BASE = "urn:vpp:problem:"


class Problem(Exception):
    """An HTTP error with problem details, raised by handlers.

    Attributes:
        status: the HTTP status.
        slug: the short problem type (``urn:vpp:problem:<slug>``); None for about:blank.
        detail: a human explanation of this occurrence.
        extensions: extra members of the problem object.
    """

    def __init__(
        self, status: int, detail: str, *, slug: str | None = None, **extensions: Any
    ) -> None:
        self.status = status
        self.slug = slug
        self.detail = detail
        self.extensions = extensions
        super().__init__(detail)


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> web.Response:
    """Build an ``application/problem+json`` response."""
    body: dict[str, Any] = {
        "type": _TYPE_BASE + slug if slug else "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return web.Response(
        status=status, text=json.dumps(body), content_type=PROBLEM_CONTENT_TYPE, headers=headers
    )


def to_problem(exc: VppError | Problem | web.HTTPException, request: web.Request) -> web.Response:
    """The problem response for an error raised while handling ``request``."""
    where = request.path
    match exc:
        case Problem():
            return problem_response(
                exc.status, exc.detail, slug=exc.slug, instance=where, **exc.extensions
            )
        case InvalidInput():
            errors = [{"field": e.field, "message": e.message, "type": e.type} for e in exc.errors]
            return problem_response(
                422, f"invalid input: {exc}", slug="invalid-input", instance=where, errors=errors
            )
        case AlreadyExists():
            return problem_response(409, str(exc), slug="already-exists", instance=where)
        case Conflict():
            return problem_response(409, str(exc), slug="conflict", instance=where)
        case NotFound():
            return problem_response(404, str(exc), slug="not-found", instance=where)
        case Unauthenticated():
            realm = 'Bearer realm="vpp"'
            return problem_response(
                401, str(exc), slug="unauthenticated", instance=where,
                headers={"WWW-Authenticate": realm},
            )  # fmt: skip
        case Forbidden():
            return problem_response(403, str(exc), slug="forbidden", instance=where)
        case StateUnavailable():
            return problem_response(503, str(exc), slug="state-unavailable", instance=where)
        case StateError():
            return problem_response(500, str(exc), slug="state-error", instance=where)
        case web.HTTPException():
            kept = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
            return problem_response(exc.status, exc.reason, instance=where, headers=kept)
        case _:
            return problem_response(500, "internal error", instance=where)
