"""PV forecast: an array's clear-sky output (pvlib) scaled by what it measured, or uploaded GHI.

`forecast_pv` is the `Forecaster` of kind ``pv``. For each array it picks, in order:

``clear_sky`` (the park has a location): the array's modelled output under a
clear sky, times its **clear-sky index**. The model, all pvlib 0.16:

* sun position: NREL SPA (`pvlib.solarposition.get_solarposition`, Reda &
  Andreas 2004) at the park's latitude, longitude and altitude;
* clear-sky irradiance: Ineichen-Perez (`pvlib.clearsky.ineichen`, Ineichen &
  Perez 2002) with the monthly Linke turbidity climatology pvlib ships
  (SoDa/Remund 2003, `pvlib.clearsky.lookup_linke_turbidity`) and the
  Kasten-Young air mass;
* transposition onto the array's plane (tilt, azimuth): Hay-Davies
  (`pvlib.irradiance.get_total_irradiance`, model ``haydavies``), ground
  albedo 0.25; the beam reduced by the physical incidence-angle modifier
  (`pvlib.iam.physical`, glass);
* power: PVWatts (Dobos 2014, NREL/TP-6A20-62641): DC = POA/1000 × DC rating
  × (1 + γ (T_cell − 25)), γ = −0.37 %/K (PVWatts' standard module), T_cell by
  the Faiman model (`pvlib.temperature.faiman`) at an assumed 25 °C ambient
  and 1 m/s wind; system losses 14 % (PVWatts' default); a DC rating of
  `DC_AC_RATIO` × the inverter's AC rating ``rated_kw``; the PVWatts inverter
  (`pvlib.inverter.pvwatts`, nominal efficiency 96 %) clips AC at ``rated_kw``.

Each slot's value is the mean of the model at the slot's three 5-minute
midpoints, so the slot of sunrise holds its part of an hour; a slot whose
samples all have the sun below the horizon is exactly 0.

What the array's own recent output teaches (`learn`), from the complete days
of the window: a slot is used when it is daylight (model ≥ 5 % of
``rated_kw``) and measured (coverage ≥ 0.5); a day counts when at least 75 %
of its daylight slots were measured, so gaps and an outage leave the ratios
unbiased. A day's ratio is Σ measured / Σ model over its used slots.

* the **clear-sky index** is the median of the daily ratios of the counted
  days among the last `INDEX_DAYS` (14). The median, not the pooled mean:
  a day-ahead forecast judged by its absolute error is best at the median
  of what may come (the median minimises the expected absolute error), and
  the weather of southern China is skewed (most days near clear, a few
  overcast), so the mean would under-forecast the typical day; it also
  ignores a day of curtailment or a bad meter. The price is a positive
  bias, which the backtest reports and the bid's margin takes from the
  error distribution. Clipped to 0-1.3.
* the **shape correction** (per slot of the day) is, over the counted days
  among the last `PERFORMANCE_DAYS` (28), Σ measured / Σ model of the slot
  over that of whole days: what the model gets wrong about this array's day
  (horizon shading of the morning, an orientation enrolled roughly, clipping
  the model does not see); 1 where a slot was measured on fewer than 7
  days, clipped to 0-2.

On the demo park's generated history (one 500 kW array, a year, issued the
day before at 09:00) this gives an nMAE of 0.20 against 0.23 for the
similar-day profile and 0.27 for persistence (bias +0.10); the pooled mean
without the shape correction gave 0.24, worse than the similar day.

``irradiance`` (a target day has an uploaded GHI, `vpp.forecast.irradiance`):
that day's shape comes from it. Each slot's GHI is spread over its 5-minute
samples like the clear-sky GHI is (so the slot's mean is the uploaded one),
split into beam and diffuse by Erbs (`pvlib.irradiance.erbs`, Erbs, Klein &
Duffie 1982), transposed and converted as above, and scaled by the array's
**performance factor**: the mean of the daily ratios measured / model of its
3 clearest days (the highest ratios) among the last `PERFORMANCE_DAYS`
complete days: on a clear day the real irradiance is the clear-sky one, so
the ratio is the array's own deviation from the model (soiling, shading,
DC rating), not the weather; and by the shape correction. Slots of the day
that the upload leaves out are clear-sky × index.

Fallbacks, named in the method and the note: the park has no location ->
``similar_day``, the mean of each slot over the array's last `SIMILAR_DAYS`
(7) complete days (for PV every day is similar: the sun keeps no calendar); a
location but no usable history -> ``clear_sky`` with index 1 (and
performance factor 1), said so; neither -> ``none``, NaN.

Values are kW with the service's sign: PV output is negative (fed in).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pvlib
from numpy.typing import NDArray
from pandas.errors import Pandas4Warning

from vpp.forecast.inputs import ForecastContext, HistoryWindow
from vpp.forecast.model import SeriesForecast
from vpp.history.grid import INTERVAL_S, SLOTS_PER_DAY, day_start
from vpp.model import ParkLocation, Pv

__all__ = [
    "DC_AC_RATIO",
    "INDEX_DAYS",
    "PERFORMANCE_DAYS",
    "SIMILAR_DAYS",
    "Learned",
    "clear_sky_kw",
    "forecast_pv",
    "irradiance_kw",
    "learn",
]

FloatArray = NDArray[np.float64]

#: 5-minute samples per slot.
_SUB = INTERVAL_S // 300
#: The DC rating per kW of inverter AC rating (commercial rooftop arrays are
#: built 1.1-1.3 DC/AC; PVWatts' default is 1.2; 1.1 assumed).
DC_AC_RATIO = 1.1
#: PVWatts' default system losses (soiling, wiring, mismatch, availability).
SYSTEM_LOSSES = 0.14
#: PVWatts' standard module: power temperature coefficient, 1/K.
GAMMA_PDC = -0.0037
#: PVWatts' inverter nominal efficiency.
ETA_INV = 0.96
#: Assumed ambient temperature, °C, and wind speed, m/s (no weather input).
AMBIENT_C, WIND_M_S = 25.0, 1.0
#: Complete days the clear-sky index is learned from.
INDEX_DAYS = 14
#: Complete days the similar-day fallback averages.
SIMILAR_DAYS = 7
#: Complete days the performance factor's clearest days are sought in.
PERFORMANCE_DAYS = 28
#: Clearest days the performance factor averages.
CLEAR_DAYS = 3
#: A slot is daylight for learning when the model gives at least this share of the rating.
_DAYLIGHT = 0.05
#: A day counts for learning when at least this share of its daylight slots was measured.
_DAY_COVERED = 0.75
#: Slot coverage at or above which a measured slot is used.
_SLOT_COVERED = 0.5
#: Bounds of a learned index or factor (a ratio beyond says the model or the data is wrong).
_INDEX_MAX = 1.3
#: Bound of the shape correction of a slot.
_SHAPE_MAX = 2.0
#: Counted days a slot needs before its shape is corrected.
_SHAPE_MIN_DAYS = 7


# -- the model ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sky:
    """A park's sun and clear sky over one local day at 5-minute midpoints (96 × 3 samples)."""

    times: pd.DatetimeIndex
    zenith: FloatArray
    apparent_zenith: FloatArray
    azimuth: FloatArray
    ghi: FloatArray
    dni: FloatArray
    dhi: FloatArray
    dni_extra: FloatArray
    airmass: FloatArray
    up: NDArray[np.bool_]  # the sun is above the horizon


