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
from datetime import date
from types import TracebackType
from typing import Any, NamedTuple, Self
from urllib.parse import quote, urlencode

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
#: Who may import metering data.
_IMPORT = (Role.PARK_OPERATOR, Role.GRID_OPERATOR)
#: Who may enter an enterprise's monthly fuels and green power.
_LEDGER_WRITE = (Role.PARK_OPERATOR,)
#: Who may read the interval history (as the assets), least privileged first.
_HISTORY = (Role.VIEWER, Role.PARK_OPERATOR)
#: Who may issue a forecast or run a backtest.
_FORECAST_WRITE = (Role.PARK_OPERATOR,)
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
        self, method: str, path: str, role: str | None, json: Any, *, csv: str | None = None
    ) -> tuple[int, dict[str, str], str]:
        """``method /v1/parks/{park}{path}`` as ``role``: status, headers and body text.

        The body is ``json`` as JSON, or ``csv`` as ``text/csv`` when given.
        """
        headers = self._headers[role if role is not None else self._role(_DEFAULT)]
        url = f"{self.base_url}/v1/parks/{self.park}{path}"
        if csv is None:
            send: dict[str, Any] = {"headers": headers, "json": json}
        else:
            send = {"headers": {**headers, "Content-Type": "text/csv"}, "data": csv.encode()}
        async with self._http.request(method, url, **send) as resp:
            return resp.status, dict(resp.headers), await resp.text()

    async def _text(self, method: str, path: str, role: str, *, csv: str | None = None) -> str:
        """The body text of a request that must succeed (a CSV answer, or a CSV body sent).

        Raises:
            ApiError: the answer was not 2xx (its body decoded when it is JSON).
        """
        status, _, text = await self._send(method, path, role, None, csv=csv)
        if not 200 <= status < 300:
            try:
                body: Any = jsonlib.loads(text)
            except ValueError:
                body = text
            raise ApiError(method, path, status, body)
        return text

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

    async def declaration(self, bid_id: str) -> dict[str, Any]:
        """A stored bid's declaration per trading unit (``GET /bids/{bid}?format=declaration``)."""
        path = f"/bids/{quote(bid_id, safe='')}?format=declaration"
        body = await self.call("GET", path, role=self._role(_BID))
        return dict(body["declaration"])

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
        return await self._text("GET", f"/events/{event_id}/report?format=csv", self._role(_READ))

    async def import_readings(
        self, meter: str, readings: Mapping[str, Any] | str
    ) -> dict[str, Any]:
        """Import metering data into ``meter`` (``PUT /meters/{meter}/readings``).

        Args:
            meter: the meter's id.
            readings: the JSON body (``{"days": [{"date", "energy_kwh"}]}``), or
                the CSV text (header ``date,00:15,…,24:00``, a row per day).

        Returns:
            The days stored, replaced and unchanged, and the interval count.

        Raises:
            ApiError: the answer was not 2xx (a 422 lists each bad cell).
        """
        path, role = f"/meters/{meter}/readings", self._role(_IMPORT)
        if isinstance(readings, str):
            return dict(jsonlib.loads(await self._text("PUT", path, role, csv=readings)))
        return dict(await self.call("PUT", path, role=role, json=readings))

    async def history(
        self,
        series: str = "park",
        *,
        first: date | None = None,
        last: date | None = None,
        resolution: str = "15m",
        csv: bool = False,
    ) -> Any:
        """A series' interval history (``GET /history``): the JSON body, or CSV text.

        Args:
            series: an asset or meter id, or ``park``.
            first: the first local day (the service's default: six days before ``last``).
            last: the last local day, included (default: the park's today).
            resolution: ``15m``, ``1h`` or ``1d``.
            csv: answer the CSV text instead of the JSON body.
        """
        query = {"series": series, "resolution": resolution, "format": "csv" if csv else "json"}
        if first is not None:
            query["from"] = first.isoformat()
        if last is not None:
            query["to"] = last.isoformat()
        path = f"/history?{urlencode(query)}"
        if csv:
            return await self._text("GET", path, self._role(_HISTORY))
        return dict(await self.call("GET", path, role=self._role(_HISTORY)))

    async def ledger(
        self,
        *,
        period: str = "month",
        first: str | None = None,
        last: str | None = None,
        enterprise: str | None = None,
        csv: bool = False,
    ) -> Any:
        """The park's energy-carbon ledger (``GET /ledger``): the JSON body, or CSV text.

        Args:
            period: ``interval``, ``day``, ``month`` or ``year``.
            first: ``from``: ``YYYY-MM-DD``, ``YYYY-MM`` or ``YYYY`` (the
                service's default: the first day of ``last``'s month).
            last: ``to``, likewise (default: the end of the park's current month).
            enterprise: only this enterprise's rows.
            csv: answer the CSV text (a line per row) instead of the JSON body.

        Raises:
            ApiError: the answer was not 2xx (a 422 names the parameter).
        """
        given = {"from": first, "to": last, "enterprise": enterprise}
        query = {"period": period, "format": "csv" if csv else "json"}
        query.update({name: value for name, value in given.items() if value is not None})
        path = f"/ledger?{urlencode(query)}"
        if csv:
            return await self._text("GET", path, self._role(_READ))
        return dict(await self.call("GET", path, role=self._role(_READ)))

    async def put_ledger_entries(
        self, month: str, enterprise: str, entries: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Enter ``enterprise``'s fuels and green power of ``month`` (``PUT …/ledger/entries``).

        Args:
            month: ``YYYY-MM``.
            enterprise: the enterprise's id.
            entries: ``{"fuels": [{carrier, quantity, unit}], "green_power": [{kind, kwh,
                certificates}]}``; it replaces what was entered for that month.

        Returns:
            The stored entries.

        Raises:
            ApiError: the answer was not 2xx (a 422 names the field).
        """
        path = f"/ledger/entries/{month}/{quote(enterprise, safe='')}"
        return dict(await self.call("PUT", path, role=self._role(_LEDGER_WRITE), json=entries))

    async def forecast(self) -> dict[str, Any]:
        """The park's latest forecast (``GET /forecast``, read as the history is).

        Raises:
            ApiError: the answer was not 2xx (404: none issued yet).
        """
        return dict(await self.call("GET", "/forecast", role=self._role(_HISTORY)))

    async def issue_forecast(self) -> dict[str, Any]:
        """Issue the park's forecast now (``POST /forecast``, as park operator); the forecast."""
        return dict(await self.call("POST", "/forecast", role=self._role(_FORECAST_WRITE)))

    async def backtest(self, days: int | None = None) -> dict[str, Any]:
        """The day-ahead backtest: run over the last ``days`` days now, or the latest when None.

        ``POST /forecast/backtest?days=N`` as park operator, or ``GET /forecast/backtest``.

        Raises:
            ApiError: the answer was not 2xx (404: none ran yet; 409: too little
                history; 422: days outside 1-60).
        """
        if days is None:
            return dict(await self.call("GET", "/forecast/backtest", role=self._role(_READ)))
        path = f"/forecast/backtest?{urlencode({'days': days})}"
        return dict(await self.call("POST", path, role=self._role(_FORECAST_WRITE)))

    async def metrics_text(self) -> str:
        """The service's Prometheus exposition (``GET /metrics``, no token)."""
        async with self._http.get(f"{self.base_url}/metrics") as resp:
            return await resp.text()
