"""Fixtures of the ledger route tests: a two-enterprise park with a little history, on a set clock.

The service clock stands at noon of the park's local today (Asia/Shanghai),
so "this month" and "closed" are the same for the whole test. The history
lies in `CLOSED_MONTH`, two months before today's (always closed: it ended
more than `[ledger] close_after_days` ago, and is inside the history's
retention, which expires days by the wall clock).

* ``castings`` (contract named "Guangzhou Precision Castings"): revenue meter
  ``meter-a`` (imported, 30 kWh in every slot of `DAY`) and battery ``bess-a``;
* ``electronics`` (contract named ``<script>alert(1)</script>``): no revenue
  meter; load ``load-b`` (10 kWh every slot of `DAY`) and PV ``pv-b``
  (-2 kWh in slots 40..60 of `DAY`, 21 slots: 42 kWh generated);
* ``logistics``: no contract, owner of EV charger ``ev-c`` (known as an owner).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.vpp.api.ledger.support import EVIL, SHANGHAI
from tests.vpp.conftest import ApiClient, TokenFactory
from tests.vpp.samples import PARK, sample
from vpp.api import create_app
from vpp.clock import Clock
from vpp.history.store import HistoryStore, IntervalDelta
from vpp.metrics import Metrics
from vpp.model import Enterprise, Park, parse_asset
from vpp.settings import Settings
from vpp.state import State

TODAY = datetime.now(SHANGHAI).date()
THIS_MONTH = f"{TODAY:%Y-%m}"
_CLOSED_FIRST = (TODAY.replace(day=1) - timedelta(days=40)).replace(day=1)
#: A month that ended long enough ago to be closed.
CLOSED_MONTH = f"{_CLOSED_FIRST:%Y-%m}"
#: The day of `CLOSED_MONTH` the history covers.
DAY = _CLOSED_FIRST.replace(day=10)
METER_KWH = 30.0 * 96
LOAD_KWH = 10.0 * 96
PV_SLOTS = range(40, 61)
PV_KWH = 2.0 * len(PV_SLOTS)


@pytest.fixture
async def client(settings: Settings, state: State) -> AsyncIterator[ApiClient]:
    """The API on a clock standing at local noon of today."""
    noon = datetime.combine(TODAY, time(12), tzinfo=SHANGHAI)
    app = create_app(settings, state, metrics=Metrics(), clock=Clock(origin=noon))
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


@pytest.fixture
async def enrolled(state: State) -> None:
    """The park of the module's docstring, without history."""
    enterprises = {
        "castings": Enterprise(name="Guangzhou Precision Castings"),
        "electronics": Enterprise(name=EVIL),
    }
    await state.put_park(Park(id=PARK, timezone="Asia/Shanghai", enterprises=enterprises))
    meter = {"kind": "meter", "id": "meter-a", "owner": "castings", "grid_node": "n1",
             "account_no": "0301234567", "revenue": True}  # fmt: skip
    for payload in (
        meter,
        sample(id="bess-a", owner="castings"),
        sample("flexible_load", id="load-b", owner="electronics"),
        sample("pv", id="pv-b", owner="electronics"),
        sample("ev_charger", id="ev-c", owner="logistics"),
    ):
        await state.enroll(PARK, parse_asset(payload))


@pytest.fixture
async def history(state: State, enrolled: None) -> date:
    """`DAY`'s history (see the module's docstring); returns `DAY`."""
    store = HistoryStore(state, retention_days=400)
    await store.put_days(PARK, "meter-a", {DAY: [30.0] * 96}, tz=SHANGHAI)
    deltas = [IntervalDelta("load-b", DAY, slot, 10.0, 900) for slot in range(96)]
    deltas += [IntervalDelta("pv-b", DAY, slot, -2.0, 900) for slot in PV_SLOTS]
    await store.add(PARK, deltas, tz=SHANGHAI)
    return DAY


@pytest.fixture
async def viewer(auth: TokenFactory) -> dict[str, str]:
    """Headers of a viewer of ``PARK``."""
    return await auth("viewer", PARK)
