"""EV chargers' forecast: the sessions expected on the coming days, and what they draw.

`expected_sessions` learns, per charger and target day, the sessions of the
charger's most recent similar days (working or non-working, by the official
calendar, `vpp.history.calendar`) from its session history
(`vpp.forecast.sessions.ChargerSession`):

* the similar days' sessions are grouped by time of arrival: as many
  groups as the busiest similar day had sessions (at most
  ``max_per_day``), split at the widest gaps between arrivals (a gap under
  ``min_gap_h`` never splits), so a depot's noon top-up and its evening
  return stay apart; within a group, the first vehicle of each day, the
  second (a day with two staff cars in the morning), ... are apart again;
* each of those is one expected session: its probability is the share of
  the similar days that had it; its arrival the median arrival (time of
  day); its departure the lower quartile (25 %) of the departures, and
  never after the next expected session's arrival (one vehicle at a time);
  its energy need the mean need (the stated need at plug-in, else the
  energy delivered). At most ``max_per_day`` a day, the likeliest.

Why those: the arrival starts the uncontrolled draw (`forecast_chargers`),
so it is the median, unbiased in time; the departure only bounds how long
a charge may be deferred (the flexibility a bid offers), where a vehicle
leaving earlier than planned breaks the promise, so it is taken on the
early side; the need is the mean, so that the probabilities times the
needs add up to the energy the similar days drew (vehicles' needs are
skewed: a median would forecast less energy than came; it is also the
cautious side for a flexibility promise, more energy owed).

A charger's similar days are counted from its first recorded session (before
it nothing says whether the charger was even there), up to the day before
the issue day (the issue day is not over). A charger with no session
history gets no expected sessions, and its forecast is NaN (method ``none``).

`forecast_chargers` is the `vpp.forecast.inputs.Forecaster` of kind
``ev_charger`` (method ``sessions``): the expected uncontrolled draw per slot,
each expected session charging at the charger's ``max_charge_kw`` from its
arrival until its energy need is met, weighted by its probability; a
session expected the day before the first target day that runs past
midnight carries on into it. Its session history comes in
``ctx.extra["sessions"]`` (`SESSIONS`): a sequence of `ChargerSession`, the
park's sessions read from the `SessionStore` over the learning window. Only
what was known at the issue time is used: sessions that arrived later are
left out, and one that left later counts as still open then (the backtest
replays the refresh). `park_sessions` gives the refresh the expected
sessions for `vpp.forecast.model.ParkForecast.sessions`.
"""

from __future__ import annotations

import bisect
import collections
import itertools
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from vpp.forecast.inputs import ForecastContext, HistoryWindow
from vpp.forecast.model import ExpectedSession, SeriesForecast
from vpp.forecast.sessions import ChargerSession
from vpp.history import calendar
from vpp.history.grid import INTERVAL_S, SLOTS_PER_DAY, day_start
from vpp.model import EvCharger

__all__ = [
    "DEPARTURE_QUANTILE",
    "SESSIONS",
    "SIMILAR_DAYS",
    "draw_kw",
    "expected_sessions",
    "forecast_chargers",
    "known_at",
    "park_sessions",
]

#: The key of `ForecastContext.extra` that holds the park's charger sessions.
SESSIONS = "sessions"
#: Similar days a charger's expected sessions are learned from, at most (two working weeks).
SIMILAR_DAYS = 10
#: The quantile of past departures an expected session leaves at (early side).
DEPARTURE_QUANTILE = 0.25
#: Hours an expected session stays at least (one slot).
_MIN_STAY_H = INTERVAL_S / 3600.0

FloatArray = NDArray[np.float64]
DayKind = Callable[[date], Hashable]


def known_at(sessions: Iterable[ChargerSession], issued_at: datetime) -> list[ChargerSession]:
    """The sessions as they stood at ``issued_at``: later arrivals dropped, later departures open.

    A session still plugged in at ``issued_at`` keeps its recorded energy
    (the store has no earlier state of it).
    """
    issued_at = issued_at.astimezone(UTC)  # (stored sessions are in UTC: quick to compare)
    out = []
    for s in sessions:
        if s.arrival >= issued_at:
            continue
        if (s.departure is not None and s.departure > issued_at) or s.seen > issued_at:
            s = replace(s, departure=None, seen=min(s.seen, issued_at))
        out.append(s)
    return out


