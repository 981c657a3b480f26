"""The MQTT read seam: QoS 0 PUBLISH packets taken off paho's socket in batches.

Frames are parsed here and by paho from the same bytes and must agree; the
end-to-end tests run the adapter on a real Mosquitto with a burst of raw
frames, QoS 1 acks and status messages interleaved.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiomqtt
import paho.mqtt.client as paho_client
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from adapters._mqtt_transport import (
    Publish,
    ReadAhead,
    install_read_ahead,
    install_write_batching,
    publish_nowait,
    take_qos0_publishes,
)
from adapters.mqtt_codec import Encoding, Reason, encode_telemetry
from adapters.sim.loads import LoadSpec
from adapters.types import DeviceLimits, Setpoint
from tests.support import MqttRig, eventually

pytestmark = pytest.mark.timeout(60)


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _publish(
    topic: str, payload: bytes, *, qos: int = 0, retain: bool = False, props: bytes | None = None
) -> bytes:
    """A PUBLISH packet as a broker sends it: MQTT 3.1.1, or MQTT 5 with ``props``.

    ``props`` are the MQTT 5 properties with their length (`_props`).
    """
    raw = topic.encode()
    body = len(raw).to_bytes(2, "big") + raw + (b"\x00\x07" if qos else b"")
    body += (props or b"") + payload
    return bytes([0x30 | qos << 1 | retain]) + _length(len(body)) + body


def _props(**values: Any) -> bytes:
    """MQTT 5 PUBLISH properties as paho packs them (its attribute names), with their length."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(props, name, value)
    return bytes(props.pack())  # type: ignore[no-untyped-call]


def _raw_props(body: bytes) -> bytes:
    """Hand-made property bytes (paho would not pack them) with their length."""
    return _length(len(body)) + body


def _paho_reads(
    data: bytes, protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311
) -> list[Publish]:
    """What paho makes of the same bytes, as ``(topic, payload, retain)``."""
    got, _ = _paho_read(data, protocol)
    return got


def _paho_read(data: bytes, protocol: MQTTProtocolVersion) -> tuple[list[Publish], MQTTErrorCode]:
    """What paho makes of the same bytes, and the code its last packet read returned."""
    got: list[Publish] = []
    client = paho_client.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
    client.on_message = lambda _c, _u, m: got.append((m.topic.encode(), bytes(m.payload), m.retain))
    client._sock = _Feed(data)  # type: ignore[assignment]
    client._state = paho_client._ConnectionState.MQTT_CS_CONNECTED  # type: ignore[attr-defined]
    while (rc := client._packet_read()) == MQTTErrorCode.MQTT_ERR_SUCCESS:
        pass
    client._sock = None
    return got, rc


class _Feed:
    """A non-blocking socket stand-in that serves ``data`` then has nothing more."""

    def __init__(self, data: bytes, chunk: int = 1 << 20) -> None:
        self.data, self.at, self.chunk, self.reads = data, 0, chunk, 0

    def recv(self, n: int) -> bytes:
        if self.at >= len(self.data):
            raise BlockingIOError
        self.reads += 1
        out = self.data[self.at : self.at + min(n, self.chunk)]
        self.at += len(out)
        return out


def test_take_qos0_publishes_agrees_with_paho_and_stops_where_paho_must_read() -> None:
    frames = [
        _publish("vpp/p1/a1/telemetry", b'{"p_kw": 1}'),
        _publish("vpp/p1/a2/telemetry", b"\x81\xa4p_kw\x02", retain=True),
        _publish("vpp/p1/\u8868/telemetry", b"x" * 300),  # 2-byte length, UTF-8 topic
        _publish("vpp/p1/a3/telemetry", b""),
    ]
    data = b"".join(frames)
    out: list[Publish] = []
    assert take_qos0_publishes(data, out) == (len(data), False)
    assert out == _paho_reads(data)
    assert [r for _, _, r in out] == [False, True, False, False]

    qos1 = _publish("vpp/p1/a1/ack", b'{"id": "x"}', qos=1)
    out.clear()
    # the QoS 1 packet and all after it are paho's
    assert take_qos0_publishes(frames[0] + qos1 + frames[1], out) == (len(frames[0]), False)
    assert len(out) == 1

    for cut in range(1, len(frames[2])):  # a packet cut anywhere waits for its rest
        out.clear()
        assert take_qos0_publishes(frames[0] + frames[2][:cut], out) == (len(frames[0]), True)
    for malformed in (b"\x30\xff\xff\xff\xff\x7f", b"\x30\x01\x00", b"\x30\x03\x00\x09a"):
        assert take_qos0_publishes(malformed, out) == (0, False)  # paho reports it


