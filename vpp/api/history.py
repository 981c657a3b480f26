"""The history route: a series' interval history over local days, as JSON or CSV.

``GET /v1/parks/{park}/history?series=…&from=…&to=…&resolution=15m|1h|1d``
reads the interval history (`vpp.history.store`) of one series:

* an asset id or a meter id: that series as recorded from live telemetry, or
  imported from metering data (`vpp.api.meters`);
* ``park``: the park's own load, summed per enterprise (the assets' ``owner``):
  an enterprise's revenue meters where it has one (its whole load as the grid
  company settles it; several where it has several accounts), otherwise the
  sum of its enrolled devices (batteries, chargers, loads, PV: its enrolled
  load, not what it does not enroll). Never a meter and the devices behind it
  both: that would count the load twice. Other meters (sub-meters) stay out.
  The answer's ``sources`` lists what was summed. An asset enrolled under the
  id ``park`` is not reachable here (the word names the park).

``from`` and ``to`` are the first and last local day of the park
(``Park.timezone``), dates ``YYYY-MM-DD``, both included; ``to`` defaults to
the park's today and ``from`` to six days before ``to`` (a week). Each point
has its ``start`` (local time with its UTC offset), ``energy_kwh`` (over the
covered part), ``mean_kw`` and ``coverage`` (0..1); where nothing is known
(coverage 0) the values are null, never 0.

A point of ``1h`` or ``1d`` aggregates its slots: energies add up, coverage
is the mean of the slots', ``mean_kw`` is the energy over the covered time
(``energy / (coverage × length)``). The ``park`` series aggregates its members
the same way: energy is the sum of what each member covered; coverage is the
mean of the members' coverage, the known share of member-time (1 only when
every member is known for the whole point); ``mean_kw`` is the sum of the
members' mean powers, each over its own covered time, so a member with no
data in the point adds nothing (it is never scaled up from the others, whose
sizes differ). Read it with its coverage.

The span is bounded by the resolution (`MAX_SPAN_DAYS`: 31 days at 15m, 92
at 1h, 366 at 1d), so an answer stays under about 3,000 points (a few hundred
KB) and one request reads at most series × span day vectors from Redis.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import numpy as np
from aiohttp import web
from numpy.typing import NDArray
from pydantic import BaseModel, Field

from vpp.api.context import STATE, service_now
from vpp.api.io import json_response
from vpp.api.params import query
from vpp.api.routing import Query, Route
from vpp.auth import Role
from vpp.errors import FieldError, InvalidInput, NotFound
from vpp.history.grid import INTERVAL_S, SLOTS_PER_DAY, slot_start
from vpp.history.readings import IsoDate
from vpp.history.store import HistoryStore
from vpp.model import ID_PATTERN, Asset, Meter, revenue_meters

__all__ = [
    "HISTORY",
    "MAX_SPAN_DAYS",
    "ROUTES",
    "History",
    "HistoryPoint",
    "ParkSource",
    "Resolution",
    "park_sources",
]

#: The interval history of the app.
HISTORY = web.AppKey("vpp.history", HistoryStore)

#: A point's length: a slot of the grid, an hour, a local day.
Resolution = Literal["15m", "1h", "1d"]
#: Slots of the grid per point of each resolution.
_SLOTS: dict[str, int] = {"15m": 1, "1h": 4, "1d": SLOTS_PER_DAY}
#: Most days one request may span, by resolution (about 3,000 points or fewer).
MAX_SPAN_DAYS: dict[str, int] = {"15m": 31, "1h": 92, "1d": 366}
#: Day vectors read from Redis per round trip (about 1.2 MB): between two
#: reads the event loop runs, so a long read of a large park (1,000 devices
#: over a year: 366,000 day vectors) does not hold up the control loops it shares the
#: process with.
_VECTORS_PER_READ = 2048
#: The ``series`` that names the park (see the module's docstring).
PARK_SERIES = "park"

_READ = frozenset({Role.PARK_OPERATOR, Role.VIEWER})
_CSV = "text/csv"


class HistoryPoint(BaseModel):
    """One point of a series: a slot of 15 minutes, an hour or a local day."""

    start: datetime = Field(description="the point's start, the park's local time with its offset")
    energy_kwh: float | None = Field(
        description="energy over the covered part, kWh (positive = drawn); null: nothing known"
    )
    mean_kw: float | None = Field(
        description=(
            "mean power over the covered time, kW (energy / (coverage x length)); for park, the "
            "sum of its members' mean powers (a member with no data adds nothing); null when "
            "nothing is known"
        )
    )
    coverage: float = Field(
        ge=0,
        le=1,
        description="the known share of the point, 0..1 (park: the mean of its members')",
    )


class ParkSource(BaseModel):
    """What the ``park`` series sums for one enterprise."""

    enterprise: str = Field(description="the assets' owner")
    source: Literal["revenue_meter", "devices"]
    series: list[str] = Field(description="the meters or devices summed")


class History(BaseModel):
    """A series' interval history over local days of the park."""

    park: str
    series: str = Field(description="an asset or meter id, or park")
    timezone: str = Field(description="the park's time zone: the days are its local days")
    resolution: Resolution
    first: date = Field(description="the first local day (from)")
    last: date = Field(description="the last local day (to), included")
    sources: list[ParkSource] = Field(
        description=(
            "for series=park, what it sums: per enterprise its revenue meters, else its "
            "devices (never both); empty for an asset or a meter"
        )
    )
    points: list[HistoryPoint]


