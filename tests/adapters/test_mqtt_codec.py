"""How an MQTT payload's encoding is told apart (the adapter answers a device in it)."""

from __future__ import annotations

import pytest

from adapters import mqtt_codec as codec


def test_a_payload_is_answered_in_the_encoding_it_was_read_in() -> None:
    # a fresh user's JSON device sent "\n{...}": it was decoded as JSON but remembered
    # as msgpack, so its commands went out in a format it cannot read
    for payload in (b'\n{"p_kw": 1}', b' {"p_kw": 1}', b'{"p_kw": 1}', b'\t\r\n{"p_kw":1}'):
        assert codec.encoding_of(payload) is codec.Encoding.JSON
        assert codec.decode(payload)[1] is codec.Encoding.JSON
    packed = codec.encode({"p_kw": 1.0}, codec.Encoding.MSGPACK)
    assert codec.encoding_of(packed) is codec.Encoding.MSGPACK
    assert codec.decode(packed)[1] is codec.Encoding.MSGPACK


def test_a_share_group_makes_a_shared_subscription_and_none_a_plain_one() -> None:
    assert codec.shared("vpp", "r/p1/+/telemetry") == "$share/vpp/r/p1/+/telemetry"
    assert codec.shared("", "r/p1/+/telemetry") == "r/p1/+/telemetry"
    for bad in ("a/b", "a+", "#"):  # not allowed in a share name (MQTT 5 section 4.8.2)
        with pytest.raises(ValueError, match="must not contain"):
            codec.shared(bad, "r/p1/+/telemetry")
