"""Uploaded irradiance forecasts: global horizontal irradiance per slot of a park's local days.

The service has no internet, so a weather forecast reaches it by upload
(``PUT /v1/parks/{park}/irradiance``, `vpp.api.irradiance`): the global
horizontal irradiance (GHI) expected at the park, W/m², as the mean of each
interval of 15, 30 or 60 minutes. It is read in either of two forms and
checked whole:

* JSON (`IrradianceUpload`)::

      {"interval_minutes": 60,
       "values": [{"start": "2026-06-21T12:00:00+08:00", "ghi_w_m2": 512.0}, ...]}

* CSV (``text/csv``, `CSV_PATTERN`), the interval given by the query
  parameter ``interval_minutes`` (default 15)::

      start,ghi_w_m2
      2026-06-21T12:00:00+08:00,512.0

Rules (each broken one is an `InvalidInput` naming the value, ``values[3].start``
or ``row 4, column ghi_w_m2``; up to `MAX_ERRORS` are listed): a start is an
ISO 8601 time with its UTC offset (a naive time is refused: which clock it
means is a guess) on the interval's grid of the park's local day (a 60-minute
value starts on a whole local hour); a value is a finite number with
``0 <= GHI <= 1500`` W/m² (`MAX_GHI_W_M2`); no two values cover one slot; a
value's local day is at most `PAST_DAYS` before the park's today and at most
`AHEAD_DAYS` after it; a request carries 1 to `MAX_VALUES` values.

Storage: one Redis hash per park (``{park}:irradiance``), field ``YYYYMMDD`` of
the local day -> 96 little-endian float32 (W/m², NaN where not given). An
upload replaces the slots it gives and keeps the day's other slots; a value
of 60 minutes sets its four slots to the same mean. Days older than
`PAST_DAYS` are dropped at each upload, and the key expires `PAST_DAYS`
after its latest day, so a park that stops uploading leaves nothing behind.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel, ValidationError
from redis.exceptions import WatchError

from vpp.errors import FieldError, InvalidInput, StateError
from vpp.history.grid import INTERVAL_S, SLOTS_PER_DAY, day_start

# the metering import's list of errors (private there; vpp.history is not this module's)
from vpp.history.readings import MAX_ERRORS, _Errors
from vpp.model import parse_json_data
from vpp.state import State

__all__ = [
    "AHEAD_DAYS",
    "CSV_HEADER",
    "CSV_PATTERN",
    "INTERVALS",
    "MAX_ERRORS",
    "MAX_GHI_W_M2",
    "MAX_VALUES",
    "PAST_DAYS",
    "IrradianceCsv",
    "IrradianceUpload",
    "IrradianceValue",
    "irradiance_days",
    "parse_csv",
    "parse_json",
    "put_irradiance",
]

FloatArray = NDArray[np.float64]

#: Highest GHI accepted, W/m²: the extraterrestrial irradiance is 1361 W/m²
#: (Kopp & Lean 2011) and cloud enhancement at the ground reaches about 1400
#: for minutes; a slot mean above 1500 is a unit error (kW/m², Wh over an hour).
MAX_GHI_W_M2 = 1500.0
#: The interval lengths a forecast may come in, minutes.
INTERVALS: tuple[int, ...] = (15, 30, 60)
#: Most values one request carries (a week at 15 minutes, four at 60: a day-ahead
#: forecast needs two or three days; a larger bound made schema-driven tests slow).
MAX_VALUES = 7 * SLOTS_PER_DAY
#: Days before the park's today an uploaded day may be and is kept (the PV
#: forecaster reads target days; past days serve a backtest of recent weeks).
PAST_DAYS = 62
#: Days after the park's today an uploaded day may be (numerical weather
#: forecasts reach about 15 days).
AHEAD_DAYS = 16
#: Tries of an upload's optimistic transaction before it gives up (concurrent uploads).
_RETRIES = 20
#: The CSV header row.
CSV_HEADER: tuple[str, ...] = ("start", "ghi_w_m2")

# The grammar of the CSV cells, shared by the parser and the documented pattern
# ([0-9], not \d, which in Python also matches other scripts' digits).
_START = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
_GHI = "(?:1500(?:[.]0{1,6})?|(?:1[0-4][0-9]{2}|[0-9]{1,3})(?:[.][0-9]{1,6})?)"
#: The exact grammar of a CSV body (JSON Schema ``pattern``).
CSV_PATTERN = (
    "^\\ufeff?" + ",".join(CSV_HEADER) + f"(?:[\\r\\n]+{_START},{_GHI}){{1,{MAX_VALUES}}}[\\r\\n]*$"
)
_START_RE = re.compile(_START)
_GHI_RE = re.compile(_GHI)
_NUMBER_RE = re.compile("-?[0-9]+(?:[.][0-9]+)?")


class IrradianceValue(BaseModel):
    """The mean global horizontal irradiance over one interval."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    start: AwareDatetime = Field(
        description="the interval's start, ISO 8601 with its UTC offset, on the interval's "
        "grid of the park's local day (a 60-minute value starts on a whole local hour)"
    )
    ghi_w_m2: float = Field(
        ge=0, le=MAX_GHI_W_M2, description="mean global horizontal irradiance, W/m²"
    )


