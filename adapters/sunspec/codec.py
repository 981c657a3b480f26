"""A small SunSpec codec: model definition -> offsets, types, scale factors.

A SunSpec device map starts with the ``SunS`` marker (two registers) at a base
address (40000, else 0 or 50000), followed by models, each ``ID, L, <L
registers>``, and ends with ``0xFFFF, 0``. A model's points sit at fixed
offsets from its ID register; scaled points name a ``sunssf`` point in the
same model whose value ``sf`` gives ``value = raw * 10**sf``. A raw value
equal to its type's "not implemented" sentinel decodes to None.

Only what the adapters use is supported: fixed-size top-level points (nested
groups are counted into the length but not decoded).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from adapters.errors import PayloadError

__all__ = [
    "BASE_ADDRESSES",
    "END_MODEL_ID",
    "SUNS_MARKER",
    "Model",
    "Point",
    "Value",
    "build_image",
    "load_model",
]

#: The ``SunS`` marker as two registers.
SUNS_MARKER = (0x5375, 0x6E53)
#: Where to look for the marker, in order.
BASE_ADDRESSES = (40000, 0, 50000)
#: The model id that ends a map.
END_MODEL_ID = 0xFFFF

Value = int | float | str | None

_SIGNED = {"int16": 16, "int32": 32, "sunssf": 16, "int64": 64}
_UNIMPLEMENTED = {
    "uint16": 0xFFFF,
    "enum16": 0xFFFF,
    "bitfield16": 0xFFFF,
    "int16": 0x8000,
    "sunssf": 0x8000,
    "uint32": 0xFFFFFFFF,
    "enum32": 0xFFFFFFFF,
    "bitfield32": 0xFFFFFFFF,
    "int32": 0x80000000,
    "acc32": 0,
}


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

    def decode(self, regs: Sequence[int]) -> dict[str, Value]:
        """Decode a whole model block (starting at its ID register), scale factors applied.

        Raises:
            PayloadError: the block is short or does not carry this model's id.
        """
        if len(regs) < self.size or regs[0] != self.id:
            raise PayloadError(f"model {self.id}: bad block (id {regs[:1]}, {len(regs)} regs)")
        raw = {name: _raw(p, regs) for name, p in self.points.items()}
        out: dict[str, Value] = {}
        for name, point in self.points.items():
            value = raw[name]
            if point.sf is not None and isinstance(value, int):
                sf = raw.get(point.sf)
                out[name] = None if not isinstance(sf, int) else _scaled(value, sf)
            else:
                out[name] = value
        return out

    def encode(self, values: Mapping[str, Value]) -> list[int]:
        """Encode a whole model block; points not given read as not implemented.

        ``values`` holds engineering values; scaled points use the scale factors
        given in the same mapping (which must be present for them).
        """
        regs = [0] * self.size
        for point in self.points.values():
            if point.type not in ("string", "pad"):
                _put(point, regs, _UNIMPLEMENTED.get(point.type, 0))
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
        """
        start, end = self.points[first].offset, self.points[last].offset + self.points[last].size
        regs = [0] * (end - start)
        for point in self.points.values():
            if start <= point.offset < end:
                value = values.get(point.name)
                raw = (
                    _UNIMPLEMENTED.get(point.type, 0)
                    if value is None
                    else self.raw_value(point, value, {**sfs, **values})
                )
                _put(point, regs, raw, base=start)
        return start, regs

    def raw_value(self, point: Point, value: Value, scope: Mapping[str, Value]) -> int | str:
        """Turn an engineering value into the point's raw register value."""
        if value is None:
            return _UNIMPLEMENTED.get(point.type, 0)
        if isinstance(value, str):
            return value
        if point.sf is not None:
            sf = scope.get(point.sf)
            if not isinstance(sf, int):
                raise ValueError(f"{point.name} needs scale factor {point.sf}")
            value = value / 10.0**sf
        return round(value)


def _raw(point: Point, regs: Sequence[int]) -> int | str | None:
    words = regs[point.offset : point.offset + point.size]
    if point.type == "string":
        data = b"".join(w.to_bytes(2, "big") for w in words)
        return data.split(b"\0", 1)[0].decode("latin-1")
    if point.type == "pad":
        return None
    value = 0
    for word in words:
        value = (value << 16) | (word & 0xFFFF)
    if value == _UNIMPLEMENTED.get(point.type, -1):
        return None
    bits = _SIGNED.get(point.type)
    if bits is not None and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def _scaled(raw: int, sf: int) -> float:
    if not -10 <= sf <= 10:
        return math.nan
    return raw * 10.0**sf


def _put(point: Point, regs: list[int], raw: int | str, *, base: int = 0) -> None:
    at = point.offset - base
    if isinstance(raw, str):
        data = raw.encode("latin-1")[: point.size * 2].ljust(point.size * 2, b"\0")
        regs[at : at + point.size] = [
            int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)
        ]
        return
    bits = 16 * point.size
    if raw < 0:
        raw += 1 << bits
    if not 0 <= raw < 1 << bits:
        raise ValueError(f"{point.name}: {raw} does not fit {point.type}")
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
    """Load a shipped SunSpec model definition (1, 802 or 704).

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
