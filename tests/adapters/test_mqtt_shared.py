"""Two adapters on one park, as two service replicas: MQTT 5 shared subscriptions.

On a real Mosquitto (2.x), with two client ids: a share group splits the
park's telemetry so each reading is read by exactly one of them, while acks
and statuses (plain subscriptions) still reach each one that needs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest

from adapters.mqtt import SERVICE_NODE, MqttAdapter
from adapters.mqtt_codec import Status, decode_status, encode_status
from adapters.sim.loads import LoadSpec
from adapters.types import DeviceLimits, Setpoint, Telemetry
from tests.support import MqttRig, eventually

pytestmark = pytest.mark.timeout(60)

LIMITS = DeviceLimits(p_min_kw=0, p_max_kw=80)
ASSETS = {f"a{i}": LIMITS for i in range(10)}
#: readings published per test; each one's power is its number
READINGS = 400


@contextlib.asynccontextmanager
async def _reading(adapter: MqttAdapter) -> AsyncIterator[list[Telemetry]]:
    """Every reading the adapter hands its consumer, in order, while the block runs."""
    got: list[Telemetry] = []

    async def consume() -> None:
        async for reading in adapter.telemetry():
            got.append(reading)

    task = asyncio.create_task(consume())
    try:
        yield got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _numbers(readings: list[Telemetry]) -> list[int]:
    """The numbered readings among ``readings`` (markers have a negative power)."""
    return [int(r.power_kw) for r in readings if r.available and r.power_kw >= 0]


async def _publish_numbered(mqtt: MqttRig, n: int) -> None:
    """Publish readings 0..n-1 round-robin over `ASSETS` (QoS 1 into the broker)."""
    async with mqtt.client() as device:
        for i in range(n):
            topic = mqtt.topics.telemetry(f"a{i % len(ASSETS)}")
            await device.publish(topic, json.dumps({"p_kw": i}), qos=1)


async def _drain(mqtt: MqttRig, *seen: list[Telemetry]) -> None:
    """Publish markers until every adapter read one.

    The broker sends one subscriber the messages of one publisher in order,
    so once each adapter read a marker, it has read everything the broker
    sent it before: a duplicate would be in hand by then.
    """
    async with mqtt.client() as device:

        async def marked() -> bool:
            await device.publish(mqtt.topics.telemetry("a0"), b'{"p_kw": -1}', qos=1)
            return all(any(r.power_kw < 0 for r in got) for got in seen)

        await eventually(marked)


async def test_a_share_group_hands_each_reading_to_exactly_one_replica(mqtt: MqttRig) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    async with (
        mqtt.adapter(ASSETS, share_group=group) as one,
        mqtt.adapter(ASSETS, share_group=group) as two,
        _reading(one) as got_one,
        _reading(two) as got_two,
    ):
        assert one.subscriptions()[0] == (f"$share/{group}/{mqtt.root}/p1/+/telemetry", 0)
        await _publish_numbered(mqtt, READINGS)
        await _drain(mqtt, got_one, got_two)
    read = Counter(_numbers(got_one) + _numbers(got_two))
    assert read == Counter(range(READINGS))  # all of them, each once
    assert _numbers(got_one) and _numbers(got_two)  # the broker split them
    # routed by their real topic names: the share prefix is not part of them
    assert {r.asset_id for r in got_one + got_two} == set(ASSETS)


async def test_without_a_share_group_every_replica_reads_every_reading(mqtt: MqttRig) -> None:
    async with (
        mqtt.adapter(ASSETS, share_group="") as one,
        mqtt.adapter(ASSETS, share_group="") as two,
        _reading(one) as got_one,
        _reading(two) as got_two,
    ):
        assert one.subscriptions()[0] == (mqtt.topics.wildcard("telemetry"), 0)
        await _publish_numbered(mqtt, READINGS)
        await _drain(mqtt, got_one, got_two)
    assert Counter(_numbers(got_one)) == Counter(range(READINGS))
    assert Counter(_numbers(got_two)) == Counter(range(READINGS))


async def test_acks_and_retained_statuses_reach_every_replica_of_a_share_group(
    mqtt: MqttRig,
) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    loads = [LoadSpec(asset_id=f"hvac-{i}", baseline_kw=50.0, ramp_kw_per_s=50.0) for i in (0, 1)]
    assets = {"hvac-0": LIMITS, "hvac-1": LIMITS, "gone-1": LIMITS}
    gone = mqtt.topics.status("gone-1")
    mqtt.retained(gone)
    async with mqtt.client() as device:  # a device that went away before the replicas started
        await device.publish(gone, encode_status(Status(False)), qos=1, retain=True)
    async with (
        mqtt.fleet(loads, period_s=0.5),
        mqtt.adapter(assets, share_group=group) as one,
        mqtt.adapter(assets, share_group=group) as two,
    ):
        # the retained status reached both (a shared subscription need not get it:
        # MQTT 5 section 4.8.2)
        for adapter in (one, two):
            await eventually(_offline(adapter, "gone-1"))
        # each command's ack reaches the replica that sent it: two in a row from
        # each (a shared subscription of acks would hand every other one to the other)
        for sender, asset in ((one, "hvac-0"), (one, "hvac-1"), (two, "hvac-0"), (two, "hvac-1")):
            confirmation = await sender.apply(Setpoint(asset_id=asset, power_kw=30))
            assert confirmation.confirmed, confirmation


def _offline(adapter: MqttAdapter, asset: str) -> Callable[[], bool]:
    """Whether the adapter holds ``asset`` unavailable."""

    def check() -> bool:
        last = adapter.last(asset)
        return last is not None and not last.available

    return check


async def test_a_replica_stopping_leaves_the_park_announced_online(mqtt: MqttRig) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    topic = mqtt.topics.status(SERVICE_NODE)
    mqtt.retained(topic)
    heard: list[bool] = []
    async with mqtt.client() as watcher, mqtt.adapter(ASSETS, share_group=group):
        await watcher.subscribe(topic, qos=1)

        async def watch() -> None:
            async for message in watcher.messages:
                assert isinstance(message.payload, bytes)
                heard.append(decode_status(message.payload)[0].online)

        watching = asyncio.create_task(watch())
        try:
            async with mqtt.adapter(ASSETS, share_group=group):
                pass  # the outgoing replica: its clean stop announces "offline"
            # the one still running answers with "online", and the park stays so
            await eventually(lambda: False in heard and heard[-1])
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        assert await _retained_status(mqtt, topic) == Status(True)


async def _retained_status(mqtt: MqttRig, topic: str) -> Status:
    """The retained status on ``topic``, as a device connecting now reads it."""
    async with mqtt.client() as reader:
        await reader.subscribe(topic, qos=1)
        async with asyncio.timeout(5):
            retained = await anext(aiter(reader.messages))
    assert retained.retain and isinstance(retained.payload, bytes)
    return decode_status(retained.payload)[0]