class IrradianceUpload(BaseModel):
    """An irradiance forecast of the park: values of 15, 30 or 60 minutes.

    Each value's local day is at most 62 days before the park's today and 16
    after it; no two values cover one 15-minute slot. The slots given replace
    what was held; other slots are kept.
    """

    model_config = ConfigDict(extra="forbid")

    interval_minutes: Literal[15, 30, 60] = Field(
        default=15, description="the length of every value's interval, minutes"
    )
    values: list[IrradianceValue] = Field(min_length=1, max_length=MAX_VALUES)


class IrradianceCsv(RootModel[str]):
    """An irradiance forecast as CSV: header ``start,ghi_w_m2``, one row per interval.

    A start is ISO 8601 with its UTC offset (``2026-06-21T12:00:00+08:00``), a
    GHI a plain decimal 0-1500 W/m²; the interval is the query parameter
    ``interval_minutes``. LF or CRLF line ends, an optional UTF-8 byte-order
    mark; 1 to 672 rows, the same rules as the JSON form.
    """

    model_config = ConfigDict(json_schema_extra={"pattern": CSV_PATTERN})


@dataclass(frozen=True, slots=True)
class _Value:
    where: str  # values[3] / row 4
    start_field: str  # values[3].start / row 4, column start
    start: datetime
    ghi: float | None  # None when the value is bad (its start still counts)


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interval_minutes: Literal[15, 30, 60] = 15
    values: list[Any] = Field(min_length=1, max_length=MAX_VALUES)


def _ghi_message(kind: str, message: str) -> tuple[str, str]:
    if kind == "greater_than_equal":
        return "negative irradiance: GHI is 0 or more", "negative"
    if kind == "less_than_equal":
        return f"above {MAX_GHI_W_M2:.0f} W/m²: not a GHI (kW/m² or Wh given?)", "range"
    if kind == "finite_number":
        return "not a finite number", kind
    return message, kind


def parse_json(data: Any, *, tz: ZoneInfo, today: date) -> dict[date, FloatArray]:
    """Check a decoded JSON body (`IrradianceUpload`) whole.

    Args:
        data: the decoded body.
        tz: the park's time zone (the grid the starts must be on).
        today: the park's local day on the service clock.

    Returns:
        Local day -> ``(96,)`` GHI per slot, W/m², NaN where the request gives none.

    Raises:
        InvalidInput: every error (up to `MAX_ERRORS`), each named by its path,
            e.g. ``values[3].ghi_w_m2``.
    """
    try:
        envelope = parse_json_data(_Envelope, data)
    except ValidationError as exc:
        raise InvalidInput(
            [
                FieldError(".".join(str(p) for p in err["loc"]) or "body", err["msg"], err["type"])
                for err in exc.errors(include_url=False)
            ]
        ) from exc
    errors = _Errors()
    values: list[_Value] = []
    for i, item in enumerate(envelope.values):
        where = f"values[{i}]"
        try:
            parsed = parse_json_data(IrradianceValue, item)
        except ValidationError as exc:
            start: datetime | None = None
            for err in exc.errors(include_url=False):
                loc = [str(p) for p in err["loc"]]
                message = str(err["msg"]).removeprefix("Value error, ")
                kind = str(err["type"])
                if loc == ["ghi_w_m2"]:
                    message, kind = _ghi_message(kind, message)
                elif loc == ["start"] and kind == "timezone_aware":
                    message = "a time without its UTC offset: give e.g. +08:00"
                errors.add(".".join([where, *loc]), message, kind)
            if isinstance(item, dict) and not any(
                e.field == f"{where}.start" for e in errors.items
            ):
                start = _aware(item.get("start"))
            if start is not None:
                values.append(_Value(where, f"{where}.start", start, None))
            continue
        values.append(_Value(where, f"{where}.start", parsed.start, parsed.ghi_w_m2))
    return _on_grid(values, envelope.interval_minutes, errors, tz=tz, today=today)


