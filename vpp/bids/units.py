"""The bids of a park's trading units: one per clearing node of its flexible assets.

Guangdong aggregates a VPP's resources into trading units per spot clearing
node; the assets' ``grid_node`` is that node (the source is in the
``gd-spot-unit`` profile, `vpp.market`). Each unit's bid is built like the
park's (`dispatch.build_bid`, certified by a delivered dispatch) on the
unit's rows of the park's portfolio (`dispatch.Portfolio.subset`), with the
market's minimum capacity and minimum duration set to zero: the engine would
otherwise zero every interval below them (`dispatch.apply_rules`) and a
small unit would show an empty table with no word why. The declaration
(`vpp.bids.declaration`) checks each unit against the rules instead.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

import dispatch as dx
from vpp.bids.model import BidOffer, BidRequest, UnitBid, rounded
from vpp.flex import PortfolioView
from vpp.model import Pv

__all__ = ["relaxed", "unit_bids"]


def relaxed(settings: dx.BidSettings) -> dx.BidSettings:
    """``settings`` with the market's minimum capacity and duration relaxed to zero."""
    return replace(settings, min_capacity_kw=0.0, min_duration_minutes=0.0)


def unit_bids(view: PortfolioView, settings: dx.BidSettings, req: BidRequest) -> list[UnitBid]:
    """The bid of each trading unit of the view (CPU-bound: run it in a worker thread).

    Args:
        view: the park's flexible assets on the bid's grid.
        settings: the park bid's settings (prices, solver); the minimums are relaxed.
        req: the bid's request (the hour-flat form is built when its window is whole hours).

    Returns:
        One `UnitBid` per clearing node, ordered by node; none when nothing is flexible.
    """
    pf = view.portfolio
    if pf is None:
        return []
    rows: dict[str, list[int]] = {}
    for i, asset in enumerate(view.assets):
        rows.setdefault(asset.grid_node, []).append(i)
    hourly = (req.intervals * req.interval_minutes) % 60 == 0
    loose = relaxed(settings)
    units = []
    for node in sorted(rows):
        index = np.asarray(rows[node], dtype=np.int64)
        sub = pf.subset(index)
        bid = dx.build_bid(sub, loose, hourly=hourly)
        pv = [i for i in rows[node] if isinstance(view.assets[i], Pv)]
        generation = None
        if pv:
            # A PV row's baseline is its forecast output drawn negative.
            gen_rows = pf.subset(np.asarray(pv, dtype=np.int64)).baseline
            generation = rounded(np.maximum(-gen_rows.sum(axis=0), 0.0), 3)
        units.append(
            UnitBid(
                node=node,
                asset_ids=list(sub.asset_ids),
                generation_ids=[view.assets[i].id for i in pv],
                baseline_kw=rounded(bid.baseline_kw, 3),
                generation_kw=generation,
                up=BidOffer.of(bid.up),
                down=BidOffer.of(bid.down),
                hourly_up=BidOffer.of(bid.hourly_up) if bid.hourly_up is not None else None,
                hourly_down=BidOffer.of(bid.hourly_down) if bid.hourly_down is not None else None,
                jointly_deliverable=bid.jointly_deliverable,
            )
        )
    return units