def _quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values``, linear between order statistics (numpy's default).

    Plain Python: on a handful of values it is some 20 times quicker than numpy.
    """
    ordered = sorted(values)
    at = q * (len(ordered) - 1)
    lo = int(at)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (at - lo)


def _groups(arrivals: Sequence[float], groups: int, min_gap_h: float) -> list[slice]:
    """Split sorted arrival hours at their ``groups - 1`` widest gaps of at least ``min_gap_h``."""
    gaps = np.diff(np.asarray(arrivals, dtype=np.float64))
    widest = [
        int(i) for i in np.argsort(-gaps, kind="stable")[: groups - 1] if gaps[i] >= min_gap_h
    ]
    cuts = [0, *sorted(i + 1 for i in widest), len(arrivals)]
    return [slice(a, b) for a, b in itertools.pairwise(cuts)]


#: A past session as learned from: (arrival, until) in hours from its day's local
#: midnight, its need (kWh), its day.
_Row = tuple[float, float, float, date]


def _expected_on(
    asset_id: str,
    target: date,
    past: Mapping[date, list[_Row]],
    similar: Sequence[date],
    tz: ZoneInfo,
    max_per_day: int,
    min_gap_h: float,
) -> tuple[ExpectedSession, ...]:
    """The sessions expected on ``target`` from the ``similar`` days' sessions (``past``)."""
    rows = sorted(r for d in similar for r in past.get(d, ()))
    if not rows:
        return ()
    busiest = max(len(past.get(d, [])) for d in similar)
    midnight = day_start(target, tz)
    found = []
    for group in _groups([r[0] for r in rows], min(busiest, max_per_day), min_gap_h):
        # the first, second, ... vehicle of a day in the group (by arrival) apart
        ranks: list[list[_Row]] = []
        seen: dict[date, int] = {}
        for row in rows[group]:
            rank = seen[row[3]] = seen.get(row[3], -1) + 1
            if rank == len(ranks):
                ranks.append([])
            ranks[rank].append(row)
        found += [
            (
                _quantile([r[0] for r in members], 0.5),
                _quantile([r[1] for r in members], DEPARTURE_QUANTILE),
                sum(r[2] for r in members) / len(members),
                len(members) / len(similar),
            )
            for members in ranks
        ]
    # the likeliest ones, by arrival
    found = sorted(sorted(found, key=lambda f: -f[3])[:max_per_day])
    out = []
    for i, (arrive, leave, need, probability) in enumerate(found):
        if i + 1 < len(found):  # one vehicle at a time: it leaves by the next one's arrival
            leave = min(leave, found[i + 1][0])
        out.append(
            ExpectedSession(
                asset_id=asset_id,
                arrival=midnight + timedelta(hours=arrive),
                departure=midnight + timedelta(hours=max(leave, arrive + _MIN_STAY_H)),
                energy_needed_kwh=need,
                probability=probability,
                days=len(similar),
            )
        )
    return tuple(out)


def expected_sessions(
    sessions: Iterable[ChargerSession],
    chargers: Iterable[str],
    targets: Sequence[date],
    tz: ZoneInfo,
    day_type: DayKind = calendar.working_day,
    *,
    until: date | None = None,
    similar_days: int = SIMILAR_DAYS,
    max_per_day: int = 3,
    min_gap_h: float = 1.5,
) -> dict[str, tuple[ExpectedSession, ...]]:
    """The sessions each charger is expected to have on each target day.

    Args:
        sessions: the chargers' session history (any order; a session belongs
            to the local day it arrived on).
        chargers: the chargers to forecast.
        targets: the local days to forecast.
        tz: the park's time zone.
        day_type: the kind of a day; days of the same kind are similar
            (default: working or not, by the official calendar).
        until: the last day to learn from (default: the day before the first
            target); a charger's days start at its first session's day.
        similar_days: the most recent similar days learned from, at most.
        max_per_day: expected sessions per charger and day, at most.
        min_gap_h: hours between arrivals below which they are one session.

    Returns:
        charger id -> its expected sessions over the targets, by arrival
        (empty for a charger with no session history, or none on similar days).

    Raises:
        ValueError: ``similar_days`` or ``max_per_day`` below 1.
    """
    if similar_days < 1 or max_per_day < 1:
        raise ValueError("similar_days and max_per_day must be at least 1")
    last = until if until is not None else min(targets) - timedelta(days=1)
    midnights: dict[date, float] = {}
    by_charger: dict[str, dict[date, list[_Row]]] = {}
    for s in sessions:
        day = s.arrival.astimezone(tz).date()
        if day > last:
            continue
        midnight = midnights.get(day)
        if midnight is None:
            midnight = midnights[day] = day_start(day, tz).timestamp()
        row = (
            (s.arrival.timestamp() - midnight) / 3600.0,
            (s.until.timestamp() - midnight) / 3600.0,
            s.need_kwh,
            day,
        )
        by_charger.setdefault(s.asset_id, {}).setdefault(day, []).append(row)
    # the days of each kind, oldest first, from the earliest session on
    first_day = min(midnights, default=last)
    kinds: dict[Hashable, list[date]] = {}
    for i in range((last - first_day).days + 1):
        day = first_day + timedelta(days=i)
        kinds.setdefault(day_type(day), []).append(day)
    wanted = {target: kinds.get(day_type(target), []) for target in targets}
    out: dict[str, tuple[ExpectedSession, ...]] = {}
    for asset_id in chargers:
        past = by_charger.get(asset_id)
        if not past:
            out[asset_id] = ()
            continue
        first = min(past)
        found: list[ExpectedSession] = []
        for target, alike in wanted.items():
            similar = alike[bisect.bisect_left(alike, first) :][-similar_days:]
            if similar:
                found += _expected_on(asset_id, target, past, similar, tz, max_per_day, min_gap_h)
        out[asset_id] = tuple(sorted(found, key=lambda e: e.arrival))
    return out


def _history(ctx: ForecastContext) -> list[ChargerSession]:
    return known_at(ctx.extra.get(SESSIONS, ()), ctx.issued_at)


def park_sessions(
    ctx: ForecastContext, day_type: DayKind = calendar.working_day
) -> dict[str, tuple[ExpectedSession, ...]]:
    """The expected sessions of the park's chargers on ``ctx.targets`` (`ParkForecast.sessions`).

    Learned from ``ctx.extra["sessions"]`` as known at ``ctx.issued_at``,
    up to the day before the issue day. Chargers with none are left out.
    """
    chargers = [a.id for a in ctx.assets.values() if isinstance(a, EvCharger)]
    issue_day = ctx.issued_at.astimezone(ctx.tz).date()
    found = expected_sessions(
        _history(ctx), chargers, ctx.targets, ctx.tz, day_type,
        until=issue_day - timedelta(days=1),
    )  # fmt: skip
    return {k: v for k, v in found.items() if v}


def _edges(targets: Sequence[date], tz: ZoneInfo) -> FloatArray:
    """Slot starts of the target days and the end of the last, epoch s."""
    starts = [day_start(d, tz).timestamp() + np.arange(SLOTS_PER_DAY) * INTERVAL_S for d in targets]
    end = day_start(targets[-1] + timedelta(days=1), tz).timestamp()
    return np.append(np.concatenate(starts), end)


def draw_kw(expected: Iterable[ExpectedSession], max_kw: float, edges: FloatArray) -> FloatArray:
    """Mean kW per slot (``edges``: slot bounds, epoch s) of sessions charging flat out.

    Each session draws ``max_kw`` from its arrival until its energy need is
    met, times its probability. Its departure does not cut it short: the
    expected departure is the early side of the past ones (for a promise of
    flexibility), and past vehicles had their energy before they left.
    """
    kw = np.zeros(len(edges) - 1)
    widths = np.diff(edges)
    for e in expected:
        start = e.arrival.timestamp()
        end = start + e.energy_needed_kwh / max_kw * 3600.0
        overlap = np.clip(np.minimum(edges[1:], end) - np.maximum(edges[:-1], start), 0.0, None)
        kw += e.probability * max_kw * overlap / widths
    return kw


def forecast_chargers(
    window: HistoryWindow,
    rows: Sequence[int],
    ctx: ForecastContext,
    day_type: DayKind = calendar.working_day,
) -> dict[str, SeriesForecast]:
    """The `Forecaster` of EV chargers: each one's expected draw over ``ctx.targets``.

    See the module docstring. A series that is not an enrolled charger, or
    a charger with no session history, gets NaN (method ``none``).

    Returns:
        series id -> its forecast, ``len(ctx.targets) * 96`` values (kW).
    """
    targets = list(ctx.targets)
    tz = ctx.tz
    edges = _edges(targets, tz)
    issue_day = ctx.issued_at.astimezone(tz).date()
    history = _history(ctx)
    names = [window.series[r] for r in rows]
    days = [targets[0] - timedelta(days=1), *targets]  # the eve's sessions may run past midnight
    last = issue_day - timedelta(days=1)
    expected = expected_sessions(history, names, days, tz, day_type, until=last)
    had = collections.Counter(
        s.asset_id for s in history if s.arrival.astimezone(tz).date() <= last
    )
    out: dict[str, SeriesForecast] = {}
    for name in names:
        asset = ctx.assets.get(name)
        nan = np.full(len(edges) - 1, np.nan)
        if not isinstance(asset, EvCharger):
            out[name] = SeriesForecast(name, "ev_charger", "none", nan, "not an enrolled charger")
            continue
        if name not in had:
            out[name] = SeriesForecast(name, "ev_charger", "none", nan, "no session history")
            continue
        ahead = expected[name]
        on_targets = [e for e in ahead if e.arrival.astimezone(tz).date() >= targets[0]]
        note = (
            f"{len(on_targets)} expected sessions on {len(targets)} days, learned from the "
            f"charger's {had[name]} sessions; each charging at "
            f"{asset.max_charge_kw:g} kW from arrival, weighted by its probability"
        )
        kw = draw_kw(ahead, asset.max_charge_kw, edges)
        out[name] = SeriesForecast(name, "ev_charger", "sessions", kw, note)
    return out