def park_sources(assets: Sequence[Asset]) -> list[ParkSource]:
    """The members of the ``park`` series, per enterprise (owner), sorted by owner.

    An enterprise's revenue meter where it has one (`vpp.model.revenue_meters`:
    the one an event is measured by), else its devices (every
    enrolled asset that is not a meter); an enterprise with neither (only
    sub-meters) adds nothing.
    """
    owners: dict[str, list[Asset]] = {}
    for asset in assets:
        owners.setdefault(asset.owner, []).append(asset)
    sources: list[ParkSource] = []
    for owner, items in sorted(owners.items()):
        revenue = revenue_meters(items).get(owner)
        devices = sorted(a.id for a in items if not isinstance(a, Meter))
        if revenue is not None:
            sources.append(
                ParkSource(enterprise=owner, source="revenue_meter", series=[revenue.id])
            )
        elif devices:
            sources.append(ParkSource(enterprise=owner, source="devices", series=devices))
    return sources


async def _sum(
    store: HistoryStore, park: str, series: Sequence[str], first: date, last: date, k: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Sum ``series`` over ``[first, last]`` into points of ``k`` slots.

    Returns:
        ``(days, 96 / k)`` arrays: the energy summed, the covered slots summed
        (0..k × members), and the members' mean powers over their own covered
        time summed (a member with no data in the point adds nothing).
    """
    n_days = (last - first).days + 1
    days = [first + timedelta(days=i) for i in range(n_days)]
    shape = (n_days, SLOTS_PER_DAY // k)
    energy, covered, mean = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    hours = INTERVAL_S / 3600.0
    step = max(1, _VECTORS_PER_READ // n_days)
    for at in range(0, len(series), step):
        chunk = series[at : at + step]
        arrays = await store.read_arrays(park, chunk, days)  # (members, days, 96)
        e = arrays.energy_kwh.reshape(len(chunk), *shape, k).sum(axis=3)
        c = arrays.coverage.reshape(len(chunk), *shape, k).sum(axis=3)
        energy += e.sum(axis=0)
        covered += c.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean += np.where(c > 0, e / (c * hours), 0.0).sum(axis=0)
    return energy, covered, mean


def _rounded(value: float) -> float:
    # The history keeps float32 energies (about 7 significant digits): no more are shown.
    return float(f"{value:.7g}")


def _points(
    energy: NDArray[np.float64],
    covered: NDArray[np.float64],
    mean: NDArray[np.float64],
    members: int,
    first: date,
    resolution: str,
    tz: ZoneInfo,
) -> list[HistoryPoint]:
    """The points of ``members`` series summed by `_sum` into points of ``resolution``."""
    k = _SLOTS[resolution]
    per_day = SLOTS_PER_DAY // k
    cov = covered / (k * max(members, 1))
    points: list[HistoryPoint] = []
    for d in range(energy.shape[0]):
        day = first + timedelta(days=d)
        for p in range(per_day):
            c = float(min(1.0, cov[d, p]))
            known = c > 0
            points.append(
                HistoryPoint(
                    start=slot_start(day, p * k, tz),
                    energy_kwh=_rounded(float(energy[d, p])) if known else None,
                    mean_kw=_rounded(float(mean[d, p])) if known else None,
                    coverage=round(c, 6),
                )
            )
    return points


def _wants_csv(request: web.Request, fmt: str | None) -> bool:
    """``format`` decides; without it, an Accept that takes text/csv over JSON does."""
    if fmt is not None:
        return fmt == "csv"
    weights: dict[str, float] = {}
    for item in request.headers.get("Accept", "").split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[media.lower()] = q
    return weights.get(_CSV, 0.0) > weights.get("application/json", 0.0)


def history_csv(history: History) -> str:
    """The points of a history as CSV text: ``start,energy_kwh,mean_kw,coverage``.

    An unknown value is an empty cell; a start is written by ``datetime.isoformat``.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["start", "energy_kwh", "mean_kw", "coverage"])
    for p in history.points:
        writer.writerow([p.start.isoformat(), p.energy_kwh, p.mean_kw, p.coverage])
    return out.getvalue()


