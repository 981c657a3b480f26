"""A ledger row's figures: energy, the month's entries, tce, tCO2 and the shares.

`account` turns the energy balance of one enterprise over one period
(`vpp.ledger.balance`, summed over the period's slots) and the enterprise's
entries of that month (`vpp.ledger.entries`) into additive `Figures`;
`Figures` add up (the park = Σ enterprises, a year = Σ months); `to_rows`
derives the rest of each `vpp.ledger.rows.LedgerRow` from them. Figures are
arrays over periods, so the days or the 15-minute intervals of a month are
accounted in one go.

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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    "factor_of",
    "figures_of",
    "to_rows",
]

#: tce per kWh of electricity (equivalent value, GB/T 2589-2020): 0.1229 kgce/kWh.
ELECTRICITY_TCE_PER_KWH = CARRIERS[ELECTRICITY].units["kWh"].tce

_INDEX = {name: i for i, name in enumerate(FLOWS)}


def _zeros(n: int) -> NDArray[np.float64]:
    return np.zeros(n, dtype=np.float64)


@dataclass(slots=True)
class Figures:
    """The additive figures of a scope over ``N`` periods; rows are summed by adding these.

    Every array is over the periods (shape ``(N,)``, the energy ``(len(FLOWS), N)``),
    so a month's days or intervals are accounted at once.

    Attributes:
        slot_hours: each period's hours × the scopes added (coverage's denominator).
        energy: the balance summed over each period (kWh; hours for ``covered_h``).
        green_trading_kwh: green power bought through trading, prorated.
        green_direct_kwh: green power from direct supply, prorated.
        green_deducted_kwh: green power deducted from the grid import.
        fuels: (carrier, unit) -> ``(3, N)``: quantity, tce, tCO2.
        electricity_co2_t: CO2 of the grid import less the green power, t.
        factors: ids of the grid factors used.
        closed: every part lies in a closed month.
        pending: some part is a closed month whose entries changed since.
        prorated: some part's entries were spread by hours.
    """

    slot_hours: NDArray[np.float64]
    energy: NDArray[np.float64]
    green_trading_kwh: NDArray[np.float64]
    green_direct_kwh: NDArray[np.float64]
    green_deducted_kwh: NDArray[np.float64]
    fuels: dict[tuple[str, str], NDArray[np.float64]]
    electricity_co2_t: NDArray[np.float64]
    factors: frozenset[str] = frozenset()
    closed: bool = True
    pending: bool = False
    prorated: bool = False

    @classmethod
    def zero(cls, n: int = 1, *, closed: bool = True, pending: bool = False) -> Figures:
        """Nothing over ``n`` periods of no hours (the start of a sum)."""
        return cls(
            slot_hours=_zeros(n),
            energy=np.zeros((len(FLOWS), n)),
            green_trading_kwh=_zeros(n),
            green_direct_kwh=_zeros(n),
            green_deducted_kwh=_zeros(n),
            fuels={},
            electricity_co2_t=_zeros(n),
            closed=closed,
            pending=pending,
        )

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

    def flow(self, name: str) -> NDArray[np.float64]:
        """One quantity of `vpp.ledger.balance.FLOWS`, per period."""
        row: NDArray[np.float64] = self.energy[_INDEX[name]]
        return row

    @property
    def consumption_kwh(self) -> NDArray[np.float64]:
        """Grid import − export + PV generation, kWh."""
        return (
            self.flow("grid_import_kwh")
            - self.flow("grid_export_kwh")
            + self.flow("pv_generation_kwh")
        )

    def _fuels_sum(self, column: int, *, clean: bool = False) -> NDArray[np.float64]:
        total = np.zeros_like(self.slot_hours)
        for (carrier, _), values in self.fuels.items():
            if not clean or CARRIERS[carrier].clean:
                total = total + values[column]
        return total

    @property
    def fuels_tce(self) -> NDArray[np.float64]:
        """The fuels' standard coal equivalent, t."""
        return self._fuels_sum(1)

    @property
    def total_tce(self) -> NDArray[np.float64]:
        """Electricity and fuels, tce."""
        return self.consumption_kwh * ELECTRICITY_TCE_PER_KWH + self.fuels_tce

    @property
    def clean_tce(self) -> NDArray[np.float64]:
        """PV self-consumed and green power deducted (and clean carriers), tce."""
        green = self.flow("pv_self_consumed_kwh") + self.green_deducted_kwh
        return green * ELECTRICITY_TCE_PER_KWH + self._fuels_sum(1, clean=True)

    @property
    def total_co2_t(self) -> NDArray[np.float64]:
        """Electricity and fuels, tCO2."""
        return self.electricity_co2_t + self._fuels_sum(2)

    @property
    def coverage(self) -> NDArray[np.float64]:
        """The share of each period's hours the basis has data for, 0..1."""
        hours = self.slot_hours
        share = np.divide(self.flow("covered_h"), hours, out=np.zeros_like(hours), where=hours > 0)
        np.clip(share, 0.0, 1.0, out=share)
        return share

    def total(self) -> Figures:
        """The sum over the periods: one period."""
        return Figures(
            slot_hours=self.slot_hours.sum(keepdims=True),
            energy=self.energy.sum(axis=1, keepdims=True),
            green_trading_kwh=self.green_trading_kwh.sum(keepdims=True),
            green_direct_kwh=self.green_direct_kwh.sum(keepdims=True),
            green_deducted_kwh=self.green_deducted_kwh.sum(keepdims=True),
            fuels={k: v.sum(axis=1, keepdims=True) for k, v in self.fuels.items()},
            electricity_co2_t=self.electricity_co2_t.sum(keepdims=True),
            factors=self.factors,
            closed=self.closed,
            pending=self.pending,
            prorated=self.prorated,
        )


