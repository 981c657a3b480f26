"""A ledger row's figures: energy, the month's entries, tce, tCO2 and the shares.

`account` turns the energy balance of one enterprise over one period
(`vpp.ledger.balance`, summed over the period's slots) and the enterprise's
entries of that month (`vpp.ledger.entries`) into additive `Figures`;
`Figures` add up (the park = Σ enterprises, a year = Σ months); `to_row`
derives the rest of a `vpp.ledger.rows.LedgerRow` from them.

Rules (coefficients from `vpp.ledger.factors`, one versioned table):

* entries are monthly; for a period shorter than its month they are spread
  by hours over it (``share`` = the period's hours / the month's hours,
  ``entries_prorated``);
* fuels: quantity × ``CARRIERS[carrier].units[unit]`` → tce and tCO2;
* purchased green power (trading + direct) is deducted from the grid import
  up to the import (``green_deducted_kwh``), row by row;
* ``consumption = import − export + PV generation``;
  ``electricity_tce = consumption × 0.1229 kgce/kWh`` (GB/T 2589-2020,
  equivalent value); ``clean_tce = (PV self-consumed + green deducted) ×
  the same coefficient`` (+ the tce of any carrier marked clean);
* ``electricity_co2 = max(import − green deducted, 0) × the grid factor``
  (kgCO2/kWh → t); exported energy is not credited;
* ``green_power_share = (PV self-consumed + green deducted) / consumption``,
  ``clean_energy_share = clean_tce / total_tce``,
  ``carbon_intensity = total_co2 / total_tce``; null when the denominator
  is not positive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from vpp.ledger.balance import FLOWS, Basis
from vpp.ledger.entries import MonthEntries
from vpp.ledger.factors import CARRIERS, ELECTRICITY, ElectricityFactor
from vpp.ledger.rows import FactorInfo, FuelLine, LedgerRow

__all__ = [
    "ELECTRICITY_TCE_PER_KWH",
    "Figures",
    "account",
    "factor_info",
    "figures_of",
    "to_row",
]

#: tce per kWh of electricity (equivalent value, GB/T 2589-2020): 0.1229 kgce/kWh.
ELECTRICITY_TCE_PER_KWH = CARRIERS[ELECTRICITY].units["kWh"].tce

_INDEX = {name: i for i, name in enumerate(FLOWS)}


@dataclass(slots=True)
class Figures:
    """The additive figures of a scope over a period; rows are summed by adding these.

    Attributes:
        slot_hours: the period's hours × the scopes added (coverage's denominator).
        energy: ``(len(FLOWS),)`` the balance summed over the period (kWh;
            hours for ``covered_h``).
        green_trading_kwh: green power bought through trading, prorated.
        green_direct_kwh: green power from direct supply, prorated.
        green_deducted_kwh: green power deducted from the grid import.
        fuels: (carrier, unit) -> ``[quantity, tce, tCO2]``.
        electricity_co2_t: CO2 of the grid import less the green power, t.
        factors: ids of the grid factors used.
        closed: every part lies in a closed month.
        pending: some part is a closed month whose entries changed since.
        prorated: some part's entries were spread by hours.
    """

    slot_hours: float
    energy: NDArray[np.float64] = field(default_factory=lambda: np.zeros(len(FLOWS)))
    green_trading_kwh: float = 0.0
    green_direct_kwh: float = 0.0
    green_deducted_kwh: float = 0.0
    fuels: dict[tuple[str, str], NDArray[np.float64]] = field(default_factory=dict)
    electricity_co2_t: float = 0.0
    factors: frozenset[str] = frozenset()
    closed: bool = True
    pending: bool = False
    prorated: bool = False

    def __add__(self, other: Figures) -> Figures:
        fuels = dict(self.fuels)
        for key, values in other.fuels.items():
            fuels[key] = fuels[key] + values if key in fuels else values
        return Figures(
            slot_hours=self.slot_hours + other.slot_hours,
            energy=self.energy + other.energy,
            green_trading_kwh=self.green_trading_kwh + other.green_trading_kwh,
            green_direct_kwh=self.green_direct_kwh + other.green_direct_kwh,
            green_deducted_kwh=self.green_deducted_kwh + other.green_deducted_kwh,
            fuels=fuels,
            electricity_co2_t=self.electricity_co2_t + other.electricity_co2_t,
            factors=self.factors | other.factors,
            closed=self.closed and other.closed,
            pending=self.pending or other.pending,
            prorated=self.prorated or other.prorated,
        )

    def flow(self, name: str) -> float:
        """One quantity of `vpp.ledger.balance.FLOWS`."""
        return float(self.energy[_INDEX[name]])

    @property
    def consumption_kwh(self) -> float:
        """Grid import − export + PV generation, kWh."""
        return (
            self.flow("grid_import_kwh")
            - self.flow("grid_export_kwh")
            + self.flow("pv_generation_kwh")
        )

    @property
    def fuels_tce(self) -> float:
        """The fuels' standard coal equivalent, t."""
        return float(sum(v[1] for v in self.fuels.values()))

    @property
    def total_tce(self) -> float:
        """Electricity and fuels, tce."""
        return self.consumption_kwh * ELECTRICITY_TCE_PER_KWH + self.fuels_tce

    @property
    def clean_tce(self) -> float:
        """PV self-consumed and green power deducted (and clean carriers), tce."""
        clean_fuels = sum(v[1] for (c, _), v in self.fuels.items() if CARRIERS[c].clean)
        green = self.flow("pv_self_consumed_kwh") + self.green_deducted_kwh
        return green * ELECTRICITY_TCE_PER_KWH + float(clean_fuels)

    @property
    def total_co2_t(self) -> float:
        """Electricity and fuels, tCO2."""
        return self.electricity_co2_t + float(sum(v[2] for v in self.fuels.values()))

    @property
    def coverage(self) -> float:
        """The share of the period's hours the basis has data for, 0..1."""
        if self.slot_hours <= 0:
            return 0.0
        return min(1.0, max(0.0, self.flow("covered_h") / self.slot_hours))


