"""A small client of the service's own REST API, for one park.

`vpp demo` drives the service through it as the grid operator would; the
end-to-end benchmark and the end-to-end tests do the same. It holds one
bearer token per role and sends each request with the least privileged token
it holds that may make it (reads as a viewer when it has a viewer token)::

    tokens = await issue_tokens(state, park, [Role.GRID_OPERATOR, Role.VIEWER], name="demo")
    async with ParkClient(base_url, park, tokens) as client:
        event = await client.post_event({...})
        report = await client.report(event_id)

Exception tree::

    ApiError   (an answer outside 2xx; carries the status and the decoded body)
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, NamedTuple, Self

import aiohttp

from vpp.auth import Role, TokenStore
from vpp.state import State

__all__ = ["ApiError", "ParkClient", "Response", "issue_tokens"]

#: Who may read (flexibility, bids, events, reports), least privileged first.
_READ = (Role.VIEWER, Role.GRID_OPERATOR, Role.PARK_OPERATOR)
#: Who may build a bid.
_BID = (Role.GRID_OPERATOR, Role.PARK_OPERATOR)
#: Who may send, change or cancel a dispatch event.
_DISPATCH = (Role.GRID_OPERATOR,)
#: Who may enroll assets.
_ENROLL = (Role.PARK_OPERATOR,)
#: The token a request without a stated role goes with, first held first.
_DEFAULT = (Role.GRID_OPERATOR, Role.PARK_OPERATOR, Role.VIEWER, Role.ADMIN)


class ApiError(Exception):
    """The service answered outside 2xx.

    Attributes:
        method: the request's method.
        path: its path under the park (``/events``).
        status: the HTTP status.
        body: the decoded body (an RFC 9457 problem for the service's errors).
    """

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.method, self.path, self.status, self.body = method, path, status, body
        super().__init__(f"{method} {path}: {status} {body}")


class Response(NamedTuple):
    """One answer: status, headers and the decoded JSON body (None when there is none)."""

    status: int
    headers: dict[str, str]
    body: Any


async def issue_tokens(
    state: State, park: str, roles: Iterable[Role | str], *, name: str
) -> dict[str, str]:
    """Create one token per role for ``park`` in the service's token store.

    Args:
        state: the service's Redis repository.
        park: the park the tokens may touch.
        roles: the roles to create a token for.
        name: a label for logs; each token is named ``{name}-{role}``.

    Returns:
        role -> the token's secret.
    """
    tokens = TokenStore(state)
    out: dict[str, str] = {}
    for role in roles:
        out[str(Role(role))] = await tokens.create(role, [park], name=f"{name}-{Role(role)}")
    return out


class ParkClient:
    """The REST API of one park, with a bearer token per role.

    The typed methods raise `ApiError` on an answer outside 2xx and
    ``LookupError`` when the client holds no token of a role that may make the
    request.

    Args:
        base_url: the service, ``http://host:port``.
        park: the park every path is under (``/v1/parks/{park}``).
        tokens: role -> token secret (`issue_tokens` makes them).
        timeout_s: bound on each request (seconds).
    """

    def __init__(
        self, base_url: str, park: str, tokens: Mapping[str, str], *, timeout_s: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.park = park
        self._headers = {str(r): {"Authorization": f"Bearer {t}"} for r, t in tokens.items()}
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._http.close()

    def _role(self, allowed: Sequence[str]) -> str:
        for role in allowed:
            if role in self._headers:
                return role
        raise LookupError(f"no token for any of {', '.join(map(str, allowed))}")

    async def _send(
        self, method: str, path: str, role: str | None, json: Any
    ) -> tuple[int, dict[str, str], str]:
        """``method /v1/parks/{park}{path}`` as ``role``: status, headers and body text."""
        headers = self._headers[role if role is not None else self._role(_DEFAULT)]
        url = f"{self.base_url}/v1/parks/{self.park}{path}"
        async with self._http.request(method, url, headers=headers, json=json) as resp:
            return resp.status, dict(resp.headers), await resp.text()

    async def request(
        self, method: str, path: str, *, role: str | None = None, json: Any = None
    ) -> Response:
        """``method /v1/parks/{park}{path}`` as ``role``, whatever the status.

        Args:
            method: GET, POST, PATCH, DELETE.
            path: under the park, with its query (``/flexibility?intervals=4``).
            role: the token to send (None: grid operator, else park operator, else viewer).
            json: the body to send as JSON.
        """
        status, headers, text = await self._send(method, path, role, json)
        return Response(status, headers, jsonlib.loads(text) if text.strip() else None)

    async def call(
        self, method: str, path: str, *, role: str | None = None, json: Any = None
    ) -> Any:
        """The decoded body of a request that must succeed.

        Raises:
            ApiError: the answer was not 2xx.
        """
        status, _, body = await self.request(method, path, role=role, json=json)
        if not 200 <= status < 300:
            raise ApiError(method, path, status, body)
        return body

    async def enroll_asset(self, asset: Mapping[str, Any]) -> dict[str, Any]:
        """Enroll one asset (``POST /assets``, as park operator); the stored asset."""
        return dict(await self.call("POST", "/assets", role=self._role(_ENROLL), json=asset))

    async def flexibility(self, intervals: int) -> dict[str, Any]:
        """The live aggregate envelope over the next ``intervals`` intervals."""
        path = f"/flexibility?intervals={intervals}"
        return dict(await self.call("GET", path, role=self._role(_READ)))

    async def create_bid(self, bid: Mapping[str, Any]) -> dict[str, Any]:
        """Build a bid (``POST /bids``); the bid record."""
        body = await self.call("POST", "/bids", role=self._role(_BID), json=bid)
        return dict(body["bid"])

    async def post_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Send a dispatch event (``POST /events``, as grid operator); the answer's body."""
        return dict(await self.call("POST", "/events", role=self._role(_DISPATCH), json=event))

    async def cancel_event(self, event_id: str) -> dict[str, Any]:
        """Cancel a dispatch event (``DELETE /events/{id}``); the answer's body."""
        path = f"/events/{event_id}"
        return dict(await self.call("DELETE", path, role=self._role(_DISPATCH)))

    async def event(self, event_id: str) -> dict[str, Any]:
        """The stored event record (state, per-interval target / baseline / delivered)."""
        body = await self.call("GET", f"/events/{event_id}", role=self._role(_READ))
        return dict(body["event"])

    async def report(self, event_id: str) -> dict[str, Any]:
        """The event's report (delivered, performance, settlement estimate, avoided CO2)."""
        return dict(await self.call("GET", f"/events/{event_id}/report", role=self._role(_READ)))

    async def report_csv(self, event_id: str) -> str:
        """The event's report as CSV text.

        Raises:
            ApiError: the answer was not 2xx.
        """
        path = f"/events/{event_id}/report?format=csv"
        status, _, text = await self._send("GET", path, self._role(_READ), None)
        if not 200 <= status < 300:
            raise ApiError("GET", path, status, text)
        return text

    async def metrics_text(self) -> str:
        """The service's Prometheus exposition (``GET /metrics``, no token)."""
        async with self._http.get(f"{self.base_url}/metrics") as resp:
            return await resp.text()
