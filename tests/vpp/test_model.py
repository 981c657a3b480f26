"""Property-based tests of the asset validator: every invalid field is named."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vpp.samples import SAMPLES, sample
from vpp.errors import InvalidInput
from vpp.model import ASSET_MODELS, Battery, ModbusConnection, asset_from_dict, parse_asset
from vpp.state import pack, unpack

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
negative = st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False)
non_positive = st.floats(max_value=0.0, allow_nan=False, allow_infinity=False)
outside_unit = finite.filter(lambda x: x < 0 or x > 1)
bad_efficiency = finite.filter(lambda x: x <= 0 or x > 1)
# A number field takes a JSON number only, as the OpenAPI schema says ("type":
# "number"): a numeric string ("1") and a boolean are refused like any other
# non-number (issue 8: the document is the truth).
not_a_number = st.one_of(
    st.text(max_size=5),
    st.sampled_from(["1", "0.5", "1e3", "-0", "NaN"]),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.none(),
)
bad_id = st.one_of(
    st.just(""), st.text(min_size=65, max_size=80, alphabet="ab"),
    st.text(min_size=1, max_size=10).filter(lambda s: any(c in s for c in " /:{}*?#")),
)  # fmt: skip

COMMON: dict[str, st.SearchStrategy[Any]] = {
    "id": bad_id,
    "owner": st.just(""),
    "grid_node": bad_id,
    "costs.up_per_kwh": negative,
    "costs.down_per_kwh": negative,
}
# kind -> dotted field -> values that must be refused
INVALID: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "battery": {
        "capacity_kwh": st.one_of(non_positive, not_a_number),
        "max_charge_kw": negative,
        "max_discharge_kw": negative,
        "soc_min": outside_unit,
        "soc_max": st.one_of(outside_unit, st.floats(min_value=0, max_value=0.1)),
        "charge_efficiency": bad_efficiency,
        "discharge_efficiency": bad_efficiency,
        "connection.port": st.one_of(st.integers(max_value=0), st.integers(min_value=65536)),
        "connection.unit_id": st.one_of(st.integers(max_value=-1), st.integers(min_value=248)),
        "connection.host": st.just(""),
    },
    "ev_charger": {
        "max_charge_kw": non_positive,
        "max_discharge_kw": negative,
        "charge_efficiency": bad_efficiency,
        "connection.charge_point_id": st.just(""),
        "connection.evse_id": st.integers(max_value=0),
    },
    "flexible_load": {
        "baseline_kw": non_positive,
        "max_shed_kw": st.one_of(non_positive, st.floats(min_value=800.001, max_value=1e9)),
        "max_shed_minutes": st.one_of(non_positive, st.floats(min_value=1441, max_value=1e6)),
        "rebound_fraction": st.one_of(negative, st.floats(min_value=2.001, max_value=1e6)),
        "connection.topic_prefix": st.sampled_from(["", "a/#", "a/+/b", "has space"]),
    },
    "pv": {"rated_kw": non_positive},
}
CASES = [(kind, field) for kind, fields in INVALID.items() for field in [*COMMON, *fields]]


def _set(payload: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for name in parents:
        payload = payload.setdefault(name, {})
    payload[leaf] = value


@pytest.mark.parametrize(("kind", "field"), CASES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_invalid_field_is_named(kind: str, field: str, data: st.DataObject) -> None:
    strategy = INVALID[kind][field] if field in INVALID[kind] else COMMON[field]
    value = data.draw(strategy, label=field)
    payload = sample(kind)
    _set(payload, field, value)
    with pytest.raises(InvalidInput) as caught:
        parse_asset(payload)
    assert field in caught.value.fields
    assert field in str(caught.value)


@settings(max_examples=50, deadline=None)
@given(kind=st.text(max_size=12).filter(lambda k: k not in ASSET_MODELS))
def test_unknown_kind_is_named(kind: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_asset(sample(kind=kind))
    assert caught.value.fields == ["kind"]


@settings(max_examples=30, deadline=None)
@given(extra=st.text(min_size=1, max_size=12).filter(lambda k: k not in SAMPLES["battery"]))
def test_unknown_field_is_named(extra: str) -> None:
    payload = sample()
    if extra in {"name", "costs", "connection", "enrolled_at", "updated_at"}:
        return
    payload[extra] = 1
    with pytest.raises(InvalidInput) as caught:
        parse_asset(payload)
    assert extra in caught.value.fields


@settings(max_examples=100, deadline=None)
@given(
    capacity=st.floats(min_value=1e-3, max_value=1e6),
    charge=st.floats(min_value=0, max_value=1e5),
    window=st.tuples(st.floats(0, 1), st.floats(0, 1)).filter(lambda w: w[0] < w[1]),
    efficiency=st.floats(min_value=1e-3, max_value=1.0),
)
def test_valid_batteries_pass_and_survive_msgpack(
    capacity: float, charge: float, window: tuple[float, float], efficiency: float
) -> None:
    payload = sample(
        capacity_kwh=capacity,
        max_charge_kw=charge,
        max_discharge_kw=charge,
        soc_min=window[0],
        soc_max=window[1],
        charge_efficiency=efficiency,
    )
    asset = parse_asset(payload)
    assert isinstance(asset, Battery)
    assert math.isclose(asset.capacity_kwh, capacity)
    assert asset_from_dict(unpack(pack(asset.model_dump(mode="json")))) == asset


def _numeric_fields(kind: str) -> list[str]:
    """Dotted names of the number and integer fields of a kind's sample payload."""
    payload = sample(kind)

    def numeric(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    names = [k for k, v in payload.items() if numeric(v)]
    for parent in ("costs", "connection"):
        names += [f"{parent}.{k}" for k, v in payload.get(parent, {}).items() if numeric(v)]
    return names


NUMERIC = [(kind, field) for kind in SAMPLES for field in _numeric_fields(kind)]


@pytest.mark.parametrize(("kind", "field"), NUMERIC)
@pytest.mark.parametrize("value", [True, False, "1", "500", "0.5"])
def test_a_boolean_or_numeric_string_is_not_a_number(kind: str, field: str, value: Any) -> None:
    payload = sample(kind)
    _set(payload, field, value)
    with pytest.raises(InvalidInput) as caught:
        parse_asset(payload)
    assert caught.value.fields == [field]


@pytest.mark.parametrize(("kind", "field"), [("ev_charger", "v2g"), ("pv", "curtailable")])
@pytest.mark.parametrize("value", [0, 1, "true", "false", "yes", None])
def test_a_boolean_field_takes_true_or_false_only(kind: str, field: str, value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_asset(sample(kind, **{field: value}))
    assert caught.value.fields == [field]


def test_an_integral_number_is_an_integer() -> None:
    # JSON Schema's "integer" is any number with a zero fractional part.
    connection = {"protocol": "modbus", "host": "10.0.3.21", "port": 502.0, "unit_id": 3.0}
    asset = parse_asset(sample(connection=connection))
    assert asset.connection == ModbusConnection(host="10.0.3.21", port=502, unit_id=3)
    connection["unit_id"] = 3.5
    with pytest.raises(InvalidInput) as caught:
        parse_asset(sample(connection=connection))
    assert caught.value.fields == ["connection.unit_id"]


def test_nan_and_infinity_are_refused() -> None:
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(InvalidInput) as caught:
            parse_asset(sample(capacity_kwh=value))
        assert caught.value.fields == ["capacity_kwh"]


def test_a_missing_kind_is_named_as_missing() -> None:
    body = {k: v for k, v in sample("battery").items() if k != "kind"}
    with pytest.raises(InvalidInput) as caught:
        parse_asset(body)
    [error] = caught.value.errors
    assert (error.field, error.type) == ("kind", "missing")
    assert error.message.startswith("Field required")