def account(
    energy: NDArray[np.float64],
    entries: MonthEntries | None,
    share: float,
    factor: ElectricityFactor,
    hours: float,
    *,
    prorated: bool,
    closed: bool,
    pending: bool = False,
) -> Figures:
    """One enterprise's figures over a period.

    Args:
        energy: ``(len(FLOWS),)`` its balance summed over the period.
        entries: its entries of the period's month (None: none entered).
        share: the part of the month's entries that falls in the period
            (its hours / the month's hours; 1 for the whole month).
        factor: the grid emission factor.
        hours: the period's length, h.
        prorated: whether ``share`` spreads the entries (the period is
            shorter than its month).
        closed: the period lies in a closed month.
        pending: closed, with entries changed since it was frozen.
    """
    trading = direct = 0.0
    fuels: dict[tuple[str, str], NDArray[np.float64]] = {}
    if entries is not None:
        for green in entries.green_power:
            if green.kind == "trading":
                trading += green.kwh * share
            else:
                direct += green.kwh * share
        for fuel in entries.fuels:
            unit = CARRIERS[fuel.carrier].units[fuel.unit]
            quantity = fuel.quantity * share
            line = np.array([quantity, quantity * unit.tce, quantity * unit.t_co2])
            key = (fuel.carrier, fuel.unit)
            fuels[key] = fuels[key] + line if key in fuels else line
    grid_import = float(energy[_INDEX["grid_import_kwh"]])
    deducted = min(trading + direct, max(grid_import, 0.0))
    return Figures(
        slot_hours=hours,
        energy=np.asarray(energy, dtype=np.float64).copy(),
        green_trading_kwh=trading,
        green_direct_kwh=direct,
        green_deducted_kwh=deducted,
        fuels=fuels,
        electricity_co2_t=max(grid_import - deducted, 0.0) * factor.kg_co2_per_kwh / 1000.0,
        factors=frozenset({factor.id}),
        closed=closed,
        pending=pending,
        prorated=prorated,
    )


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def to_row(
    figures: Figures,
    *,
    scope: str,
    name: str,
    period: str,
    start: datetime,
    end: datetime,
    basis: Basis | str,
) -> LedgerRow:
    """The `LedgerRow` of ``figures`` (several factors are named joined by ``+``)."""
    f = figures
    consumption = f.consumption_kwh
    electricity_tce = consumption * ELECTRICITY_TCE_PER_KWH
    total_tce = electricity_tce + f.fuels_tce
    clean_tce = f.clean_tce
    total_co2 = f.total_co2_t
    charge, discharge = f.flow("storage_charge_kwh"), f.flow("storage_discharge_kwh")
    green = f.flow("pv_self_consumed_kwh") + f.green_deducted_kwh
    return LedgerRow(
        scope=scope,
        name=name,
        period=period,
        start=start,
        end=end,
        basis=basis,  # type: ignore[arg-type]  # one of LedgerRow's literals
        coverage=f.coverage,
        closed=f.closed,
        pending_changes=f.pending,
        entries_prorated=f.prorated,
        electricity_factor="+".join(sorted(f.factors)),
        grid_import_kwh=f.flow("grid_import_kwh"),
        grid_export_kwh=f.flow("grid_export_kwh"),
        pv_generation_kwh=f.flow("pv_generation_kwh"),
        pv_self_consumed_kwh=f.flow("pv_self_consumed_kwh"),
        storage_charge_kwh=charge,
        storage_discharge_kwh=discharge,
        storage_loss_kwh=charge - discharge,
        ev_charge_kwh=f.flow("ev_charge_kwh"),
        v2g_discharge_kwh=f.flow("v2g_discharge_kwh"),
        consumption_kwh=consumption,
        green_trading_kwh=f.green_trading_kwh,
        green_direct_kwh=f.green_direct_kwh,
        green_deducted_kwh=f.green_deducted_kwh,
        fuels=[
            FuelLine(carrier=c, unit=u, quantity=float(v[0]), tce=float(v[1]), co2_t=float(v[2]))
            for (c, u), v in sorted(f.fuels.items())
        ],
        electricity_tce=electricity_tce,
        fuels_tce=f.fuels_tce,
        total_tce=total_tce,
        clean_tce=clean_tce,
        electricity_co2_t=f.electricity_co2_t,
        fuels_co2_t=total_co2 - f.electricity_co2_t,
        total_co2_t=total_co2,
        green_power_share=_ratio(green, consumption),
        clean_energy_share=_ratio(clean_tce, total_tce),
        carbon_intensity_t_per_tce=_ratio(total_co2, total_tce),
    )


