"""A hand-built ledger of one month for the export tests (no book, no Redis).

Two enterprises and the park, 2026-03 in Asia/Shanghai: enterprise ``castings``
(a revenue meter, gas and green power) and ``<script>alert(1)</script>`` as
the name of enterprise ``electronics`` (enrolled devices only), and the park.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from vpp.ledger.entries import MonthEntries
from vpp.ledger.factors import CARRIERS, ELECTRICITY_FACTORS
from vpp.ledger.rows import CarrierInfo, FactorInfo, FuelLine, Indicator, Ledger, LedgerRow

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 1, tzinfo=SHANGHAI)
END = datetime(2026, 4, 1, tzinfo=SHANGHAI)
EVIL = "<script>alert(1)</script>"
SOUTHERN = ELECTRICITY_FACTORS["mee-2023-southern"]


def factor_info() -> FactorInfo:
    f = SOUTHERN
    return FactorInfo(id=f.id, name=f.name, kg_co2_per_kwh=f.kg_co2_per_kwh, vintage=f.vintage,
                      source=f.source, excludes_traded_green=f.excludes_traded_green)  # fmt: skip


def carrier_infos() -> list[CarrierInfo]:
    return [
        CarrierInfo(carrier=c.id, name=c.name, unit=unit, tce_per_unit=k.tce,
                    t_co2_per_unit=k.t_co2, tce_source=c.tce_source, co2_source=c.co2_source)
        for c in CARRIERS.values()
        for unit, k in c.units.items()
    ]  # fmt: skip


def row(scope: str, name: str, **over: Any) -> LedgerRow:
    values: dict[str, Any] = {
        "scope": scope, "name": name, "period": "2026-03", "start": START, "end": END,
        "basis": "revenue_meter", "coverage": 1.0, "closed": True, "pending_changes": False,
        "entries_prorated": False, "electricity_factor": SOUTHERN.id,
        "grid_import_kwh": 10000.0, "grid_export_kwh": 0.0, "pv_generation_kwh": 0.0,
        "pv_self_consumed_kwh": 0.0, "storage_charge_kwh": 0.0, "storage_discharge_kwh": 0.0,
        "storage_loss_kwh": 0.0, "ev_charge_kwh": 0.0, "v2g_discharge_kwh": 0.0,
        "consumption_kwh": 10000.0, "green_trading_kwh": 0.0, "green_direct_kwh": 0.0,
        "green_deducted_kwh": 0.0, "fuels": [], "electricity_tce": 1.229, "fuels_tce": 0.0,
        "total_tce": 1.229, "clean_tce": 0.0, "electricity_co2_t": 4.042, "fuels_co2_t": 0.0,
        "total_co2_t": 4.042, "green_power_share": 0.0, "clean_energy_share": 0.0,
        "carbon_intensity_t_per_tce": 4.042 / 1.229,
    }  # fmt: skip
    values.update(over)
    return LedgerRow(**values)


GAS = FuelLine(carrier="natural_gas", unit="m3", quantity=1000.0, tce=1.33, co2_t=2.162)

ROWS = [
    row("castings", "Guangzhou Precision Castings", fuels=[GAS], fuels_tce=1.33,
        fuels_co2_t=2.162, total_tce=2.559, total_co2_t=6.204, green_trading_kwh=2000.0,
        green_deducted_kwh=2000.0, green_power_share=0.2),
    row("electronics", EVIL, basis="devices", coverage=0.5, grid_import_kwh=500.0,
        consumption_kwh=700.0, pv_generation_kwh=200.0, pv_self_consumed_kwh=200.0,
        green_power_share=None, clean_energy_share=None, carbon_intensity_t_per_tce=None),
    row("park", "park", basis="park", fuels=[GAS]),
]  # fmt: skip

INDICATORS = [
    Indicator(window="month", period="2026-03", start=START, end=END, months=1, energy_tce=2.6,
              annual_tce=31.2, size_class="under 0.2 Mtce a year", carbon_intensity_t_per_tce=2.4,
              carbon_intensity_threshold=0.2, carbon_intensity_met=False,
              clean_energy_share=0.1, clean_energy_threshold=0.9, clean_energy_met=False,
              source="national zero-carbon park notice (2025)"),
]  # fmt: skip


def ledger(**over: Any) -> Ledger:
    values: dict[str, Any] = {
        "park": "p1", "period": "month", "first": date(2026, 3, 1), "last": date(2026, 3, 31),
        "timezone": "Asia/Shanghai", "table_version": "2025-12",
        "electricity_factor": factor_info(), "factors": [factor_info()],
        "carriers": carrier_infos(), "rows": ROWS, "indicators": INDICATORS,
        "notes": ["electronics: no revenue meter; its enrolled devices only & <b>partial</b>"],
    }  # fmt: skip
    values.update(over)
    return Ledger(**values)


ENTRIES = {
    "castings": MonthEntries.model_validate(
        {
            "fuels": [
                {
                    "carrier": "natural_gas",
                    "quantity": 1000,
                    "unit": "m3",
                    "note": "bill GZ-2026-03-117",
                }
            ],
            "green_power": [
                {
                    "kind": "trading",
                    "kwh": 2000,
                    "certificates": ["GEC-001", "GEC-002"],
                    "note": "Guangdong green-power trading, March",
                }
            ],
        }
    ),
}
