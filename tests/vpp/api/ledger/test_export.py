"""The ledger's CSV and the monthly report (CSV, HTML) of a hand-built ledger.

Pure functions: no book, no Redis. The ledger is `support.ledger()`: two
enterprises (one named ``<script>alert(1)</script>``) and the park in 2026-03.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from html.parser import HTMLParser

from tests.vpp.api.ledger.support import ENTRIES, EVIL, GAS, SOUTHERN, factor_info, ledger, row
from vpp.ledger.export import (
    FUEL_CARRIERS,
    MonthReport,
    ledger_columns,
    ledger_csv,
    ledger_text,
    report_csv,
    report_html,
    report_pages,
)
from vpp.ledger.factors import CARRIERS, ELECTRICITY_FACTORS, TABLE_VERSION
from vpp.ledger.rows import FactorInfo, FuelLine, LedgerRow

MADE = datetime(2026, 4, 6, 2, 0, tzinfo=UTC)


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _report(**over: object) -> MonthReport:
    return MonthReport(ledger=ledger(**over), month="2026-03", entries=ENTRIES, generated=MADE)


def test_ledger_csv_has_a_line_per_row_and_every_field_but_fuels_as_a_column() -> None:
    text = ledger_csv(ledger())
    lines = _rows(text)
    assert [r["scope"] for r in lines] == ["castings", "electronics", "park"]
    header = text.splitlines()[0].split(",")
    assert header == ledger_columns()
    plain = [name for name in LedgerRow.model_fields if name != "fuels"]
    assert set(plain) <= set(header)
    # fixed columns: a tce and a tCO2 column for every fuel carrier of the table
    assert len(FUEL_CARRIERS) == len(CARRIERS) - 1
    for carrier in FUEL_CARRIERS:
        assert f"{carrier}_tce" in header and f"{carrier}_co2_t" in header


def test_ledger_csv_values_are_the_rows_values() -> None:
    castings, electronics, park = _rows(ledger_csv(ledger()))
    assert castings["grid_import_kwh"] == "10000.0"
    assert castings["electricity_factor"] == SOUTHERN.id
    assert castings["electricity_factor_kg_co2_per_kwh"] == "0.4042"
    assert castings["fuels"] == "natural_gas 1000 m3"
    assert (castings["natural_gas_tce"], castings["natural_gas_co2_t"]) == ("1.33", "2.162")
    assert (castings["diesel_tce"], castings["diesel_co2_t"]) == ("0.0", "0.0")
    assert (castings["closed"], castings["pending_changes"]) == ("true", "false")
    assert castings["start"] == "2026-03-01T00:00:00+08:00"
    # unknown shares are empty cells, never 0
    assert electronics["green_power_share"] == electronics["carbon_intensity_t_per_tce"] == ""
    assert electronics["name"] == EVIL  # CSV is text: the name as written
    assert park["basis"] == "park"


def test_two_lines_of_one_carrier_add_up_in_its_columns() -> None:
    more = FuelLine(carrier="natural_gas", unit="1e4m3", quantity=0.5, tce=6.65, co2_t=10.81)
    (line,) = _rows(ledger_csv(ledger(rows=[row("castings", "C", fuels=[GAS, more])])))
    assert float(line["natural_gas_tce"]) == 1.33 + 6.65
    assert float(line["natural_gas_co2_t"]) == 2.162 + 10.81
    assert line["fuels"] == "natural_gas 1000 m3; natural_gas 0.5 1e4m3"


def test_a_name_a_spreadsheet_would_run_as_a_formula_is_quoted() -> None:
    (line,) = _rows(ledger_csv(ledger(rows=[row("x", "=HYPERLINK(1)")])))
    assert line["name"] == "'=HYPERLINK(1)"


def test_report_pages_carry_each_enterprises_own_entries_and_the_parks_all() -> None:
    castings, electronics, park = report_pages(_report())
    assert [f.note for _, f in castings.fuels] == ["bill GZ-2026-03-117"]
    assert [g.certificates for _, g in castings.green_power] == [["GEC-001", "GEC-002"]]
    assert (electronics.fuels, electronics.green_power) == ([], [])
    assert [o for o, _ in park.green_power] == ["castings"]
    assert park.indicators and not castings.indicators
    # the coefficients each row used: electricity per kWh, and gas per m3 where gas was used
    assert [(c.carrier, c.unit) for c in castings.carriers] == [
        ("electricity", "kWh"),
        ("natural_gas", "m3"),
    ]
    assert [(c.carrier, c.unit) for c in electronics.carriers] == [("electricity", "kWh")]
    assert castings.factor is not None and castings.factor.kg_co2_per_kwh == 0.4042


def test_report_csv_states_figures_factors_sources_and_certificates() -> None:
    lines = _rows(report_csv(_report()))
    castings = [r for r in lines if r["scope"] == "castings"]

    def one(section: str, item: str) -> dict[str, str]:
        (found,) = [r for r in castings if r["section"] == section and r["item"] == item]
        return found

    assert one("status", "table_version")["value"] == "2025-12"
    assert one("status", "basis")["value"] == "revenue_meter"
    assert one("energy", "grid_import_kwh")["value"] == "10000.0"
    factor = one("factor", f"electricity {SOUTHERN.id} ({SOUTHERN.name}, 2023)")
    assert (factor["value"], factor["unit"], factor["source"]) == (
        "0.4042",
        "kgCO2/kWh",
        SOUTHERN.source,
    )
    gas = one("coefficient", "natural_gas co2")
    assert gas["unit"] == "tCO2/m3" and gas["source"] == CARRIERS["natural_gas"].co2_source
    assert one("coefficient", "electricity tce")["value"] == "0.0001229"
    green = one("green_power_entry", "castings: trading")
    assert green["source"] == "certificates: GEC-001 GEC-002; Guangdong green-power trading, March"
    park = [r for r in lines if r["scope"] == "park" and r["section"] == "indicator"]
    assert {r["item"] for r in park} >= {"month carbon_intensity", "month clean_energy_threshold"}


class _Text(HTMLParser):
    """The text of an HTML document and the names of its elements."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parsed(html: str) -> _Text:
    parser = _Text()
    parser.feed(html)
    return parser


