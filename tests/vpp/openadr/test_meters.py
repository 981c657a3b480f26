"""The VEN's park power sums the park's devices, never a meter that measures them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.vpp.openadr.helpers import BESS_1, LOAD_1, enroll_live
from vpp.clock import Clock
from vpp.events import EventStore
from vpp.model import LiveState
from vpp.openadr.bridge import OpenAdrBridge
from vpp.state import State

PARK = "oadr-metered"

#: The revenue meter of the load's enterprise: the load and 400 kW more (unenrolled).
METER: dict[str, Any] = {
    "kind": "meter", "id": "meter-b", "owner": "B", "grid_node": "n1",
    "account_no": "0301-000-1", "revenue": True, "multiplier": 200,
    "connection": {"protocol": "mqtt", "topic_prefix": f"vpp/{PARK}/meter-b"},
}  # fmt: skip


async def test_park_power_leaves_meters_out(state: State) -> None:
    live = [
        (BESS_1, LiveState(power_kw=-100.0, soc=0.6)),
        (LOAD_1, LiveState(power_kw=1000.0)),
        (METER, LiveState(power_kw=1400.0)),
    ]
    await enroll_live(state, PARK, live, ttl_s=60)
    bridge = OpenAdrBridge(park=PARK, state=state, events=EventStore(state), clock=Clock())
    # the battery's -100 kW and the load's 1000 kW; the meter's 1400 kW counts them again
    assert await bridge.park_power_kw() == pytest.approx(900.0)
