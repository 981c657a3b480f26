"""Payloads and bodies of the meter import and history route tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from vpp.history.readings import CSV_HEADER

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: Enterprise A: a revenue meter and a battery behind it.
OWNER_A = "Guangzhou Precision Castings Co."
#: Enterprise B: no revenue meter; a load, a PV roof and a sub-meter.
OWNER_B = "Pearl River Electronics"

METER: dict[str, Any] = {
    "kind": "meter",
    "id": "meter-a",
    "owner": OWNER_A,
    "grid_node": "feeder-10kv-03",
    "account_no": "0301234567",
    "revenue": True,
    "multiplier": 200.0,
}


def meter(**changes: Any) -> dict[str, Any]:
    """The revenue meter payload of enterprise A with ``changes``."""
    return {**METER, **changes}


def days_before(today: date, *back: int) -> list[date]:
    """The local days ``back`` days before ``today``."""
    return [today - timedelta(days=b) for b in back]


def energies(base: float = 10.0) -> list[float]:
    """96 interval energies, kWh: ``base`` plus a quarter per slot."""
    return [base + 0.25 * i for i in range(96)]


def json_body(*days: tuple[date, Sequence[Any]]) -> dict[str, Any]:
    """The JSON import body of ``(day, energies)`` pairs."""
    return {"days": [{"date": d.isoformat(), "energy_kwh": list(e)} for d, e in days]}


def csv_body(*days: tuple[str, Sequence[Any]], newline: str = "\n", bom: bool = False) -> str:
    """The wide CSV import body: the header, then a row per ``(date text, cells)``."""
    lines = [",".join(CSV_HEADER)]
    lines += [",".join([d, *(str(v) for v in cells)]) for d, cells in days]
    return ("\ufeff" if bom else "") + newline.join(lines) + newline
