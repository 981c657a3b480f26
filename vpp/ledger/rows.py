"""The shapes of a ledger as the API returns it (JSON; CSV flattens `LedgerRow`).

Energies in kWh, standard coal equivalent in tce (tonnes), emissions in
tCO2, shares as fractions 0..1. Every row names the electricity emission
factor it used; the `Ledger` lists every factor and coefficient it used with
its source, so a printed ledger can be checked by hand.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from vpp.ledger.factors import ElectricityFactor

__all__ = [
    "CarrierInfo",
    "FactorInfo",
    "FuelLine",
    "Indicator",
    "Ledger",
    "LedgerPeriod",
    "LedgerRow",
]

#: The roll-ups of the ledger: 15-minute intervals, park-local days, months, years.
LedgerPeriod: TypeAlias = Literal["interval", "day", "month", "year"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class FactorInfo(_Out):
    """A grid emission factor as used (`vpp.ledger.factors.ElectricityFactor`)."""

    id: str
    name: str
    kg_co2_per_kwh: float = Field(description="kgCO2/kWh (= tCO2/MWh)")
    vintage: str
    source: str
    excludes_traded_green: bool

    @classmethod
    def of(cls, factor: ElectricityFactor) -> FactorInfo:
        """The shape of a table entry (or of a provincial factor)."""
        return cls(
            id=factor.id,
            name=factor.name,
            kg_co2_per_kwh=factor.kg_co2_per_kwh,
            vintage=factor.vintage,
            source=factor.source,
            excludes_traded_green=factor.excludes_traded_green,
        )


class CarrierInfo(_Out):
    """One carrier's coefficients per unit and their sources (`vpp.ledger.factors.Carrier`)."""

    carrier: str
    name: str
    unit: str
    tce_per_unit: float
    t_co2_per_unit: float = Field(description="0 for electricity: its CO2 is the grid factor's")
    tce_source: str
    co2_source: str


class FuelLine(_Out):
    """A fuel of a row: the quantity entered (prorated for periods shorter than its month)."""

    carrier: str
    unit: str
    quantity: float
    tce: float
    co2_t: float


class LedgerRow(_Out):
    """One enterprise's (or the park's) energy, carbon and shares over one period.

    ``consumption_kwh`` is the electricity used behind the meter: grid import
    − export + on-site PV generation (storage losses and EV charging are in
    it). ``pv_self_consumed_kwh`` is, per interval, the PV generation less the
    export. Purchased green power is deducted from the grid import up to the
    import (``green_deducted_kwh``). Shares and the intensity are null when
    their denominator is 0.
    """

    scope: str = Field(description="the enterprise id, or 'park'")
    name: str
    period: str = Field(description="YYYY, YYYY-MM, YYYY-MM-DD, or the interval's start")
    start: datetime
    end: datetime
    basis: Literal["revenue_meter", "devices", "park"] = Field(
        description="the grid exchange from the revenue meter, or from the enrolled devices only"
    )
    coverage: float = Field(ge=0, le=1, description="share of the period's hours with data")
    closed: bool = Field(description="in a closed month: frozen figures")
    pending_changes: bool = Field(description="closed, with entries changed since: recompute")
    entries_prorated: bool = Field(description="monthly entries spread by hours over the period")
    electricity_factor: str = Field(description="id of the grid emission factor used")
    grid_import_kwh: float
    grid_export_kwh: float
    pv_generation_kwh: float
    pv_self_consumed_kwh: float
    storage_charge_kwh: float
    storage_discharge_kwh: float
    storage_loss_kwh: float = Field(description="charge − discharge (losses and stored change)")
    ev_charge_kwh: float
    v2g_discharge_kwh: float
    consumption_kwh: float
    green_trading_kwh: float
    green_direct_kwh: float
    green_deducted_kwh: float
    fuels: list[FuelLine]
    electricity_tce: float
    fuels_tce: float
    total_tce: float
    clean_tce: float
    electricity_co2_t: float
    fuels_co2_t: float
    total_co2_t: float
    green_power_share: float | None
    clean_energy_share: float | None
    carbon_intensity_t_per_tce: float | None


class Indicator(_Out):
    """The park's zero-carbon indicators over a month or the rolling year to it.

    Thresholds from the national zero-carbon park notice (2025): carbon per
    unit energy ≤ 0.2 tCO2/tce for parks of 0.2-1 Mtce a year and ≤ 0.3
    above; clean-energy share ≥ 90 %.
    """

    window: Literal["month", "rolling_year"]
    period: str = Field(description="the month, YYYY-MM (the rolling year ends with it)")
    start: datetime
    end: datetime
    months: int = Field(description="months with data in the window")
    energy_tce: float
    annual_tce: float = Field(description="the window's energy scaled to a year")
    size_class: str
    carbon_intensity_t_per_tce: float | None
    carbon_intensity_threshold: float
    carbon_intensity_met: bool | None
    clean_energy_share: float | None
    clean_energy_threshold: float
    clean_energy_met: bool | None
    source: str


class Ledger(_Out):
    """The ledger of a park over ``first``..``last`` (park-local days, inclusive)."""

    park: str
    period: LedgerPeriod
    first: date
    last: date
    timezone: str
    table_version: str
    electricity_factor: FactorInfo = Field(description="the park's factor now")
    factors: list[FactorInfo] = Field(description="every grid factor a row used")
    carriers: list[CarrierInfo] = Field(description="every coefficient, with its source")
    rows: list[LedgerRow] = Field(description="per enterprise, then the park, by period")
    indicators: list[Indicator] = Field(description="the park's, per month and rolling year")
    notes: list[str]
