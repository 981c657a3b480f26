"""MQTT adapter against the simulated load gateway on a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import astuple
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis

from adapters.freshness import DeviceClocks, Judgement, Stale
from adapters.mqtt import SERVICE_NODE, MqttAdapter
from adapters.mqtt_codec import (
    Ack,
    Encoding,
    Reason,
    Status,
    decode_ack,
    decode_command,
    decode_status,
    decode_telemetry,
    encode,
    encode_ack,
)
from adapters.sim.loads import LoadSpec
from adapters.types import DeviceLimits, Setpoint, Telemetry
from tests.support import MqttRig, eventually
from vpp.servers import MosquittoServer

pytestmark = pytest.mark.timeout(60)

LIMITS = DeviceLimits(p_min_kw=10, p_max_kw=80)


def _loads(n: int = 3) -> list[LoadSpec]:
    return [LoadSpec(asset_id=f"hvac-{i}", baseline_kw=50.0, ramp_kw_per_s=50.0) for i in range(n)]


def _assets(loads: list[LoadSpec]) -> dict[str, DeviceLimits]:
    return {spec.asset_id: LIMITS for spec in loads}


async def _next_for(
    adapter: MqttAdapter, asset: str, within: float = 10.0, after: float = 0.0
) -> Telemetry:
    async with asyncio.timeout(within):
        async for reading in adapter.telemetry():
            if reading.asset_id == asset and reading.available and reading.ts > after:
                return reading
    raise AssertionError("unreachable")


async def test_telemetry_arrives_and_reaches_redis(
    mqtt: MqttRig, redis_client: aioredis.Redis, namespace: str
) -> None:
    loads = _loads()
    assets = _assets(loads)
    async with (
        mqtt.adapter(assets) as adapter,
        mqtt.fleet(loads, period_s=0.1, encoding=Encoding.MSGPACK),
    ):
        seen: dict[str, Telemetry] = {}
        async with asyncio.timeout(10):
            async for reading in adapter.telemetry():
                seen[reading.asset_id] = reading
                if len(seen) == len(assets):
                    break
        # The supervisor's write: msgpack values with a TTL, pipelined.
        park = mqtt.park
        async with redis_client.pipeline(transaction=False) as pipe:
            for reading in seen.values():
                key = f"{namespace}:{{{park}}}:telemetry:{reading.asset_id}"
                _ = pipe.set(key, msgpack.packb({"p": reading.power_kw, "ts": reading.ts}), ex=30)
            await pipe.execute()
        raw = await redis_client.get(f"{namespace}:{{{park}}}:telemetry:hvac-0")
        assert raw is not None
        assert msgpack.unpackb(raw)["p"] == pytest.approx(seen["hvac-0"].power_kw)
        assert 40 < seen["hvac-0"].power_kw < 60
        assert adapter.stats.messages >= 3 and adapter.stats.connected


async def test_setpoint_confirmed_and_followed_and_clamped(mqtt: MqttRig) -> None:
    loads = [LoadSpec(asset_id="hvac-0", kind="process", baseline_kw=50.0, ramp_kw_per_s=5.0)]
    async with (
        mqtt.adapter({"hvac-0": LIMITS}) as adapter,
        mqtt.fleet(loads, period_s=0.05, time_scale=600) as fleet,
    ):
        await fleet.connected.wait()
        await _next_for(adapter, "hvac-0")
        conf = await adapter.apply(Setpoint(asset_id="hvac-0", power_kw=20.0, hold_s=60))
        assert conf.confirmed and not conf.clamped and conf.sent_kw == 20.0
        assert conf.rtt_s is not None
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


def _available(adapter: MqttAdapter, asset: str) -> bool:
    last = adapter.last(asset)
    return last is not None and last.available


async def test_undecodable_payloads_are_counted_and_dropped(mqtt: MqttRig) -> None:
    topics = mqtt.topics
    async with mqtt.adapter({"hvac-0": LIMITS}) as adapter:
        garbage = [
            b"",
            b"{not json",
            b"\xc1\xff\x00",
            json.dumps([1, 2]).encode(),
            b'{"p_kw": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # deeper than the parser
        ]
        async with mqtt.client() as device:
            for payload in garbage:
                await device.publish(topics.telemetry("hvac-0"), payload, qos=1)
            await device.publish(topics.ack("hvac-0"), b"nonsense", qos=1)
            await device.publish(topics.status("hvac-0"), b"[]", qos=1)
            await device.publish(topics.telemetry("hvac-0"), b'{"p_kw": 12.5}', qos=1)
        reading = await _next_for(adapter, "hvac-0")
        assert reading.power_kw == 12.5
        assert adapter.stats.bad_payloads == len(garbage) + 2
        assert adapter.stats.connected


async def test_unacknowledged_setpoint_is_reported_not_confirmed(mqtt: MqttRig) -> None:
    async with mqtt.adapter({"x": LIMITS}, ack_timeout_s=0.3) as adapter:
        conf = await adapter.apply(Setpoint(asset_id="x", power_kw=30))
        assert not conf.confirmed and "no ack" in conf.reason


async def test_recovers_after_broker_restart(
    private_mosquitto: MosquittoServer, topic_prefix: str
) -> None:
    mqtt = MqttRig.on(private_mosquitto, topic_prefix)
    loads = _loads(2)
    async with (
        mqtt.adapter(_assets(loads), backoff_base=0.1, keepalive_s=2) as adapter,
        mqtt.fleet(loads, period_s=0.1, backoff_base=0.1) as fleet,
    ):
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


async def test_gateway_last_will_marks_assets_unavailable(mqtt: MqttRig) -> None:
    node = f"gw-{uuid.uuid4().hex[:6]}"
    topics = mqtt.topics
    async with mqtt.adapter({"hvac-0": LIMITS}) as adapter:
        async with mqtt.client() as device:
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
    private_mosquitto: MosquittoServer, topic_prefix: str
) -> None:
    mqtt = MqttRig.on(private_mosquitto, topic_prefix)
    async with mqtt.adapter(
        {"x": LIMITS}, ack_timeout_s=30, backoff_base=0.1, keepalive_s=2
    ) as adapter:
        pending = asyncio.create_task(adapter.apply(Setpoint(asset_id="x", power_kw=30)))
        await asyncio.sleep(0.2)  # published; no device answers
        private_mosquitto.stop()
        conf = await asyncio.wait_for(pending, 10)
        # failed by the lost connection, not by the 30 s ack timeout
        assert not conf.confirmed and "connection lost" in conf.reason
        await asyncio.to_thread(private_mosquitto.start)


async def test_a_burst_of_commands_is_not_serialised_on_pubacks(mqtt: MqttRig) -> None:
    loads = _loads(200)
    assets = _assets(loads)
    async with mqtt.adapter(assets) as adapter, mqtt.fleet(loads, period_s=5.0) as fleet:
        await asyncio.wait_for(fleet.connected.wait(), 5)
        async with asyncio.timeout(5):
            confs = await asyncio.gather(
                *(adapter.apply(Setpoint(asset_id=a, power_kw=30)) for a in assets)
            )
        assert all(c.confirmed for c in confs)


# -- one bad field costs that field (issue 8, case 8) ------------------------


@pytest.mark.parametrize("encoding", [Encoding.JSON, Encoding.MSGPACK])
def test_percent_soc_is_dropped_and_the_reading_kept(encoding: Encoding) -> None:
    now = time.time()
    payload = encode({"ts": now, "p_kw": 41.5, "soc": 55}, encoding)
    decoded = decode_telemetry("hvac-0", payload, received=now)
    assert decoded.reading is not None
    assert decoded.reading.power_kw == 41.5 and decoded.reading.soc is None
    assert decoded.reading.available and decoded.device_ts == now
    assert [(i.name, i.reason) for i in decoded.issues] == [("soc", Reason.OUT_OF_RANGE)]


#: field, bad value, reason: every field of the telemetry payload on its own.
BAD_FIELDS: list[tuple[str, Any, Reason]] = [
    ("ts", "2026-07-01T10:00:00Z", Reason.NOT_A_NUMBER),
    ("ts", -5, Reason.OUT_OF_RANGE),
    ("ts", float("nan"), Reason.NOT_FINITE),
    ("soc", 55, Reason.OUT_OF_RANGE),
    ("soc", -0.1, Reason.OUT_OF_RANGE),
    ("soc", "0.5", Reason.NOT_A_NUMBER),
    ("soc", True, Reason.NOT_A_NUMBER),
    ("soc", float("inf"), Reason.NOT_FINITE),
    ("e_kwh", [1, 2], Reason.NOT_A_NUMBER),
    ("e_kwh", float("-inf"), Reason.NOT_FINITE),
    ("max_kw", -60, Reason.OUT_OF_RANGE),
    ("max_kw", False, Reason.NOT_A_NUMBER),
    ("min_kw", {"v": 1}, Reason.NOT_A_NUMBER),
    ("min_kw", 90, Reason.INCONSISTENT),  # above max_kw 60
    ("ev_connected", "yes", Reason.WRONG_TYPE),
    ("ev_connected", 1, Reason.WRONG_TYPE),
    ("departure_ts", "tomorrow", Reason.NOT_A_NUMBER),
    ("departure_ts", 1e300, Reason.OUT_OF_RANGE),
    ("energy_needed_kwh", -5, Reason.OUT_OF_RANGE),
    ("energy_needed_kwh", 10**400, Reason.OUT_OF_RANGE),  # too large for a float
]


@pytest.mark.parametrize(
    ("encoding", "name", "value", "reason"),
    [
        (encoding, *case)
        for encoding in Encoding
        for case in BAD_FIELDS
        # msgpack has no integers beyond 64 bits
        if not (encoding is Encoding.MSGPACK and case[1] == 10**400)
    ],
)
def test_every_telemetry_field_is_validated_on_its_own(
    encoding: Encoding, name: str, value: Any, reason: Reason
) -> None:
    good: dict[str, Any] = {
        "ts": 1.79e9, "p_kw": 41.5, "soc": 0.5, "e_kwh": 12.0, "max_kw": 60, "min_kw": 10,
        "ev_connected": True, "departure_ts": 1.79e9 + 3600, "energy_needed_kwh": 8.0,
    }  # fmt: skip
    obj = {**good, name: value}
    payload = (
        json.dumps(obj).encode() if encoding is Encoding.JSON else encode(obj, Encoding.MSGPACK)
    )
    decoded = decode_telemetry("ev-1", payload, received=1.79e9)
    assert [(i.name, i.reason) for i in decoded.issues] == [(name, reason)]
    reading = decoded.reading
    assert reading is not None and reading.power_kw == 41.5
    kept = {
        "soc": reading.soc, "e_kwh": reading.energy_kwh, "max_kw": reading.max_charge_kw,
        "ev_connected": reading.ev_connected, "departure_ts": reading.departure_ts,
        "energy_needed_kwh": reading.energy_needed_kwh,
        "min_kw": None if reading.max_discharge_kw is None else -reading.max_discharge_kw,
        "ts": decoded.device_ts,
    }  # fmt: skip
    for key, got in kept.items():
        if key == name:
            assert got is None, key
        elif key == "min_kw":
            assert got == 0.0  # min_kw 10: nothing to feed in
        else:
            assert got == good[key], key


@pytest.mark.parametrize("value", ["41.5", True, None, float("nan"), 1e7])
def test_a_reading_without_usable_power_is_not_kept_nor_a_bad_payload(value: Any) -> None:
    obj = {"ts": 1.79e9, "soc": 0.5} if value is None else {"p_kw": value, "soc": 0.5}
    decoded = decode_telemetry("x", json.dumps(obj).encode())
    assert decoded.reading is None
    assert [i.name for i in decoded.issues] == ["p_kw"]


def test_acks_and_gateway_status_are_read_field_by_field() -> None:
    ack, issues = decode_ack(b'{"id": "c1", "ok": "yes", "p_kw": 30}')
    assert not ack.ok and "malformed" in ack.reason and ack.p_kw == 30.0
    assert [(i.name, i.reason) for i in issues] == [("ok", Reason.WRONG_TYPE)]
    ack, issues = decode_ack(b'{"id": "c1", "ok": true, "p_kw": NaN}')
    assert ack.ok and ack.p_kw is None and issues[0].reason is Reason.NOT_FINITE
    status, issues = decode_status(b'{"online": false, "assets": ["hvac-0", 5, null, ""]}')
    assert status == Status(False, ("hvac-0",)) and len(issues) == 3


# -- timestamps judged against receive time ------------------------------------


def test_device_clocks_tell_late_replayed_and_retained_readings_from_clock_offsets() -> None:
    clocks = DeviceClocks(tolerance_s=2.0, max_age_s=60.0, relearn_s=5.0)
    t = 1.79e9
    # in step: taken on arrival
    assert clocks.judge("a", t - 0.2, t) == Judgement(t)
    # an older reading after a newer one; the same time again (a whole-second
    # clock, or a duplicate) is judged by its age
    assert clocks.judge("a", t - 5, t + 1).stale is Stale.REPLAYED
    assert astuple(clocks.judge("a", t - 0.2, t + 0.5)) == (t, None, pytest.approx(0.5))
    assert clocks.judge("a", t - 0.2, t + 100).stale is Stale.OLD
    # delivered 30 s late: kept with its age (it ages out sooner); 300 s late: not kept
    late = clocks.judge("a", t + 10, t + 40)
    # (the on-time reading 0.5 s late above nudged the offset by a tenth of that)
    assert late.stale is None and late.age_s == pytest.approx(29.75)
    assert late.ts == pytest.approx(t + 40 - 29.75)
    assert astuple(clocks.judge("a", t + 11, t + 311)) == (None, Stale.OLD, pytest.approx(299.75))
    # a retained message: no device time, or a clock not known -> its age is unknown
    assert clocks.judge("b", None, t, retained=True).stale is Stale.RETAINED
    assert clocks.judge("b", t - 3600, t, retained=True).stale is Stale.RETAINED
    assert clocks.judge("b", None, t) == Judgement(t)  # a live message without ts: arrival


def test_a_device_clock_off_by_minutes_is_learned_and_a_replayed_burst_is_not() -> None:
    clocks = DeviceClocks(tolerance_s=2.0, max_age_s=60.0, relearn_s=5.0)
    t = 1.79e9
    behind = -600.0  # a device clock ten minutes slow, one reading a second
    verdicts = [clocks.judge("slow", t + k + behind, t + k) for k in range(8)]
    assert [v.stale for v in verdicts[:5]] == [Stale.UNSYNCED] * 5  # a replay looks the same
    assert verdicts[5] == Judgement(t + 5) and verdicts[7] == Judgement(t + 7)
    assert clocks.offset("slow") == pytest.approx(behind)
    # it drifts 0.5 s: still on time, the offset follows
    assert clocks.judge("slow", t + 8 + behind - 0.5, t + 8).stale is None
    # a gateway replays a buffered hour in a burst: every reading is old, none re-learns
    burst = [clocks.judge("slow", t - 3600 + k + behind, t + 9 + k * 1e-3) for k in range(50)]
    assert {v.stale for v in burst} == {Stale.REPLAYED}
    clocks2 = DeviceClocks(tolerance_s=2.0, max_age_s=60.0, relearn_s=5.0)
    clocks2.judge("g", t, t)
    burst = [clocks2.judge("g", t + 1 + k, t + 900 + k * 1e-3) for k in range(50)]
    assert {v.stale for v in burst} == {Stale.OLD} and clocks2.offset("g") == 0.0
    # a clock an hour ahead is not trusted before it has shown a steady offset
    assert clocks2.judge("fast", t + 3600, t).stale is Stale.UNSYNCED
    assert clocks.largest_offset() == pytest.approx(behind, abs=1)


async def test_case8_percent_soc_over_mqtt_keeps_the_reading_and_the_device_live(
    mqtt: MqttRig,
) -> None:
    topics = mqtt.topics
    async with mqtt.adapter({"hvac-0": LIMITS}) as adapter:
        async with mqtt.client() as device:
            for encoding in (Encoding.JSON, Encoding.MSGPACK):
                payload = encode({"ts": time.time(), "p_kw": 41.5, "soc": 55}, encoding)
                await device.publish(topics.telemetry("hvac-0"), payload, qos=1)
                reading = await _next_for(adapter, "hvac-0")
                assert reading.power_kw == 41.5 and reading.soc is None and reading.available
        assert adapter.stats.rejected_fields == {("soc", "out_of_range"): 2}
        assert adapter.stats.bad_payloads == 0 and adapter.stats.messages == 2


async def test_retained_and_replayed_readings_are_not_live(mqtt: MqttRig) -> None:
    topics = mqtt.topics
    assets = {"old": LIMITS, "nots": LIMITS, "fresh": LIMITS}
    mqtt.retained(*(topics.telemetry(asset) for asset in assets))
    now = time.time()
    async with mqtt.client() as device:
        # retained long ago, and retained without a time: delivered on subscribing
        old = encode({"ts": now - 3600, "p_kw": 70.0}, Encoding.JSON)
        await device.publish(topics.telemetry("old"), old, qos=1, retain=True)
        await device.publish(topics.telemetry("nots"), b'{"p_kw": 70}', qos=1, retain=True)
        await device.publish(topics.telemetry("fresh"), b'{"p_kw": 70}', qos=1, retain=True)
        async with mqtt.adapter(assets) as adapter:
            ts = time.time()
            fresh = encode({"ts": ts, "p_kw": 20.0}, Encoding.JSON)
            await device.publish(topics.telemetry("fresh"), fresh, qos=1)
            reading = await _next_for(adapter, "fresh")
            assert reading.power_kw == 20.0 and reading.ts == pytest.approx(ts, abs=2)
            # an older reading replayed after it is not taken
            replay = encode({"ts": ts - 1, "p_kw": 70.0}, Encoding.JSON)
            await device.publish(topics.telemetry("fresh"), replay, qos=1)
            newer = encode({"ts": ts + 1, "p_kw": 21.0}, Encoding.JSON)
            await device.publish(topics.telemetry("fresh"), newer, qos=1)
            assert (await _next_for(adapter, "fresh")).power_kw == 21.0
            assert adapter.last("old") is None and adapter.last("nots") is None
            assert adapter.stats.stale == {"retained": 3, "replayed": 1}


async def test_one_gateway_device_never_silences_another(mqtt: MqttRig) -> None:
    topics = mqtt.topics
    node = f"gw-{uuid.uuid4().hex[:6]}"
    assets = {"good": LIMITS, "mute": LIMITS, "liar": LIMITS}
    async with (
        mqtt.adapter(assets, ack_timeout_s=50.0) as adapter,
        mqtt.client() as gateway,
    ):
        await gateway.subscribe(topics.wildcard("cmd"), qos=1)

        async def serve() -> None:
            # "good" acks; "mute" never does; "liar" acks good's commands as its own
            async for message in gateway.messages:
                asset, _ = topics.split(message.topic.value)
                cmd, _ = decode_command(bytes(message.payload))
                ack = encode_ack(Ack(cmd.id, True, cmd.p_kw))
                if asset == "good":
                    await gateway.publish(topics.ack("liar"), ack, qos=1)
                    await gateway.publish(topics.ack("good"), ack, qos=1)

        server = asyncio.create_task(serve())
        muted = asyncio.create_task(adapter.apply(Setpoint(asset_id="mute", power_kw=30)))
        try:
            await asyncio.sleep(0)  # mute's command is out first
            good = await adapter.apply(Setpoint(asset_id="good", power_kw=30))
            assert good.confirmed
            # still waiting for its own ack (50 s), blocking nobody
            assert not muted.done()
            assert adapter.stats.rejected_fields == {("id", "inconsistent"): 1}
            # a gateway's will listing one garbled entry still marks the others down
            for asset in ("good", "mute"):
                await gateway.publish(topics.telemetry(asset), b'{"p_kw": 30}', qos=1)
                await _next_for(adapter, asset)
            await gateway.publish(
                topics.status(node), b'{"online": false, "assets": ["good", 7, "mute"]}', qos=1
            )
            await eventually(lambda: not any(_available(adapter, a) for a in ("good", "mute")))
            # offline: its command ends now, not at its ack timeout
            conf = await asyncio.wait_for(muted, 10)
            assert not conf.confirmed and "went offline" in conf.reason
        finally:
            muted.cancel()
            server.cancel()


async def test_malformed_ack_refuses_its_command_at_once(mqtt: MqttRig) -> None:
    topics = mqtt.topics
    async with (
        mqtt.adapter({"x": LIMITS}, ack_timeout_s=30.0) as adapter,
        mqtt.client() as device,
    ):
        await device.subscribe(topics.cmd("x"), qos=1)
        pending = asyncio.create_task(adapter.apply(Setpoint(asset_id="x", power_kw=30)))
        async for message in device.messages:
            cmd, _ = decode_command(bytes(message.payload))
            await device.publish(topics.ack("x"), json.dumps({"id": cmd.id, "ok": "sure"}), qos=1)
            break
        conf = await asyncio.wait_for(pending, 10)  # long before the 30 s ack timeout
        assert not conf.confirmed and "malformed ack" in conf.reason


async def test_clean_stop_leaves_the_service_status_offline(mqtt: MqttRig) -> None:
    status_topic = mqtt.topics.status(SERVICE_NODE)
    mqtt.retained(status_topic)

    async def retained_status() -> dict[str, Any]:
        async with mqtt.client() as reader:
            await reader.subscribe(status_topic, qos=1)
            async with asyncio.timeout(5):
                async for message in reader.messages:
                    assert message.retain
                    return dict(json.loads(bytes(message.payload)))
        raise AssertionError("unreachable")

    async with mqtt.adapter({"x": LIMITS}):
        assert await retained_status() == {"online": True}
    assert await retained_status() == {"online": False}


async def test_a_gateway_that_stops_cleanly_says_its_loads_are_offline(mqtt: MqttRig) -> None:
    loads = _loads(2)
    assets = _assets(loads)
    fleet = mqtt.fleet(loads, period_s=0.1)
    mqtt.retained(fleet.topics.status(fleet.node))
    async with mqtt.adapter(assets) as adapter:
        async with fleet:
            for asset in assets:
                await _next_for(adapter, asset)
        await eventually(lambda: not any(_available(adapter, a) for a in assets))
