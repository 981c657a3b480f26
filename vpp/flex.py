"""From enrolled assets, live state and the forecast to the dispatch engine's portfolio.

This is the one place where the service's domain model meets ``dispatch``:
each enrolled asset that is flexible on a time grid becomes a one-asset
envelope on that grid, and the envelopes join into a `dispatch.Portfolio`.
Its flat capacity (`flat_capacity`: the largest constant deviation it holds
over a window) is what a bid states with ``flat_capacity`` and what an
event's expected delivery is estimated with.

What counts as flexible, and around which baseline (`Outlook` carries the
park's latest forecast, `vpp.forecast.ParkForecast`, when the caller has one):

* a battery with a live state of charge (SoC window and limits as enrolled);
  its envelope is state-based, the forecast does not change it;
* a charger with a vehicle plugged in that said when it leaves and how much it
  needs (discharge only when the charger is enrolled for V2G). Its baseline is
  what the vehicle draws uncontrolled: its measured draw before the event when
  the control loop passes it (``uncontrolled_kw``), never the charger's
  nameplate. A vehicle still plugged in past its stated departure (or leaving
  inside the current interval) stays in the portfolio with a best-effort need,
  flexible again (``dispatch.departure_lapsed``; the clamp applies the same rule).
  For a later window (`Outlook.later`) the live session counts only when its
  departure falls after the window's first interval; the forecast's expected
  sessions (`ParkForecast.sessions_in`) with a probability of at least
  `MIN_SESSION_PROBABILITY` are added after it, each its own portfolio row
  (uncontrolled: charging at the charger's rating from its expected arrival,
  the need as expected; a session already under way at the grid's start is
  taken with its whole need, which the portfolio's repair relaxes where it
  cannot be met);
* a flexible load (shed up to its limit, for at most its duration, with its
  rebound share paid back before the end of the grid), inside the enrolled
  window the clamp enforces (``baseline_kw - max_shed_kw`` to ``baseline_kw +
  rebound_fraction * max_shed_kw``). Its baseline per interval: what it drew
  when the event started where the control loop passes it
  (``uncontrolled_kw``), else its forecast, else its enrolled ``baseline_kw``;
  clamped into that window either way;
* a curtailable PV inverter, whose generation per interval is its forecast
  (capped at its rating), else its live output held flat.

Anchoring (the service's rule): where a live reading exists, the difference
between it and the forecast of the slot it was taken in is added to the
forecast, in full up to the reading's time (so the current interval is the
reading) and fading linearly to nothing `ANCHOR_HOURS` after it. A bid for
tomorrow is therefore pure forecast; the flexibility of the next hour leans
on what the devices do now. An interval the forecast does not cover (NaN, or
no forecast stored) keeps the behaviour without a forecast: the enrolled
baseline for a load, the live output for PV (nothing for a silent PV array);
`PortfolioView.basis` and `PortfolioView.notes` say per asset what was used.

Silent devices: an asset whose live key has aged out is left out, so its
flexibility is never promised, unless the grid is a later window
(`Outlook.later`) and its availability history (the share of covered
intervals over the last days, `Outlook.availability`) is at least
`Outlook.min_availability`: then it counts by its enrolled limits (a battery
at the middle of its SoC window, a load and PV by their forecast, a charger
by its expected sessions), and `PortfolioView.notes` says so. An asset that
reports itself unavailable, or (a charger) that has no vehicle and none
expected, is left out. The reason is returned per asset.

Margin (`Margin`, from the backtest's error distribution): where an interval
of a load or a PV array was laid on the forecast, its room is shrunk by the
forecast error at the bid's quantile, so the capacity offered is what the
asset delivers at that quantile; see `Margin` for the mapping per direction.

A meter is never part of the view's devices: it measures the devices of its
enterprise (and the load no asset is enrolled for), so counting it beside
them would count their power twice. It is not a candidate at all: neither in
the portfolio nor among the assets left out, and not in ``measured_kw``,
whatever its live state; its live power is kept apart in ``metered_kw``.
Every sum built on the view (the flexibility envelope, a bid, an event's
expected delivery, the control loop's measured power) is therefore a sum
over devices only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

import dispatch as dx
from dispatch.batch import (
    BatteryColumns,
    CurtailableColumns,
    EvColumns,
    PvColumns,
    battery_envelopes,
    curtailable_envelopes,
    ev_envelopes,
    pv_envelopes,
)
from vpp.forecast.model import ParkForecast
from vpp.history.grid import SLOTS_PER_DAY
from vpp.model import Asset, Battery, EvCharger, FlexibleLoad, LiveState, Meter, Pv

__all__ = [
    "ANCHOR_HOURS",
    "MIN_SESSION_PROBABILITY",
    "TAIL_HOURS",
    "Margin",
    "Outlook",
    "PortfolioView",
    "build_view",
    "flat_capacity",
    "forecast_at",
    "grid_at",
    "nominal_kw",
]

FloatArray = NDArray[np.float64]

#: Hours after a live reading over which its difference from the forecast fades
#: out (the service's choice: a load's or an array's deviation from its forecast
#: persists for a while, a cloud or a shift change does not last the day).
ANCHOR_HOURS = 2.0

#: An expected charging session becomes an envelope at or above this
#: probability (more likely than not: a bid promises nothing from a session
#: that most similar past days did not have).
MIN_SESSION_PROBABILITY = 0.5


def nominal_kw(asset: Asset) -> float:
    """What an asset draws when nothing is known of it: a load its baseline, others 0.

    An estimate of present power for a silent asset (the VEN's park power, a
    baseline slot). It is never evidence of delivery: the control loop counts
    an asset that had no reading when its event started at this baseline while
    it stays silent and re-anchors its baseline at its first reading, so a
    nominal value never turns into credited kW.
    """
    match asset:
        case FlexibleLoad():
            return asset.baseline_kw
        case Battery() | EvCharger() | Pv():
            return 0.0
        case Meter():
            return 0.0  # a meter measures the others' power; it adds none of its own


def grid_at(start: datetime, n: int, step_minutes: int = 15) -> dx.TimeGrid:
    """A grid of ``n`` intervals beginning at ``start`` (kept as given, aware)."""
    return dx.TimeGrid(n=n, step=timedelta(minutes=step_minutes), start=start)


@dataclass(frozen=True)
class Margin:
    """The forecast-error margin a bid keeps (issue 11 item 5).

    ``errors`` holds, per kind (``flexible_load``, ``pv``), the backtest's
    normalised error e = (actual − forecast) / (the series' mean |actual| over
    its day) at ``quantile`` and at ``1 - quantile``
    (`vpp.forecast.BacktestSummary.error_at`). The error in kW of an interval
    is e times the mean |forecast| of the asset over that interval's local day
    (the forecast standing in for the unknown actual). A margin only ever
    takes capacity away, never adds it:

    * a load shedding (down: less load) has less to shed when it draws less:
      its room ``baseline - p_min`` shrinks by ``max(0, -e(q))`` × scale
      (``q`` = 0.1: the 10 % quantile of load, as the issue's example);
    * a load taking more (up) has less room below its ceiling when it draws
      more: ``p_max - baseline`` shrinks by ``max(0, e(1 - q))`` × scale;
    * PV curtailment (up: less generation) has less to curtail when it
      generates less, i.e. when actual power is above the forecast: its room
      shrinks by ``max(0, e(1 - q))`` × scale; PV offers nothing down.

    Batteries and chargers have state-based envelopes and no margin. The
    baseline stays the forecast (the median case); only the room moves.
    """

    quantile: float
    errors: Mapping[str, tuple[float, float]]


@dataclass(frozen=True)
class Outlook:
    """What a view knows beyond the live state: the forecast, the window, availability.

    Attributes:
        forecast: the park's latest forecast (None: none stored).
        later: the grid starts beyond the live state's relevance (a later
            window): silent devices may count by their availability history,
            and a live vehicle counts only if it is still there then.
        availability: asset id -> share of covered intervals over the last
            ``availability_days`` days (0-1), for silent devices.
        min_availability: the share at or above which a silent device counts
            in a later window (``[forecast] min_availability``).
        availability_days: the days ``availability`` was measured over.
        margin: the bid's forecast-error margin (None: no margin).
    """

    forecast: ParkForecast | None = None
    later: bool = False
    availability: Mapping[str, float] = field(default_factory=dict)
    min_availability: float = 0.8
    availability_days: int = 7
    margin: Margin | None = None


@dataclass(frozen=True)
class PortfolioView:
    """The flexible part of a park on a grid, with why the rest was left out.

    Attributes:
        portfolio: the dispatch engine's portfolio (None when nothing is flexible).
        assets: the enrolled asset of each portfolio row, in row order (a
            charger with several expected sessions has a row per session).
        excluded: asset id -> reason it is not in the portfolio (devices only).
        measured_kw: the live power of every device (not meter) with a fresh reading (kW).
        metered_kw: the live power of every meter with a fresh reading (kW,
            primary: its multiplier applied), never summed with ``measured_kw``.
        basis: included asset id -> what its envelope was laid around: the
            forecast's method (``model``, ``similar_day``, ``clear_sky``,
            ``irradiance``, ...), ``sessions`` (expected charging sessions),
            ``enrolled_baseline``, ``measured`` (the control loop's anchor),
            ``live_output``, ``live_session``, ``live_soc``, ``assumed_soc``.
        notes: asset id -> what was assumed for it, in words (partial
            forecast coverage, anchoring, a silent device counted by its
            availability, an assumed SoC).
        forecast_issued_at: the issue time of the forecast used (None: none).
        margin_kw: direction (``up``, ``down``) -> kind -> the room taken
            away per interval by the `Margin`, kW (summed over the kind's assets).
    """

    portfolio: dx.Portfolio | None
    assets: tuple[Asset, ...]
    excluded: dict[str, str] = field(default_factory=dict)
    measured_kw: dict[str, float] = field(default_factory=dict)
    metered_kw: dict[str, float] = field(default_factory=dict)
    basis: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    forecast_issued_at: datetime | None = None
    margin_kw: dict[str, dict[str, FloatArray]] = field(default_factory=dict)

    def kinds(self) -> list[str]:
        """The service kind name of each portfolio row."""
        return [a.kind for a in self.assets]

    @property
    def included(self) -> int:
        """How many distinct assets are in the portfolio."""
        return len({a.id for a in self.assets})

    def methods(self) -> dict[str, dict[str, int]]:
        """Kind -> basis (see ``basis``) -> how many included assets used it."""
        kinds = {a.id: a.kind for a in self.assets}
        out: dict[str, dict[str, int]] = {}
        for asset_id, how in sorted(self.basis.items()):
            per = out.setdefault(kinds[asset_id], {})
            per[how] = per.get(how, 0) + 1
        return out


# -- the forecast laid on the grid ----------------------------------------------------


@dataclass
class _Curves:
    """The forecast of the view's loads and PV on its grid, with what anchoring needs."""

    forecast: ParkForecast
    grid: dx.TimeGrid
    rows: dict[str, int]
    on_grid: FloatArray  # (series, grid.n), kW, NaN where unknown
    edges: FloatArray  # the forecast's slot edges, epoch s
    starts: FloatArray  # the grid's interval starts, epoch s
    days: NDArray[np.int64]  # the forecast's day index of each interval's start

    @classmethod
    def of(cls, forecast: ParkForecast, ids: Sequence[str], grid: dx.TimeGrid) -> _Curves:
        step = grid.step.total_seconds()
        edges = forecast.slot_edges()
        starts = np.asarray(grid.start.timestamp() + np.arange(grid.n) * step, dtype=np.float64)
        slot = np.searchsorted(edges, starts, side="right") - 1
        return cls(
            forecast=forecast,
            grid=grid,
            rows={a: i for i, a in enumerate(ids)},
            on_grid=forecast.on_grid_many(ids, grid),
            edges=edges,
            starts=starts,
            days=np.asarray(slot // SLOTS_PER_DAY, dtype=np.int64),
        )

    def curve(self, asset_id: str) -> FloatArray | None:
        row = self.rows.get(asset_id)
        return None if row is None else np.asarray(self.on_grid[row], dtype=np.float64)

    def method(self, asset_id: str) -> str:
        known = self.forecast.series.get(asset_id)
        return known.method if known is not None else "none"

    def at(self, asset_id: str, when: datetime) -> float:
        """The forecast of the slot ``when`` falls in, kW (NaN: not known)."""
        return forecast_at(self.forecast, asset_id, when, self.edges)

    def fade(self, since: datetime) -> FloatArray:
        """Anchor weight per interval: 1 up to ``since``, 0 from `ANCHOR_HOURS` after it."""
        late = np.maximum(self.starts - since.timestamp(), 0.0)
        return np.asarray(np.clip(1.0 - late / (ANCHOR_HOURS * 3600.0), 0.0, 1.0))

    def day_scale(self, asset_id: str) -> FloatArray:
        """Per interval, the mean |forecast| of the asset over the interval's local day, kW."""
        known = self.forecast.series.get(asset_id)
        if known is None:
            return np.zeros(self.grid.n)
        days = np.abs(np.asarray(known.kw, dtype=np.float64)).reshape(-1, SLOTS_PER_DAY)
        finite = np.isfinite(days)
        total = np.where(finite, days, 0.0).sum(axis=1)
        mean = total / np.maximum(finite.sum(axis=1), 1)  # a day with nothing known: 0
        return np.asarray(mean[np.clip(self.days, 0, len(mean) - 1)], dtype=np.float64)


def forecast_at(
    forecast: ParkForecast, series: str, when: datetime, edges: FloatArray | None = None
) -> float:
    """The forecast of ``series`` for the slot ``when`` falls in, kW (NaN: not known).

    ``edges``: the forecast's `ParkForecast.slot_edges`, when the caller has them.
    """
    known = forecast.series.get(series)
    if known is None:
        return float("nan")
    edges = forecast.slot_edges() if edges is None else edges
    slot = int(np.searchsorted(edges, when.timestamp(), side="right")) - 1
    if not 0 <= slot < len(known.kw):
        return float("nan")
    return float(known.kw[slot])


def _anchored(
    curves: _Curves,
    asset_id: str,
    forecast: FloatArray,
    value: float | None,
    when: datetime,
    sign: float = 1.0,
) -> tuple[FloatArray, bool]:
    """``forecast`` moved by a reading's difference from it, fading (module docstring).

    ``sign``: -1 when ``forecast`` and ``value`` are generation (the stored
    forecast is power, positive = drawn).
    """
    if value is None:
        return forecast, False
    ref = sign * curves.at(asset_id, when)
    if not np.isfinite(ref):
        return forecast, False
    weight = curves.fade(when)
    if not np.any(weight > 0):
        return forecast, False
    return forecast + (value - ref) * weight, True


def _coverage_note(known: NDArray[np.bool_], fallback: str) -> str:
    n = len(known)
    used = int(np.sum(known))
    return "" if used == n else f"forecast covers {used} of {n} intervals; {fallback} elsewhere"


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _bounded(
    pf: dx.Portfolio,
    window: Mapping[int, tuple[float, float]],
    wanted: Mapping[int, tuple[FloatArray, FloatArray]],
    kinds: Sequence[str],
) -> tuple[dx.Portfolio, dict[str, dict[str, FloatArray]]]:
    """The joined portfolio inside each load's enrolled window and with its margins taken.

    ``window``: row -> the enrolled (lowest, highest) power of a load whose
    baseline varies per interval (each interval's room ends at the window);
    ``wanted``: row -> (kW to take from the room below the baseline, kW to
    take from the room above), per interval, never more than there is.
    One pass over the joined arrays (a `Portfolio` is checked whenever it is
    made, which per asset costs more than the envelope itself).

    Returns:
        The portfolio and, per direction and kind, the room taken per interval (kW).
    """
    taken: dict[str, dict[str, FloatArray]] = {"up": {}, "down": {}}
    if not window and not wanted:
        return pf, taken
    p_min, p_max = pf.p_min.copy(), pf.p_max.copy()
    if window:
        rows = np.fromiter(window, dtype=np.int64)
        lo = np.array([window[r][0] for r in rows])[:, None]
        hi = np.array([window[r][1] for r in rows])[:, None]
        p_min[rows] = np.maximum(p_min[rows], lo)
        p_max[rows] = np.minimum(p_max[rows], hi)
    for row, (down, up) in wanted.items():
        base = pf.baseline[row]
        low = np.minimum(p_min[row] + np.maximum(down, 0.0), base)
        high = np.maximum(p_max[row] - np.maximum(up, 0.0), base)
        for name, cut in (("down", low - p_min[row]), ("up", p_max[row] - high)):
            per = taken[name]
            per[kinds[row]] = per.get(kinds[row], np.zeros(len(cut))) + cut
        p_min[row], p_max[row] = low, high
    return replace(pf, p_min=p_min, p_max=p_max), taken


# -- one asset ------------------------------------------------------------------------


def _battery(a: Battery, live: LiveState | None) -> tuple[float, str] | str:
    """The battery's SoC for its envelope and how it was known, or why it is left out."""
    if live is not None and live.soc is None:
        return "no live state of charge"
    if live is None or live.soc is None:
        return 0.5 * (a.soc_min + a.soc_max), "assumed_soc"
    return min(max(live.soc, 0.0), 1.0), "live_soc"


def _session(
    a: EvCharger,
    owner: int,
    arrival: datetime,
    departure: datetime,
    need_kwh: float,
    uncontrolled_kw: float | None,
    as_of: datetime | None = None,
) -> dx.EvSession:
    return dx.EvSession(
        asset_id=a.id,
        arrival=arrival,
        departure=departure,
        energy_needed_kwh=need_kwh,
        max_charge_kw=a.max_charge_kw,
        uncontrolled_kw=uncontrolled_kw,
        max_discharge_kw=a.max_discharge_kw if a.v2g else 0.0,
        v2g=a.v2g,
        eta_charge=a.charge_efficiency,
        eta_discharge=a.discharge_efficiency,
        cost_up=a.costs.up_per_kwh,
        cost_down=a.costs.down_per_kwh,
        owner=owner,
        as_of=as_of,
    )


def _ev(
    a: EvCharger,
    live: LiveState | None,
    grid: dx.TimeGrid,
    owner: int,
    uncontrolled_kw: float | None,
    outlook: Outlook,
) -> tuple[list[dx.EvSession], str] | str:
    parts: list[dx.EvSession] = []
    how: list[str] = []
    reason = "no vehicle plugged in" if live is not None else "no live session (silent now)"
    after = grid.start
    if live is not None and live.ev_connected:
        if live.ev_departure is None or live.ev_energy_needed_kwh is None:
            reason = "vehicle has not stated its departure and energy need"
        elif not outlook.later or not dx.departure_lapsed(live.ev_departure, grid):
            session = _session(
                a,
                owner,
                grid.start,
                live.ev_departure,
                live.ev_energy_needed_kwh,
                uncontrolled_kw,
                as_of=live.ts,  # the need was read then: time before it is gone
            )
            parts.append(session)
            how.append("live_session")
            after = max(after, live.ev_departure)
        else:
            reason = "the plugged-in vehicle leaves before the window"
    if outlook.forecast is not None:
        end = grid.start + grid.n * grid.step
        expected = [
            s
            for s in outlook.forecast.sessions_in(a.id, after, end)
            if s.probability >= MIN_SESSION_PROBABILITY
            and not dx.departure_lapsed(s.departure, grid)
            and (not how or s.arrival >= after)  # after the live vehicle left
        ]
        for s in expected:
            session = _session(
                a, owner, max(s.arrival, grid.start), s.departure, s.energy_needed_kwh, None
            )
            parts.append(session)
        if expected:
            how.append("sessions")
        elif not how:
            reason += (
                f", and none expected in the window at probability ≥ {MIN_SESSION_PROBABILITY}"
            )
    if not parts:
        return reason
    return parts, "+".join(how)


class _Batch:
    """The view's portfolio rows, gathered as columns per kind and built in one pass each.

    Rows keep the order they were added in (an asset's row index is `rows`
    when it is added); `portfolio` builds each kind with the batch builders of
    `dispatch.batch` (exactly what the per-asset builders of
    `dispatch.envelopes` make, `tests/dispatch/test_batch.py`) and lays the
    rows back in that order.
    """

    def __init__(self) -> None:
        self.order: list[tuple[int, int]] = []  # row -> (kind, index within the kind)
        self.owners: list[list[int]] = [[], [], [], []]
        self.bat: list[tuple[Battery, float]] = []
        self.evs: list[dx.EvSession] = []
        self.loads: list[tuple[FlexibleLoad, FloatArray, float]] = []
        self.pvs: list[tuple[Pv, FloatArray]] = []
        self._assets: list[Asset] = []

    @property
    def rows(self) -> int:
        """Rows so far (the index the next one gets)."""
        return len(self.order)

    @property
    def assets(self) -> tuple[Asset, ...]:
        """The enrolled asset of each row, in row order."""
        return tuple(self._assets)

    def _add(self, kind: int, asset: Asset, owner: int) -> None:
        self.order.append((kind, len(self.owners[kind])))
        self.owners[kind].append(owner)
        self._assets.append(asset)

    def battery(self, a: Battery, soc: float, owner: int) -> None:
        """A battery row at state of charge ``soc`` (0-1)."""
        self.bat.append((a, soc))
        self._add(0, a, owner)

    def sessions(self, a: EvCharger, sessions: Sequence[dx.EvSession]) -> None:
        """A row per charging session of a charger."""
        for session in sessions:
            self.evs.append(session)
            self._add(1, a, session.owner)

    def load(
        self, a: FlexibleLoad, base: FloatArray, owner: int, debt_kwh: float
    ) -> tuple[float, float]:
        """A flexible load's row around ``base``; returns its enrolled window (kW).

        The enrolled power window, as the clamp enforces it (`device_limits`):
        the envelope never plans outside it, whatever the load drew or is
        forecast to draw; a baseline that varies per interval has each
        interval's room end at the window (`_bounded` applies it).
        """
        self.loads.append((a, base, debt_kwh))
        self._add(2, a, owner)
        return max(a.baseline_kw - a.max_shed_kw, 0.0), (
            a.baseline_kw + a.rebound_fraction * a.max_shed_kw
        )

    def pv(self, a: Pv, generation: FloatArray, owner: int) -> None:
        """A curtailable PV row generating ``generation`` (kW, positive)."""
        self.pvs.append((a, generation))
        self._add(3, a, owner)

    def _owner(self, kind: int) -> NDArray[np.int64]:
        return np.asarray(self.owners[kind], dtype=np.int64)

    def portfolio(self, grid: dx.TimeGrid) -> dx.Portfolio:
        """Every row's envelope on ``grid``, in row order (not yet repaired)."""
        parts: list[dx.Portfolio] = []
        if self.bat:
            parts.append(self._batteries(grid))
        if self.evs:
            parts.append(ev_envelopes(EvColumns.from_sessions(self.evs, grid), grid))
        if self.loads:
            parts.append(self._loads(grid))
        if self.pvs:
            parts.append(self._pvs(grid))
        joined = dx.Portfolio.concat(parts)
        offset, at = 0, [0, 0, 0, 0]
        for kind, size in enumerate((len(self.bat), len(self.evs), len(self.loads), len(self.pvs))):
            at[kind] = offset
            offset += size
        index = np.fromiter((at[k] + i for k, i in self.order), dtype=np.int64, count=self.rows)
        if np.array_equal(index, np.arange(self.rows)):
            return joined
        return joined.subset(index)

    def _batteries(self, grid: dx.TimeGrid) -> dx.Portfolio:
        bats = [a for a, _ in self.bat]
        nan = np.full(len(bats), np.nan)
        cols = BatteryColumns(
            asset_ids=tuple(a.id for a in bats),
            capacity_kwh=_col(a.capacity_kwh for a in bats),
            max_charge_kw=_col(a.max_charge_kw for a in bats),
            max_discharge_kw=_col(a.max_discharge_kw for a in bats),
            soc=_col(soc for _, soc in self.bat),
            soc_min=_col(a.soc_min for a in bats),
            soc_max=_col(a.soc_max for a in bats),
            end_soc_min=nan,
            end_soc_max=nan,
            eta_charge=_col(a.charge_efficiency for a in bats),
            eta_discharge=_col(a.discharge_efficiency for a in bats),
            cost_kwh=_col(max(a.costs.up_per_kwh, a.costs.down_per_kwh) for a in bats),
            owner=self._owner(0),
        )
        return battery_envelopes(cols, grid)

    def _loads(self, grid: dx.TimeGrid) -> dx.Portfolio:
        loads = [a for a, _, _ in self.loads]
        enrolled = _col(a.baseline_kw for a in loads)
        shed_kw = _col(a.max_shed_kw for a in loads)
        fraction = _col(a.rebound_fraction for a in loads)
        lo = np.maximum(enrolled - shed_kw, 0.0)
        hi = enrolled + fraction * shed_kw
        base = np.clip(np.stack([b for _, b, _ in self.loads]), lo[:, None], hi[:, None])
        shed = np.max(base - lo[:, None], axis=1)
        # the same shed energy budget, whatever depth is left from this baseline
        minutes = _col(a.max_shed_minutes for a in loads)
        budget = minutes * shed_kw
        np.divide(budget, shed, out=budget, where=shed > 0)
        cols = CurtailableColumns(
            asset_ids=tuple(a.id for a in loads),
            max_shed_kw=np.maximum(shed, 0.0),
            max_shed_minutes=np.where(shed > 0, budget, minutes),
            rebound_share=np.minimum(fraction, 1.0),
            max_rebound_kw=np.maximum(np.max(hi[:, None] - base, axis=1), 0.0),
            shed_debt_kwh=np.maximum(_col(d for _, _, d in self.loads), 0.0),
            cost_down=_col(a.costs.down_per_kwh for a in loads),
            cost_up=_col(a.costs.up_per_kwh for a in loads),
            owner=self._owner(2),
        )
        return curtailable_envelopes(cols, grid, base)

    def _pvs(self, grid: dx.TimeGrid) -> dx.Portfolio:
        arrays = [a for a, _ in self.pvs]
        rated = _col(a.rated_kw for a in arrays)
        gen = np.clip(np.stack([g for _, g in self.pvs]), 0.0, rated[:, None])
        cols = PvColumns(
            asset_ids=tuple(a.id for a in arrays),
            cost_kwh=_col(a.costs.up_per_kwh for a in arrays),
            owner=self._owner(3),
        )
        return pv_envelopes(cols, grid, gen)


def _col(values: Iterable[float]) -> FloatArray:
    return np.fromiter(values, dtype=np.float64)


def _load_base(
    a: FlexibleLoad,
    state: LiveState | None,
    drew_kw: float | None,
    curves: _Curves | None,
    grid: dx.TimeGrid,
) -> tuple[FloatArray, NDArray[np.bool_], str, str]:
    """A load's baseline per interval, where the forecast made it, its basis and note."""
    fallback_kw, fallback = (a.baseline_kw, "enrolled baseline")
    how = "enrolled_baseline"
    if drew_kw is not None:
        fallback_kw, fallback, how = drew_kw, "measured draw", "measured"
    flat = np.full(grid.n, fallback_kw)
    curve = curves.curve(a.id) if curves is not None else None
    if curves is None or curve is None or drew_kw is not None or not np.any(np.isfinite(curve)):
        return flat, np.zeros(grid.n, dtype=bool), how, ""
    known = np.isfinite(curve)
    anchored, moved = curve, False
    if state is not None:
        anchored, moved = _anchored(curves, a.id, curve, state.power_kw, state.ts)
    note = _join(
        _coverage_note(known, fallback),
        f"anchored to its live reading, fading over {ANCHOR_HOURS:g} h" if moved else "",
    )
    return np.where(known, anchored, flat), known, curves.method(a.id), note


def _pv_generation(
    a: Pv, state: LiveState | None, curves: _Curves | None, grid: dx.TimeGrid
) -> tuple[FloatArray, NDArray[np.bool_], str, str] | str:
    live_gen = None if state is None else max(-state.power_kw, 0.0)
    flat = np.zeros(grid.n)
    if state is not None and live_gen is not None:
        # where no forecast says otherwise, the live output holds for `ANCHOR_HOURS` after
        # its reading and no generation is assumed after that (the sun moves: held flat,
        # a morning reading would promise PV all night)
        starts = grid.start.timestamp() + np.arange(grid.n) * grid.step.total_seconds()
        held = starts < state.ts.timestamp() + ANCHOR_HOURS * 3600.0
        flat = np.where(held, min(live_gen, a.rated_kw), 0.0)
    curve = curves.curve(a.id) if curves is not None else None
    if curves is None or curve is None or not np.any(np.isfinite(curve)):
        if state is None:
            return "no fresh telemetry and no forecast of its output"
        note = (
            ""
            if not np.any(flat == 0.0) or live_gen == 0.0
            else f"no forecast: live output held {ANCHOR_HOURS:g} h, no generation after"
        )
        return flat, np.zeros(grid.n, dtype=bool), "live_output", note
    known = np.isfinite(curve)
    gen, moved = -curve, False
    if state is not None:
        gen, moved = _anchored(curves, a.id, -curve, live_gen, state.ts, sign=-1.0)
        gen = np.where(np.isfinite(gen), gen, -curve)
    fallback = (
        f"live output for {ANCHOR_HOURS:g} h, no generation after"
        if state is not None
        else "no generation"
    )
    note = _join(
        _coverage_note(known, fallback),
        f"anchored to its live output, fading over {ANCHOR_HOURS:g} h" if moved else "",
    )
    return np.where(known, gen, flat), known, curves.method(a.id), note


def _silent(asset: Asset, outlook: Outlook) -> str | None:
    """Why a silent device stays out (None: it counts in this later window), in words."""
    share = outlook.availability.get(asset.id, 0.0)
    days = outlook.availability_days
    if not outlook.later:
        return "no fresh telemetry"
    if share < outlook.min_availability:
        return (
            f"no fresh telemetry, and available {share:.0%} of the intervals of the last "
            f"{days} days (below [forecast] min_availability {outlook.min_availability:.0%})"
        )
    return None


def build_view(
    assets: Sequence[Asset],
    live: Mapping[str, LiveState | None],
    grid: dx.TimeGrid,
    *,
    shed_debt_kwh: Mapping[str, float] | None = None,
    uncontrolled_kw: Mapping[str, float] | None = None,
    outlook: Outlook | None = None,
) -> PortfolioView:
    """Build the portfolio of the assets that are flexible on ``grid``.

    Args:
        assets: enrolled assets of one park.
        live: asset id -> its live state (None when it aged out).
        grid: the grid to lay the envelopes on (its start is "now", or a
            later window's start).
        shed_debt_kwh: outstanding shed energy of flexible loads, as the control
            loop tracks it (a load's device does not report it).
        uncontrolled_kw: charger or load id -> what it drew before the event
            (kW), as the control loop measured it at activation. A vehicle's
            baseline charges at that rate (without it: the charger's live power,
            right while nobody controls it); a load's envelope is laid around
            it inside its enrolled window (without it: its forecast, else its
            enrolled baseline).
        outlook: the forecast, whether the grid is a later window, the silent
            devices' availability and the bid's margin (None: none of them,
            the view of the live state alone).

    Returns:
        The portfolio view (module docstring for the rules).
    """
    outlook = outlook or Outlook()
    owners: dict[str, int] = {}
    batch = _Batch()
    excluded: dict[str, str] = {}
    measured: dict[str, float] = {}
    metered: dict[str, float] = {}
    basis: dict[str, str] = {}
    notes: dict[str, str] = {}
    window: dict[int, tuple[float, float]] = {}
    wanted: dict[int, tuple[FloatArray, FloatArray]] = {}
    debts = shed_debt_kwh or {}
    anchors = uncontrolled_kw or {}
    curves = None
    if outlook.forecast is not None:
        ids = [a.id for a in assets if isinstance(a, FlexibleLoad | Pv)]
        curves = _Curves.of(outlook.forecast, ids, grid)
    margin = outlook.margin if curves is not None else None
    for asset in assets:
        state = live.get(asset.id)
        if isinstance(asset, Meter):
            if state is not None:
                metered[asset.id] = state.power_kw
            continue
        if state is None:
            why = _silent(asset, outlook)
            if why is not None:
                excluded[asset.id] = why
                continue
            share = outlook.availability.get(asset.id, 0.0)
            notes[asset.id] = (
                f"silent now; available {share:.0%} of the intervals of the last "
                f"{outlook.availability_days} days: counted by its enrolled limits"
            )
        else:
            measured[asset.id] = state.power_kw
            if not state.available:
                excluded[asset.id] = "device reports itself unavailable"
                continue
        owner = owners.setdefault(asset.owner, len(owners))
        row = batch.rows
        how = ""
        note = ""
        if isinstance(asset, Battery):
            got = _battery(asset, state)
            if isinstance(got, str):
                excluded[asset.id] = got
                continue
            batch.battery(asset, got[0], owner)
            how = got[1]
            if how == "assumed_soc":
                note = (
                    f"no live SoC: assumed at the middle of its SoC window "
                    f"({0.5 * (asset.soc_min + asset.soc_max):.2f})"
                )
        elif isinstance(asset, EvCharger):
            drew = anchors.get(asset.id, state.power_kw if state is not None else None)
            sessions = _ev(asset, state, grid, owner, drew, outlook)
            if isinstance(sessions, str):
                excluded[asset.id] = sessions
                continue
            batch.sessions(asset, sessions[0])
            how = sessions[1]
        elif isinstance(asset, FlexibleLoad):
            base, known, how, note = _load_base(asset, state, anchors.get(asset.id), curves, grid)
            window[row] = batch.load(asset, base, owner, debts.get(asset.id, 0.0))
            if margin is not None and curves is not None and np.any(known):
                cut = _margin(asset, known, curves, margin)
                if cut is not None:
                    wanted[row] = cut
        else:
            assert isinstance(asset, Pv)
            if not asset.curtailable:
                excluded[asset.id] = "not curtailable"
                continue
            gen = _pv_generation(asset, state, curves, grid)
            if isinstance(gen, str):
                excluded[asset.id] = gen
                continue
            generation, known, how, note = gen
            if margin is not None and curves is not None and np.any(known):
                cut = _margin(asset, known, curves, margin)
                if cut is not None:
                    wanted[row] = cut
            batch.pv(asset, generation, owner)
        basis[asset.id] = how
        if note:
            notes[asset.id] = _join(notes.get(asset.id, ""), note)
    portfolio = None
    margin_kw: dict[str, dict[str, FloatArray]] = {}
    rows = batch.assets
    if rows:
        joined, margin_kw = _bounded(batch.portfolio(grid), window, wanted, [a.kind for a in rows])
        portfolio = dx.build_portfolio([joined])
    issued = outlook.forecast.issued_at if outlook.forecast is not None else None
    kept = {d: per for d, per in margin_kw.items() if per}
    return PortfolioView(portfolio, rows, excluded, measured, metered, basis, notes, issued, kept)


def _margin(
    asset: FlexibleLoad | Pv, known: NDArray[np.bool_], curves: _Curves, margin: Margin
) -> tuple[FloatArray, FloatArray] | None:
    """The room (below, above the baseline) a forecast error at the quantile takes, kW.

    See `Margin` for the mapping per direction; None when the margin has no
    error for the asset's kind. Only intervals laid on the forecast (``known``).
    """
    errors = margin.errors.get(asset.kind)
    if errors is None:
        return None
    low, high = errors
    scale = np.where(known, curves.day_scale(asset.id), 0.0)
    up = max(high, 0.0) * scale
    down = max(-low, 0.0) * scale if isinstance(asset, FlexibleLoad) else np.zeros_like(scale)
    return down, up


#: Hours past the window over which the flat capacity lets obligations settle
#: (rebound of shed loads, batteries back inside their window, EV departures).
TAIL_HOURS = 4.0


def flat_capacity(pf: dx.Portfolio, window: int, sign: float, tol_kw: float = 1.0) -> float:
    """The largest constant deviation the portfolio delivers in full over ``window`` intervals.

    ``pf`` may run past the window (a tail where nothing is asked, so rebound
    and end-of-grid obligations can settle there). The answer is certified:
    the safe disaggregator delivered exactly ``sign * Q`` in every interval of
    the window with every asset inside its limits. Found by bisection.
    """
    base_room = pf.p_max - pf.baseline if sign > 0 else pf.baseline - pf.p_min
    hi = float(np.min(np.sum(base_room[:, :window], axis=0))) if window else 0.0
    lo = 0.0

    def delivers(q: float) -> bool:
        result = dx.disaggregate(pf, np.full(window, sign * q), 0)
        return bool(np.all(np.abs(result.shortfall_kw) <= 1e-6 * (1.0 + q)))

    if hi <= 0:
        return 0.0
    if delivers(hi):
        return hi
    while hi - lo > max(tol_kw, 0.005 * hi):
        mid = 0.5 * (lo + hi)
        if delivers(mid):
            lo = mid
        else:
            hi = mid
    return lo
