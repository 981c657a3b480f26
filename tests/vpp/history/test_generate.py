"""Generated history: shapes per day type, meter = devices + base load, gaps, the past event."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from adapters.sim.profiles import DayType, EvPattern, Shape
from tests.support import DEMO_PARK
from vpp.history.generate import (
    EnterpriseProfile,
    GeneratedHistory,
    PastEvent,
    Written,
    base_profile,
    generate_history,
    load_profiles,
    official_day_type,
    with_load_profiles,
    write_history,
)
from vpp.history.grid import SLOTS_PER_DAY
from vpp.history.store import HistoryStore, IntervalDelta
from vpp.model import Battery, EvCharger, FlexibleLoad, Meter, Pv
from vpp.parkfile import ParkFile, load_park_file, parse_park_file, simulator_spec
from vpp.state import State

#: How the demo park's enterprises draw (what the demo passes).
DEMO_ENTERPRISES = {
    "huanan-auto": EnterpriseProfile(shape=Shape.TWO_SHIFT, base_kw=2500.0),
    "lingnan-cold": EnterpriseProfile(shape=Shape.COLD_STORE, base_kw=600.0, ev=EvPattern.DEPOT),
    "nansha-dc": EnterpriseProfile(shape=Shape.CONTINUOUS, base_kw=3000.0),
    "park-energy": EnterpriseProfile(shape=Shape.OFFICE_HVAC, base_kw=800.0),
}
#: 14 days before 2024-10-10: a Saturday, an adjusted working day (Sunday 29 September)
#: and the National Day holiday (1-7 October).
NATIONAL_DAY_END = date(2024, 10, 10)


@pytest.fixture(scope="module")
def demo() -> ParkFile:
    return load_park_file(DEMO_PARK)


@pytest.fixture(scope="module")
def h(demo: ParkFile) -> GeneratedHistory:
    return generate_history(
        demo.park, demo.assets, end=NATIONAL_DAY_END, days=14, seed=1,
        enterprises=DEMO_ENTERPRISES,
    )  # fmt: skip


def kw(h: GeneratedHistory, series: str) -> np.ndarray:
    """``(days, 96)`` recorded mean kW (NaN where not covered)."""
    return np.stack([h.series[series][d].mean_kw for d in h.days])


def test_the_official_calendar_gives_the_day_types() -> None:
    assert official_day_type(date(2024, 10, 1)) is DayType.HOLIDAY
    assert official_day_type(date(2024, 10, 7)) is DayType.HOLIDAY  # bridged to National Day
    assert official_day_type(date(2024, 9, 29)) is DayType.WORKDAY  # a Sunday worked (调休)
    assert official_day_type(date(2024, 9, 28)) is DayType.WEEKEND
    assert official_day_type(date(2024, 10, 8)) is DayType.WORKDAY


def test_a_year_the_calendar_does_not_know_falls_back_to_weekdays() -> None:
    assert official_day_type(date(2099, 1, 1)) is DayType.WORKDAY  # a Thursday
    assert official_day_type(date(2099, 1, 3)) is DayType.WEEKEND


def test_the_window_is_the_days_before_end_with_their_calendar(h: GeneratedHistory) -> None:
    assert h.days[0] == date(2024, 9, 26) and h.days[-1] == date(2024, 10, 9)
    assert [h.day_types[date(2024, 10, d)] for d in range(1, 8)] == [DayType.HOLIDAY] * 7
    assert h.day_types[date(2024, 9, 29)] is DayType.WORKDAY
    every = {a.id for a in load_park_file(DEMO_PARK).assets if not isinstance(a, Meter)}
    assert set(h.series) == every | {"meter-huanan", "meter-lingnan", "meter-nansha-dc"}
    assert all(len(days) == 14 for days in h.series.values())


def test_each_revenue_meter_reads_its_enterprises_devices_plus_its_base_load(
    h: GeneratedHistory, demo: ParkFile
) -> None:
    assert h.meters == {
        "huanan-auto": "meter-huanan", "lingnan-cold": "meter-lingnan",
        "nansha-dc": "meter-nansha-dc",
    }  # fmt: skip
    for owner, meter in h.meters.items():
        devices = [a.id for a in demo.assets if a.owner == owner and not isinstance(a, Meter)]
        expected = h.base_kw[owner] + sum(h.drawn_kw[a] for a in devices)
        for i, day in enumerate(h.days):
            vector = h.series[meter][day]
            assert vector.imported.all() and (vector.coverage == 1.0).all()
            np.testing.assert_allclose(vector.energy_kwh, expected[i] / 4, rtol=1e-12)
        assert (kw(h, meter) > 0).all()  # importing from the grid all the time
    # the base load is its enterprise's profile, the one a live simulated meter is given
    for owner, base in h.base_kw.items():
        profile = base_profile(demo.park, owner, DEMO_ENTERPRISES, seed=1)
        nominal = DEMO_ENTERPRISES[owner].base_kw
        days_kw = [profile.day_kw(d, h.day_types[d], nominal) for d in h.days]
        np.testing.assert_array_equal(base, np.stack(days_kw))
    # an enterprise's base load follows its shape: the factory's is lowest at night
    base = h.base_kw["huanan-auto"][h.days.index(date(2024, 9, 30))]
    assert base[12] < 0.4 * base[56]  # 03:00 against 14:00


def test_a_factorys_holiday_weekend_and_adjusted_working_day_look_as_they_should(
    h: GeneratedHistory,
) -> None:
    daily = {d: h.series["meter-huanan"][d].energy_kwh.sum() for d in h.days}
    workdays = [daily[d] for d in h.days if h.day_types[d] is DayType.WORKDAY]
    holidays = [daily[d] for d in h.days if h.day_types[d] is DayType.HOLIDAY]
    assert max(holidays) < 0.4 * min(workdays)
    assert max(holidays) < daily[date(2024, 9, 28)] < 0.7 * min(workdays)  # Saturday shift
    assert daily[date(2024, 9, 29)] > 0.9 * np.mean(workdays)  # the Sunday worked
    # a data centre does not care
    dc = [h.series["meter-nansha-dc"][d].energy_kwh.sum() for d in h.days]
    assert max(dc) < 1.1 * min(dc)


def test_devices_keep_their_signs_and_limits(h: GeneratedHistory, demo: ParkFile) -> None:
    for asset in demo.assets:
        if isinstance(asset, Meter):
            continue
        drawn = h.drawn_kw[asset.id]
        assert drawn.shape == (14, SLOTS_PER_DAY)
        match asset:
            case Pv():
                assert (drawn <= 0).all() and drawn.min() >= -asset.rated_kw
                assert (drawn[:, :20] == 0).all()  # before 05:00
            case EvCharger():
                assert (drawn >= 0).all() and drawn.max() <= asset.max_charge_kw + 1e-9
            case FlexibleLoad():
                assert (drawn >= 0).all()
            case Battery():
                assert h.event is not None
                quiet = np.delete(drawn, h.days.index(h.event.day), 0)
                assert np.abs(quiet).max() < 0.01 * asset.capacity_kwh  # standby only


def test_telemetry_has_gaps_as_partial_coverage_never_as_zero(h: GeneratedHistory) -> None:
    devices = list(h.drawn_kw)
    coverage = np.stack([[h.series[s][d].coverage for d in h.days] for s in devices])
    assert (coverage == 0).any() and ((coverage > 0) & (coverage < 1)).any()
    assert (coverage == 1).mean() > 0.97
    for s in devices:
        for i, day in enumerate(h.days):
            vector = h.series[s][day]
            assert not vector.imported.any()
            # what is recorded is what was drawn over the covered part of each slot
            np.testing.assert_allclose(
                vector.energy_kwh, h.drawn_kw[s][i] / 4 * vector.coverage, atol=1e-9
            )
            assert np.isnan(vector.mean_kw[vector.coverage == 0]).all()


def test_a_gateway_outage_takes_every_flexible_load_off_line_for_a_morning(
    h: GeneratedHistory, demo: ParkFile
) -> None:
    assert h.outage_day is not None and h.outage_day != (h.event and h.event.day)
    for asset in demo.assets:
        if isinstance(asset, FlexibleLoad):
            vector = h.series[asset.id][h.outage_day]
            assert (vector.coverage[40:50] == 0).all()
            assert vector.day_coverage < 0.9  # below a baseline's usual minimum


def test_the_past_event_sheds_the_loads_discharges_the_batteries_and_rebounds(
    h: GeneratedHistory, demo: ParkFile
) -> None:
    # the latest working day before the window's last one, 14:00-16:00
    assert h.event == PastEvent(date(2024, 10, 8), 56, 8, 0.8)
    quiet = generate_history(
        demo.park, demo.assets, end=NATIONAL_DAY_END, days=14, seed=1,
        enterprises=DEMO_ENTERPRISES, event=None,
    )  # fmt: skip
    i, window = h.days.index(h.event.day), slice(56, 64)
    assets = {a.id: a for a in demo.assets}
    for series, drawn in h.drawn_kw.items():
        asset, before = assets[series], quiet.drawn_kw[series]
        np.testing.assert_array_equal(np.delete(drawn, i, 0), np.delete(before, i, 0))
        if isinstance(asset, FlexibleLoad):
            level = np.minimum(before[i, window] / asset.baseline_kw, 1.0)
            cut = 0.8 * asset.max_shed_kw * level
            np.testing.assert_allclose(drawn[i, window], before[i, window] - cut)
            # the shed energy comes back afterwards by the asset's rebound fraction
            back = (drawn[i] - before[i])[64:].sum()
            assert back == pytest.approx(asset.rebound_fraction * cut.sum())
        elif isinstance(asset, Battery):
            assert (drawn[i, window] < 0).all()
            assert drawn[i, 88:].sum() > 0  # recharged from 22:00
    # the meters see it: the factory's afternoon dips against the day without the event
    dip = (
        quiet.series["meter-huanan"][h.event.day].energy_kwh
        - h.series["meter-huanan"][h.event.day].energy_kwh
    )
    assert dip[window].sum() > 0


def test_the_same_seed_gives_the_same_history_and_a_day_keeps_it_in_any_window(
    demo: ParkFile, h: GeneratedHistory
) -> None:
    again = generate_history(
        demo.park, demo.assets, end=NATIONAL_DAY_END, days=14, seed=1,
        enterprises=DEMO_ENTERPRISES,
    )  # fmt: skip
    other = generate_history(
        demo.park, demo.assets, end=NATIONAL_DAY_END, days=14, seed=2,
        enterprises=DEMO_ENTERPRISES,
    )  # fmt: skip
    later = generate_history(
        demo.park, demo.assets, end=NATIONAL_DAY_END + timedelta(days=1), days=5, seed=1,
        enterprises=DEMO_ENTERPRISES, event=None,
    )  # fmt: skip
    assert h.event is not None
    special = {h.event.day, h.outage_day, later.outage_day}
    shared = [d for d in later.days if d in h.days and d not in special]
    assert len(shared) >= 2
    for series in ("line-11", "coldstore-13", "pv-01", "ev-06", "bess-02", "meter-lingnan"):
        np.testing.assert_array_equal(kw(again, series), kw(h, series))
        assert not np.allclose(kw(other, series), kw(h, series), equal_nan=True)
        for day in shared:
            vector, before = later.series[series][day], h.series[series][day]
            np.testing.assert_array_equal(vector.energy_kwh, before.energy_kwh)
            np.testing.assert_array_equal(vector.coverage, before.coverage)


def test_a_sub_meter_and_an_unknown_enterprise_take_the_defaults() -> None:
    common = {"grid_node": "n"}
    park_file = parse_park_file({
        "park": {"id": "p", "timezone": "Asia/Shanghai"},
        "assets": [
            {**common, "owner": "acme", "kind": "flexible_load", "id": "line-1",
             "baseline_kw": 100.0, "max_shed_kw": 30.0, "max_shed_minutes": 60.0,
             "connection": {"protocol": "mqtt", "topic_prefix": "vpp/p/line-1"}},
            {**common, "owner": "acme", "kind": "meter", "id": "m-rev", "account_no": "1",
             "revenue": True},
            {**common, "owner": "acme", "kind": "meter", "id": "m-sub", "account_no": "2"},
        ],
    })  # fmt: skip
    h = generate_history(park_file.park, park_file.assets, end=date(2026, 11, 30), days=3)
    assert set(h.series) == {"line-1", "m-rev"}  # what a sub-meter measures is not known
    np.testing.assert_allclose(h.base_kw["acme"], 0.0)  # no base load given
    np.testing.assert_allclose(h.drawn_kw["line-1"] / 4, kw(h, "m-rev") / 4)
    assert h.event is not None and h.outage_day is not None


def test_bad_windows_are_refused(demo: ParkFile) -> None:
    with pytest.raises(ValueError, match="days"):
        generate_history(demo.park, demo.assets, end=NATIONAL_DAY_END, days=0)
    with pytest.raises(ValueError, match="outside"):
        generate_history(
            demo.park, demo.assets, end=NATIONAL_DAY_END, event=PastEvent(NATIONAL_DAY_END)
        )
    with pytest.raises(ValueError, match="96 slots"):
        PastEvent(NATIONAL_DAY_END, start_slot=90, slots=8)
    with pytest.raises(ValueError, match="through_slot"):
        generate_history(demo.park, demo.assets, end=NATIONAL_DAY_END, through_slot=97)


def test_today_is_laid_down_up_to_now_when_asked(demo: ParkFile, h: GeneratedHistory) -> None:
    today = generate_history(
        demo.park, demo.assets, end=NATIONAL_DAY_END, days=14, seed=1,
        enterprises=DEMO_ENTERPRISES, through_slot=54,
    )  # fmt: skip
    assert today.days == (*h.days, NATIONAL_DAY_END) and today.partial_day == NATIONAL_DAY_END
    assert today.event == h.event and today.outage_day == h.outage_day  # from the whole days
    for series, days in today.series.items():
        vector = days[NATIONAL_DAY_END]
        assert (vector.coverage[54:] == 0).all() and not vector.imported.any()
        assert vector.coverage[:54].mean() > 0.9
        np.testing.assert_array_equal(
            days[h.days[3]].energy_kwh, h.series[series][h.days[3]].energy_kwh
        )
    meter = today.series["meter-huanan"][NATIONAL_DAY_END]
    assert (meter.coverage[:54] == 1).all()
    devices = [a.id for a in demo.assets if a.owner == "huanan-auto" and not isinstance(a, Meter)]
    drawn = today.base_kw["huanan-auto"][-1] + sum(today.drawn_kw[a][-1] for a in devices)
    np.testing.assert_allclose(meter.energy_kwh[:54], drawn[:54] / 4)


def test_the_live_loads_follow_the_profiles_of_the_history(demo: ParkFile) -> None:
    profiles = load_profiles(
        demo.park, demo.assets, DEMO_ENTERPRISES, seed=1, shapes={"ahu-05": Shape.CONTINUOUS}
    )
    loads = [a for a in demo.assets if isinstance(a, FlexibleLoad)]
    assert set(profiles) == {a.id for a in loads}
    assert profiles["line-11"].shape is Shape.TWO_SHIFT  # its enterprise's
    assert profiles["ahu-04"].shape is Shape.OFFICE_HVAC
    assert profiles["ahu-05"].shape is Shape.CONTINUOUS  # its own
    assert profiles["coldstore-13"].timezone == "Asia/Shanghai"
    spec = with_load_profiles(simulator_spec(demo, ocpp_secret="s"), profiles)
    assert {load.asset_id: load.profile for load in spec.loads} == profiles
    # the live profile is the history's: the same day, the same kW
    h = generate_history(
        demo.park, demo.assets, end=date(2026, 11, 30), days=2, seed=1,
        enterprises=DEMO_ENTERPRISES, event=None, gaps=False,
    )  # fmt: skip
    day = h.days[0]
    line = next(a for a in loads if a.id == "line-11")
    np.testing.assert_allclose(
        h.drawn_kw["line-11"][0],
        profiles["line-11"].day_kw(day, h.day_types[day], line.baseline_kw),
    )


async def test_the_history_goes_through_the_store_once(state: State, demo: ParkFile) -> None:
    store = HistoryStore(state, retention_days=400)
    park, tz = demo.park, ZoneInfo(demo.park.timezone)
    h = generate_history(
        park, demo.assets, end=date.today(), days=4, seed=3, enterprises=DEMO_ENTERPRISES,
        through_slot=40,
    )  # fmt: skip
    assert len(h.days) == 5 and h.partial_day == h.days[-1] == date.today()
    # live telemetry already holds one series' day: the generator leaves it alone
    live_day = h.days[-2]
    await store.add(park.id, [IntervalDelta("line-11", live_day, 10, 5.0, 900)], tz=tz)

    first = await write_history(store, h, tz=tz)
    assert first == Written(written=5 * len(h.series) - 1, kept=1)
    back = await store.read(park.id, list(h.series), h.days[0], h.days[-1])
    for series, days in h.series.items():
        for day, vector in days.items():
            stored = back[series][day]
            if (series, day) == ("line-11", live_day):
                assert stored.coverage.sum() == 1.0 and stored.energy_kwh[10] == 5.0
                continue
            np.testing.assert_allclose(stored.coverage, vector.coverage, atol=1e-12)
            np.testing.assert_allclose(stored.energy_kwh, vector.energy_kwh, rtol=1e-6, atol=1e-6)
            whole_meter_day = series in h.meters.values() and day != h.partial_day
            assert (stored.imported == whole_meter_day).all()
    # today's part of a meter, as if read live: telemetry until "now", nothing after
    today = back["meter-lingnan"][date.today()]
    assert (today.coverage[:40] == 1).all() and (today.coverage[40:] == 0).all()

    again = await write_history(store, h, tz=tz)
    assert again == Written(written=0, kept=5 * len(h.series))
    twice = await store.read(park.id, ["meter-huanan", "bess-02"], h.days[0], h.days[-1])
    for series in ("meter-huanan", "bess-02"):
        for day in h.days:
            np.testing.assert_array_equal(
                twice[series][day].energy_kwh, back[series][day].energy_kwh
            )