def account(
    energy: NDArray[np.float64],
    entries: MonthEntries | None,
    share: NDArray[np.float64],
    factor: ElectricityFactor,
    hours: NDArray[np.float64],
    *,
    prorated: bool,
    closed: bool,
    pending: bool = False,
) -> Figures:
    """One enterprise's figures over ``N`` periods of one month.

    Args:
        energy: ``(len(FLOWS), N)`` its balance summed over each period.
        entries: its entries of the month (None: none entered).
        share: ``(N,)`` the part of the month's entries that falls in each
            period (its hours / the month's hours; 1 for the whole month).
        factor: the grid emission factor.
        hours: ``(N,)`` each period's length, h.
        prorated: whether ``share`` spreads the entries (periods shorter
            than their month).
        closed: the periods lie in a closed month.
        pending: closed, with entries changed since it was frozen.
    """
    trading = direct = 0.0
    quantities: dict[tuple[str, str], float] = {}
    if entries is not None:
        for green in entries.green_power:
            if green.kind == "trading":
                trading += green.kwh
            else:
                direct += green.kwh
        for fuel in entries.fuels:
            key = (fuel.carrier, fuel.unit)
            quantities[key] = quantities.get(key, 0.0) + fuel.quantity
    fuels: dict[tuple[str, str], NDArray[np.float64]] = {}
    for (carrier, unit), quantity in quantities.items():
        coefficients = CARRIERS[carrier].units[unit]
        q = quantity * share
        fuels[(carrier, unit)] = np.stack([q, q * coefficients.tce, q * coefficients.t_co2])
    grid_import = energy[_INDEX["grid_import_kwh"]]
    green_trading, green_direct = trading * share, direct * share
    deducted = np.minimum(green_trading + green_direct, np.maximum(grid_import, 0.0))
    return Figures(
        slot_hours=np.asarray(hours, dtype=np.float64),
        energy=np.asarray(energy, dtype=np.float64),
        green_trading_kwh=green_trading,
        green_direct_kwh=green_direct,
        green_deducted_kwh=deducted,
        fuels=fuels,
        electricity_co2_t=np.maximum(grid_import - deducted, 0.0)
        * (factor.kg_co2_per_kwh / 1000.0),
        factors=frozenset({factor.id}),
        closed=closed,
        pending=pending,
        prorated=prorated,
    )


def _ratio(numerator: NDArray[np.float64], denominator: NDArray[np.float64]) -> list[float | None]:
    return [
        n / d if d > 0 else None
        for n, d in zip(numerator.tolist(), denominator.tolist(), strict=True)
    ]


