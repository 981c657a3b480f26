"""MQTT adapter against the simulated load gateway on a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable

import aiomqtt
import msgpack
import pytest
import redis.asyncio as aioredis

from adapters.mqtt import MqttAdapter
from adapters.mqtt_codec import Encoding, Topics
from adapters.sim.loads import LoadSpec, MqttLoadFleet
from adapters.types import DeviceLimits, Setpoint, Telemetry
from vpp.servers import MosquittoServer

Eventually = Callable[[Callable[[], bool]], Awaitable[None]]

pytestmark = pytest.mark.timeout(60)

PARK = "p1"
LIMITS = DeviceLimits(p_min_kw=10, p_max_kw=80)


def _loads(n: int = 3) -> list[LoadSpec]:
    return [LoadSpec(asset_id=f"hvac-{i}", baseline_kw=50.0, ramp_kw_per_s=50.0) for i in range(n)]


async def _next_for(
    adapter: MqttAdapter, asset: str, within: float = 10.0, after: float = 0.0
) -> Telemetry:
    async with asyncio.timeout(within):
        async for reading in adapter.telemetry():
            if reading.asset_id == asset and reading.available and reading.ts > after:
                return reading
    raise AssertionError("unreachable")


async def test_telemetry_arrives_and_reaches_redis(
    mqtt_addr: tuple[str, int], topic_prefix: str, redis_client: aioredis.Redis, namespace: str
) -> None:
    host, port = mqtt_addr
    loads = _loads()
    assets = {spec.asset_id: LIMITS for spec in loads}
    async with (
        MqttAdapter(host=host, port=port, park=PARK, assets=assets, root=topic_prefix) as adapter,
        MqttLoadFleet(
            host=host,
            port=port,
            park=PARK,
            loads=loads,
            root=topic_prefix,
            period_s=0.1,
            encoding=Encoding.MSGPACK,
        ),
    ):
        await asyncio.wait_for(adapter.wait_connected(), 5)
        seen: dict[str, Telemetry] = {}
        async with asyncio.timeout(10):
            async for reading in adapter.telemetry():
                seen[reading.asset_id] = reading
                if len(seen) == len(assets):
                    break
        # The supervisor's write: msgpack values with a TTL, pipelined.
        async with redis_client.pipeline(transaction=False) as pipe:
            for reading in seen.values():
                key = f"{namespace}:{{{PARK}}}:telemetry:{reading.asset_id}"
                pipe.set(key, msgpack.packb({"p": reading.power_kw, "ts": reading.ts}), ex=30)
            await pipe.execute()
        raw = await redis_client.get(f"{namespace}:{{{PARK}}}:telemetry:hvac-0")
        assert raw is not None
        assert msgpack.unpackb(raw)["p"] == pytest.approx(seen["hvac-0"].power_kw)
        assert 40 < seen["hvac-0"].power_kw < 60
        assert adapter.stats.messages >= 3 and adapter.stats.connected


async def test_setpoint_confirmed_and_followed_and_clamped(
    mqtt_addr: tuple[str, int], topic_prefix: str
) -> None:
    host, port = mqtt_addr
    loads = [LoadSpec(asset_id="hvac-0", kind="process", baseline_kw=50.0, ramp_kw_per_s=5.0)]
    async with (
        MqttAdapter(
            host=host, port=port, park=PARK, assets={"hvac-0": LIMITS}, root=topic_prefix
        ) as adapter,
        MqttLoadFleet(
            host=host,
            port=port,
            park=PARK,
            loads=loads,
            root=topic_prefix,
            period_s=0.05,
            time_scale=600,
        ) as fleet,
    ):
        await asyncio.wait_for(adapter.wait_connected(), 5)
        await fleet.connected.wait()
        await _next_for(adapter, "hvac-0")
        conf = await adapter.apply(Setpoint(asset_id="hvac-0", power_kw=20.0, hold_s=60))
        assert conf.confirmed and not conf.clamped and conf.sent_kw == 20.0
        assert conf.rtt_s is not None and conf.rtt_s < 2
        async with asyncio.timeout(5):
            while (await _next_for(adapter, "hvac-0")).power_kw > 20.5:
                pass
        low = await adapter.apply(Setpoint(asset_id="hvac-0", power_kw=-40.0))
        assert low.clamped and low.sent_kw == 10.0 and low.confirmed
        assert adapter.stats.setpoints_clamped == 1
        await asyncio.sleep(0.5)
        assert await adapter.release("hvac-0")
        # The shed energy comes back as rebound: above baseline after release.
        async with asyncio.timeout(5):
            while (await _next_for(adapter, "hvac-0")).power_kw < 53:
                pass


async def test_undecodable_payloads_are_counted_and_dropped(
    mqtt_addr: tuple[str, int], topic_prefix: str
) -> None:
    host, port = mqtt_addr
    topics = Topics(topic_prefix, PARK)
    async with MqttAdapter(
        host=host, port=port, park=PARK, assets={"hvac-0": LIMITS}, root=topic_prefix
    ) as adapter:
        await asyncio.wait_for(adapter.wait_connected(), 5)
        garbage = [
            b"",
            b"{not json",
            b"\xc1\xff\x00",
            json.dumps([1, 2]).encode(),
            b'{"p_kw": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # deeper than the parser
        ]
        async with aiomqtt.Client(host, port) as device:
            for payload in garbage:
                await device.publish(topics.telemetry("hvac-0"), payload, qos=1)
            await device.publish(topics.ack("hvac-0"), b"nonsense", qos=1)
            await device.publish(topics.status("hvac-0"), b"[]", qos=1)
            await device.publish(topics.telemetry("hvac-0"), b'{"p_kw": 12.5}', qos=1)
        reading = await _next_for(adapter, "hvac-0")
        assert reading.power_kw == 12.5
        assert adapter.stats.bad_payloads == len(garbage) + 2
        assert adapter.stats.connected


async def test_unacknowledged_setpoint_is_reported_not_confirmed(
    mqtt_addr: tuple[str, int], topic_prefix: str
) -> None:
    host, port = mqtt_addr
    async with MqttAdapter(
        host=host, port=port, park=PARK, assets={"x": LIMITS}, root=topic_prefix, ack_timeout_s=0.3
    ) as adapter:
        await asyncio.wait_for(adapter.wait_connected(), 5)
        conf = await adapter.apply(Setpoint(asset_id="x", power_kw=30))
        assert not conf.confirmed and "no ack" in conf.reason


async def test_recovers_after_broker_restart(
    private_mosquitto: MosquittoServer, topic_prefix: str, eventually: Eventually
) -> None:
    host, port = private_mosquitto.host, private_mosquitto.port
    loads = _loads(2)
    assets = {spec.asset_id: LIMITS for spec in loads}
    async with (
        MqttAdapter(
            host=host,
            port=port,
            park=PARK,
            assets=assets,
            root=topic_prefix,
            backoff_base=0.1,
            keepalive_s=2,
        ) as adapter,
        MqttLoadFleet(
            host=host,
            port=port,
            park=PARK,
            loads=loads,
            root=topic_prefix,
            period_s=0.1,
            backoff_base=0.1,
        ) as fleet,
    ):
        await asyncio.wait_for(adapter.wait_connected(), 5)
        await _next_for(adapter, "hvac-1")
        private_mosquitto.stop()
        await eventually(lambda: not adapter.stats.connected)
        await asyncio.to_thread(private_mosquitto.start)
        await asyncio.wait_for(adapter.wait_connected(), 15)
        await asyncio.wait_for(fleet.connected.wait(), 15)
        await _next_for(adapter, "hvac-1", within=15, after=time.time())
        assert adapter.stats.reconnects >= 1
        conf = await adapter.apply(Setpoint(asset_id="hvac-1", power_kw=30))
        assert conf.confirmed


async def test_gateway_last_will_marks_assets_unavailable(
    mqtt_addr: tuple[str, int], topic_prefix: str
) -> None:
    host, port = mqtt_addr
    node = f"gw-{uuid.uuid4().hex[:6]}"
    topics = Topics(topic_prefix, PARK)
    async with MqttAdapter(
        host=host, port=port, park=PARK, assets={"hvac-0": LIMITS}, root=topic_prefix
    ) as adapter:
        await asyncio.wait_for(adapter.wait_connected(), 5)
        async with aiomqtt.Client(host, port) as device:
            await device.publish(topics.telemetry("hvac-0"), b'{"p_kw": 30}', qos=1)
            await _next_for(adapter, "hvac-0")
            await device.publish(
                topics.status(node), b'{"online": false, "assets": ["hvac-0"]}', qos=1
            )
            async with asyncio.timeout(5):
                async for reading in adapter.telemetry():
                    if not reading.available:
                        break
            await device.publish(topics.status(node), b"", qos=1, retain=True)
        last = adapter.last("hvac-0")
        assert last is not None and not last.available


async def test_command_ends_when_the_broker_goes_not_at_its_timeout(
    private_mosquitto: MosquittoServer, topic_prefix: str, eventually: Eventually
) -> None:
    host, port = private_mosquitto.host, private_mosquitto.port
    async with MqttAdapter(
        host=host, port=port, park=PARK, assets={"x": LIMITS}, root=topic_prefix,
        ack_timeout_s=30, backoff_base=0.1, keepalive_s=2,
    ) as adapter:  # fmt: skip
        await asyncio.wait_for(adapter.wait_connected(), 5)
        started = time.monotonic()
        pending = asyncio.create_task(adapter.apply(Setpoint(asset_id="x", power_kw=30)))
        await asyncio.sleep(0.2)  # published; no device answers
        private_mosquitto.stop()
        conf = await asyncio.wait_for(pending, 10)
        assert not conf.confirmed and "connection lost" in conf.reason
        assert time.monotonic() - started < 10
        await asyncio.to_thread(private_mosquitto.start)


async def test_a_burst_of_commands_is_not_serialised_on_pubacks(
    mqtt_addr: tuple[str, int], topic_prefix: str
) -> None:
    host, port = mqtt_addr
    loads = _loads(200)
    assets = {spec.asset_id: LIMITS for spec in loads}
    async with (
        MqttAdapter(host=host, port=port, park=PARK, assets=assets, root=topic_prefix) as adapter,
        MqttLoadFleet(
            host=host, port=port, park=PARK, loads=loads, root=topic_prefix, period_s=5.0
        ) as fleet,
    ):
        await asyncio.wait_for(adapter.wait_connected(), 5)
        await asyncio.wait_for(fleet.connected.wait(), 5)
        async with asyncio.timeout(5):
            confs = await asyncio.gather(
                *(adapter.apply(Setpoint(asset_id=a, power_kw=30)) for a in assets)
            )
        assert all(c.confirmed for c in confs)
