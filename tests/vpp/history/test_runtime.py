"""The running service records the history: device telemetry in, interval energy out.

The service runs as ``vpp serve`` does (``running_service`` with its
runtime: supervisor, recorder, control loops) against the shared Redis and
broker; a simulated MQTT process load draws a flat 50 kW.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from adapters.sim.loads import LoadSpec
from tests.support import MqttRig, eventually
from tests.vpp.samples import sample
from vpp.history.store import HistoryStore
from vpp.metrics import Metrics
from vpp.model import parse_asset
from vpp.service import running_service
from vpp.settings import Settings
from vpp.state import State

LOAD = LoadSpec(asset_id="line-1", kind="process", baseline_kw=50.0, p_min_kw=20.0, p_max_kw=60.0)


async def test_the_service_records_each_assets_telemetry(
    service_settings: Settings, mqtt: MqttRig, state: State
) -> None:
    settings = service_settings
    settings.history.flush_s = 0.5
    load = sample(
        "flexible_load", id="line-1", baseline_kw=50.0, max_shed_kw=30.0,
        connection={"protocol": "mqtt", "topic_prefix": f"{mqtt.root}/{mqtt.park}/line-1"},
    )  # fmt: skip
    await state.enroll(mqtt.park, parse_asset(load))
    store = HistoryStore(state)
    today = date.today()

    async def recorded() -> tuple[float, float]:
        """(covered seconds, energy kWh) of line-1 around today."""
        got = await store.read(
            mqtt.park, ["line-1"], today - timedelta(days=1), today + timedelta(days=1)
        )
        days = got["line-1"].values()
        covered = sum(float(d.coverage.sum()) for d in days) * 900
        return covered, sum(float(d.energy_kwh.sum()) for d in days)

    async with (
        mqtt.fleet([LOAD], period_s=0.2),
        running_service(settings, state, metrics=Metrics(), host="127.0.0.1", port=0),
    ):

        async def some_written() -> bool:
            return (await recorded())[0] >= 2.0

        await eventually(some_written)  # the periodic write, while running
    covered, energy = await recorded()
    assert covered >= 2.0
    # a flat 50 kW: energy over the covered time is 50 kW
    assert energy / (covered / 3600) == pytest.approx(50.0, rel=0.05)
    assert not np.isnan(energy)
