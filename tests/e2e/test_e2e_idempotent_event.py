"""End to end: an event posted twice is one event, delivered once.

The grid operator's retry (the same id and content) is answered with the
stored event and ``Idempotent-Replay: true``; the park runs one event,
releases its devices once, and delivers it within 5 %. The same id with other
content is a conflict.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.e2e.park_harness import SCALE, RunningPark, interval_table
from tests.e2e.test_e2e_delivery import RAN_TO_COMPLETION, assert_delivered

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


async def test_event_posted_twice_is_one_event_and_one_delivery(
    running_park: RunningPark,
) -> None:
    park = running_park
    body = await park.peak_event(intervals=2)
    first_status, first_headers, first = await park.grid.request("POST", "/events", json=body)
    second_status, second_headers, second = await park.grid.request("POST", "/events", json=body)
    assert first_status == 202 and "Idempotent-Replay" not in first_headers
    assert second_status == 202, second
    assert second_headers.get("Idempotent-Replay") == "true"
    assert second_headers["Location"] == first_headers["Location"]
    assert second["event"]["id"] == first["event"]["id"]
    assert second["event"]["created"] == first["event"]["created"]

    other = dict(body, target_kw=round(body["target_kw"] / 2, 1))
    status, _, problem = await park.grid.request("POST", "/events", json=other)
    assert status == 409, problem

    start = datetime.fromisoformat(body["start"])
    # a retry while the event runs is still the same event
    await park.sleep_until(start)
    status, headers, during = await park.grid.request("POST", "/events", json=body)
    assert status == 202 and headers.get("Idempotent-Replay") == "true"
    assert during["event"]["state"] == "active", during

    record = await park.wait_state(
        body["id"], "completed", "failed", "cancelled", within_s=2 * 15 * 60 / SCALE + 15
    )
    print("\n" + interval_table(record))
    listed = (await park.grid.call("GET", "/events", role="viewer"))["items"]
    assert [e["id"] for e in listed] == [body["id"]]
    assert [s["state"] for s in record["history"]] == RAN_TO_COMPLETION
    assert_delivered(record, range(2))
    activations = [r for r in park.control_log if "active with" in r.getMessage()]
    releases = [r for r in park.control_log if "released" in r.getMessage()]
    assert len(activations) == 1, [r.getMessage() for r in activations]
    assert len(releases) == 1, [r.getMessage() for r in releases]
    assert body["id"] in releases[0].getMessage()