def test_mqtt5_publishes_skip_their_properties_as_paho_does_at_every_cut() -> None:
    v5 = paho_client.MQTTv5
    frames = [
        _publish("vpp/p1/a1/telemetry", b'{"p_kw": 1}', props=b"\x00"),  # no properties
        _publish(
            "vpp/p1/a2/telemetry",
            b"\x81\xa4p_kw\x02",
            retain=True,
            props=_props(
                PayloadFormatIndicator=0,
                ContentType="application/msgpack",
                UserProperty=[("site", "n\u00f8rd"), ("fw", "2.1")],
                MessageExpiryInterval=30,
            ),
        ),
        _publish(
            "vpp/p1/a3/telemetry",
            b"x" * 300,
            props=_props(
                ResponseTopic="r/t", CorrelationData=b"\x00\xff", SubscriptionIdentifier=[300, 7]
            ),
        ),
    ]
    data = b"".join(frames)
    out: list[Publish] = []
    assert take_qos0_publishes(data, out, mqtt5=True) == (len(data), False)
    assert out == _paho_reads(data, v5)
    assert [p for _, p, _ in out] == [b'{"p_kw": 1}', b"\x81\xa4p_kw\x02", b"x" * 300]
    for frame in frames[1:]:
        for cut in range(1, len(frame)):  # cut anywhere, properties included: wait for the rest
            out.clear()
            assert take_qos0_publishes(frames[0] + frame[:cut], out, mqtt5=True) == (
                len(frames[0]),
                True,
            )
            assert out == _paho_reads(frames[0], v5)
            # the rest arrives: both read the same two messages
            whole = frames[0] + frame
            out.clear()
            assert take_qos0_publishes(whole, out, mqtt5=True) == (len(whole), False)
            assert out == _paho_reads(whole, v5)


@pytest.mark.parametrize(
    ("topic", "props", "paho_reads_it"),
    [
        # the topic is the broker's alias mapping: paho's to keep, not ours to guess
        ("", _props(TopicAlias=3), True),
        ("vpp/p1/a1/telemetry", _props(TopicAlias=3), True),
        ("", b"\x00", True),  # empty topic without an alias
        ("vpp/p1/a1/telemetry", _raw_props(b"\x01\x00\x01\x01"), False),  # repeated
        ("vpp/p1/a1/telemetry", _raw_props(b"\x03\x00\x02\xc3\x28"), False),  # bad UTF-8
        ("vpp/p1/a1/telemetry", _raw_props(b"\x03\x00\x01\x00"), False),  # U+0000
        ("vpp/p1/a1/telemetry", _raw_props(b"\x11\x00\x00\x00\x01"), False),  # not of PUBLISH
        ("vpp/p1/a1/telemetry", _raw_props(b"\x03\x00\x09ab"), False),  # past its length
        ("vpp/p1/a1/telemetry", b"\x7f", False),  # longer than the packet
    ],
)
def test_mqtt5_publishes_ours_cannot_read_as_paho_does_are_left_to_paho(
    topic: str, props: bytes, paho_reads_it: bool
) -> None:
    head = _publish("vpp/p1/a0/telemetry", b'{"p_kw": 1}', props=b"\x00")
    frame = _publish(topic, b'{"p_kw": 2}', props=props)
    out: list[Publish] = []
    assert take_qos0_publishes(head + frame + head, out, mqtt5=True) == (len(head), False)
    assert out == _paho_reads(head, paho_client.MQTTv5)
    got, rc = _paho_read(frame, paho_client.MQTTv5)
    if paho_reads_it:
        assert [p for _, p, _ in got] == [b'{"p_kw": 2}']
    else:  # paho refuses it (and the adapter's connection then ends, as it would without us)
        assert (got, rc) == ([], MQTTErrorCode.MQTT_ERR_PROTOCOL)


