"""Demand-response bids of a park: the request and record, building, storage and the table.

`BidRequest` asks for a bid over a window under the market's `BidRules`;
`build_park_bid` builds it from the park's flexibility and forecast with the
dispatch engine (`vpp.bids.build`); the result is a typed `BidRecord`
(`vpp.bids.model`), kept by `BidStore` in Redis (`vpp.bids.store`) and given
as the 96- or 24-point table a market platform takes by `bid_table_csv`
(`vpp.bids.table`). Each bid also holds the bid of each trading unit
(clearing node, `vpp.bids.units`), and `declare` gives its Guangdong
declaration per unit checked against a market rule profile
(`vpp.bids.declaration`). The HTTP routes are in `vpp.api.bids`.
"""

from vpp.bids.build import build_park_bid
from vpp.bids.declaration import Declaration, apply_profile, declaration_csv, declare
from vpp.bids.model import (
    BidForecastUse,
    BidMargin,
    BidOffer,
    BidRecord,
    BidRequest,
    BidRules,
    HourlyBid,
    UnitBid,
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
    "Declaration",
    "HourlyBid",
    "UnitBid",
    "apply_profile",
    "bid_table_csv",
    "build_park_bid",
    "declaration_csv",
    "declare",
    "parse_bid_request",
]
