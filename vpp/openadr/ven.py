"""The park's OpenADR 3.1 VEN: poll the VTN, dispatch its events, send reports.

Life cycle (a :class:`~adapters.lifecycle.BackgroundService`, like every
background component)::

    async with Ven(settings=..., sink=service, report_source=service) as ven:
        ...  # runs in the background until the block exits

Each cycle resolves the configured programs by name, registers the VEN once
(``GET /vens?venName=`` else ``POST /vens``), starts the MQTT listener when the
VTN offers one, polls ``GET /events?programID=`` for every program and sends
the reports that came due. Events are tracked by id and version
(``modificationDateTime`` plus a digest of the body, as 3.1.1 has no
modification number):

- new, or a new version → ``sink.on_dispatch`` (``revision`` + 1);
- deleted on the VTN, cancelled (User Guide 7.9), or changed to carry no
  dispatch payloads → ``sink.on_cancel`` if it had been dispatched;
- schema-invalid or unmappable (for any reason: bad timing, units, a bug
  in the mapping) → logged once per version with its reason, counted in
  :attr:`VenStatus.malformed_events` and :attr:`VenStatus.rejected` by
  reason, skipped; the rest of the poll goes on;
- refused for good by the sink (:class:`DispatchRejected`) → rejected alone
  the same way; any other sink error is retried at the next poll (counted);
- still running (no end, or an end ahead) → ``sink.on_renew`` at every poll,
  so the service can roll an open-ended event forward over its horizon.

A failed cycle waits a delay drawn from ``[cap/2, cap]`` with ``cap =
backoff_scale_s × 1.5**min(10, n)`` after the n-th failure in a row
(:mod:`vpp.openadr.backoff`; the decided delays are kept in
:attr:`VenStatus.backoff_delays`); an MQTT notification wakes the loop at once.

Every background task (the poll loop ``openadr-ven-poll``, the MQTT listener
``openadr-ven-mqtt``, both in the VEN's task group) is supervised: one
that dies of an unexpected error is logged, counted in
:attr:`VenStatus.tasks` (``restarts``, ``last_error``) and restarted after a
backoff delay; :meth:`Ven.health` summarises it for ``/readyz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from adapters.lifecycle import BackgroundService
from vpp.openadr.auth import TokenProvider
from vpp.openadr.backoff import equal_jitter_delay
from vpp.openadr.client import VtnClient
from vpp.openadr.errors import (
    DispatchRejected,
    SchemaViolation,
    VtnAuthError,
    VtnError,
    VtnUnavailable,
)
from vpp.openadr.mapping import event_to_dispatch
from vpp.openadr.model import (
    DispatchInterval,
    DispatchSink,
    GridDispatch,
    ReportSource,
)
from vpp.openadr.notifications import (
    NotificationListener,
    binding_from_notifiers,
    topics_to_subscribe,
)
from vpp.openadr.reports import build_report_request, report_interval, wanted_payloads
from vpp.openadr.schema import OpenAdrSchema
from vpp.openadr.settings import VenSettings

log = logging.getLogger("vpp.openadr.ven")

Json = dict[str, Any]


@dataclass(slots=True)
class TaskHealth:
    """One supervised background task of the VEN."""

    running: bool = False  #: the task is running (not dead, not waiting to restart)
    restarts: int = 0  #: times it died of an unexpected error and was restarted
    last_error: str | None = None  #: repr of the error that killed it last


@dataclass(slots=True)
class VenStatus:
    """Counters and state of a running VEN, for health checks and metrics."""

    polls: int = 0  #: successful poll cycles
    poll_failures: int = 0  #: failed cycles (VTN unreachable, 5xx, auth, bad body)
    consecutive_failures: int = 0  #: failures since the last success
    last_poll: datetime | None = None  #: end of the last successful cycle
    malformed_events: int = 0  #: event versions skipped (schema, mapping or refusal)
    #: rejected event versions by reason: ``schema``, ``mapping``, ``refused``
    rejected: dict[str, int] = field(default_factory=dict)
    dispatches: int = 0  #: ``on_dispatch`` calls
    dispatch_failures: int = 0  #: ``on_dispatch`` / ``on_renew`` calls that raised (retried)
    report_failures: int = 0  #: reports that could not be built or were refused
    cancels: int = 0  #: ``on_cancel`` calls
    notifications: int = 0  #: MQTT messages (and reconnects) that woke the poll
    reports_sent: int = 0  #: POST/PUT /reports that succeeded
    ven_id: str | None = None  #: id of this VEN's ven object on the VTN
    mqtt_topics: tuple[str, ...] = ()  #: topics subscribed, if any
    #: the last retry delays the poll loop decided, seconds (newest last)
    backoff_delays: deque[float] = field(default_factory=lambda: deque(maxlen=32))
    #: supervised tasks by name (``poll``, ``mqtt``)
    tasks: dict[str, TaskHealth] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        """Count one rejected event version."""
        self.malformed_events += 1
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


@dataclass(slots=True)
class _Tracked:
    program_id: str
    version: tuple[str, str]
    dispatch: GridDispatch
    dispatched: bool
    report_id: str | None = None
    reported: dict[int, Json] = field(default_factory=dict)


def _version(event: Json) -> tuple[str, str]:
    digest = hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()
    return str(event.get("modificationDateTime", "")), digest


class Ven(BackgroundService):
    """OpenADR 3.1 VEN of one park; see the module docstring."""

    _task_name = "openadr-ven"

    def __init__(
        self,
        *,
        settings: VenSettings,
        sink: DispatchSink,
        report_source: ReportSource | None = None,
        session: aiohttp.ClientSession | None = None,
        schema: OpenAdrSchema | None = None,
    ) -> None:
        """Configure the VEN; entering the context starts it.

        Args:
            settings: VTN, credentials, programs and park parameters.
            sink: Receives dispatches and cancellations.
            report_source: Supplies report readings; None sends no reports.
            session: An aiohttp session to use (not closed here); else one is made.
            schema: Validator to use; else located from settings / environment.
        """
        self.settings = settings
        self._sink = sink
        self._reports = report_source
        self._own_session = session is None
        self._session = session
        self._schema = schema if schema is not None else OpenAdrSchema.locate(settings.spec_path)
        self._client: VtnClient | None = None
        self.tokens: TokenProvider | None = None
        self.status = VenStatus()
        self.programs: dict[str, Json] = {}
        self._tracked: dict[str, _Tracked] = {}
        #: event id -> (program id, version) of the version rejected last
        self._rejected: dict[str, tuple[str, tuple[str, str]]] = {}
        #: program id -> ids of its events that failed the schema at the last poll
        self._schema_invalid: dict[str, set[str]] = {}
        self._wake = asyncio.Event()
        self._listener: NotificationListener | None = None
        self._listener_task: asyncio.Task[None] | None = None
        self._mqtt_checked = False

    # -- life cycle ---------------------------------------------------------
    # Every loop also checks _closing (set on exit): it stops even if a library
    # swallowed the cancellation (redis-py and asyncio.wait_for in 3.11 can, when it
    # races a completion).

    async def _open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self.tokens = TokenProvider(
            session=self._session,
            vtn_url=self.settings.vtn_url,
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,
            scope=self.settings.scope,
            refresh_margin_s=self.settings.token_refresh_margin_s,
            timeout_s=self.settings.request_timeout_s,
            schema=self._schema,
        )
        self._client = VtnClient(
            session=self._session,
            vtn_url=self.settings.vtn_url,
            tokens=self.tokens,
            schema=self._schema,
            timeout_s=self.settings.request_timeout_s,
        )

    async def _run(self) -> None:
        _ = self._spawn(self._supervise("poll", self._poll_loop), name="openadr-ven-poll")

    async def _close(self) -> None:
        self._listener_task = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def client(self) -> VtnClient:
        """The HTTP client (available inside the context)."""
        if self._client is None:
            raise RuntimeError("the VEN is not running; use 'async with Ven(...)'")
        return self._client

    @property
    def mqtt_subscribed(self) -> bool:
        """Whether the MQTT notifier is connected and subscribed."""
        return self._listener is not None and self._listener.subscribed.is_set()

    def active(self) -> dict[str, GridDispatch]:
        """The latest version of every tracked event, by event id."""
        return {eid: t.dispatch for eid, t in self._tracked.items()}

    def poll_now(self) -> None:
        """Wake the poll loop (used by MQTT notifications)."""
        self._wake.set()

    def health(self) -> Json:
        """A summary for ``/readyz``: tasks, VTN reachability, rejections.

        Returns:
            ``{"ok": bool, "tasks": {name: {"running", "restarts", "last_error"}},
            "consecutive_failures": int, "last_poll": RFC 3339 | None,
            "rejected_events": {reason: count}}``; ``ok`` is true when every task
            runs and the last poll succeeded.
        """
        tasks = {
            name: {"running": t.running, "restarts": t.restarts, "last_error": t.last_error}
            for name, t in self.status.tasks.items()
        }
        ok = all(t.running for t in self.status.tasks.values())
        last = self.status.last_poll
        return {
            "ok": ok and self.status.consecutive_failures == 0 and last is not None,
            "tasks": tasks,
            "consecutive_failures": self.status.consecutive_failures,
            "last_poll": last.isoformat() if last is not None else None,
            "rejected_events": dict(self.status.rejected),
        }

    async def _supervise(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``run()`` and restart it (after a backoff delay) whenever it dies.

        Cancellation stops it; an error that is not handled inside the task is
        logged with its traceback and counted in ``status.tasks[name]``.
        """
        health = self.status.tasks.setdefault(name, TaskHealth())
        failures = 0
        while not self._closing:
            health.running = True
            started = time.monotonic()
            try:
                await run()
                return
            except Exception as exc:
                health.running = False
                health.restarts += 1
                health.last_error = repr(exc)[:300]
                # A task that ran a while before dying starts its backoff afresh.
                failures = 1 if time.monotonic() - started > 60.0 else failures + 1
                delay = equal_jitter_delay(failures, self.settings.backoff_scale_s)
                log.exception("VEN task %s died; restarting in %.2f s", name, delay)
                await asyncio.sleep(delay)
            finally:
                health.running = False

    # -- the loop -------------------------------------------------------------

    async def _poll_loop(self) -> None:
        attempt = 0
        while not self._closing:
            self._wake.clear()
            try:
                await self.poll_once()
                attempt = 0
                self.status.consecutive_failures = 0
                delay = self.settings.poll_interval_s
            except (VtnError, SchemaViolation) as exc:
                attempt += 1
                self.status.poll_failures += 1
                self.status.consecutive_failures = attempt
                delay = equal_jitter_delay(attempt, self.settings.backoff_scale_s)
                self.status.backoff_delays.append(delay)
                log.warning("poll failed (%s); retrying in %.2f s", exc, delay)
            delay = min(delay, self._next_report_in())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(delay, 0.0))

    async def poll_once(self) -> None:
        """One cycle: set up what is missing, poll every program, send due reports.

        Raises:
            VtnError: The VTN could not be reached or refused (the loop backs off).
            SchemaViolation: A VTN answer other than a list item failed the schema.
        """
        await self._resolve_programs()
        await self._register()
        await self._start_mqtt()
        now = datetime.now(UTC)
        for name, program in self.programs.items():
            await self._poll_program(name, program, now)
        await self._renew(now)
        await self._send_due_reports()
        self.status.polls += 1
        self.status.last_poll = datetime.now(UTC)

    async def _resolve_programs(self) -> None:
        missing = [n for n in self.settings.program_names if n not in self.programs]
        if not missing:
            return
        for program in await self.client.programs():
            if program.get("programName") in missing:
                self.programs[program["programName"]] = program
                log.info("following program %s (%s)", program["programName"], program["id"])
        for name in missing:
            if name not in self.programs:
                log.warning("program %r not found on the VTN", name)

    async def _register(self) -> None:
        if self.status.ven_id is not None:
            return
        try:
            ven = await self.client.find_ven(self.settings.ven_name)
            if ven is None:
                ven = await self.client.create_ven(self.settings.ven_name)
                log.info("registered as ven %s", ven["id"])
        except VtnError as exc:
            if isinstance(exc, VtnUnavailable | VtnAuthError):
                raise
            # Some VTNs enroll VENs out of band and refuse this; reports need no ven object.
            log.warning("VEN registration refused (%s); going on without it", exc)
            self.status.ven_id = ""
            return
        self.status.ven_id = str(ven["id"])

    async def _start_mqtt(self) -> None:
        if not self.settings.use_mqtt or self._mqtt_checked or not self.programs:
            return
        topics: list[str] = []
        try:
            binding = binding_from_notifiers(await self.client.notifiers(), self.settings.client_id)
            if binding is not None:
                for program in self.programs.values():
                    topics += topics_to_subscribe(await self.client.event_topics(program["id"]))
        except VtnError as exc:
            if isinstance(exc, VtnUnavailable | VtnAuthError):
                raise
            log.warning("no MQTT notifications (%s); polling only", exc)
            self._mqtt_checked = True
            return
        self._mqtt_checked = len(self.programs) == len(self.settings.program_names)
        if binding is None or not topics or tuple(topics) == self.status.mqtt_topics:
            return
        if self._listener_task is not None:
            self._listener_task.cancel()
        listener = NotificationListener(
            binding=binding,
            topics=topics,
            on_notification=self._on_notification,
            tokens=self.tokens,
            schema=self._schema,
            backoff_scale_s=self.settings.backoff_scale_s,
        )
        self._listener = listener
        self.status.mqtt_topics = tuple(topics)
        self._listener_task = self._spawn(
            self._supervise("mqtt", listener.run), name="openadr-ven-mqtt"
        )

    def _on_notification(self, notification: Json | None) -> None:
        self.status.notifications += 1
        self.poll_now()

    # -- events ---------------------------------------------------------------

    async def _poll_program(self, name: str, program: Json, now: datetime) -> None:
        program_id = str(program["id"])
        page = await self.client.events(program_id)
        # each schema-invalid event counts once while it stays invalid (id-less ones per poll)
        fresh = page.invalid_ids - self._schema_invalid.get(program_id, set())
        self._schema_invalid[program_id] = set(page.invalid_ids)
        for _ in range(len(fresh) + page.invalid - len(page.invalid_ids)):
            self.status.reject("schema")
        seen = set(page.invalid_ids)
        for event in page.items:
            event_id = str(event.get("id"))
            seen.add(event_id)
            try:
                await self._consider(name, program, program_id, event, now)
            except Exception as exc:
                # One event must never stop the poll of the others (nor the VEN).
                self._reject(program_id, event_id, _version(event), "mapping", exc)
        for event_id, tracked in list(self._tracked.items()):
            if tracked.program_id == program_id and event_id not in seen:
                del self._tracked[event_id]
                log.info("event %s is gone from the VTN", event_id)
                if tracked.dispatched:
                    await self._cancel(event_id)
        gone = [e for e, (p, _) in self._rejected.items() if p == program_id and e not in seen]
        for event_id in gone:
            del self._rejected[event_id]

    async def _consider(
        self, name: str, program: Json, program_id: str, event: Json, now: datetime
    ) -> None:
        event_id = str(event["id"])
        version = _version(event)
        tracked = self._tracked.get(event_id)
        if (tracked and tracked.version == version) or self._rejected.get(event_id) == (
            program_id,
            version,
        ):
            return
        dispatch = event_to_dispatch(
            event,
            program_name=name,
            program_descriptors=program.get("payloadDescriptors") or [],
            settings=self.settings,
            revision=tracked.dispatch.revision + 1 if tracked else 1,
            now=now,
        )
        await self._apply(program_id, version, tracked, dispatch, now)

    def _reject(
        self, program_id: str, event_id: str, version: tuple[str, str], reason: str, exc: Exception
    ) -> None:
        self._rejected[event_id] = (program_id, version)
        self.status.reject(reason)
        log.warning(
            "event %s (version %s) rejected (%s): %s: %s",
            event_id, version[0] or "?", reason, type(exc).__name__, exc,
        )  # fmt: skip

    async def _apply(
        self,
        program_id: str,
        version: tuple[str, str],
        tracked: _Tracked | None,
        dispatch: GridDispatch,
        now: datetime,
    ) -> None:
        was_dispatched = tracked is not None and tracked.dispatched
        end = dispatch.end
        act = (
            not dispatch.cancelled
            and dispatch.has_instructions
            and (was_dispatched or end is None or end > now)
        )
        if act:
            try:
                await self._sink.on_dispatch(dispatch)
            except DispatchRejected as exc:
                self._reject(program_id, dispatch.event_id, version, "refused", exc)
                return
            except Exception:
                self.status.dispatch_failures += 1
                log.exception(
                    "on_dispatch failed for event %s; retrying next poll", dispatch.event_id
                )
                return
            self.status.dispatches += 1
        elif was_dispatched:
            await self._cancel(dispatch.event_id)
        new = _Tracked(program_id, version, dispatch, act)
        if tracked is not None:
            # Reported intervals stay in the report while their timing is unchanged.
            same = {i.interval_id for i in dispatch.intervals} & {
                i.interval_id for i in tracked.dispatch.intervals if i in dispatch.intervals
            }
            new.report_id = tracked.report_id
            new.reported = {k: v for k, v in tracked.reported.items() if k in same}
        self._tracked[dispatch.event_id] = new

    async def _renew(self, now: datetime) -> None:
        for tracked in list(self._tracked.values()):
            dispatch, end = tracked.dispatch, tracked.dispatch.end
            if not tracked.dispatched or dispatch.cancelled or (end is not None and end <= now):
                continue
            try:
                await self._sink.on_renew(dispatch)
            except Exception:
                self.status.dispatch_failures += 1
                log.exception("on_renew failed for event %s", dispatch.event_id)

    async def _cancel(self, event_id: str) -> None:
        try:
            await self._sink.on_cancel(event_id)
        except Exception:
            log.exception("on_cancel failed for event %s", event_id)
            return
        self.status.cancels += 1

    # -- reports --------------------------------------------------------------

    def _due(self, tracked: _Tracked, now: datetime) -> list[DispatchInterval]:
        return [
            i
            for i in tracked.dispatch.intervals
            if (end := i.end) is not None and end <= now and i.interval_id not in tracked.reported
        ]

    def _reporting(self) -> list[_Tracked]:
        if self._reports is None or not self.settings.report_on_interval_end:
            return []
        return [
            t
            for t in self._tracked.values()
            if t.dispatched and not t.dispatch.cancelled and t.dispatch.report_requests
        ]

    def _next_report_in(self) -> float:
        """Seconds until the next interval ends that is still to be reported.

        Only intervals ending in the future count: one whose report could not
        be made (no reading yet, a refusal) is retried at the poll cadence,
        never in a tight loop.
        """
        now = datetime.now(UTC)
        ends = [
            (end - now).total_seconds()
            for t in self._reporting()
            for i in t.dispatch.intervals
            if i.interval_id not in t.reported and (end := i.end) is not None and end > now
        ]
        return max(0.05, min(ends, default=float("inf")))

    async def _send_due_reports(self) -> None:
        now = datetime.now(UTC)
        for tracked in self._reporting():
            due = self._due(tracked, now)
            if not due:
                continue
            try:
                await self.send_report(tracked.dispatch.event_id, due)
            except (VtnUnavailable, VtnAuthError):
                raise  # the VTN is down: the poll backs off
            except Exception:
                # One event's report never stops the others, nor the poll.
                self.status.report_failures += 1
                log.exception("report on event %s failed", tracked.dispatch.event_id)

    async def send_report(
        self, event_id: str, intervals: Sequence[DispatchInterval] | None = None
    ) -> str | None:
        """Report on an event: POST the first time, then PUT with all intervals so far.

        Args:
            event_id: A tracked event.
            intervals: Intervals to add; default: every ended, unreported one.

        Returns:
            The report's id on the VTN, or None when there was nothing to send.

        Raises:
            KeyError: The event is not tracked.
            RuntimeError: No report source was given.
            VtnError: The VTN refused or could not be reached.
        """
        if self._reports is None:
            raise RuntimeError("no report_source given to the VEN")
        tracked = self._tracked[event_id]
        if intervals is None:
            intervals = self._due(tracked, datetime.now(UTC))
        by_id = {i.interval_id: i for i in intervals}
        wanted = wanted_payloads(tracked.dispatch)
        for reading in await self._reports.readings(tracked.dispatch, intervals):
            interval = by_id.get(reading.interval_id)
            if interval is not None:
                tracked.reported[interval.interval_id] = report_interval(interval, reading, wanted)
        if not tracked.reported:
            return None
        body = build_report_request(
            tracked.dispatch,
            list(tracked.reported.values()),
            client_name=self.settings.ven_name,
            wanted=wanted,
        )
        if tracked.report_id is None:
            existing = await self.client.reports(event_id, self.settings.ven_name)
            tracked.report_id = str(existing[0]["id"]) if existing else None
        if tracked.report_id is None:
            tracked.report_id = str((await self.client.create_report(body))["id"])
        else:
            await self.client.update_report(tracked.report_id, body)
        self.status.reports_sent += 1
        log.info("reported %d interval(s) on event %s", len(tracked.reported), event_id)
        return tracked.report_id
