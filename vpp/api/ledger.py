"""Ledger routes: the monthly entries, the ledger (JSON, CSV), its recomputation, the report.

* ``PUT /v1/parks/{park}/ledger/entries/{month}/{enterprise}`` replaces an
  enterprise's fuel and green-power entries of a month
  (`vpp.ledger.entries.MonthEntries`) and answers them as stored. It is
  idempotent: the same body again changes and logs nothing and is answered
  with ``Idempotent-Replay: true``. A bad body is a 422 naming each field
  (``fuels[0].unit`` for a unit its carrier is not entered in,
  ``fuels[0].quantity`` for a negative quantity, ``fuels[0].carrier`` for
  an unknown carrier); so is an ``enterprise`` the park does not know (not
  among `vpp.model.Park.enterprises` nor the owner of an enrolled asset) and
  a malformed ``month``; nothing is stored on a 422. Every change is logged
  in the park log (``ledger.entries``, `vpp.ledger.entries.EntryStore.put`).
  ``GET`` of the same path answers them (404 when none were entered), and
  ``GET …/ledger/entries?from=YYYY-MM&to=YYYY-MM`` lists every enterprise's.
* ``GET /v1/parks/{park}/ledger?period=interval|day|month|year&from=…&to=…``
  ``[&enterprise=…][&format=json|csv]``: the `vpp.ledger.rows.Ledger` of the
  park's local days ``from``..``to`` (`vpp.ledger.book.LedgerBook.ledger`);
  CSV is one line per row (`vpp.ledger.export.ledger_csv`).
* ``POST /v1/parks/{park}/ledger/months/{month}/recompute``: a closed month
  recomputed with today's factor and entries (409 when it is not closed).
* ``GET /v1/parks/{park}/ledger/report?month=YYYY-MM[&enterprise=…]``
  ``[&format=html|csv]``: the monthly report for disclosure, a printed page
  per enterprise and one for the park (`vpp.ledger.export.report_html`).

Days, months and years are the park's local ones (``Park.timezone``) and lie
in 2000-2099: ``from`` and ``to`` are ``YYYY-MM-DD``, ``YYYY-MM`` (from its
first day, to its last) or ``YYYY`` (likewise). By default ``to`` is the last
day of the park's current month (at ``period=interval``: today) and ``from``
the first day of ``to``'s month (at ``interval``: the first day ``to``
names). A span may be at most `MAX_SPAN_DAYS` long for its period: the
book's bounds (366 days of days, ten years of months or years), and 7 days
of intervals rather than its 31, so an answer stays under about 700 rows per
enterprise (a row is about 1 KB of JSON). An ``enterprise`` the park does not
know is a 404, as an unknown ``series`` of the history is.
"""

from __future__ import annotations

import asyncio
import calendar
import io
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from vpp.api.context import STATE, principal, service_now
from vpp.api.io import json_response, read_json
from vpp.api.params import query
from vpp.api.routing import ALL_ROLES, Query, Route
from vpp.auth import Role
from vpp.errors import FieldError, InvalidInput, NotFound
from vpp.ledger.book import MAX_DAYS, LedgerBook
from vpp.ledger.entries import (
    MONTH_PATTERN,
    MONTH_REGEX,
    YEAR_REGEX,
    EntryStore,
    Month,
    MonthEntries,
    certificate_errors,
    month_of,
    parse_month,
)
from vpp.ledger.export import (
    CSV_MEDIA_TYPE,
    HTML_MEDIA_TYPE,
    MonthReport,
    ledger_csv,
    report_csv,
    report_html,
)
from vpp.ledger.rows import Ledger, LedgerPeriod
from vpp.model import enterprise_ids, invalid_input, parse_json_data
from vpp.state import State

__all__ = [
    "ENTRIES",
    "LEDGER",
    "MAX_SPAN_DAYS",
    "MONTH_PATTERN",
    "ROUTES",
    "SPAN_PATTERN",
    "EnterpriseEntries",
    "EntriesList",
    "span_of",
]

