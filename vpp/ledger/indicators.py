"""The park's zero-carbon indicators against the thresholds of the national notice.

Source: NDRC, MIIT and NEA, *Notice on carrying out the construction of
zero-carbon parks* (国家发展改革委 工业和信息化部 国家能源局《关于开展零碳园区建设的
通知》, 发改环资〔2025〕910号), its indicator system:

* the core indicator, carbon emissions per unit of energy consumed
  (单位能耗碳排放, tCO2/tce): ≤ 0.2 for a park consuming 0.2-1 Mtce a year
  (20万-100万吨标准煤), ≤ 0.3 for one consuming more;
* a guiding indicator, the clean-energy share of energy consumption
  (清洁能源消费占比): ≥ 90 %.

The notice sets no class below 0.2 Mtce a year; such a park is reported in
the class ``below 0.2 Mtce/a`` and compared with the 0.2 threshold of the
smallest class, which says so in its ``source``.

Windows: a calendar month, and the rolling year of the 12 months ending
with it. ``months`` counts the months of the window with data (a park row
with some coverage); ``annual_tce`` is the window's energy scaled to 12
months (× 12 / months). ``met`` is null when the figure is null.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from vpp.ledger.rows import Indicator

__all__ = [
    "CLEAN_ENERGY_THRESHOLD",
    "NOTICE",
    "SizeClass",
    "WindowTotals",
    "indicator",
    "size_class",
]

#: The notice the thresholds come from.
NOTICE = (
    "NDRC, MIIT, NEA notice on zero-carbon park construction "
    "(关于开展零碳园区建设的通知, 发改环资〔2025〕910号), indicator system"
)
#: Clean-energy share of energy consumption, at least (guiding indicator).
CLEAN_ENERGY_THRESHOLD = 0.90
#: Annual energy consumption bounds of the size classes, tce.
_SMALL_TCE = 200_000.0
_LARGE_TCE = 1_000_000.0


@dataclass(frozen=True, slots=True)
class SizeClass:
    """A park's size class by its annual energy consumption.

    Attributes:
        label: ``below 0.2 Mtce/a``, ``0.2-1 Mtce/a`` or ``above 1 Mtce/a``.
        carbon_intensity_threshold: its ceiling on tCO2/tce.
        note: where the class or its threshold comes from.
    """

    label: str
    carbon_intensity_threshold: float
    note: str


def size_class(annual_tce: float) -> SizeClass:
    """The size class of a park consuming ``annual_tce`` tce a year (see the module docstring)."""
    if annual_tce > _LARGE_TCE:
        return SizeClass("above 1 Mtce/a", 0.3, f"{NOTICE}: above 1 Mtce/a, <= 0.3 tCO2/tce")
    if annual_tce >= _SMALL_TCE:
        return SizeClass("0.2-1 Mtce/a", 0.2, f"{NOTICE}: 0.2-1 Mtce/a, <= 0.2 tCO2/tce")
    return SizeClass(
        "below 0.2 Mtce/a",
        0.2,
        f"{NOTICE}: the notice sets no class below 0.2 Mtce/a; compared with the 0.2 tCO2/tce"
        " of its 0.2-1 Mtce/a class",
    )


@dataclass(frozen=True, slots=True)
class WindowTotals:
    """The park's totals over an indicator's window.

    Attributes:
        months: months of the window with data.
        total_tce: energy consumed, tce.
        total_co2_t: emissions, tCO2.
        clean_tce: clean energy consumed, tce.
    """

    months: int
    total_tce: float
    total_co2_t: float
    clean_tce: float


def indicator(
    window: Literal["month", "rolling_year"],
    period: str,
    start: datetime,
    end: datetime,
    totals: WindowTotals,
) -> Indicator:
    """The park's indicators over one window.

    Args:
        window: a month or the rolling year ending with it.
        period: the month, ``YYYY-MM``.
        start: the window's start (the first month's local midnight).
        end: its end (the month after's).
        totals: the park's totals over it.
    """
    annual = totals.total_tce * 12.0 / totals.months if totals.months else 0.0
    size = size_class(annual)
    positive = totals.total_tce > 0 and totals.months > 0
    intensity = totals.total_co2_t / totals.total_tce if positive else None
    clean = totals.clean_tce / totals.total_tce if positive else None
    return Indicator(
        window=window,
        period=period,
        start=start,
        end=end,
        months=totals.months,
        energy_tce=totals.total_tce,
        annual_tce=annual,
        size_class=size.label,
        carbon_intensity_t_per_tce=intensity,
        carbon_intensity_threshold=size.carbon_intensity_threshold,
        carbon_intensity_met=None
        if intensity is None
        else intensity <= size.carbon_intensity_threshold,
        clean_energy_share=clean,
        clean_energy_threshold=CLEAN_ENERGY_THRESHOLD,
        clean_energy_met=None if clean is None else clean >= CLEAN_ENERGY_THRESHOLD,
        source=f"{size.note}; clean-energy share >= 90 % (guiding indicator)",
    )
