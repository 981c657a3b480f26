"""Bearer tokens: roles, the parks they may touch, and where they are stored.

A token's secret is shown once, at creation. Redis keeps only its SHA-256
(``{ns}:tokens:{sha256}``, a global key, not park-scoped) with the role and
parks; a request's token is hashed, looked up by that hash, and the stored
hash compared with ``hmac.compare_digest``. The secrets carry 256 random
bits, so a plain hash (no salt, no stretching) is enough.

Roles (``Role``) and what each may do is declared per route (see
``vpp.api.routing``); ``admin`` passes every role check on every park.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from vpp.errors import Forbidden, SettingsError, Unauthenticated
from vpp.model import ID_PATTERN, utcnow
from vpp.state import State, pack, unpack

__all__ = [
    "ALL_PARKS_SCOPE",
    "TOKEN_PREFIX",
    "Principal",
    "Role",
    "TokenStore",
    "hash_secret",
]

log = logging.getLogger("vpp.auth")

#: The park scope of a token that may touch every park (its ``parks`` entry).
ALL_PARKS_SCOPE = "*"
#: Every secret starts with this, so leaked ones are easy to grep for.
TOKEN_PREFIX = "vpp_"


class Role(StrEnum):
    """What a token holder is."""

    PARK_OPERATOR = "park_operator"  #: enrolls and manages the assets of its parks
    GRID_OPERATOR = "grid_operator"  #: sends dispatch events, reads flexibility and bids
    VIEWER = "viewer"  #: reads
    ADMIN = "admin"  #: everything, every park


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for.

    Attributes:
        name: a label given at creation (for logs).
        role: the token's role.
        parks: the park ids it may touch (``*``: all).
        created_at: when the token was created.
    """

    name: str
    role: Role
    parks: frozenset[str] = field(default_factory=frozenset)
    created_at: datetime | None = None

    def may_touch(self, park: str) -> bool:
        """Whether this principal may act on ``park``."""
        return self.role is Role.ADMIN or ALL_PARKS_SCOPE in self.parks or park in self.parks

    def require(self, roles: frozenset[Role], park: str | None) -> None:
        """Check the role and park of a request.

        Raises:
            Forbidden: the role is not among ``roles`` (admin always is), or the
                park is not one of the principal's.
        """
        if self.role is not Role.ADMIN and self.role not in roles:
            raise Forbidden(f"role {self.role.value} may not do this")
        if park is not None and not self.may_touch(park):
            raise Forbidden(f"this token may not touch park {park!r}")


def hash_secret(secret: str) -> str:
    """The hex SHA-256 of a token secret: what is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """Tokens in Redis under the state's namespace.

    Args:
        state: the Redis repository (its client and key names are used).
    """

    def __init__(self, state: State) -> None:
        self.state = state

    async def create(self, role: Role | str, parks: list[str], name: str = "") -> str:
        """Create a token and return its secret (the only time it is seen).

        Args:
            role: the token's role.
            parks: the park ids it may touch; ``["*"]`` for all.
            name: a label for logs.

        Raises:
            SettingsError: an unknown role, or no park for a non-admin role.
        """
        try:
            role = Role(role)
        except ValueError as exc:
            roles = ", ".join(r.value for r in Role)
            raise SettingsError(f"unknown role {role!r}; one of {roles}") from exc
        bad = [p for p in parks if p != ALL_PARKS_SCOPE and not re.match(ID_PATTERN, p)]
        if bad:
            raise SettingsError(f"invalid park id(s): {', '.join(bad)}")
        if not parks and role is not Role.ADMIN:
            raise SettingsError(f"a {role.value} token needs at least one --park")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = hash_secret(secret)
        record = {
            "name": name,
            "role": role.value,
            "parks": sorted(set(parks)),
            "digest": digest,
            "created_at": utcnow().isoformat(),
        }
        async with self.state.guard("token_create"):
            await self.state.redis.set(self.state.keys.token(digest), pack(record))
        log.info("created %s token %r for parks %s", role.value, name, ",".join(parks) or "*")
        return secret

    async def revoke(self, secret: str) -> bool:
        """Delete a token; returns whether it existed."""
        async with self.state.guard("token_revoke"):
            return bool(await self.state.redis.delete(self.state.keys.token(hash_secret(secret))))

    async def authenticate(self, authorization: str | None) -> Principal:
        """Resolve an ``Authorization`` header into a principal.

        Raises:
            Unauthenticated: no bearer token, or one that is not known.
            StateUnavailable: Redis did not answer.
        """
        if not authorization:
            raise Unauthenticated("missing bearer token")
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        digest = hash_secret(secret)
        async with self.state.guard("token_lookup"):
            raw = await self.state.redis.get(self.state.keys.token(digest))
        if raw is None:
            raise Unauthenticated("unknown token")
        record = unpack(raw)
        if not hmac.compare_digest(str(record.get("digest", "")), digest):
            raise Unauthenticated("unknown token")
        return Principal(
            name=str(record.get("name", "")),
            role=Role(record["role"]),
            parks=frozenset(record.get("parks", [])),
            created_at=datetime.fromisoformat(record["created_at"]),
        )
