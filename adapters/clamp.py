"""The one clamping rule every setpoint passes before it leaves an adapter.

Order of the rules (later rules never widen the window earlier ones set):

1. the enrolled power window ``[p_min_kw, p_max_kw]``;
2. a one-way device (``bidirectional=False``) never feeds in: ``p >= 0``;
3. live device limits from the latest reading (``max_charge_kw``,
   ``max_discharge_kw``), and an EV that is not plugged in takes nothing;
4. the energy window: over the hold time the SoC must stay inside
   ``[soc_min, soc_max]`` of ``capacity_kwh``. A SoC already outside the window
   only stops the move further out (below ``soc_min``: no discharge; above
   ``soc_max``: no charge); the clamp never forces the device back, which would
   push it against the event it serves;
5. an EV's departure need, as a soft floor: the power now must be high enough
   that charging at the top of the window after the hold still delivers
   ``energy_needed_kwh`` (energy in the vehicle, so ``energy_needed_kwh /
   charge_efficiency`` from the grid) by ``departure_ts``, counting only the
   time from ``now``. It never breaks rules 1-4. The
   need is firm only while the departure is more than one dispatch interval
   (`FIRM_DEPARTURE_LEAD_S`) ahead; a nearer or past departure has lapsed and
   the need is best effort (no floor), so an EV that stays plugged in past it
   is flexible again.

Rules 4 and 5 are the device-side statement of the plan's rules in
``dispatch.envelopes`` (live state outside its window is held, never forced
back; a lapsed departure makes the need best effort; the need is energy in
the vehicle, reached through ``eta_charge``; only the time left from the live
state's reading counts, ``dispatch.elapsed_in_first_interval_h``): a setpoint
the plan chose for a live state is never changed by them, as long as the hold
ends inside the interval the plan decided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from adapters.types import DeviceLimits, Telemetry

__all__ = ["FIRM_DEPARTURE_LEAD_S", "ClampResult", "clamp_setpoint", "power_window"]

_EPS = 1e-9

#: Device seconds a departure must lie ahead for its need to be firm: one dispatch
#: interval (15 min). The plan (``dispatch.envelopes.departure_lapsed``) treats a
#: departure inside the interval it decides now as lapsed; this lead is never
#: shorter than what is left of that interval, so the clamp is never firmer.
FIRM_DEPARTURE_LEAD_S = 900.0


@dataclass(frozen=True, slots=True)
class ClampResult:
    """The value to send and why it differs from the request.

    Attributes:
        power_kw: the clamped power.
        clamped: whether it differs from the request.
        reason: which rule bound it ("" when not clamped).
    """

    power_kw: float
    clamped: bool
    reason: str


def power_window(
    limits: DeviceLimits,
    state: Telemetry | None,
    *,
    now: float,
    hold_s: float,
    time_scale: float = 1.0,
) -> tuple[float, float, str, str]:
    """Return the allowed ``(low, high)`` power and the rule binding each side.

    Args:
        limits: enrolled limits of the asset.
        state: its latest reading, or None if none has arrived yet.
        now: current wall-clock time (UNIX seconds).
        hold_s: how long the setpoint will hold (wall-clock seconds).
        time_scale: device seconds per wall-clock second: 1.0 for real
            equipment; a simulated park on a compressed clock moves energy
            ``time_scale`` times faster, so every duration is scaled by it.
    """
    lo, lo_why = limits.p_min_kw, "enrolled p_min"
    hi, hi_why = limits.p_max_kw, "enrolled p_max"

    def raise_lo(value: float, why: str) -> None:
        nonlocal lo, lo_why
        if value > lo:
            lo, lo_why = value, why

    def lower_hi(value: float, why: str) -> None:
        nonlocal hi, hi_why
        if value < hi:
            hi, hi_why = value, why

    if not limits.bidirectional:
        raise_lo(0.0, "one-way device")
    if state is not None:
        if state.ev_connected is False:
            raise_lo(0.0, "no EV connected")
            lower_hi(0.0, "no EV connected")
        if state.max_charge_kw is not None:
            lower_hi(max(0.0, state.max_charge_kw), "live charge limit")
        if state.max_discharge_kw is not None:
            raise_lo(-max(0.0, state.max_discharge_kw), "live discharge limit")
        if state.soc is not None and limits.capacity_kwh is not None:
            hours = hold_s * time_scale / 3600.0
            room_up = (limits.soc_max - state.soc) * limits.capacity_kwh
            room_down = (state.soc - limits.soc_min) * limits.capacity_kwh
            lower_hi(max(0.0, room_up / hours), "soc_max")
            raise_lo(-max(0.0, room_down / hours), "soc_min")
    # Rules 1-4 contradict only when a live limit cuts through a window that
    # excludes zero; then the point nearest zero is the safe one.
    if lo > hi:
        lo = hi = min(max(0.0, hi), lo)
    if state is not None and state.ev_connected and state.energy_needed_kwh and state.departure_ts:
        remaining_s = (state.departure_ts - now) * time_scale
        if remaining_s > FIRM_DEPARTURE_LEAD_S:  # else lapsed: best effort, no floor
            remaining_h = remaining_s / 3600.0
            hold_h = min(hold_s * time_scale / 3600.0, remaining_h)
            grid_need_kwh = state.energy_needed_kwh / limits.charge_efficiency
            floor = (grid_need_kwh - hi * (remaining_h - hold_h)) / hold_h
            raise_lo(min(hi, floor), "EV departure need")
    return lo, hi, lo_why, hi_why


def clamp_setpoint(
    requested_kw: float,
    limits: DeviceLimits,
    state: Telemetry | None,
    *,
    now: float,
    hold_s: float,
    time_scale: float = 1.0,
) -> ClampResult:
    """Clamp one requested power into what the asset may do now.

    Args:
        requested_kw: the requested power, positive = draw from the grid.
        limits: enrolled limits of the asset.
        state: its latest reading, or None if none has arrived yet.
        now: current wall-clock time (UNIX seconds).
        hold_s: how long the setpoint will hold (wall-clock seconds).
        time_scale: device seconds per wall-clock second (see `power_window`).

    Returns:
        The power to send and whether (and why) it was changed.
    """
    if not math.isfinite(requested_kw):
        raise ValueError(f"requested power is not finite: {requested_kw}")
    lo, hi, lo_why, hi_why = power_window(
        limits, state, now=now, hold_s=hold_s, time_scale=time_scale
    )
    if requested_kw < lo - _EPS:
        return ClampResult(lo, True, lo_why)
    if requested_kw > hi + _EPS:
        return ClampResult(hi, True, hi_why)
    return ClampResult(min(max(requested_kw, lo), hi), False, "")
