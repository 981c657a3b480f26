"""Irradiance routes: upload a park's irradiance forecast, read back what is held.

``PUT /v1/parks/{park}/irradiance`` takes the global horizontal irradiance
expected at the park (JSON or CSV, intervals of 15, 30 or 60 minutes; rules
and storage in `vpp.forecast.irradiance`), checks it whole (a bad value is a
422 naming it, ``values[3].ghi_w_m2`` or ``row 4, column start``, and nothing
is stored) and replaces the slots it gives. The PV forecast
(`vpp.forecast.pv`) takes a day's shape from it where it is held. Every
upload is appended to the park log (``irradiance.uploaded``) with who made it.

``GET /v1/parks/{park}/irradiance?from=…&to=…`` gives the days held between
two local days (both included; ``from`` defaults to the park's today, ``to``
to 16 days after ``from``; at most 31 days), each with its 96 slot values
(null where none was uploaded).

Who may upload: a park operator (it runs the park and buys its weather
forecast) and a grid operator (a dispatcher may hold the regional forecast),
as for metering data; a viewer reads.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema

from vpp.api.context import STATE, principal, service_now
from vpp.api.io import json_response, read_csv, read_json
from vpp.api.params import query
from vpp.api.problem import Problem
from vpp.api.routing import Query, Route
from vpp.auth import Role
from vpp.errors import FieldError, InvalidInput
from vpp.forecast.irradiance import (
    AHEAD_DAYS,
    INTERVALS,
    IrradianceCsv,
    IrradianceUpload,
    irradiance_days,
    parse_csv,
    parse_json,
    put_irradiance,
)
from vpp.history.grid import SLOTS_PER_DAY
from vpp.history.readings import IsoDate

__all__ = ["ROUTES", "IrradianceDay", "IrradianceHeld", "IrradianceStored"]

_PATH = "/v1/parks/{park}/irradiance"
_UPLOAD = frozenset({Role.PARK_OPERATOR, Role.GRID_OPERATOR})
_READ = frozenset({Role.PARK_OPERATOR, Role.GRID_OPERATOR, Role.VIEWER})
_JSON = "application/json"
_CSV = "text/csv"
#: Most days one GET spans.
MAX_SPAN_DAYS = 31


class IrradianceStored(BaseModel):
    """What an upload stored."""

    park: str
    timezone: str = Field(description="the park's time zone: the days are its local days")
    days: list[date] = Field(description="the local days the upload wrote to, sorted")
    slots: int = Field(ge=0, description="15-minute slots set by the upload")


class IrradianceDay(BaseModel):
    """One local day of uploaded irradiance."""

    date: date
    ghi_w_m2: list[float | None] = Field(
        min_length=SLOTS_PER_DAY,
        max_length=SLOTS_PER_DAY,
        description="mean GHI of each 15-minute slot, W/m², [0] = 00:00-00:15; null: none uploaded",
    )


class IrradianceHeld(BaseModel):
    """The uploaded irradiance held for a span of local days."""

    park: str
    timezone: str
    first: date
    last: date
    days: list[IrradianceDay] = Field(description="the days of the span that hold any value")


async def put_park_irradiance(request: web.Request) -> web.Response:
    """Store an irradiance forecast: 200 with the days written."""
    park_id = request.match_info["park"]
    state = request.app[STATE]
    park = await state.get_park(park_id)
    tz = ZoneInfo(park.timezone)
    today = service_now(request).astimezone(tz).date()
    interval: int | None = query(request)["interval_minutes"]
    if request.content_type == _JSON:
        data = await read_json(request)
        given = data.get("interval_minutes", 15) if isinstance(data, dict) else None
        if interval is not None and given != interval:
            message = f"{interval} differs from the body's interval_minutes ({given}): give one"
            raise InvalidInput([FieldError("interval_minutes", message, "conflict")])
        days = parse_json(data, tz=tz, today=today)
        form = "json"
    elif request.content_type == _CSV:
        text = await read_csv(request)
        days = parse_csv(text, interval_minutes=interval or 15, tz=tz, today=today)
        form = "csv"
    else:
        got = request.content_type or "nothing"
        raise Problem(415, f"expected {_JSON} or {_CSV}, got {got}")
    stored = await put_irradiance(state, park_id, days, today=today)
    slots = sum(int((row == row).sum()) for row in days.values())  # finite: NaN != NaN
    who = principal(request)
    await state.append_park_log(
        park_id,
        "irradiance.uploaded",
        by=who.name,
        role=who.role.value,
        form=form,
        days=",".join(d.isoformat() for d in stored),
        slots=slots,
    )
    return json_response(
        IrradianceStored(park=park_id, timezone=park.timezone, days=stored, slots=slots)
    )


async def get_park_irradiance(request: web.Request) -> web.Response:
    """The uploaded irradiance held for the park's local days ``from``..``to``."""
    params = query(request)
    park_id = request.match_info["park"]
    state = request.app[STATE]
    park = await state.get_park(park_id)
    today = service_now(request).astimezone(ZoneInfo(park.timezone)).date()
    first: date = params["from"] if params["from"] is not None else today
    last: date = params["to"] if params["to"] is not None else first + timedelta(days=AHEAD_DAYS)
    if first > last:
        raise InvalidInput([FieldError("from", f"{first} is after to ({last})", "range")])
    if (last - first).days + 1 > MAX_SPAN_DAYS:
        message = f"{(last - first).days + 1} days from {first}: at most {MAX_SPAN_DAYS}"
        raise InvalidInput([FieldError("to", message, "range")])
    span = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    held = await irradiance_days(state, park_id, span)
    days = [
        IrradianceDay(
            date=day,
            ghi_w_m2=[float(f"{v:.7g}") if v == v else None for v in held[day].tolist()],
        )
        for day in sorted(held)
    ]
    body = IrradianceHeld(park=park_id, timezone=park.timezone, first=first, last=last, days=days)
    return json_response(body, exclude_none=False)


