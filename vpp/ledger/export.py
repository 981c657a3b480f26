"""The ledger's exports: its rows as CSV, and the monthly report (CSV, printable HTML).

Pure functions of a `vpp.ledger.rows.Ledger` (and, for the report, the
month's entries), so the API, the CLI and a test render the same text.

* `ledger_csv`: one line per `LedgerRow`, flat columns a spreadsheet can
  sum: every field of the row in its order, the grid factor's value beside
  its id, and in place of the list of fuels one ``fuels`` text cell (the
  quantities as entered, ``natural_gas 1200 m3; diesel 2 t``) and a tce and
  a tCO2 column for every fuel carrier of the table (`FUEL_CARRIERS`; 0 where
  none was used), so the columns are the same for every park and period.
* `report_pages`: the monthly report, a page per enterprise and one for the
  park (`ReportPage`): the row of the month, the grid factor and every
  coefficient it used with its source, the fuel and green-power entries as
  entered (bill numbers, certificate ids), the park's indicators.
* `report_csv`: the report's figures one per line (scope, section, item,
  value, unit, source): what the HTML states, in a form a spreadsheet reads.
* `ledger_text`: a plain-text summary for a terminal (``vpp ledger``): per
  row its energy, tce, tCO2 and shares, then the park's indicators against
  their thresholds.
* `report_html`: the report as a printable HTML page for disclosure, each
  page of it on its own printed page (CSS ``break-after: page``); rendered by
  Jinja2 with autoescaping from ``templates/report.html``, so an enterprise's
  name or a note is text, never markup.

Energies in kWh, standard coal equivalent in tce, emissions in tCO2,
shares as fractions (the HTML shows per cent).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from vpp.ledger.entries import FuelEntry, GreenPowerEntry, MonthEntries
from vpp.ledger.factors import CARRIERS, ELECTRICITY
from vpp.ledger.rows import CarrierInfo, FactorInfo, Indicator, Ledger, LedgerRow

__all__ = [
    "CSV_MEDIA_TYPE",
    "FUEL_CARRIERS",
    "HTML_MEDIA_TYPE",
    "PARK_SCOPE",
    "MonthReport",
    "ReportPage",
    "ledger_columns",
    "ledger_csv",
    "ledger_text",
    "report_csv",
    "report_html",
    "report_pages",
]

CSV_MEDIA_TYPE = "text/csv"
HTML_MEDIA_TYPE = "text/html"
#: The scope of the park's own rows (`LedgerRow.scope`).
PARK_SCOPE = "park"
#: The carriers entered per month, in the table's order: each has a tce and a tCO2 column.
FUEL_CARRIERS: tuple[str, ...] = tuple(c for c in CARRIERS if c != ELECTRICITY)

_FACTOR_VALUE = "electricity_factor_kg_co2_per_kwh"
#: The unit the ledger counts electricity in (its energies are kWh).
_ELECTRICITY_UNIT = "kWh"
#: Text cells a spreadsheet would read as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def ledger_columns() -> list[str]:
    """The header of `ledger_csv`: the row's fields, ``fuels`` flattened (see the module)."""
    columns: list[str] = []
    for name in LedgerRow.model_fields:
        if name == "fuels":
            columns.append("fuels")
            for carrier in FUEL_CARRIERS:
                columns += [f"{carrier}_tce", f"{carrier}_co2_t"]
        else:
            columns.append(name)
            if name == "electricity_factor":
                columns.append(_FACTOR_VALUE)
    return columns


def _cell(value: Any) -> Any:
    """A CSV cell: empty for unknown (None), ``true``/``false``, times in ISO 8601.

    Text that a spreadsheet would take for a formula (``=``, ``+``, ``-``,
    ``@`` first) gets a leading apostrophe, as OWASP advises for CSV exports.
    """
    if type(value) is float:  # most cells: first, since a week of intervals is 1.6 M cells
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value  # a name or note is text, never a formula
    return value


def _fuels_text(row: LedgerRow) -> str:
    return "; ".join(f"{f.carrier} {f.quantity:g} {f.unit}" for f in row.fuels)


_NO_FUELS = [0.0] * (2 * len(FUEL_CARRIERS))


def _ledger_line(row: LedgerRow, factors: Mapping[str, FactorInfo]) -> list[Any]:
    line: list[Any] = []
    for name in LedgerRow.model_fields:
        if name == "fuels":
            line.append(_fuels_text(row))
            if not row.fuels:
                line += _NO_FUELS
            for carrier in FUEL_CARRIERS if row.fuels else ():
                used = [f for f in row.fuels if f.carrier == carrier]
                line += [sum((f.tce for f in used), 0.0), sum((f.co2_t for f in used), 0.0)]
        else:
            line.append(getattr(row, name))
            if name == "electricity_factor":
                factor = factors.get(row.electricity_factor)
                line.append("" if factor is None else factor.kg_co2_per_kwh)
    return line


