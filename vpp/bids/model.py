"""Demand-response bids: the request, its market rules and the stored record.

`BidRequest` is the body of ``POST /v1/parks/{park}/bids``; its `BidRules`
are the market's rules of the bid (minimum capacity per trading unit,
minimum continuous response, price cap, floor and steps). The bid is a typed
record (`BidRecord`: per interval the baseline, and per direction a
`BidOffer` with its price-quantity curve; the 24-point `HourlyBid` when the
window is whole hours); its JSON form (`BidRecord.to_json`) is both what
Redis holds and what the API returns.

The ``flat_up_kw`` / ``flat_down_kw`` figures answer the question a grid
operator asks for an event: the largest *constant* deviation the park can
hold over the whole window (`vpp.flex.flat_capacity`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Annotated, Any, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

import dispatch as dx
from vpp.events.model import INTERVAL_CHOICES, MAX_LEAD, check_window
from vpp.model import ID_PATTERN, Integer, invalid_input, parse_json_data

__all__ = [
    "BidForecastUse",
    "BidMargin",
    "BidOffer",
    "BidRecord",
    "BidRequest",
    "BidRules",
    "HourlyBid",
    "UnitBid",
    "parse_bid_request",
    "rounded",
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
    rules: BidRules = Field(
        default_factory=BidRules,
        description="the bid's market rules; each field given wins over the profile's, the "
        "fields left out come from the profile (without one: these defaults)",
    )
    profile: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="a configured market rule profile (shipped: gd-spot-unit, gd-market-dr): "
        "the bid's rules where `rules` gives no value, and the rules its declaration is checked "
        "against; one that is not configured is 422",
    )
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
            quantity_kw=rounded(part.quantity_kw, 3),
            prices=rounded(part.curve.prices, 4),
            curve_kw=[rounded(row, 3) for row in part.curve.quantity_kw],
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
            baseline_kw=rounded(base, 3),
            up_kw=rounded(up, 3),
            down_kw=rounded(down, 3),
            deliverable=bid.hourly_up.deliverable and bid.hourly_down.deliverable,
        )


class BidForecastUse(_Stored):
    """What a bid was built on beyond the live state (`vpp.flex.PortfolioView`).

    Attributes:
        later: whether the window counted as later than the live state's
            relevance (`vpp.outlook.is_later`): silent devices may count by
            their availability history, a live vehicle only if still there.
        methods: asset kind -> basis -> how many assets used it (the
            forecast's method, ``sessions``, ``enrolled_baseline``,
            ``live_output``, ``live_session``, ``live_soc``, ``assumed_soc``).
        notes: asset id -> what was assumed for it, in words.
    """

    later: bool
    methods: dict[str, dict[str, int]]
    notes: dict[str, str]


class BidMargin(_Stored):
    """The forecast-error margin a bid keeps (`vpp.flex.Margin` for the rule).

    Attributes:
        quantile: ``[forecast] bid_quantile``.
        applied: whether any capacity was taken away.
        backtest_computed_at: when the backtest ran (absent: none stored).
        backtest_first_day: its first day forecast.
        backtest_last_day: its last day forecast.
        errors: kind -> quantile -> the backtest's normalised error there.
        down_kw: capacity taken from the down room per interval, kW.
        up_kw: capacity taken from the up room per interval, kW.
        by_kind_kw: direction -> kind -> the same per interval, kW.
        total_down_kwh: ``down_kw`` over the window, kWh.
        total_up_kwh: ``up_kw`` over the window, kWh.
        note: the margin's rule or why there is none, in words.
    """

    quantile: float
    applied: bool
    backtest_computed_at: _Time | None = None
    backtest_first_day: date | None = None
    backtest_last_day: date | None = None
    errors: dict[str, dict[str, float]]
    down_kw: list[float]
    up_kw: list[float]
    by_kind_kw: dict[str, dict[str, list[float]]]
    total_down_kwh: float
    total_up_kwh: float
    note: str


class UnitBid(_Stored):
    """The bid of one trading unit: the park's assets at one clearing node.

    Built like the park's bid on the unit's own assets, with the market's
    minimum capacity and duration relaxed to zero, so that nothing is zeroed
    here: the declaration (`vpp.bids.declaration`) checks the unit against
    its rule profile and says what misses. Power in kW (positive = drawn
    from the grid), per interval of the bid.

    Attributes:
        node: the clearing node (the assets' ``grid_node``).
        asset_ids: the unit's assets (those flexible when the bid was built).
        generation_ids: its generating assets (PV), if any.
        baseline_kw: the unit's baseline (net of its generation).
        generation_kw: its generation, kW >= 0 (absent without generating assets).
        up: what it offers up, per interval.
        down: what it offers down, per interval.
        hourly_up: the hour-flat up offer (per interval), absent unless whole hours.
        hourly_down: the same, down.
        jointly_deliverable: whether every part was delivered by its certificate.
    """

    node: str
    asset_ids: list[str]
    generation_ids: list[str] = Field(default_factory=list)
    baseline_kw: list[float]
    generation_kw: list[float] | None = None
    up: BidOffer
    down: BidOffer
    hourly_up: BidOffer | None = None
    hourly_down: BidOffer | None = None
    jointly_deliverable: bool


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
        forecast_issued_at: the issue time of the forecast it was built on
            (null when none was stored; absent in bids built before forecasts).
        forecast: what it was built on beyond the live state.
        margin: the forecast-error margin it keeps (issue 11).
        profile: the market rule profile it was asked under (absent: none named).
        units: the bid of each trading unit (clearing node), market minimums
            relaxed (absent on bids stored before units were built).
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
    forecast_issued_at: _Time | None = None
    forecast: BidForecastUse | None = None
    margin: BidMargin | None = None
    profile: str | None = None
    units: list[UnitBid] | None = None

    def to_json(self) -> dict[str, Any]:
        """The stored form, which is also the API's ``bid``.

        JSON-ready data in field order; an optional part that is not there
        (``flat_*_kw``, ``hourly``) is left out rather than null, as the bids
        stored before the record was typed were. ``BidRecord.model_validate``
        reads it back. A bid built on the forecast's outlook (``forecast``
        present) states ``forecast_issued_at`` even when it is null.
        """
        data = self.model_dump(mode="json", exclude_none=True)
        if self.forecast is not None and self.forecast_issued_at is None:
            data["forecast_issued_at"] = None
        return data


def rounded(values: Iterable[float], digits: int) -> list[float]:
    """``values`` as floats rounded to ``digits`` decimals, as a bid shows them."""
    return [round(float(v), digits) for v in values]
