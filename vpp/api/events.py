"""Dispatch event routes: create (idempotent), read, list, modify, cancel, report.

A grid operator posts an event and gets 202 at once: the event is stored as
``received`` and the park's control loop schedules, runs and completes it.
Posting the same id again with the same content answers the stored event
(202, ``Idempotent-Replay: true``); with other content it is a 409, and so
is an event whose window overlaps another open event of the park. An event
whose window has already ended on the service clock is a 422 naming
``start``; one larger than the park can hold is accepted (an award stands)
and its record says what the park expects to deliver (``expected``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, Field

from vpp.api.context import CLOCK, SETTINGS, STATE, service_now
from vpp.api.history import HISTORY
from vpp.api.io import json_response, read_json
from vpp.api.ledger import LEDGER
from vpp.api.params import query
from vpp.api.routing import ALL_ROLES, Query, Route
from vpp.auth import Role
from vpp.errors import InvalidInput, NotFound
from vpp.events import (
    EventPatch,
    EventRecord,
    EventReport,
    EventRequest,
    EventState,
    EventStore,
    ExpectedDelivery,
    Reconciliation,
    ReportRows,
    SettlementRules,
    build_report,
    expected_delivery,
    parse_event_patch,
    parse_event_request,
    read_park,
    report_csv,
)
from vpp.events.model import EnterpriseTrack
from vpp.events.rebound import Rebound, load_rebound
from vpp.ledger.factors import ElectricityFactor
from vpp.model import Park
from vpp.settings import ReportSettings

__all__ = ["EVENTS", "ROUTES", "WAKE", "event_report", "report_factor"]

#: The event store of the app.
EVENTS = web.AppKey("vpp.events", EventStore)
#: Set by the runtime: wakes the park's control loop in this process, so an
#: event is acted on at once instead of at the loop's next cycle. Returns what
#: is done once the woken cycle has handed its setpoints over (None: no loop
#: of the park runs here).
WAKE: web.AppKey[Callable[[str], Awaitable[None] | None]] = web.AppKey("vpp.wake")

#: How long an answer waits at most for the woken cycle to hand its setpoints
#: over before it computes its estimate (which would take the CPU from that cycle).
ACT_WAIT_S = 2.0


async def _wake_and_estimate(
    request: web.Request, park: str, event: EventRequest, now: datetime
) -> ExpectedDelivery:
    """Wake the park's loop, then estimate the delivery from the state before it acted.

    The registry and live state are read first (the estimate is of the park
    as the event found it); the estimate's solves wait until the woken cycle
    has sent its setpoints (at most `ACT_WAIT_S`), so the event's first
    setpoints never wait for the answer's estimate.
    """
    state = request.app[STATE]
    seen = await read_park(state, park)
    wake = request.app.get(WAKE)
    acted = wake(park) if wake is not None else None
    if acted is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(acted), ACT_WAIT_S)
    return await expected_delivery(state, park, event, now, seen=seen)


def _wake(request: web.Request) -> None:
    wake = request.app.get(WAKE)
    if wake is not None:
        wake(request.match_info["park"])


_GRID = frozenset({Role.GRID_OPERATOR})
_COLLECTION = "/v1/parks/{park}/events"
_ITEM = "/v1/parks/{park}/events/{event}"


class EventPayload(BaseModel):
    """An event with its state and per-interval target, baseline and delivery."""

    event: EventRecord


class EventList(BaseModel):
    """The park's events, newest first."""

    items: list[EventRecord] = Field(default_factory=list)


def _body(record: EventRecord, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"event": record.to_json()}, status=status, headers=headers)


