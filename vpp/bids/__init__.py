"""Demand-response bids of a park: the request and record, building, storage and the table.

`BidRequest` asks for a bid over a window under the market's `BidRules`;
`build_park_bid` builds it from the park's flexibility and forecast with the
dispatch engine (`vpp.bids.build`); the result is a typed `BidRecord`
(`vpp.bids.model`), kept by `BidStore` in Redis (`vpp.bids.store`) and given
as the 96- or 24-point table a market platform takes by `bid_table_csv`
(`vpp.bids.table`). The HTTP routes are in `vpp.api.bids`.
"""

from vpp.bids.build import build_park_bid
from vpp.bids.model import (
    BidForecastUse,
    BidMargin,
    BidOffer,
    BidRecord,
    BidRequest,
    BidRules,
    HourlyBid,
    parse_bid_request,
)
from vpp.bids.store import BidStore
from vpp.bids.table import bid_table_csv

__all__ = [
    "BidForecastUse",
    "BidMargin",
    "BidOffer",
    "BidRecord",
    "BidRequest",
    "BidRules",
    "BidStore",
    "HourlyBid",
    "bid_table_csv",
    "build_park_bid",
    "parse_bid_request",
]