def figures_of(row: LedgerRow, *, scopes: int = 1) -> Figures:
    """The additive figures of a stored row (a frozen month's), to sum it into a roll-up.

    Args:
        row: the row.
        scopes: how many enterprises it sums (coverage's denominator).
    """
    hours = (row.end - row.start).total_seconds() / 3600.0 * scopes
    energy = np.array(
        [row.coverage * hours if name == "covered_h" else getattr(row, name) for name in FLOWS],
        dtype=np.float64,
    )
    return Figures(
        slot_hours=hours,
        energy=energy,
        green_trading_kwh=row.green_trading_kwh,
        green_direct_kwh=row.green_direct_kwh,
        green_deducted_kwh=row.green_deducted_kwh,
        fuels={(f.carrier, f.unit): np.array([f.quantity, f.tce, f.co2_t]) for f in row.fuels},
        electricity_co2_t=row.electricity_co2_t,
        factors=frozenset(row.electricity_factor.split("+")),
        closed=row.closed,
        pending=row.pending_changes,
        prorated=row.entries_prorated,
    )


def factor_info(factor: ElectricityFactor) -> FactorInfo:
    """The `FactorInfo` of a table entry (or a provincial factor)."""
    return FactorInfo(
        id=factor.id,
        name=factor.name,
        kg_co2_per_kwh=factor.kg_co2_per_kwh,
        vintage=factor.vintage,
        source=factor.source,
        excludes_traded_green=factor.excludes_traded_green,
    )
