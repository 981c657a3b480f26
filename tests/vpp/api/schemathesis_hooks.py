"""Schemathesis hooks for tests/vpp/api/test_schemathesis.py (loaded by the CLI via ``hooks``).

JSON Schema states types, ranges, patterns and shapes, which the OpenAPI
document carries in full; it cannot state a rule that relates two fields or
a field and the clock. The API documents those rules in the field
descriptions and refuses a body that breaks them with 422. So that the
``positive_data_acceptance`` check stays strict ("schema-valid input is
served"), these hooks bring each *positive* case's body inside exactly those
documented rules and nothing more; negative cases are never touched.

The rules, stated independently of the service's code:

* events and bids: the window must not have ended and may start at most
  366 days ahead (service clock);
* battery: soc_min < soc_max; EV charger: min_charge_kw <= max_charge_kw;
  flexible load: max_shed_kw <= baseline_kw;
* bid rules: price_floor <= price_cap; a bid's ``profile`` names a configured
  market profile (the shipped ones: gd-spot-unit, gd-market-dr);
* ``PUT /v1/parks/{park}``: a body ``id`` is the park in the path,
  ``timezone`` is a name of the IANA tz database, the baseline's ``y`` is
  at least its ``x`` (high X of Y), and its ``lookback_days`` at least the
  days the park's method needs (``days``, or ``y``);
* meter readings (JSON or CSV): each day once, over in the park's time zone
  and at most 400 days before its today (the history's retention): in any
  zone (the park's may change), the 398 days from two days before today
  (UTC) back are; days beyond those are dropped;
* irradiance upload (JSON or CSV): each value on its interval's grid of the
  park's local day, no two on one slot, each day at most 62 days before the
  park's today and 16 after, the query's ``interval_minutes`` equal to a JSON
  body's: consecutive 15-minute starts from now (UTC) are, in any time zone
  (every zone's offset is whole quarter hours), for the at most 672 values
  (7 days) a request holds; the interval is set to 15;
* irradiance read: ``from`` <= ``to``, spanning at most 31 days; ``from``
  defaults to the park's today, so a lone ``to`` is made the span's only day;
* history: ``from`` <= ``to``, spanning at most 31 days at 15m (the
  default), 92 at 1h, 366 at 1d; ``to`` defaults to the park's today, so a
  lone ``from`` must not be after it.
* ledger entries: each fuel in a unit of its carrier (natural_gas: m3 or
  1e4m3; diesel, gasoline, lpg: t or kg; heat: GJ or MJ; steam: t or GJ);
  their list: ``from`` <= ``to`` (months), ``to`` defaulting to the park's
  current month.
* ledger: ``from`` <= ``to`` (a year names its first and last day, a month
  likewise), spanning at most 7 days at period=interval, 366 at day, 3,653
  at month (the default) and year; a missing bound defaults by the clock, so
  a lone bound is made explicit (the other equal to it).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import available_timezones

import schemathesis
from schemathesis import Case
from schemathesis.generation import GenerationMode
from schemathesis.hooks import HookContext


def _positive(case: Case[Any]) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode is GenerationMode.POSITIVE


def _window(body: dict[str, Any]) -> None:
    start = body.get("start")
    try:
        when = datetime.fromisoformat(start) if isinstance(start, str) else None
    except ValueError:
        return
    if when is None or when.tzinfo is None:
        return
    now = datetime.now(UTC)
    # Generated starts run from year 1 to 9999: almost all fall outside the
    # window; an hour ahead is inside it for any duration.
    if when <= now or when - now > timedelta(days=300):
        body["start"] = (now + timedelta(hours=1)).isoformat()


def _asset(body: dict[str, Any]) -> None:
    kind = body.get("kind")
    if kind == "battery" and body.get("soc_min", 0.1) >= body.get("soc_max", 0.9):
        body["soc_min"], body["soc_max"] = 0.1, 0.9
    if kind == "ev_charger" and body.get("min_charge_kw", 0.0) > body.get("max_charge_kw", 0.0):
        body["min_charge_kw"] = body["max_charge_kw"]
    if kind == "flexible_load" and body.get("max_shed_kw", 0.0) > body.get("baseline_kw", 0.0):
        body["max_shed_kw"] = body["baseline_kw"]


def _bid(body: dict[str, Any]) -> None:
    _window(body)
    rules = body.get("rules")
    if isinstance(rules, dict) and rules.get("price_floor", 0.0) > rules.get("price_cap", 5.0):
        rules["price_floor"], rules["price_cap"] = 0.0, 5.0
    if "profile" in body and body["profile"] not in _PROFILES:
        body["profile"] = _PROFILES[0]


#: The market profiles the test's service is configured with (the shipped ones).
_PROFILES = ("gd-spot-unit", "gd-market-dr")


#: Days a request may carry that are inside the retention window in any time zone.
_SAFE_DAYS = 398


def _past_days() -> Iterator[str]:
    today = datetime.now(UTC).date()
    return ((today - timedelta(days=2 + i)).isoformat() for i in range(_SAFE_DAYS))


def _rewrite(
    case: Case[Any], key: str, field: str, new: Iterator[str], limit: int, row: re.Pattern[str]
) -> None:
    """Give ``field`` of the first ``limit`` items of the JSON list ``key`` the ``new``
    values (in CSV: the cell ``row`` finds opening each row after the header); drop the rest."""
    listed = case.body.get(key) if isinstance(case.body, dict) else None
    if isinstance(listed, list):
        del listed[limit:]
        for item in listed:
            if isinstance(item, dict) and field in item:
                item[field] = next(new)
    elif isinstance(case.body, str):
        rows = list(row.finditer(case.body))
        if len(rows) > limit:
            case.body = case.body[: rows[limit].start()]
        case.body = row.sub(lambda m: m.group(1) + next(new), case.body)


def _readings(case: Case[Any]) -> None:
    _rewrite(case, "days", "date", _past_days(), _SAFE_DAYS, _ROW_DATE)


_ROW_DATE = re.compile(r"([\r\n])[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: Irradiance values inside the days kept in any time zone (14 days of 15 minutes).
_SAFE_VALUES = 14 * 96
_ROW_START = re.compile(r"([\r\n])[0-9]{4}-[0-9]{2}-[0-9]{2}T[^,\r\n]*")


def _quarter_hours() -> Iterator[str]:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    first = now - timedelta(minutes=now.minute % 15) + timedelta(minutes=15)
    return ((first + timedelta(minutes=15 * i)).isoformat() for i in range(_SAFE_VALUES))


def _irradiance(case: Case[Any]) -> None:
    if isinstance(case.query, dict):
        case.query.pop("interval_minutes", None)
    if isinstance(case.body, dict):
        case.body["interval_minutes"] = 15
    _rewrite(case, "values", "start", _quarter_hours(), _SAFE_VALUES, _ROW_START)


def _irradiance_span(query: dict[str, Any]) -> None:
    try:
        first = date.fromisoformat(query["from"]) if "from" in query else None
        last = date.fromisoformat(query["to"]) if "to" in query else None
    except (TypeError, ValueError):
        return
    if last is not None and (first is None or first > last):
        first = last
    if first is not None and last is not None and (last - first).days >= 31:
        last = first + timedelta(days=30)
    for name, day in (("from", first), ("to", last)):
        if day is not None:
            query[name] = day.isoformat()


_SPAN = {"15m": 31, "1h": 92, "1d": 366}


def _history(query: dict[str, Any]) -> None:
    try:
        first = date.fromisoformat(query["from"]) if "from" in query else None
        last = date.fromisoformat(query["to"]) if "to" in query else None
    except (TypeError, ValueError):
        return
    if first is None:
        return  # from defaults to six days before to: inside every span
    last = first if last is None or last < first else last
    longest = timedelta(days=_SPAN.get(query.get("resolution", "15m"), 31) - 1)
    if last - first > longest:
        last = first + longest
    query["to"] = last.isoformat()


#: The units each fuel carrier is entered in (the ``unit`` field's description).
_FUEL_UNITS = {"natural_gas": ("m3", "1e4m3"), "diesel": ("t", "kg"), "gasoline": ("t", "kg"),
               "lpg": ("t", "kg"), "heat": ("GJ", "MJ"), "steam": ("t", "GJ")}  # fmt: skip
_LEDGER_SPAN = {"interval": 7, "day": 366, "month": 3653, "year": 3653}


def _ledger_entries(body: dict[str, Any]) -> None:
    fuels = body.get("fuels")
    for fuel in fuels if isinstance(fuels, list) else []:
        carrier = fuel.get("carrier") if isinstance(fuel, dict) else None
        units = _FUEL_UNITS.get(carrier) if isinstance(carrier, str) else None
        if units is not None and fuel.get("unit") not in units:
            fuel["unit"] = units[0]


def _named_days(text: str) -> tuple[date, date]:
    """The first and last day of ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``."""
    if len(text) == 4:
        return date(int(text), 1, 1), date(int(text), 12, 31)
    if len(text) == 7:
        year, month = int(text[:4]), int(text[5:])
        return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
    day = date.fromisoformat(text)
    return day, day


def _ledger(query: dict[str, Any]) -> None:
    given = [query.get(name) for name in ("from", "to")]
    if given == [None, None]:
        return  # the park's current month (at interval: today): inside every bound
    if not all(isinstance(text, str) for text in given):
        text = next(t for t in given if t is not None)
        query["from"] = query["to"] = text
    try:
        first, last = _named_days(query["from"])[0], _named_days(query["to"])[1]
    except (TypeError, ValueError):
        return
    longest = _LEDGER_SPAN.get(query.get("period", "month"), 3653)
    if first > last or (last - first).days + 1 > longest:
        query["from"] = query["to"] = first.isoformat()  # one day: inside every bound


def _ledger_months(query: dict[str, Any]) -> None:
    first, last = query.get("from"), query.get("to")
    if isinstance(first, str) and (last is None or (isinstance(last, str) and last < first)):
        query["to"] = first


@schemathesis.hook
def map_case(context: HookContext, case: Case[Any]) -> Case[Any]:
    """Bring a positive case's body inside the documented cross-field rules."""
    if not _positive(case):
        return case
    operation = case.operation.definition.raw.get("operationId")
    if operation == "importMeterReadings":
        _readings(case)
    elif operation == "putIrradiance":
        _irradiance(case)
    elif operation == "getIrradiance" and isinstance(case.query, dict):
        _irradiance_span(case.query)
    elif operation == "getHistory" and isinstance(case.query, dict):
        _history(case.query)
    elif operation == "getLedger" and isinstance(case.query, dict):
        _ledger(case.query)
    elif operation == "listLedgerEntries" and isinstance(case.query, dict):
        _ledger_months(case.query)
    if not isinstance(case.body, dict):
        return case
    if operation == "createEvent":
        _window(case.body)
    elif operation == "createBid":
        _bid(case.body)
    elif operation == "enrollAsset":
        _asset(case.body)
    elif operation == "putLedgerEntries":
        _ledger_entries(case.body)
    elif operation == "putPark":
        if case.body.get("id") is not None:
            case.body["id"] = case.path_parameters["park"]
        if "timezone" in case.body and case.body["timezone"] not in _ZONES:
            case.body["timezone"] = "Asia/Shanghai"
        baseline = case.body.get("baseline")
        if isinstance(baseline, dict):
            x, y = baseline.get("x", 5), baseline.get("y", 10)
            if isinstance(x, int | float) and isinstance(y, int | float) and x > y:
                baseline["x"], baseline["y"] = 5, 10
            need = [baseline.get("days", 5), baseline.get("y", 10)]
            lookback = baseline.get("lookback_days", 45)
            numbers = [v for v in need if isinstance(v, int | float)]
            if isinstance(lookback, int | float) and numbers and lookback < max(numbers):
                baseline["lookback_days"] = max(numbers)
    return case


_ZONES = available_timezones()
