"""Fixtures of the meter import and history route tests: a park with meters, on a set clock.

The service clock stands at noon of the park's local today (Asia/Shanghai),
so "today", "yesterday" and the retention window are the same for the whole
test; days are recent ones, since the history expires a day by the wall clock
(its retention after the day ends).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.vpp.conftest import ApiClient
from tests.vpp.samples import PARK, sample
from vpp.api import create_app
from vpp.clock import Clock
from vpp.history.readings import CSV_HEADER
from vpp.history.store import HistoryStore
from vpp.metrics import Metrics
from vpp.model import Park, parse_asset
from vpp.settings import Settings
from vpp.state import State

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


@pytest.fixture
def today() -> date:
    """The park's local today on the service clock of these tests."""
    return datetime.now(SHANGHAI).date()


@pytest.fixture
async def client(settings: Settings, state: State, today: date) -> AsyncIterator[ApiClient]:
    """The API on a clock standing at local noon of ``today``."""
    noon = datetime.combine(today, time(12), tzinfo=SHANGHAI)
    app = create_app(settings, state, metrics=Metrics(), clock=Clock(origin=noon))
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


@pytest.fixture
def store(state: State) -> HistoryStore:
    return HistoryStore(state, retention_days=400)


@pytest.fixture
async def enrolled(state: State) -> None:
    """``PARK`` (Asia/Shanghai): A's revenue meter and battery; B's load, PV and sub-meter."""
    await state.put_park(Park(id=PARK, timezone="Asia/Shanghai"))
    for payload in (
        METER,
        sample(id="bess-a", owner=OWNER_A),
        sample("flexible_load", id="load-b", owner=OWNER_B),
        sample("pv", id="pv-b", owner=OWNER_B),
        meter(id="sub-b", owner=OWNER_B, account_no="0309999999", revenue=False),
    ):
        await state.enroll(PARK, parse_asset(payload))


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
