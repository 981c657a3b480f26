"""From enrolled assets and live state to the dispatch engine's portfolio, and what it holds.

This is the one place where the service's domain model meets ``dispatch``:
each enrolled asset with a fresh live reading becomes a one-asset envelope on
a time grid, and the envelopes join into a `dispatch.Portfolio`. Its flat
capacity (`flat_capacity`: the largest constant deviation it holds over a
window) is what a bid states with ``flat_capacity`` and what an event's
expected delivery is estimated with.

What counts as flexible right now:

* a battery with a live state of charge (SoC window and limits as enrolled);
* a charger with a vehicle plugged in that said when it leaves and how much it
  needs (discharge only when the charger is enrolled for V2G). Its baseline is
  what the vehicle draws uncontrolled: its measured draw before the event when
  the control loop passes it (``uncontrolled_kw``), never the charger's
  nameplate. A vehicle still plugged in past its stated departure (or leaving
  inside the current interval) stays in the portfolio with a best-effort need,
  flexible again (``dispatch.departure_lapsed``; the clamp applies the same rule);
* a flexible load (shed up to its limit, for at most its duration, with its
  rebound share paid back before the end of the grid), inside the enrolled
  window the clamp enforces, around what it drew when the event started;
* a curtailable PV inverter, whose live output is the forecast.

An asset whose live key has aged out (a silent device), that reports itself
unavailable, or (a charger) that has no vehicle is left out, so its
flexibility is never promised. The reason is returned per asset.

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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

import dispatch as dx
from vpp.model import Asset, Battery, EvCharger, FlexibleLoad, LiveState, Meter, Pv

__all__ = ["TAIL_HOURS", "PortfolioView", "build_view", "flat_capacity", "grid_at", "nominal_kw"]


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
class PortfolioView:
    """The flexible part of a park on a grid, with why the rest was left out.

    Attributes:
        portfolio: the dispatch engine's portfolio (None when nothing is flexible).
        assets: the enrolled asset of each portfolio row, in row order.
        excluded: asset id -> reason it is not in the portfolio (devices only).
        measured_kw: the live power of every device (not meter) with a fresh reading (kW).
        metered_kw: the live power of every meter with a fresh reading (kW,
            primary: its multiplier applied), never summed with ``measured_kw``.
    """

    portfolio: dx.Portfolio | None
    assets: tuple[Asset, ...]
    excluded: dict[str, str] = field(default_factory=dict)
    measured_kw: dict[str, float] = field(default_factory=dict)
    metered_kw: dict[str, float] = field(default_factory=dict)

    def kinds(self) -> list[str]:
        """The service kind name of each portfolio row."""
        return [a.kind for a in self.assets]


def _battery(a: Battery, live: LiveState, grid: dx.TimeGrid, owner: int) -> dx.Portfolio | str:
    if live.soc is None:
        return "no live state of charge"
    soc = min(max(live.soc, 0.0), 1.0)
    spec = dx.Battery(
        asset_id=a.id,
        capacity_kwh=a.capacity_kwh,
        max_charge_kw=a.max_charge_kw,
        max_discharge_kw=a.max_discharge_kw,
        soc=soc,
        soc_min=a.soc_min,
        soc_max=a.soc_max,
        eta_charge=a.charge_efficiency,
        eta_discharge=a.discharge_efficiency,
        cost_kwh=max(a.costs.up_per_kwh, a.costs.down_per_kwh),
        owner=owner,
    )
    return dx.battery_envelope(spec, grid)


def _ev(
    a: EvCharger, live: LiveState, grid: dx.TimeGrid, owner: int, uncontrolled_kw: float | None
) -> dx.Portfolio | str:
    if not live.ev_connected:
        return "no vehicle plugged in"
    if live.ev_departure is None or live.ev_energy_needed_kwh is None:
        return "vehicle has not stated its departure and energy need"
    session = dx.EvSession(
        asset_id=a.id,
        arrival=grid.start,
        departure=live.ev_departure,
        energy_needed_kwh=live.ev_energy_needed_kwh,
        max_charge_kw=a.max_charge_kw,
        uncontrolled_kw=uncontrolled_kw,
        max_discharge_kw=a.max_discharge_kw if a.v2g else 0.0,
        v2g=a.v2g,
        eta_charge=a.charge_efficiency,
        eta_discharge=a.discharge_efficiency,
        cost_up=a.costs.up_per_kwh,
        cost_down=a.costs.down_per_kwh,
        owner=owner,
    )
    return dx.ev_envelope(session, grid)


def _load(
    a: FlexibleLoad, grid: dx.TimeGrid, owner: int, shed_debt_kwh: float, drew_kw: float | None
) -> dx.Portfolio | str:
    # The enrolled power window, as the clamp enforces it (`device_limits`): the
    # envelope never plans outside it, whatever the load drew.
    lo = max(a.baseline_kw - a.max_shed_kw, 0.0)
    hi = a.baseline_kw + a.rebound_fraction * a.max_shed_kw
    base = a.baseline_kw if drew_kw is None else min(max(drew_kw, lo), hi)
    shed = max(base - lo, 0.0)
    # the same shed energy budget, whatever depth is left from this baseline
    minutes = a.max_shed_minutes * a.max_shed_kw / shed if shed > 0 else a.max_shed_minutes
    spec = dx.CurtailableLoad(
        asset_id=a.id,
        max_shed_kw=shed,
        max_shed_minutes=minutes,
        rebound_share=min(a.rebound_fraction, 1.0),
        max_rebound_kw=max(hi - base, 0.0),
        shed_debt_kwh=max(shed_debt_kwh, 0.0),
        cost_down=a.costs.down_per_kwh,
        cost_up=a.costs.up_per_kwh,
        owner=owner,
    )
    return dx.curtailable_envelope(spec, grid, np.full(grid.n, base))


def _pv(a: Pv, live: LiveState, grid: dx.TimeGrid, owner: int) -> dx.Portfolio | str:
    if not a.curtailable:
        return "not curtailable"
    generation = max(-live.power_kw, 0.0)
    spec = dx.PvCurtailment(asset_id=a.id, cost_kwh=a.costs.up_per_kwh, owner=owner)
    return dx.pv_envelope(spec, grid, np.full(grid.n, min(generation, a.rated_kw)))


def build_view(
    assets: Sequence[Asset],
    live: Mapping[str, LiveState | None],
    grid: dx.TimeGrid,
    *,
    shed_debt_kwh: Mapping[str, float] | None = None,
    uncontrolled_kw: Mapping[str, float] | None = None,
) -> PortfolioView:
    """Build the portfolio of the assets that are flexible now.

    Args:
        assets: enrolled assets of one park.
        live: asset id -> its live state (None when it aged out).
        grid: the grid to lay the envelopes on (its start is "now").
        shed_debt_kwh: outstanding shed energy of flexible loads, as the control
            loop tracks it (a load's device does not report it).
        uncontrolled_kw: charger or load id -> what it drew before the event
            (kW), as the control loop measured it at activation. A vehicle's
            baseline charges at that rate (without it: the charger's live power,
            right while nobody controls it); a load's envelope is laid around
            it inside its enrolled window (without it: its enrolled baseline).

    Returns:
        The portfolio view.
    """
    owners: dict[str, int] = {}
    parts: list[dx.Portfolio] = []
    rows: list[Asset] = []
    excluded: dict[str, str] = {}
    measured: dict[str, float] = {}
    metered: dict[str, float] = {}
    debts = shed_debt_kwh or {}
    anchors = uncontrolled_kw or {}
    for asset in assets:
        state = live.get(asset.id)
        if isinstance(asset, Meter):
            if state is not None:
                metered[asset.id] = state.power_kw
            continue
        if state is None:
            excluded[asset.id] = "no fresh telemetry"
            continue
        measured[asset.id] = state.power_kw
        if not state.available:
            excluded[asset.id] = "device reports itself unavailable"
            continue
        owner = owners.setdefault(asset.owner, len(owners))
        part: dx.Portfolio | str
        if isinstance(asset, Battery):
            part = _battery(asset, state, grid, owner)
        elif isinstance(asset, EvCharger):
            part = _ev(asset, state, grid, owner, anchors.get(asset.id, state.power_kw))
        elif isinstance(asset, FlexibleLoad):
            part = _load(asset, grid, owner, debts.get(asset.id, 0.0), anchors.get(asset.id))
        else:
            part = _pv(asset, state, grid, owner)
        if isinstance(part, str):
            excluded[asset.id] = part
            continue
        parts.append(part)
        rows.append(asset)
    portfolio = dx.build_portfolio(parts) if parts else None
    return PortfolioView(portfolio, tuple(rows), excluded, measured, metered)


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
