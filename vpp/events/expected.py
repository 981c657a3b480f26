"""What the park expects to deliver against an event, estimated from its live flexibility.

An award stands whatever the park can do, so an event larger than the park
is accepted; the estimate (`ExpectedDelivery`, stored on the event as
``expected``) says how much of it the park expects to deliver. It is made
when the event is received and again after a change of its targets.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from vpp.events.model import EventRequest, ExpectedDelivery
from vpp.flex import TAIL_HOURS, build_view, flat_capacity, grid_at
from vpp.model import Asset, LiveState
from vpp.state import State

__all__ = ["ParkReading", "expected_delivery", "read_park"]

#: A park's enrolled assets and their live state, as read at one moment.
ParkReading = tuple[list[Asset], dict[str, LiveState | None]]


async def read_park(state: State, park: str) -> ParkReading:
    """The park's enrolled assets and their live state now (for `expected_delivery`)."""
    assets = await state.list_assets(park)
    live = await state.read_live_many(park, [a.id for a in assets])
    return assets, dict(live)


async def expected_delivery(
    state: State,
    park: str,
    request: EventRequest,
    now: datetime,
    *,
    seen: ParkReading | None = None,
) -> ExpectedDelivery:
    """Estimate what the park can deliver against an event, from its live flexibility.

    A quick estimate, not a bid: the park's live view on the event's grid
    (from its start, or from the current interval when it has started) and
    the largest flat deviation it holds in full over the rest of the window
    (`vpp.flex.flat_capacity`, with `vpp.flex.TAIL_HOURS` after it for
    rebound). Each interval expects ``min(asked, flat)``.

    Args:
        state: the Redis repository (enrolled assets and live state).
        park: the park.
        request: the validated event, whose window has not ended at ``now``.
        now: the service clock.
        seen: the park as read before (`read_park`); None: read it now.

    Returns:
        The estimate (kW per interval, energy and share of the energy asked).
    """
    step = timedelta(minutes=request.interval_minutes)
    magnitudes = request.magnitudes()
    first = 0 if now < request.start else min(len(magnitudes), (now - request.start) // step)
    asked = magnitudes[first:]
    sign = 1.0 if request.kind.value == "valley_filling" else -1.0
    assets, live = seen if seen is not None else await read_park(state, park)
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