async def test_read_ahead_hands_telemetry_in_batches_and_leaves_the_rest_to_paho_in_order() -> None:
    telemetry = [_publish(f"vpp/p1/a{i}/telemetry", b"\x81\xa4p_kw\x01") for i in range(6000)]
    ack = _publish("vpp/p1/a1/ack", b'{"id": "x", "ok": true}', qos=1)
    data = b"".join(telemetry[:1000]) + ack + b"".join(telemetry[1000:])
    feed = _Feed(data, chunk=10_000)  # reads end inside packets
    batches: list[list[Publish]] = []
    boundary = [True]
    wrapper = ReadAhead(
        feed,  # type: ignore[arg-type]
        resume=lambda: None,
        publishes=batches.append,
        at_boundary=lambda: boundary[0],
    )
    # paho's first read at a boundary: the first 1000 go in batches, the ack is paho's
    assert wrapper.recv(1) == ack[:1]
    assert sum(map(len, batches)) == 1000
    boundary[0] = False  # paho reads the rest of the ack itself
    rest = b""
    while len(rest) < len(ack) - 1:
        rest += wrapper.recv(len(ack) - 1 - len(rest))
    assert ack[:1] + rest == ack
    boundary[0] = True
    # the rest goes out a turn at a time, and paho gets no byte of it
    turns = 0
    while sum(map(len, batches)) < 6000:
        with pytest.raises(BlockingIOError):
            wrapper.recv(1)
        turns += 1
        assert wrapper.pending() == 0  # what aiomqtt asks after each read: the turn ends
        await asyncio.sleep(0)  # the resume it schedules for a cut packet
    assert feed.at == len(data)
    got = [topic for batch in batches for topic, _, _ in batch]
    assert got == [f"vpp/p1/a{i}/telemetry".encode() for i in range(6000)]
    assert turns >= len(data) // (64 * 1024)  # a turn is bounded, whatever the backlog


async def test_half_a_publish_ends_the_turn_until_its_rest_arrives() -> None:
    # a fresh user's fake broker sent half a telemetry packet and held the rest:
    # the reader was told "more buffered" thousands of times a second (2.6 s CPU in 3 s)
    frame = _publish("vpp/p1/a1/telemetry", b"\x81\xa4p_kw\x01" + b"x" * 200)
    feed = _Feed(frame[:100])
    batches: list[list[Publish]] = []
    resumed: list[int] = []
    wrapper = ReadAhead(
        feed,  # type: ignore[arg-type]
        resume=lambda: resumed.append(1),
        publishes=batches.append,
        at_boundary=lambda: True,
    )
    with pytest.raises(BlockingIOError):
        wrapper.recv(1)
    assert wrapper.pending() == 0  # nothing to do until the kernel has the rest
    await asyncio.sleep(0)
    assert not resumed and not batches  # no resume scheduled: the socket's readiness wakes it
    feed.data += frame[100:]  # the rest arrives
    with pytest.raises(BlockingIOError):
        wrapper.recv(1)
    assert [t for b in batches for t, _, _ in b] == [b"vpp/p1/a1/telemetry"]
    assert wrapper.pending() == 0


def _raw_burst(rig: MqttRig, frames: list[bytes]) -> None:
    """Publish pre-built QoS 0 frames from a plain socket, as fast as it takes them."""

    def utf8(text: str) -> bytes:
        return len(text.encode()).to_bytes(2, "big") + text.encode()

    body = utf8("MQTT") + bytes([4, 0x02, 0, 60]) + utf8(f"burst-{time.time_ns()}")
    with socket.create_connection((rig.host, rig.port), timeout=10) as sock:
        sock.sendall(b"\x10" + _length(len(body)) + body)
        assert sock.recv(4)[:1] == b"\x20"
        sock.sendall(b"".join(frames))
        sock.sendall(b"\xc0\x00")  # PINGREQ: answered once the broker read all before it
        assert sock.recv(2) == b"\xd0\x00"
        sock.sendall(b"\xe0\x00")