def _csv_text(header: Sequence[str], lines: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in line] for line in lines)
    return out.getvalue()


def ledger_csv(ledger: Ledger) -> str:
    """The rows of a ledger as CSV text, one line per `LedgerRow` (columns: `ledger_columns`).

    An unknown value (a share over no consumption) is an empty cell; a grid
    factor's value comes from ``ledger.factors`` (empty if it is not listed).
    """
    factors = {f.id: f for f in ledger.factors}
    return _csv_text(ledger_columns(), (_ledger_line(row, factors) for row in ledger.rows))


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _met(met: bool | None) -> str:
    return "no data" if met is None else ("met" if met else "not met")


def aligned(table: Sequence[Sequence[str]], right: Callable[[int], bool]) -> list[str]:
    """The lines of a plain-text table: each column as wide as its widest cell.

    Args:
        table: rows of cells, every row as long as the first (the header).
        right: whether column ``i`` is right-aligned (numbers); the others are left-aligned.
    """
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return [
        "  ".join(
            c.rjust(w) if right(i) else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in table
    ]


def ledger_text(ledger: Ledger) -> str:
    """A plain-text summary of a ledger: a line per row, then the park's indicators.

    The header names every grid factor the rows used (`Ledger.factors`: a
    frozen month keeps the factor it was frozen with, whatever the park's is
    now). Per row: scope, period, basis and coverage, electricity consumption
    (kWh), total energy (tce), total emissions (tCO2), green-power share,
    clean-energy share, carbon per unit energy (tCO2/tce), and whether its
    month is closed. A share over no consumption is ``-``.
    """
    # the factors the rows used (a frozen month keeps its own), not only the park's now
    used = ledger.factors or [ledger.electricity_factor]
    named = ", ".join(f"{f.id} {f.kg_co2_per_kwh} kgCO2/kWh ({f.vintage})" for f in used)
    lines = [
        f"park {ledger.park}, {ledger.first} to {ledger.last} ({ledger.timezone}), by "
        f"{ledger.period}; grid factor{'s' if len(used) > 1 else ''} {named}; "
        f"coefficient table {ledger.table_version}"
    ]
    header = ("scope", "period", "basis", "coverage", "consumption kWh", "tce", "tCO2",
              "green", "clean", "tCO2/tce", "state")  # fmt: skip
    table = [header]
    for row in ledger.rows:
        intensity = row.carbon_intensity_t_per_tce
        state = ("closed, recompute" if row.pending_changes else "closed") if row.closed else "open"
        table.append((row.scope, row.period, row.basis, f"{row.coverage * 100:.0f} %",
                      f"{row.consumption_kwh:,.1f}", f"{row.total_tce:,.4f}",
                      f"{row.total_co2_t:,.3f}", _share(row.green_power_share),
                      _share(row.clean_energy_share),
                      "-" if intensity is None else f"{intensity:.3f}", state))  # fmt: skip
    lines += aligned(table, lambda i: 3 <= i <= 9)  # numbers (coverage .. tCO2/tce) right
    for ind in ledger.indicators:
        intensity = ind.carbon_intensity_t_per_tce
        lines.append(
            f"{ind.window.replace('_', ' ')} to {ind.period} ({ind.size_class}): carbon per "
            f"unit energy {'-' if intensity is None else f'{intensity:.3f}'} tCO2/tce "
            f"(<= {ind.carbon_intensity_threshold}: {_met(ind.carbon_intensity_met)}); "
            f"clean-energy share {_share(ind.clean_energy_share)} "
            f"(>= {_share(ind.clean_energy_threshold)}: {_met(ind.clean_energy_met)})"
        )
    lines += [f"note: {note}" for note in ledger.notes]
    return "\n".join(lines) + "\n"


# -- the monthly report ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MonthReport:
    """What the monthly report is made of.

    Attributes:
        ledger: the ledger of the month at ``period="month"`` (one row per
            scope; a row of another month would be a page of its own).
        month: the month, ``YYYY-MM``.
        entries: enterprise -> its entries of the month that the figures
            used: a frozen month's as frozen (entries changed since are not
            listed; its rows say ``pending_changes``), else those entered.
        generated: when the report was made (shown on every page).
    """

    ledger: Ledger
    month: str
    entries: Mapping[str, MonthEntries]
    generated: datetime


@dataclass(frozen=True, slots=True)
class ReportPage:
    """One page of the monthly report: an enterprise's month, or the park's.

    Attributes:
        row: the ledger row of the month.
        factor: the grid emission factor the row used (None when the ledger
            does not list it, which the page says).
        carriers: every coefficient the row used, with its sources:
            electricity's per kWh and each fuel's in the unit it was entered in.
        fuels: the fuel entries as entered, (enterprise, entry).
        green_power: the green-power entries as entered, (enterprise, entry).
        indicators: the park's zero-carbon indicators (the park's page only).
    """

    row: LedgerRow
    factor: FactorInfo | None
    carriers: list[CarrierInfo]
    fuels: list[tuple[str, FuelEntry]] = field(default_factory=list)
    green_power: list[tuple[str, GreenPowerEntry]] = field(default_factory=list)
    indicators: list[Indicator] = field(default_factory=list)

    @property
    def is_park(self) -> bool:
        """Whether this is the park's page (it lists every enterprise's entries)."""
        return self.row.scope == PARK_SCOPE


def report_pages(report: MonthReport) -> list[ReportPage]:
    """The pages of the report: one per row of its ledger, in the ledger's order.

    An enterprise's page carries its own entries; the park's carries every
    enterprise's and the park's indicators of the month and the rolling year.
    """
    ledger = report.ledger
    factors = {f.id: f for f in ledger.factors}
    pages: list[ReportPage] = []
    for row in ledger.rows:
        park = row.scope == PARK_SCOPE
        owners = sorted(report.entries) if park else [row.scope]
        held = [(o, report.entries[o]) for o in owners if o in report.entries]
        used = {(ELECTRICITY, _ELECTRICITY_UNIT)} | {(f.carrier, f.unit) for f in row.fuels}
        carriers = [c for c in ledger.carriers if (c.carrier, c.unit) in used]
        pages.append(
            ReportPage(
                row=row,
                factor=factors.get(row.electricity_factor),
                carriers=carriers,
                fuels=[(o, f) for o, e in held for f in e.fuels],
                green_power=[(o, g) for o, e in held for g in e.green_power],
                indicators=list(ledger.indicators) if park else [],
            )
        )
    return pages


#: The energy figures of a row, in the report's order: (field, label).
ENERGY_LINES: tuple[tuple[str, str], ...] = (
    ("grid_import_kwh", "grid import"),
    ("grid_export_kwh", "grid export"),
    ("pv_generation_kwh", "on-site PV generation"),
    ("pv_self_consumed_kwh", "PV self-consumed"),
    ("storage_charge_kwh", "storage charge"),
    ("storage_discharge_kwh", "storage discharge"),
    ("storage_loss_kwh", "storage losses (charge - discharge)"),
    ("ev_charge_kwh", "EV charging"),
    ("v2g_discharge_kwh", "V2G discharge"),
    ("consumption_kwh", "electricity consumption"),
    ("green_trading_kwh", "green power bought: trading (绿电交易)"),
    ("green_direct_kwh", "green power bought: direct supply (直连)"),
    ("green_deducted_kwh", "green power deducted from the grid import"),
)
#: The totals of a row: (field, label, unit).
TOTAL_LINES: tuple[tuple[str, str, str], ...] = (
    ("electricity_tce", "electricity", "tce"),
    ("fuels_tce", "fuels", "tce"),
    ("total_tce", "total energy", "tce"),
    ("clean_tce", "clean energy", "tce"),
    ("electricity_co2_t", "electricity", "tCO2"),
    ("fuels_co2_t", "fuels", "tCO2"),
    ("total_co2_t", "total emissions", "tCO2"),
)
#: The shares and the intensity of a row: (field, label, unit).
SHARE_LINES: tuple[tuple[str, str, str], ...] = (
    ("green_power_share", "green-power share of electricity", "fraction"),
    ("clean_energy_share", "clean-energy share of energy", "fraction"),
    ("carbon_intensity_t_per_tce", "carbon per unit energy", "tCO2/tce"),
)


def _report_lines(report: MonthReport, page: ReportPage) -> Iterable[list[Any]]:
    """The figures of one page as (section, item, value, unit, source) lines."""
    row, factor = page.row, page.factor
    yield ["status", "month", report.month, "", ""]
    yield ["status", "table_version", report.ledger.table_version, "", ""]
    yield ["status", "basis", row.basis, "", ""]
    yield ["status", "coverage", row.coverage, "fraction", "share of the month's hours with data"]
    yield ["status", "closed", row.closed, "", ""]
    yield ["status", "pending_changes", row.pending_changes, "", ""]
    for name, _ in ENERGY_LINES:
        yield ["energy", name, getattr(row, name), "kWh", ""]
    for line in row.fuels:
        yield ["fuel", f"{line.carrier} quantity", line.quantity, line.unit, ""]
        yield ["fuel", f"{line.carrier} tce", line.tce, "tce", ""]
        yield ["fuel", f"{line.carrier} co2_t", line.co2_t, "tCO2", ""]
    grid_source = "" if factor is None else factor.source
    for name, _, unit in TOTAL_LINES:
        source = grid_source if name == "electricity_co2_t" else ""
        yield ["totals", name, getattr(row, name), unit, source]
    for name, _, unit in SHARE_LINES:
        yield ["shares", name, getattr(row, name), unit, ""]
    for ind in page.indicators:
        w, size = ind.window, f"size class {ind.size_class}; {ind.source}"
        yield ["indicator", f"{w} energy_tce", ind.energy_tce, "tce", ""]
        yield ["indicator", f"{w} carbon_intensity", ind.carbon_intensity_t_per_tce, "tCO2/tce", ""]
        yield ["indicator", f"{w} carbon_intensity_threshold", ind.carbon_intensity_threshold,
               "tCO2/tce", size]  # fmt: skip
        yield ["indicator", f"{w} clean_energy_share", ind.clean_energy_share, "fraction", ""]
        yield ["indicator", f"{w} clean_energy_threshold", ind.clean_energy_threshold,
               "fraction", ind.source]  # fmt: skip
    for owner, fuel in page.fuels:
        yield ["fuel_entry", f"{owner}: {fuel.carrier}", fuel.quantity, fuel.unit, fuel.note]
    for owner, green in page.green_power:
        said = "; ".join(
            filter(None, ["certificates: " + " ".join(green.certificates), green.note])
        )
        yield ["green_power_entry", f"{owner}: {green.kind}", green.kwh, "kWh", said]
    if factor is not None:
        what = f"electricity {factor.id} ({factor.name}, {factor.vintage})"
        yield ["factor", what, factor.kg_co2_per_kwh, "kgCO2/kWh", factor.source]
    else:
        yield ["factor", f"electricity {row.electricity_factor}", "", "kgCO2/kWh", "not listed"]
    for c in page.carriers:
        yield ["coefficient", f"{c.carrier} tce", c.tce_per_unit, f"tce/{c.unit}", c.tce_source]
        if c.carrier != ELECTRICITY:  # electricity's CO2 is the grid factor's, above
            co2_unit = f"tCO2/{c.unit}"
            yield ["coefficient", f"{c.carrier} co2", c.t_co2_per_unit, co2_unit, c.co2_source]
    for note in report.ledger.notes:
        yield ["note", "", note, "", ""]


def report_csv(report: MonthReport) -> str:
    """The report as CSV: ``scope,name,section,item,value,unit,source``, page after page.

    Sections: ``status`` (month, table version, basis, coverage, closed),
    ``energy`` (kWh), ``fuel`` (each fuel of the row: quantity, tce, tCO2),
    ``totals``, ``shares``, ``indicator`` (the park's page), ``fuel_entry``
    and ``green_power_entry`` (as entered; certificate ids and the note in
    ``source``), ``factor`` (the grid factor), ``coefficient`` (every
    coefficient used) and ``note``.
    """
    header = ["scope", "name", "section", "item", "value", "unit", "source"]
    lines = (
        [page.row.scope, page.row.name, *line]
        for page in report_pages(report)
        for line in _report_lines(report, page)
    )
    return _csv_text(header, lines)


def _number(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def _coefficient(value: float) -> str:
    return f"{value:.6g}"


@cache
def _environment() -> Environment:
    """The Jinja2 environment of the report: package templates, autoescaped, strict."""
    env = Environment(
        loader=PackageLoader("vpp.ledger", "templates"),
        autoescape=True,  # every value is text: a name with markup prints as written
        undefined=StrictUndefined,  # a misspelt field fails the render, never prints blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(number=_number, percent=_percent, coefficient=_coefficient)
    return env


def report_html(report: MonthReport) -> str:
    """The report as one printable HTML document, a printed page per `ReportPage`.

    Each page states the enterprise (or the park), the month, the basis and
    coverage of the data, whether the month is closed, its energy balance,
    tce and tCO2, its shares, the entries as entered (fuel bills, green-power
    certificates), the grid factor and every coefficient used with its
    source, the table version and the ledger's notes.
    """
    template = _environment().get_template("report.html")
    return template.render(
        report=report,
        ledger=report.ledger,
        pages=report_pages(report),
        energy_lines=ENERGY_LINES,
        total_lines=TOTAL_LINES,
        share_lines=SHARE_LINES,
    )
