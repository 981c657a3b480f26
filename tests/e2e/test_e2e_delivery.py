"""End to end: an event inside the bid is delivered within 5 % in every interval.

The grid operator sizes the event from the park's own flat-capacity bid for
the window (70 % of what the park says it can hold), posts it over REST, and
the service runs it on the simulated devices over Modbus, MQTT and OCPP.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.e2e.park_harness import SCALE, RunningPark, interval_table

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

TOLERANCE = 0.05
#: the states of an event that ran to its end
RAN_TO_COMPLETION = ["received", "scheduled", "active", "completed"]


def assert_delivered(record: dict[str, object], intervals: range) -> None:
    """Every interval in ``intervals`` delivered within `TOLERANCE` of its target."""
    targets = record["target_kw"]
    delivered = record["delivered_kw"]
    assert isinstance(targets, list) and isinstance(delivered, list)
    for k in intervals:
        assert delivered[k] is not None, f"interval {k} not measured\n{interval_table(record)}"
        miss = abs(delivered[k] - targets[k]) / abs(targets[k])
        assert miss <= TOLERANCE, f"interval {k} off by {miss:.1%}\n{interval_table(record)}"


async def test_event_within_the_bid_is_delivered_in_every_interval(
    running_park: RunningPark,
) -> None:
    park = running_park
    body = await park.peak_event(intervals=3)
    created = await park.grid.call("POST", "/events", json=body)
    assert created["event"]["state"] == "received"
    start = datetime.fromisoformat(body["start"])
    real_s = (start - park.clock.now()).total_seconds() / SCALE + 3 * 15 * 60 / SCALE
    record = await park.wait_state(
        body["id"], "completed", "failed", "cancelled", within_s=real_s + 20
    )
    print("\n" + interval_table(record))
    assert record["state"] == "completed", record
    assert [s["state"] for s in record["history"]] == RAN_TO_COMPLETION
    assert_delivered(record, range(3))
    report = await park.grid.call("GET", f"/events/{body['id']}/report", role="viewer")
    assert report["performance"] == pytest.approx(1.0, abs=TOLERANCE)
