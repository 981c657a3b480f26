"""The `running_park` fixture: the service, its control loop and the simulated park.

It starts, inside the test's event loop, the service as ``vpp serve`` does
(``running_service`` with ``runtime_cleanup_ctx``: API, supervisor and
control loops) on loopback and the simulated devices speaking the real
protocols, enrolls the park through the REST API (``vpp.client``) and waits
until every asset is live. See ``park_harness`` for the park and the time
scale.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.sim._clock import SimClock
from adapters.sim.chargers import SimCharger
from tests.e2e.park_harness import (
    INTERVAL_MIN,
    LIVE_TTL_S,
    PARK,
    PARK_TABLE,
    PERIOD_S,
    SCALE,
    SECRET,
    TELEMETRY_S,
    ListHandler,
    RunningPark,
    build_park,
    clock_origin,
    simulators,
)
from tests.support import eventually
from vpp.auth import Role
from vpp.client import ParkClient, issue_tokens
from vpp.clock import Clock
from vpp.metrics import Metrics
from vpp.runtime import runtime_cleanup_ctx
from vpp.servers import free_ports
from vpp.service import running_service
from vpp.settings import Settings
from vpp.state import State
from vpp.supervisor import SUPERVISOR

log = logging.getLogger("tests.e2e")


@pytest.fixture
async def running_park(
    redis_client: Any,
    redis_url: str,
    namespace: str,
    mqtt_addr: tuple[str, int],
    topic_prefix: str,
    service_settings: Settings,
) -> AsyncIterator[RunningPark]:
    """The service and the simulated park, enrolled through the API, every asset live."""
    # redis_client (tests/conftest.py) deletes this namespace's keys afterwards
    settings = service_settings
    settings.redis.live_ttl_s = LIVE_TTL_S
    settings.ocpp.auth_secret = SECRET
    settings.modbus.poll_interval_s = 0.25
    settings.modbus.timeout_s = 1.0
    settings.control.period_s = PERIOD_S
    settings.control.interval_minutes = INTERVAL_MIN
    settings.control.lease_ttl_s = 5.0

    # one pick for every gateway, apart from the OCPP listener's: picked one by one, two
    # gateways drew the same port once (CI: "address already in use" at the second's bind)
    batteries = [r.id for r in PARK_TABLE if r.kind == "battery"]
    picked = [p for p in free_ports(len(batteries) + 1) if p != settings.ocpp.port]
    ports = dict(zip(batteries, picked[: len(batteries)], strict=True))
    spec, payloads = build_park(PARK_TABLE, ports, topic_prefix)
    clock = Clock(time_scale=SCALE, origin=clock_origin())
    metrics = Metrics()
    state = State.from_url(redis_url, namespace=namespace)
    control_log: list[logging.LogRecord] = []
    handler = ListHandler(control_log)
    control_logger = logging.getLogger("vpp.control")
    control_logger.addHandler(handler)
    level = control_logger.level
    control_logger.setLevel(logging.INFO)
    roles = (Role.PARK_OPERATOR, Role.GRID_OPERATOR, Role.VIEWER)
    tokens = await issue_tokens(state, PARK, roles, name="e2e")
    try:
        async with contextlib.AsyncExitStack() as stack:
            sim = await stack.enter_async_context(simulators(spec, topic_prefix, mqtt_addr))
            # leaving stops the service first: the control loop releases while devices listen
            service = await stack.enter_async_context(running_service(
                settings, state, metrics=metrics, clock=clock,
                runtime=runtime_cleanup_ctx(with_ven=False), host="127.0.0.1", port=0,
            ))  # fmt: skip
            app = service.app
            grid = await stack.enter_async_context(ParkClient(service.base_url, PARK, tokens))
            supervisor = app[SUPERVISOR]
            # loads first: a change of the MQTT adapter's assets rebuilds it, and
            # rebuilding one that is still starting can hold the supervisor for
            # 10 s (see the report); the other kinds do not rebuild it
            ordered = sorted(payloads, key=lambda p: p["kind"] != "flexible_load")
            for payload in ordered:
                await grid.enroll_asset(payload)
                if payload["kind"] == "flexible_load":

                    async def routed(asset_id: str = payload["id"]) -> bool:
                        return asset_id in supervisor.routes(PARK)

                    await eventually(routed, within_s=15.0)

            async def all_routed() -> bool:
                return len(supervisor.routes(PARK)) == len(payloads)

            # the chargers start once the OCPP listener knows them (else they back off)
            await eventually(all_routed, within_s=15.0)
            sim_clock = SimClock(time_scale=SCALE)
            for charger_spec in spec.chargers:
                sim.chargers[charger_spec.cp_id] = await stack.enter_async_context(SimCharger(
                    url=f"ws://127.0.0.1:{settings.ocpp.port}/ocpp/", spec=charger_spec,
                    clock=sim_clock, period_s=TELEMETRY_S, backoff_base=0.05,
                ))  # fmt: skip
            park = RunningPark(app, grid, clock, sim, settings, state, control_log)

            async def all_flexible() -> bool:
                env = await grid.flexibility(intervals=4)
                return int(env["assets_included"]) == len(payloads)

            started = time.monotonic()
            await eventually(all_flexible, within_s=30.0)
            log.info("park live after %.1f s real", time.monotonic() - started)
            yield park
    finally:
        control_logger.removeHandler(handler)
        control_logger.setLevel(level)
        await state.aclose()
