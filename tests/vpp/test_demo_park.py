"""The demo park's past: its clock's start, its laid-down history and its past event."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

from tests.support.paths import REPO
from vpp.demo_park import HISTORY_DAYS, demo_origin, lay_history, simulator_shapes
from vpp.events import EventState, EventStore
from vpp.history.baselines import event_days
from vpp.history.store import HistoryStore
from vpp.parkfile import load_park_file, simulator_spec
from vpp.state import State

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def test_the_clock_starts_at_the_latest_working_day_afternoon_peak() -> None:
    # a working Monday after 14:00: that day; before 14:00: the Friday before
    assert demo_origin(local(2026, 11, 30, 15, 0), "Asia/Shanghai") == local(2026, 11, 30, 14)
    assert demo_origin(local(2026, 11, 30, 9, 0), "Asia/Shanghai") == local(2026, 11, 27, 14)
    # inside the 2026 National Day holiday (Oct 1-7): back to Wednesday Sep 30
    assert demo_origin(local(2026, 10, 5, 16, 0), "Asia/Shanghai") == local(2026, 9, 30, 14)
    # Saturday Oct 10 is an adjusted working day
    assert demo_origin(local(2026, 10, 10, 18, 0), "Asia/Shanghai") == local(2026, 10, 10, 14)


async def test_the_history_and_its_past_event_are_laid_down_once(
    redis_client: aioredis.Redis, namespace: str
) -> None:
    state = State(redis_client, namespace=namespace)
    park_file = load_park_file(REPO / "config" / "demo-park.toml")
    park = park_file.park.id
    now = local(2026, 11, 30, 14, 0)
    laid = await lay_history(state, park_file, now)
    assert laid.past_event is not None and laid.history.event is not None
    assert laid.series_days == len(laid.history.series) * (HISTORY_DAYS + 1)  # and today
    past = await EventStore(state).get(park, laid.past_event)
    assert past.state is EventState.COMPLETED
    first = now.date() - timedelta(days=HISTORY_DAYS)
    assert await event_days(EventStore(state), park, first, now.date(), SHANGHAI) == {
        laid.history.event.day
    }
    days = await HistoryStore(state).read(park, ["meter-huanan"], first, now.date())
    vectors = days["meter-huanan"]
    assert all(vectors[d].imported.all() for d in laid.history.days[:-1])  # revenue grade
    # today up to 14:00 as if read live; nothing from 14:00 on
    assert vectors[now.date()].coverage[:56].all() and not vectors[now.date()].coverage[56:].any()
    again = await lay_history(state, park_file, now)
    assert again.series_days == 0 and again.past_event == laid.past_event


def test_the_live_meter_follows_its_enterprise_base_load() -> None:
    park_file = load_park_file(REPO / "config" / "demo-park.toml")
    spec = simulator_spec(park_file, ocpp_secret="x")
    origin = local(2026, 11, 30, 14)
    shaped, bases = simulator_shapes(spec, park_file, origin)
    assert set(bases) == {"meter-huanan"}  # the one revenue meter read live
    assert all(load.profile is not None for load in shaped.loads)
    # a two-shift factory: its base load at 15:00 is well above its 03:00 level
    afternoon, night = bases["meter-huanan"](3600.0), bases["meter-huanan"](13 * 3600.0)
    assert afternoon > 2 * night > 0
