"""A bid as the table a market platform takes (CSV)."""

from __future__ import annotations

import csv
import io

from vpp.bids.model import BidRecord
from vpp.errors import Conflict

__all__ = ["bid_table_csv"]


def bid_table_csv(bid: BidRecord, resolution: str = "quarter") -> str:
    """The bid as the table a market platform takes: one row per interval (or hour).

    Columns: start (ISO 8601, the bid's offset), baseline_kw, up_kw, down_kw.

    Raises:
        Conflict: ``resolution`` is ``hourly`` and the bid has no hourly form.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["start", "baseline_kw", "up_kw", "down_kw"])
    if resolution == "hourly":
        if bid.hourly is None:
            # The request is sound; this stored bid just has no hourly form.
            raise Conflict("resolution: this bid has no hourly form")
        h = bid.hourly
        rows = zip(h.starts, h.baseline_kw, h.up_kw, h.down_kw, strict=True)
    else:
        rows = zip(
            bid.starts, bid.baseline_kw, bid.up.quantity_kw, bid.down.quantity_kw, strict=True
        )
    for start, *values in rows:
        writer.writerow([start.isoformat(), *values])
    return out.getvalue()
