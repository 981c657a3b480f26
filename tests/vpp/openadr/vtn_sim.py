"""A small OpenADR 3.1 VTN on loopback, for the tests — not a product.

:class:`VtnSim` serves the subset of openadr3.yaml a VEN needs — ``/auth/server``,
``/auth/token`` (client credentials), ``/programs``, ``/events``, ``/reports``,
``/vens``, ``/notifiers`` and the MQTT topic names for a program's events — and,
when given a broker, publishes a ``notification`` on every event create, update
and delete. Every request it receives (query and body) and every response and
notification it sends is validated against openadr3.yaml; each failure is kept
in :attr:`VtnSim.violations` (an invalid request is answered 400), so a test
asserts ``sim.violations == []``. :meth:`VtnSim.put_raw_event` stores an event
without any check, to play a misbehaving VTN; ``async with sim.offline():``
plays a VTN that is down for the block.

Like everything else that runs in the background it is a
:class:`~adapters.lifecycle.BackgroundService`: ``async with VtnSim(...) as sim:``
listens (and connects to the broker), leaving stops both.

:class:`BlClient` plays the grid operator's business logic: it creates
programs and events over HTTP with a BL token.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self

import aiohttp
import aiomqtt
from aiohttp import web

from adapters.lifecycle import BackgroundService
from vpp.openadr.mapping import format_datetime
from vpp.openadr.schema import OpenAdrSchema

log = logging.getLogger("tests.vpp.openadr.vtn_sim")

Json = dict[str, Any]
Role = Literal["ven", "bl"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CLIENT_ID = web.RequestKey("client_id", str)
_BODY = web.RequestKey("body", object)


@dataclass(frozen=True, slots=True)
class Violation:
    """A body that failed openadr3.yaml.

    Attributes:
        direction: ``request`` (received), ``response`` or ``notification`` (sent).
        method: HTTP method (``PUBLISH`` for notifications).
        path: Path template, or topic.
        status: Response status (0 for requests and notifications).
        errors: One line per violation.
    """

    direction: str
    method: str
    path: str
    status: int
    errors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request the simulator answered."""

    method: str
    path: str
    status: int
    client_id: str | None


class _Problem(Exception):
    def __init__(self, status: int, title: str, detail: str = "") -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail


def _problem(status: int, title: str, detail: str = "") -> web.Response:
    body: Json = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return web.json_response(body, status=status)