def _interval(value: int) -> int:
    if value not in INTERVALS:
        raise ValueError(f"Input should be {', '.join(map(str, INTERVALS))}")
    return value


#: An interval of minutes in the query: 15, 30 or 60.
_Interval = Annotated[
    int,
    AfterValidator(_interval),
    WithJsonSchema({"type": "integer", "enum": list(INTERVALS)}),
]

ROUTES = [
    Route("PUT", _PATH, put_park_irradiance, "putIrradiance",
          "Upload an irradiance forecast of the park (GHI per 15, 30 or 60 minutes; JSON or "
          "CSV); the slots given replace what was held", _UPLOAD,
          request=IrradianceUpload, request_forms={_CSV: IrradianceCsv},
          response=IrradianceStored, errors=(400, 404, 415, 422), tags=("forecast",),
          query={"interval_minutes": Query(
              "the values' interval for a CSV body (default 15); with JSON, the body's "
              "interval_minutes, which it must equal if given", _Interval)},
          problems={
              404: "no such park",
              422: "a bad value, named (values[3].ghi_w_m2; in CSV row 4, column start): a "
                   "time without its UTC offset or off the interval's grid of the park's "
                   "day, a GHI outside 0-1500 W/m² or not a number, two values on one slot, "
                   "a day more than 62 days before the park's today or 16 after; nothing "
                   "of the request is stored",
          }),
    Route("GET", _PATH, get_park_irradiance, "getIrradiance",
          "The uploaded irradiance held for a span of the park's local days", _READ,
          response=IrradianceHeld, errors=(404, 422), tags=("forecast",),
          query={
              "from": Query("the first local day, YYYY-MM-DD (default: the park's today)",
                            IsoDate),
              "to": Query("the last local day, included, at most 31 days after from "
                          "(default: 16 days after from)", IsoDate),
          },
          problems={404: "no such park",
                    422: "a parameter its schema refuses, from after to, or over 31 days"}),
]  # fmt: skip