async def create_event(request: web.Request) -> web.Response:
    """Receive an event: 202 (also for a repeat), 409 for a reused id, 422 for bad input.

    An event whose window overlaps another open event of the park (received,
    scheduled or active) is 409 at once, naming that event and its window;
    nothing is stored (`vpp.events.EventStore.create`).
    """
    park = request.match_info["park"]
    event = parse_event_request(await read_json(request))
    now = service_now(request)
    store = request.app[EVENTS]
    try:
        event.check_window(now)
    except InvalidInput as refused:
        # A retry of an event already received is answered as before (a
        # replay, or 409 for other content), even once its window is over.
        try:
            await store.get(park, event.id)
        except NotFound:
            raise refused from None
    record, created = await store.create(park, event, now)
    headers = {"Location": _ITEM.format(park=park, event=record.id)}
    if not created:
        headers["Idempotent-Replay"] = "true"
    else:
        # The loop acts on the event at once; the estimate (a worker-thread
        # solve) follows. An award stands, so an event larger than the park is
        # accepted, and the record says what the park expects to deliver.
        expected = await _wake_and_estimate(request, park, event, now)
        await store.update(park, record.id, lambda r: setattr(r, "expected", expected))
        # The answer is the event as received (GET shows where the loop has taken it since).
        record.expected = expected
    return _body(record, 202, headers)


async def list_events(request: web.Request) -> web.Response:
    """The park's latest events."""
    records = await request.app[EVENTS].recent(request.match_info["park"])
    return web.json_response({"items": [r.to_json() for r in records]})


async def get_event(request: web.Request) -> web.Response:
    """One event: state, history and per-interval target / baseline / delivered."""
    m = request.match_info
    return _body(await request.app[EVENTS].get(m["park"], m["event"]), 200)


async def modify_event(request: web.Request) -> web.Response:
    """New targets and length: extend or shorten in place (see `vpp.events.EventPatch`).

    409 when the event is over or an extension would run into another open
    event. The answer carries ``expected`` recomputed for the new targets.
    """
    park = request.match_info["park"]
    patch = parse_event_patch(await read_json(request))
    now = service_now(request)
    store = request.app[EVENTS]
    record = await store.resize(park, request.match_info["event"], patch.targets_kw, now)
    # As on create: what the park expects to deliver against the new targets.
    expected = await _wake_and_estimate(request, park, record.as_request(), now)
    targets = record.target_kw

    def estimate(r: EventRecord) -> None:
        if r.target_kw == targets:  # not for targets a later PATCH has set since
            r.expected = expected

    await store.update(park, record.id, estimate)
    record.expected = expected
    return _body(record, 202)


async def cancel_event(request: web.Request) -> web.Response:
    """Cancel an event; the control loop releases its devices at its next cycle."""
    m = request.match_info
    record = await request.app[EVENTS].transition(
        m["park"],
        m["event"],
        EventState.CANCELLED,
        service_now(request),
        "cancelled by the grid operator",
    )
    _wake(request)
    return _body(record, 202)


def _tracks(record: EventRecord) -> dict[str, EnterpriseTrack]:
    """The record's enterprise tracks, each list one value per interval.

    A list shorter than the event (not filled that far yet) is unknown in the
    intervals it lacks, as `EventRecord.resize` pads them (`EnterpriseTrack.fit`).
    """
    tracks = {owner: track.model_copy(deep=True) for owner, track in record.enterprises.items()}
    for track in tracks.values():
        track.fit(len(record.target_kw))
    return tracks


async def report_factor(app: web.Application, park: Park, record: EventRecord) -> ElectricityFactor:
    """The grid emission factor an event's report uses: the one place it is chosen.

    The factor of the event's month in the ledger (`LedgerBook.factor_for`
    of the park-local day the event starts): the month's frozen factor once
    the month is closed, else the park's chosen one (``Park.carbon``; the
    MEE/NBS 2023 Southern grid region factor unless the park chose another).
    So a change of the park's factor moves the reports of open months and
    never those of a closed month, until the month is recomputed.

    Args:
        app: the application (its ledger and clock).
        park: the event's park.
        record: the event.
    """
    day = record.start.astimezone(ZoneInfo(park.timezone)).date()
    clock = app.get(CLOCK)  # the service clock; wall time on an app without one
    return await app[LEDGER].factor_for(park, day, now=None if clock is None else clock.now())


