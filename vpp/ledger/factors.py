"""The ledger's coefficient tables: standard coal equivalents and emission factors.

One versioned table (`TABLE_VERSION`), each entry with its value, unit,
vintage and source, so every figure of the ledger can name what it used.

Electricity emission factors (kgCO2/kWh = tCO2/MWh), `ELECTRICITY_FACTORS`:
the Ministry of Ecology and Environment (MEE) and National Bureau of
Statistics (NBS) factors for 2023 — the national average, the Southern grid
region (Guangdong, Guangxi, Yunnan, Guizhou, Hainan; the default of our
parks), the national average excluding market-traded non-fossil power (the
one to use when an enterprise deducts the green power it bought, so that
power is not counted twice) and the national fossil-fired average. A park
chooses one (`vpp.model.CarbonSettings.electricity_factor`) or enters a
provincial factor with its own source (``"provincial"``).

Energy carriers, `CARRIERS`: each with the units it is entered in and per
unit its standard coal equivalent (tce) and its CO2 emission:

* tce coefficients are those of GB/T 2589-2020 *General principles for
  calculation of the comprehensive energy consumption*, Appendix A
  (electricity at its equivalent value 当量值, 0.1229 kgce/kWh; fuels at
  their average net calorific values); 1 kgce = 29,307.6 kJ.
* fuel emission factors are net calorific value × carbon content per unit of
  heat × oxidation rate × 44/12, with the default parameters of the NDRC
  *Guidelines for GHG accounting and reporting of other industrial
  enterprises (trial)* (工业其他行业企业温室气体排放核算方法与报告指南（试行）, 2015),
  Appendix 2, Table 2.1; purchased heat at its default 0.11 tCO2/GJ.

All numbers here are data, not code: a new vintage is a new entry (and a
new `TABLE_VERSION`), never an edited one, so a closed month keeps naming
the factor it was computed with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vpp.model import CarbonSettings

__all__ = [
    "CARRIERS",
    "DEFAULT_ELECTRICITY_FACTOR",
    "ELECTRICITY",
    "ELECTRICITY_FACTORS",
    "PROVINCIAL",
    "TABLE_VERSION",
    "Carrier",
    "ElectricityFactor",
    "UnitCoefficients",
    "electricity_factor_of",
]

#: The version of these tables; ledgers and closed months record it.
TABLE_VERSION = "2025-12"

#: The id a park chooses to use its own provincial factor (`vpp.model.ProvincialFactor`).
PROVINCIAL = "provincial"

_MEE_2023 = (
    "MEE & NBS announcement of the 2023 electricity CO2 emission factors "
    "(生态环境部 国家统计局 2023年电力二氧化碳排放因子)"
)


@dataclass(frozen=True, slots=True)
class ElectricityFactor:
    """A grid electricity emission factor.

    Attributes:
        id: its id in `ELECTRICITY_FACTORS` (or ``"provincial"``).
        name: what it covers.
        kg_co2_per_kwh: the factor, kgCO2/kWh (= tCO2/MWh).
        vintage: the year the factor is for.
        source: who published it, where.
        excludes_traded_green: True when the factor leaves market-traded
            non-fossil power out of the grid mix: deducting purchased green
            power from the grid import is consistent only with such a factor.
    """

    id: str
    name: str
    kg_co2_per_kwh: float
    vintage: str
    source: str
    excludes_traded_green: bool = False


ELECTRICITY_FACTORS: dict[str, ElectricityFactor] = {
    f.id: f
    for f in (
        ElectricityFactor("mee-2023-national", "national average", 0.5306, "2023", _MEE_2023),
        ElectricityFactor(
            "mee-2023-southern",
            "Southern grid region (Guangdong, Guangxi, Yunnan, Guizhou, Hainan)",
            0.4042,
            "2023",
            _MEE_2023,
        ),
        ElectricityFactor(
            "mee-2023-national-excl-traded-nonfossil",
            "national average excluding market-traded non-fossil power",
            0.6096,
            "2023",
            _MEE_2023,
            excludes_traded_green=True,
        ),
        ElectricityFactor(
            "mee-2023-national-fossil", "national fossil-fired power", 0.8273, "2023", _MEE_2023
        ),
    )
}

#: The factor of a park that chose none: Guangdong is in the Southern grid region.
DEFAULT_ELECTRICITY_FACTOR = "mee-2023-southern"


@dataclass(frozen=True, slots=True)
class UnitCoefficients:
    """One unit of a carrier.

    Attributes:
        tce: tonnes of standard coal equivalent per unit.
        t_co2: tonnes of CO2 per unit (0 for electricity, whose emission
            depends on the grid factor).
    """

    tce: float
    t_co2: float


@dataclass(frozen=True, slots=True)
class Carrier:
    """An energy carrier and the units it is entered in.

    Attributes:
        id: the carrier's id (``natural_gas``, ``diesel``, ...).
        name: its name.
        units: unit -> its coefficients.
        tce_source: the source of the tce coefficients.
        co2_source: the source of the emission factors (and their parameters).
        clean: whether its energy counts as clean for the clean-energy share.
    """

    id: str
    name: str
    units: dict[str, UnitCoefficients]
    tce_source: str
    co2_source: str
    clean: bool = False


_GBT_2589 = "GB/T 2589-2020 Appendix A"
_GUIDE = "NDRC GHG accounting guideline for other industrial enterprises (trial, 2015), Appendix 2"


def _co2(ncv_gj: float, tc_per_tj: float, oxidation: float) -> float:
    """tCO2 of a quantity holding ``ncv_gj`` GJ: NCV × carbon content × oxidation × 44/12."""
    return ncv_gj * tc_per_tj / 1000.0 * oxidation * 44.0 / 12.0


def _by_mass(
    kgce_per_kg: float, ncv_gj_per_t: float, tc_per_tj: float, oxidation: float
) -> dict[str, UnitCoefficients]:
    """A fuel entered by mass: per tonne (kgce/kg = tce/t) and per kilogram."""
    per_t = UnitCoefficients(tce=kgce_per_kg, t_co2=_co2(ncv_gj_per_t, tc_per_tj, oxidation))
    return {"t": per_t, "kg": UnitCoefficients(per_t.tce / 1000.0, per_t.t_co2 / 1000.0)}


#: Heat: 1 GJ = 1/29.3076 tce (the definition of the coal equivalent); 0.11 tCO2/GJ.
_HEAT_GJ = UnitCoefficients(tce=1.0 / 29.3076, t_co2=0.11)

#: Electricity, per kWh: 0.1229 kgce (equivalent value 当量值); its CO2 is the grid factor's.
ELECTRICITY = "electricity"

CARRIERS: dict[str, Carrier] = {
    c.id: c
    for c in (
        Carrier(
            ELECTRICITY,
            "electricity (equivalent value, 当量值)",
            {"kWh": UnitCoefficients(0.1229e-3, 0.0), "MWh": UnitCoefficients(0.1229, 0.0)},
            f"{_GBT_2589}: 0.1229 kgce/kWh",
            "the park's electricity emission factor (ELECTRICITY_FACTORS)",
        ),
        Carrier(
            "natural_gas",
            "natural gas",
            {
                # 38,931 kJ/m3 -> 1.3300 kgce/m3; 389.31 GJ per 10^4 Nm3,
                # 15.3 tC/TJ, oxidation 99 %.
                "m3": UnitCoefficients(1.3300e-3, _co2(38.931e-3, 15.3, 0.99)),
                "1e4m3": UnitCoefficients(13.300, _co2(389.31, 15.3, 0.99)),
            },
            f"{_GBT_2589}: 38,931 kJ/m3, 1.3300 kgce/m3",
            f"{_GUIDE}: 389.31 GJ/10^4 Nm3, 15.3 tC/TJ, oxidation 99 %",
        ),
        Carrier(
            "diesel",
            "diesel oil",
            _by_mass(1.4571, 42.652, 20.2, 0.98),
            f"{_GBT_2589}: 42,652 kJ/kg, 1.4571 kgce/kg",
            f"{_GUIDE}: 42.652 GJ/t, 20.2 tC/TJ, oxidation 98 %",
        ),
        Carrier(
            "gasoline",
            "gasoline",
            _by_mass(1.4714, 43.070, 18.9, 0.98),
            f"{_GBT_2589}: 43,070 kJ/kg, 1.4714 kgce/kg",
            f"{_GUIDE}: 43.070 GJ/t, 18.9 tC/TJ, oxidation 98 %",
        ),
        Carrier(
            "lpg",
            "liquefied petroleum gas",
            _by_mass(1.7143, 50.179, 17.2, 0.98),
            f"{_GBT_2589}: 50,179 kJ/kg, 1.7143 kgce/kg",
            f"{_GUIDE}: 50.179 GJ/t, 17.2 tC/TJ, oxidation 98 %",
        ),
        Carrier(
            "heat",
            "purchased heat",
            {
                "GJ": _HEAT_GJ,
                "MJ": UnitCoefficients(_HEAT_GJ.tce / 1000.0, _HEAT_GJ.t_co2 / 1000.0),
            },
            f"{_GBT_2589}: 0.03412 kgce/MJ (1 kgce = 29,307.6 kJ)",
            f"{_GUIDE}: purchased heat 0.11 tCO2/GJ",
        ),
        Carrier(
            "steam",
            "purchased steam",
            {
                # low-pressure steam: 3,763 MJ/t, 0.1286 kgce/kg; its heat at 0.11 tCO2/GJ
                "t": UnitCoefficients(0.1286, 3.763 * 0.11),
                "GJ": _HEAT_GJ,
            },
            f"{_GBT_2589}: low-pressure steam 3,763 MJ/t, 0.1286 kgce/kg",
            f"{_GUIDE}: purchased heat 0.11 tCO2/GJ (steam in t at 3.763 GJ/t)",
        ),
    )
}


def electricity_factor_of(carbon: CarbonSettings) -> ElectricityFactor:
    """The grid emission factor a park's carbon settings choose.

    Args:
        carbon: the park's `vpp.model.CarbonSettings`.

    Returns:
        The table's entry, or for ``"provincial"`` the operator's factor
        (its own value, vintage and source).
    """
    if carbon.electricity_factor == PROVINCIAL:
        own = carbon.provincial_factor
        if own is None:  # the model refuses it; kept for a hand-built settings object
            raise ValueError("provincial_factor: required when electricity_factor is 'provincial'")
        return ElectricityFactor(PROVINCIAL, own.name, own.kg_co2_per_kwh, own.vintage, own.source)
    return ELECTRICITY_FACTORS[carbon.electricity_factor]
