"""Every form of charging needs OCPP 2.0.1 and 2.1 allow in NotifyEVChargingNeeds.

``chargingNeeds`` (2.0.1 part 2 ChargingNeedsType; 2.1 adds V2X) may carry:

* ``acChargingParameters``: ``energyAmount`` Wh, ``evMinCurrent`` /
  ``evMaxCurrent`` A per phase, ``evMaxVoltage`` V;
* ``dcChargingParameters``: ``energyAmount`` Wh, ``evMaxPower`` W,
  ``evEnergyCapacity`` Wh, ``stateOfCharge`` / ``fullSoC`` / ``bulkSoC`` %,
  ``evMaxCurrent`` A, ``evMaxVoltage`` V;
* 2.1 ``v2xChargingParameters``: ``evTargetEnergyRequest`` /
  ``evMinEnergyRequest`` / ``evMaxEnergyRequest`` Wh (ISO 15118-20 energy
  to the target / minimum / maximum SoC; negative when the SoC is above it),
  ``targetSoC`` %, ``min/maxCharge/DischargePower`` W (the sum of the phases,
  or phase L1 when ``_L2`` / ``_L3`` are given too);
* 2.1 ``evEnergyOffer.evPowerSchedule``: from ``timeAnchor``, entries of
  ``duration`` s and ``power`` W the EV offers (negative = discharge); the
  entry covering now gives the discharge power when V2X limits do not;
* ``departureTime``.

Which number is the session's energy need, first present wins:
``evTargetEnergyRequest``; AC, then DC ``energyAmount``; ``targetSoC`` with a
known EV capacity and SoC (``(target - SoC) x capacity``, recomputed as the
SoC moves, so a V2G car that states only a target SoC is still a flexible
session); ``evMinEnergyRequest`` (only the minimum stated: that much is owed).
Every field is checked alone (:mod:`adapters.ocpp.fields`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.ocpp.fields import Reject, number, timestamp

__all__ = ["ChargingNeeds", "decode_needs"]

_MAX_W = 5e6
_MAX_WH = 2e6  # the largest truck battery is well under 2 MWh
# A departure before 2000 is a charger with an unset clock; more than a year
# ahead is no stay at a charger. (A departure already past is still a
# statement: how a late EV is treated is the plan's and the clamp's business.)
_EARLIEST_TS = 946_684_800.0
_LATEST_AHEAD_S = 366 * 86_400.0


@dataclass(frozen=True, slots=True)
class ChargingNeeds:
    """What an EV stated about its session (absent = None).

    Attributes:
        departure_ts: stated departure (UNIX seconds).
        energy_wh: energy to deliver from now on (>= 0), when stated in Wh.
        target_soc: SoC wanted at departure (0..1), when stated as a SoC.
        capacity_wh: the EV battery's capacity.
        soc: the EV's SoC when it stated its needs (0..1).
        max_charge_w: the most it can draw now.
        max_discharge_w: the most it can feed in now (>= 0).
    """

    departure_ts: float | None = None
    energy_wh: float | None = None
    target_soc: float | None = None
    capacity_wh: float | None = None
    soc: float | None = None
    max_charge_w: float | None = None
    max_discharge_w: float | None = None


def _obj(raw: dict[str, Any], key: str, reject: Reject) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        reject(key, "not_an_object", value)
        return {}
    return value


def _phased(params: dict[str, Any], key: str, name: str, reject: Reject) -> float | None:
    """A V2X power: the total, or L1 + L2 + L3 when the per-phase fields are given."""
    total = number(params.get(key), name, reject, lo=-_MAX_W, hi=_MAX_W)
    phases = [
        number(params.get(f"{key}_{p}"), name, reject, lo=-_MAX_W, hi=_MAX_W) for p in ("L2", "L3")
    ]
    if total is None:
        return None
    if any(p is not None for p in phases):
        return total + sum(p for p in phases if p is not None)
    return total


def _offered_discharge(offer: dict[str, Any], reject: Reject, *, now: float) -> float | None:
    """The discharge power (W, >= 0) the EV's power schedule offers now, if any."""
    schedule = _obj(offer, "evPowerSchedule", reject)
    anchor = timestamp(schedule.get("timeAnchor"), "ev_power_schedule", reject)
    entries = schedule.get("evPowerScheduleEntries")
    if anchor is None or not isinstance(entries, list):
        return None
    start = anchor
    for entry in entries:
        if not isinstance(entry, dict):
            reject("ev_power_schedule", "not_an_object", entry)
            return None
        duration = number(entry.get("duration"), "ev_power_schedule", reject, lo=0, hi=1e8)
        watts = number(entry.get("power"), "max_discharge_kw", reject, lo=-_MAX_W, hi=_MAX_W)
        if duration is None or watts is None:
            return None
        if start <= now < start + duration:
            return max(0.0, -watts)
        start += duration
    return None


