"""The PV forecast: the clear-sky model checked by hand, the learned index, uploads, fallbacks."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tests.vpp.samples import sample
from vpp.forecast.inputs import ForecastContext, HistoryWindow
from vpp.forecast.pv import clear_sky_kw, forecast_pv, irradiance_kw, learn
from vpp.history.grid import SLOTS_PER_DAY
from vpp.model import Park, ParkLocation, Pv, parse_asset

TZ = ZoneInfo("Asia/Shanghai")
#: Guangzhou Nansha.
NANSHA = ParkLocation(latitude=22.80, longitude=113.55)
SOLSTICE = date(2026, 6, 21)
RATED = 100.0


def _pv(**changes: object) -> Pv:
    asset = parse_asset(sample("pv", id="pv1", rated_kw=RATED, **changes))
    assert isinstance(asset, Pv)
    return asset


def _hand_noon_sunrise_sunset(day: date, lat: float, lon: float) -> tuple[float, float, float]:
    """Solar noon, sunrise and sunset, local clock hours (UTC+8), by the textbook formulas.

    Equation of time (Spencer-type fit used in Duffie & Beckman): B = 360 (n − 81) / 364,
    EoT = 9.87 sin 2B − 7.53 cos B − 1.5 sin B minutes; solar noon on the UTC+8 clock =
    12:00 − 4 min/° × (lon − 120°) − EoT; half-day length ω0 = acos(−tan φ tan δ).
    """
    n = day.timetuple().tm_yday
    b = math.radians(360.0 * (n - 81) / 364.0)
    eot_min = 9.87 * math.sin(2 * b) - 7.53 * math.cos(b) - 1.5 * math.sin(b)
    noon = 12.0 + (-4.0 * (lon - 120.0) - eot_min) / 60.0
    decl = math.radians(23.45) * math.sin(math.radians(360.0 * (284 + n) / 365.0))
    half = math.degrees(math.acos(-math.tan(math.radians(lat)) * math.tan(decl))) / 15.0
    return noon, noon - half, noon + half


def test_hand_computed_sun_times_for_nansha_on_the_solstice() -> None:
    # By hand: n = 172, B = 90°, EoT = −1.5 min; noon = 12:00 + 25.8 + 1.5 = 12:27.3;
    # δ = 23.45°, ω0 = acos(−tan 22.8° tan 23.45°) = 100.5° = 6 h 42 min.
    noon, rise, sset = _hand_noon_sunrise_sunset(SOLSTICE, 22.80, 113.55)
    assert noon * 60 == pytest.approx(12 * 60 + 27.3, abs=0.1)
    assert rise * 60 == pytest.approx(5 * 60 + 45.3, abs=0.5)
    assert sset * 60 == pytest.approx(19 * 60 + 9.3, abs=0.5)


def test_clear_sky_peaks_at_solar_noon_and_is_zero_at_night() -> None:
    kw = clear_sky_kw(NANSHA, _pv(), [SOLSTICE], TZ)[0]
    noon, rise, sset = _hand_noon_sunrise_sunset(SOLSTICE, 22.80, 113.55)
    # the peak slot holds solar noon (12:27.3 -> slot 49, 12:15-12:30)
    assert int(np.argmax(kw)) == int(noon * 4) == 49
    # night: exactly 0 in every slot that ends before sunrise or starts after sunset,
    # allowing 5 minutes for refraction and the sun's radius (the sun shows ~4 min earlier)
    before = int((rise - 5 / 60) * 4)  # slots wholly before 05:40
    after = math.ceil((sset + 5 / 60) * 4)  # slots from 19:15
    assert (before, after) == (22, 77)
    assert (kw[:before] == 0.0).all()
    assert (kw[after:] == 0.0).all()
    # output starts within two slots of sunrise and ends within two of sunset
    lit = np.flatnonzero(kw > 0)
    assert int(rise * 4) <= lit[0] <= int(rise * 4) + 2
    assert int(sset * 4) - 2 <= lit[-1] <= int(sset * 4)
    # a 20° south-facing array at near-zenith noon sun: 60-90 % of its AC rating
    # (POA about 950 W/m², DC 1.1 × rated, 14 % losses, hot cells), and a clear
    # day's energy of 4.5-7 kWh per kW (Guangzhou's clear June days)
    assert 0.6 * RATED < kw.max() < 0.9 * RATED
    assert 4.5 < kw.sum() / 4 / RATED < 7.0
    # symmetric about solar noon: 3 h before and after within 5 %
    am, pm = kw[int((noon - 3) * 4)], kw[int((noon + 3) * 4)]
    assert am == pytest.approx(pm, rel=0.05)
    assert (kw <= RATED).all()


def test_clear_sky_is_clipped_at_the_rating_and_follows_the_azimuth() -> None:
    east = clear_sky_kw(NANSHA, _pv(azimuth_deg=90.0, tilt_deg=40.0), [SOLSTICE], TZ)[0]
    west = clear_sky_kw(NANSHA, _pv(azimuth_deg=270.0, tilt_deg=40.0), [SOLSTICE], TZ)[0]
    assert np.argmax(east) < 49 < np.argmax(west)
    # the clip: a December day at a high-altitude site, flat array: never above the rating
    high = ParkLocation(latitude=30.0, longitude=91.1, altitude_m=3650.0)
    assert (clear_sky_kw(high, _pv(tilt_deg=30.0), [date(2026, 3, 1)], TZ) <= RATED).all()


def _park(location: ParkLocation | None = NANSHA) -> Park:
    return Park(id="p1", location=location)


def _window(gen: np.ndarray, days: list[date], coverage: np.ndarray | None = None) -> HistoryWindow:
    """One PV series; ``gen``: its output, kW ≥ 0, a row per complete day; the issue day unknown."""
    kw = np.concatenate([-gen, np.full((1, SLOTS_PER_DAY), np.nan)])[None]
    cov = np.ones_like(kw) if coverage is None else np.concatenate(
        [coverage, np.zeros((1, SLOTS_PER_DAY))]
    )[None]  # fmt: skip
    cov[0, -1] = 0.0
    issue = days[-1] + timedelta(days=1)
    return HistoryWindow(["pv1"], ["pv"], [*days, issue], kw, cov)


def _ctx(park: Park, pv: Pv, targets: list[date], irradiance: dict[date, np.ndarray] | None = None
         ) -> ForecastContext:  # fmt: skip
    issued = datetime.combine(targets[0] - timedelta(days=1), datetime.min.time(), TZ)
    return ForecastContext(park, {"pv1": pv}, issued.astimezone(UTC), targets, irradiance or {})


HISTORY_DAYS = [SOLSTICE - timedelta(days=14 - i) for i in range(14)]  # 06-07 .. 06-20
TARGETS = [SOLSTICE, SOLSTICE + timedelta(days=1)]


def test_a_history_at_70_percent_of_clear_sky_gives_an_index_of_07_despite_gaps() -> None:
    pv = _pv()
    model = clear_sky_kw(NANSHA, pv, HISTORY_DAYS, TZ)
    gen = 0.7 * model
    coverage = np.ones_like(gen)
    # an outage over the noon of one day (not counted: under 75 % of daylight measured),
    # and a short gap of another: neither biases the ratio
    gen[-2, 40:60], coverage[-2, 40:60] = np.nan, 0.0
    gen[-4, 50:52], coverage[-4, 50:52] = 0.0, 0.0
    out = forecast_pv(_window(gen, HISTORY_DAYS, coverage), [0], _ctx(_park(), pv, TARGETS))
    f = out["pv1"]
    assert f.method == "clear_sky"
    assert f.kw.shape == (2 * SLOTS_PER_DAY,)
    expected = -0.7 * clear_sky_kw(NANSHA, pv, TARGETS, TZ).reshape(-1)
    np.testing.assert_allclose(f.kw, expected, rtol=0.01, atol=1e-9)
    # the outage day does not count; the short gap's day does
    assert f.note == "clear-sky index 0.70 (median of 13 days 2026-06-07..2026-06-20)"
    assert (f.kw <= 0).all()  # output fed in: negative
    assert (f.kw[:20] == 0.0).all()  # night exactly 0


def test_learn_takes_the_performance_factor_from_the_clearest_days() -> None:
    pv = _pv()
    model = clear_sky_kw(NANSHA, pv, HISTORY_DAYS, TZ)
    ratios = np.full(len(HISTORY_DAYS), 0.4)  # cloudy days
    ratios[[2, 6, 11]] = [0.9, 0.92, 0.88]  # three clear days
    gen = model * ratios[:, None]
    learned = learn(gen, np.ones_like(gen), model, HISTORY_DAYS, RATED)
    assert learned.performance == pytest.approx(0.9, abs=1e-9)
    assert learned.clear_days == tuple(HISTORY_DAYS[i] for i in (2, 6, 11))
    # the index is the median of the daily ratios of the last 14 days: 11 cloudy, 3 clear
    assert learned.index == pytest.approx(0.4)
    assert learned.index_days == tuple(HISTORY_DAYS)
    # every day has the model's shape: nothing to correct (within the days' weights)
    np.testing.assert_allclose(learned.shape, 1.0, atol=0.01)


def test_a_shaded_morning_is_learned_as_a_shape_correction() -> None:
    pv = _pv()
    model = clear_sky_kw(NANSHA, pv, HISTORY_DAYS, TZ)
    gen = 0.9 * model
    gen[:, :40] *= 0.5  # a building shades the array until 10:00
    f = forecast_pv(_window(gen, HISTORY_DAYS), [0], _ctx(_park(), pv, TARGETS))["pv1"]
    clear = -clear_sky_kw(NANSHA, pv, [SOLSTICE], TZ)[0]
    ratio = f.kw[:SLOTS_PER_DAY][28:60] / clear[28:60]  # 07:00-15:00
    # index × shape gives back each slot's own ratio: 0.45 in the shaded morning, 0.9 after
    np.testing.assert_allclose(ratio[:12], 0.45, rtol=0.01)
    np.testing.assert_allclose(ratio[12:], 0.9, rtol=0.01)
    assert "shape corrected in" in f.note


def test_uploaded_irradiance_replaces_the_shape_of_its_day() -> None:
    pv = _pv()
    model = clear_sky_kw(NANSHA, pv, HISTORY_DAYS, TZ)
    gen = 0.8 * model  # every day alike: the index and the performance factor are 0.8
    # tomorrow's forecast GHI: clear until 13:00, then overcast at 20 % of clear sky
    clear_ghi = _clear_ghi(TARGETS[1])
    ghi = clear_ghi.copy()
    ghi[52:] *= 0.2
    ctx = _ctx(_park(), pv, TARGETS, {TARGETS[1]: ghi})
    f = forecast_pv(_window(gen, HISTORY_DAYS), [0], ctx)["pv1"]
    assert f.method == "irradiance"
    assert "uploaded irradiance for 2026-06-22 (96 slots), performance factor 0.80" in f.note
    today, tomorrow = f.kw[:SLOTS_PER_DAY], f.kw[SLOTS_PER_DAY:]
    clear_tomorrow = -0.8 * clear_sky_kw(NANSHA, pv, [TARGETS[1]], TZ)[0]
    # the day without an upload stays clear-sky × index
    np.testing.assert_allclose(today, -0.8 * clear_sky_kw(NANSHA, pv, [SOLSTICE], TZ)[0], rtol=0.01)
    # the clear morning: the clear-sky output within 8 % (Erbs splits the GHI, not Ineichen)
    morning = slice(36, 48)  # 09:00-12:00
    np.testing.assert_allclose(tomorrow[morning], clear_tomorrow[morning], rtol=0.08)
    # the overcast afternoon: 10-35 % of clear sky (20 % of the GHI, nearly all diffuse)
    afternoon = slice(56, 68)  # 14:00-17:00
    share = tomorrow[afternoon] / clear_tomorrow[afternoon]
    assert (share > 0.1).all() and (share < 0.35).all()
    assert (tomorrow[:20] == 0.0).all() and (tomorrow[80:] == 0.0).all()


def _clear_ghi(day: date) -> np.ndarray:
    from vpp.forecast.pv import _sky  # the model's own clear-sky GHI, slot means

    sky = _sky(NANSHA.latitude, NANSHA.longitude, NANSHA.altitude_m, TZ.key, day)
    return np.asarray(sky.ghi.reshape(SLOTS_PER_DAY, -1).mean(axis=1))


def test_irradiance_at_night_gives_nothing_and_unknown_slots_stay_unknown() -> None:
    ghi = np.full(SLOTS_PER_DAY, 300.0)
    ghi[60:64] = np.nan
    kw = irradiance_kw(NANSHA, _pv(), SOLSTICE, ghi, TZ)
    assert (kw[:20] == 0.0).all() and (kw[80:] == 0.0).all()
    assert np.isnan(kw[60:64]).all()
    assert (kw[30:60] > 0).all()


def test_no_location_falls_back_to_the_similar_day_profile() -> None:
    pv = _pv()
    rng = np.random.default_rng(3)
    gen = np.clip(rng.uniform(0, 50, (14, SLOTS_PER_DAY)), 0, None)
    gen[:, :24] = 0.0
    f = forecast_pv(_window(gen, HISTORY_DAYS), [0], _ctx(_park(None), pv, TARGETS))["pv1"]
    assert f.method == "similar_day"
    assert "no location" in f.note and "7 days 2026-06-14..2026-06-20" in f.note
    np.testing.assert_allclose(f.kw, -np.tile(gen[-7:].mean(axis=0), 2))


def test_a_location_without_history_is_clear_sky_at_index_1() -> None:
    pv = _pv()
    empty = np.full((14, SLOTS_PER_DAY), np.nan)
    window = _window(empty, HISTORY_DAYS, np.zeros((14, SLOTS_PER_DAY)))
    f = forecast_pv(window, [0], _ctx(_park(), pv, TARGETS))["pv1"]
    assert f.method == "clear_sky"
    assert "clear-sky index 1: no usable history" in f.note
    np.testing.assert_allclose(f.kw, -clear_sky_kw(NANSHA, pv, TARGETS, TZ).reshape(-1))


def test_neither_location_nor_history_is_none() -> None:
    pv = _pv()
    empty = np.full((14, SLOTS_PER_DAY), np.nan)
    window = _window(empty, HISTORY_DAYS, np.zeros((14, SLOTS_PER_DAY)))
    f = forecast_pv(window, [0], _ctx(_park(None), pv, TARGETS))["pv1"]
    assert f.method == "none"
    assert np.isnan(f.kw).all() and f.kw.shape == (2 * SLOTS_PER_DAY,)
