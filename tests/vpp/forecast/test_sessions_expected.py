"""Expected charger sessions and the chargers' forecaster, from synthetic and generated history."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from adapters.sim.profiles import EvPattern
from vpp.forecast.chargers import (
    SESSIONS,
    draw_kw,
    expected_sessions,
    forecast_chargers,
    known_at,
    park_sessions,
)
from vpp.forecast.inputs import ForecastContext, HistoryWindow
from vpp.forecast.model import ExpectedSession
from vpp.forecast.sessions import ChargerSession, SessionStore
from vpp.history.calendar import working_day
from vpp.history.generate import EnterpriseProfile, generate_history, write_history
from vpp.history.grid import SLOTS_PER_DAY
from vpp.history.store import HistoryStore
from vpp.model import Asset, EvCharger, OcppConnection, Park
from vpp.state import State

TZ = ZoneInfo("Asia/Shanghai")
#: four weeks of plain working weeks (no holiday, no adjusted working day in 2026-03)
FIRST = date(2026, 3, 2)
SUNDAY, MONDAY = date(2026, 3, 29), date(2026, 3, 30)
PARK = Park(id="p1", timezone="Asia/Shanghai")


def local(day: date, hours: float) -> datetime:
    return datetime.combine(day, time(0), tzinfo=TZ) + timedelta(hours=hours)


def charger(asset_id: str, max_kw: float = 11.0, owner: str = "acme") -> EvCharger:
    return EvCharger(
        id=asset_id, owner=owner, grid_node="n1", max_charge_kw=max_kw,
        connection=OcppConnection(charge_point_id=asset_id),
    )  # fmt: skip


def workplace(asset_id: str = "ev1") -> list[ChargerSession]:
    """Staff cars on every working day of 2026-03-02..03-28: 08:30 ± 10 min, out ~17:30-17:50."""
    out = []
    days = [FIRST + timedelta(days=i) for i in range(27)]
    for n, day in enumerate(d for d in days if working_day(d)):
        arrive = local(day, 8.5 + (-10, -5, 0, 5, 10)[n % 5] / 60)
        leave = local(day, 17.5 + (0, 10, 20, 30, 40)[n % 5] / 60)
        out.append(ChargerSession(asset_id, arrive, leave, leave, 20.0, 19.0, leave))
    return out


def same(a: datetime, b: datetime) -> bool:
    """The same instant, to the millisecond (the medians are taken in float hours)."""
    return abs((a - b).total_seconds()) < 1e-3


def test_the_calendar_days_of_the_synthetic_history() -> None:
    assert not working_day(SUNDAY) and working_day(MONDAY)
    assert sum(working_day(FIRST + timedelta(days=i)) for i in range(27)) == 20


def test_workplace_charging_gives_a_working_day_session_and_none_on_sunday() -> None:
    got = expected_sessions(workplace(), ["ev1", "ev9"], [SUNDAY, MONDAY], TZ)
    assert got["ev9"] == ()  # no history, no sessions
    [monday] = got["ev1"]
    assert monday.arrival.astimezone(TZ).date() == MONDAY  # none on Sunday
    assert monday.probability == 1.0 and monday.days == 10  # the last 10 working days
    # median arrival of the offsets -10..+10 min: 08:30; departures 17:30..17:50,
    # two each: the lower quartile is 17:40
    assert same(monday.arrival, local(MONDAY, 8.5))
    assert same(monday.departure, local(MONDAY, 17.5 + 10 / 60))
    assert monday.energy_needed_kwh == 20.0  # the stated need, not the 19 kWh delivered


def test_a_charger_used_every_other_working_day_has_half_the_probability() -> None:
    sessions = workplace()[1::2]
    [monday] = expected_sessions(sessions, ["ev1"], [MONDAY], TZ)["ev1"]
    assert monday.probability == pytest.approx(0.5)


def test_a_depot_with_noon_and_evening_sessions_gets_two() -> None:
    sessions = []
    for i in range(27):
        day = FIRST + timedelta(days=i)
        if not working_day(day):
            continue
        back = local(day, 19.0)
        sessions.append(ChargerSession("van", back, local(day, 30.0), None, 45.0, 45.0, back))
        if i % 2 == 0:  # a noon top-up every other day
            top_up, out = local(day, 12.5), local(day, 13.5)
            sessions.append(ChargerSession("van", top_up, out, None, 15.0, 15.0, out))
    noon, evening = expected_sessions(sessions, ["van"], [MONDAY], TZ)["van"]
    assert noon.arrival == local(MONDAY, 12.5) and noon.departure == local(MONDAY, 13.5)
    assert noon.energy_needed_kwh == 15.0 and 0.4 <= noon.probability <= 0.6
    assert evening.arrival == local(MONDAY, 19.0) and evening.probability == 1.0
    assert evening.departure == local(MONDAY, 30.0)  # 06:00 the next morning


def test_a_second_car_of_the_morning_is_a_second_session() -> None:
    # a car at 08:30 every working day, on every other one a second at 09:45, which
    # takes the plug when the first is done (too close to be a group of its own)
    sessions = []
    for n, day in enumerate(FIRST + timedelta(days=i) for i in range(27)):
        if not working_day(day):
            continue
        first, leave = local(day, 8.5), local(day, 17.5)
        sessions.append(ChargerSession("ev1", first, leave, None, 20.0, 20.0, leave))
        if n % 2 == 0:
            second, gone = local(day, 9.75), local(day, 12.0)
            sessions.append(ChargerSession("ev1", second, gone, None, 10.0, 10.0, gone))
    one, two = expected_sessions(sessions, ["ev1"], [MONDAY], TZ)["ev1"]
    assert one.arrival == local(MONDAY, 8.5) and one.probability == 1.0
    assert two.arrival == local(MONDAY, 9.75) and two.probability == 0.5
    assert one.departure == two.arrival  # one vehicle at a time
    # the expected energy is the similar days' mean: 20 kWh + half the days 10 kWh
    assert one.probability * one.energy_needed_kwh + two.probability * two.energy_needed_kwh == 25


def test_only_what_was_known_at_the_issue_time_is_used() -> None:
    issued = local(date(2026, 3, 10), 9.0)
    before = workplace()
    kept = known_at(before, issued)
    assert all(s.arrival < issued for s in kept)
    today = [s for s in kept if s.arrival.astimezone(TZ).date() == date(2026, 3, 10)]
    assert [s.open for s in today] == [True]  # it arrived at 08:30, leaves after 09:00
    assert today[0].seen == issued


def window(series: Sequence[str], days: Sequence[date]) -> HistoryWindow:
    shape = (len(series), len(days), SLOTS_PER_DAY)
    return HistoryWindow(
        series=series, kinds=["ev_charger"] * len(series), days=days,
        kw=np.full(shape, np.nan), coverage=np.zeros(shape),
    )  # fmt: skip


def context(
    assets: Sequence[Asset], sessions: Sequence[ChargerSession], targets: Sequence[date]
) -> ForecastContext:
    issued = local(targets[0] - timedelta(days=1), 9.0)
    return ForecastContext(
        park=PARK, assets={a.id: a for a in assets}, issued_at=issued.astimezone(UTC),
        targets=targets, extra={SESSIONS: list(sessions)},
    )  # fmt: skip


def test_the_forecast_charges_the_expected_energy_at_the_charger_rate() -> None:
    assets = [charger("ev1", 11.0), charger("ev9")]
    ctx = context(assets, workplace(), [SUNDAY, MONDAY])
    days = [SUNDAY - timedelta(days=i) for i in range(7, 0, -1)]
    got = forecast_chargers(window(["ev1", "ev9"], days), [0, 1], ctx)
    ev1 = got["ev1"]
    assert ev1.method == "sessions" and ev1.kind == "ev_charger"
    assert ev1.kw.shape == (2 * SLOTS_PER_DAY,)
    sunday, monday = ev1.kw[:SLOTS_PER_DAY], ev1.kw[SLOTS_PER_DAY:]
    assert (sunday == 0).all()  # none expected on a Sunday: known to be 0, not NaN
    # 20 kWh at 11 kW from 08:30: slots 34-40 flat out, then 20/11 h - 7 slots
    assert monday.sum() / 4 == pytest.approx(20.0)
    np.testing.assert_allclose(monday[34:41], 11.0)
    assert monday[33] == 0 and monday[42] == 0
    assert monday[41] == pytest.approx(11.0 * (20 / 11 - 7 / 4) * 4)
    # a charger with no session history: nothing to forecast from
    assert got["ev9"].method == "none" and np.isnan(got["ev9"].kw).all()
    # the refresh's expected sessions: the one the curve charges; ev9 has none
    sessions = park_sessions(ctx)
    assert list(sessions) == ["ev1"]
    [session] = sessions["ev1"]
    assert same(session.arrival, local(MONDAY, 8.5)) and session.probability == 1.0


def test_an_evening_session_of_the_eve_runs_on_past_midnight() -> None:
    # vans back at 23:00 with 30 kWh on a 20 kW charger: 1.5 h, to 00:30
    sessions = []
    for i in range(27):
        day = FIRST + timedelta(days=i)
        back = local(day, 23.0)
        sessions.append(ChargerSession("van", back, local(day, 30.0), None, 30.0, 30.0, back))
    ctx = context([charger("van", 20.0)], sessions, [MONDAY])
    kw = forecast_chargers(window(["van"], [SUNDAY]), [0], ctx)["van"].kw
    # Sunday's van spills 30 minutes into Monday; Monday's own charges 23:00-24:00
    assert kw[0] == kw[1] == pytest.approx(20.0) and kw[2] == 0
    np.testing.assert_allclose(kw[92:], 20.0)
    assert kw.sum() / 4 == pytest.approx(10.0 + 20.0)


def slot_edges(first: date, days: int) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
    """The slot bounds of ``days`` days from ``first``, epoch s (no daylight saving in China)."""
    start = local(first, 0).timestamp()
    return start + np.arange(days * SLOTS_PER_DAY + 1, dtype=np.float64) * 900.0


def test_the_draw_charges_the_need_flat_out_times_the_probability() -> None:
    # the expected departure (the early side of past ones) does not cut the draw
    half = ExpectedSession("ev1", local(MONDAY, 8.0), local(MONDAY, 8.5), 11.0, 0.5, 10)
    kw = draw_kw([half], 11.0, slot_edges(MONDAY, 1))
    assert kw.sum() / 4 == pytest.approx(0.5 * 11.0)  # half likely
    np.testing.assert_allclose(kw[32:36], 5.5)  # 08:00-09:00 at 11 kW
    assert kw[31] == kw[36] == 0


def test_the_generated_history_comes_with_the_sessions_its_curves_are_drawn_from() -> None:
    # AC chargers (≤ 11 kW) charge at their maximum, so each session's curve is known
    assets = [charger("ev-w", 7.0, "office"), charger("ev-d", 11.0, "depot")]
    enterprises = {
        "office": EnterpriseProfile(ev=EvPattern.WORKPLACE),
        "depot": EnterpriseProfile(ev=EvPattern.DEPOT),
    }
    end = date(2026, 3, 30)
    h = generate_history(
        PARK, assets, end=end, days=28, seed=2, enterprises=enterprises, event=None, gaps=False
    )
    assert h.sessions == tuple(sorted(h.sessions, key=lambda s: (s.arrival, s.asset_id)))
    cut = local(end, 0)
    assert all(s.departure is not None and s.departure <= cut for s in h.sessions)
    for a in assets:
        mine = [s for s in h.sessions if s.asset_id == a.id]
        assert len(mine) >= 10
        for s in mine:
            assert s.departure is not None and s.arrival < s.departure
            assert s.energy_delivered_kwh <= (s.energy_needed_kwh or 0.0) + 1e-9
        # the sessions redrawn flat out reproduce the curve (the first day also has
        # the spill of the day before the window, the last the ones still plugged in)
        as_expected = [
            ExpectedSession(a.id, s.arrival, s.until, s.energy_delivered_kwh, 1.0, 1) for s in mine
        ]
        edges = slot_edges(h.days[1], 26)
        redrawn = draw_kw(as_expected, a.max_charge_kw, edges)
        np.testing.assert_allclose(redrawn, h.drawn_kw[a.id][1:-1].ravel(), atol=1e-6)
    # and what the forecaster learns from them: staff cars on working days
    found = expected_sessions(h.sessions, ["ev-w"], [MONDAY], TZ)["ev-w"]
    assert found and found[0].probability >= 0.5
    assert 7.5 <= found[0].arrival.astimezone(TZ).hour + found[0].arrival.minute / 60 <= 10.0
    # the depot: a noon top-up and an evening return, one vehicle at a time
    depot = expected_sessions(h.sessions, ["ev-d"], [MONDAY], TZ)["ev-d"]
    assert len(depot) >= 2
    assert 11.0 <= depot[0].arrival.astimezone(TZ).hour <= 14
    assert any(17 <= e.arrival.astimezone(TZ).hour <= 21 for e in depot[1:])
    assert all(a.departure <= b.arrival for a, b in itertools.pairwise(depot))


async def test_write_history_stores_the_sessions_once(state: State) -> None:
    today = date.today()
    assets = [charger("ev-d", 11.0, "depot")]
    enterprises = {"depot": EnterpriseProfile(ev=EvPattern.DEPOT)}
    h = generate_history(PARK, assets, end=today, days=5, seed=4, enterprises=enterprises)
    assert h.sessions
    store = HistoryStore(state)
    await write_history(store, h, tz=TZ)
    sessions = SessionStore(state)
    far = local(today + timedelta(days=2), 0)
    stored = await sessions.read(PARK.id, local(today - timedelta(days=6), 0), far)
    assert stored == sorted(h.sessions, key=lambda s: (s.arrival, s.asset_id))
    await write_history(store, h, tz=TZ)  # again: nothing new, nothing doubled
    assert await sessions.read(PARK.id, local(today - timedelta(days=6), 0), far) == stored
