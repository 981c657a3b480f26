"""The VEN's HTTP client of a VTN, validating every body against openadr3.yaml.

Outgoing bodies and query parameters that fail the schema raise
:class:`~vpp.openadr.errors.SchemaViolation` before anything is sent (that is
a bug here). Incoming single objects that fail raise it too; in lists, each
item is validated alone, so one malformed event is logged, counted in
:attr:`VtnClient.invalid_objects` and skipped while the rest are used.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from vpp.openadr import constants as c
from vpp.openadr._http import exchange
from vpp.openadr.auth import TokenProvider
from vpp.openadr.errors import SchemaViolation, VtnAuthError, VtnError
from vpp.openadr.schema import OpenAdrSchema

log = logging.getLogger("vpp.openadr.client")

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Page:
    """Valid items of a list response, and what was dropped.

    Attributes:
        items: Items that validate.
        invalid_ids: ``id`` of each dropped item that had a usable one.
        invalid: How many items were dropped.
    """

    items: list[Json]
    invalid_ids: frozenset[str] = field(default_factory=frozenset)
    invalid: int = 0


class VtnClient:
    """Typed calls to the OpenADR 3.1 API of one VTN.

    Attributes:
        invalid_objects: Objects received that failed the schema (skipped).
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        vtn_url: str,
        tokens: TokenProvider,
        schema: OpenAdrSchema | None,
        timeout_s: float = 10.0,
    ) -> None:
        """Wrap a session; the caller owns and closes it."""
        self._session = session
        self._base = vtn_url.rstrip("/")
        self._tokens = tokens
        self._schema = schema
        self._timeout = timeout_s
        self.invalid_objects = 0

    async def _call(
        self,
        method: str,
        template: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        item_schema: str | None = None,
    ) -> tuple[int, Any]:
        schema = self._schema
        if schema is not None:
            errors = schema.query_errors(method, template, params or {})
            errors += schema.request_errors(method, template, body)
            if errors:
                raise SchemaViolation(f"{method} {template}", errors)
        kwargs: dict[str, Any] = {"params": dict(params or {})}
        if body is not None:
            kwargs["json"] = body
        url = self._base + path
        for attempt in range(2):
            token = await self._tokens.token()
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            status, data = await exchange(
                self._session, method, url, timeout_s=self._timeout, headers=headers, **kwargs
            )
            if status == 401 and attempt == 0:
                log.info("%s %s: 401, fetching a new token", method, path)
                self._tokens.invalidate(token)
                continue
            break
        if schema is not None and item_schema is None:
            errors = schema.response_errors(method, template, status, data)
            if errors:
                raise SchemaViolation(f"{method} {template} {status}", errors)
        if status == 401:
            raise VtnAuthError(
                f"{method} {path}: 401 after a fresh token", status=401, problem=data
            )
        if status >= 400:
            raise VtnError(f"{method} {path}: HTTP {status}", status=status, problem=data)
        return status, data

    async def _list(
        self, template: str, item_schema: str, params: Mapping[str, str] | None = None
    ) -> Page:
        items: list[Json] = []
        invalid_ids: set[str] = set()
        invalid = 0
        skip = 0
        while True:
            query = {**(params or {}), "skip": str(skip), "limit": str(c.PAGE_LIMIT)}
            _, data = await self._call(
                "GET", template, template, params=query, item_schema=item_schema
            )
            if not isinstance(data, list):
                raise SchemaViolation(f"GET {template} 200", ["response: not an array"])
            for index, item in enumerate(data):
                errors = (
                    self._schema.errors(item_schema, item, f"[{skip + index}]")
                    if self._schema is not None
                    else ([] if isinstance(item, dict) else ["not an object"])
                )
                if errors:
                    invalid += 1
                    self.invalid_objects += 1
                    object_id = item.get("id") if isinstance(item, dict) else None
                    if isinstance(object_id, str):
                        invalid_ids.add(object_id)
                    log.warning(
                        "skipping a malformed %s from GET %s (id %r): %s",
                        item_schema,
                        template,
                        object_id,
                        "; ".join(errors[:3]),
                    )
                    continue
                items.append(item)
            if len(data) < c.PAGE_LIMIT:
                return Page(items, frozenset(invalid_ids), invalid)
            skip += len(data)

    # -- programs and events ---------------------------------------------

    async def programs(self) -> list[Json]:
        """Every program this VEN may read."""
        return (await self._list("/programs", "program")).items

    async def find_program(self, name: str) -> Json | None:
        """The program named ``name``, or None."""
        return next((p for p in await self.programs() if p.get("programName") == name), None)

    async def events(self, program_id: str) -> Page:
        """Events of a program (malformed ones dropped and counted)."""
        return await self._list("/events", "event", {"programID": program_id})

    # -- vens -------------------------------------------------------------

    async def find_ven(self, ven_name: str) -> Json | None:
        """The ven object named ``ven_name``, or None."""
        page = await self._list("/vens", "ven", {"venName": ven_name})
        return next((v for v in page.items if v.get("venName") == ven_name), None)

    async def create_ven(self, ven_name: str) -> Json:
        """Register this VEN (``VEN_VEN_REQUEST``)."""
        body = {"objectType": c.VEN_VEN_REQUEST, "venName": ven_name}
        _, data = await self._call("POST", "/vens", "/vens", body=body)
        return dict(data)

    # -- reports ----------------------------------------------------------

    async def create_report(self, report: Json) -> Json:
        """``POST /reports``; returns the stored report (with its id)."""
        _, data = await self._call("POST", "/reports", "/reports", body=report)
        return dict(data)

    async def update_report(self, report_id: str, report: Json) -> Json:
        """``PUT /reports/{reportID}``."""
        path = "/reports/" + quote(report_id, safe="")
        _, data = await self._call("PUT", "/reports/{reportID}", path, body=report)
        return dict(data)

    async def reports(self, event_id: str, client_name: str) -> list[Json]:
        """This client's reports on an event."""
        params = {"eventID": event_id, "clientName": client_name}
        return (await self._list("/reports", "report", params)).items

    # -- notifiers --------------------------------------------------------

    async def notifiers(self) -> Json:
        """``GET /notifiers``: the notification bindings the VTN offers."""
        _, data = await self._call("GET", "/notifiers", "/notifiers")
        return dict(data)

    async def event_topics(self, program_id: str) -> Json:
        """MQTT topic names for operations on a program's events."""
        template = "/notifiers/mqtt/topics/programs/{programID}/events"
        path = f"/notifiers/mqtt/topics/programs/{quote(program_id, safe='')}/events"
        _, data = await self._call("GET", template, path)
        return dict(data["topics"])
