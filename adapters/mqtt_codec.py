"""MQTT topics and payloads for flexible loads (no connection logic here).

Topics, per park and asset, under a configurable root (default ``vpp``)::

    {root}/{park}/{asset}/telemetry   device -> service  QoS 0
    {root}/{park}/{asset}/cmd         service -> device  QoS 1
    {root}/{park}/{asset}/ack         device -> service  QoS 1
    {root}/{park}/{node}/status       device -> service  QoS 1, retained, last will

Payloads are JSON objects or msgpack maps with the same keys (a payload whose
first byte is ``{`` is JSON, anything else is tried as msgpack)::

    telemetry  {"ts": 1.7e9, "p_kw": 41.5, "soc": 0.5?, "e_kwh": 1234.5?,
                "max_kw": 60?, "min_kw": 10?}
    cmd        {"id": "9f..", "p_kw": 30.0 | null, "hold_s": 900, "ts": 1.7e9}
               (``p_kw: null`` hands control back to the device)
    ack        {"id": "9f..", "ok": true, "p_kw": 30.0, "reason": ""?}
    status     {"online": false, "assets": ["hvac-1", ...]?}   or "online"/"offline"

A ``status`` node is one device (``assets`` omitted: the node is the asset) or a
gateway speaking for many assets over one connection, whose last will lists
them. ``ts`` is UNIX seconds; ``soc`` is 0..1; powers are kW, positive = drawn
from the grid.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgpack

from adapters.errors import PayloadError
from adapters.types import Telemetry, TelemetrySource

__all__ = [
    "Ack",
    "Command",
    "Encoding",
    "Status",
    "Topics",
    "decode",
    "decode_ack",
    "decode_command",
    "decode_status",
    "decode_telemetry",
    "encode",
    "encode_ack",
    "encode_command",
    "encode_status",
    "encode_telemetry",
]

#: Largest power magnitude accepted from a device (kW); beyond it a reading is garbage.
MAX_ABS_KW = 1.0e6


class Encoding(StrEnum):
    """Payload encoding."""

    #: UTF-8 JSON object.
    JSON = "json"
    #: msgpack map.
    MSGPACK = "msgpack"


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names for one park under one root.

    Args:
        root: the first topic level(s), e.g. ``vpp`` or a unique test prefix.
        park: the park id.
    """

    root: str
    park: str

    def telemetry(self, asset: str) -> str:
        """Topic a device publishes readings on."""
        return f"{self.root}/{self.park}/{asset}/telemetry"

    def cmd(self, asset: str) -> str:
        """Topic the service publishes setpoints on."""
        return f"{self.root}/{self.park}/{asset}/cmd"

    def ack(self, asset: str) -> str:
        """Topic a device acknowledges setpoints on."""
        return f"{self.root}/{self.park}/{asset}/ack"

    def status(self, node: str) -> str:
        """Retained availability topic (and last will) of a device or gateway."""
        return f"{self.root}/{self.park}/{node}/status"

    def wildcard(self, leaf: str) -> str:
        """Subscription covering every asset's ``leaf`` topic."""
        return f"{self.root}/{self.park}/+/{leaf}"

    def split(self, topic: str) -> tuple[str, str]:
        """Return ``(asset, leaf)`` of a topic under this park, or raise PayloadError."""
        head = f"{self.root}/{self.park}/"
        if not topic.startswith(head):
            raise PayloadError(f"topic {topic!r} is not under {head!r}")
        asset, _, leaf = topic[len(head) :].partition("/")
        if not asset or "/" in leaf:
            raise PayloadError(f"unexpected topic {topic!r}")
        return asset, leaf


@dataclass(frozen=True, slots=True)
class Command:
    """A setpoint on the wire (``p_kw`` None = release control)."""

    id: str
    p_kw: float | None
    hold_s: float
    ts: float


@dataclass(frozen=True, slots=True)
class Ack:
    """A device's answer to a command."""

    id: str
    ok: bool
    p_kw: float | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Status:
    """Availability of a node and the assets it speaks for (empty: the node itself)."""

    online: bool
    assets: tuple[str, ...] = ()


def encode(obj: dict[str, Any], encoding: Encoding) -> bytes:
    """Encode a payload map."""
    if encoding is Encoding.MSGPACK:
        return bytes(msgpack.packb(obj, use_bin_type=True))
    return json.dumps(obj, separators=(",", ":")).encode()


def decode(payload: bytes | bytearray) -> tuple[dict[str, Any], Encoding]:
    """Decode a payload map and tell which encoding it used.

    Raises:
        PayloadError: not a JSON object nor a msgpack map.
    """
    data = bytes(payload)
    if not data:
        raise PayloadError("empty payload")
    try:
        if data[:1] in (b"{", b" ", b"\n", b"\t", b"\r"):
            obj, enc = json.loads(data), Encoding.JSON
        else:
            obj, enc = msgpack.unpackb(data, raw=False, strict_map_key=True), Encoding.MSGPACK
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise PayloadError(f"undecodable payload: {exc}") from exc
    if not isinstance(obj, dict):
        raise PayloadError(f"payload is a {type(obj).__name__}, not a map")
    return obj, enc


