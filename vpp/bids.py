"""Demand-response bids of a park: request payload, building, storage and the table form.

The ``flat_up_kw`` / ``flat_down_kw`` figures answer the question a grid
operator asks for an event: the largest *constant* deviation the park can
hold over the whole window, certified the same way (the disaggregator
delivered it in full, with a few hours after the window for rebound).

A bid is built from the park's live flexibility (enrolled limits, live state
of charge, plugged-in vehicles) on the market day's grid by the dispatch
engine (`dispatch.build_bid`), which certifies every offered profile with a
delivered dispatch: every interval of a direction can be awarded at once.
The bid is a typed record (`BidRecord`); its JSON form (`BidRecord.to_json`)
is both what Redis holds and what the API returns, and the record also gives
the 96- or 24-point table a market platform takes.
"""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeAlias

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

import dispatch as dx
from vpp.errors import Conflict, NotFound
from vpp.events import (
    INTERVAL_CHOICES,
    MAX_LEAD,
    EventRequest,
    ExpectedDelivery,
    check_window,
)
from vpp.flex import build_view, grid_at
from vpp.model import ID_PATTERN, Integer, invalid_input, parse_json_data
from vpp.state import State, pack, unpack

__all__ = [
    "BidOffer",
    "BidRecord",
    "BidRequest",
    "BidStore",
    "HourlyBid",
    "bid_table_csv",
    "build_park_bid",
    "expected_delivery",
    "flat_capacity",
    "parse_bid_request",
]


class BidRules(BaseModel):
    """Market rules of a bid (defaults: Guangdong's 1 MW and 1 h)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    min_capacity_kw: float = Field(default=1000.0, ge=0, description="per trading unit")
    min_duration_minutes: float = Field(default=60.0, ge=0, description="continuous response")
    price_cap: float = Field(default=5.0, ge=0, description="CNY/kWh")
    price_floor: float = Field(default=0.0, ge=0, description="CNY/kWh, at most price_cap")
    price_steps: Integer = Field(default=5, ge=1, le=20)

    @model_validator(mode="after")
    def _floor_below_cap(self) -> BidRules:
        if self.price_floor > self.price_cap:
            raise ValueError("price_floor: must not exceed price_cap")
        return self


class BidRequest(BaseModel):
    """The body of ``POST /v1/parks/{park}/bids``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: str | None = Field(default=None, pattern=ID_PATTERN, description="default: generated")
    start: datetime = Field(
        description="start of the market day or window, with a UTC offset; the window must "
        f"not have ended and may start at most {MAX_LEAD.days} days ahead"
    )
    intervals: Integer = Field(default=96, ge=1, le=96 * 2)
    interval_minutes: Integer = Field(
        default=15, ge=1, le=60, json_schema_extra={"enum": list(INTERVAL_CHOICES)}
    )
    rules: BidRules = Field(default_factory=BidRules)
    flat_capacity: bool = Field(
        default=False,
        description="also find the largest flat up/down deviation held over the whole window",
    )

    @model_validator(mode="after")
    def _aware(self) -> BidRequest:
        if self.start.tzinfo is None:
            raise ValueError("start: needs a UTC offset, e.g. 2026-07-02T00:00:00+08:00")
        if 60 % self.interval_minutes:
            raise ValueError("interval_minutes: must divide 60")
        return self

    def check_window(self, now: datetime) -> None:
        """Refuse a window that has ended (end <= ``now``) or starts over `MAX_LEAD` ahead.

        Raises:
            InvalidInput: naming ``start``.
        """
        check_window(self.start, timedelta(minutes=self.interval_minutes), self.intervals, now)


def parse_bid_request(data: Any) -> BidRequest:
    """Validate a bid body; raise `InvalidInput` naming every bad field."""
    try:
        return parse_json_data(BidRequest, data)
    except ValidationError as exc:
        raise invalid_input(exc) from exc


#: A time in a stored bid: written as Python's ``isoformat()`` (``+00:00``,
#: never ``Z``), as the bids stored before the record was typed were.
_Time: TypeAlias = Annotated[datetime, PlainSerializer(datetime.isoformat, return_type=str)]


class _Stored(BaseModel):
    # What an older version stored and a newer one dropped is ignored, as for events.
    model_config = ConfigDict(extra="ignore")


class BidOffer(_Stored):
    """What a bid offers in one direction (up: more load, down: less load).

    Attributes:
        quantity_kw: the capacity offered per interval, kW (≥ 0).
        prices: the price of each step of the curve, CNY/kWh, ascending.
        curve_kw: per price step, the capacity offered per interval at or below
            that price, kW (``len(prices)`` rows of one value per interval; the
            last row is ``quantity_kw``).
        deliverable: whether the certifying dispatch delivered the whole profile.
        explanation: why the offer looks the way it does, in words.
    """

    quantity_kw: list[float]
    prices: list[float]
    curve_kw: list[list[float]]
    deliverable: bool
    explanation: str

    @classmethod
    def of(cls, part: dx.DirectionBid) -> BidOffer:
        """The stored offer of one direction of the engine's bid (kW to 3 decimals)."""
        return cls(
            quantity_kw=_rounded(part.quantity_kw, 3),
            prices=_rounded(part.curve.prices, 4),
            curve_kw=[_rounded(row, 3) for row in part.curve.quantity_kw],
            deliverable=part.deliverable,
            explanation=part.explanation,
        )


