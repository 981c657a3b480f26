"""Per-asset flexibility envelopes: enrolled parameters + live state + baseline -> arrays.

Each builder returns a one-asset :class:`~dispatch.portfolio.Portfolio`; join them
with :func:`build_portfolio`. Builders clip a given baseline into the asset's
power bounds; :func:`build_portfolio` relaxes energy obligations that the live
state can no longer meet (an EV gets the most energy it can still reach).

Live state outside its window (the one rule, shared with ``adapters.clamp``):
an asset whose live state is already outside its per-interval energy window (a
battery below ``soc_min`` or above ``soc_max``, a thermal load outside its
comfort band, a load whose shed debt exceeds its budget) gets the window
widened to its live state. It may move back towards the window whenever an
event asks for that direction, and it is never pushed further out, but no
interval *requires* it to move back: a rule that forced the recovery would
push the asset against the very event it serves (a battery at 5 % SoC charging
at full power through a peak-shaving event). Only obligations the owner stated
for a time (an EV's need by departure, a shiftable load's deadline, an
explicit end SoC, repaying shed debt by the end of the grid) stay, relaxed to
what is reachable. An EV whose stated departure has lapsed is covered by
:func:`ev_envelope`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from dispatch._dynamics import repair
from dispatch.grid import TimeGrid
from dispatch.portfolio import FlexKind, FloatArray, Portfolio

__all__ = [
    "Battery",
    "CurtailableLoad",
    "EvSession",
    "PvCurtailment",
    "ShiftableLoad",
    "ThermalLoad",
    "battery_envelope",
    "build_portfolio",
    "curtailable_envelope",
    "departure_lapsed",
    "elapsed_in_first_interval_h",
    "ev_envelope",
    "pv_envelope",
    "shiftable_envelope",
    "thermal_envelope",
]


@dataclass(frozen=True, kw_only=True)
class Battery:
    """Enrolled battery storage and its live state of charge.

    Attributes:
        asset_id: Identifier.
        capacity_kwh: Usable capacity.
        max_charge_kw: Charge limit.
        max_discharge_kw: Discharge limit.
        soc: Live state of charge, 0..1.
        soc_min: Lower SoC bound at every interval.
        soc_max: Upper SoC bound at every interval.
        end_soc_min: SoC window at the end of the grid (defaults to ``soc_min``).
        end_soc_max: Upper end of that window (defaults to ``soc_max``).
        eta_charge: Charge efficiency.
        eta_discharge: Discharge efficiency (round trip = product of both).
        cost_kwh: Wear cost per kWh of deviation, both directions.
        owner: Owner enterprise code.
    """

    asset_id: str
    capacity_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    soc: float
    soc_min: float = 0.1
    soc_max: float = 0.9
    end_soc_min: float | None = None
    end_soc_max: float | None = None
    eta_charge: float = 0.95
    eta_discharge: float = 0.95
    cost_kwh: float = 0.05
    owner: int = 0


@dataclass(frozen=True, kw_only=True)
class EvSession:
    """One EV charging session and the energy already delivered in it.

    Attributes:
        asset_id: Identifier (of the session or the charger).
        arrival: Plug-in time; the EV is controllable from the first whole interval after it.
        departure: Planned departure; intervals after it are not used.
        energy_needed_kwh: Energy the EV battery must have gained by departure.
        max_charge_kw: Charger / vehicle charge limit.
        uncontrolled_kw: What the EV draws when left alone (its measured draw
            before control, or its own stated limit), kW; the default baseline
            charges at it (capped at ``max_charge_kw``). None: ``max_charge_kw``.
        max_discharge_kw: Discharge limit when ``v2g``.
        v2g: Whether the session may discharge to the grid.
        energy_added_kwh: Live state: energy gained so far in this session.
        headroom_kwh: Energy the EV battery can still take (capacity minus content at plug-in).
        v2g_floor_kwh: How far below plug-in content V2G may discharge.
        eta_charge: Charge efficiency.
        eta_discharge: Discharge efficiency.
        cost_up: Cost per kWh of charging above the baseline.
        cost_down: Cost per kWh below the baseline (owner compensation).
        owner: Owner enterprise code.
        as_of: Live state: when ``energy_added_kwh`` and ``energy_needed_kwh``
            were read. The part of the grid's first interval before it is gone:
            no energy can be taken in it any more (see :func:`ev_envelope`).
            None: at the grid's start.
    """

    asset_id: str
    arrival: datetime
    departure: datetime
    energy_needed_kwh: float
    max_charge_kw: float
    uncontrolled_kw: float | None = None
    max_discharge_kw: float = 0.0
    v2g: bool = False
    energy_added_kwh: float = 0.0
    headroom_kwh: float = math.inf
    v2g_floor_kwh: float = 0.0
    eta_charge: float = 0.92
    eta_discharge: float = 0.92
    cost_up: float = 0.02
    cost_down: float = 0.08
    owner: int = 0
    as_of: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class CurtailableLoad:
    """A load that sheds up to ``max_shed_kw`` for a limited time and then rebounds.

    The energy state is the outstanding shed energy (negative kWh). Shedding one
    kWh adds one kWh of debt; consuming ``x`` kWh above baseline repays
    ``x / rebound_share`` kWh of it. The duration limit is a bound on outstanding
    debt (``max_shed_kw * max_shed_minutes``: at full shed, at most that long), and
    all debt must be repaid by the end of the grid when ``rebound_share > 0``.
    With ``rebound_share == 0`` the load never consumes above its baseline and the
    bound caps total shed energy over the grid.

    Attributes:
        asset_id: Identifier.
        max_shed_kw: Largest reduction below baseline.
        max_shed_minutes: Longest shed at full depth.
        rebound_share: Share of shed energy consumed again later, 0..1.
        max_rebound_kw: Largest consumption above baseline while repaying (default ``max_shed_kw``).
        shed_debt_kwh: Live state: shed energy not yet repaid.
        cost_down: Cost per kWh shed (lost production, comfort).
        cost_up: Cost per kWh of rebound consumption.
        owner: Owner enterprise code.
    """

    asset_id: str
    max_shed_kw: float
    max_shed_minutes: float
    rebound_share: float = 0.5
    max_rebound_kw: float | None = None
    shed_debt_kwh: float = 0.0
    cost_down: float = 0.15
    cost_up: float = 0.01
    owner: int = 0


@dataclass(frozen=True, kw_only=True)
class ShiftableLoad:
    """A load that needs a fixed energy inside a window (a batch process, a pump).

    Attributes:
        asset_id: Identifier.
        energy_kwh: Energy to consume between ``earliest_start`` and ``deadline``.
        max_kw: Power limit.
        earliest_start: Window start.
        deadline: Window end; the energy is complete by then.
        energy_done_kwh: Live state: energy consumed so far.
        cost_kwh: Cost per kWh moved away from the baseline schedule, both directions.
        owner: Owner enterprise code.
    """

    asset_id: str
    energy_kwh: float
    max_kw: float
    earliest_start: datetime
    deadline: datetime
    energy_done_kwh: float = 0.0
    cost_kwh: float = 0.03
    owner: int = 0


@dataclass(frozen=True, kw_only=True)
class ThermalLoad:
    """A heating or cooling load as a leaky battery over its comfort band.

    The energy state is the stored thermal energy relative to the setpoint, in
    electric kWh (``capacity_kwh_per_k`` already divided by the COP). Without
    demand response the deviation decays with ``time_constant_h``; the baseline is
    the power that holds the setpoint.

    Attributes:
        asset_id: Identifier.
        rated_kw: Electric power limit.
        capacity_kwh_per_k: Electric kWh per kelvin of stored heat (or cold).
        setpoint_c: Temperature the baseline holds.
        comfort_min_c: Lower comfort bound.
        comfort_max_c: Upper comfort bound.
        temperature_c: Live state: current temperature.
        time_constant_h: Decay time constant of a temperature deviation.
        cooling: True for a chiller (more power = colder).
        cost_kwh: Comfort cost per kWh of deviation, both directions.
        owner: Owner enterprise code.
    """

    asset_id: str
    rated_kw: float
    capacity_kwh_per_k: float
    setpoint_c: float
    comfort_min_c: float
    comfort_max_c: float
    temperature_c: float
    time_constant_h: float = 4.0
    cooling: bool = True
    cost_kwh: float = 0.06
    owner: int = 0


@dataclass(frozen=True, kw_only=True)
class PvCurtailment:
    """PV generation that can be curtailed (upward flexibility only).

    Attributes:
        asset_id: Identifier.
        cost_kwh: Value of a curtailed kWh.
        owner: Owner enterprise code.
    """

    asset_id: str
    cost_kwh: float = 0.3
    owner: int = 0


def departure_lapsed(departure: datetime, grid: TimeGrid) -> bool:
    """Whether an EV's stated departure has lapsed for planning on ``grid``.

    A departure that is not after the end of the grid's first interval (the
    interval whose setpoint is decided now) is in the past or inside that
    interval: no whole interval is left to meet the need by it. The vehicle is
    still plugged in, so its need becomes best effort (``adapters.clamp`` drops
    its departure floor on the same terms: a departure less than one dispatch
    interval ahead).
    """
    return departure <= grid.start + grid.step


def elapsed_in_first_interval_h(as_of: datetime | None, grid: TimeGrid) -> float:
    """Hours of the grid's first interval already gone at ``as_of`` (0 to ``grid.dt_h``).

    The plan holds one power per interval and credits the first interval's
    setpoint with a whole ``grid.dt_h`` of energy, but a plan made at
    ``as_of`` inside that interval (the control loop re-plans mid-interval on
    the live state) can only draw during what is left of it. None: at the
    grid's start (nothing gone).
    """
    if as_of is None:
        return 0.0
    gone_h = (as_of - grid.start).total_seconds() / 3600.0
    return min(max(gone_h, 0.0), grid.dt_h)


def _hold_window(e_min: FloatArray, e_max: FloatArray, e0: float) -> tuple[FloatArray, FloatArray]:
    """Widen a per-interval energy window to the live state (see the module docstring)."""
    return np.minimum(e_min, e0), np.maximum(e_max, e0)


def _row(x: FloatArray | float, grid: TimeGrid) -> FloatArray:
    return np.broadcast_to(np.asarray(x, dtype=np.float64), (grid.n,)).copy()[None, :]


def _one(
    grid: TimeGrid,
    *,
    asset_id: str,
    kind: FlexKind,
    owner: int,
    p_min: FloatArray,
    p_max: FloatArray,
    baseline: FloatArray,
    p_ref: FloatArray,
    e_min: FloatArray,
    e_max: FloatArray,
    e0: float,
    retention: float = 1.0,
    k_charge: float = 1.0,
    k_discharge: float = 1.0,
    cost_up: float,
    cost_down: float,
) -> Portfolio:
    base = np.clip(baseline, p_min, p_max)
    pf = Portfolio(
        grid=grid,
        asset_ids=(asset_id,),
        kind=np.array([int(kind)], dtype=np.int64),
        owner=np.array([owner], dtype=np.int64),
        p_min=_row(p_min, grid),
        p_max=_row(p_max, grid),
        baseline=_row(base, grid),
        p_ref=_row(p_ref, grid),
        e_min=_row(e_min, grid),
        e_max=_row(e_max, grid),
        e0=np.array([e0], dtype=np.float64),
        retention=np.array([retention], dtype=np.float64),
        k_charge=np.array([k_charge], dtype=np.float64),
        k_discharge=np.array([k_discharge], dtype=np.float64),
        cost_up=np.array([cost_up], dtype=np.float64),
        cost_down=np.array([cost_down], dtype=np.float64),
    )
    return pf


def battery_envelope(
    asset: Battery, grid: TimeGrid, baseline: FloatArray | None = None
) -> Portfolio:
    """Envelope of a battery: power box, SoC window, end-of-grid window, efficiencies.

    A live SoC outside ``[soc_min, soc_max]`` widens the window (and the default
    end window) to it: the battery is held, never forced back (module docstring).

    Args:
        asset: Enrolled parameters and live SoC.
        grid: Time grid.
        baseline: Planned power without demand response (default idle).

    Returns:
        A one-asset portfolio.
    """
    cap = asset.capacity_kwh
    lo = min(asset.soc_min, asset.soc)
    hi = max(asset.soc_max, asset.soc)
    e_min = np.full(grid.n, lo * cap)
    e_max = np.full(grid.n, hi * cap)
    end_lo = lo if asset.end_soc_min is None else asset.end_soc_min
    end_hi = hi if asset.end_soc_max is None else asset.end_soc_max
    e_min[-1], e_max[-1] = end_lo * cap, end_hi * cap
    zeros = np.zeros(grid.n)
    return _one(
        grid,
        asset_id=asset.asset_id,
        kind=FlexKind.BATTERY,
        owner=asset.owner,
        p_min=np.full(grid.n, -asset.max_discharge_kw),
        p_max=np.full(grid.n, asset.max_charge_kw),
        baseline=zeros if baseline is None else np.asarray(baseline, dtype=np.float64),
        p_ref=zeros,
        e_min=e_min,
        e_max=e_max,
        e0=asset.soc * cap,
        k_charge=asset.eta_charge,
        k_discharge=1.0 / asset.eta_discharge,
        cost_up=asset.cost_kwh,
        cost_down=asset.cost_kwh,
    )


def _asap(limit: FloatArray, energy: float, gain: float, dt: float) -> FloatArray:
    """Power profile that takes ``energy`` as early as ``limit`` allows."""
    need = max(energy, 0.0) / gain
    cum_before = np.concatenate([[0.0], np.cumsum(limit * dt)[:-1]])
    return np.asarray(np.clip(need - cum_before, 0.0, limit * dt) / dt, dtype=np.float64)


def ev_envelope(
    session: EvSession, grid: TimeGrid, baseline: FloatArray | None = None
) -> Portfolio:
    """Envelope of an EV session; the default baseline charges as soon as possible.

    The baseline is what the EV draws uncontrolled: its remaining need at
    ``uncontrolled_kw`` from the first interval, never more than the charger's
    limit. A session whose departure has lapsed (:func:`departure_lapsed`: the
    EV stayed past it, or leaves inside the first interval) is planned as
    staying to the end of the grid with a best-effort need: the baseline still
    charges the remaining need, but no energy is required at any time, so it is
    flexible again (as ``adapters.clamp`` treats it).

    The departure need (the rule ``adapters.clamp`` applies on the device side,
    rule 5 of its module docstring): the energy taken from ``as_of`` to the
    departure must reach ``energy_needed_kwh``. The plan credits its first
    interval's power ``p0`` with the whole interval, of which
    ``g = elapsed_in_first_interval_h(as_of)`` is already gone; the need at the
    departure is raised by the most that phantom energy can be,
    ``eta_charge * max_charge_kw * g``, so every ``p0`` the plan accepts still
    meets the need when drawn only over what is left of the interval and the
    whole intervals after it (then charging at ``max_charge_kw`` as the
    clamp's floor assumes). Without this the plan, re-made mid-interval,
    chose a ``p0`` below the clamp's floor (e.g. 18.75 kW against 19.75 kW,
    tests/dispatch/test_clamp_agreement.py). A need no longer reachable is
    relaxed by :func:`build_portfolio` to the most reachable, i.e. full power.

    Args:
        session: Session parameters and live energy gained so far.
        grid: Time grid.
        baseline: Power without demand response (default: uncontrolled charging).

    Returns:
        A one-asset portfolio (zero power outside the session).
    """
    lapsed = departure_lapsed(session.departure, grid)
    first = grid.first_index_at_or_after(session.arrival)
    stop = grid.n if lapsed else grid.last_index_ending_by(session.departure)
    present = np.zeros(grid.n, dtype=bool)
    present[first:stop] = True
    p_max = np.where(present, session.max_charge_kw, 0.0)
    p_min = np.where(present & session.v2g, -session.max_discharge_kw, 0.0)
    remaining = session.energy_needed_kwh - session.energy_added_kwh
    if baseline is None:
        rate = session.max_charge_kw
        if session.uncontrolled_kw is not None:
            rate = min(rate, max(session.uncontrolled_kw, 0.0))
        baseline = _asap(np.where(present, rate, 0.0), remaining, session.eta_charge, grid.dt_h)
    # the EV's own bounds never require it to move now (no negative floor or headroom)
    e_min = np.full(grid.n, session.energy_added_kwh - max(session.v2g_floor_kwh, 0.0))
    if 0 < stop <= grid.n and not lapsed:
        gone_h = elapsed_in_first_interval_h(session.as_of, grid) if first == 0 else 0.0
        phantom = session.eta_charge * session.max_charge_kw * gone_h
        e_min[stop - 1 :] = session.energy_needed_kwh + phantom
    e_max = np.full(grid.n, session.energy_added_kwh + max(session.headroom_kwh, 0.0))
    return _one(
        grid,
        asset_id=session.asset_id,
        kind=FlexKind.EV,
        owner=session.owner,
        p_min=p_min,
        p_max=p_max,
        baseline=np.asarray(baseline, dtype=np.float64),
        p_ref=np.zeros(grid.n),
        e_min=e_min,
        e_max=np.maximum(e_max, e_min),
        e0=session.energy_added_kwh,
        k_charge=session.eta_charge,
        k_discharge=1.0 / session.eta_discharge,
        cost_up=session.cost_up,
        cost_down=session.cost_down,
    )


def curtailable_envelope(load: CurtailableLoad, grid: TimeGrid, baseline: FloatArray) -> Portfolio:
    """Envelope of a curtailable load with rebound.

    Shed debt beyond the budget widens the budget to it (no forced rebound
    inside the grid); all debt is still repaid by the end of the grid.

    Args:
        load: Parameters and live outstanding shed debt.
        grid: Time grid.
        baseline: Forecast consumption, kW.

    Returns:
        A one-asset portfolio whose energy state is minus the outstanding debt.
    """
    b = np.maximum(np.asarray(baseline, dtype=np.float64), 0.0)
    share = min(max(load.rebound_share, 0.0), 1.0)
    rebound = load.max_shed_kw if load.max_rebound_kw is None else load.max_rebound_kw
    budget = load.max_shed_kw * load.max_shed_minutes / 60.0
    # debt beyond the budget is held, not repaid at once (module docstring)
    e_min = np.full(grid.n, min(-budget, -load.shed_debt_kwh))
    if share > 0:
        e_min[-1] = 0.0
    return _one(
        grid,
        asset_id=load.asset_id,
        kind=FlexKind.CURTAILABLE,
        owner=load.owner,
        p_min=np.maximum(b - load.max_shed_kw, 0.0),
        p_max=b + rebound if share > 0 else b,
        baseline=b,
        p_ref=b,
        e_min=e_min,
        e_max=np.zeros(grid.n),
        e0=-load.shed_debt_kwh,
        k_charge=1.0 / share if share > 0 else 0.0,
        k_discharge=1.0,
        cost_up=load.cost_up,
        cost_down=load.cost_down,
    )


def shiftable_envelope(
    load: ShiftableLoad, grid: TimeGrid, baseline: FloatArray | None = None
) -> Portfolio:
    """Envelope of a shiftable load; the default baseline runs as early as possible.

    Args:
        load: Parameters and live energy done.
        grid: Time grid.
        baseline: Planned consumption (default: start at ``earliest_start`` at full power).

    Returns:
        A one-asset portfolio whose energy state is the energy consumed.
    """
    first = grid.first_index_at_or_after(load.earliest_start)
    stop = grid.last_index_ending_by(load.deadline)
    p_max = np.zeros(grid.n)
    p_max[first:stop] = load.max_kw
    if baseline is None:
        baseline = _asap(p_max, load.energy_kwh - load.energy_done_kwh, 1.0, grid.dt_h)
    e_min = np.full(grid.n, load.energy_done_kwh)
    if stop > 0:
        e_min[stop - 1 :] = load.energy_kwh
    return _one(
        grid,
        asset_id=load.asset_id,
        kind=FlexKind.SHIFTABLE,
        owner=load.owner,
        p_min=np.zeros(grid.n),
        p_max=p_max,
        baseline=np.asarray(baseline, dtype=np.float64),
        p_ref=np.zeros(grid.n),
        e_min=e_min,
        e_max=np.full(grid.n, max(load.energy_kwh, load.energy_done_kwh)),
        e0=load.energy_done_kwh,
        cost_up=load.cost_kwh,
        cost_down=load.cost_kwh,
    )


def thermal_envelope(load: ThermalLoad, grid: TimeGrid, baseline: FloatArray) -> Portfolio:
    """Envelope of a thermal load over its comfort band.

    A live temperature outside the band widens the band to it: the load may
    drift back (its retention pulls it towards the setpoint) but is never
    forced to full power to get there.

    Args:
        load: Parameters and live temperature.
        grid: Time grid.
        baseline: Power that holds the setpoint, kW.

    Returns:
        A one-asset portfolio with retention ``exp(-dt / time_constant_h)``.
    """
    c = load.capacity_kwh_per_k
    sign = -1.0 if load.cooling else 1.0
    lo_k = sign * (load.comfort_min_c - load.setpoint_c)
    hi_k = sign * (load.comfort_max_c - load.setpoint_c)
    b = np.clip(np.asarray(baseline, dtype=np.float64), 0.0, load.rated_kw)
    e0 = c * sign * (load.temperature_c - load.setpoint_c)
    e_min, e_max = _hold_window(
        np.full(grid.n, c * min(lo_k, hi_k)), np.full(grid.n, c * max(lo_k, hi_k)), e0
    )
    return _one(
        grid,
        asset_id=load.asset_id,
        kind=FlexKind.THERMAL,
        owner=load.owner,
        p_min=np.zeros(grid.n),
        p_max=np.full(grid.n, load.rated_kw),
        baseline=b,
        p_ref=b,
        e_min=e_min,
        e_max=e_max,
        e0=e0,
        retention=math.exp(-grid.dt_h / load.time_constant_h),
        cost_up=load.cost_kwh,
        cost_down=load.cost_kwh,
    )


def pv_envelope(pv: PvCurtailment, grid: TimeGrid, forecast_kw: FloatArray) -> Portfolio:
    """Envelope of curtailable PV: power between ``-forecast`` and zero.

    Args:
        pv: Parameters.
        grid: Time grid.
        forecast_kw: Forecast generation (positive kW).

    Returns:
        A one-asset portfolio with no energy state.
    """
    gen = np.maximum(np.asarray(forecast_kw, dtype=np.float64), 0.0)
    return _one(
        grid,
        asset_id=pv.asset_id,
        kind=FlexKind.PV,
        owner=pv.owner,
        p_min=-gen,
        p_max=np.zeros(grid.n),
        baseline=-gen,
        p_ref=-gen,
        e_min=np.full(grid.n, -np.inf),
        e_max=np.full(grid.n, np.inf),
        e0=0.0,
        cost_up=pv.cost_kwh,
        cost_down=pv.cost_kwh,
    )


def build_portfolio(parts: Iterable[Portfolio]) -> Portfolio:
    """Join one-asset envelopes (or smaller portfolios) into a portfolio.

    Energy obligations the live state can no longer meet are relaxed to the
    nearest reachable value here, in one vectorised pass (see :func:`repair`).
    """
    return repair(Portfolio.concat(list(parts)))