#: The park ledger of the app.
LEDGER = web.AppKey("vpp.ledger", LedgerBook)
#: The monthly entries of the app.
ENTRIES = web.AppKey("vpp.ledger.entries", EntryStore)

_YEAR = YEAR_REGEX
_MONTH = MONTH_REGEX
# Every real day of 2000-2099 and no other: 31-day months, 30-day months,
# February to the 28th, and February 29th of the leap years (every fourth
# year: 2000 is one, 2100 is out of range), so a string the document calls
# valid is a day the service takes.
_DAY = (
    f"{_YEAR}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])"
    "|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))"
    "|20([02468][048]|[13579][26])-02-29"
)
#: ``from`` / ``to``: a day ``YYYY-MM-DD``, a month ``YYYY-MM`` or a year ``YYYY`` of 2000-2099.
SPAN_PATTERN = f"^({_DAY}|{_MONTH}|{_YEAR})$"
#: An enterprise id in a path: what an asset's ``owner`` may be, but for a slash.
ENTERPRISE_PATTERN = "^[^/]{1,200}$"

#: The longest span, days, a request may name at each period (see the module).
MAX_SPAN_DAYS: dict[str, int] = {**MAX_DAYS, "interval": min(7, MAX_DAYS["interval"])}

_WRITE = frozenset({Role.PARK_OPERATOR})
_ENTRY = "/v1/parks/{park}/ledger/entries/{month}/{enterprise}"
_ENTRY_PATTERNS = {"month": MONTH_PATTERN, "enterprise": ENTERPRISE_PATTERN}
_SPAN = re.compile(SPAN_PATTERN)


class EnterpriseEntries(BaseModel):
    """One enterprise's entries of one month."""

    month: Month
    enterprise: str
    entries: MonthEntries


class EntriesList(BaseModel):
    """Every enterprise's entries of the months ``first``..``last``, by month then enterprise."""

    park: str
    first: Month
    last: Month
    items: list[EnterpriseEntries]


def span_of(text: str, name: str) -> tuple[date, date]:
    """The first and last day a ``from`` / ``to`` value names.

    Args:
        text: ``YYYY-MM-DD`` (that day), ``YYYY-MM`` (the month's days) or
            ``YYYY`` (the year's days), matching `SPAN_PATTERN`.
        name: the parameter, for an error.

    Raises:
        InvalidInput: ``text`` names no day of 2000-2099 (naming ``name``).
    """
    if _SPAN.fullmatch(text) is None:
        raise InvalidInput([FieldError(name, f"must match {SPAN_PATTERN}", "pattern")])
    if len(text) == 4:
        year = int(text)
        return date(year, 1, 1), date(year, 12, 31)
    if len(text) == 7:
        first = parse_month(text)
        return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])
    day = date.fromisoformat(text)
    return day, day


