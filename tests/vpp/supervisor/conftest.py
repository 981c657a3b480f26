"""The supervisor tests' settings and a factory of running supervisors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.vpp.supervisor.assets import SECRET
from vpp.settings import Settings
from vpp.state import State
from vpp.supervisor import Supervisor

#: ``async with supervisor(**options) as sup``: a Supervisor entered and ready.
SupervisorFactory = Callable[..., contextlib.AbstractAsyncContextManager[Supervisor]]


@pytest.fixture
def sup_settings(service_settings: Settings) -> Settings:
    """Fast device polls on loopback, a 2 s live TTL, the chargers' auth secret."""
    service_settings.ocpp.auth_secret = SECRET
    service_settings.modbus.poll_interval_s = 0.1
    service_settings.modbus.timeout_s = 1.0
    service_settings.redis.live_ttl_s = 2.0
    return service_settings


@pytest.fixture
def supervisor(state: State, sup_settings: Settings) -> SupervisorFactory:
    """``async with supervisor(**options) as sup``: a running supervisor, ready (10 s at most).

    ``options`` are the Supervisor's keyword arguments (``registry``,
    ``reconcile_interval_s``...); ``backoff_base`` is 0.05 s unless given.
    It reads ``sup_settings`` when entered, so a test may change them first.
    """

    @contextlib.asynccontextmanager
    async def run(**options: Any) -> AsyncIterator[Supervisor]:
        options.setdefault("backoff_base", 0.05)
        async with Supervisor(state=state, settings=sup_settings, **options) as sup:
            async with asyncio.timeout(10):
                await sup.wait_ready()
            yield sup

    return run
