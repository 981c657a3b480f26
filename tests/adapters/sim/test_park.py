"""A whole simulated park in one process, read through the three adapters.

100 devices and the adapters share this test's event loop. At 1,000 devices
(400 batteries on 8 Modbus gateways, 300 OCPP chargers, 300 MQTT loads) the
run is proven by ``python -m tests.benchmarks.adapters --only rtt``, which runs the park
in a device process of its own; 1,000 devices plus adapters in one loop did
not finish within the test's timeout (see the report).
"""

from __future__ import annotations

import asyncio
import contextlib
import tomllib

import pytest

from adapters.ocpp.csms import PATH_PREFIX
from adapters.sim.park import generate_park, park_spec, run_park
from tests.benchmarks.support import free_ports
from tests.support import DEMO_PARK
from tests.support.sim_park import park_adapters, setpoint_round, wait_for_park

pytestmark = pytest.mark.timeout(90)


async def test_generated_park_reports_through_all_three_adapters(
    mqtt_addr: tuple[str, int], topic_prefix: str
) -> None:
    host, port = mqtt_addr
    spec = generate_park(
        park_id="simpark", batteries=40, chargers=30, loads=30, modbus_ports=free_ports(2)
    )  # fmt: skip
    park = park_adapters(
        spec, mqtt_host=host, mqtt_port=port, mqtt_root=topic_prefix, csms_port=0, poll_s=0.5
    )
    async with park.running():
        started = asyncio.Event()
        devices = asyncio.create_task(run_park(
            spec, mqtt_host=host, mqtt_port=port, mqtt_root=topic_prefix,
            csms_url=f"ws://127.0.0.1:{park.ocpp.port}{PATH_PREFIX}", loads_per_gateway=10,
            period_s=0.5, started=started,
        ))  # fmt: skip
        try:
            ready = asyncio.create_task(started.wait())
            await asyncio.wait((ready, devices), timeout=20, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if devices.done():
                devices.result()  # the park failed to start: raise its error
            assert started.is_set(), "park did not start within 20 s"
            await wait_for_park(park, spec, 45)
            result = await setpoint_round(park, concurrency=100)
            assert result["all_confirmed"], result
            assert len(park.ocpp.connected_chargers) == 30
            assert park.mqtt.stats.bad_payloads == 0
            assert sum(m.stats.messages for m in park.modbus) >= 40
        finally:
            devices.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await devices


def test_generate_park_refuses_more_units_than_a_gateway_holds() -> None:
    with pytest.raises(ValueError, match="Modbus ports"):
        generate_park(batteries=248, chargers=0, loads=0, modbus_ports=[1502])


def test_demo_park_file_loads() -> None:
    # The file's loads carry topic_prefix ".../loads/{asset}"; the MQTT scheme stays
    # {root}/{park}/{asset}, so the loader keys loads by asset id and ignores it.
    spec = park_spec(tomllib.loads(DEMO_PARK.read_text()))
    assert spec.park_id == "gd-nansha-zc"
    assert (len(spec.batteries), len(spec.chargers), len(spec.loads)) == (20, 15, 15)
    assert spec.loads[0].asset_id == "chiller-01"
    assert spec.loads[0].p_min_kw == 550.0
    assert len({(b.port, b.spec.unit_id) for b in spec.batteries}) == 20
    assert sum(c.v2g for c in spec.chargers) == 5
