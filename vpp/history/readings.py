"""Import of metering data: days of 96 interval energies of one meter, from JSON or CSV.

The grid company's metering system exports, per metering point (户号 /
计量点) and local day, the energy of each 15-minute interval in kWh,
primary values (the meter's multiplier, CT × VT, already applied). This
module reads such an export in either of two forms and checks it whole:

* JSON (`MeterReadings`)::

      {"days": [{"date": "2026-11-23", "energy_kwh": [96 numbers]}, ...]}

* CSV (``text/csv``, `CSV_PATTERN`): the usual wide export, a header row
  ``date,00:15,00:30,…,23:45,24:00`` (each interval named by its *end*,
  local time of the park) and one row per day, a date and 96 energies::

      date,00:15,00:30,…,24:00
      2026-11-23,12.5,12.25,…,11.75

  Cells are plain (unquoted) decimals with a point, at most 7 digits before
  it and 9 after; rows end in LF or CRLF, a UTF-8 byte-order mark may lead
  (spreadsheets write one). The body's grammar is stated exactly by
  `CSV_PATTERN`, the pattern the OpenAPI document carries. The long form
  (``interval_start,energy_kwh``, a row per interval) is not accepted: a day
  of it is complete only with 96 rows, which no schema can state, so the
  document could not describe what is served.

Rules (each broken one is an `InvalidInput` naming the row and the column,
``days[2].energy_kwh[17]`` or ``row 3, column 04:30``; up to `MAX_ERRORS` are
listed): a date is a calendar date ``YYYY-MM-DD``; a day has exactly 96
energies (an empty cell, a null or a short row is a missing interval), each
a number with ``0 <= e < 10^7`` kWh (negative energy is refused: an export's
import and export registers are separate series, each non-negative); a day
appears once; a request carries 1 to `MAX_DAYS` days; and, by the clock, a
day must be over (before the park's today) and not older than the history
keeps (its retention).

Nothing is stored here: the caller stores the parsed days only when the whole
request passed (`vpp.api.meters`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    RootModel,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import ErrorDetails

from vpp.errors import FieldError, InvalidInput
from vpp.history.grid import INTERVAL_S, SLOTS_PER_DAY
from vpp.model import parse_json_data

__all__ = [
    "CSV_HEADER",
    "CSV_MEDIA_TYPE",
    "CSV_PATTERN",
    "ENERGY_LIMIT_KWH",
    "MAX_DAYS",
    "MAX_ERRORS",
    "IsoDate",
    "MeterReadings",
    "MeterReadingsCsv",
    "ReadingDay",
    "parse_csv",
    "parse_json",
]

#: Most days one request may carry (a bit over a year of one meter, about
#: 300 KB of CSV; the default retention of the history is 400 days).
MAX_DAYS = 400
#: Most errors a refusal lists one by one; the rest are counted in a last entry.
MAX_ERRORS = 100
#: Interval energies are below this, kWh per 15 min (10 GWh: no metering point comes near).
ENERGY_LIMIT_KWH = 1e7
#: The media type of the CSV form.
CSV_MEDIA_TYPE = "text/csv"

#: Each interval's name in the CSV header: its end, local time (``00:15`` … ``24:00``).
INTERVAL_ENDS: tuple[str, ...] = tuple(
    f"{end // 3600:02d}:{end % 3600 // 60:02d}"
    for end in range(INTERVAL_S, (SLOTS_PER_DAY + 1) * INTERVAL_S, INTERVAL_S)
)
#: The CSV header row: ``date`` and the 96 interval ends.
CSV_HEADER: tuple[str, ...] = ("date", *INTERVAL_ENDS)

# The grammar of a cell, shared by the parser and the documented pattern (the
# common subset of ECMA 262 and Python regular expressions: [0-9], not \d,
# which in Python also matches other scripts' digits).
_YEAR = "(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
_LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_DATE = (
    f"(?:{_YEAR}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    "|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
    f"|{_LEAP_YEAR}-02-29)"
)
_NUMBER = "[0-9]{1,7}(?:[.][0-9]{1,9})?"
#: The exact grammar of a CSV body (JSON Schema ``pattern``; ``^…$`` around it).
CSV_PATTERN = (
    "^\\ufeff?" + ",".join(CSV_HEADER)
    + f"(?:[\\r\\n]+{_DATE}(?:,{_NUMBER}){{{SLOTS_PER_DAY}}}){{1,{MAX_DAYS}}}[\\r\\n]*$"
)  # fmt: skip

_NUMBER_RE = re.compile(_NUMBER)
_DATE_SHAPE = re.compile("[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date(value: Any) -> date:
    """A calendar date from ``YYYY-MM-DD`` exactly (not a timestamp, not a week date)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or _DATE_SHAPE.fullmatch(value) is None:
        raise ValueError("not a date: give YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value} is not a date of the calendar") from None