class HourlyBid(_Stored):
    """The 24-point form of a bid: one hour-flat row per whole hour of the window.

    Attributes:
        starts: start of each hour.
        baseline_kw: the park's baseline per hour, kW.
        up_kw: capacity offered up per hour, kW.
        down_kw: capacity offered down per hour, kW.
        deliverable: whether both hourly profiles were delivered in full.
    """

    starts: list[_Time]
    baseline_kw: list[float]
    up_kw: list[float]
    down_kw: list[float]
    deliverable: bool

    @classmethod
    def of(cls, req: BidRequest, bid: dx.Bid) -> HourlyBid | None:
        """The hourly form, or None when the engine gave none or the window is not whole hours."""
        up = bid.hourly_points(dx.Direction.UP) if bid.hourly_up is not None else None
        down = bid.hourly_points(dx.Direction.DOWN) if bid.hourly_down is not None else None
        base = bid.hourly_baseline_kw
        whole, minutes = divmod(req.intervals * req.interval_minutes, 60)
        # The hourly table is for windows of whole hours only: a partial last
        # hour has no hour-flat quantity, and its rows would not line up.
        if (
            up is None or down is None or base is None
            or bid.hourly_up is None or bid.hourly_down is None
            or minutes != 0 or not len(up) == len(down) == len(base) == whole
        ):  # fmt: skip
            return None
        return cls(
            starts=[req.start + timedelta(hours=h) for h in range(len(up))],
            baseline_kw=_rounded(base, 3),
            up_kw=_rounded(up, 3),
            down_kw=_rounded(down, 3),
            deliverable=bid.hourly_up.deliverable and bid.hourly_down.deliverable,
        )


class BidRecord(_Stored):
    """A bid as stored and returned by ``GET …/bids/{bid}`` (as ``bid``).

    Power in kW, energy in kWh, each value rounded as the API shows it.

    Attributes:
        id: the bid's id (the request's, or ``bid-`` and 8 hex digits).
        park: the park it was built for.
        start: start of the window, with the request's UTC offset.
        interval_minutes: length of an interval.
        starts: start of each interval.
        rules: the market rules it was built under.
        baseline_kw: the park's baseline per interval.
        up: what it offers up (more load).
        down: what it offers down (less load).
        jointly_deliverable: whether both directions were delivered together.
        flat_up_kw: the largest flat up deviation held over the whole window
            (`flat_capacity`; absent unless the request asked for it).
        flat_down_kw: the same, down.
        created: when it was built (service clock, in the request's offset).
        assets_included: assets that were flexible when it was built.
        assets_excluded: asset id -> why it was left out.
        solve_seconds: how long the dispatch engine took, s.
        total_up_kwh: energy offered up over the window.
        total_down_kwh: energy offered down over the window.
        hourly: the 24-point form (absent unless the window is whole hours).
    """

    id: str
    park: str
    start: _Time
    interval_minutes: int
    starts: list[_Time]
    rules: BidRules
    baseline_kw: list[float]
    up: BidOffer
    down: BidOffer
    jointly_deliverable: bool
    flat_up_kw: float | None = None
    flat_down_kw: float | None = None
    created: _Time
    assets_included: int
    assets_excluded: dict[str, str]
    solve_seconds: float
    total_up_kwh: float
    total_down_kwh: float
    hourly: HourlyBid | None = None

    def to_json(self) -> dict[str, Any]:
        """The stored form, which is also the API's ``bid``.

        JSON-ready data in field order; an optional part that is not there
        (``flat_*_kw``, ``hourly``) is left out rather than null, as the bids
        stored before the record was typed were. ``BidRecord.model_validate``
        reads it back.
        """
        return self.model_dump(mode="json", exclude_none=True)


def _rounded(values: Iterable[float], digits: int) -> list[float]:
    return [round(float(v), digits) for v in values]


#: Hours past the window over which the flat capacity lets obligations settle
#: (rebound of shed loads, batteries back inside their window, EV departures).
TAIL_HOURS = 4.0


