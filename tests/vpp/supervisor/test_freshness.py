"""Field hardening in the supervisor: per-field rejections and freshness in the metrics,
live state by age, assets unavailable as soon as their transport goes (issue 8).

Real Redis, real Mosquitto (a private one where it is stopped), the Modbus
battery simulator; devices are raw MQTT clients where their payloads matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from adapters.freshness import Stale
from adapters.mqtt import SERVICE_NODE
from adapters.types import Telemetry
from tests.support import MqttRig, eventually
from tests.vpp.supervisor import assets
from tests.vpp.supervisor.assets import PARK
from tests.vpp.supervisor.conftest import SupervisorFactory
from vpp.model import LiveState
from vpp.servers import MosquittoServer, free_port
from vpp.settings import Settings
from vpp.state import State
from vpp.supervisor._live import IN_FUTURE, date_reading

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def sup_settings(sup_settings: Settings) -> Settings:
    # long enough that a key still present and unavailable proves the supervisor
    # marked it, not that it aged out
    sup_settings.redis.live_ttl_s = 30.0
    return sup_settings


LABELS = 'adapter="mqtt-p1",park="p1",protocol="mqtt"'


def live_is(state: State, asset_id: str, check: Callable[[LiveState], bool]) -> Any:
    async def holds() -> bool:
        live = await state.read_live(PARK, asset_id)
        return live is not None and check(live)

    return holds


async def test_case8_percent_soc_is_counted_in_metrics_and_the_device_stays_live(
    state: State, supervisor: SupervisorFactory, mqtt: MqttRig
) -> None:
    await assets.enroll(state, assets.load("hvac-1", mqtt.root))
    registry = CollectorRegistry()
    topics = mqtt.topics
    async with supervisor(registry=registry), mqtt.client() as dev:
        payload = json.dumps({"ts": time.time(), "p_kw": 41.5, "soc": 55}).encode()

        async def kept() -> bool:
            await dev.publish(topics.telemetry("hvac-1"), payload, qos=1)
            live = await state.read_live(PARK, "hvac-1")
            return live is not None and live.power_kw == 41.5

        # published until the adapter has subscribed and its reading is written
        await eventually(kept)
        live = await state.read_live(PARK, "hvac-1")
        assert live is not None and live.available and live.soc is None
        text = generate_latest(registry).decode()
        # labels in Prometheus' sorted order; published until kept, so once or more
        rejected = (
            'vpp_telemetry_fields_rejected_total{adapter="mqtt-p1",field="soc",park="p1",'
            'protocol="mqtt",reason="out_of_range"} '
        )
        line = next(li for li in text.splitlines() if li.startswith(rejected))
        assert float(line.removeprefix(rejected)) >= 1.0
        assert f"vpp_adapter_bad_payloads_total{{{LABELS}}} 0.0" in text


async def test_retained_reading_of_unknown_age_is_stale_in_metrics(
    state: State, supervisor: SupervisorFactory, mqtt: MqttRig
) -> None:
    await assets.enroll(state, assets.load("hvac-1", mqtt.root))
    registry = CollectorRegistry()
    topic = mqtt.topics.telemetry("hvac-1")
    mqtt.retained(topic)
    async with mqtt.client() as dev:
        await dev.publish(topic, b'{"p_kw": 70}', qos=1, retain=True)
    async with supervisor(registry=registry):
        stale = f'vpp_telemetry_stale_total{{{LABELS},reason="retained"}} 1.0'
        await eventually(lambda: stale in generate_latest(registry).decode())
        assert await state.read_live(PARK, "hvac-1") is None
        assert f"vpp_telemetry_clock_skew_seconds{{{LABELS}}}" in (
            generate_latest(registry).decode()
        )


async def test_lost_broker_makes_its_assets_unavailable_at_once(
    state: State,
    sup_settings: Settings,
    supervisor: SupervisorFactory,
    topic_prefix: str,
    private_mosquitto: MosquittoServer,
) -> None:
    mqtt = MqttRig.on(private_mosquitto, topic_prefix)
    sup_settings.mqtt.host, sup_settings.mqtt.port = mqtt.host, mqtt.port
    await assets.enroll(state, assets.load("hvac-1", mqtt.root))
    topic = mqtt.topics.telemetry("hvac-1")

    async def device() -> None:
        # a device without a last will: the broker going away tells nobody
        while True:
            with contextlib.suppress(aiomqtt.MqttError):
                async with mqtt.client() as client:
                    while True:
                        reading = json.dumps({"ts": time.time(), "p_kw": 30.0})
                        await client.publish(topic, reading, qos=0)
                        await asyncio.sleep(0.2)
            await asyncio.sleep(0.1)

    publisher = asyncio.create_task(device())
    try:
        async with supervisor():
            await eventually(live_is(state, "hvac-1", lambda live: live.available))
            private_mosquitto.stop()
            # still within its 30 s TTL, but unavailable: the supervisor marked it
            await eventually(live_is(state, "hvac-1", lambda live: not live.available))
            await asyncio.to_thread(private_mosquitto.start)
            await eventually(live_is(state, "hvac-1", lambda live: live.available), within_s=20)
    finally:
        publisher.cancel()


async def test_lost_modbus_connection_makes_its_assets_unavailable_at_once(
    state: State, supervisor: SupervisorFactory
) -> None:
    async with assets.modbus_battery(state, "bess-1") as modbus, supervisor():
        await eventually(live_is(state, "bess-1", lambda live: live.available))
        await modbus.stop()
        await eventually(live_is(state, "bess-1", lambda live: not live.available))
        await modbus.start()
        await eventually(live_is(state, "bess-1", lambda live: live.available), within_s=20)


async def test_clean_stop_announces_the_service_offline_and_a_rebuild_does_not(
    state: State, supervisor: SupervisorFactory, mqtt: MqttRig
) -> None:
    await assets.enroll(state, assets.load("hvac-1", mqtt.root))
    status = mqtt.topics.status(SERVICE_NODE)
    mqtt.retained(status)
    seen: list[bool] = []
    async with mqtt.client() as watcher:
        await watcher.subscribe(status, qos=1)

        async def watch() -> None:
            async for message in watcher.messages:
                if message.payload:
                    seen.append(json.loads(bytes(message.payload))["online"])

        watching = asyncio.create_task(watch())
        try:
            async with supervisor() as sup:
                await eventually(lambda: seen == [True])
                first = sup.adapter("mqtt-p1")
                # a new load rebuilds the park's MQTT adapter: online again, never offline
                await assets.enroll(state, assets.load("hvac-2", mqtt.root))
                await eventually(lambda: len(seen) == 2)
                assert sup.adapter("mqtt-p1") is not first
            await eventually(lambda: len(seen) == 3)
            assert seen == [True, True, False]
        finally:
            watching.cancel()


def _reading(ts: float) -> Telemetry:
    return Telemetry(asset_id="x", ts=ts, power_kw=1.0)


def test_a_reading_is_judged_by_its_age_on_arrival() -> None:
    now = 1.79e9
    assert date_reading(_reading(now - 5), now, 60) == (_reading(now - 5), "")
    assert date_reading(_reading(now - 60), now, 60) == (None, Stale.OLD)
    # a clock an hour ahead: the reading cannot be younger than its arrival
    assert date_reading(_reading(now + 3600), now, 60) == (_reading(now), IN_FUTURE)


async def test_live_state_expires_by_the_age_of_its_reading(state: State) -> None:
    now = time.time()

    def at(ts: float) -> LiveState:
        return LiveState(power_kw=1.0, ts=datetime.fromtimestamp(ts, UTC))

    written = await state.write_live_many(
        PARK, {"young": at(now - 1), "late": at(now - 50), "old": at(now - 61)}, 60, now=now
    )
    assert written == 2
    keys = state.park(PARK)
    assert 58_000 < await state.redis.pttl(keys.live("young")) <= 59_000
    assert 0 < await state.redis.pttl(keys.live("late")) <= 10_000
    assert await state.read_live(PARK, "old") is None


async def test_an_adapter_that_never_connects_marks_its_assets_unavailable(
    state: State,
    sup_settings: Settings,
    supervisor: SupervisorFactory,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # what a previous run left in Redis, while the broker is now unreachable
    monkeypatch.setattr("vpp.supervisor._core.CONNECT_GRACE_S", 0.5)
    sup_settings.mqtt.port = free_port()
    await assets.enroll(state, assets.load("hvac-1", topic_prefix))
    await state.write_live(PARK, "hvac-1", LiveState(power_kw=42.0), ttl=30)
    async with supervisor():
        await eventually(live_is(state, "hvac-1", lambda live: not live.available))
        live = await state.read_live(PARK, "hvac-1")
        assert live is not None and live.power_kw == 42.0  # the last known power, kept
