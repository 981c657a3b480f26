"""Fixtures of the forecast route and CLI tests: a park with 20 days of history, on a set clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.vpp.conftest import ApiClient
from tests.vpp.forecast.support import truth
from tests.vpp.samples import PARK, sample
from vpp.api import create_app
from vpp.clock import Clock
from vpp.history.store import HistoryStore
from vpp.metrics import Metrics
from vpp.model import Park, parse_asset
from vpp.settings import Settings
from vpp.state import State

SHANGHAI = ZoneInfo("Asia/Shanghai")
HISTORY_DAYS = 20


@pytest.fixture
def today() -> date:
    return datetime.now(SHANGHAI).date()


@pytest.fixture
async def client(settings: Settings, state: State, today: date) -> AsyncIterator[ApiClient]:
    """The API on a clock standing at 09:00 of the park's local today."""
    origin = datetime.combine(today, time(9), tzinfo=SHANGHAI)
    app = create_app(settings, state, metrics=Metrics(), clock=Clock(origin=origin))
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


@pytest.fixture
async def park(state: State, today: date) -> None:
    """Two loads and a revenue meter with 20 days of a weekly shape; a battery (no forecaster)."""
    await state.put_park(Park(id=PARK, timezone="Asia/Shanghai"))
    meter = {"kind": "meter", "id": "meter-a", "owner": "a", "grid_node": "n",
             "account_no": "0301", "revenue": True}  # fmt: skip
    for payload in (
        sample("flexible_load", id="load-1", owner="a"),
        sample("flexible_load", id="load-2", owner="b"),
        sample(id="bess-1", owner="a"),
        meter,
    ):
        await state.enroll(PARK, parse_asset(payload))
    store = HistoryStore(state)
    rng = np.random.default_rng(1)
    days = [today - timedelta(days=k) for k in range(HISTORY_DAYS, 0, -1)]
    for series, level in (("load-1", 400.0), ("load-2", 120.0), ("meter-a", 900.0)):
        kwh = {d: list(level * truth(d) * (1 + 0.02 * rng.standard_normal(96)) / 4) for d in days}
        await store.put_days(PARK, series, kwh, tz=SHANGHAI)
