"""Fixtures for the OpenADR VEN tests: the spec, a VTN simulator, a recording sink."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.vpp.openadr.helpers import RecordingSink
from tests.vpp.openadr.vtn_sim import BlClient, VtnSim
from vpp.openadr import OpenAdrSchema


@pytest.fixture(scope="session")
def spec() -> OpenAdrSchema:
    schema = OpenAdrSchema.locate()
    if schema is None:
        pytest.fail("openadr3.yaml not found: the package data vpp/openadr/spec/ is missing")
    return schema


@pytest.fixture
async def vtn(spec: OpenAdrSchema) -> AsyncIterator[VtnSim]:
    async with VtnSim(schema=spec) as sim:
        yield sim


@pytest.fixture
async def bl(vtn: VtnSim) -> AsyncIterator[BlClient]:
    async with BlClient(vtn.url) as client:
        yield client


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()
