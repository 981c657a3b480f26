"""Fixtures for the service tests: a State on the shared Redis, a live API server, tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from vpp.api import create_app
from vpp.auth import TokenStore
from vpp.metrics import Metrics
from vpp.settings import Settings
from vpp.state import State

#: The test client of the service's aiohttp app.
ApiClient = TestClient[web.Request, web.Application]


@pytest.fixture
def settings(namespace: str, redis_url: str) -> Settings:
    s = Settings()
    s.redis.url = redis_url
    s.redis.namespace = namespace
    return s


@pytest.fixture
async def state(redis_client: Any, redis_url: str, namespace: str) -> AsyncIterator[State]:
    # redis_client (from tests/conftest.py) deletes the namespace's keys afterwards.
    st = State.from_url(redis_url, namespace=namespace)
    yield st
    await st.aclose()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def client(settings: Settings, state: State, metrics: Metrics) -> AsyncIterator[ApiClient]:
    app = create_app(settings, state, metrics=metrics)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


TokenFactory = Callable[..., Awaitable[dict[str, str]]]


@pytest.fixture
def auth(state: State) -> TokenFactory:
    """``await auth(role, *parks)`` -> headers carrying a fresh token."""
    store = TokenStore(state)

    async def make(role: str, *parks: str) -> dict[str, str]:
        secret = await store.create(role, list(parks), name=f"test-{role}")
        return {"Authorization": f"Bearer {secret}"}

    return make
