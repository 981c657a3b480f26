"""Fixtures for the API tests: tokens of the sample park and a park with live flexibility."""

from __future__ import annotations

import pytest

from tests.vpp.conftest import ApiClient, TokenFactory
from tests.vpp.samples import PARK, sample
from vpp.model import LiveState
from vpp.state import State


@pytest.fixture
async def operator(auth: TokenFactory) -> dict[str, str]:
    """Headers of a park operator of ``PARK``."""
    return await auth("park_operator", PARK)


@pytest.fixture
async def grid(auth: TokenFactory) -> dict[str, str]:
    """Headers of a grid operator of ``PARK``."""
    return await auth("grid_operator", PARK)


@pytest.fixture
async def park(client: ApiClient, state: State, operator: dict[str, str]) -> None:
    """Four 1 MWh / 500 kW batteries at SoC 0.5 and two 800 kW loads (300 kW shed): ~5 MW.

    Enrolled through the API, each with fresh telemetry (kept 10 minutes).
    """
    url = f"/v1/parks/{PARK}/assets"
    live: dict[str, LiveState] = {}
    for i in range(4):
        assert (await client.post(url, json=sample(id=f"bess-{i}"), headers=operator)).status == 201
        live[f"bess-{i}"] = LiveState(power_kw=0.0, soc=0.5)
    for i in range(2):
        body = sample("flexible_load", id=f"load-{i}")
        assert (await client.post(url, json=body, headers=operator)).status == 201
        live[f"load-{i}"] = LiveState(power_kw=800.0)
    await state.write_live_many(PARK, live, ttl=600)
