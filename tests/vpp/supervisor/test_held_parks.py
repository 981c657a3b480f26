"""With several replicas, a park's Modbus and MQTT adapters run only on the replica holding it.

The OCPP listener keeps every park's chargers (a charger may connect to any
replica); a park given back or lost has its adapters stopped, and the live
state its assets had is left to the replica holding it now.
"""

from __future__ import annotations

from tests.support import eventually
from tests.vpp.supervisor.assets import PARK, charger, enroll, live_since, modbus_battery
from tests.vpp.supervisor.conftest import SupervisorFactory
from vpp.replicas import Change
from vpp.state import State


async def test_only_held_parks_have_device_adapters(
    state: State, supervisor: SupervisorFactory
) -> None:
    held: set[str] = set()
    async with modbus_battery(state, "b1"):
        await enroll(state, charger("cp", "CP-HELD-1"))
        async with supervisor(holds=held.__contains__, replica_id="r1") as sup:
            # not held: the charger is known to the OCPP listener, the battery is not polled
            assert set(sup.routes(PARK)) == {"cp"}
            assert not any(s.key.park == PARK for s in sup._slots.values())
            held.add(PARK)
            await sup.on_park_change(PARK, Change.TAKEN)
            assert set(sup.routes(PARK)) == {"cp", "b1"}
            await eventually(live_since(state, "b1"), within_s=10)
            held.discard(PARK)
            await sup.on_park_change(PARK, Change.LOST)
            assert set(sup.routes(PARK)) == {"cp"}
            assert not any(s.key.park == PARK for s in sup._slots.values())
            # its assets are not marked unavailable here: the new holder keeps their state
            await sup.flush()
            live = await state.read_live(PARK, "b1")
            assert live is not None and live.available