def _number(obj: dict[str, Any], key: str, *, lo: float, hi: float, required: bool) -> float | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise PayloadError(f"missing {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{key!r} is not a number: {value!r}")
    number = float(value)
    if not (math.isfinite(number) and lo <= number <= hi):
        raise PayloadError(f"{key!r} out of range: {value!r}")
    return number


def encode_telemetry(
    *,
    p_kw: float,
    ts: float,
    soc: float | None = None,
    e_kwh: float | None = None,
    max_kw: float | None = None,
    min_kw: float | None = None,
    encoding: Encoding = Encoding.JSON,
) -> bytes:
    """Encode one reading as a device publishes it."""
    obj: dict[str, Any] = {"ts": ts, "p_kw": p_kw}
    for key, value in (("soc", soc), ("e_kwh", e_kwh), ("max_kw", max_kw), ("min_kw", min_kw)):
        if value is not None:
            obj[key] = value
    return encode(obj, encoding)


def decode_telemetry(asset_id: str, payload: bytes | bytearray) -> Telemetry:
    """Decode one device reading into a :class:`Telemetry`.

    Raises:
        PayloadError: malformed, missing ``p_kw``, or a value out of range.
    """
    obj, _ = decode(payload)
    p_kw = _number(obj, "p_kw", lo=-MAX_ABS_KW, hi=MAX_ABS_KW, required=True)
    assert p_kw is not None
    ts = _number(obj, "ts", lo=0.0, hi=1.0e11, required=False)
    max_kw = _number(obj, "max_kw", lo=-MAX_ABS_KW, hi=MAX_ABS_KW, required=False)
    min_kw = _number(obj, "min_kw", lo=-MAX_ABS_KW, hi=MAX_ABS_KW, required=False)
    return Telemetry(
        asset_id=asset_id,
        ts=time.time() if ts is None else ts,
        power_kw=p_kw,
        soc=_number(obj, "soc", lo=0.0, hi=1.0, required=False),
        energy_kwh=_number(obj, "e_kwh", lo=-1.0e12, hi=1.0e12, required=False),
        max_charge_kw=max_kw,
        max_discharge_kw=None if min_kw is None else max(0.0, -min_kw),
        source=TelemetrySource.MQTT,
    )


def encode_command(cmd: Command, encoding: Encoding = Encoding.JSON) -> bytes:
    """Encode a setpoint command."""
    return encode({"id": cmd.id, "p_kw": cmd.p_kw, "hold_s": cmd.hold_s, "ts": cmd.ts}, encoding)


def decode_command(payload: bytes | bytearray) -> tuple[Command, Encoding]:
    """Decode a setpoint command (device side).

    Raises:
        PayloadError: malformed or out of range.
    """
    obj, enc = decode(payload)
    cmd_id = obj.get("id")
    if not isinstance(cmd_id, str) or not cmd_id:
        raise PayloadError("command without an id")
    p_kw = _number(obj, "p_kw", lo=-MAX_ABS_KW, hi=MAX_ABS_KW, required=False)
    hold_s = _number(obj, "hold_s", lo=0.0, hi=1.0e7, required=False)
    ts = _number(obj, "ts", lo=0.0, hi=1.0e11, required=False)
    return Command(cmd_id, p_kw, 900.0 if hold_s is None else hold_s, ts or time.time()), enc


def encode_ack(ack: Ack, encoding: Encoding = Encoding.JSON) -> bytes:
    """Encode a device's acknowledgement."""
    obj: dict[str, Any] = {"id": ack.id, "ok": ack.ok, "p_kw": ack.p_kw}
    if ack.reason:
        obj["reason"] = ack.reason
    return encode(obj, encoding)


def decode_ack(payload: bytes | bytearray) -> Ack:
    """Decode a device's acknowledgement.

    Raises:
        PayloadError: malformed.
    """
    obj, _ = decode(payload)
    cmd_id, ok = obj.get("id"), obj.get("ok")
    if not isinstance(cmd_id, str) or not isinstance(ok, bool):
        raise PayloadError("ack needs a string 'id' and a boolean 'ok'")
    reason = obj.get("reason", "")
    p_kw = _number(obj, "p_kw", lo=-MAX_ABS_KW, hi=MAX_ABS_KW, required=False)
    return Ack(cmd_id, ok, p_kw, reason if isinstance(reason, str) else str(reason))


def encode_status(status: Status) -> bytes:
    """Encode an availability message (always JSON, it is retained and read by people)."""
    obj: dict[str, Any] = {"online": status.online}
    if status.assets:
        obj["assets"] = list(status.assets)
    return encode(obj, Encoding.JSON)


def decode_status(payload: bytes | bytearray) -> Status:
    """Decode an availability message (a map, or the bare words online/offline).

    Raises:
        PayloadError: anything else.
    """
    word = bytes(payload).strip().lower()
    if word in (b"online", b"offline"):
        return Status(word == b"online")
    obj, _ = decode(payload)
    online, assets = obj.get("online"), obj.get("assets", [])
    if not isinstance(online, bool) or not isinstance(assets, list):
        raise PayloadError("status needs a boolean 'online' and an optional list 'assets'")
    if not all(isinstance(a, str) for a in assets):
        raise PayloadError("status 'assets' must be strings")
    return Status(online, tuple(assets))
