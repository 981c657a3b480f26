"""MQTT topics and payloads for flexible loads and meters (no connection logic here).

Topics, per park and asset, under a configurable root (default ``vpp``)::

    {root}/{park}/{asset}/telemetry   device -> service  QoS 0
    {root}/{park}/{asset}/cmd         service -> device  QoS 1
    {root}/{park}/{asset}/ack         device -> service  QoS 1
    {root}/{park}/{node}/status       device -> service  QoS 1, retained, last will

The service subscribes to ``{root}/{park}/+/telemetry`` as an MQTT 5 shared
subscription (:func:`shared`) when several service replicas read one park,
and to the ``ack`` and ``status`` filters as plain subscriptions.

Payloads are JSON objects or msgpack maps with the same keys (a payload whose
first byte is ``{`` is JSON, anything else is tried as msgpack)::

    telemetry  {"ts": 1.7e9?, "p_kw": 41.5, "soc": 0.5?, "e_kwh": 1234.5?,
                "max_kw": 60?, "min_kw": 10?, "ev_connected": true?,
                "departure_ts": 1.7e9?, "energy_needed_kwh": 12.0?}
    cmd        {"id": "9f..", "p_kw": 30.0 | null, "hold_s": 900, "ts": 1.7e9}
               (``p_kw: null`` hands control back to the device)
    ack        {"id": "9f..", "ok": true, "p_kw": 30.0, "reason": ""?}
    status     {"online": false, "assets": ["hvac-1", ...]?}   or "online"/"offline"

A ``status`` node is one device (``assets`` omitted: the node is the asset) or a
gateway speaking for many assets over one connection, whose last will lists
them. ``ts`` is UNIX seconds; ``soc`` is 0..1; powers are kW, positive = drawn
from the grid; ``max_kw`` (what the device can draw now) is >= 0 and
``min_kw`` <= ``max_kw``; ``departure_ts`` is UNIX seconds and
``energy_needed_kwh`` >= 0 (EV sessions). Keys not listed are ignored. A
meter publishes the same telemetry (``p_kw``, positive = imported, and
``e_kwh``, its energy register imported minus exported, both on its own
secondary side: the service applies the enrolled multiplier) and takes no
commands.

Validation is per field (one bad field costs that field, not the reading):
a telemetry field that is missing where required, of the wrong type (a
string or a boolean where a number belongs), not finite (NaN, inf) or out of
range (SoC 55, i.e. percent instead of a fraction; a negative ``max_kw``) is
dropped and reported as a :class:`FieldIssue`; the rest of the reading is
kept. A reading without a usable ``p_kw`` has nothing to carry the other
fields and is not kept (its ``p_kw`` is reported). Only a payload that cannot
be decoded at all (not JSON, not msgpack, not a map) raises
:class:`~adapters.errors.PayloadError`. Acks and status messages are read
the same way: a malformed ``ok`` turns into a refusal of that one command, a
bad entry of a gateway's ``assets`` list costs that entry.
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
    "MAX_ABS_KW",
    "MAX_TS",
    "Ack",
    "Command",
    "DecodedTelemetry",
    "Encoding",
    "FieldIssue",
    "Reason",
    "Status",
    "TelemetryValues",
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
    "encoding_of",
    "shared",
    "telemetry_values",
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


def shared(group: str, topic_filter: str) -> str:
    """The MQTT 5 shared subscription ``$share/{group}/{filter}`` (section 4.8.2).

    The broker delivers each message matching ``topic_filter`` to one
    subscriber of the group, with its own topic name (no ``$share`` prefix).

    Args:
        group: the share name; empty: ``topic_filter`` itself, a plain subscription.
        topic_filter: the filter, e.g. ``vpp/p1/+/telemetry``.

    Raises:
        ValueError: ``group`` holds ``/``, ``+`` or ``#`` (not allowed in a share name).
    """
    if not group:
        return topic_filter
    if any(c in group for c in "/+#"):
        raise ValueError(f"share group {group!r} must not contain '/', '+' or '#'")
    return f"$share/{group}/{topic_filter}"


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


def encoding_of(payload: bytes | bytearray) -> Encoding:
    """The encoding a payload is read as (and a device is answered in).

    JSON when it starts with ``{`` or JSON whitespace, msgpack otherwise (a
    msgpack map never starts with those bytes).
    """
    return Encoding.JSON if payload[:1] in (b"{", b" ", b"\n", b"\t", b"\r") else Encoding.MSGPACK


def decode(payload: bytes | bytearray) -> tuple[dict[str, Any], Encoding]:
    """Decode a payload map and tell which encoding it used.

    Raises:
        PayloadError: not a JSON object nor a msgpack map.
    """
    data = bytes(payload)
    if not data:
        raise PayloadError("empty payload")
    try:
        if encoding_of(data) is Encoding.JSON:
            obj, enc = json.loads(data), Encoding.JSON
        else:
            obj, enc = msgpack.unpackb(data, raw=False, strict_map_key=True), Encoding.MSGPACK
    except (
        ValueError,  # JSON syntax, UTF-8, msgpack map keys, over-long integer strings
        RecursionError,  # JSON nested deeper than the parser's stack
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
    ) as exc:
        raise PayloadError(f"undecodable payload: {exc}") from exc
    if not isinstance(obj, dict):
        raise PayloadError(f"payload is a {type(obj).__name__}, not a map")
    return obj, enc


class Reason(StrEnum):
    """Why one field was dropped (the ``reason`` label of the rejected-field counter)."""

    #: a required field is absent
    MISSING = "missing"
    #: not a number (a string, a boolean, a list...) where a number belongs
    NOT_A_NUMBER = "not_a_number"
    #: NaN or an infinity
    NOT_FINITE = "not_finite"
    #: a number outside the field's range (SoC 55, a negative limit...)
    OUT_OF_RANGE = "out_of_range"
    #: the wrong type for a non-numeric field (a boolean, a string, a list)
    WRONG_TYPE = "wrong_type"
    #: contradicts another field of the same message (``min_kw`` above ``max_kw``)
    INCONSISTENT = "inconsistent"


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One field dropped from an incoming message.

    Attributes:
        name: the payload key (``soc``, ``p_kw``...).
        reason: why it was dropped.
        value: what the device sent (for the log).
    """

    name: str
    reason: Reason
    value: object


@dataclass(frozen=True, slots=True)
class DecodedTelemetry:
    """One telemetry payload read field by field.

    Attributes:
        reading: the reading, or None when ``p_kw`` was unusable. Its ``ts`` is
            the device's ``ts`` when valid, else the receive time.
        device_ts: the device's own timestamp (UNIX seconds) when valid.
        issues: the fields dropped.
    """

    reading: Telemetry | None
    device_ts: float | None
    issues: tuple[FieldIssue, ...]


class _Fields:
    """Reads the fields of one decoded map, collecting what is dropped."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.issues: list[FieldIssue] = []

    def drop(self, key: str, reason: Reason) -> None:
        self.issues.append(FieldIssue(key, reason, self.obj.get(key)))

    def number(self, key: str, *, lo: float, hi: float, required: bool = False) -> float | None:
        """The field as a finite float within ``[lo, hi]``, else None (and an issue)."""
        value = self.obj.get(key)
        if value is None:
            if required:
                self.drop(key, Reason.MISSING)
            return None
        # bool is an int in Python; a device sending true for a power is not sending 1 kW
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.drop(key, Reason.NOT_A_NUMBER)
            return None
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            self.drop(key, Reason.OUT_OF_RANGE)
            return None
        if not math.isfinite(number):
            self.drop(key, Reason.NOT_FINITE)
            return None
        if not lo <= number <= hi:
            self.drop(key, Reason.OUT_OF_RANGE)
            return None
        return number

    def flag(self, key: str) -> bool | None:
        """The field as a strict boolean, else None (and an issue when present)."""
        value = self.obj.get(key)
        if value is None or isinstance(value, bool):
            return value
        self.drop(key, Reason.WRONG_TYPE)
        return None


#: Latest UNIX time accepted in a payload (year 5138); beyond it a ``ts`` is garbage.
MAX_TS = 1.0e11


def encode_telemetry(
    *,
    p_kw: float,
    ts: float | None = None,
    soc: float | None = None,
    e_kwh: float | None = None,
    max_kw: float | None = None,
    min_kw: float | None = None,
    ev_connected: bool | None = None,
    departure_ts: float | None = None,
    energy_needed_kwh: float | None = None,
    encoding: Encoding = Encoding.JSON,
) -> bytes:
    """Encode one reading as a device publishes it (None values are left out)."""
    obj: dict[str, Any] = {"p_kw": p_kw}
    for key, value in (
        ("ts", ts),
        ("soc", soc),
        ("e_kwh", e_kwh),
        ("max_kw", max_kw),
        ("min_kw", min_kw),
        ("ev_connected", ev_connected),
        ("departure_ts", departure_ts),
        ("energy_needed_kwh", energy_needed_kwh),
    ):
        if value is not None:
            obj[key] = value
    return encode(obj, encoding)


#: Range of each numeric telemetry field ``(lo, hi)``, and its name in :class:`Telemetry`.
_NUMBERS: dict[str, tuple[float, float, str]] = {
    "p_kw": (-MAX_ABS_KW, MAX_ABS_KW, "power_kw"),
    "ts": (0.0, MAX_TS, ""),
    "soc": (0.0, 1.0, "soc"),
    "e_kwh": (-1.0e12, 1.0e12, "energy_kwh"),
    "max_kw": (0.0, MAX_ABS_KW, "max_charge_kw"),
    "min_kw": (-MAX_ABS_KW, MAX_ABS_KW, ""),
    "departure_ts": (0.0, MAX_TS, "departure_ts"),
    "energy_needed_kwh": (0.0, MAX_ABS_KW, "energy_needed_kwh"),
}


@dataclass(frozen=True, slots=True)
class TelemetryValues:
    """One telemetry payload read field by field, before it is dated.

    Attributes:
        values: keyword arguments of :class:`Telemetry` besides ``asset_id``,
            ``ts`` and ``source`` (only the fields the device sent validly), or
            None when ``p_kw`` was unusable.
        device_ts: the device's own timestamp (UNIX seconds) when valid.
        issues: the fields dropped.
    """

    values: dict[str, Any] | None
    device_ts: float | None
    issues: tuple[FieldIssue, ...]


def _clean_values(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The common case, checked in one pass: every known field valid, ``p_kw`` present.

    Returns the :class:`TelemetryValues` ``values`` (plus ``ts`` under ``"ts"``),
    or None when any field needs the field-by-field reading of :class:`_Fields`.
    """
    out: dict[str, Any] = {}
    for key, value in obj.items():
        spec = _NUMBERS.get(key)
        if spec is None:
            if key == "ev_connected" and value is not None:
                if value is not True and value is not False:
                    return None
                out["ev_connected"] = value
            continue
        if value is None:
            continue
        kind = type(value)  # exact: a bool is an int, and is not a number here
        # NaN fails every comparison, so it falls to the slow path too
        if not ((kind is float or kind is int) and spec[0] <= value <= spec[1]):
            return None
        out[spec[2] or key] = float(value)
    if "power_kw" not in out:
        return None
    min_kw = out.pop("min_kw", None)
    if min_kw is not None:
        if "max_charge_kw" in out and min_kw > out["max_charge_kw"]:
            return None
        out["max_discharge_kw"] = max(0.0, -min_kw)
    return out


def telemetry_values(payload: bytes | bytearray) -> TelemetryValues:
    """Decode one device reading field by field (see the module docstring), undated.

    A payload whose every known field is valid is read in one pass; any
    other is read field by field, each bad field dropped and reported.

    Raises:
        PayloadError: the payload cannot be decoded at all.
    """
    obj, _ = decode(payload)
    clean = _clean_values(obj)
    if clean is not None:
        return TelemetryValues(clean, clean.pop("ts", None), ())
    f = _Fields(obj)
    p_kw = f.number("p_kw", lo=-MAX_ABS_KW, hi=MAX_ABS_KW, required=True)
    device_ts = f.number("ts", lo=0.0, hi=MAX_TS)
    soc = f.number("soc", lo=0.0, hi=1.0)
    e_kwh = f.number("e_kwh", lo=-1.0e12, hi=1.0e12)
    max_kw = f.number("max_kw", lo=0.0, hi=MAX_ABS_KW)
    min_kw = f.number("min_kw", lo=-MAX_ABS_KW, hi=MAX_ABS_KW)
    if min_kw is not None and max_kw is not None and min_kw > max_kw:
        f.drop("min_kw", Reason.INCONSISTENT)
        min_kw = None
    ev_connected = f.flag("ev_connected")
    departure_ts = f.number("departure_ts", lo=0.0, hi=MAX_TS)
    needed = f.number("energy_needed_kwh", lo=0.0, hi=MAX_ABS_KW)
    issues = tuple(f.issues)
    if p_kw is None:
        return TelemetryValues(None, device_ts, issues)
    values = {
        "power_kw": p_kw,
        "soc": soc,
        "energy_kwh": e_kwh,
        "max_charge_kw": max_kw,
        "max_discharge_kw": None if min_kw is None else max(0.0, -min_kw),
        "ev_connected": ev_connected,
        "departure_ts": departure_ts,
        "energy_needed_kwh": needed,
    }
    return TelemetryValues({k: v for k, v in values.items() if v is not None}, device_ts, issues)


def decode_telemetry(
    asset_id: str, payload: bytes | bytearray, *, received: float | None = None
) -> DecodedTelemetry:
    """Decode one device reading field by field (see the module docstring).

    Args:
        asset_id: the asset the topic names.
        payload: the raw payload.
        received: receive time (UNIX seconds; default now), the reading's ``ts``
            when the device gave none or an invalid one.

    Raises:
        PayloadError: the payload cannot be decoded at all.
    """
    read = telemetry_values(payload)
    if read.values is None:
        return DecodedTelemetry(None, read.device_ts, read.issues)
    ts = read.device_ts if read.device_ts is not None else (received or time.time())
    reading = Telemetry(asset_id=asset_id, ts=ts, source=TelemetrySource.MQTT, **read.values)
    return DecodedTelemetry(reading, read.device_ts, read.issues)


def encode_command(cmd: Command, encoding: Encoding = Encoding.JSON) -> bytes:
    """Encode a setpoint command."""
    return encode({"id": cmd.id, "p_kw": cmd.p_kw, "hold_s": cmd.hold_s, "ts": cmd.ts}, encoding)


def decode_command(payload: bytes | bytearray) -> tuple[Command, Encoding]:
    """Decode a setpoint command (device side: a device acts on all of it or none).

    Raises:
        PayloadError: malformed, or any field of the wrong type or out of range.
    """
    obj, enc = decode(payload)
    cmd_id = obj.get("id")
    if not isinstance(cmd_id, str) or not cmd_id:
        raise PayloadError("command without an id")
    f = _Fields(obj)
    p_kw = f.number("p_kw", lo=-MAX_ABS_KW, hi=MAX_ABS_KW)
    hold_s = f.number("hold_s", lo=0.0, hi=1.0e7)
    ts = f.number("ts", lo=0.0, hi=MAX_TS)
    if f.issues:
        raise PayloadError("; ".join(f"{i.name} {i.reason}: {i.value!r}" for i in f.issues))
    return Command(cmd_id, p_kw, 900.0 if hold_s is None else hold_s, ts or time.time()), enc


def encode_ack(ack: Ack, encoding: Encoding = Encoding.JSON) -> bytes:
    """Encode a device's acknowledgement."""
    obj: dict[str, Any] = {"id": ack.id, "ok": ack.ok, "p_kw": ack.p_kw}
    if ack.reason:
        obj["reason"] = ack.reason
    return encode(obj, encoding)


def decode_ack(payload: bytes | bytearray) -> tuple[Ack, tuple[FieldIssue, ...]]:
    """Decode a device's acknowledgement, field by field.

    An ack whose ``ok`` is not a boolean answers its command as a refusal
    (the device said something, but not yes) rather than leaving it to time
    out; a bad ``p_kw`` is dropped (the command is then not confirmed, as
    the applied power is unknown).

    Returns:
        The ack and the fields dropped from it.

    Raises:
        PayloadError: undecodable, or no string ``id`` (nothing to answer).
    """
    obj, _ = decode(payload)
    cmd_id = obj.get("id")
    if not isinstance(cmd_id, str) or not cmd_id:
        raise PayloadError("ack without a string 'id'")
    f = _Fields(obj)
    ok = f.flag("ok")
    if ok is None and "ok" not in f.obj:
        f.drop("ok", Reason.MISSING)
    p_kw = f.number("p_kw", lo=-MAX_ABS_KW, hi=MAX_ABS_KW)
    reason = obj.get("reason", "")
    reason = reason if isinstance(reason, str) else str(reason)
    if ok is None:
        reason = f"malformed ack ('ok' is {obj.get('ok')!r})"
    return Ack(cmd_id, bool(ok), p_kw, reason), tuple(f.issues)


def encode_status(status: Status) -> bytes:
    """Encode an availability message (always JSON, it is retained and read by people)."""
    obj: dict[str, Any] = {"online": status.online}
    if status.assets:
        obj["assets"] = list(status.assets)
    return encode(obj, Encoding.JSON)


def decode_status(payload: bytes | bytearray) -> tuple[Status, tuple[FieldIssue, ...]]:
    """Decode an availability message (a map, or the bare words online/offline).

    A gateway's ``assets`` list is read entry by entry: an entry that is not
    a non-empty string is dropped, the others keep their meaning.

    Returns:
        The status and the fields dropped from it.

    Raises:
        PayloadError: undecodable, or no boolean ``online`` (nothing to apply).
    """
    word = bytes(payload).strip().lower()
    if word in (b"online", b"offline"):
        return Status(word == b"online"), ()
    obj, _ = decode(payload)
    online = obj.get("online")
    if not isinstance(online, bool):
        raise PayloadError(f"status needs a boolean 'online', got {online!r}")
    f = _Fields(obj)
    raw = obj.get("assets", [])
    if not isinstance(raw, list):
        f.drop("assets", Reason.WRONG_TYPE)
        raw = []
    assets: list[str] = []
    for entry in raw:
        if isinstance(entry, str) and entry:
            assets.append(entry)
        else:
            f.issues.append(FieldIssue("assets", Reason.WRONG_TYPE, entry))
    return Status(online, tuple(assets)), tuple(f.issues)
