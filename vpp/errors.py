"""The service's exception tree.

Foreign errors (redis, pydantic, TOML) are translated into these at the module
that meets them, so callers only ever catch ``VppError`` subclasses::

    VppError
     ├── SettingsError          (bad configuration file or VPP_* variable)
     ├── InvalidInput           (a payload failed validation; carries the fields)
     ├── StateError             (Redis state)
     │    ├── StateUnavailable  (Redis did not answer)
     │    ├── AlreadyExists     (enroll of an id that is enrolled)
     │    ├── Conflict          (the request clashes with the stored state: 409)
     │    │    └── IllegalTransition  (an event change its state forbids)
     │    │         └── EventOverlap  (an event window overlapping another open one)
     │    └── NotFound          (no such park or asset)
     └── AuthError
          ├── Unauthenticated   (missing or unknown token: 401)
          └── Forbidden         (wrong role or park: 403)

``IllegalTransition`` and ``EventOverlap`` are defined with the events they
guard. Two parts keep trees of their own: the OpenADR VEN
(:mod:`vpp.openadr.errors`, rooted at ``OpenAdrError``) and the private
servers (:mod:`vpp.servers`, rooted at ``ServerError``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AlreadyExists",
    "AuthError",
    "Conflict",
    "FieldError",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "SettingsError",
    "StateError",
    "StateUnavailable",
    "Unauthenticated",
    "VppError",
]


class VppError(Exception):
    """Base of every error the service raises on purpose."""


class SettingsError(VppError):
    """The configuration file or a ``VPP_*`` variable is invalid."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field of a payload.

    Attributes:
        field: dotted path of the field, e.g. ``soc_max`` or ``connection.port``.
        message: what is wrong with it, for a human.
        type: a short machine-readable error code (pydantic's error type).
    """

    field: str
    message: str
    type: str = "value_error"


class InvalidInput(VppError):
    """A payload failed validation.

    Attributes:
        errors: one entry per invalid field.
    """

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))

    @property
    def fields(self) -> list[str]:
        """The names of the invalid fields, in order."""
        return [e.field for e in self.errors]


class StateError(VppError):
    """A Redis state operation failed."""


class StateUnavailable(StateError):
    """Redis could not be reached or did not answer in time."""


class AlreadyExists(StateError):
    """An object with that id is already stored.

    Attributes:
        what: the kind of object (``asset``).
        id: its id.
    """

    def __init__(self, what: str, id: str) -> None:
        self.what = what
        self.id = id
        super().__init__(f"{what} {id!r} already exists")


class Conflict(StateError):
    """The request clashes with what is stored (HTTP 409).

    For example an event id reused with other content, or a change to an event
    that is over.
    """


class NotFound(StateError):
    """No object with that id is stored.

    Attributes:
        what: the kind of object (``park``, ``asset``).
        id: its id.
    """

    def __init__(self, what: str, id: str) -> None:
        self.what = what
        self.id = id
        super().__init__(f"{what} {id!r} not found")


class AuthError(VppError):
    """A request may not proceed."""


class Unauthenticated(AuthError):
    """The request carries no token, or one that is not known (HTTP 401)."""


class Forbidden(AuthError):
    """The token's role or parks do not allow the request (HTTP 403)."""