def _aware(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def parse_csv(
    text: str, *, interval_minutes: int, tz: ZoneInfo, today: date
) -> dict[date, FloatArray]:
    """Check a CSV body (`IrradianceCsv`) whole: every row, every cell.

    Rows are numbered as lines of the file (the header is row 1), columns by
    their header (``start``, ``ghi_w_m2``).

    Returns:
        Local day -> ``(96,)`` GHI per slot, W/m², NaN where the request gives none.

    Raises:
        InvalidInput: every error (up to `MAX_ERRORS`), each named
            ``row 4, column ghi_w_m2``.
    """
    errors = _Errors()
    reader = csv.reader(
        io.StringIO(text.removeprefix("\ufeff"), newline=""), quoting=csv.QUOTE_NONE, strict=True
    )
    values: list[_Value] = []
    rows = 0
    try:
        for cells in reader:
            line = reader.line_num
            if line == 1:
                if tuple(cells) != CSV_HEADER:
                    got = ",".join(cells)[:60]
                    errors.add("row 1", f"{got!r}: the header row is start,ghi_w_m2", "header")
                    break
                continue
            if not cells:
                continue
            rows += 1
            if rows > MAX_VALUES:
                errors.add(
                    f"row {line}", f"more than {MAX_VALUES} values in one request", "too_long"
                )
                break
            value = _csv_row(line, cells, errors)
            if value is not None:
                values.append(value)
    except csv.Error as exc:
        errors.add(f"row {reader.line_num}", f"not CSV: {exc}", "csv")
    if reader.line_num == 0 or (not rows and not errors.items):
        where = "row 1" if reader.line_num == 0 else "row 2"
        errors.add(where, "no value: give a header row and one row per interval", "missing")
    return _on_grid(values, interval_minutes, errors, tz=tz, today=today)


def _csv_row(line: int, cells: list[str], errors: _Errors) -> _Value | None:
    where = f"row {line}"
    start_field, ghi_field = f"{where}, column start", f"{where}, column ghi_w_m2"
    if len(cells) != len(CSV_HEADER):
        errors.add(where, f"{len(cells)} cells, the header has {len(CSV_HEADER)}", "cells")
        return None
    text, number = cells
    start = _aware(text) if _START_RE.fullmatch(text) else None
    if start is None:
        if _aware(text.replace(" ", "T", 1) + "+00:00") is not None:
            message = "a time without its UTC offset: give e.g. 2026-06-21T12:00:00+08:00"
        else:
            message = f"not a time: {text[:40]!r}, give e.g. 2026-06-21T12:00:00+08:00"
        errors.add(start_field, message, "start")
    ghi: float | None = None
    if _GHI_RE.fullmatch(number):
        ghi = float(number)
    elif _NUMBER_RE.fullmatch(number):
        kind = "negative" if number.startswith("-") else "range"
        message, kind = _ghi_message(
            "greater_than_equal" if kind == "negative" else "less_than_equal", ""
        )
        errors.add(ghi_field, f"{number}: {message}", kind)
    else:
        message = f"not a GHI: {number[:40]!r}, give a finite decimal number of W/m² (e.g. 512.5)"
        errors.add(ghi_field, message, "number")
    return None if start is None else _Value(where, start_field, start, ghi)


def _on_grid(
    values: Iterable[_Value], interval_minutes: int, errors: _Errors, *, tz: ZoneInfo, today: date
) -> dict[date, FloatArray]:
    """Lay the values onto the park's slots; add the rules across values and the clock."""
    k = interval_minutes * 60 // INTERVAL_S
    first, last = today - timedelta(days=PAST_DAYS), today + timedelta(days=AHEAD_DAYS)
    out: dict[date, FloatArray] = {}
    taken: dict[tuple[date, int], str] = {}
    for value in values:
        try:
            local = value.start.astimezone(tz)
            day = local.date()
            offset = (value.start - day_start(day, tz)).total_seconds()
        except OverflowError:  # year 1 or 9999 in another zone: no day of the park's
            message = (
                f"{value.start.isoformat()} is outside the days kept: {first} to {last} "
                f"({PAST_DAYS} days before the park's today, {AHEAD_DAYS} after)"
            )
            errors.add(value.start_field, message, "range")
            continue
        if offset % (interval_minutes * 60) != 0:
            message = (
                f"{local.isoformat()} is not on the {interval_minutes}-minute grid of the "
                f"park's day ({tz.key})"
            )
            errors.add(value.start_field, message, "grid")
            continue
        if not first <= day <= last:
            message = (
                f"{day} is outside the days kept: {first} to {last} "
                f"({PAST_DAYS} days before the park's today, {AHEAD_DAYS} after)"
            )
            errors.add(value.start_field, message, "range")
            continue
        slot = int(offset // INTERVAL_S)
        clash = [taken[(day, s)] for s in range(slot, slot + k) if (day, s) in taken]
        if clash:
            errors.add(value.start_field, f"covers a slot {clash[0]} covers too", "duplicate")
            continue
        for s in range(slot, slot + k):
            taken[(day, s)] = value.where
        if value.ghi is not None:
            row = out.setdefault(day, np.full(SLOTS_PER_DAY, np.nan))
            row[slot : slot + k] = value.ghi
    errors.raise_any()
    return out


# -- storage ---------------------------------------------------------------------


def _field(day: date) -> str:
    return day.strftime("%Y%m%d")


def _day_of(field: bytes | str) -> date | None:
    text = field.decode() if isinstance(field, bytes) else field
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def _unpack(raw: bytes | str | None) -> FloatArray:
    if not isinstance(raw, bytes) or len(raw) != 4 * SLOTS_PER_DAY:
        return np.full(SLOTS_PER_DAY, np.nan)
    return np.frombuffer(raw, dtype="<f4").astype(np.float64)


async def put_irradiance(
    state: State, park: str, days: Mapping[date, FloatArray], *, today: date
) -> list[date]:
    """Store uploaded days: the slots given (finite) replace what was held, others stay.

    Atomic per request (an optimistic transaction: a concurrent upload makes
    it retry, never lose slots). Drops days more than `PAST_DAYS` before
    ``today`` and sets the key to expire `PAST_DAYS` after its latest day.

    Returns:
        The days written, sorted.

    Raises:
        StateUnavailable: Redis did not answer.
    """
    key = state.park(park).irradiance
    ordered = sorted(days)
    if not ordered:
        return []
    oldest = today - timedelta(days=PAST_DAYS)
    for _ in range(_RETRIES):
        async with state.guard("irradiance_put"), state.transaction(key) as pipe:
            try:
                await pipe.watch(key)
                held = await pipe.hmget(key, [_field(d) for d in ordered])
                fields = await pipe.hkeys(key)
                stale = [f for f in fields if (d := _day_of(f)) is None or d < oldest]
                kept = [d for f in fields if (d := _day_of(f)) is not None and d >= oldest]
                latest = max([*kept, *ordered])
                mapping: dict[str | bytes, bytes] = {}
                for day, raw in zip(ordered, held, strict=True):
                    row = _unpack(raw)
                    given = np.isfinite(days[day])
                    row[given] = days[day][given]
                    mapping[_field(day)] = row.astype("<f4").tobytes()
                pipe.multi()  # type: ignore[no-untyped-call]
                _ = pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
                if stale:
                    _ = pipe.hdel(key, *stale)
                _ = pipe.expire(key, ((latest - today).days + PAST_DAYS + 1) * 86400)
                await pipe.execute()
                return ordered
            except WatchError:
                continue
    raise StateError(f"irradiance of park {park!r}: {_RETRIES} concurrent writes in a row")


async def irradiance_days(state: State, park: str, days: Iterable[date]) -> dict[date, FloatArray]:
    """The uploaded GHI of ``days`` that have any (``ForecastContext.irradiance``).

    Returns:
        Local day -> ``(96,)`` GHI per slot, W/m², NaN where none was uploaded;
        a day with no upload is absent.

    Raises:
        StateUnavailable: Redis did not answer.
    """
    wanted = sorted(set(days))
    if not wanted:
        return {}
    key = state.park(park).irradiance
    async with state.guard("irradiance_get"):
        held = await state.redis.hmget(key, [_field(d) for d in wanted])
    out: dict[date, FloatArray] = {}
    for day, raw in zip(wanted, held, strict=True):
        row = _unpack(raw)
        if raw is not None and np.isfinite(row).any():
            out[day] = row
    return out