def flat_capacity(pf: dx.Portfolio, window: int, sign: float, tol_kw: float = 1.0) -> float:
    """The largest constant deviation the portfolio delivers in full over ``window`` intervals.

    ``pf`` may run past the window (a tail where nothing is asked, so rebound
    and end-of-grid obligations can settle there). The answer is certified:
    the safe disaggregator delivered exactly ``sign * Q`` in every interval of
    the window with every asset inside its limits. Found by bisection.
    """
    base_room = pf.p_max - pf.baseline if sign > 0 else pf.baseline - pf.p_min
    hi = float(np.min(np.sum(base_room[:, :window], axis=0))) if window else 0.0
    lo = 0.0

    def delivers(q: float) -> bool:
        result = dx.disaggregate(pf, np.full(window, sign * q), 0)
        return bool(np.all(np.abs(result.shortfall_kw) <= 1e-6 * (1.0 + q)))

    if hi <= 0:
        return 0.0
    if delivers(hi):
        return hi
    while hi - lo > max(tol_kw, 0.005 * hi):
        mid = 0.5 * (lo + hi)
        if delivers(mid):
            lo = mid
        else:
            hi = mid
    return lo


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
    rules = dx.BidRules(
        min_capacity_kw=req.rules.min_capacity_kw,
        min_duration_minutes=req.rules.min_duration_minutes,
        price_cap=req.rules.price_cap,
        price_floor=req.rules.price_floor,
        price_steps=req.rules.price_steps,
    )
    started = time.perf_counter()
    bid = await asyncio.to_thread(dx.build_bid, view.portfolio, rules)
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
        baseline_kw=_rounded(bid.baseline_kw, 3),
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
    )


async def expected_delivery(
    state: State, park: str, request: EventRequest, now: datetime
) -> ExpectedDelivery:
    """Estimate what the park can deliver against an event, from its live flexibility.

    A quick estimate, not a bid: the park's live view on the event's grid
    (from its start, or from the current interval when it has started) and
    the largest flat deviation it holds in full over the rest of the window
    (`flat_capacity`, with `TAIL_HOURS` after it for rebound). Each
    interval expects ``min(asked, flat)``.

    Args:
        state: the Redis repository (enrolled assets and live state).
        park: the park.
        request: the validated event, whose window has not ended at ``now``.
        now: the service clock.

    Returns:
        The estimate (kW per interval, energy and share of the energy asked).
    """
    step = timedelta(minutes=request.interval_minutes)
    magnitudes = request.magnitudes()
    first = 0 if now < request.start else min(len(magnitudes), (now - request.start) // step)
    asked = magnitudes[first:]
    sign = 1.0 if request.kind.value == "valley_filling" else -1.0
    assets = await state.list_assets(park)
    live = await state.read_live_many(park, [a.id for a in assets])
    tail = int(TAIL_HOURS * 60 / request.interval_minutes)
    grid = grid_at(request.start + first * step, len(asked) + tail, request.interval_minutes)
    view = build_view(assets, live, grid)
    flat = 0.0
    if view.portfolio is not None and asked:
        flat = await asyncio.to_thread(flat_capacity, view.portfolio, len(asked), sign)
    flat = round(flat, 1)
    expected = [round(min(m, flat), 1) for m in asked]
    hours = step.total_seconds() / 3600.0
    requested_kwh = sum(asked) * hours
    expected_kwh = sum(expected) * hours
    share = min(expected_kwh / requested_kwh, 1.0) if requested_kwh > 0 else None
    direction = "down (less load)" if sign < 0 else "up (more load)"
    if share is None:
        note = "nothing is asked"
    elif share >= 0.999:
        note = f"the park can hold {flat:g} kW {direction}: it expects to deliver in full"
    else:
        note = (
            f"the park can hold about {flat:g} kW {direction} over the window against up to "
            f"{max(asked):g} kW asked: it expects to deliver {share:.0%} of the energy"
        )
    if view.portfolio is None:
        note += "; no asset of the park is flexible right now"
    return ExpectedDelivery(
        as_of=now,
        flat_kw=flat,
        expected_kw=[None] * first + list(expected),
        requested_kwh=round(requested_kwh, 3),
        expected_kwh=round(expected_kwh, 3),
        share=None if share is None else round(share, 4),
        assets_included=len(view.assets),
        note=note,
    )


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


class BidStore:
    """Bids of every park in Redis (durable, msgpack)."""

    def __init__(self, state: State) -> None:
        self.state = state

    async def put(self, bid: BidRecord) -> None:
        """Store a bid (the same id replaces the older one)."""
        keys = self.state.park(bid.park)
        async with self.state.guard("bid_put"):
            await self.state.redis.set(keys.bid(bid.id), pack(bid.to_json()))
            await self.state.redis.zadd(keys.bids, {bid.id: time.time()})

    async def get(self, park: str, bid_id: str) -> BidRecord:
        """A stored bid; raise `NotFound` when there is none."""
        async with self.state.guard("bid_get"):
            raw = await self.state.redis.get(self.state.park(park).bid(bid_id))
        if raw is None:
            raise NotFound("bid", bid_id)
        return BidRecord.model_validate(unpack(raw))
