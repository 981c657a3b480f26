"""Metering data imported into a closed month after the ledger first needed it.

The repro of a try-out: a new park with one revenue meter; a ledger read
closes and would freeze the months before; then a meter import brings a
month's data. An empty closed month is not frozen (it shows the data without
a recompute); a frozen one says it is stale until it is recomputed.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from tests.vpp.api.ledger.conftest import CLOSED_MONTH, DAY
from tests.vpp.conftest import ApiClient
from tests.vpp.samples import PARK
from vpp.ledger.months import MonthStore
from vpp.state import State

URL = f"/v1/parks/{PARK}/ledger"
READINGS = f"/v1/parks/{PARK}/meters/meter-a/readings"
MONTH = {"from": CLOSED_MONTH, "to": CLOSED_MONTH}
FIRST = DAY.replace(day=1)
#: 30 days of the closed month, 1 kWh in every slot: 2,880 kWh.
DAYS = [FIRST + timedelta(days=i) for i in range(30)]
IMPORT = {"days": [{"date": d.isoformat(), "energy_kwh": [1.0] * 96} for d in DAYS]}
STALE = f"metering data imported into {CLOSED_MONTH} after it was frozen: recompute it"

pytestmark = pytest.mark.usefixtures("enrolled")


async def _castings(client: ApiClient, headers: dict[str, str]) -> tuple[dict[str, Any], Any]:
    resp = await client.get(URL, params=MONTH, headers=headers)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    rows = {(r["scope"], r["period"]): r for r in body["rows"]}
    return rows[("castings", CLOSED_MONTH)], body["notes"]


async def _frozen(state: State) -> dict[date, Any]:
    return await MonthStore(state).get_many(PARK, [FIRST])


async def test_an_empty_closed_month_is_not_frozen_and_shows_data_imported_later(
    client: ApiClient, operator: dict[str, str], state: State
) -> None:
    castings, _ = await _castings(client, operator)
    assert castings["grid_import_kwh"] == 0 and castings["closed"] is True
    assert await _frozen(state) == {}

    assert (await client.put(READINGS, json=IMPORT, headers=operator)).status == 200
    castings, notes = await _castings(client, operator)
    assert castings["grid_import_kwh"] == pytest.approx(30 * 96.0)
    assert castings["pending_changes"] is False and STALE not in notes
    assert FIRST in await _frozen(state)


async def test_an_import_into_a_frozen_month_is_pending_until_recomputed(
    client: ApiClient, operator: dict[str, str], state: State
) -> None:
    gas = {"fuels": [{"carrier": "natural_gas", "quantity": 1000, "unit": "m3"}]}
    entry = f"{URL}/entries/{CLOSED_MONTH}/castings"
    assert (await client.put(entry, json=gas, headers=operator)).status == 200
    castings, _ = await _castings(client, operator)  # frozen: it holds an entry
    assert castings["grid_import_kwh"] == 0 and FIRST in await _frozen(state)

    assert (await client.put(READINGS, json=IMPORT, headers=operator)).status == 200
    castings, notes = await _castings(client, operator)
    assert castings["grid_import_kwh"] == 0  # frozen until recomputed
    assert castings["pending_changes"] is True and STALE in notes

    resp = await client.post(f"{URL}/months/{CLOSED_MONTH}/recompute", headers=operator)
    assert resp.status == 200, await resp.text()
    castings, notes = await _castings(client, operator)
    assert castings["grid_import_kwh"] == pytest.approx(30 * 96.0)
    assert castings["pending_changes"] is False and STALE not in notes
    assert await MonthStore(state).stale_marks(PARK, [FIRST]) == {}
