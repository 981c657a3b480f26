"""What /openapi.json says of the ledger routes is what they do: patterns, media types, roles."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from tests.vpp.conftest import ApiClient
from tests.vpp.samples import PARK

ENTRY = "/v1/parks/{park}/ledger/entries/{month}/{enterprise}"
BODY: dict[str, list[Any]] = {"fuels": [], "green_power": []}


@pytest.fixture
async def doc(client: ApiClient) -> dict[str, Any]:
    result: dict[str, Any] = await (await client.get("/openapi.json")).json()
    return result


def _param(doc: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    (param,) = [p for p in doc["paths"][path][method]["parameters"] if p["name"] == name]
    schema: dict[str, Any] = param["schema"]
    return schema


@pytest.mark.usefixtures("enrolled")
@pytest.mark.parametrize(
    ("month", "enterprise", "status"),
    [
        ("2026-03", "castings", 200),
        ("2026-3", "castings", 422),
        ("2000-01", "castings", 200),
        ("1999-12", "castings", 422),
        ("2026-03", "Pearl River Electronics Co.", 422),  # valid, but not an enterprise
    ],
)
async def test_path_values_the_document_allows_are_served_and_others_refused(
    client: ApiClient,
    operator: dict[str, str],
    doc: dict[str, Any],
    month: str,
    enterprise: str,
    status: int,
) -> None:
    month_ok = jsonschema.Draft202012Validator(_param(doc, ENTRY, "put", "month")).is_valid(month)
    enterprise_schema = _param(doc, ENTRY, "put", "enterprise")
    assert jsonschema.Draft202012Validator(enterprise_schema).is_valid(enterprise)
    url = ENTRY.format(park=PARK, month=month, enterprise=enterprise.replace(" ", "%20"))
    resp = await client.put(url, json=BODY, headers=operator)
    assert resp.status == status, await resp.text()
    fields = [] if status == 200 else [e["field"] for e in (await resp.json())["errors"]]
    assert ("month" not in fields) == month_ok


async def test_the_ledger_and_report_document_their_text_forms_and_roles(
    doc: dict[str, Any],
) -> None:
    ledger = doc["paths"]["/v1/parks/{park}/ledger"]["get"]
    assert set(ledger["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert ledger["description"] == "Roles: admin, grid_operator, park_operator, viewer"
    report = doc["paths"]["/v1/parks/{park}/ledger/report"]["get"]
    assert set(report["responses"]["200"]["content"]) == {"text/html", "text/csv"}
    put = doc["paths"][ENTRY]["put"]
    assert put["description"] == "Roles: park_operator"
    assert put["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MonthEntries"
    }
    recompute = doc["paths"]["/v1/parks/{park}/ledger/months/{month}/recompute"]["post"]
    assert "409" in recompute["responses"]
    span = _param(doc, "/v1/parks/{park}/ledger", "get", "from")
    valid = jsonschema.Draft202012Validator(span).is_valid
    assert [valid(v) for v in ("2026", "2026-03", "2024-02-29", "2025-02-29", "2026-3")] == [
        True,
        True,
        True,
        False,
        False,
    ]
