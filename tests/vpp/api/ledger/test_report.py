"""The monthly ledger report over HTTP: printable HTML (escaped, every factor and source), CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest

from tests.vpp.api.ledger.conftest import CLOSED_MONTH, TODAY
from tests.vpp.api.ledger.support import EVIL
from tests.vpp.conftest import ApiClient
from tests.vpp.samples import PARK
from vpp.ledger.factors import CARRIERS, ELECTRICITY_FACTORS, TABLE_VERSION

URL = f"/v1/parks/{PARK}/ledger/report"
SOUTHERN = ELECTRICITY_FACTORS["mee-2023-southern"]
ENTRIES: dict[str, Any] = {
    "fuels": [{"carrier": "diesel", "quantity": 2, "unit": "t", "note": "bill <DS-9>"}],
    "green_power": [{"kind": "trading", "kwh": 1500, "certificates": ["GEC-77", "GEC-78"]}],
}

pytestmark = pytest.mark.usefixtures("history")


@pytest.fixture
async def entered(client: ApiClient, operator: dict[str, str], history: object) -> None:
    url = f"/v1/parks/{PARK}/ledger/entries/{CLOSED_MONTH}/electronics"
    assert (await client.put(url, json=ENTRIES, headers=operator)).status == 200


async def _get(client: ApiClient, headers: dict[str, str], **params: str) -> tuple[str, str]:
    resp = await client.get(URL, params={"month": CLOSED_MONTH, **params}, headers=headers)
    assert resp.status == 200, await resp.text()
    return resp.content_type, await resp.text()


@pytest.mark.usefixtures("entered")
async def test_the_html_report_states_factors_sources_entries_and_escapes_names(
    client: ApiClient, viewer: dict[str, str]
) -> None:
    media, html = await _get(client, viewer)
    assert media == "text/html"
    # every enterprise and the park, each on its own printed page
    assert html.count('<section class="page">') >= 3
    assert "page-break-after: always" in html
    assert f"version {TABLE_VERSION}" in html
    assert "0.4042" in html and SOUTHERN.source.replace("&", "&amp;") in html
    diesel = CARRIERS["diesel"]
    assert diesel.tce_source in html and diesel.co2_source in html
    assert "GEC-77, GEC-78" in html
    # the enterprise's name is markup-free text; so is a note
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "bill &lt;DS-9&gt;" in html


@pytest.mark.usefixtures("entered")
async def test_one_enterprises_report_is_its_own_page(
    client: ApiClient, viewer: dict[str, str]
) -> None:
    _, html = await _get(client, viewer, enterprise="electronics")
    assert html.count('<section class="page">') == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "GEC-77" in html
    assert "Guangzhou Precision Castings" not in html


@pytest.mark.usefixtures("entered")
async def test_the_csv_report_is_a_figure_per_line_with_its_source(
    client: ApiClient, viewer: dict[str, str]
) -> None:
    media, text = await _get(client, viewer, format="csv", enterprise="electronics")
    assert media == "text/csv"
    lines = list(csv.DictReader(io.StringIO(text)))
    assert {line["scope"] for line in lines} == {"electronics"}
    assert lines[0]["name"] == EVIL
    by_item = {(line["section"], line["item"]): line for line in lines}
    factor = next(v for (s, _), v in by_item.items() if s == "factor")
    assert (factor["value"], factor["source"]) == ("0.4042", SOUTHERN.source)
    green = by_item[("green_power_entry", "electronics: trading")]
    assert green["value"] == "1500.0" and "GEC-77 GEC-78" in green["source"]
    assert by_item[("coefficient", "diesel co2")]["source"] == CARRIERS["diesel"].co2_source


async def test_by_default_the_report_is_of_the_last_complete_month(
    client: ApiClient, viewer: dict[str, str]
) -> None:
    resp = await client.get(URL, headers=viewer)
    assert resp.status == 200
    last = TODAY.replace(day=1) - timedelta(days=1)
    assert f"<h1>Energy-carbon ledger, {last:%Y-%m}: " in await resp.text()


async def test_an_unknown_enterprise_is_404(client: ApiClient, viewer: dict[str, str]) -> None:
    params = {"month": CLOSED_MONTH, "enterprise": "nobody"}
    resp = await client.get(URL, params=params, headers=viewer)
    assert resp.status == 404


async def test_a_bad_month_is_422(client: ApiClient, viewer: dict[str, str]) -> None:
    resp = await client.get(URL, params={"month": "2026-13"}, headers=viewer)
    assert resp.status == 422
    assert [e["field"] for e in (await resp.json())["errors"]] == ["month"]


@pytest.mark.usefixtures("entered")
async def test_a_frozen_months_report_lists_the_entries_its_figures_used(
    client: ApiClient, viewer: dict[str, str], operator: dict[str, str]
) -> None:
    _, html = await _get(client, viewer)  # freezes the closed month with 2 t of diesel
    url = f"/v1/parks/{PARK}/ledger/entries/{CLOSED_MONTH}/electronics"
    changed = {"fuels": [{"carrier": "diesel", "quantity": 7, "unit": "t", "note": "bill DS-10"}]}
    assert (await client.put(url, json=changed, headers=operator)).status == 200

    _, text = await _get(client, viewer, format="csv", enterprise="electronics")
    by_item = {(line["section"], line["item"]): line for line in csv.DictReader(io.StringIO(text))}
    fuels = [v for (s, _), v in by_item.items() if s == "fuel_entry"]
    assert [f["value"] for f in fuels] == ["2.0"]  # as frozen, not today's 7 t
    assert ("green_power_entry", "electronics: trading") in by_item
    _, html = await _get(client, viewer, enterprise="electronics")
    assert "bill &lt;DS-9&gt;" in html and "DS-10" not in html
    assert "changed since it was frozen" in html
