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
samples all have the sun below the horizon is exactly 0. The clear-sky
index is learned from the array's own recent output (`learn`): over the last
`INDEX_DAYS` complete days of the window, Σ measured / Σ model over the
daylight slots (model ≥ 5 % of ``rated_kw``) that were measured (coverage ≥
0.5); a day counts when at least 75 % of its daylight slots were, so gaps,
and a day with an outage, leave the ratio unbiased. Clipped to 0-1.3.

``irradiance`` (a target day has an uploaded GHI, `vpp.forecast.irradiance`):
that day's shape comes from it. Each slot's GHI is spread over its 5-minute
samples like the clear-sky GHI is (so the slot's mean is the uploaded one),
split into beam and diffuse by Erbs (`pvlib.irradiance.erbs`, Erbs, Klein &
Duffie 1982), transposed and converted as above, and scaled by the array's
**performance factor**: the mean of the daily ratios measured / model of its
3 clearest days (the highest ratios) among the last `PERFORMANCE_DAYS`
complete days: on a clear day the real irradiance is the clear-sky one, so
the ratio is the array's own deviation from the model (soiling, shading,
DC rating), not the weather. Slots of the day that the upload leaves out
are clear-sky × index.

Fallbacks, named in the method and the note: the park has no location ->
``similar_day``, the mean of each slot over the array's last `INDEX_DAYS`
complete days (for PV every day is similar: the sun keeps no calendar); a
location but no usable history -> ``clear_sky`` with index 1 (and
performance factor 1), said so; neither -> ``none``, NaN.

Values are kW with the service's sign: PV output is negative (fed in).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
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
#: Complete days the clear-sky index (and the similar-day fallback) is learned from.
INDEX_DAYS = 7
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


@functools.lru_cache(maxsize=2048)
def _sky(lat: float, lon: float, alt: float, tz: str, day: date) -> _Sky:
    start = pd.Timestamp(day_start(day, ZoneInfo(tz)))
    offsets = (np.arange(SLOTS_PER_DAY * _SUB) + 0.5) * (INTERVAL_S / _SUB)
    times = pd.DatetimeIndex(start + pd.to_timedelta(offsets, unit="s"))
    with _pvlib_quiet():
        return _sky_at(times, lat, lon, alt)


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
    """``(96,)`` slot-mean AC output per kW of inverter rating (0-1) under ``ghi, dni, dhi``."""
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
    return np.asarray(ac.reshape(SLOTS_PER_DAY, _SUB).mean(axis=1), dtype=np.float64)


def _key(location: ParkLocation, tz: ZoneInfo) -> tuple[float, float, float, str]:
    return (location.latitude, location.longitude, location.altitude_m, tz.key)


@functools.lru_cache(maxsize=8192)
def _clear_per_unit(
    lat: float, lon: float, alt: float, tz: str, day: date, tilt: float, azimuth: float
) -> FloatArray:
    sky = _sky(lat, lon, alt, tz, day)
    out = _ac_per_unit(sky, tilt, azimuth, sky.ghi, sky.dni, sky.dhi)
    out.setflags(write=False)
    return out


def clear_sky_kw(location: ParkLocation, pv: Pv, days: Sequence[date], tz: ZoneInfo) -> FloatArray:
    """The array's modelled AC output under a clear sky: ``(len(days), 96)``, kW ≥ 0.

    Each slot is the mean over its 5-minute midpoints; 0 exactly while the sun
    is below the horizon; at most ``pv.rated_kw``. Model: see the module docstring.
    """
    key = _key(location, tz)
    rows = [_clear_per_unit(*key, d, pv.tilt_deg, pv.azimuth_deg) for d in days]
    return np.asarray(np.stack(rows) if rows else np.zeros((0, SLOTS_PER_DAY))) * pv.rated_kw


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
    sky = _sky(*_key(location, tz), day)
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
    out = _ac_per_unit(sky, pv.tilt_deg, pv.azimuth_deg, sub, dni, dhi) * pv.rated_kw
    return np.where(np.isfinite(ghi), out, np.nan)


# -- learning from the array's history ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Learned:
    """What an array's recent output says about its model.

    Attributes:
        index: Σ measured / Σ model over the counted days' measured daylight
            slots (the clear-sky index); None without a counted day.
        index_days: the counted days among the last `INDEX_DAYS`.
        performance: the mean ratio of its `CLEAR_DAYS` clearest counted days
            among the last `PERFORMANCE_DAYS`; None without a counted day.
        clear_days: those clearest days.
    """

    index: float | None
    index_days: tuple[date, ...]
    performance: float | None
    clear_days: tuple[date, ...]


def learn(
    generated_kw: FloatArray, coverage: FloatArray, model_kw: FloatArray, days: Sequence[date],
    rated_kw: float,
) -> Learned:  # fmt: skip
    """Learn the clear-sky index and the performance factor (rules: module docstring).

    Args:
        generated_kw: ``(len(days), 96)`` measured output, kW ≥ 0 (NaN = not measured).
        coverage: same shape, covered share of each slot (0-1).
        model_kw: same shape, the clear-sky model's output, kW.
        days: the complete days, oldest first.
        rated_kw: the array's AC rating (the daylight threshold is 5 % of it).
    """
    daylight = model_kw >= _DAYLIGHT * rated_kw
    used = daylight & (coverage >= _SLOT_COVERED) & np.isfinite(generated_kw)
    n_day = daylight.sum(axis=1)
    counted = (n_day > 0) & (used.sum(axis=1) >= _DAY_COVERED * np.maximum(n_day, 1))
    measured = np.where(used, np.clip(np.nan_to_num(generated_kw), 0.0, None), 0.0).sum(axis=1)
    model = np.where(used, model_kw, 0.0).sum(axis=1)
    recent = np.zeros(len(days), dtype=bool)
    recent[-INDEX_DAYS:] = True
    pick = counted & recent
    index: float | None = None
    if pick.any() and model[pick].sum() > 0:
        index = float(np.clip(measured[pick].sum() / model[pick].sum(), 0.0, _INDEX_MAX))
    longer = np.zeros(len(days), dtype=bool)
    longer[-PERFORMANCE_DAYS:] = True
    candidates = np.flatnonzero(counted & longer & (model > 0))
    performance: float | None = None
    clear: tuple[date, ...] = ()
    if candidates.size:
        ratios = measured[candidates] / model[candidates]
        best = candidates[np.argsort(ratios)[::-1][:CLEAR_DAYS]]
        performance = float(np.clip((measured[best] / model[best]).mean(), 0.0, _INDEX_MAX))
        clear = tuple(sorted(days[i] for i in best))
    return Learned(
        index, tuple(d for d, p in zip(days, pick, strict=True) if p), performance, clear
    )