@pytest.mark.parametrize("share_group", ["", "burst"])
async def test_a_burst_of_telemetry_is_read_whole_with_bad_fields_counted(
    mqtt: MqttRig, share_group: str
) -> None:
    assets = {f"a{i:03d}": DeviceLimits(p_min_kw=0, p_max_kw=100) for i in range(200)}
    good = encode_telemetry(p_kw=5.0, e_kwh=1.0, max_kw=50.0, encoding=Encoding.MSGPACK)
    bad_soc = encode_telemetry(p_kw=6.0, soc=55.0, encoding=Encoding.JSON)  # percent, not 0..1
    frames = [
        _publish(mqtt.topics.telemetry(f"a{i % 200:03d}"), bad_soc if i == 777 else good)
        for i in range(5000)
    ]
    frames.append(_publish(mqtt.topics.telemetry("stranger"), good))  # not enrolled: ignored
    frames.append(_publish(mqtt.topics.telemetry("a001"), b"\xc1"))  # undecodable
    async with mqtt.adapter(assets, share_group=share_group) as adapter:
        # the MQTT 5 connection takes its QoS 0 telemetry past paho
        paho = adapter._client._client if adapter._client else None
        assert paho is not None and paho._protocol == paho_client.MQTTv5
        assert isinstance(paho._sock, ReadAhead) and paho._sock._publishes is not None
        await asyncio.to_thread(_raw_burst, mqtt, frames)
        readings = []
        async with asyncio.timeout(20):
            async for batch in adapter.telemetry_batches():
                readings.extend(batch)
                if len(readings) >= 5000:
                    break
        assert len(readings) == 5000
        assert adapter.stats.messages == 5000
        assert adapter.stats.bad_payloads == 1
        assert adapter.stats.rejected_fields == {("soc", Reason.OUT_OF_RANGE.value): 1}
        kept = readings[777]  # the bad field cost that field, not the reading
        assert (kept.asset_id, kept.power_kw, kept.soc) == ("a177", 6.0, None)
        assert {r.power_kw for i, r in enumerate(readings) if i != 777} == {5.0}
        assert adapter.last("a199") is not None


async def test_setpoints_are_acked_while_telemetry_floods_the_same_connection(
    mqtt: MqttRig,
) -> None:
    specs = [LoadSpec(asset_id=f"hvac-{i}", ramp_kw_per_s=50.0) for i in range(3)]
    loads = [s.asset_id for s in specs]
    assets = {a: DeviceLimits(p_min_kw=10, p_max_kw=80) for a in loads}
    async with (
        mqtt.adapter(assets) as adapter,
        mqtt.fleet(specs, period_s=0.05, encoding=Encoding.MSGPACK),
    ):
        await eventually(lambda: all(adapter.last(a) is not None for a in loads), within_s=10)
        flood = [
            _publish(mqtt.topics.telemetry("hvac-0"), encode_telemetry(p_kw=40.0))
            for _ in range(20_000)
        ]
        burst = asyncio.create_task(asyncio.to_thread(_raw_burst, mqtt, flood))
        confirmations = await asyncio.gather(
            *(adapter.apply(Setpoint(asset_id=a, power_kw=30.0)) for a in loads)
        )
        await burst
        assert all(c.confirmed for c in confirmations), confirmations


async def test_install_read_ahead_leaves_a_client_of_another_shape_alone() -> None:
    client = aiomqtt.Client("127.0.0.1")
    assert install_read_ahead(client, lambda batch: None) is False  # not connected: no socket


async def test_a_burst_is_written_in_one_writer_turn_and_arrives_whole_in_order(
    mqtt: MqttRig,
) -> None:
    topic = f"{mqtt.root}/burst"
    got: list[bytes] = []
    # no in-flight limit: paho sends every QoS 1 message at once (as the adapter's)
    publisher = aiomqtt.Client(mqtt.host, mqtt.port, max_inflight_messages=0)
    async with mqtt.client() as sub, publisher as pub:
        await sub.subscribe(topic, qos=1)
        assert install_write_batching(pub)
        paho = pub._client
        turns = 0
        loop_write = paho.loop_write

        def counted() -> MQTTErrorCode:
            nonlocal turns
            turns += 1
            return loop_write()

        paho.loop_write = counted  # type: ignore[method-assign]
        for i in range(300):  # one loop turn: no await between them
            publish_nowait(pub, topic, str(i).encode(), qos=1)
        async with asyncio.timeout(10):
            async for message in sub.messages:
                assert isinstance(message.payload, bytes)
                got.append(message.payload)
                if len(got) == 300:
                    break
        # every QoS 1 message was taken by the broker (paho keeps none for a resend)
        await eventually(lambda: not paho._out_messages, within_s=5)
    assert got == [str(i).encode() for i in range(300)]
    # registered straight on the loop: the first writer turn wrote them all
    # (a second one only if the kernel's buffer was full)
    assert 1 <= turns <= 2


async def test_publish_nowait_refuses_at_once_when_not_connected() -> None:
    client = aiomqtt.Client("127.0.0.1")
    with pytest.raises(aiomqtt.MqttCodeError):
        publish_nowait(client, "t", b"x", qos=0)
    # not connected: left as it is
    assert install_write_batching(client) is False