def to_rows(
    figures: Figures,
    *,
    scope: str,
    name: str,
    periods: Sequence[str],
    starts: Sequence[datetime],
    ends: Sequence[datetime],
    basis: Basis | str,
) -> list[LedgerRow]:
    """The `LedgerRow` of each period of ``figures`` (several factors are named joined by ``+``)."""
    f = figures
    consumption = f.consumption_kwh
    electricity_tce = consumption * ELECTRICITY_TCE_PER_KWH
    fuels_tce = f.fuels_tce
    total_tce = electricity_tce + fuels_tce
    clean_tce = f.clean_tce
    total_co2 = f.total_co2_t
    charge, discharge = f.flow("storage_charge_kwh"), f.flow("storage_discharge_kwh")
    green = f.flow("pv_self_consumed_kwh") + f.green_deducted_kwh
    columns: dict[str, list[Any]] = {
        **{name: f.flow(name).tolist() for name in FLOWS if name != "covered_h"},
        "coverage": f.coverage.tolist(),
        "storage_loss_kwh": (charge - discharge).tolist(),
        "consumption_kwh": consumption.tolist(),
        "green_trading_kwh": f.green_trading_kwh.tolist(),
        "green_direct_kwh": f.green_direct_kwh.tolist(),
        "green_deducted_kwh": f.green_deducted_kwh.tolist(),
        "electricity_tce": electricity_tce.tolist(),
        "fuels_tce": fuels_tce.tolist(),
        "total_tce": total_tce.tolist(),
        "clean_tce": clean_tce.tolist(),
        "electricity_co2_t": f.electricity_co2_t.tolist(),
        "fuels_co2_t": (total_co2 - f.electricity_co2_t).tolist(),
        "total_co2_t": total_co2.tolist(),
        "green_power_share": _ratio(green, consumption),
        "clean_energy_share": _ratio(clean_tce, total_tce),
        "carbon_intensity_t_per_tce": _ratio(total_co2, total_tce),
    }
    fuels = [(c, u, v.T.tolist()) for (c, u), v in sorted(f.fuels.items())]
    common: dict[str, Any] = {
        "scope": scope,
        "name": name,
        "basis": basis,
        "closed": f.closed,
        "pending_changes": f.pending,
        "entries_prorated": f.prorated,
        "electricity_factor": "+".join(sorted(f.factors)),
    }
    names = list(columns)
    return [
        LedgerRow(
            **common,
            period=period,
            start=start,
            end=end,
            fuels=[
                FuelLine(carrier=c, unit=u, quantity=v[i][0], tce=v[i][1], co2_t=v[i][2])
                for c, u, v in fuels
            ],
            **dict(zip(names, values, strict=True)),
        )
        for i, (period, start, end, values) in enumerate(
            zip(periods, starts, ends, zip(*columns.values(), strict=True), strict=True)
        )
    ]


def figures_of(row: LedgerRow, *, scopes: int = 1) -> Figures:
    """The additive figures of a stored row (a frozen month's), to sum it into a roll-up.

    Args:
        row: the row.
        scopes: how many enterprises it sums (coverage's denominator).
    """
    hours = (row.end - row.start).total_seconds() / 3600.0 * scopes
    energy = [row.coverage * hours if name == "covered_h" else getattr(row, name) for name in FLOWS]
    return Figures(
        slot_hours=np.array([hours]),
        energy=np.array(energy, dtype=np.float64)[:, None],
        green_trading_kwh=np.array([row.green_trading_kwh]),
        green_direct_kwh=np.array([row.green_direct_kwh]),
        green_deducted_kwh=np.array([row.green_deducted_kwh]),
        fuels={
            (f.carrier, f.unit): np.array([[f.quantity], [f.tce], [f.co2_t]]) for f in row.fuels
        },
        electricity_co2_t=np.array([row.electricity_co2_t]),
        factors=frozenset(row.electricity_factor.split("+")),
        closed=row.closed,
        pending=row.pending_changes,
        prorated=row.entries_prorated,
    )


def factor_of(info: FactorInfo) -> ElectricityFactor:
    """The factor a `FactorInfo` names, as it was used (a frozen month's)."""
    return ElectricityFactor(
        info.id,
        info.name,
        info.kg_co2_per_kwh,
        info.vintage,
        info.source,
        info.excludes_traded_green,
    )
