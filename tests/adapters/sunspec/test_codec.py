"""The one SunSpec point decoder: every type's "not implemented" value reads as absent."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.errors import PayloadError
from adapters.sunspec import EncodeError, Point, load_model
from adapters.sunspec.codec import UNIMPLEMENTED, decode_point

M802, M704 = load_model(802), load_model(704)

#: type -> registers, as the SunSpec information model sizes them
SIZES = {
    "int16": 1, "uint16": 1, "count": 1, "acc16": 1, "enum16": 1, "bitfield16": 1, "sunssf": 1,
    "int32": 2, "uint32": 2, "acc32": 2, "enum32": 2, "bitfield32": 2, "ipaddr": 2,
    "float32": 2, "int64": 4, "uint64": 4, "acc64": 4, "bitfield64": 4, "float64": 4,
}  # fmt: skip


#: a present raw value for types where "sentinel - 1" is not one
PRESENT = {"sunssf": 0xFFFF, "float32": 0x3FC0_0000, "float64": 0x3FF8_0000_0000_0000}


def _point(type_: str, size: int | None = None, sf: str | None = None) -> Point:
    return Point("P", 0, size or SIZES.get(type_, 1), type_, sf, False)


def _words(raw: int, size: int) -> list[int]:
    return [(raw >> (16 * (size - 1 - i))) & 0xFFFF for i in range(size)]


@pytest.mark.parametrize(
    ("type_", "sentinel"),
    [
        ("int16", 0x8000),
        ("uint16", 0xFFFF),
        ("count", 0xFFFF),
        ("acc16", 0),
        ("enum16", 0xFFFF),
        ("bitfield16", 0xFFFF),
        ("sunssf", 0x8000),
        ("int32", 0x8000_0000),
        ("uint32", 0xFFFF_FFFF),
        ("acc32", 0),
        ("enum32", 0xFFFF_FFFF),
        ("bitfield32", 0xFFFF_FFFF),
        ("ipaddr", 0),
        ("int64", 0x8000_0000_0000_0000),
        ("uint64", 0xFFFF_FFFF_FFFF_FFFF),
        ("acc64", 0),
        ("bitfield64", 0xFFFF_FFFF_FFFF_FFFF),
        ("float32", 0x7FC0_0000),
        ("float64", 0x7FF8_0000_0000_0000),
    ],
)
def test_each_types_sentinel_is_absent(type_: str, sentinel: int) -> None:
    assert UNIMPLEMENTED[type_] == sentinel
    size = SIZES[type_]
    assert decode_point(_point(type_), _words(sentinel, size)) == (None, "not_implemented")
    # a value beside the sentinel is a real one (scale factors and floats have their own ranges)
    other = PRESENT.get(type_, sentinel - 1 if sentinel else 1)
    value, why = decode_point(_point(type_), _words(other, size))
    assert why is None and value is not None


def test_signed_types_decode_twos_complement() -> None:
    assert decode_point(_point("int16"), [0xFFFF]) == (-1, None)
    assert decode_point(_point("int32"), [0xFFFF, 0xCFC7]) == (-12345, None)
    assert decode_point(_point("uint16"), [0x8000]) == (0x8000, None)


@pytest.mark.parametrize(("raw", "expect"), [(10, 10), (0xFFF6, -10), (11, None), (0xFFF5, None)])
def test_scale_factor_outside_the_specified_range_is_absent(raw: int, expect: int | None) -> None:
    value, why = decode_point(_point("sunssf"), [raw])
    assert value == expect and (why is None) == (expect is not None)


def test_floats_text_pads_and_unknown_types_never_raise() -> None:
    one_and_half = list(struct.unpack(">HH", struct.pack(">f", 1.5)))
    assert decode_point(_point("float32"), one_and_half) == (1.5, None)
    any_nan = list(struct.unpack(">HH", struct.pack(">f", -math.nan)))
    assert decode_point(_point("float32"), any_nan) == (None, "not_implemented")
    inf = list(struct.unpack(">HH", struct.pack(">f", math.inf)))
    assert decode_point(_point("float32"), inf) == (None, "not_implemented")
    assert decode_point(_point("string", 4), [0, 0, 0, 0]) == (None, "not_implemented")
    assert decode_point(_point("string", 4), [0x6162, 0x6300, 0, 0]) == ("abc", None)
    assert decode_point(_point("string", 2), [0xFFFE, 0xFF00])[1] is None  # not UTF-8: replaced
    assert decode_point(_point("pad"), [0x8000]) == (None, "not_implemented")
    assert decode_point(_point("uint128", 8), [1] * 8) == (None, "unknown_type")
    assert decode_point(_point("uint32"), [1]) == (None, "out_of_range")  # short


def test_a_scaled_point_is_absent_when_its_scale_factor_is() -> None:
    values = {"W_SF": 1, "W": -12340.0, "SoC_SF": -1, "SoC": 55.5, "WChaDisChaMax_SF": 2}
    regs = M802.encode(values)
    block = M802.read(regs)
    assert block.values["W"] == pytest.approx(-12340.0) and block.steps["W"] == 10.0
    assert block.values["SoC"] == pytest.approx(55.5)
    assert block.absent["WChaRteMax"] == "not_implemented"
    sf = M802.points["W_SF"]
    regs[sf.offset] = 0x8000
    block = M802.read(regs)
    assert block.values["W"] is None and block.absent["W"] == "scale_factor_not_implemented"
    assert block.number("W") is None and "W" not in block.steps
    regs[sf.offset] = 11
    block = M802.read(regs)
    assert block.absent["W"] == "scale_factor_out_of_range"
    assert block.absent["W_SF"] == "out_of_range"


def test_only_a_block_that_is_not_the_model_raises() -> None:
    regs = M802.encode({})
    with pytest.raises(PayloadError):
        M802.read(regs[:-1])
    with pytest.raises(PayloadError):
        M802.read([999, *regs[1:]])


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_register_content_decodes_without_raising(data: st.DataObject) -> None:
    for model in (M802, M704):
        body = data.draw(
            st.lists(st.integers(0, 0xFFFF), min_size=model.length, max_size=model.length)
        )
        block = model.read([model.id, model.length, *body])
        for name, value in block.values.items():
            assert (value is None) == (name in block.absent)
            if isinstance(value, float):
                assert math.isfinite(value)


def test_encoding_refuses_what_would_not_read_back() -> None:
    wset = M704.points["WSet"]
    with pytest.raises(EncodeError, match="scale factor"):
        M704.raw_value(wset, -1000.0, {"WSet_SF": None})
    with pytest.raises(EncodeError, match="scale factor"):
        M704.encode_range("WSetEna", "WSetRvrtTms", {"WSet": 5.0}, {"WSet_SF": 0x8000})
    with pytest.raises(EncodeError, match="not implemented"):
        M704.raw_value(wset, -(2.0**31), {"WSet_SF": 0})  # the int32 sentinel
    with pytest.raises(EncodeError, match="does not fit"):
        M704.raw_value(wset, 2.0**31, {"WSet_SF": 0})
    with pytest.raises(EncodeError, match="not finite"):
        M704.raw_value(wset, math.inf, {"WSet_SF": 0})


def test_a_coarse_scale_factor_rounds_to_the_device_resolution() -> None:
    sfs = {"WSet_SF": 1}
    offset, regs = M704.encode_range("WSetEna", "WSetRvrtTms", {"WSet": 123456.7}, sfs)
    block = [0] * M704.size
    block[0], block[1] = M704.id, M704.length
    block[offset : offset + len(regs)] = regs
    block[M704.points["WSet_SF"].offset] = 1
    back = M704.read(block)
    assert back.values["WSet"] == pytest.approx(123460.0) and back.steps["WSet"] == 10.0