#: A date written ``YYYY-MM-DD`` (RFC 3339 ``full-date``), nothing else: pydantic's
#: own date reads a number of seconds too, which the JSON Schema format forbids.
IsoDate = Annotated[
    date,
    PlainValidator(_iso_date, json_schema_input_type=str),
    WithJsonSchema({"type": "string", "format": "date"}),
]
_Energy = Annotated[float, Field(ge=0, lt=ENERGY_LIMIT_KWH)]


class ReadingDay(BaseModel):
    """One local day of a meter: the energy of each of its 96 intervals."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    date: IsoDate = Field(description="the park's local day, YYYY-MM-DD")
    energy_kwh: list[_Energy] = Field(
        min_length=SLOTS_PER_DAY,
        max_length=SLOTS_PER_DAY,
        description=(
            "energy of each 15-minute interval, kWh, primary (multiplier applied), in order: "
            "[0] is 00:00-00:15, [95] is 23:45-24:00"
        ),
    )


class MeterReadings(BaseModel):
    """Metering data of one meter: one or more local days of 96 interval energies.

    The days are distinct, over (before the park's today) and within the
    history's retention; each replaces what the history held for that day.
    """

    model_config = ConfigDict(extra="forbid")

    days: list[ReadingDay] = Field(min_length=1, max_length=MAX_DAYS)


class MeterReadingsCsv(RootModel[str]):
    """Metering data as CSV: a header row of interval ends, then one row per day.

    Header ``date,00:15,00:30,…,23:45,24:00``; each row a date (YYYY-MM-DD, the
    park's local day) and 96 energies in kWh (plain decimals, at most 7 digits
    before the point and 9 after, no sign, no quotes), LF or CRLF line ends,
    an optional UTF-8 byte-order mark; 1 to 400 days, each once, each over
    and within the history's retention.
    """

    model_config = ConfigDict(json_schema_extra={"pattern": CSV_PATTERN})


@dataclass(frozen=True, slots=True)
class _Day:
    """One day of a request, checked.

    Attributes:
        where: how the request names it (``days[2]``, ``row 3``).
        field: the name of its date field for an error (``days[2].date``, ``row 3, column date``).
        day: the local day.
        energy_kwh: its 96 interval energies, kWh; None when some are bad
            (the day still counts for the rules across days).
    """

    where: str
    field: str
    day: date
    energy_kwh: tuple[float, ...] | None


class _Errors:
    """The errors of one request, each a `FieldError`, with a bound on how many are listed."""

    def __init__(self) -> None:
        self.items: list[FieldError] = []
        self.more = 0

    def add(self, field: str, message: str, kind: str) -> None:
        if len(self.items) < MAX_ERRORS:
            self.items.append(FieldError(field, message, kind))
        else:
            self.more += 1

    def raise_any(self) -> None:
        if not self.items:
            return
        errors = list(self.items)
        if self.more:
            errors.append(FieldError("body", f"{self.more} more errors not listed", "more"))
        raise InvalidInput(errors)


# -- JSON ----------------------------------------------------------------------


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: list[Any] = Field(min_length=1, max_length=MAX_DAYS)


def _path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _json_error(prefix: str, err: ErrorDetails, errors: _Errors) -> None:
    """Add a pydantic error of a day (``prefix`` = ``days[i]``) in the import's own words."""
    loc = list(err["loc"])
    kind = err["type"]
    message = str(err["msg"]).removeprefix("Value error, ")
    if loc == ["energy_kwh"] and kind == "too_short":
        given = err.get("ctx", {}).get("actual_length", 0)
        field = f"{prefix}.energy_kwh[{given}]"
        message = f"missing: the day has {given} of {SLOTS_PER_DAY} interval energies"
        errors.add(field, message, "missing")
        return
    if loc == ["energy_kwh"] and kind == "too_long":
        given = err.get("ctx", {}).get("actual_length", 0)
        message = f"{given} interval energies, a day has {SLOTS_PER_DAY}"
        errors.add(f"{prefix}.energy_kwh[{SLOTS_PER_DAY}]", message, kind)
        return
    if kind == "float_type" and err.get("input", "") is None:
        message, kind = "missing (null)", "missing"
    elif kind == "greater_than_equal":
        message, kind = "negative energy: an interval's energy is 0 or more", "negative"
    elif kind == "less_than":
        message = f"not below {ENERGY_LIMIT_KWH:.0e} kWh: not an interval energy"
    errors.add(_path([prefix, *loc]), message, kind)


def parse_json(data: Any, *, today: date, retention_days: int) -> dict[date, tuple[float, ...]]:
    """Check a decoded JSON body (`MeterReadings`) whole: every day, every interval.

    Args:
        data: the decoded body.
        today: the park's local day on the service clock (`_check_window`).
        retention_days: the history's retention (``[history] retention_days``).

    Returns:
        Day -> its 96 interval energies, kWh, in the request's order.

    Raises:
        InvalidInput: every error of the request (up to `MAX_ERRORS`), each
            named by its path, e.g. ``days[2].energy_kwh[17]``.
    """
    try:
        envelope = parse_json_data(_Envelope, data)
    except ValidationError as exc:
        raise InvalidInput(
            [
                FieldError(_path(err["loc"]) or "body", err["msg"], err["type"])
                for err in exc.errors(include_url=False)
            ]
        ) from exc
    errors = _Errors()
    days: list[_Day] = []
    for i, item in enumerate(envelope.days):
        prefix = f"days[{i}]"
        try:
            parsed = parse_json_data(ReadingDay, item)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                _json_error(prefix, err, errors)
            try:
                day = _iso_date(item.get("date") if isinstance(item, dict) else None)
            except ValueError:
                continue
            days.append(_Day(prefix, f"{prefix}.date", day, None))
            continue
        days.append(_Day(prefix, f"{prefix}.date", parsed.date, tuple(parsed.energy_kwh)))
    return _check_window(days, errors, today=today, retention_days=retention_days)


# -- CSV -----------------------------------------------------------------------


def _cell(row: int, column: str) -> str:
    return f"row {row}, column {column}"


def _csv_row(line: int, cells: list[str], errors: _Errors) -> _Day | None:
    """One data row: a date and 96 energies, each checked; None when the date is bad."""
    ok = True
    day: date | None = None
    try:
        day = _iso_date(cells[0])  # exactly the dates _DATE matches
    except ValueError as exc:
        errors.add(_cell(line, "date"), f"{cells[0][:40]!r}: {exc}", "date")
        ok = False
    values: list[float] = []
    for column, text in zip(INTERVAL_ENDS, cells[1:], strict=False):
        if _NUMBER_RE.fullmatch(text) is not None:
            values.append(float(text))
            continue
        ok = False
        if not text:
            errors.add(_cell(line, column), "missing: an empty cell", "missing")
        elif text.startswith("-") and _NUMBER_RE.fullmatch(text[1:]):
            errors.add(_cell(line, column), f"negative energy: {text}", "negative")
        else:
            errors.add(
                _cell(line, column),
                f"not an energy: {text[:40]!r}, give a decimal number of kWh (e.g. 12.5)",
                "number",
            )
    for column in INTERVAL_ENDS[len(cells) - 1 :]:
        errors.add(_cell(line, column), "missing: the row ends before it", "missing")
        ok = False
    if len(cells) > len(CSV_HEADER):
        message = f"{len(cells)} cells, the header has {len(CSV_HEADER)}"
        errors.add(_cell(line, str(len(CSV_HEADER) + 1)), message, "extra")
        ok = False
    if day is None:
        return None
    return _Day(f"row {line}", _cell(line, "date"), day, tuple(values) if ok else None)


def parse_csv(text: str, *, today: date, retention_days: int) -> dict[date, tuple[float, ...]]:
    """Check a CSV body (`MeterReadingsCsv`) whole: every row, every cell.

    Rows are numbered as lines of the file (the header is row 1), columns by
    their header (``date``, ``04:30``).

    Args:
        text: the decoded body.
        today: the park's local day on the service clock (`_check_window`).
        retention_days: the history's retention (``[history] retention_days``).

    Returns:
        Day -> its 96 interval energies, kWh, in the request's order.

    Raises:
        InvalidInput: every error of the request (up to `MAX_ERRORS`), each
            named ``row 3, column 04:30``.
    """
    errors = _Errors()
    text = text.removeprefix("\ufeff")
    # QUOTE_NONE: a quote is an ordinary character (and so refused in a cell),
    # as the documented grammar has no quoting; strict: a NUL is an error.
    reader = csv.reader(io.StringIO(text, newline=""), quoting=csv.QUOTE_NONE, strict=True)
    days: list[_Day] = []
    rows = 0
    try:
        for cells in reader:
            line = reader.line_num
            if line == 1:
                if tuple(cells) != CSV_HEADER:
                    _header_errors(cells, errors)
                    break
                continue
            if not cells:
                continue  # a blank line
            rows += 1
            if rows > MAX_DAYS:
                errors.add(f"row {line}", f"more than {MAX_DAYS} days in one request", "too_long")
                break
            parsed = _csv_row(line, cells, errors)
            if parsed is not None:
                days.append(parsed)
    except csv.Error as exc:
        errors.add(f"row {reader.line_num}", f"not CSV: {exc}", "csv")
    if reader.line_num == 0 or (not rows and not errors.items):
        where = "row 1" if reader.line_num == 0 else "row 2"
        errors.add(where, "no day: give a header row and one row per day", "missing")
    return _check_window(days, errors, today=today, retention_days=retention_days)


def _header_errors(cells: list[str], errors: _Errors) -> None:
    expected = f"the header row is {CSV_HEADER[0]},{CSV_HEADER[1]},…,{CSV_HEADER[-1]}"
    if not cells or cells[0] != "date":
        got = cells[0] if cells else "an empty line"
        errors.add(_cell(1, "1"), f"{got[:40]!r} where 'date' belongs: {expected}", "header")
        return
    for i, name in enumerate(CSV_HEADER):
        if i >= len(cells):
            errors.add(_cell(1, str(i + 1)), f"missing {name!r}: {expected}", "header")
            return
        if cells[i] != name:
            message = f"{cells[i][:40]!r} where {name!r} belongs: {expected}"
            errors.add(_cell(1, str(i + 1)), message, "header")
            return
    errors.add(_cell(1, str(len(CSV_HEADER) + 1)), f"an extra column: {expected}", "header")


# -- across days -----------------------------------------------------------------


def _check_window(
    days: Iterable[_Day], errors: _Errors, *, today: date, retention_days: int
) -> dict[date, tuple[float, ...]]:
    """Apply the rules across days and the clock; raise every error of the request.

    A day appears once; it must be over (before ``today``, the park's local
    day: metering systems export closed days, and an imported day overrides
    the live recording of that day); and it must still be kept by the
    history, which holds a day for ``retention_days`` after it ends, so the
    earliest day accepted is ``today - retention_days``.

    Raises:
        InvalidInput: any error of the request (``errors`` and these), each named.
    """
    try:
        earliest = today - timedelta(days=retention_days)
    except OverflowError:
        earliest = date.min
    seen: dict[date, str] = {}
    out: dict[date, tuple[float, ...]] = {}
    for item in days:
        if item.day in seen:
            errors.add(
                item.field, f"{item.day} is given twice (also {seen[item.day]})", "duplicate"
            )
            continue
        seen[item.day] = item.where
        if item.day >= today:
            message = f"{item.day} is not over: the park's today is {today} (import closed days)"
            errors.add(item.field, message, "future")
        elif item.day < earliest:
            message = (
                f"{item.day} is older than the history keeps ({retention_days} days after "
                f"a day ends: the earliest day accepted is {earliest})"
            )
            errors.add(item.field, message, "retention")
        elif item.energy_kwh is not None:
            out[item.day] = item.energy_kwh
    errors.raise_any()
    return out
