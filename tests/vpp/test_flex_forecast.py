"""Issue 11 items 3 and 5: the flexibility view, bids and the control baseline use the forecast.

Forecasts and backtests are built by hand here (the forecasters are tested on
their own) and stored with `ForecastStore`; the park is enrolled in Redis and
its live state written as telemetry would be, dated at the test's own clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from adapters.types import Confirmation
from vpp.bids import BidRecord, BidRequest, build_park_bid
from vpp.clock import Clock
from vpp.control import ControlLoop
from vpp.errors import Conflict
from vpp.events import EventRecord, EventState, EventStore, parse_event_request
from vpp.flex import Outlook, build_view, grid_at
from vpp.forecast import (
    BacktestSummary,
    ExpectedSession,
    ForecastStore,
    ParkForecast,
    SeriesForecast,
)
from vpp.history.store import HistoryStore
from vpp.model import LiveState, parse_asset
from vpp.settings import ControlSettings
from vpp.state import State

PARK = "fc-park"
TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 7, 1)  # the issue day; the bids are for DAY + 1
ISSUED = datetime(2026, 7, 1, 5, 0, tzinfo=TZ)


def at(day: date, hour: int) -> datetime:
    """Park time on ``day`` at ``hour``:00."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=TZ)


def sun(peak_kw: float) -> np.ndarray:
    """PV power of one day, kW (negative = generation): a half sine from 06:00 to 18:00."""
    hours = np.arange(96) / 4 + 0.125  # slot midpoints
    return -peak_kw * np.clip(np.sin(np.pi * (hours - 6) / 12), 0.0, None)


def factory(night_kw: float, day_kw: float) -> np.ndarray:
    """A factory's load of one day, kW: ``day_kw`` from 08:00 to 20:00, else ``night_kw``."""
    hours = np.arange(96) / 4
    return np.where((hours >= 8) & (hours < 20), day_kw, night_kw).astype(np.float64)


def forecast(series: Mapping[str, tuple[str, np.ndarray]], **kw: Any) -> ParkForecast:
    """A two-day forecast issued at `ISSUED`: each series' one day repeated."""
    return ParkForecast(
        park=PARK,
        issued_at=ISSUED.astimezone(UTC),
        timezone="Asia/Shanghai",
        start_day=DAY,
        days=2,
        series={
            name: SeriesForecast(
                name, kind, "model" if kind != "pv" else "clear_sky", np.tile(kw_, 2)
            )
            for name, (kind, kw_) in series.items()
        },
        **kw,
    )


def pv(id_: str = "pv-1", rated: float = 200.0) -> dict[str, Any]:
    return {
        "kind": "pv", "id": id_, "owner": "o", "grid_node": "n", "rated_kw": rated,
        "connection": {"protocol": "modbus", "host": "10.0.0.1", "unit_id": 1},
    }  # fmt: skip


def load(id_: str = "load-1", **over: Any) -> dict[str, Any]:
    body = {
        "kind": "flexible_load", "id": id_, "owner": "o", "grid_node": "n",
        "connection": {"protocol": "mqtt", "topic_prefix": f"p/{id_}"},
        "baseline_kw": 500.0, "max_shed_kw": 200.0, "max_shed_minutes": 24 * 60,
        "rebound_fraction": 0.0,
    }  # fmt: skip
    body.update(over)
    return body


def battery(id_: str = "bess-1") -> dict[str, Any]:
    return {
        "kind": "battery", "id": id_, "owner": "o", "grid_node": "n",
        "connection": {"protocol": "modbus", "host": "10.0.0.2", "unit_id": 2},
        "capacity_kwh": 400, "max_charge_kw": 100, "max_discharge_kw": 100,
        "soc_min": 0.1, "soc_max": 0.9,
    }  # fmt: skip


async def enroll(state: State, *bodies: dict[str, Any]) -> None:
    for body in bodies:
        await state.enroll(PARK, parse_asset(body))


async def feed(state: State, when: datetime, readings: Mapping[str, LiveState]) -> None:
    dated = {a: r.model_copy(update={"ts": when}) for a, r in readings.items()}
    await state.write_live_many(PARK, dated, ttl=600, now=when.timestamp())


def request(start: datetime, intervals: int = 96) -> BidRequest:
    rules = {"min_capacity_kw": 0, "min_duration_minutes": 15, "price_steps": 1}
    return BidRequest(start=start, intervals=intervals, rules=rules)  # type: ignore[arg-type]


# -- PV: the issue's 07:00 / noon case ----------------------------------------------------