def test_report_html_is_a_printed_page_per_enterprise_and_the_park() -> None:
    html = report_html(_report())
    assert html.count('<section class="page">') == 3
    assert "break-after: page" in html and "page-break-after: always" in html


def test_report_html_states_every_factor_and_coefficient_with_its_source() -> None:
    html = report_html(_report())
    text = " ".join(_parsed(html).text)
    assert f"version {TABLE_VERSION}" in text
    assert "0.4042" in text and SOUTHERN.source in text and SOUTHERN.vintage in text
    gas = CARRIERS["natural_gas"]
    assert gas.tce_source in text and gas.co2_source in text
    assert CARRIERS["electricity"].tce_source in text
    assert "GEC-001, GEC-002" in text and "bill GZ-2026-03-117" in text
    assert "grid exchange from the enterprise's revenue meter" in text
    assert "grid exchange from its enrolled devices only" in text  # electronics' basis
    assert "50.0 % of the month's hours have data" in text  # its coverage
    assert "national zero-carbon park notice (2025)" in text  # the indicators' source


def test_report_html_escapes_names_and_notes() -> None:
    html = report_html(_report())
    assert "<script>" not in html and "<b>partial</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    parsed = _parsed(html)
    assert "script" not in parsed.tags and "b" not in parsed.tags
    assert EVIL in " ".join(parsed.text)  # shown as text, as written


def test_report_html_says_when_a_month_is_open_or_has_pending_changes() -> None:
    rows = [row("castings", "C", closed=False), row("park", "park", pending_changes=True)]
    text = " ".join(_parsed(report_html(_report(rows=rows))).text)
    assert "open: provisional figures" in text
    assert "entries or metering data changed since it was frozen (not listed here)" in text


def test_report_html_of_a_factor_the_ledger_does_not_list_says_so() -> None:
    html = report_html(_report(rows=[row("castings", "C", electricity_factor="provincial")]))
    assert re.search(r"provincial</td>.*not listed in the ledger", html, re.DOTALL)


def test_the_text_summary_names_the_factors_the_rows_used_not_the_parks_now() -> None:
    national = ELECTRICITY_FACTORS["mee-2023-national"]
    now = FactorInfo.of(national)
    # a month frozen with the Southern factor, read after the park chose the national one
    first = ledger_text(ledger(electricity_factor=now)).splitlines()[0]
    assert "grid factor mee-2023-southern 0.4042 kgCO2/kWh (2023);" in first
    assert national.id not in first
    both = ledger_text(ledger(electricity_factor=now, factors=[factor_info(), now]))
    assert "grid factors mee-2023-southern 0.4042 kgCO2/kWh (2023), mee-2023-national" in both


def test_the_text_summary_has_a_line_per_row_then_the_indicators() -> None:
    lines = ledger_text(ledger()).splitlines()
    assert lines[0].startswith("park p1, 2026-03-01 to 2026-03-31 (Asia/Shanghai), by month;")
    assert "mee-2023-southern 0.4042 kgCO2/kWh (2023)" in lines[0]
    castings = "castings 2026-03 revenue_meter 100 % 10,000.0 2.5590 6.204 20.0 % 0.0 % 3.289"
    assert lines[2].split() == [*castings.split(), "closed"]
    # unknown shares and intensity print as "-", never 0
    assert lines[3].split()[-4:] == ["-", "-", "-", "closed"]
    assert lines[5] == (
        "month to 2026-03 (under 0.2 Mtce a year): carbon per unit energy 2.400 tCO2/tce "
        "(<= 0.2: not met); clean-energy share 10.0 % (>= 90.0 %: not met)"
    )
    assert lines[6].startswith("note: electronics: no revenue meter")
