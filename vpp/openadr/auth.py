"""OAuth2 client credentials for the VEN (Definition.md, "Security").

The token endpoint is discovered with ``GET /auth/server`` (``tokenURL``), and
fetched with a form-encoded ``client_credentials`` grant. A token is reused
until ``token_refresh_margin_s`` before it expires; a 401 from the VTN makes
the client drop it (:meth:`TokenProvider.invalidate`) and fetch a new one once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from urllib.parse import urljoin

import aiohttp

from vpp.openadr._http import exchange
from vpp.openadr.errors import VtnAuthError
from vpp.openadr.schema import OpenAdrSchema

log = logging.getLogger("vpp.openadr.auth")


class TokenProvider:
    """Fetches and caches the VEN's bearer token.

    Attributes:
        fetches: How many tokens have been fetched (for metrics and tests).
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        vtn_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        refresh_margin_s: float = 30.0,
        timeout_s: float = 10.0,
        schema: OpenAdrSchema | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Set up; nothing is fetched until :meth:`token` is awaited."""
        self._session = session
        self._base = vtn_url.rstrip("/") + "/"
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._margin = refresh_margin_s
        self._timeout = timeout_s
        self._schema = schema
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._token_url: str | None = None
        self.fetches = 0

    async def token(self) -> str:
        """A bearer token valid for at least the refresh margin."""
        async with self._lock:
            if self._token is None or self._clock() >= self._expires_at - self._margin:
                await self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (rejected by the VTN) unless a newer one replaced it."""
        if self._token == token:
            self._token = None

    def _check(self, name: str, body: object, what: str) -> None:
        if self._schema is None:
            return
        errors = self._schema.errors(name, body)
        if errors:
            raise VtnAuthError(f"{what} does not match {name}: {errors[:3]}")

    async def _discover(self) -> str:
        url = urljoin(self._base, "auth/server")
        status, body = await exchange(self._session, "GET", url, timeout_s=self._timeout)
        if status != 200:
            raise VtnAuthError(f"GET {url}: HTTP {status}", status=status, problem=body)
        self._check("authServerInfo", body, "GET /auth/server")
        return urljoin(self._base, str(body["tokenURL"]))

    async def _fetch(self) -> None:
        if self._token_url is None:
            self._token_url = await self._discover()
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        if self._scope is not None:
            form["scope"] = self._scope
        self._check("clientCredentialRequest", form, "token request")
        status, body = await exchange(
            self._session, "POST", self._token_url, timeout_s=self._timeout, data=form
        )
        if status != 200:
            self._token_url = None  # rediscover next time: the endpoint may have moved
            raise VtnAuthError(f"token endpoint: HTTP {status}", status=status, problem=body)
        self._check("clientCredentialResponse", body, "token response")
        self._token = str(body["access_token"])
        expires_in = body.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int) else 3600.0
        self._expires_at = self._clock() + lifetime
        self.fetches += 1
        log.info("fetched an access token valid for %.0f s", lifetime)
