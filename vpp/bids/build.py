"""Building a park's bid from its flexibility on the market day, as forecast.

A bid is built from the park's flexibility on the market day's grid
(`vpp.flex.build_view` with the park's outlook, `vpp.outlook.load_outlook`:
enrolled limits, live state of charge, plugged-in and expected vehicles, the
loads' and PV's forecast, the availability history of devices silent now in a
later window) by the dispatch engine (`dispatch.build_bid`), which certifies
every offered profile with a delivered dispatch: every interval of a
direction can be awarded at once. The offered capacity keeps the forecast-error
margin of ``[forecast] bid_quantile`` (`vpp.flex.Margin`); the bid states the
forecast it used (``forecast_issued_at``, ``forecast``) and the margin
(``margin``). With ``flat_capacity`` the bid also states the largest constant
up and down deviation the park holds over the whole window, certified the same
way (the disaggregator delivered it in full, with `vpp.flex.TAIL_HOURS` after
the window for rebound).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta

import numpy as np

import dispatch as dx
from vpp.bids.model import (
    BidForecastUse,
    BidMargin,
    BidOffer,
    BidRecord,
    BidRequest,
    HourlyBid,
    rounded,
)
from vpp.bids.units import unit_bids
from vpp.errors import Conflict
from vpp.flex import TAIL_HOURS, PortfolioView, build_view, flat_capacity, grid_at
from vpp.outlook import MarginSource, load_outlook
from vpp.settings import Settings
from vpp.state import State

__all__ = ["build_park_bid"]


def _margin(view: PortfolioView, source: MarginSource, dt_h: float, n: int) -> BidMargin:
    """What the view's margin took away, as the bid states it."""
    zero = np.zeros(n)
    down = sum(view.margin_kw.get("down", {}).values(), zero)
    up = sum(view.margin_kw.get("up", {}).values(), zero)
    summary = source.backtest
    errors: dict[str, dict[str, float]] = {}
    if source.margin is not None:
        q = source.quantile
        for kind, (low, high) in source.margin.errors.items():
            errors[kind] = {f"{q:g}": round(low, 4), f"{1 - q:g}": round(high, 4)}
    applied = bool(np.any(down > 0) or np.any(up > 0))
    note = source.note
    if source.margin is not None and not applied:
        note += "; no interval of a load or PV was laid on the forecast: nothing taken"
    return BidMargin(
        quantile=source.quantile,
        applied=applied,
        backtest_computed_at=summary.computed_at if summary is not None else None,
        backtest_first_day=summary.first_day if summary is not None else None,
        backtest_last_day=summary.last_day if summary is not None else None,
        errors=errors,
        down_kw=rounded(down, 3),
        up_kw=rounded(up, 3),
        by_kind_kw={
            d: {k: rounded(v, 3) for k, v in per.items()} for d, per in view.margin_kw.items()
        },
        total_down_kwh=round(float(np.sum(down) * dt_h), 3),
        total_up_kwh=round(float(np.sum(up) * dt_h), 3),
        note=note,
    )


async def build_park_bid(
    state: State,
    park: str,
    req: BidRequest,
    *,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> BidRecord:
    """Build a park's bid from its flexibility on the window (the solve runs in a worker thread).

    Args:
        state: the service's repository.
        park: the park id.
        req: the request.
        now: the service clock's time (default: the wall clock); decides
            whether the window is later than the live state's relevance.
        settings: the service settings (``[forecast]``, ``[redis] live_ttl_s``;
            default: the defaults).

    Returns:
        The bid, not yet stored.

    Raises:
        Conflict: when no asset of the park is flexible in the window (the
            request is sound; the park's present state and history cannot
            answer it).
        StateUnavailable: Redis did not answer.
    """
    now = now or datetime.now(UTC)
    settings = settings or Settings()
    assets = await state.list_assets(park)
    live = await state.read_live_many(park, [a.id for a in assets])
    grid = grid_at(req.start, req.intervals, req.interval_minutes)
    outlook, source = await load_outlook(
        state, park, assets, live, grid, now, settings, with_margin=True
    )
    view = build_view(assets, live, grid, outlook=outlook)
    if view.portfolio is None:
        when = "in the window" if outlook.later else "right now"
        raise Conflict(f"park: no asset of the park is flexible {when}")
    rules = dx.BidSettings(
        min_capacity_kw=req.rules.min_capacity_kw,
        min_duration_minutes=req.rules.min_duration_minutes,
        price_cap=req.rules.price_cap,
        price_floor=req.rules.price_floor,
        price_steps=req.rules.price_steps,
    )
    started = time.perf_counter()
    bid = await asyncio.to_thread(dx.build_bid, view.portfolio, rules)
    units = await asyncio.to_thread(unit_bids, view, rules, req)  # per clearing node
    tail = int(TAIL_HOURS * 60 / req.interval_minutes)
    long_grid = grid_at(req.start, req.intervals + tail, req.interval_minutes)
    long_view = build_view(assets, live, long_grid, outlook=outlook) if req.flat_capacity else view
    flat: dict[str, float] = {"up": 0.0, "down": 0.0}
    if req.flat_capacity and long_view.portfolio is not None:
        for name, sign in (("up", 1.0), ("down", -1.0)):
            flat[name] = await asyncio.to_thread(
                flat_capacity, long_view.portfolio, req.intervals, sign
            )
    step = timedelta(minutes=req.interval_minutes)
    assert source is not None
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
        assets_included=view.included,
        assets_excluded=view.excluded,
        solve_seconds=round(time.perf_counter() - started, 3),
        total_up_kwh=round(float(np.sum(bid.up_kw) * grid.dt_h), 3),
        total_down_kwh=round(float(np.sum(bid.down_kw) * grid.dt_h), 3),
        hourly=HourlyBid.of(req, bid),
        forecast_issued_at=view.forecast_issued_at,
        forecast=BidForecastUse(later=outlook.later, methods=view.methods(), notes=view.notes),
        margin=_margin(view, source, grid.dt_h, grid.n),
        profile=req.profile,
        units=units,
    )