async def test_a_bid_for_tomorrow_built_at_7_has_pv_at_noon_and_none_at_night(
    state: State,
) -> None:
    await enroll(state, pv())
    await ForecastStore(state).put(forecast({"pv-1": ("pv", sun(150.0))}))
    now = at(DAY, 7)
    await feed(state, now, {"pv-1": LiveState(power_kw=-20.0)})  # the morning's output
    bid = await build_park_bid(state, PARK, request(at(DAY + timedelta(days=1), 0)), now=now)
    up = bid.up.quantity_kw
    # slot 48 is 12:00-12:15, its midpoint 12:07:30: 150 sin(pi (6.125 / 12))
    assert up[48] == pytest.approx(150 * np.sin(np.pi * 6.125 / 12), abs=0.01)
    assert up[48] > 149
    assert max(up[:24]) == 0.0 and max(up[73:]) == 0.0  # nothing before 06:00, after 18:15
    assert bid.baseline_kw[48] == pytest.approx(-up[48], abs=0.01)
    assert bid.forecast_issued_at == ISSUED
    assert bid.forecast is not None and bid.forecast.later
    assert bid.forecast.methods == {"pv": {"clear_sky": 1}}
    assert bid.to_json()["forecast_issued_at"] == ISSUED.astimezone(UTC).isoformat()


async def test_a_bid_built_at_noon_has_no_pv_at_night(state: State) -> None:
    await enroll(state, pv())
    await ForecastStore(state).put(forecast({"pv-1": ("pv", sun(150.0))}))
    now = at(DAY, 12)
    await feed(state, now, {"pv-1": LiveState(power_kw=-120.0)})  # a little under the forecast
    # from the current interval to midnight: live now, the forecast's evening, no night
    bid = await build_park_bid(state, PARK, request(now, 48), now=now)
    up = bid.up.quantity_kw
    assert up[0] == pytest.approx(120.0, abs=0.01)  # anchored: the current interval is the reading
    forecast_2pm = 150 * np.sin(np.pi * 8.125 / 12)
    assert up[8] == pytest.approx(forecast_2pm, abs=0.01)  # 2 h on: the forecast alone
    # 13:00, an hour on: half the reading's 29.9 kW below the 12:00 slot's forecast
    gap = 150 * np.sin(np.pi * 6.125 / 12) - 120.0
    assert up[4] == pytest.approx(150 * np.sin(np.pi * 7.125 / 12) - gap / 2, abs=0.01)
    assert max(up[25:]) == 0.0  # from 18:15 to midnight: nothing (held at 120 kW before)
    assert bid.forecast is not None and not bid.forecast.later
    assert "anchored to its live output" in bid.forecast.notes["pv-1"]
    tomorrow = await build_park_bid(state, PARK, request(at(DAY + timedelta(days=1), 0)), now=now)
    assert tomorrow.up.quantity_kw[48] > 149 and max(tomorrow.up.quantity_kw[:24]) == 0.0


async def test_without_a_forecast_pv_holds_its_live_output_for_two_hours_only(
    state: State,
) -> None:
    # no location and no history: the forecast issued on the spot knows nothing of the array
    await enroll(state, pv())
    now = at(DAY, 12)
    await feed(state, now, {"pv-1": LiveState(power_kw=-120.0)})
    bid = await build_park_bid(state, PARK, request(now, 48), now=now)
    # a fresh user's finding: held flat, a reading promised PV all night; it now holds for
    # ANCHOR_HOURS (8 quarter hours) after its reading and no generation is assumed after
    assert bid.up.quantity_kw == [120.0] * 8 + [0.0] * 40
    assert bid.forecast_issued_at is not None  # issued on the spot: the park had none
    assert bid.forecast is not None and bid.forecast.methods == {"pv": {"live_output": 1}}
    assert "live output held 2 h, no generation after" in bid.forecast.notes["pv-1"]


async def test_a_bid_beyond_the_forecast_horizon_assumes_no_pv_at_night(state: State) -> None:
    # the fresh user's exact case: a bid for a day past the forecast's horizon, made with a
    # live PV reading of the morning, put that output in every slot, midnight included
    await enroll(state, pv())
    now = at(DAY, 8)
    await feed(state, now, {"pv-1": LiveState(power_kw=-250.0)})
    later = request(at(DAY + timedelta(days=9), 0))
    bid = await build_park_bid(state, PARK, later, now=now)
    assert bid.baseline_kw == [0.0] * 96
    assert bid.up.quantity_kw == [0.0] * 96


# -- loads: a factory's day shape ----------------------------------------------------------


