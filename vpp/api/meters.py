"""Meter routes: import the grid company's metering data into a meter's history.

``PUT /v1/parks/{park}/meters/{meter}/readings`` takes one or more local days
of 96 interval energies (kWh per 15 min, primary values) as JSON or CSV
(`vpp.history.readings`) and stores each day whole in the interval history
(`vpp.history.store.HistoryStore.put_days`), flagged as imported: revenue-grade
data that live telemetry never overwrites. The request is checked whole
first; a bad cell is a 422 naming its row and column and nothing of the
request is stored.

It is idempotent: a repeat of the same data leaves the history as it was and
answers the same days as ``unchanged``; a day imported again with other data
replaces it (``replaced``, as does a day that held live telemetry). Every
import, a repeat too, is appended to the park log (``meter.readings_imported``)
with who made it (the token's principal and role), the meter, the days, the
replaced and unchanged days and the interval count.

Every month of the imported days is marked in the ledger
(`vpp.ledger.months.MonthStore.mark_stale`): a closed month frozen before the
import shows ``pending_changes`` until it is recomputed.

The ``{meter}`` must be an enrolled asset of kind ``meter``: 404 when no asset
has that id, 409 when the asset is of another kind (the request is well
formed; it conflicts with what the registry holds, as a 409 does elsewhere in
this API, rather than being invalid in itself, which a 422 would say).
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import numpy as np
from aiohttp import web
from pydantic import BaseModel, Field

from vpp.api.context import STATE, principal, service_now
from vpp.api.history import HISTORY
from vpp.api.io import json_response, read_csv, read_json
from vpp.api.problem import Problem
from vpp.api.routing import Route
from vpp.auth import Role
from vpp.errors import Conflict, NotFound
from vpp.history.grid import SLOTS_PER_DAY, DayVector
from vpp.history.readings import (
    CSV_MEDIA_TYPE,
    MeterReadings,
    MeterReadingsCsv,
    parse_csv,
    parse_json,
)
from vpp.ledger.months import MonthStore
from vpp.model import Meter
from vpp.state import State, pack

__all__ = ["ROUTES", "ReadingsImport"]

_IMPORT = frozenset({Role.PARK_OPERATOR, Role.GRID_OPERATOR})
_READINGS = "/v1/parks/{park}/meters/{meter}/readings"
_JSON = "application/json"


class ReadingsImport(BaseModel):
    """What an import of metering data did (every list sorted by day)."""

    park: str
    meter: str
    stored: list[date] = Field(description="every day of the request, now held as imported")
    replaced: list[date] = Field(
        description="days that held other data before (live telemetry or another import)"
    )
    unchanged: list[date] = Field(
        description="days that held exactly these readings already (a repeated import)"
    )
    intervals: int = Field(ge=0, description="interval energies stored (96 a day)")


async def _meter(state: State, park: str, meter_id: str) -> Meter:
    """The enrolled meter ``meter_id``; NotFound without one, Conflict for another kind."""
    try:
        asset = await state.get_asset(park, meter_id)
    except NotFound:
        raise NotFound("meter", meter_id) from None
    if not isinstance(asset, Meter):
        raise Conflict(
            f"asset {meter_id!r} is a {asset.kind}, not a meter: metering data is "
            "imported into meters only"
        )
    return asset


def _same(held: DayVector, energy_kwh: tuple[float, ...]) -> bool:
    """Whether a stored day holds exactly these imported energies (as stored: float32)."""
    stored = np.asarray(energy_kwh, dtype=np.float32).astype(np.float64)
    return bool(
        held.imported.all() and (held.coverage == 1.0).all() and (held.energy_kwh == stored).all()
    )


async def import_readings(request: web.Request) -> web.Response:
    """Store days of a meter's metering data: 200 with the days stored, replaced and unchanged."""
    park_id = request.match_info["park"]
    meter_id = request.match_info["meter"]
    state = request.app[STATE]
    store = request.app[HISTORY]
    await _meter(state, park_id, meter_id)
    tz = ZoneInfo((await state.get_park(park_id)).timezone)
    today = service_now(request).astimezone(tz).date()
    keep = store.retention_days
    if request.content_type == _JSON:
        days = parse_json(await read_json(request), today=today, retention_days=keep)
        form = "json"
    elif request.content_type == CSV_MEDIA_TYPE:
        days = parse_csv(await read_csv(request), today=today, retention_days=keep)
        form = "csv"
    else:
        got = request.content_type or "nothing"
        raise Problem(415, f"expected {_JSON} or {CSV_MEDIA_TYPE}, got {got}")
    # What the history holds now, to tell a repeat from a replacement; the
    # write below is one transaction whatever this read saw.
    held = (await store.read(park_id, [meter_id], min(days), max(days)))[meter_id]
    unchanged = sorted(d for d, energy in days.items() if _same(held[d], energy))
    had_data = await store.put_days(park_id, meter_id, days, tz=tz)
    # A closed month frozen before this data came would keep it out silently.
    await MonthStore(state).mark_stale(
        park_id, {d.replace(day=1) for d in days}, service_now(request)
    )
    replaced = sorted(set(had_data) - set(unchanged))
    result = ReadingsImport(
        park=park_id,
        meter=meter_id,
        stored=sorted(days),
        replaced=replaced,
        unchanged=unchanged,
        intervals=SLOTS_PER_DAY * len(days),
    )
    who = principal(request)
    await state.append_park_log(
        park_id,
        "meter.readings_imported",
        meter=meter_id,
        by=who.name,
        role=who.role.value,
        form=form,
        intervals=result.intervals,
        data=pack(result.model_dump(mode="json", include={"stored", "replaced", "unchanged"})),
    )
    return json_response(result)


ROUTES = [
    Route("PUT", _READINGS, import_readings, "importMeterReadings",
          "Import a meter's metering data: days of 96 interval energies (JSON or CSV)", _IMPORT,
          request=MeterReadings, request_forms={CSV_MEDIA_TYPE: MeterReadingsCsv},
          response=ReadingsImport, errors=(400, 404, 409, 415, 422), tags=("meters", "history"),
          problems={
              404: "no asset of that id is enrolled in the park",
              409: "the asset is not a meter (another kind): metering data belongs to meters",
              422: "a bad cell, named by row and column (days[2].energy_kwh[17]; in CSV "
                   "row 3, column 04:30): a bad date, a missing interval, a negative or "
                   "non-numeric energy, a day given twice, not over yet or older than the "
                   "history keeps; nothing of the request is stored",
          }),
]  # fmt: skip
