"""The import's CSV grammar: the documented pattern and the parser accept exactly the same bodies.

The OpenAPI document carries `CSV_PATTERN`; the service must serve every body
it matches and refuse every other one. Each case here is a body at an edge of
the grammar, checked against both; a property test adds bodies generated from
the pattern itself.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpp.errors import InvalidInput
from vpp.history.readings import CSV_HEADER, CSV_PATTERN, MAX_DAYS, parse_csv, parse_json

PATTERN = re.compile(CSV_PATTERN)
HEADER = ",".join(CSV_HEADER)


def _read(body: str) -> dict[date, tuple[float, ...]]:
    """Parse under a clock by which every date of the grammar is over and kept."""
    return parse_csv(body, today=date.max, retention_days=10**7)


def _row(day: str = "2026-11-20", cell: str = "1.5", at: int = 0) -> str:
    cells = ["1.5"] * 96
    cells[at] = cell
    return ",".join([day, *cells])


def _accepted(body: str) -> bool:
    try:
        _read(body)
    except InvalidInput:
        return False
    return True


ARABIC_ONE, NUL = "\u0661", "1\x00"
CASES = {
    "a day": (f"{HEADER}\n{_row()}\n", True),
    "no final newline": (f"{HEADER}\n{_row()}", True),
    "CRLF and a byte-order mark": (f"\ufeff{HEADER}\r\n{_row()}\r\n", True),
    "blank lines between rows and at the end": (
        f"{HEADER}\n\n{_row('2026-11-20')}\r\n\r\n{_row('2026-11-21')}\n\n\n",
        True,
    ),
    "bare CR line ends": (f"{HEADER}\r{_row()}\r", True),
    "integers and 9 decimals": (f"{HEADER}\n{_row(cell='1234567.123456789')}\n", True),
    "29 February 2000": (f"{HEADER}\n{_row('2000-02-29')}\n", True),
    "29 February of the year 4 and 400": (
        f"{HEADER}\n{_row('0004-02-29')}\n{_row('0400-02-29')}\n",
        True,
    ),
    "31 December 9998": (f"{HEADER}\n{_row('9998-12-31')}\n", True),
    "no row": (f"{HEADER}\n", False),
    "nothing": ("", False),
    "a blank first line": (f"\n{HEADER}\n{_row()}\n", False),
    "two byte-order marks": (f"\ufeff\ufeff{HEADER}\n{_row()}\n", False),
    "a header with start times": (
        f"date,{','.join(CSV_HEADER[:-1][1:])},23:45,00:00\n{_row()}\n".replace(
            "date,00:15", "date,00:00", 1
        ),
        False,
    ),
    "a quoted cell": (f"{HEADER}\n{_row(cell=chr(34) + '1.5' + chr(34))}\n", False),
    "a trailing point": (f"{HEADER}\n{_row(cell='1.')}\n", False),
    "a leading point": (f"{HEADER}\n{_row(cell='.5')}\n", False),
    "a plus sign": (f"{HEADER}\n{_row(cell='+1')}\n", False),
    "8 digits before the point": (f"{HEADER}\n{_row(cell='12345678')}\n", False),
    "10 decimals": (f"{HEADER}\n{_row(cell='1.0123456789')}\n", False),
    "an exponent": (f"{HEADER}\n{_row(cell='1e3')}\n", False),
    "a space": (f"{HEADER}\n{_row(cell=' 1')}\n", False),
    "digits of another script": (f"{HEADER}\n{_row(cell=ARABIC_ONE)}\n", False),
    "a NUL": (f"{HEADER}\n{_row(cell=NUL)}\n", False),
    "29 February 1900": (f"{HEADER}\n{_row('1900-02-29')}\n", False),
    "29 February 2100": (f"{HEADER}\n{_row('2100-02-29')}\n", False),
    "the year 0": (f"{HEADER}\n{_row('0000-01-01')}\n", False),
    "a date without dashes": (f"{HEADER}\n{_row('20261120')}\n", False),
    "a trailing comma": (f"{HEADER}\n{_row()},\n", False),
    "a space line": (f"{HEADER}\n{_row()}\n \n", False),
}


@pytest.mark.parametrize(("body", "valid"), CASES.values(), ids=list(CASES))
def test_the_pattern_and_the_parser_agree(body: str, valid: bool) -> None:
    assert (PATTERN.search(body) is not None) is valid
    assert _accepted(body) is valid


def test_up_to_400_days_match_and_are_read() -> None:
    days = [(date(2026, 1, 1) + timedelta(days=i)).isoformat() for i in range(MAX_DAYS + 1)]
    body = HEADER + "\n" + "\n".join(_row(d) for d in days[:MAX_DAYS]) + "\n"
    assert PATTERN.search(body) is not None
    assert len(_read(body)) == MAX_DAYS
    more = body + _row(days[MAX_DAYS]) + "\n"
    assert PATTERN.search(more) is None and not _accepted(more)


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.from_regex(CSV_PATTERN))
def test_every_body_the_pattern_generates_is_read_unless_a_day_repeats(body: str) -> None:
    try:
        days = _read(body)
    except InvalidInput as refused:
        assert {e.type for e in refused.errors} == {"duplicate"}, refused
    else:
        assert days and all(len(v) == 96 for v in days.values())


def test_json_and_csv_of_the_same_days_read_the_same() -> None:
    energies = [round(0.25 * i, 2) for i in range(96)]
    text = f"{HEADER}\n2026-11-20,{','.join(str(e) for e in energies)}\n"
    body = {"days": [{"date": "2026-11-20", "energy_kwh": energies}]}
    read_json = parse_json(body, today=date.max, retention_days=10**7)
    assert _read(text) == read_json == {date(2026, 11, 20): tuple(energies)}
