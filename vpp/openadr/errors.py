"""Exceptions of the OpenADR VEN.

::

    OpenAdrError
    ├── SchemaViolation      a body does not match openadr3.yaml
    ├── MappingError         a valid event this VEN cannot turn into a dispatch
    ├── DispatchRejected     the service refuses an event version for good
    └── VtnError             the VTN answered with an error status
        ├── VtnUnavailable   connection refused, timeout, or a 5xx: retry later
        └── VtnAuthError     no token could be obtained, or 401 after one refresh
"""

from __future__ import annotations

from typing import Any


class OpenAdrError(Exception):
    """Base class of every error raised by :mod:`vpp.openadr`."""


class SchemaViolation(OpenAdrError):
    """A JSON body does not validate against an openadr3.yaml schema.

    Attributes:
        schema: Name of the component schema or operation checked.
        errors: One human-readable line per violation, with its JSON path.
    """

    def __init__(self, schema: str, errors: list[str]) -> None:
        super().__init__(f"{schema}: {'; '.join(errors[:5])}")
        self.schema = schema
        self.errors = errors


class MappingError(OpenAdrError):
    """An event is schema-valid but cannot be mapped (unknown units, bad timing)."""


class DispatchRejected(OpenAdrError):
    """The sink refuses this version of an event for good (raised by ``on_dispatch``).

    The VEN then rejects that version alone (logged once, counted with the
    reason ``refused``) instead of offering it again at every poll; a new
    version on the VTN is offered again.
    """


class VtnError(OpenAdrError):
    """The VTN answered a request with an error status.

    Attributes:
        status: HTTP status, or 0 when no answer arrived.
        problem: The decoded ``problem`` body, if any.
    """

    def __init__(self, message: str, *, status: int = 0, problem: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem


class VtnUnavailable(VtnError):
    """The VTN could not be reached or failed (5xx); the request may be retried."""


class VtnAuthError(VtnError):
    """The VEN could not authenticate to the VTN.

    Not the API's ``vpp.errors.AuthError`` (a request to this service without
    a valid token or role).
    """