def _last_of_month(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def ledger_span(
    first_text: str | None, last_text: str | None, today: date, period: str
) -> tuple[date, date]:
    """The days a ledger request names, defaults applied and bounds checked.

    Args:
        first_text: ``from`` as given (None: absent).
        last_text: ``to`` as given (None: absent).
        today: the park's local today.
        period: the ledger's period (its bound, `MAX_SPAN_DAYS`).

    Raises:
        InvalidInput: ``from`` after ``to``, or ``to`` further from it than
            the period allows.
    """
    interval = period == "interval"
    if last_text is not None:
        named_first, last = span_of(last_text, "to")
    else:
        named_first, last = (today, today) if interval else (today, _last_of_month(today))
    if first_text is not None:
        first = span_of(first_text, "from")[0]
    else:
        first = named_first if interval else named_first.replace(day=1)
    if first > last:
        raise InvalidInput([FieldError("from", f"{first} is after to ({last})", "range")])
    longest = MAX_SPAN_DAYS[period]
    days = (last - first).days + 1
    if days > longest:
        message = f"{days} days from {first}: at most {longest} at period={period}"
        raise InvalidInput([FieldError("to", message, "range")])
    return first, last


async def _local_today(request: web.Request, state: State, park_id: str) -> date:
    park = await state.get_park(park_id)
    return service_now(request).astimezone(ZoneInfo(park.timezone)).date()


async def known_enterprises(state: State, park_id: str) -> set[str]:
    """The enterprises of a park: those with a contract and the owners of its assets."""
    return enterprise_ids(await state.get_park(park_id), await state.list_assets(park_id))


_INDEX = re.compile(r"\.([0-9]+)(?=\.|$)")


def _entries_body(data: object) -> tuple[MonthEntries | None, list[FieldError]]:
    """The body as `MonthEntries`, or the errors naming each field (``fuels[0].unit``)."""
    try:
        return parse_json_data(MonthEntries, data), []
    except ValidationError as exc:
        errors = invalid_input(exc).errors
    # the entries' own spelling of a list item: fuels[0].unit, not fuels.0.unit
    return None, [FieldError(_INDEX.sub(r"[\1]", e.field), e.message, e.type) for e in errors]


async def put_entries(request: web.Request) -> web.Response:
    """Replace an enterprise's entries of a month: 200 with them as stored.

    Raises:
        InvalidInput: a bad body (each field named), or an ``enterprise`` the
            park does not know; nothing is stored.
    """
    m = request.match_info
    park_id, month, enterprise = m["park"], m["month"], m["enterprise"]
    state = request.app[STATE]
    entries, errors = _entries_body(await read_json(request))
    if enterprise not in await known_enterprises(state, park_id):
        message = "not an enterprise of the park (no contract, and no enrolled asset it owns)"
        errors.append(FieldError("enterprise", message, "unknown"))
    if entries is not None:
        holders = await request.app[ENTRIES].certificate_holders(park_id, month, enterprise)
        errors += certificate_errors(entries, holders)
    if errors or entries is None:
        raise InvalidInput(errors)
    who = principal(request)
    before = await request.app[ENTRIES].put(
        park_id, month, enterprise, entries, by=who.name, role=who.role.value
    )
    headers = {"Idempotent-Replay": "true"} if before == entries else None
    return json_response(entries, headers=headers)


async def get_entries(request: web.Request) -> web.Response:
    """An enterprise's entries of a month; 404 when none were entered."""
    m = request.match_info
    entries = await request.app[ENTRIES].get(m["park"], m["month"], m["enterprise"])
    if entries is None:
        raise NotFound("entries", f"{m['month']}/{m['enterprise']}")
    return json_response(entries)


async def list_entries(request: web.Request) -> web.Response:
    """Every enterprise's entries of the months ``from``..``to`` (default: the current month)."""
    park_id = request.match_info["park"]
    params = query(request)
    this_month = month_of(await _local_today(request, request.app[STATE], park_id))
    last: str = params["to"] or this_month
    first: str = params["from"] or last
    if first > last:
        raise InvalidInput([FieldError("from", f"{first} is after to ({last})", "range")])
    found = await request.app[ENTRIES].months(park_id, first, last)
    items = [
        EnterpriseEntries(month=month, enterprise=enterprise, entries=entries)
        for (month, enterprise), entries in sorted(found.items())
    ]
    return json_response(EntriesList(park=park_id, first=first, last=last, items=items))


async def _enterprise(state: State, park_id: str, enterprise: str | None) -> str | None:
    """The ``enterprise`` query parameter; NotFound for one the park does not know."""
    if enterprise is not None and enterprise not in await known_enterprises(state, park_id):
        raise NotFound("enterprise", enterprise)
    return enterprise


def _answer(text: str, content_type: str) -> web.Response:
    """A body that may run to megabytes (a week of intervals of a large park).

    aiohttp sends a ``BytesIO`` piece by piece, the event loop running
    between pieces, where it would write raw bytes in one go.
    """
    charset = "utf-8" if content_type.startswith("text/") else None
    return web.Response(body=io.BytesIO(text.encode()), content_type=content_type, charset=charset)


def _json(ledger: Ledger) -> str:
    return ledger.model_dump_json(exclude_none=False)


async def _ledger_answer(
    ledger: Ledger, render: Callable[[Ledger], str], media: str
) -> web.Response:
    """A ledger rendered in a worker thread, so the event loop runs meanwhile.

    A week of intervals of 50 enterprises is 34,000 rows: 29 MB of JSON in
    0.24 s, 11 MB of CSV in 1 s on this machine, time the loop (which runs
    the park's control loops too) keeps.
    """
    return _answer(await asyncio.to_thread(render, ledger), media)


async def get_ledger(request: web.Request) -> web.Response:
    """The park's ledger over local days ``from``..``to`` by ``period``: JSON or CSV."""
    park_id = request.match_info["park"]
    params = query(request)
    period: LedgerPeriod = params["period"]
    state = request.app[STATE]
    today = await _local_today(request, state, park_id)
    first, last = ledger_span(params["from"], params["to"], today, period)
    enterprise = await _enterprise(state, park_id, params["enterprise"])
    ledger = await request.app[LEDGER].ledger(
        park_id, period, first, last, enterprise=enterprise, now=service_now(request)
    )
    if params["format"] == "csv":
        return await _ledger_answer(ledger, ledger_csv, CSV_MEDIA_TYPE)
    return await _ledger_answer(ledger, _json, "application/json")


async def recompute_month(request: web.Request) -> web.Response:
    """Recompute a closed month with today's factor and entries; 409 when it is not closed."""
    m = request.match_info
    who = principal(request)
    ledger = await request.app[LEDGER].recompute(
        m["park"], m["month"], now=service_now(request), by=who.name, role=who.role.value
    )
    return await _ledger_answer(ledger, _json, "application/json")


def _last_complete_month(today: date) -> str:
    return month_of(today.replace(day=1) - timedelta(days=1))


async def get_report(request: web.Request) -> web.Response:
    """The monthly report: a printable HTML page per enterprise and the park, or CSV."""
    park_id = request.match_info["park"]
    params = query(request)
    now = service_now(request)
    state = request.app[STATE]
    month: str = params["month"] or _last_complete_month(
        await _local_today(request, state, park_id)
    )
    first = parse_month(month)
    enterprise = await _enterprise(state, park_id, params["enterprise"])
    # with an enterprise, the book answers its rows only: its report is its own page
    ledger = await request.app[LEDGER].ledger(
        park_id, "month", first, _last_of_month(first), enterprise=enterprise, now=now
    )
    # the entries its figures used: a frozen month's as frozen (the rows say
    # pending_changes when today's differ), else today's
    frozen = await request.app[LEDGER].months.get_many(park_id, [first])
    if first in frozen:
        used = dict(frozen[first].entries)
    else:
        stored = await request.app[ENTRIES].months(park_id, month, month)
        used = {owner: e for (_, owner), e in stored.items()}
    entries = {owner: e for owner, e in used.items() if enterprise in (None, owner)}
    report = MonthReport(ledger=ledger, month=month, entries=entries, generated=now)
    if params["format"] == "csv":
        return _answer(report_csv(report), CSV_MEDIA_TYPE)
    return _answer(report_html(report), HTML_MEDIA_TYPE)


_MonthParam = Annotated[str, Field(pattern=MONTH_PATTERN)]
_SpanParam = Annotated[str, Field(pattern=SPAN_PATTERN)]
_Enterprise = Annotated[str, Field(min_length=1, max_length=200)]

ROUTES = [
    Route("PUT", _ENTRY, put_entries, "putLedgerEntries",
          "Replace an enterprise's fuel and green-power entries of a month (idempotent)", _WRITE,
          request=MonthEntries, response=MonthEntries, errors=(400, 404, 415, 422),
          tags=("ledger",), path_patterns=_ENTRY_PATTERNS,
          headers={"Idempotent-Replay": "true when the same entries were stored already "
                                        "(nothing changed, nothing logged)"},
          problems={422: "a bad entry, named by its field (fuels[0].unit: a unit the carrier "
                         "is not entered in; fuels[0].quantity: negative; fuels[0].carrier: "
                         "unknown; green_power[0].certificates[1]: a certificate repeated or "
                         "claimed by another month's or enterprise's entries), an enterprise "
                         "the park does not know (enterprise), or a "
                         "malformed month; nothing is stored"}),
    Route("GET", _ENTRY, get_entries, "getLedgerEntries",
          "An enterprise's fuel and green-power entries of a month", ALL_ROLES,
          response=MonthEntries, errors=(404,), tags=("ledger",), path_patterns=_ENTRY_PATTERNS,
          problems={404: "no such park, or no entries of that enterprise and month"}),
    Route("GET", "/v1/parks/{park}/ledger/entries", list_entries, "listLedgerEntries",
          "Every enterprise's entries of the months from..to", ALL_ROLES,
          response=EntriesList, errors=(404, 422), tags=("ledger",),
          query={"from": Query("the first month, YYYY-MM (default: to)", _MonthParam),
                 "to": Query("the last month, YYYY-MM, included (default: the park's current "
                             "month)", _MonthParam)},
          problems={422: "a month its pattern refuses, or from after to"}),
    Route("GET", "/v1/parks/{park}/ledger", get_ledger, "getLedger",
          "The park's energy-carbon ledger per enterprise and for the park: JSON, or CSV with "
          "format=csv", ALL_ROLES,
          response=Ledger, errors=(404, 422), tags=("ledger",), text_types=(CSV_MEDIA_TYPE,),
          query={
              "period": Query("the rows: interval (15 min), day, month or year (park-local)",
                              LedgerPeriod, "month"),
              "from": Query("the first local day: YYYY-MM-DD, or YYYY-MM / YYYY for the "
                            "month's / year's first day (default: the first day of to's month; "
                            "at period=interval, the first day to names)", _SpanParam),
              "to": Query("the last local day, included: YYYY-MM-DD, or YYYY-MM / YYYY for the "
                          "month's / year's last day (default: the last day of the park's "
                          "current month; at period=interval, today); at most 7 days from from "
                          "at interval, 366 at day, 3,653 (ten years) at month and year",
                          _SpanParam),
              "enterprise": Query("only this enterprise's rows (an asset owner or an enterprise "
                                  "of the park)", _Enterprise),
              "format": Query("json (default) or csv (one line per row)",
                              Literal["json", "csv"], "json"),
          },
          problems={404: "no such park, or no such enterprise in it",
                    422: "a parameter its schema refuses, from after to, or a span over the "
                         "period's bound (7, 366 or 3,653 days)"}),
    Route("POST", "/v1/parks/{park}/ledger/months/{month}/recompute", recompute_month,
          "recomputeLedgerMonth",
          "Recompute a closed month with the park's factor and entries now (logged)", _WRITE,
          response=Ledger, errors=(404, 409), tags=("ledger",),
          path_patterns={"month": MONTH_PATTERN},
          problems={409: "the month is not closed yet: its figures follow the data already"}),
    Route("GET", "/v1/parks/{park}/ledger/report", get_report, "getLedgerReport",
          "The monthly ledger report for disclosure: a printable HTML page per enterprise (and "
          "the park), stating every factor and its source; or CSV", ALL_ROLES,
          content_type=HTML_MEDIA_TYPE, errors=(404,), tags=("ledger", "reports"),
          text_types=(CSV_MEDIA_TYPE,),
          query={
              "month": Query("the month, YYYY-MM (default: the park's last complete month)",
                             _MonthParam),
              "enterprise": Query("one enterprise's page (default: every enterprise, then the "
                                  "park, each on its own printed page)", _Enterprise),
              "format": Query("html (default, printable) or csv (a figure per line)",
                              Literal["html", "csv"], "html"),
          },
          problems={404: "no such park, or no such enterprise in it"}),
]  # fmt: skip
