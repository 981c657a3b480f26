"""A small SunSpec codec: model definition -> offsets, types, scale factors.

A SunSpec device map starts with the ``SunS`` marker (two registers) at a base
address (40000, else 0 or 50000), followed by models, each ``ID, L, <L
registers>``, and ends with ``0xFFFF, 0``. A model's points sit at fixed
offsets from its ID register; scaled points name a ``sunssf`` point in the
same model whose value ``sf`` gives ``value = raw * 10**sf``.

Every point is read by one decoder, :func:`decode_point`, which knows the
"not implemented" value of each SunSpec type (SunSpec Information Model
Specification, point types; the same table as pysunspec2's ``mb.py``): a raw
value equal to it, a scale factor that is not implemented or outside the
specified -10..10, or a type this codec does not know all make the point
*absent* (``None``, with a reason), never an exception. Only a block that is
not the model at all (short, or another model id) raises :class:`PayloadError`.

Only what the adapters use is supported: fixed-size top-level points (nested
groups are counted into the length but not decoded).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from adapters.errors import PayloadError

__all__ = [
    "BASE_ADDRESSES",
    "END_MODEL_ID",
    "SUNS_MARKER",
    "UNIMPLEMENTED",
    "Block",
    "EncodeError",
    "Model",
    "Point",
    "Value",
    "build_image",
    "decode_point",
    "fitting_scale_factor",
    "load_model",
]

#: The ``SunS`` marker as two registers.
SUNS_MARKER = (0x5375, 0x6E53)
#: Where to look for the marker, in order.
BASE_ADDRESSES = (40000, 0, 50000)
#: The model id that ends a map.
END_MODEL_ID = 0xFFFF
#: The range the SunSpec specification allows a ``sunssf`` to take.
SF_RANGE = range(-10, 11)

Value = int | float | str | None

#: Why a point is absent (low-cardinality: these label metrics).
NOT_IMPLEMENTED = "not_implemented"
OUT_OF_RANGE = "out_of_range"
UNKNOWN_TYPE = "unknown_type"

#: The raw "not implemented" value of each numeric SunSpec type, as an unsigned
#: integer of the type's width. Accumulators use 0; floats use the quiet NaN
#: (any NaN is taken as absent when decoding).
UNIMPLEMENTED: Mapping[str, int] = {
    "int16": 0x8000,
    "sunssf": 0x8000,
    "uint16": 0xFFFF,
    "count": 0xFFFF,
    "enum16": 0xFFFF,
    "bitfield16": 0xFFFF,
    "acc16": 0,
    "int32": 0x8000_0000,
    "uint32": 0xFFFF_FFFF,
    "enum32": 0xFFFF_FFFF,
    "bitfield32": 0xFFFF_FFFF,
    "acc32": 0,
    "ipaddr": 0,
    "int64": 0x8000_0000_0000_0000,
    "uint64": 0xFFFF_FFFF_FFFF_FFFF,
    "bitfield64": 0xFFFF_FFFF_FFFF_FFFF,
    "acc64": 0,
    "float32": 0x7FC0_0000,
    "float64": 0x7FF8_0000_0000_0000,
}
_SIGNED = frozenset({"int16", "int32", "int64", "sunssf"})
_FLOATS = {"float32": ">f", "float64": ">d"}
#: The integer types' sentinels (what :func:`decode_point` reads without building bytes).
_INT_SENTINEL: Mapping[str, int] = {k: v for k, v in UNIMPLEMENTED.items() if k not in _FLOATS}
#: Types decoded to text: all-zero registers mean "not implemented".
_TEXT = frozenset({"string", "ipv6addr", "eui48"})


class EncodeError(ValueError):
    """A value a point cannot carry (no scale factor, out of its type's range, its sentinel)."""


@dataclass(frozen=True, slots=True)
class Block:
    """One decoded model block.

    Attributes:
        values: engineering values by point name (scale factors applied);
            ``None`` for an absent point.
        absent: why each absent point is absent (``not_implemented``,
            ``out_of_range``, ``scale_factor_not_implemented``...).
        steps: for each present scaled point, the device's resolution in the
            point's unit (``10**sf``).
    """

    values: Mapping[str, Value]
    absent: Mapping[str, str] = field(default_factory=dict)
    steps: Mapping[str, float] = field(default_factory=dict)

    def number(self, name: str) -> float | None:
        """A present, finite numeric point as a float; None otherwise."""
        value = self.values.get(name)
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
        return None

    def integer(self, name: str) -> int | None:
        """A present integer point (enum, bitfield, scale factor...); None otherwise."""
        value = self.values.get(name)
        return value if isinstance(value, int) else None


@dataclass(frozen=True, slots=True)
class Point:
    """One point of a model.

    Attributes:
        name: SunSpec point name (``SoC``, ``WSet``...).
        offset: registers from the model's ID register.
        size: registers it spans.
        type: SunSpec type (``uint16``, ``int32``, ``sunssf``, ``string``...).
        sf: name of its scale-factor point, if scaled.
        writable: whether the model marks it RW.
    """

    name: str
    offset: int
    size: int
    type: str
    sf: str | None
    writable: bool


@dataclass(frozen=True, slots=True)
class Model:
    """A SunSpec model definition.

    Attributes:
        id: model id.
        name: model name.
        length: the ``L`` value (registers after ID and L).
        points: top-level points by name.
    """

    id: int
    name: str
    length: int
    points: Mapping[str, Point]

    @property
    def size(self) -> int:
        """Registers the whole block spans, ID and L included."""
        return self.length + 2

    def read(self, regs: Sequence[int]) -> Block:
        """Decode a whole model block (starting at its ID register), point by point.

        Every point goes through :func:`decode_point`; a scaled point whose
        scale factor is absent is absent too (``scale_factor_<why>``).

        Raises:
            PayloadError: the block is short or does not carry this model's id
                (it is not this model at all; no point of it can be trusted).
        """
        if len(regs) < self.size or regs[0] != self.id:
            raise PayloadError(f"model {self.id}: bad block (id {regs[:1]}, {len(regs)} regs)")
        raw: dict[str, tuple[Value, str | None]] = {
            name: decode_point(p, regs[p.offset : p.offset + p.size])
            for name, p in self.points.items()
        }
        values: dict[str, Value] = {}
        absent: dict[str, str] = {}
        steps: dict[str, float] = {}
        for name, point in self.points.items():
            value, why = raw[name]
            if why is None and point.sf is not None:
                sf, sf_why = raw.get(point.sf, (None, NOT_IMPLEMENTED))
                if sf_why is not None or not isinstance(sf, int):
                    value, why = None, f"scale_factor_{sf_why or UNKNOWN_TYPE}"
                elif isinstance(value, int | float):
                    steps[name] = 10.0**sf
                    value = value * 10.0**sf
            values[name] = value
            if why is not None:
                absent[name] = why
        return Block(values, absent, steps)

    def decode(self, regs: Sequence[int]) -> dict[str, Value]:
        """The values of :meth:`read` alone (absent points are ``None``).

        Raises:
            PayloadError: the block is short or does not carry this model's id.
        """
        return dict(self.read(regs).values)

    def encode(self, values: Mapping[str, Value]) -> list[int]:
        """Encode a whole model block; points not given read as not implemented.

        ``values`` holds engineering values; scaled points use the scale factors
        given in the same mapping (which must be present for them).

        Raises:
            EncodeError: a value its point cannot carry.
        """
        regs = [0] * self.size
        for point in self.points.values():
            _put(point, regs, _sentinel(point))
        regs[0], regs[1] = self.id, self.length
        for name, value in values.items():
            point = self.points[name]
            _put(point, regs, self.raw_value(point, value, values))
        return regs

    def encode_range(
        self, first: str, last: str, values: Mapping[str, Value], sfs: Mapping[str, Value]
    ) -> tuple[int, list[int]]:
        """Encode the points ``first..last`` for one write.

        Returns:
            The offset of ``first`` within the model and the registers to write.

        Raises:
            EncodeError: a value its point cannot carry (e.g. a scaled value
                whose scale factor is not implemented).
        """
        start, end = self.points[first].offset, self.points[last].offset + self.points[last].size
        regs = [0] * (end - start)
        for point in self.points.values():
            if start <= point.offset < end:
                value = values.get(point.name)
                raw = (
                    _sentinel(point)
                    if value is None
                    else self.raw_value(point, value, {**sfs, **values})
                )
                _put(point, regs, raw, base=start)
        return start, regs

    def raw_value(self, point: Point, value: Value, scope: Mapping[str, Value]) -> int | str:
        """Turn an engineering value into the point's raw register value.

        Raises:
            EncodeError: no usable scale factor in ``scope``, a type this codec
                cannot write, or a value outside the type's range or equal to
                its "not implemented" value (it would read back as absent).
        """
        if value is None:
            return _sentinel(point)
        if isinstance(value, str):
            return value
        if point.type in _FLOATS or point.type in _TEXT or point.type not in UNIMPLEMENTED:
            raise EncodeError(f"{point.name}: cannot write type {point.type}")
        if point.sf is not None:
            sf = scope.get(point.sf)
            if not isinstance(sf, int) or sf not in SF_RANGE:
                raise EncodeError(f"{point.name} needs scale factor {point.sf}, has {sf!r}")
            value = value / 10.0**sf
        if not math.isfinite(value):
            raise EncodeError(f"{point.name}: {value} is not finite")
        raw = round(value)
        bits = 16 * point.size
        signed = point.type in _SIGNED
        low, high = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
        if not low <= raw < high:
            raise EncodeError(f"{point.name}: {raw} does not fit {point.type}")
        if raw % (1 << bits) == UNIMPLEMENTED[point.type]:
            raise EncodeError(f"{point.name}: {raw} is the 'not implemented' value of {point.type}")
        return raw


def fitting_scale_factor(largest: float, limit: int, *, finest: int = 0) -> int:
    """The smallest scale factor ``sf >= finest`` with ``|largest| / 10**sf <= limit``.

    How a device sizes a point's scale factor to its nameplate (``W_SF`` for
    an int16 ``W``: ``limit`` 32767); never above 10, the specified maximum.
    """
    sf = finest
    while abs(largest) / 10.0**sf > limit and sf < SF_RANGE[-1]:
        sf += 1
    return sf


def decode_point(point: Point, words: Sequence[int]) -> tuple[Value, str | None]:
    """Decode one point's registers, unscaled: the one place a raw value is read.

    Args:
        point: the point's definition.
        words: its registers (``point.size`` of them, big-endian words).

    Returns:
        ``(value, None)`` for a present point, ``(None, reason)`` for an absent
        one: its type's "not implemented" value, a ``sunssf`` outside -10..10,
        a NaN float, all-zero text, too few registers or an unknown type.
    """
    size, kind = point.size, point.type
    if len(words) < size:
        return None, OUT_OF_RANGE
    sentinel = _INT_SENTINEL.get(kind)
    if sentinel is not None:
        # integer types (the bulk of every block): shifts, no bytes built
        value = 0
        for word in words[:size]:
            value = (value << 16) | (word & 0xFFFF)
        if value == sentinel:
            return None, NOT_IMPLEMENTED
        if kind in _SIGNED and value >= 1 << (16 * size - 1):
            value -= 1 << (16 * size)
        if kind == "sunssf" and value not in SF_RANGE:
            return None, OUT_OF_RANGE
        return value, None
    if kind == "pad":
        return None, NOT_IMPLEMENTED
    data = b"".join((w & 0xFFFF).to_bytes(2, "big") for w in words[: point.size])
    if point.type in _TEXT:
        if not any(data):
            return None, NOT_IMPLEMENTED
        if point.type == "string":
            return data.split(b"\0", 1)[0].decode("utf-8", errors="replace"), None
        return data.hex().upper(), None
    if point.type in _FLOATS:
        if len(data) != struct.calcsize(_FLOATS[point.type]):
            return None, UNKNOWN_TYPE
        number = float(struct.unpack(_FLOATS[point.type], data)[0])
        return (number, None) if math.isfinite(number) else (None, NOT_IMPLEMENTED)
    sentinel = UNIMPLEMENTED.get(point.type)
    if sentinel is None:
        return None, UNKNOWN_TYPE
    value = int.from_bytes(data, "big")
    if value == sentinel:
        return None, NOT_IMPLEMENTED
    if point.type in _SIGNED and value >= 1 << (8 * len(data) - 1):
        value -= 1 << (8 * len(data))
    if point.type == "sunssf" and value not in SF_RANGE:
        return None, OUT_OF_RANGE
    return value, None


def _sentinel(point: Point) -> int | str:
    """What an unimplemented point holds: its type's sentinel, zeros for text and pads."""
    if point.type in _TEXT:
        return ""
    return UNIMPLEMENTED.get(point.type, 0)


def _put(point: Point, regs: list[int], raw: int | str, *, base: int = 0) -> None:
    at = point.offset - base
    if isinstance(raw, str):
        data = raw.encode("utf-8")[: point.size * 2].ljust(point.size * 2, b"\0")
        regs[at : at + point.size] = [
            int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)
        ]
        return
    bits = 16 * point.size
    if raw < 0:
        raw += 1 << bits
    if not 0 <= raw < 1 << bits:
        raise EncodeError(f"{point.name}: {raw} does not fit {point.type}")
    for i in range(point.size):
        regs[at + i] = (raw >> (16 * (point.size - 1 - i))) & 0xFFFF


