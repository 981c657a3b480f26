"""Schemathesis hooks for tests/vpp/api/test_schemathesis.py (loaded by the CLI via ``hooks``).

JSON Schema states types, ranges, patterns and shapes, which the OpenAPI
document carries in full; it cannot state a rule that relates two fields or
a field and the clock. The API documents those rules in the field
descriptions and refuses a body that breaks them with 422. So that the
``positive_data_acceptance`` check stays strict ("schema-valid input is
served"), these hooks bring each *positive* case's body inside exactly those
documented rules and nothing more; negative cases are never touched.

The rules, stated independently of the service's code:

* events and bids: the window must not have ended and may start at most
  366 days ahead (service clock);
* battery: soc_min < soc_max; EV charger: min_charge_kw <= max_charge_kw;
  flexible load: max_shed_kw <= baseline_kw;
* bid rules: price_floor <= price_cap;
* ``PUT /v1/parks/{park}``: a body ``id`` is the park in the path,
  ``timezone`` is a name of the IANA tz database, and the baseline's
  ``y`` is at least its ``x`` (high X of Y).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import available_timezones

import schemathesis
from schemathesis import Case
from schemathesis.generation import GenerationMode
from schemathesis.hooks import HookContext


def _positive(case: Case[Any]) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode is GenerationMode.POSITIVE


def _window(body: dict[str, Any]) -> None:
    start = body.get("start")
    try:
        when = datetime.fromisoformat(start) if isinstance(start, str) else None
    except ValueError:
        return
    if when is None or when.tzinfo is None:
        return
    now = datetime.now(UTC)
    # Generated starts run from year 1 to 9999: almost all fall outside the
    # window; an hour ahead is inside it for any duration.
    if when <= now or when - now > timedelta(days=300):
        body["start"] = (now + timedelta(hours=1)).isoformat()


def _asset(body: dict[str, Any]) -> None:
    kind = body.get("kind")
    if kind == "battery" and body.get("soc_min", 0.1) >= body.get("soc_max", 0.9):
        body["soc_min"], body["soc_max"] = 0.1, 0.9
    if kind == "ev_charger" and body.get("min_charge_kw", 0.0) > body.get("max_charge_kw", 0.0):
        body["min_charge_kw"] = body["max_charge_kw"]
    if kind == "flexible_load" and body.get("max_shed_kw", 0.0) > body.get("baseline_kw", 0.0):
        body["max_shed_kw"] = body["baseline_kw"]


def _bid(body: dict[str, Any]) -> None:
    _window(body)
    rules = body.get("rules")
    if isinstance(rules, dict) and rules.get("price_floor", 0.0) > rules.get("price_cap", 5.0):
        rules["price_floor"], rules["price_cap"] = 0.0, 5.0


@schemathesis.hook
def map_case(context: HookContext, case: Case[Any]) -> Case[Any]:
    """Bring a positive case's body inside the documented cross-field rules."""
    if not _positive(case) or not isinstance(case.body, dict):
        return case
    operation = case.operation.definition.raw.get("operationId")
    if operation == "createEvent":
        _window(case.body)
    elif operation == "createBid":
        _bid(case.body)
    elif operation == "enrollAsset":
        _asset(case.body)
    elif operation == "putPark":
        if case.body.get("id") is not None:
            case.body["id"] = case.path_parameters["park"]
        if "timezone" in case.body and case.body["timezone"] not in _ZONES:
            case.body["timezone"] = "Asia/Shanghai"
        baseline = case.body.get("baseline")
        if isinstance(baseline, dict):
            x, y = baseline.get("x", 5), baseline.get("y", 10)
            if isinstance(x, int | float) and isinstance(y, int | float) and x > y:
                baseline["x"], baseline["y"] = 5, 10
    return case


_ZONES = available_timezones()
