"""End to end: a malformed event is a 422 problem naming the field; nothing is stored.

Posted to the running service by the grid operator; the park keeps running
with no event and no setpoint.

Cross-field checks (``EventRequest._shape``) have no pydantic location of
their own; ``vpp.model.invalid_input`` takes the field they name.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.e2e.park_harness import RunningPark

pytestmark = pytest.mark.timeout(90)


def _good(start: str) -> dict[str, Any]:
    return {
        "id": "bad-1", "kind": "peak_shaving", "start": start,
        "target_kw": 100.0, "duration_minutes": 30,
    }  # fmt: skip


def field_cases(start: str) -> list[tuple[str, dict[str, Any]]]:
    """Bodies with one bad field each, checked field by field."""
    good = _good(start)
    missing_kind = {k: v for k, v in good.items() if k != "kind"}
    return [
        ("kind", missing_kind),
        ("kind", dict(good, kind="make_it_rain")),
        ("target_kw", dict(good, target_kw=-50.0)),
        ("target_kw", dict(good, target_kw="lots")),
        ("duration_minutes", dict(good, duration_minutes=0)),
        ("start", dict(good, start="tomorrow at noon")),
        ("id", dict(good, id="no spaces/allowed")),
        (
            "targets_kw",
            {
                **{k: v for k, v in good.items() if k != "target_kw"},
                "duration_minutes": None,
                "targets_kw": "ten",
            },
        ),
        ("surprise", dict(good, surprise=1)),
    ]


def cross_field_cases(start: str) -> list[tuple[str, dict[str, Any]]]:
    """Bodies that fail the request's cross-field checks."""
    good = _good(start)
    return [
        ("duration_minutes", dict(good, duration_minutes=20)),
        ("start", dict(good, start=start[:19])),  # no UTC offset
        ("targets_kw", dict(good, targets_kw=[10.0, 1.0])),  # both forms
    ]


async def _failures(
    park: RunningPark, cases: list[tuple[str, dict[str, Any]]]
) -> list[tuple[str, int, list[Any], Any]]:
    failures = []
    for field, body in cases:
        status, headers, problem = await park.grid.request("POST", "/events", json=body)
        named = [e.get("field") for e in problem.get("errors", [])] if status == 422 else []
        ok = (
            status == 422
            and headers["Content-Type"].startswith("application/problem+json")
            and field in named
        )
        if not ok:
            failures.append((field, status, named, problem.get("detail")))
    return failures


async def test_malformed_event_is_a_422_naming_the_field(running_park: RunningPark) -> None:
    park = running_park
    start = park.next_start() + timedelta(minutes=15)
    failures = await _failures(park, field_cases(start.isoformat()))
    assert not failures, "\n".join(map(str, failures))
    assert (await park.grid.call("GET", "/events", role="viewer"))["items"] == []
    assert not any(m.setpoint_kw for s in park.sim.batteries.values() for m in s.models.values())


async def test_cross_field_errors_name_the_field(running_park: RunningPark) -> None:
    park = running_park
    start = park.next_start() + timedelta(minutes=15)
    failures = await _failures(park, cross_field_cases(start.isoformat()))
    assert not failures, "\n".join(map(str, failures))
    assert (await park.grid.call("GET", "/events", role="viewer"))["items"] == []
