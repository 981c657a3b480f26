"""Building a park's bid from its live flexibility.

A bid is built from the park's live flexibility (enrolled limits, live state
of charge, plugged-in vehicles) on the market day's grid by the dispatch
engine (`dispatch.build_bid`), which certifies every offered profile with a
delivered dispatch: every interval of a direction can be awarded at once.
With ``flat_capacity`` the bid also states the largest constant up and down
deviation the park holds over the whole window, certified the same way (the
disaggregator delivered it in full, with `vpp.flex.TAIL_HOURS` after the
window for rebound).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import datetime, timedelta

import numpy as np

import dispatch as dx
from vpp.bids.model import BidOffer, BidRecord, BidRequest, HourlyBid, rounded
from vpp.bids.units import unit_bids
from vpp.errors import Conflict
from vpp.flex import TAIL_HOURS, build_view, flat_capacity, grid_at
from vpp.state import State

__all__ = ["build_park_bid"]


async def build_park_bid(state: State, park: str, req: BidRequest) -> BidRecord:
    """Build a park's bid from its live flexibility (the solve runs in a worker thread).

    Returns:
        The bid, not yet stored.

    Raises:
        Conflict: when no asset of the park is flexible right now (the request
            is sound; the park's present state cannot answer it).
    """
    assets = await state.list_assets(park)
    live = await state.read_live_many(park, [a.id for a in assets])
    grid = grid_at(req.start, req.intervals, req.interval_minutes)
    view = build_view(assets, live, grid)
    if view.portfolio is None:
        raise Conflict("park: no asset of the park is flexible right now")
    settings = dx.BidSettings(
        min_capacity_kw=req.rules.min_capacity_kw,
        min_duration_minutes=req.rules.min_duration_minutes,
        price_cap=req.rules.price_cap,
        price_floor=req.rules.price_floor,
        price_steps=req.rules.price_steps,
    )
    started = time.perf_counter()
    bid = await asyncio.to_thread(dx.build_bid, view.portfolio, settings)
    units = await asyncio.to_thread(unit_bids, view, settings, req)  # per clearing node
    tail = int(TAIL_HOURS * 60 / req.interval_minutes)
    long_grid = grid_at(req.start, req.intervals + tail, req.interval_minutes)
    long_view = build_view(assets, live, long_grid) if req.flat_capacity else view
    flat: dict[str, float] = {"up": 0.0, "down": 0.0}
    if req.flat_capacity and long_view.portfolio is not None:
        for name, sign in (("up", 1.0), ("down", -1.0)):
            flat[name] = await asyncio.to_thread(
                flat_capacity, long_view.portfolio, req.intervals, sign
            )
    step = timedelta(minutes=req.interval_minutes)
    return BidRecord(
        id=req.id or f"bid-{secrets.token_hex(4)}",
        park=park,
        start=req.start,
        interval_minutes=req.interval_minutes,
        starts=[req.start + i * step for i in range(req.intervals)],
        rules=req.rules,
        baseline_kw=rounded(bid.baseline_kw, 3),
        up=BidOffer.of(bid.up),
        down=BidOffer.of(bid.down),
        jointly_deliverable=bid.jointly_deliverable,
        flat_up_kw=round(flat["up"], 1) if req.flat_capacity else None,
        flat_down_kw=round(flat["down"], 1) if req.flat_capacity else None,
        created=datetime.now(req.start.tzinfo),
        assets_included=len(view.assets),
        assets_excluded=view.excluded,
        solve_seconds=round(time.perf_counter() - started, 3),
        total_up_kwh=round(float(np.sum(bid.up_kw) * grid.dt_h), 3),
        total_down_kwh=round(float(np.sum(bid.down_kw) * grid.dt_h), 3),
        hourly=HourlyBid.of(req, bid),
        profile=req.profile,
        units=units,
    )
