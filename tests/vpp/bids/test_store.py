"""The stored bid: its typed record, the stored form of earlier versions, the table form."""

from __future__ import annotations

import json

import pytest

from tests.vpp.conftest import ApiClient, TokenFactory
from tests.vpp.samples import PARK, STORED_BID, stored_bid
from vpp.bids import BidRecord, BidStore, bid_table_csv
from vpp.errors import Conflict
from vpp.model import Park
from vpp.state import State, pack

#: `STORED_BID` as the table a market platform takes, as the earlier version gave it.
QUARTER_CSV = """start,baseline_kw,up_kw,down_kw
2026-12-01T00:00:00+08:00,1600.0,2000.0,0.0
2026-12-01T00:15:00+08:00,1600.0,0.0,2000.0
2026-12-01T00:30:00+08:00,1600.0,2000.0,0.0
2026-12-01T00:45:00+08:00,1600.0,0.0,2000.0
"""
HOURLY_CSV = """start,baseline_kw,up_kw,down_kw
2026-12-01T00:00:00+08:00,1600.0,0.0,0.0
"""

_OPTIONAL = ("flat_up_kw", "flat_down_kw", "hourly")


def test_a_stored_bid_reads_and_writes_back_byte_for_byte() -> None:
    record = BidRecord.model_validate(STORED_BID)
    assert record.up.quantity_kw == [2000.0, 0.0, 2000.0, 0.0]
    assert record.hourly is not None and record.hourly.starts[0].utcoffset() is not None
    # same keys in the same order, same types (1600.0 stays a float, "+08:00" stays)
    assert json.dumps(record.to_json()) == json.dumps(STORED_BID)
    assert pack(record.to_json()) == pack(STORED_BID)


def test_optional_parts_stay_absent_not_null() -> None:
    bare = {k: v for k, v in STORED_BID.items() if k not in _OPTIONAL}
    record = BidRecord.model_validate(bare)
    assert record.flat_up_kw is None and record.hourly is None
    assert json.dumps(record.to_json()) == json.dumps(bare)


def test_utc_times_keep_their_offset_form() -> None:
    utc = stored_bid(start="2026-12-01T00:00:00+00:00", created="2026-11-30T15:00:25+00:00")
    assert BidRecord.model_validate(utc).to_json()["start"] == "2026-12-01T00:00:00+00:00"
    assert BidRecord.model_validate(utc).to_json()["created"] == "2026-11-30T15:00:25+00:00"


def test_table_forms() -> None:
    record = BidRecord.model_validate(STORED_BID)
    assert bid_table_csv(record) == QUARTER_CSV
    assert bid_table_csv(record, "hourly") == HOURLY_CSV
    with pytest.raises(Conflict, match="no hourly form"):
        bid_table_csv(record.model_copy(update={"hourly": None}), "hourly")


async def test_a_bid_stored_by_the_earlier_version_is_served_unchanged(
    client: ApiClient, auth: TokenFactory, state: State
) -> None:
    await state.put_park(Park(id=PARK))
    keys = state.park(PARK)
    await state.redis.set(keys.bid("day-ahead-1"), pack(STORED_BID))
    await state.redis.zadd(keys.bids, {"day-ahead-1": 1.0})
    grid = await auth("grid_operator", PARK)
    url = f"/v1/parks/{PARK}/bids/day-ahead-1"
    resp = await client.get(url, headers=grid)
    assert resp.status == 200
    assert await resp.text() == json.dumps({"bid": STORED_BID})
    resp = await client.get(url, params={"format": "csv"}, headers=grid)
    assert await resp.text() == QUARTER_CSV
    resp = await client.get(url, params={"format": "csv", "resolution": "hourly"}, headers=grid)
    assert await resp.text() == HOURLY_CSV


async def test_the_store_writes_the_stored_form(state: State) -> None:
    record = BidRecord.model_validate(stored_bid(id="bid-2"))
    await BidStore(state).put(record)
    raw = await state.redis.get(state.park(PARK).bid("bid-2"))
    assert raw == pack(stored_bid(id="bid-2"))
    assert await BidStore(state).get(PARK, "bid-2") == record