async def test_a_factory_forecast_gives_less_down_at_3_than_at_15(state: State) -> None:
    await enroll(state, load())  # window 300..500 kW
    await ForecastStore(state).put(forecast({"load-1": ("flexible_load", factory(350, 480))}))
    now = at(DAY, 7)
    await feed(state, now, {"load-1": LiveState(power_kw=360.0)})
    bid = await build_park_bid(state, PARK, request(at(DAY + timedelta(days=1), 0)), now=now)
    down = bid.down.quantity_kw
    assert down[12] == pytest.approx(50.0, abs=0.01)  # 03:00: 350 forecast - 300 floor
    assert down[60] == pytest.approx(180.0, abs=0.01)  # 15:00: 480 - 300
    assert bid.baseline_kw[12] == pytest.approx(350.0) and bid.baseline_kw[60] == pytest.approx(480)
    assert bid.forecast is not None and bid.forecast.methods == {"flexible_load": {"model": 1}}


async def test_a_forecast_above_the_enrolled_window_is_clamped_into_it(state: State) -> None:
    await enroll(state, load())
    view = build_view(
        [parse_asset(load())],
        {},
        grid_at(at(DAY + timedelta(days=1), 0), 96),
        outlook=Outlook(forecast=forecast({"load-1": ("flexible_load", factory(200, 700))})),
    )
    assert view.portfolio is None and "no fresh telemetry" in view.excluded["load-1"]
    view = build_view(
        [parse_asset(load())],
        {"load-1": LiveState(power_kw=400.0, ts=at(DAY, 7))},
        grid_at(at(DAY + timedelta(days=1), 0), 96),
        outlook=Outlook(forecast=forecast({"load-1": ("flexible_load", factory(200, 700))})),
    )
    pf = view.portfolio
    assert pf is not None
    assert pf.baseline[0, 0] == 300.0 and pf.baseline[0, 60] == 500.0  # the window 300..500
    assert np.all(pf.p_min >= 300.0 - 1e-9) and np.all(pf.p_max <= 500.0 + 1e-9)


# -- silent devices in a later window --------------------------------------------------------


async def write_history(state: State, asset_id: str, days: list[date], kwh: float = 1.0) -> None:
    await HistoryStore(state).put_days(PARK, asset_id, {d: [kwh] * 96 for d in days}, tz=TZ)


async def test_a_bid_for_tomorrow_with_silent_devices_counts_the_available_ones(
    state: State,
) -> None:
    await enroll(state, load(), battery(), load("load-2"))
    week = [DAY - timedelta(days=d) for d in range(1, 8)]
    await write_history(state, "load-1", week, kwh=125.0)  # drew its enrolled 500 kW
    await write_history(state, "bess-1", week)
    await write_history(state, "load-2", week[:2])  # two of the seven days: 29 %
    now = at(DAY, 7)
    tomorrow = request(at(DAY + timedelta(days=1), 0))
    bid = await build_park_bid(state, PARK, tomorrow, now=now)
    assert bid.assets_included == 2
    assert "available 29% of the intervals of the last 7 days" in bid.assets_excluded["load-2"]
    assert "below [forecast] min_availability 80%" in bid.assets_excluded["load-2"]
    assert bid.forecast is not None
    assert "middle of its SoC window (0.50)" in bid.forecast.notes["bess-1"]
    assert "available 100%" in bid.forecast.notes["load-1"]
    # the forecast issued on the spot: seven days of history are the similar-day profile
    assert bid.forecast.methods == {
        "battery": {"assumed_soc": 1},
        "flexible_load": {"similar_day": 1},
    }
    # 100 kW from the battery and 200 kW shed from the load at its forecast 500 kW
    assert max(bid.down.quantity_kw) == pytest.approx(300.0, abs=0.01)
    # a window starting now keeps today's answer for silent devices
    with pytest.raises(Conflict, match="right now"):
        await build_park_bid(state, PARK, request(at(DAY, 7), 8), now=now)


async def test_a_later_window_with_only_poorly_available_devices_is_still_refused(
    state: State,
) -> None:
    await enroll(state, load())
    await write_history(state, "load-1", [DAY - timedelta(days=1)])
    with pytest.raises(Conflict, match="in the window"):
        await build_park_bid(state, PARK, request(at(DAY + timedelta(days=1), 0)), now=at(DAY, 7))


# -- chargers: expected sessions --------------------------------------------------------------


