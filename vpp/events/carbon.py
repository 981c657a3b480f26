"""An event's avoided CO2: its net reduction with the rebound after it, at the park's factor.

Per the module docs of `vpp.events.report` (the event's intervals) and
`vpp.events.rebound` (the window after it)::

    event_reduction_kwh  = Σ (baseline - measured) · Δt  over the event's measured intervals
    rebound_kwh          = Σ (measured - baseline) · Δt  over the window's measured intervals
    net_reduction_kwh    = event_reduction_kwh - rebound_kwh
    avoided_co2_kg       = net_reduction_kwh × factor    (kgCO2/kWh)
    event_avoided_co2_kg = event_reduction_kwh × factor  (the event alone, shown beside it)

A valley-filling event draws more from the grid, so its reduction and its
avoided CO2 are negative, and energy it pulled forward shows as a negative
rebound (less drawn after it). The factor is the park's grid emission factor
(`vpp.ledger.factors.electricity_factor_of` of ``Park.carbon``; the MEE/NBS
2023 Southern grid region factor, 0.4042 kgCO2/kWh, unless the park chose
another), named in the report with its id, name, vintage and source.

Where the figure stands (``avoided_co2_status``):

* ``pending``: no interval of the event measured yet, and it is not over;
* ``none``: the event ended before any interval was measured (nothing avoided);
* ``provisional``: the event is running, or an interval of its rebound
  window is not measured yet (not closed, or its history not there yet);
* ``final``: the event is over and every interval of its window is measured;
* ``event_only``: the rebound window cannot be counted (the note says why):
  the figure is the event's intervals alone, which overstates a load shift's.

Figures are rounded as the report's: kWh to 0.001, kg to 0.01.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vpp.events.rebound import Rebound
from vpp.ledger.factors import ElectricityFactor

__all__ = ["AvoidedCo2", "Co2Status", "ReboundInterval", "avoided_co2"]

#: Where an event's avoided CO2 stands (see the module doc).
Co2Status = Literal["pending", "none", "provisional", "final", "event_only"]


class ReboundInterval(BaseModel):
    """One interval of an event's rebound window (kW; null where not known or not measured).

    ``rebound_kw`` is ``measured_kw - baseline_kw``: positive where the park
    drew energy back above its baseline. ``coverage`` is the least covered
    fraction of any history slot read for it (1 = complete; null while the
    interval has not closed), and ``silent_devices`` how many devices had
    no history in it and count at their baseline (`vpp.events.rebound`).
    """

    model_config = ConfigDict(frozen=True)

    start: datetime
    baseline_kw: float | None
    measured_kw: float | None = Field(description="from the interval history")
    rebound_kw: float | None = Field(description="measured - baseline (positive: drawn back)")
    coverage: float | None = Field(description="least covered fraction of the slots read")
    silent_devices: int = Field(ge=0, description="devices without history, at their baseline")


@dataclass(frozen=True)
class AvoidedCo2:
    """An event's avoided CO2 and the figures it is made of (None: not known yet)."""

    event_reduction_kwh: float | None
    rebound_kwh: float | None
    net_reduction_kwh: float | None
    event_avoided_co2_kg: float | None
    avoided_co2_kg: float | None
    status: Co2Status
    note: str
    rows: list[ReboundInterval]
    known: np.ndarray  # (R,) the rebound window's measured intervals


def _shown(value: float, digits: int) -> float | None:
    return None if math.isnan(value) else round(float(value), digits) + 0.0


def _rows(rebound: Rebound) -> list[ReboundInterval]:
    known = rebound.known
    return [
        ReboundInterval(
            start=start,
            baseline_kw=_shown(rebound.baseline_kw[j], 3),
            measured_kw=_shown(rebound.measured_kw[j], 3),
            rebound_kw=_shown(rebound.measured_kw[j] - rebound.baseline_kw[j], 3)
            if known[j]
            else None,
            coverage=_shown(rebound.coverage[j], 4),
            silent_devices=int(rebound.silent[j]),
        )
        for j, start in enumerate(rebound.starts)
    ]


def avoided_co2(
    *,
    hours: float,
    reduction_kw: np.ndarray,
    known: np.ndarray,
    factor: ElectricityFactor,
    rebound: Rebound | None,
    final: bool,
) -> AvoidedCo2:
    """The avoided CO2 of an event (the module doc's formulas and statuses).

    Args:
        hours: the event's interval length, h.
        reduction_kw: ``(n,)`` baseline - measured per event interval, kW.
        known: ``(n,)`` the event's measured intervals.
        factor: the park's grid emission factor.
        rebound: the rebound window, measured so far; None: not counted.
        final: whether the event is over.
    """
    rebound = rebound or Rebound.not_counted("no rebound window given")
    rows = _rows(rebound) if rebound.counted else []
    window = rebound.known
    if not known.any():
        status: Co2Status = "none" if final else "pending"
        note = "nothing avoided: no interval of the event was measured" if final else (
            "no interval of the event measured yet"
        )  # fmt: skip
        return AvoidedCo2(None, None, None, None, None, status, note, rows, window)
    kg = factor.kg_co2_per_kwh
    event_kwh = math.fsum(reduction_kw[known]) * hours
    event_kg = round(event_kwh * kg, 2)
    if not rebound.counted:
        note = f"the event's intervals alone, which overstates a load shift's: {rebound.note}"
        return AvoidedCo2(
            round(event_kwh, 3), None, round(event_kwh, 3), event_kg, event_kg,
            "event_only", note, rows, window,
        )  # fmt: skip
    measured = int(window.sum())
    total = len(rebound.starts)
    rebound_kwh = math.fsum((rebound.measured_kw - rebound.baseline_kw)[window]) * hours
    net_kwh = event_kwh - rebound_kwh
    step = timedelta(seconds=rebound.interval_s)
    end = (rebound.starts[-1] + step).isoformat() if rebound.starts else "the event's end"
    where = f"the rebound window ({total} intervals to {end}; {rebound.note})"
    if not final:
        status, note = "provisional", f"the event is running; then {where}"
    elif measured < total:
        status = "provisional"
        note = f"{total - measured} of the {total} intervals of {where} not measured yet"
    else:
        status, note = "final", f"the event's measured intervals and {where}"
    return AvoidedCo2(
        event_reduction_kwh=round(event_kwh, 3),
        rebound_kwh=round(rebound_kwh, 3) if measured or not total else None,
        net_reduction_kwh=round(net_kwh, 3),
        event_avoided_co2_kg=event_kg,
        avoided_co2_kg=round(net_kwh * kg, 2),
        status=status,
        note=note,
        rows=rows,
        known=window,
    )