class VtnSim(BackgroundService):
    """The VTN simulator; an async context manager serving on ``127.0.0.1``.

    Attributes:
        violations: Schema failures seen so far.
        exchanges: Every request answered, in order.
        tokens_issued: Access tokens handed out.
        programs: Stored programs by id (also ``events``, ``reports``, ``vens``).
    """

    _task_name = "vtn-sim"

    def __init__(
        self,
        *,
        schema: OpenAdrSchema,
        clients: Mapping[str, tuple[str, Role]] | None = None,
        token_ttl_s: int = 3600,
        mqtt: tuple[str, int] | None = None,
        topic_prefix: str = "openadr",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Configure the simulator.

        Args:
            schema: The validator (tests require the real spec).
            clients: client_id → (secret, role); default ``ven``/``ven-secret`` and
                ``bl``/``bl-secret``.
            token_ttl_s: ``expires_in`` of issued tokens; they are rejected after it.
            mqtt: Broker host and port to publish notifications to, if any.
            topic_prefix: First topic levels of every notification topic.
            host: Address to listen on.
            port: Port; 0 picks a free one (kept across :meth:`offline`).
        """
        self.schema = schema
        self.clients = dict(clients or {"ven": ("ven-secret", "ven"), "bl": ("bl-secret", "bl")})
        self.token_ttl_s = token_ttl_s
        self.mqtt = mqtt
        self.topic_prefix = topic_prefix.rstrip("/")
        self.host = host
        self.port = port
        self.violations: list[Violation] = []
        self.exchanges: list[Exchange] = []
        self.tokens_issued = 0
        self.programs: dict[str, Json] = {}
        self.events: dict[str, Json] = {}
        self.reports: dict[str, Json] = {}
        self.vens: dict[str, Json] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._mqtt_client: aiomqtt.Client | None = None
        self._broker = contextlib.AsyncExitStack()

    # -- life cycle -------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the API."""
        return f"http://{self.host}:{self.port}"

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/auth/server", self._auth_server)
        r.add_post("/auth/token", self._auth_token)
        r.add_get("/programs", self._list_programs)
        r.add_post("/programs", self._create_program)
        r.add_get("/programs/{programID}", self._get_program)
        r.add_get("/events", self._list_events)
        r.add_post("/events", self._create_event)
        r.add_get("/events/{eventID}", self._get_event)
        r.add_put("/events/{eventID}", self._update_event)
        r.add_delete("/events/{eventID}", self._delete_event)
        r.add_get("/reports", self._list_reports)
        r.add_post("/reports", self._create_report)
        r.add_get("/reports/{reportID}", self._get_report)
        r.add_put("/reports/{reportID}", self._update_report)
        r.add_get("/vens", self._list_vens)
        r.add_post("/vens", self._create_ven)
        r.add_get("/notifiers", self._notifiers)
        r.add_get("/notifiers/mqtt/topics/programs/{programID}/events", self._event_topics)
        return app

    async def _open(self) -> None:
        if self.mqtt is not None:
            client = aiomqtt.Client(self.mqtt[0], self.mqtt[1])
            self._mqtt_client = await self._broker.enter_async_context(client)
        await self._listen()

    async def _close(self) -> None:
        await self._stop_listening()
        self._mqtt_client = None
        await self._broker.aclose()

    async def _listen(self) -> None:
        runner = web.AppRunner(self._app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = int(runner.addresses[0][1])
        self._runner = runner

    async def _stop_listening(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @contextlib.asynccontextmanager
    async def offline(self) -> AsyncIterator[None]:
        """Stop answering inside the block, as a VTN that went down.

        Everything stored is kept (edit it meanwhile with :meth:`put_raw_event`)
        and the simulator listens again on the same port after the block.
        """
        await self._stop_listening()
        try:
            yield
        finally:
            await self._listen()

    # -- test controls ----------------------------------------------------

    def revoke_tokens(self) -> None:
        """Forget every issued token (clients get 401 until they fetch anew)."""
        self._tokens.clear()

    def put_raw_event(self, event: Json) -> None:
        """Store an event exactly as given, with no validation (a faulty VTN)."""
        self.events[str(event["id"])] = event

    def requests_to(self, method: str, path: str) -> list[Exchange]:
        """Exchanges with this method and actual path."""
        return [e for e in self.exchanges if e.method == method and e.path == path]

    # -- plumbing ---------------------------------------------------------

    def _violate(
        self, direction: str, method: str, path: str, status: int, errors: list[str]
    ) -> None:
        if errors:
            log.warning("%s %s %s: %s", direction, method, path, errors[:3])
            self.violations.append(Violation(direction, method, path, status, tuple(errors)))

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        template = route.canonical if route is not None else request.path
        method = request.method
        try:
            self.schema.operation(method, template)
        except KeyError:
            self._violate("request", method, template, 0, ["operation not in openadr3.yaml"])
            return _problem(404, "Not Found")
        errors = self.schema.query_errors(method, template, request.query)
        body: Any = None
        if request.body_exists:
            if request.content_type == "application/x-www-form-urlencoded":
                body = dict(await request.post())
            else:
                try:
                    body = await request.json()
                except ValueError:
                    errors.append("request: body is not JSON")
        errors += self.schema.request_errors(method, template, body)
        self._violate("request", method, template, 0, errors)
        if errors:
            response: web.StreamResponse = _problem(400, "Bad Request", "; ".join(errors[:3]))
        else:
            request[_BODY] = body
            try:
                response = await handler(request)
            except _Problem as problem:
                response = _problem(problem.status, problem.title, problem.detail)
        if isinstance(response, web.Response) and response.body is not None:
            assert isinstance(response.body, bytes)
            sent = json.loads(response.body) if response.body else None
            self._violate(
                "response",
                method,
                template,
                response.status,
                self.schema.response_errors(method, template, response.status, sent),
            )
        client_id = request.get(_CLIENT_ID)
        self.exchanges.append(Exchange(method, request.path, response.status, client_id))
        return response

    @staticmethod
    def _body(request: web.Request) -> Any:
        return request[_BODY]

    def _auth(self, request: web.Request, role: Role | None = None) -> str:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        found = self._tokens.get(token)
        if not header.startswith("Bearer ") or found is None or found[1] < time.monotonic():
            raise _Problem(401, "Unauthorized", "missing, unknown or expired token")
        client_id = found[0]
        request[_CLIENT_ID] = client_id
        if role is not None and self.clients[client_id][1] != role:
            raise _Problem(403, "Forbidden", f"needs the {role} role")
        return client_id

    def _metadata(self, object_type: str, prefix: str) -> Json:
        now = format_datetime(datetime.now(UTC))
        return {
            "id": f"{prefix}-{next(self._ids)}",
            "createdDateTime": now,
            "modificationDateTime": now,
            "objectType": object_type,
        }

    @staticmethod
    def _page(request: web.Request, items: list[Json]) -> web.Response:
        skip = int(request.query.get("skip", "0"))
        limit = int(request.query.get("limit", "50"))
        return web.json_response(items[skip : skip + limit])

    @staticmethod
    def _get(store: Mapping[str, Json], object_id: str) -> Json:
        if object_id not in store:
            raise _Problem(404, "Not Found", object_id)
        return store[object_id]

    # -- auth ---------------------------------------------------------------

    async def _auth_server(self, request: web.Request) -> web.Response:
        return web.json_response({"tokenURL": f"{self.url}/auth/token"})

    async def _auth_token(self, request: web.Request) -> web.Response:
        form = self._body(request)
        known = self.clients.get(form["client_id"])
        if known is None or not secrets.compare_digest(known[0], form["client_secret"]):
            raise _Problem(401, "Unauthorized", "unknown client or wrong secret")
        token = secrets.token_urlsafe(24)
        self._tokens[token] = (form["client_id"], time.monotonic() + self.token_ttl_s)
        self.tokens_issued += 1
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl_s}
        )

    # -- programs -------------------------------------------------------------

    async def _list_programs(self, request: web.Request) -> web.Response:
        self._auth(request)
        return self._page(request, list(self.programs.values()))

    async def _create_program(self, request: web.Request) -> web.Response:
        self._auth(request, "bl")
        body = self._body(request)
        if any(p["programName"] == body["programName"] for p in self.programs.values()):
            raise _Problem(409, "Conflict", "programName exists")
        program = {**self._metadata("PROGRAM", "program"), **body}
        self.programs[program["id"]] = program
        return web.json_response(program, status=201)

    async def _get_program(self, request: web.Request) -> web.Response:
        self._auth(request)
        return web.json_response(self._get(self.programs, request.match_info["programID"]))

    # -- events ---------------------------------------------------------------

    def _topic(self, program_id: str, operation: str) -> str:
        return f"{self.topic_prefix}/programs/{program_id}/events/{operation}"

    async def _notify(self, operation: str, event: Json) -> None:
        if self._mqtt_client is None:
            return
        notification = {"objectType": "EVENT", "operation": operation, "object": event}
        topic = self._topic(str(event["programID"]), operation.lower())
        self._violate(
            "notification", "PUBLISH", topic, 0, self.schema.errors("notification", notification)
        )
        await self._mqtt_client.publish(topic, json.dumps(notification), qos=1)

    async def _list_events(self, request: web.Request) -> web.Response:
        self._auth(request)
        program_id = request.query.get("programID")
        events = [
            e
            for e in self.events.values()
            if program_id is None or e.get("programID") == program_id
        ]
        return self._page(request, events)

    async def _create_event(self, request: web.Request) -> web.Response:
        self._auth(request, "bl")
        body = self._body(request)
        self._get(self.programs, body["programID"])
        event = {**self._metadata("EVENT", "event"), **body}
        self.events[event["id"]] = event
        await self._notify("CREATE", event)
        return web.json_response(event, status=201)

    async def _get_event(self, request: web.Request) -> web.Response:
        self._auth(request)
        return web.json_response(self._get(self.events, request.match_info["eventID"]))

    async def _update_event(self, request: web.Request) -> web.Response:
        self._auth(request, "bl")
        old = self._get(self.events, request.match_info["eventID"])
        meta = {k: old[k] for k in ("id", "createdDateTime", "objectType")}
        event = {
            **meta,
            "modificationDateTime": format_datetime(datetime.now(UTC)),
            **self._body(request),
        }
        self.events[event["id"]] = event
        await self._notify("UPDATE", event)
        return web.json_response(event)

    async def _delete_event(self, request: web.Request) -> web.Response:
        self._auth(request, "bl")
        event = self._get(self.events, request.match_info["eventID"])
        del self.events[event["id"]]
        await self._notify("DELETE", event)
        return web.json_response(event)

    # -- reports ------------------------------------------------------------

    def _visible_reports(self, client_id: str) -> list[Json]:
        bl = self.clients[client_id][1] == "bl"
        return [r for r in self.reports.values() if bl or r["clientID"] == client_id]

    async def _list_reports(self, request: web.Request) -> web.Response:
        client_id = self._auth(request)
        query = request.query
        reports = [
            r
            for r in self._visible_reports(client_id)
            if query.get("eventID", r["eventID"]) == r["eventID"]
            and query.get("clientName", r["clientName"]) == r["clientName"]
        ]
        return self._page(request, reports)

    async def _create_report(self, request: web.Request) -> web.Response:
        client_id = self._auth(request, "ven")
        body = self._body(request)
        self._get(self.events, body["eventID"])
        report = {**self._metadata("REPORT", "report"), **body, "clientID": client_id}
        self.reports[report["id"]] = report
        return web.json_response(report, status=201)

    async def _get_report(self, request: web.Request) -> web.Response:
        client_id = self._auth(request)
        report = self._get(self.reports, request.match_info["reportID"])
        if report not in self._visible_reports(client_id):
            raise _Problem(404, "Not Found")
        return web.json_response(report)

    async def _update_report(self, request: web.Request) -> web.Response:
        client_id = self._auth(request, "ven")
        old = self._get(self.reports, request.match_info["reportID"])
        if old["clientID"] != client_id:
            raise _Problem(403, "Forbidden", "not your report")
        meta = {k: old[k] for k in ("id", "createdDateTime", "objectType")}
        now = format_datetime(datetime.now(UTC))
        report = {**meta, "modificationDateTime": now, **self._body(request), "clientID": client_id}
        self.reports[report["id"]] = report
        return web.json_response(report)

    # -- vens -----------------------------------------------------------------

    async def _list_vens(self, request: web.Request) -> web.Response:
        client_id = self._auth(request)
        bl = self.clients[client_id][1] == "bl"
        name = request.query.get("venName")
        vens = [
            v
            for v in self.vens.values()
            if (bl or v["clientID"] == client_id) and name in (None, v["venName"])
        ]
        return self._page(request, vens)

    async def _create_ven(self, request: web.Request) -> web.Response:
        client_id = self._auth(request)
        body = self._body(request)
        if any(v["venName"] == body["venName"] for v in self.vens.values()):
            raise _Problem(409, "Conflict", "venName exists")
        owner = body.get("clientID", client_id)
        fields = {k: v for k, v in body.items() if k != "objectType"}
        ven = {**self._metadata("VEN", "ven"), **fields, "clientID": owner}
        self.vens[ven["id"]] = ven
        return web.json_response(ven, status=201)

    # -- notifiers ------------------------------------------------------------

    async def _notifiers(self, request: web.Request) -> web.Response:
        self._auth(request)
        body: Json = {"WEBHOOK": True}
        if self.mqtt is not None:
            body["MQTT"] = {
                "URIS": [f"mqtt://{self.mqtt[0]}:{self.mqtt[1]}"],
                "serialization": "JSON",
                "authentication": {"method": "ANONYMOUS"},
            }
        return web.json_response(body)

    async def _event_topics(self, request: web.Request) -> web.Response:
        self._auth(request)
        if self.mqtt is None:
            raise _Problem(404, "Not Found", "no MQTT notifier")
        program_id = self._get(self.programs, request.match_info["programID"])["id"]
        topics = {op: self._topic(program_id, op.lower()) for op in ("CREATE", "UPDATE", "DELETE")}
        topics["ALL"] = self._topic(program_id, "+")
        return web.json_response({"topics": topics})


class BlClient:
    """The grid operator's business logic, driving a VTN over HTTP (tests, demos)."""

    def __init__(
        self, url: str, *, client_id: str = "bl", client_secret: str = "bl-secret"
    ) -> None:
        """Configure; entering the context fetches a token."""
        self._url = url.rstrip("/")
        self._id = client_id
        self._secret = client_secret
        self._session: aiohttp.ClientSession | None = None
        self._token = ""

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession()
        form = {
            "grant_type": "client_credentials",
            "client_id": self._id,
            "client_secret": self._secret,
        }
        async with self._session.post(f"{self._url}/auth/token", data=form) as response:
            response.raise_for_status()
            self._token = (await response.json())["access_token"]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(self, method: str, path: str, body: Json | None = None) -> Any:
        """Send one request with the BL token; raises on an error status."""
        assert self._session is not None, "use 'async with BlClient(...)'"
        headers = {"Authorization": f"Bearer {self._token}"}
        async with self._session.request(
            method, self._url + path, json=body, headers=headers
        ) as response:
            response.raise_for_status()
            return await response.json()

    async def create_program(self, name: str, **fields: Any) -> Json:
        """``POST /programs``."""
        return dict(await self.call("POST", "/programs", {"programName": name, **fields}))

    async def create_event(self, event: Json) -> Json:
        """``POST /events``."""
        return dict(await self.call("POST", "/events", event))

    async def update_event(self, event_id: str, event: Json) -> Json:
        """``PUT /events/{eventID}``."""
        return dict(await self.call("PUT", f"/events/{event_id}", event))

    async def delete_event(self, event_id: str) -> Json:
        """``DELETE /events/{eventID}``."""
        return dict(await self.call("DELETE", f"/events/{event_id}"))