def charger() -> dict[str, Any]:
    return {
        "kind": "ev_charger", "id": "ev-1", "owner": "o", "grid_node": "n",
        "connection": {"protocol": "ocpp", "charge_point_id": "CP-1"}, "max_charge_kw": 20.0,
    }  # fmt: skip


def test_a_charger_counts_its_likely_expected_sessions_in_a_later_window() -> None:
    tomorrow = DAY + timedelta(days=1)
    sessions = (
        ExpectedSession("ev-1", at(tomorrow, 8), at(tomorrow, 12), 40.0, 0.8, 20),
        ExpectedSession("ev-1", at(tomorrow, 18), at(tomorrow, 22), 30.0, 0.3, 20),
    )
    fc = forecast({}, sessions={"ev-1": sessions})
    grid = grid_at(at(tomorrow, 0), 96)
    view = build_view(
        [parse_asset(charger())],
        {"ev-1": LiveState(power_kw=0.0, ev_connected=False, ts=at(DAY, 7))},
        grid,
        outlook=Outlook(forecast=fc, later=True),
    )
    pf = view.portfolio
    assert pf is not None and pf.n_assets == 1  # the 0.3 session is left out
    assert view.basis == {"ev-1": "sessions"}
    # uncontrolled: 40 kWh / 0.92 at 20 kW from 08:00 (slots 32..)
    assert pf.baseline[0, 31] == 0.0 and pf.baseline[0, 32] == 20.0
    assert np.sum(pf.baseline[0]) * 0.25 == pytest.approx(40.0 / 0.92)
    assert pf.p_max[0, 47] == 20.0 and pf.p_max[0, 48] == 0.0
    # without a forecast the charger stays out, as before
    alone = build_view(
        [parse_asset(charger())],
        {"ev-1": LiveState(power_kw=0.0, ev_connected=False, ts=at(DAY, 7))},
        grid,
        outlook=Outlook(later=True),
    )
    assert alone.excluded == {"ev-1": "no vehicle plugged in"}


# -- the margin -------------------------------------------------------------------------------


def backtest(errors: Mapping[str, Mapping[str, float]]) -> BacktestSummary:
    return BacktestSummary(
        park=PARK,
        computed_at=datetime(2026, 6, 30, 2, 0, tzinfo=UTC),
        first_day=date(2026, 6, 1),
        last_day=date(2026, 6, 29),
        issue_time="09:00",
        scores={},
        error_quantiles=errors,
    )


async def test_the_margin_shrinks_the_offer_by_the_stated_amount(state: State) -> None:
    await enroll(state, load(), pv())
    flat = np.full(96, 400.0)
    await ForecastStore(state).put(
        forecast({"load-1": ("flexible_load", flat), "pv-1": ("pv", sun(150.0))})
    )
    now = at(DAY, 7)
    await feed(state, now, {"load-1": LiveState(power_kw=400.0), "pv-1": LiveState(power_kw=-5)})
    req = request(at(DAY + timedelta(days=1), 0))
    plain = await build_park_bid(state, PARK, req, now=now)
    assert plain.margin is not None and not plain.margin.applied
    assert plain.margin.note == "no backtest stored: no margin"
    errors = {"flexible_load": {"0.1": -0.1, "0.9": 0.05}, "pv": {"0.1": -0.3, "0.9": 0.2}}
    await ForecastStore(state).put_backtest(backtest(errors))
    kept = await build_park_bid(state, PARK, req, now=now)
    margin = kept.margin
    assert margin is not None and margin.applied and margin.quantile == 0.1
    assert margin.backtest_last_day == date(2026, 6, 29)
    assert margin.errors == {"flexible_load": {"0.1": -0.1, "0.9": 0.05}, "pv": errors["pv"]}
    # loads shed from their 10 % quantile: 0.1 x the day's mean 400 kW = 40 kW less down
    assert margin.down_kw == [40.0] * 96
    assert [a - b for a, b in zip(plain.down.quantity_kw, kept.down.quantity_kw, strict=True)] == (
        pytest.approx(margin.down_kw, abs=1e-3)
    )
    # PV is curtailed from its 90 % quantile of power: 0.2 x its day's mean generation less up
    day_mean = float(np.mean(-sun(150.0)))
    assert margin.up_kw[48] == pytest.approx(0.2 * day_mean, abs=1e-3)
    assert margin.up_kw[0] == 0.0  # nothing to take at night
    assert [a - b for a, b in zip(plain.up.quantity_kw, kept.up.quantity_kw, strict=True)] == (
        pytest.approx(margin.up_kw, abs=1e-3)
    )
    assert kept.baseline_kw == plain.baseline_kw  # the baseline stays the forecast
    assert margin.total_down_kwh == pytest.approx(40.0 * 24)
    stored = BidRecord.model_validate(kept.to_json())
    assert stored.margin == margin