def _group_size(group: Mapping[str, Any]) -> int:
    size = sum(int(p.get("size", 1)) for p in group.get("points", []))
    for sub in group.get("groups", []):
        count = sub.get("count", 1)
        size += _group_size(sub) * (count if isinstance(count, int) else 1)
    return size


@cache
def load_model(model_id: int) -> Model:
    """Load a shipped SunSpec model definition (1, 201-204, 704 or 802).

    Raises:
        FileNotFoundError: the model is not shipped with this package.
    """
    text = (resources.files("adapters.sunspec") / f"model_{model_id}.json").read_text()
    group = json.loads(text)["group"]
    points: dict[str, Point] = {}
    offset = 0
    for p in group["points"]:
        size = int(p.get("size", 1))
        points[p["name"]] = Point(
            p["name"], offset, size, p["type"], p.get("sf"), p.get("access", "R") == "RW"
        )
        offset += size
    return Model(model_id, group["name"], _group_size(group) - 2, points)


def build_image(blocks: Iterable[tuple[Model, Mapping[str, Value]]]) -> list[int]:
    """Build a device map image: the marker, each model block, the end model.

    The caller places the image at one of :data:`BASE_ADDRESSES`.
    """
    image = list(SUNS_MARKER)
    for model, values in blocks:
        image += model.encode(values)
    return [*image, END_MODEL_ID, 0]
