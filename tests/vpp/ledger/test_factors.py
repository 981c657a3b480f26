"""The coefficient tables: every entry has its value, unit, vintage and source."""

from __future__ import annotations

from typing import get_args

import pytest

from vpp.ledger.carbon import ELECTRICITY_TCE_PER_KWH
from vpp.ledger.entries import FuelCarrier
from vpp.ledger.factors import (
    CARRIERS,
    DEFAULT_ELECTRICITY_FACTOR,
    ELECTRICITY,
    ELECTRICITY_FACTORS,
    PROVINCIAL,
    TABLE_VERSION,
)
from vpp.model import CarbonSettings, ElectricityFactorId


def test_the_factor_ids_a_park_can_choose_are_the_tables() -> None:
    assert set(get_args(ElectricityFactorId)) == {*ELECTRICITY_FACTORS, PROVINCIAL}
    assert CarbonSettings().electricity_factor == DEFAULT_ELECTRICITY_FACTOR == "mee-2023-southern"
    assert TABLE_VERSION


@pytest.mark.parametrize("factor_id", sorted(ELECTRICITY_FACTORS))
def test_each_grid_factor_has_value_unit_vintage_and_source(factor_id: str) -> None:
    factor = ELECTRICITY_FACTORS[factor_id]
    assert factor.id == factor_id and factor.name
    # the unit is the field's: kgCO2/kWh (= tCO2/MWh); Chinese grid factors lie in 0.3-1
    assert 0.3 < factor.kg_co2_per_kwh < 1.0
    assert factor.vintage.isdigit() and "MEE" in factor.source


def test_the_published_2023_values() -> None:
    values = {f: ELECTRICITY_FACTORS[f].kg_co2_per_kwh for f in ELECTRICITY_FACTORS}
    assert values == {
        "mee-2023-national": 0.5306,
        "mee-2023-southern": 0.4042,
        "mee-2023-national-excl-traded-nonfossil": 0.6096,
        "mee-2023-national-fossil": 0.8273,
    }
    assert [f for f in ELECTRICITY_FACTORS if ELECTRICITY_FACTORS[f].excludes_traded_green] == [
        "mee-2023-national-excl-traded-nonfossil"
    ]


@pytest.mark.parametrize(
    ("carrier", "unit"), [(c, u) for c in sorted(CARRIERS) for u in sorted(CARRIERS[c].units)]
)
def test_each_carrier_unit_has_its_coefficients_and_sources(carrier: str, unit: str) -> None:
    entry = CARRIERS[carrier]
    coefficients = entry.units[unit]
    assert unit and entry.name
    assert coefficients.tce > 0
    assert coefficients.t_co2 == 0 if carrier == ELECTRICITY else coefficients.t_co2 > 0
    assert "GB/T 2589-2020" in entry.tce_source
    assert entry.co2_source


def test_every_fuel_an_entry_names_has_a_carrier() -> None:
    assert set(get_args(FuelCarrier)) == set(CARRIERS) - {ELECTRICITY}


def test_units_of_one_carrier_agree() -> None:
    """The same quantity in two units gives the same tce and CO2."""
    gas, diesel = CARRIERS["natural_gas"].units, CARRIERS["diesel"].units
    assert gas["1e4m3"].tce == pytest.approx(1e4 * gas["m3"].tce)
    assert gas["1e4m3"].t_co2 == pytest.approx(1e4 * gas["m3"].t_co2)
    assert diesel["t"].tce == pytest.approx(1000 * diesel["kg"].tce) == pytest.approx(1.4571)
    mwh, kwh = CARRIERS[ELECTRICITY].units["MWh"], CARRIERS[ELECTRICITY].units["kWh"]
    assert mwh.tce == pytest.approx(1000 * kwh.tce) and kwh.tce == ELECTRICITY_TCE_PER_KWH
    assert pytest.approx(0.1229e-3) == ELECTRICITY_TCE_PER_KWH