# -- the control loop's model baseline ---------------------------------------------------------


class Sink:
    """Confirms every setpoint as sent."""

    async def send(
        self, park: str, setpoints: Mapping[str, float], *, hold_s: float
    ) -> dict[str, Confirmation]:
        return {
            a: Confirmation(asset_id=a, requested_kw=p, sent_kw=p, clamped=False, confirmed=True)
            for a, p in setpoints.items()
        }

    async def release(self, park: str, asset_ids: Iterable[str]) -> dict[str, bool]:
        return dict.fromkeys(asset_ids, True)


async def activate(state: State, start: datetime, readings: Mapping[str, LiveState]) -> EventRecord:
    """Post a one-hour event at ``start`` and run the cycle that activates it."""
    clock = Clock(time_scale=1, origin=start - timedelta(seconds=5))
    await feed(state, clock.now(), readings)
    body = {
        "id": "ev-1", "kind": "peak_shaving", "start": start.isoformat(), "target_kw": 50,
        "duration_minutes": 60,
    }  # fmt: skip
    events = EventStore(state)
    await events.create(PARK, parse_event_request(body), clock.now())
    ctl = ControlLoop(
        park=PARK, state=state, events=events, sink=Sink(), clock=clock,
        settings=ControlSettings(period_s=60, lease_ttl_s=2, settle_s=0.1, horizon_after_h=0.5),
    )  # fmt: skip
    assert await ctl.lease.acquire()
    await ctl.cycle()
    record = await events.get(PARK, "ev-1")
    assert record.state is EventState.ACTIVE
    return record


async def test_the_model_baseline_takes_the_forecasts_shape_at_the_measured_level(
    state: State,
) -> None:
    await enroll(state, load(max_shed_minutes=120), pv())
    shape = np.full(96, 400.0)
    shape[40:46] = [440.0, 520.0, 300.0, 400.0, 400.0, 400.0]  # 10:00-11:30
    await ForecastStore(state).put(
        forecast({"load-1": ("flexible_load", shape), "pv-1": ("pv", sun(150.0))})
    )
    readings = {"load-1": LiveState(power_kw=360.0), "pv-1": LiveState(power_kw=-100.0)}
    record = await activate(state, at(DAY, 10), readings)
    # load: 360 kW measured x the forecast's move from 400 kW, capped at +-20 %
    load_base = [396.0, 432.0, 288.0, 360.0]
    # PV: the measured 100 kW of the 09:45 slot's forecast, carried over the event
    gen = -sun(150.0)
    pv_base = [-100.0 * gen[k] / gen[39] for k in range(40, 44)]
    expected = [round(a + b, 3) for a, b in zip(load_base, pv_base, strict=True)]
    assert record.baseline_kw == pytest.approx(expected, abs=1e-3)
    assert record.rebound is not None
    assert record.rebound.baseline_kw == pytest.approx(
        [360.0 - 100.0 * gen[k] / gen[39] for k in range(44, 46)], abs=1e-3
    )


async def test_without_a_forecast_the_model_baseline_is_held_at_the_measurement(
    state: State,
) -> None:
    await enroll(state, load(max_shed_minutes=120))
    record = await activate(state, at(DAY, 10), {"load-1": LiveState(power_kw=360.0)})
    assert record.baseline_kw == [360.0] * 4


def test_a_live_session_read_mid_interval_counts_only_the_time_left() -> None:
    """The live reading's time reaches the plan (``EvSession.as_of``), as the clamp counts from it.

    Read 600 s into the grid's first interval, 8 kWh by 45 min after the grid's
    start (the end of slot 2): the need at the departure is raised by what the
    600 s gone could not deliver, 0.92 x 20 kW x 1/6 h = 3.07 kWh.
    """
    start = at(DAY, 10)
    live = LiveState(
        power_kw=0.0, ev_connected=True, ev_departure=start + timedelta(minutes=45),
        ev_energy_needed_kwh=8.0, ts=start + timedelta(seconds=600),
    )  # fmt: skip
    view = build_view([parse_asset(charger())], {"ev-1": live}, grid_at(start, 8))
    pf = view.portfolio
    assert pf is not None and view.basis == {"ev-1": "live_session"}
    assert pf.e_min[0, 1] == 0.0
    assert pf.e_min[0, 2] == pytest.approx(8.0 + 0.92 * 20.0 / 6.0)