def decode_needs(charging_needs: object, reject: Reject, *, now: float) -> ChargingNeeds:
    """Read a ``chargingNeeds`` object field by field.

    Args:
        charging_needs: the raw JSON object (camelCase keys, as on the wire).
        reject: the sink for each dropped field.
        now: receive time (UNIX seconds), to judge the departure time.

    Returns:
        What could be read; a bad field is absent, the others are kept.
    """
    if not isinstance(charging_needs, dict):
        reject("chargingNeeds", "not_an_object", charging_needs)
        return ChargingNeeds()
    ac = _obj(charging_needs, "acChargingParameters", reject)
    dc = _obj(charging_needs, "dcChargingParameters", reject)
    v2x = _obj(charging_needs, "v2xChargingParameters", reject)
    departure = timestamp(charging_needs.get("departureTime"), "departure_ts", reject)
    if departure is not None and not _EARLIEST_TS <= departure <= now + _LATEST_AHEAD_S:
        reject("departure_ts", "out_of_range", charging_needs.get("departureTime"))
        departure = None

    def wh(params: dict[str, Any], key: str, lo: float = 0.0) -> float | None:
        return number(params.get(key), "energy_needed_kwh", reject, lo=lo, hi=_MAX_WH)

    def pct(params: dict[str, Any], key: str, name: str) -> float | None:
        value = number(params.get(key), name, reject, lo=0.0, hi=100.0)
        return None if value is None else value / 100.0

    target_wh = wh(v2x, "evTargetEnergyRequest", lo=-_MAX_WH)
    min_wh = wh(v2x, "evMinEnergyRequest", lo=-_MAX_WH)
    ac_wh, dc_wh = wh(ac, "energyAmount"), wh(dc, "energyAmount")
    target_soc = pct(v2x, "targetSoC", "target_soc")
    energy = next((e for e in (target_wh, ac_wh, dc_wh) if e is not None), None)
    if energy is None and target_soc is None and min_wh is not None:
        energy = min_wh
    capacity = number(dc.get("evEnergyCapacity"), "capacity_kwh", reject, lo=1.0, hi=_MAX_WH)
    soc = pct(dc, "stateOfCharge", "soc")

    max_charge = _phased(v2x, "maxChargePower", "max_charge_kw", reject)
    if max_charge is None:
        max_charge = number(dc.get("evMaxPower"), "max_charge_kw", reject, lo=0.0, hi=_MAX_W)
    max_discharge = _phased(v2x, "maxDischargePower", "max_discharge_kw", reject)
    if max_discharge is None:
        max_discharge = _offered_discharge(
            _obj(charging_needs, "evEnergyOffer", reject), reject, now=now
        )
    return ChargingNeeds(
        departure_ts=departure,
        energy_wh=None if energy is None else max(0.0, energy),
        target_soc=target_soc,
        capacity_wh=capacity,
        soc=soc,
        max_charge_w=None if max_charge is None else max(0.0, max_charge),
        # Discharge power is stated >= 0; a vendor sending it negative means the same.
        max_discharge_w=None if max_discharge is None else abs(max_discharge),
    )