# -- the forecaster ----------------------------------------------------------------------


def _span(days: Sequence[date]) -> str:
    if not days:
        return "no day"
    return f"{len(days)} days {days[0]}..{days[-1]}" if len(days) > 1 else f"1 day {days[0]}"


def _similar_day(
    generated: FloatArray, coverage: FloatArray, days: Sequence[date], n_targets: int
) -> tuple[FloatArray, str] | None:
    """The mean of each slot over the last `INDEX_DAYS` complete days; None with no slot known."""
    recent = slice(-INDEX_DAYS, None)
    g = np.where(coverage[recent] >= _SLOT_COVERED, generated[recent], np.nan)
    known = np.isfinite(g)
    if not known.any():
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = np.where(known.any(axis=0), np.nansum(g, axis=0) / known.sum(axis=0), np.nan)
    last = list(days)[recent]
    used = [last[i] for i in np.flatnonzero(np.any(known, axis=1))]
    return np.tile(profile, n_targets), _span(used)


def _one(
    series: str, pv: Pv, generated: FloatArray, coverage: FloatArray, complete: Sequence[date],
    ctx: ForecastContext,
) -> SeriesForecast:  # fmt: skip
    targets = list(ctx.targets)
    n = len(targets) * SLOTS_PER_DAY
    location, tz = ctx.park.location, ctx.tz
    if location is None:
        similar = _similar_day(generated, coverage, complete, len(targets))
        if similar is None:
            note = "the park has no location (no clear-sky model) and the array no history"
            return SeriesForecast(series, "pv", "none", np.full(n, np.nan), note)
        profile, span = similar
        note = f"the park has no location (no clear-sky model): mean profile of {span}"
        return SeriesForecast(series, "pv", "similar_day", -profile, note)
    learn_days = list(complete)[-PERFORMANCE_DAYS:]
    model_hist = clear_sky_kw(location, pv, learn_days, tz)
    k = len(learn_days)
    learned = learn(generated[-k:] if k else generated[:0], coverage[-k:] if k else coverage[:0],
                    model_hist, learn_days, pv.rated_kw)  # fmt: skip
    index = learned.index if learned.index is not None else 1.0
    factor = learned.performance if learned.performance is not None else 1.0
    if learned.index is None:
        notes = ["clear-sky index 1: no usable history of the array"]
    else:
        notes = [f"clear-sky index {index:.2f} from {_span(learned.index_days)}"]
    clear = clear_sky_kw(location, pv, targets, tz) * index
    out = np.minimum(clear, pv.rated_kw)
    uploaded: list[str] = []
    for i, day in enumerate(targets):
        ghi = ctx.irradiance.get(day)
        if ghi is None or not np.isfinite(ghi).any():
            continue
        from_ghi = np.minimum(irradiance_kw(location, pv, day, ghi, tz) * factor, pv.rated_kw)
        row = out[i]
        given = np.isfinite(from_ghi)
        row[given] = from_ghi[given]
        uploaded.append(f"{day} ({int(given.sum())} slots)")
    method = "irradiance" if uploaded else "clear_sky"
    if uploaded:
        basis = (
            f"from {_span(learned.clear_days)} (its clearest)"
            if learned.performance is not None
            else "1: no usable history of the array"
        )
        notes.append(
            f"uploaded irradiance for {', '.join(uploaded)}, performance factor {factor:.2f} "
            f"{basis}; other slots clear-sky × index"
        )
    return SeriesForecast(series, "pv", method, -out.reshape(-1), "; ".join(notes))


def forecast_pv(
    window: HistoryWindow, rows: Sequence[int], ctx: ForecastContext
) -> dict[str, SeriesForecast]:
    """Forecast the PV arrays at ``rows`` of ``window`` over ``ctx.targets`` (a `Forecaster`).

    Returns:
        series id -> its forecast, ``len(ctx.targets) * 96`` values, kW
        (negative: output fed in), method ``clear_sky``, ``irradiance``,
        ``similar_day`` or ``none`` (see the module docstring); a row whose
        asset is not a PV array of ``ctx.assets`` gets ``none``.
    """
    complete = list(window.days[:-1])
    n = len(ctx.targets) * SLOTS_PER_DAY
    out: dict[str, SeriesForecast] = {}
    for r in rows:
        series = window.series[r]
        asset = ctx.assets.get(series)
        if not isinstance(asset, Pv):
            note = "not an enrolled PV array"
            out[series] = SeriesForecast(series, "pv", "none", np.full(n, np.nan), note)
            continue
        generated = -np.asarray(window.kw[r, :-1], dtype=np.float64)  # output > 0
        coverage = np.asarray(window.coverage[r, :-1], dtype=np.float64)
        out[series] = _one(series, asset, generated, coverage, complete, ctx)
    return out