def _span(first: date | None, last: date | None, today: date, resolution: str) -> tuple[date, date]:
    """The days asked for, defaults applied and bounds checked (422 naming from / to)."""
    last = last if last is not None else today
    if first is None:
        first = last - timedelta(days=6) if last > date.min + timedelta(days=6) else date.min
    if first > last:
        raise InvalidInput([FieldError("from", f"{first} is after to ({last})", "range")])
    longest = MAX_SPAN_DAYS[resolution]
    if (last - first).days + 1 > longest:
        message = f"{(last - first).days + 1} days from {first}: at most {longest} at {resolution}"
        raise InvalidInput([FieldError("to", message, "range")])
    return first, last


async def get_history(request: web.Request) -> web.Response:
    """A series' points over the park's local days ``from``..``to``; JSON or CSV."""
    params = query(request)
    park_id = request.match_info["park"]
    state = request.app[STATE]
    park = await state.get_park(park_id)
    tz = ZoneInfo(park.timezone)
    resolution: Resolution = params["resolution"]
    today = service_now(request).astimezone(tz).date()
    first, last = _span(params["from"], params["to"], today, resolution)
    series: str = params["series"]
    sources: list[ParkSource] = []
    if series == PARK_SERIES:
        sources = park_sources(await state.list_assets(park_id))
        members = [s for source in sources for s in source.series]
    else:
        try:
            await state.get_asset(park_id, series)
        except NotFound:
            raise NotFound("series", series) from None
        members = [series]
    k = _SLOTS[resolution]
    energy, covered, mean = await _sum(request.app[HISTORY], park_id, members, first, last, k)
    history = History(
        park=park_id,
        series=series,
        timezone=park.timezone,
        resolution=resolution,
        first=first,
        last=last,
        sources=sources,
        points=_points(energy, covered, mean, len(members), first, resolution, tz),
    )
    if _wants_csv(request, params["format"]):
        return web.Response(text=history_csv(history), content_type=_CSV)
    return json_response(history, exclude_none=False)


_SERIES = Annotated[str, Field(pattern=ID_PATTERN)]

ROUTES = [
    Route("GET", "/v1/parks/{park}/history", get_history, "getHistory",
          "A series' interval history (an asset, a meter or the park): JSON, or CSV with "
          "format=csv or Accept: text/csv", _READ,
          response=History, errors=(404, 422), tags=("history",), text_types=(_CSV,),
          query={
              "series": Query("an asset id, a meter id, or park (the park's load: per "
                              "enterprise its revenue meters, else its devices)",
                              _SERIES, PARK_SERIES),
              "from": Query("the first local day of the park, YYYY-MM-DD (default: six "
                            "days before to)", IsoDate),
              "to": Query("the last local day, included, YYYY-MM-DD, at most 31 days after "
                          "from at 15m, 92 at 1h, 366 at 1d (default: the park's today)",
                          IsoDate),
              "resolution": Query("15m (the grid), 1h or 1d", Resolution, "15m"),
              "format": Query("json or csv (default: by the Accept header, else json)",
                              Literal["json", "csv"]),
          },
          problems={404: "no such park, or no asset or meter of that id (series)",
                    422: "a parameter its schema refuses, from after to, or a span over "
                         "the resolution's bound (31, 92 or 366 days)"}),
]  # fmt: skip