def event_report(
    record: EventRecord,
    park: Park,
    cfg: ReportSettings,
    factor: ElectricityFactor,
    rebound: Rebound | None = None,
) -> EventReport:
    """The report of an event under the settlement and reconciliation settings.

    Args:
        record: the event.
        park: its park, for its enterprises' contracts.
        cfg: the ``[reports]`` settings.
        factor: the grid emission factor of its avoided CO2 (`report_factor`).
        rebound: its rebound window measured so far (`vpp.events.rebound.load_rebound`);
            None: not counted (its avoided CO2 is its intervals' alone).
    """
    rules = SettlementRules(
        price_per_kwh=cfg.price_per_kwh if record.price_per_kwh is None else record.price_per_kwh,
        performance_threshold=cfg.performance_threshold,
        penalty_per_kwh=cfg.penalty_per_kwh,
        cap_ratio=cfg.cap_ratio,
        currency=cfg.currency,
    )
    state = record.state.value
    return build_report(
        event_id=record.id,
        starts=record.interval_starts(),
        interval_s=record.interval_s,
        target_kw=record.target_kw,
        baseline_kw=record.baseline_kw,
        measured_kw=record.measured_kw,
        rules=rules,
        factor=factor,
        state=record.state,
        why=f"{state}: {record.reason}" if record.reason else state,
        baseline=record.baseline,
        enterprises=_tracks(record),
        contract_of=park.enterprise,
        reconcile=Reconciliation(cfg.reconcile_tolerance, cfg.reconcile_floor_kw),
        rebound=rebound,
    )


async def get_report(request: web.Request) -> web.StreamResponse:
    """Delivered versus target, settlement and avoided CO2, by enterprise too.

    The avoided CO2 counts the rebound window after the event, measured from
    the interval history (`vpp.events.rebound`), at the park's grid factor
    (`report_factor`). JSON carries the park's figures and their breakdown
    by enterprise; ``?format=csv`` gives the park's per-interval table, with
    ``by=enterprise`` one row per enterprise and interval, with
    ``by=rebound`` the rebound window's intervals (`report_csv`).
    """
    m = request.match_info
    app = request.app
    record = await app[EVENTS].get(m["park"], m["event"])
    park = await app[STATE].get_park(m["park"])
    cfg = app[SETTINGS].reports
    rebound = await load_rebound(
        app[HISTORY], app[EVENTS], park, record,
        floor_h=cfg.rebound_window_h, now=service_now(request),
    )  # fmt: skip
    report = event_report(record, park, cfg, await report_factor(app, park, record), rebound)
    params = query(request)
    if params["format"] == "csv":
        return web.Response(text=report_csv(report, params["by"]), content_type="text/csv")
    return json_response(report, exclude_none=False)


ROUTES = [
    Route("POST", _COLLECTION, create_event, "createEvent", "Receive a dispatch event", _GRID,
          request=EventRequest, response=EventPayload, status=202,
          errors=(400, 409, 415, 422), tags=("events",),
          headers={"Location": "the event's URL",
                   "Idempotent-Replay": "true when the event was stored before"},
          problems={409: "the id is taken by an event with other content, or the window "
                         "overlaps an open event of the park (received, scheduled or active; "
                         "the detail names it and its window); nothing is stored"}),
    Route("GET", _COLLECTION, list_events, "listEvents", "List the park's events", ALL_ROLES,
          response=EventList, tags=("events",)),
    Route("GET", _ITEM, get_event, "getEvent", "Event state and per-interval delivery",
          ALL_ROLES, response=EventPayload, errors=(404,), tags=("events",)),
    Route("PATCH", _ITEM, modify_event, "modifyEvent", "Change an event's targets", _GRID,
          request=EventPatch, response=EventPayload, status=202,
          errors=(400, 404, 409, 415, 422), tags=("events",),
          problems={409: "the event is over, or an extension would overlap another open event "
                         "of the park (the detail names it and its window)"}),
    Route("DELETE", _ITEM, cancel_event, "cancelEvent",
          "Cancel an event (it stays readable, state cancelled, with its report)", _GRID,
          response=EventPayload, status=202, errors=(404, 409), tags=("events",)),
    Route("GET", _ITEM + "/report", get_report, "getEventReport",
          "Performance, settlement and avoided CO2 of an event (JSON, or CSV with format=csv)",
          ALL_ROLES, response=EventReport, errors=(404,), tags=("events", "reports"),
          text_types=("text/csv",),
          query={"format": Query("json (default) or csv", Literal["json", "csv"], "json"),
                 "by": Query("the CSV's rows: park (default, one per interval), enterprise "
                             "(one per enterprise and interval) or rebound (the rebound "
                             "window's intervals); JSON has them all", ReportRows, "park")}),
]  # fmt: skip
