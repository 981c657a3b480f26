"""The `running_park` fixture: the service, its control loop and the simulated park.

It starts, inside the test's event loop, the app (``create_app`` plus
``runtime_cleanup_ctx``: supervisor and control loops) on a loopback HTTP
server and the simulated devices speaking the real protocols, enrolls the park
through the REST API and waits until every asset is live. See
``park_harness`` for the park and the time scale.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

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
    Grid,
    ListHandler,
    RunningPark,
    build_park,
    clock_origin,
    eventually,
    simulators,
)
from vpp.api import create_app
from vpp.auth import Role, TokenStore
from vpp.clock import Clock
from vpp.metrics import Metrics
from vpp.runtime import runtime_cleanup_ctx
from vpp.servers import free_port
from vpp.settings import Settings
from vpp.state import State
from vpp.supervisor import SUPERVISOR


async def _true(value: bool) -> bool:
    return value


log = logging.getLogger("tests.e2e")


@pytest.fixture
async def running_park(
    redis_client: Any,
    redis_url: str,
    namespace: str,
    mqtt_addr: tuple[str, int],
    topic_prefix: str,
) -> AsyncIterator[RunningPark]:
    """The service and the simulated park, enrolled through the API, every asset live."""
    # redis_client (tests/conftest.py) deletes this namespace's keys afterwards
    settings = Settings()
    settings.redis.url, settings.redis.namespace = redis_url, namespace
    settings.redis.live_ttl_s = LIVE_TTL_S
    settings.mqtt.host, settings.mqtt.port = mqtt_addr
    settings.mqtt.root = topic_prefix
    settings.ocpp.port = free_port()
    settings.ocpp.auth_secret = SECRET
    settings.modbus.poll_interval_s = 0.25
    settings.modbus.timeout_s = 1.0
    settings.control.period_s = PERIOD_S
    settings.control.interval_minutes = INTERVAL_MIN
    settings.control.lease_ttl_s = 5.0

    ports = {r.id: free_port() for r in PARK_TABLE if r.kind == "battery"}
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
    tokens = TokenStore(state)
    secrets = {
        role: await tokens.create(role, [PARK], name=f"e2e-{role}")
        for role in (Role.PARK_OPERATOR, Role.GRID_OPERATOR, Role.VIEWER)
    }
    try:
        async with contextlib.AsyncExitStack() as stack:
            sim = await stack.enter_async_context(simulators(spec, topic_prefix, mqtt_addr))
            app = create_app(settings, state, metrics=metrics, clock=clock)
            app.cleanup_ctx.append(runtime_cleanup_ctx(with_ven=False))
            server = TestServer(app, host="127.0.0.1")
            await server.start_server()
            # leaving closes the app first: the control loop releases while devices listen
            stack.push_async_callback(server.close)
            http = await stack.enter_async_context(
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
            )
            grid = Grid(str(server.make_url("")).rstrip("/"), http, secrets)
            supervisor = app[SUPERVISOR]
            # loads first: a change of the MQTT adapter's assets rebuilds it, and
            # rebuilding one that is still starting can hold the supervisor for
            # 10 s (see the report); the other kinds do not rebuild it
            ordered = sorted(payloads, key=lambda p: p["kind"] != "flexible_load")
            for payload in ordered:
                await grid.ok("POST", "/assets", role=Role.PARK_OPERATOR, json=payload)
                if payload["kind"] == "flexible_load":
                    await eventually(
                        lambda i=payload["id"]: _true(i in supervisor.routes(PARK)), within=15.0
                    )

            async def all_routed() -> bool:
                return len(supervisor.routes(PARK)) == len(payloads)

            # the chargers start once the OCPP listener knows them (else they back off)
            await eventually(all_routed, within=15.0)
            sim_clock = SimClock(time_scale=SCALE)
            for charger_spec in spec.chargers:
                sim.chargers[charger_spec.cp_id] = await stack.enter_async_context(SimCharger(
                    url=f"ws://127.0.0.1:{settings.ocpp.port}/ocpp/", spec=charger_spec,
                    clock=sim_clock, period_s=TELEMETRY_S, backoff_base=0.05,
                ))  # fmt: skip
            park = RunningPark(app, grid, clock, sim, settings, state, control_log)

            async def all_flexible() -> bool:
                env = await grid.ok("GET", "/flexibility?intervals=4", role=Role.VIEWER)
                return int(env["assets_included"]) == len(payloads)

            started = time.monotonic()
            await eventually(all_flexible, within=30.0)
            log.info("park live after %.1f s real", time.monotonic() - started)
            yield park
    finally:
        control_logger.removeHandler(handler)
        control_logger.setLevel(level)
        await state.aclose()