@contextlib.contextmanager
def _pvlib_quiet() -> Iterator[None]:
    """Silence the pandas deprecation warnings raised inside pvlib 0.16.

    pvlib reads ``DatetimeIndex.dayofyear``, deprecated in pandas 3.1: its to fix, not ours.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=Pandas4Warning, module=r"pvlib\.")
        warnings.filterwarnings("ignore", category=Pandas4Warning, module=r"pandas\.")
        yield


#: Days of sun and clear sky kept per (location, zone, day), and per-unit outputs per
#: orientation too (a day's sky is about 25 KB): a refresh and a backtest reuse them.
_CACHE_DAYS = 4096
_SKIES: OrderedDict[tuple[float, float, float, str, date], _Sky] = OrderedDict()
_CLEAR: OrderedDict[tuple[float, float, float, str, date, float, float], FloatArray] = OrderedDict()


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    while len(cache) > _CACHE_DAYS:
        cache.popitem(last=False)


def _skies(lat: float, lon: float, alt: float, tz: str, days: Sequence[date]) -> list[_Sky]:
    """The sky of each of ``days``; the days not cached computed in one pvlib pass."""
    missing = [d for d in dict.fromkeys(days) if (lat, lon, alt, tz, d) not in _SKIES]
    if missing:
        zone = ZoneInfo(tz)
        offsets = (np.arange(SLOTS_PER_DAY * _SUB) + 0.5) * (INTERVAL_S / _SUB)
        epochs = np.concatenate([day_start(d, zone).timestamp() + offsets for d in missing])
        times = _times(epochs, tz)
        with _pvlib_quiet():
            sky = _sky_at(times, lat, lon, alt)
        n = SLOTS_PER_DAY * _SUB
        for i, d in enumerate(missing):
            part = slice(i * n, (i + 1) * n)
            _remember(_SKIES, (lat, lon, alt, tz, d), _Sky(
                times=sky.times[part], zenith=sky.zenith[part],
                apparent_zenith=sky.apparent_zenith[part], azimuth=sky.azimuth[part],
                ghi=sky.ghi[part], dni=sky.dni[part], dhi=sky.dhi[part],
                dni_extra=sky.dni_extra[part], airmass=sky.airmass[part], up=sky.up[part],
            ))  # fmt: skip
    return [_SKIES[(lat, lon, alt, tz, d)] for d in days]


def _times(epochs: FloatArray, tz: str) -> pd.DatetimeIndex:
    """The aware times of ``epochs`` (seconds) in the zone ``tz``."""
    return pd.DatetimeIndex(pd.to_datetime(epochs, unit="s", utc=True)).tz_convert(tz)


def _sky(lat: float, lon: float, alt: float, tz: str, day: date) -> _Sky:
    """The sky of one day (see `_skies`)."""
    return _skies(lat, lon, alt, tz, [day])[0]


def _joined(skies: Sequence[_Sky]) -> _Sky:
    def cat(name: str) -> Any:
        return np.concatenate([getattr(s, name) for s in skies])

    epochs = np.concatenate([s.times.as_unit("ms").asi8 for s in skies]) / 1e3
    return _Sky(
        times=_times(epochs, skies[0].times.tz.key if skies else "UTC"),
        zenith=cat("zenith"), apparent_zenith=cat("apparent_zenith"), azimuth=cat("azimuth"),
        ghi=cat("ghi"), dni=cat("dni"), dhi=cat("dhi"), dni_extra=cat("dni_extra"),
        airmass=cat("airmass"), up=cat("up"),
    )  # fmt: skip


def _sky_at(times: pd.DatetimeIndex, lat: float, lon: float, alt: float) -> _Sky:
    pos = pvlib.solarposition.get_solarposition(times, lat, lon, altitude=alt)
    apparent = pos["apparent_zenith"].to_numpy(dtype=np.float64)
    airmass_rel = pvlib.atmosphere.get_relative_airmass(apparent)
    airmass = pvlib.atmosphere.get_absolute_airmass(airmass_rel, pvlib.atmosphere.alt2pres(alt))
    airmass = np.asarray(airmass, dtype=np.float64)
    linke = pvlib.clearsky.lookup_linke_turbidity(times, lat, lon)
    dni_extra = np.asarray(pvlib.irradiance.get_extra_radiation(times), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # the sun below the horizon
        cs = pvlib.clearsky.ineichen(
            apparent, airmass, linke.to_numpy(dtype=np.float64), altitude=alt, dni_extra=dni_extra
        )
    up = apparent < 90.0

    def clean(values: object) -> FloatArray:
        arr = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
        return np.where(up, np.clip(arr, 0.0, None), 0.0)

    return _Sky(
        times=times,
        zenith=pos["zenith"].to_numpy(dtype=np.float64),
        apparent_zenith=apparent,
        azimuth=pos["azimuth"].to_numpy(dtype=np.float64),
        ghi=clean(cs["ghi"]),
        dni=clean(cs["dni"]),
        dhi=clean(cs["dhi"]),
        dni_extra=dni_extra,
        airmass=np.nan_to_num(airmass, nan=0.0),
        up=up,
    )


def _ac_per_unit(
    sky: _Sky, tilt: float, azimuth: float, ghi: FloatArray, dni: FloatArray, dhi: FloatArray
) -> FloatArray:
    """Slot-mean AC output per kW of inverter rating (0-1) under ``ghi, dni, dhi``.

    One value per 3 samples of ``sky`` (a slot; ``sky`` may span several days).
    """
    poa = pvlib.irradiance.get_total_irradiance(
        tilt, azimuth, sky.apparent_zenith, sky.azimuth, dni, ghi, dhi,
        dni_extra=sky.dni_extra, airmass=sky.airmass, albedo=0.25, model="haydavies",
    )  # fmt: skip
    aoi = pvlib.irradiance.aoi(tilt, azimuth, sky.apparent_zenith, sky.azimuth)
    iam = np.nan_to_num(np.asarray(pvlib.iam.physical(aoi), dtype=np.float64), nan=0.0)
    beam = np.nan_to_num(np.asarray(poa["poa_direct"], dtype=np.float64), nan=0.0)
    diffuse = np.nan_to_num(np.asarray(poa["poa_diffuse"], dtype=np.float64), nan=0.0)
    effective = np.clip(beam * iam + diffuse, 0.0, None)
    total = np.clip(np.nan_to_num(np.asarray(poa["poa_global"], dtype=np.float64)), 0.0, None)
    cell = np.asarray(pvlib.temperature.faiman(total, AMBIENT_C, WIND_M_S), dtype=np.float64)
    dc = pvlib.pvsystem.pvwatts_dc(
        effective_irradiance=effective, temp_cell=cell, pdc0=DC_AC_RATIO, gamma_pdc=GAMMA_PDC
    )
    dc = np.clip(np.asarray(dc, dtype=np.float64), 0.0, None) * (1.0 - SYSTEM_LOSSES)
    ac = np.asarray(pvlib.inverter.pvwatts(dc, 1.0 / ETA_INV, eta_inv_nom=ETA_INV), np.float64)
    ac = np.where(sky.up & (dc > 0), np.clip(np.nan_to_num(ac, nan=0.0), 0.0, 1.0), 0.0)
    return np.asarray(ac.reshape(-1, _SUB).mean(axis=1), dtype=np.float64)


def _key(location: ParkLocation, tz: ZoneInfo) -> tuple[float, float, float, str]:
    return (location.latitude, location.longitude, location.altitude_m, tz.key)


def _clear_per_unit(
    key: tuple[float, float, float, str], days: Sequence[date], tilt: float, azimuth: float
) -> FloatArray:
    """``(len(days), 96)`` clear-sky AC output per kW of rating; days not cached in one pass."""
    missing = [d for d in dict.fromkeys(days) if (*key, d, tilt, azimuth) not in _CLEAR]
    if missing:
        sky = _joined(_skies(*key, missing))
        rows = _ac_per_unit(sky, tilt, azimuth, sky.ghi, sky.dni, sky.dhi)
        for d, row in zip(missing, rows.reshape(len(missing), SLOTS_PER_DAY), strict=True):
            row.setflags(write=False)
            _remember(_CLEAR, (*key, d, tilt, azimuth), row)
    if not days:
        return np.zeros((0, SLOTS_PER_DAY))
    return np.stack([_CLEAR[(*key, d, tilt, azimuth)] for d in days])


def clear_sky_kw(location: ParkLocation, pv: Pv, days: Sequence[date], tz: ZoneInfo) -> FloatArray:
    """The array's modelled AC output under a clear sky: ``(len(days), 96)``, kW ≥ 0.

    Each slot is the mean over its 5-minute midpoints; 0 exactly while the sun
    is below the horizon; at most ``pv.rated_kw``. Model: see the module docstring.
    """
    return _clear_per_unit(_key(location, tz), days, pv.tilt_deg, pv.azimuth_deg) * pv.rated_kw


def irradiance_kw(
    location: ParkLocation, pv: Pv, day: date, ghi: FloatArray, tz: ZoneInfo
) -> FloatArray:
    """The array's modelled AC output from an uploaded GHI of ``day``: ``(96,)``, kW ≥ 0.

    ``ghi`` is the mean GHI per slot, W/m²; NaN slots are NaN in the result.
    Each slot's GHI is spread over its 5-minute samples in proportion to the
    clear-sky GHI (0 where the sun is down), split by Erbs into beam and
    diffuse, transposed and converted (see the module docstring); not yet
    scaled by the array's performance factor.
    """
    out = _irradiance_per_unit(_key(location, tz), day, ghi, pv.tilt_deg, pv.azimuth_deg)
    return out * pv.rated_kw


def _irradiance_per_unit(
    key: tuple[float, float, float, str], day: date, ghi: FloatArray, tilt: float, azimuth: float
) -> FloatArray:
    """`irradiance_kw` per kW of rating."""
    sky = _sky(*key, day)
    cs = sky.ghi.reshape(SLOTS_PER_DAY, _SUB)
    cs_mean = cs.mean(axis=1)
    given = np.nan_to_num(np.asarray(ghi, dtype=np.float64), nan=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(cs_mean[:, None] > 0, cs / cs_mean[:, None], 0.0)
    sub = (given[:, None] * share).reshape(-1)
    with _pvlib_quiet():
        split = pvlib.irradiance.erbs(sub, sky.zenith, sky.times)
    dni = np.nan_to_num(np.asarray(split["dni"], dtype=np.float64), nan=0.0)
    dhi = np.nan_to_num(np.asarray(split["dhi"], dtype=np.float64), nan=0.0)
    out = _ac_per_unit(sky, tilt, azimuth, sub, dni, dhi)
    return np.where(np.isfinite(ghi), out, np.nan)


# -- learning from the array's history ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Learned:
    """What an array's recent output says about its model.

    Attributes:
        index: the median of the daily ratios measured / model over the
            counted days among the last `INDEX_DAYS` (the clear-sky index);
            None without a counted day.
        index_days: those counted days.
        shape: ``(96,)`` the per-slot correction of the model's shape: per
            slot of the day, Σ measured / Σ model over the counted days among
            the last `PERFORMANCE_DAYS`, over the same ratio of the whole days
            (so it averages 1); 1 where a slot was measured on fewer than
            `_SHAPE_MIN_DAYS` days. Clipped to 0-2.
        performance: the mean ratio of its `CLEAR_DAYS` clearest counted days
            among the last `PERFORMANCE_DAYS`; None without a counted day.
        clear_days: those clearest days.
    """

    index: float | None
    index_days: tuple[date, ...]
    shape: FloatArray
    performance: float | None
    clear_days: tuple[date, ...]


@dataclass(frozen=True, slots=True)
class _LearnedMany:
    """`Learned` of many arrays at once: a leading axis of arrays (S) everywhere."""

    index: FloatArray  # (S,), NaN: none
    index_days: NDArray[np.bool_]  # (S, D)
    shape: FloatArray  # (S, 96)
    performance: FloatArray  # (S,), NaN: none
    clear_days: NDArray[np.bool_]  # (S, D)


def _learn_many(
    generated_kw: FloatArray, coverage: FloatArray, model_kw: FloatArray, rated_kw: FloatArray
) -> _LearnedMany:
    """`learn` over ``(S, D, 96)`` arrays (S arrays, D complete days), vectorised."""
    s_n, d_n = generated_kw.shape[:2]
    daylight = model_kw >= _DAYLIGHT * rated_kw[:, None, None]
    used = daylight & (coverage >= _SLOT_COVERED) & np.isfinite(generated_kw)
    n_day = daylight.sum(axis=2)
    counted = (n_day > 0) & (used.sum(axis=2) >= _DAY_COVERED * np.maximum(n_day, 1))
    got = np.where(used, np.clip(np.nan_to_num(generated_kw), 0.0, None), 0.0)
    want = np.where(used, model_kw, 0.0)
    measured, model = got.sum(axis=2), want.sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(model > 0, measured / np.where(model > 0, model, 1.0), np.nan)
    counted &= np.isfinite(ratio)
    recent = np.arange(d_n) >= d_n - INDEX_DAYS
    pick = counted & recent[None, :]
    # the median of the picked ratios: NaN sorts last, so the k picked come first
    k = pick.sum(axis=1)
    ordered = np.sort(np.where(pick, ratio, np.nan), axis=1)
    lo = np.clip((k - 1) // 2, 0, max(d_n - 1, 0))
    hi = np.clip(k // 2, 0, max(d_n - 1, 0))
    index = np.full(s_n, np.nan)
    if d_n:
        rows = np.arange(s_n)
        median = (ordered[rows, lo] + ordered[rows, hi]) / 2.0
        index = np.where(k > 0, np.clip(median, 0.0, _INDEX_MAX), np.nan)
    cand = counted & (np.arange(d_n) >= d_n - PERFORMANCE_DAYS)[None, :]
    # the clearest days: the CLEAR_DAYS highest ratios among the candidates
    rank = np.argsort(np.where(cand, -ratio, np.inf), axis=1, kind="stable")[:, :CLEAR_DAYS]
    best = np.zeros_like(cand)
    np.put_along_axis(best, rank, True, axis=1)
    best &= cand
    n_best = best.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        performance = np.where(
            n_best > 0,
            np.clip(np.where(best, ratio, 0.0).sum(axis=1) / np.maximum(n_best, 1), 0, _INDEX_MAX),
            np.nan,
        )
        slot_got = np.where(cand[:, :, None], got, 0.0).sum(axis=1)
        slot_want = np.where(cand[:, :, None], want, 0.0).sum(axis=1)
        whole = slot_got.sum(axis=1) / slot_want.sum(axis=1)
        days_used = (used & cand[:, :, None]).sum(axis=1)
        enough = (days_used >= _SHAPE_MIN_DAYS) & (slot_want > 0) & (whole > 0)[:, None]
        per_slot = (
            slot_got / np.where(enough, slot_want, 1.0) / np.where(whole > 0, whole, 1.0)[:, None]
        )
    shape = np.where(enough, np.clip(per_slot, 0.0, _SHAPE_MAX), 1.0)
    return _LearnedMany(index, pick, shape, performance, best)


def learn(
    generated_kw: FloatArray, coverage: FloatArray, model_kw: FloatArray, days: Sequence[date],
    rated_kw: float,
) -> Learned:  # fmt: skip
    """Learn the clear-sky index, the shape correction and the performance factor.

    Rules in the module docstring and `Learned`.

    Args:
        generated_kw: ``(len(days), 96)`` measured output, kW ≥ 0 (NaN = not measured).
        coverage: same shape, covered share of each slot (0-1).
        model_kw: same shape, the clear-sky model's output, kW.
        days: the complete days, oldest first.
        rated_kw: the array's AC rating (the daylight threshold is 5 % of it).
    """
    many = _learn_many(generated_kw[None], coverage[None], model_kw[None], np.array([rated_kw]))
    return _one_learned(many, 0, days)


def _one_learned(many: _LearnedMany, s: int, days: Sequence[date]) -> Learned:
    index, performance = float(many.index[s]), float(many.performance[s])
    return Learned(
        index=None if math.isnan(index) else index,
        index_days=tuple(days[i] for i in np.flatnonzero(many.index_days[s]).tolist()),
        shape=np.asarray(many.shape[s], dtype=np.float64),
        performance=None if math.isnan(performance) else performance,
        clear_days=tuple(days[i] for i in np.flatnonzero(many.clear_days[s]).tolist()),
    )


# -- the forecaster ----------------------------------------------------------------------


def _span(days: Sequence[date]) -> str:
    if not days:
        return "no day"
    return f"{len(days)} days {days[0]}..{days[-1]}" if len(days) > 1 else f"1 day {days[0]}"


def _similar_day(
    generated: FloatArray, coverage: FloatArray, days: Sequence[date], n_targets: int
) -> tuple[FloatArray, str] | None:
    """The mean of each slot over the last `SIMILAR_DAYS` complete days; None with no slot known."""
    recent = slice(-SIMILAR_DAYS, None)
    g = np.where(coverage[recent] >= _SLOT_COVERED, generated[recent], np.nan)
    known = np.isfinite(g)
    if not known.any():
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = np.where(known.any(axis=0), np.nansum(g, axis=0) / known.sum(axis=0), np.nan)
    last = list(days)[recent]
    used = [last[i] for i in np.flatnonzero(np.any(known, axis=1))]
    return np.tile(profile, n_targets), _span(used)


def _no_location(
    series: str, generated: FloatArray, coverage: FloatArray, complete: Sequence[date], n: int
) -> SeriesForecast:
    similar = _similar_day(generated, coverage, complete, n // SLOTS_PER_DAY)
    if similar is None:
        note = "the park has no location (no clear-sky model) and the array no history"
        return SeriesForecast(series, "pv", "none", np.full(n, np.nan), note)
    profile, span = similar
    note = f"the park has no location (no clear-sky model): mean profile of {span}"
    return SeriesForecast(series, "pv", "similar_day", -profile, note)


def _notes(learned: Learned) -> list[str]:
    if learned.index is None:
        return ["clear-sky index 1: no usable history of the array"]
    notes = [f"clear-sky index {learned.index:.2f} (median of {_span(learned.index_days)})"]
    corrected = np.abs(learned.shape - 1.0) > 0.02
    if corrected.any():
        notes.append(
            f"shape corrected in {int(corrected.sum())} slots of the day "
            f"({float(learned.shape[corrected].min()):.2f}-"
            f"{float(learned.shape[corrected].max()):.2f})"
        )
    return notes


def _group(
    window: HistoryWindow, group: Sequence[tuple[int, Pv]], ctx: ForecastContext,
    location: ParkLocation,
) -> dict[str, SeriesForecast]:  # fmt: skip
    """Forecast arrays of one orientation (one clear-sky model per kW) together."""
    key, targets = _key(location, ctx.tz), list(ctx.targets)
    tilt, azimuth = group[0][1].tilt_deg, group[0][1].azimuth_deg
    learn_days = list(window.days[:-1])[-PERFORMANCE_DAYS:]
    k = len(learn_days)
    rows = np.array([r for r, _ in group])
    rated = np.array([pv.rated_kw for _, pv in group])
    per_kw_hist = _clear_per_unit(key, learn_days, tilt, azimuth)
    span = slice(len(window.days) - 1 - k, len(window.days) - 1)
    many = _learn_many(
        -np.asarray(window.kw[rows, span], dtype=np.float64),
        np.asarray(window.coverage[rows, span], dtype=np.float64),
        per_kw_hist[None] * rated[:, None, None],
        rated,
    )
    index = np.nan_to_num(many.index, nan=1.0)
    factor = np.nan_to_num(many.performance, nan=1.0)
    per_kw = _clear_per_unit(key, targets, tilt, azimuth)  # (T, 96)
    # (S, T, 96): clear sky × index × shape, clipped at the rating
    out = per_kw[None] * (rated * index)[:, None, None] * many.shape[:, None, :]
    uploads: list[tuple[int, date, FloatArray]] = []
    for t, day in enumerate(targets):
        ghi = ctx.irradiance.get(day)
        if ghi is not None and np.isfinite(ghi).any():
            uploads.append((t, day, _irradiance_per_unit(key, day, ghi, tilt, azimuth)))
    for t, _, from_ghi in uploads:
        given = np.isfinite(from_ghi)
        scaled = from_ghi[None] * (rated * factor)[:, None] * many.shape
        out[:, t, given] = scaled[:, given]
    out = np.minimum(out, rated[:, None, None])
    result: dict[str, SeriesForecast] = {}
    for s, (r, _) in enumerate(group):
        learned = _one_learned(many, s, learn_days)
        notes = _notes(learned)
        if uploads:
            basis = (
                f"learned from {_span(learned.clear_days)} (its clearest days)"
                if learned.performance is not None
                else "(no usable history of the array: 1 assumed)"
            )
            days_given = ", ".join(
                f"{d} ({int(np.isfinite(g).sum())} slots)" for _, d, g in uploads
            )
            notes.append(
                f"uploaded irradiance for {days_given}, performance factor {factor[s]:.2f} "
                f"{basis}; other slots clear-sky × index"
            )
        series = window.series[r]
        method = "irradiance" if uploads else "clear_sky"
        result[series] = SeriesForecast(series, "pv", method, -out[s].reshape(-1), "; ".join(notes))
    return result


def forecast_pv(
    window: HistoryWindow, rows: Sequence[int], ctx: ForecastContext
) -> dict[str, SeriesForecast]:
    """Forecast the PV arrays at ``rows`` of ``window`` over ``ctx.targets`` (a `Forecaster`).

    Arrays of one orientation are forecast together (one clear-sky model per
    kW of rating, their learning vectorised).

    Returns:
        series id -> its forecast, ``len(ctx.targets) * 96`` values, kW
        (negative: output fed in), method ``clear_sky``, ``irradiance``,
        ``similar_day`` or ``none`` (see the module docstring); a row whose
        asset is not a PV array of ``ctx.assets`` gets ``none``.
    """
    n = len(ctx.targets) * SLOTS_PER_DAY
    complete = list(window.days[:-1])
    location = ctx.park.location
    out: dict[str, SeriesForecast] = {}
    groups: dict[tuple[float, float], list[tuple[int, Pv]]] = {}
    for r in rows:
        series = window.series[r]
        asset = ctx.assets.get(series)
        if not isinstance(asset, Pv):
            note = "not an enrolled PV array"
            out[series] = SeriesForecast(series, "pv", "none", np.full(n, np.nan), note)
        elif location is None:
            generated = -np.asarray(window.kw[r, :-1], dtype=np.float64)  # output > 0
            coverage = np.asarray(window.coverage[r, :-1], dtype=np.float64)
            out[series] = _no_location(series, generated, coverage, complete, n)
        else:
            groups.setdefault((asset.tilt_deg, asset.azimuth_deg), []).append((r, asset))
    for group in groups.values():
        assert location is not None
        out.update(_group(window, group, ctx, location))
    return out
