"""Fixtures of the meter import and history route tests: a park with meters, on a set clock.

The service clock stands at noon of the park's local today (Asia/Shanghai),
so "today", "yesterday" and the retention window are the same for the whole
test; days are recent ones, since the history expires a day by the wall clock
(its retention after the day ends).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.vpp.api.metering.support import METER, OWNER_A, OWNER_B, SHANGHAI, meter
from tests.vpp.conftest import ApiClient
from tests.vpp.samples import PARK, sample
from vpp.api import create_app
from vpp.clock import Clock
from vpp.history.store import HistoryStore
from vpp.metrics import Metrics
from vpp.model import Park, parse_asset
from vpp.settings import Settings
from vpp.state import State


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
