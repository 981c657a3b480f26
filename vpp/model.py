"""The domain model: parks, enrolled assets and their live state.

Assets are a discriminated union on ``kind`` (``battery``, ``ev_charger``,
``flexible_load``, ``pv``, ``meter``). Each kind carries its enrolled limits, its
deviation costs, its owner enterprise and grid node, and how to reach it
(``connection``, a union on ``protocol``: mqtt, modbus or ocpp). Power is in
kW (positive = drawn from the grid), energy in kWh, durations in minutes,
costs in CNY per kWh.

``parse_asset`` is the one validator: it returns the model of the right kind
or raises ``InvalidInput`` naming every bad field (``soc_max``,
``connection.port``, ``kind`` for an unknown kind, ...).

Input is read with JSON's own types, as the OpenAPI document states them
(``parse_json_data``): a number field takes a JSON number (``5.0`` is an
integer, as in JSON Schema), never a boolean or a numeric string; a boolean
field takes ``true`` or ``false`` only; a date-time is an RFC 3339 string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeAlias, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import to_json

from vpp.errors import FieldError, InvalidInput

__all__ = [
    "ASSET_MODELS",
    "ID_PATTERN",
    "IMMUTABLE_FIELDS",
    "Asset",
    "AssetId",
    "AssetKind",
    "BaselineAdjustment",
    "BaselineMethod",
    "BaselineSettings",
    "Battery",
    "CarbonSettings",
    "Connection",
    "DeviationCosts",
    "ElectricityFactorId",
    "Enterprise",
    "EnterpriseId",
    "EvCharger",
    "FlexibleLoad",
    "Integer",
    "LiveState",
    "Meter",
    "ModbusConnection",
    "MqttConnection",
    "OcppConnection",
    "Park",
    "ParkId",
    "ParkSummary",
    "ProvincialFactor",
    "Pv",
    "apply_patch",
    "asset_from_dict",
    "enterprise_ids",
    "integral",
    "invalid_input",
    "parse_asset",
    "parse_json_data",
    "requires",
    "revenue_meters",
    "utcnow",
]

#: Asset and park ids: safe in Redis keys, MQTT topics and URL paths.
ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"

AssetId: TypeAlias = Annotated[str, Field(pattern=ID_PATTERN, description="[A-Za-z0-9_.-]{1,64}")]
ParkId: TypeAlias = Annotated[str, Field(pattern=ID_PATTERN, description="[A-Za-z0-9_.-]{1,64}")]


def integral(value: Any) -> Any:
    """JSON Schema's ``integer`` is any number with a zero fractional part: 5.0 is one."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: An integer field: a JSON number with no fractional part (never a boolean or a string).
#: Inside a union put the constraints first, ``Annotated[int, Field(gt=0),
#: BeforeValidator(integral)]``, or pydantic leaves them out of the JSON Schema.
Integer: TypeAlias = Annotated[int, BeforeValidator(integral)]

#: The largest power (kW) or energy (kWh) one asset may be enrolled with: 10 GW / 10 GWh,
#: above any single asset of a park; beyond it a figure is a typo, and forecasts and bids
#: (float32 curves) would overflow on it.
MAX_ASSET_KW = 1e7
_Kw = Annotated[float, Field(ge=0, le=MAX_ASSET_KW)]
_Fraction = Annotated[float, Field(ge=0, le=1)]
_Efficiency = Annotated[float, Field(gt=0, le=1)]


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def requires(*names: str) -> Any:
    """A ``json_schema_extra`` that marks ``names`` required in a model's schema.

    A union tag (``kind``, ``protocol``) has a default so Python code can omit
    it, but a payload must carry it: the discriminated union refuses one
    without it, and the schema has to say so.
    """

    def extra(schema: dict[str, Any]) -> None:
        required = list(schema.get("required", []))
        schema["required"] = required + [n for n in names if n not in required]

    return extra


class _Model(BaseModel):
    # Unknown fields are refused (a typo must not be silently dropped) and
    # NaN/inf never reach the optimiser.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=False)


_M = TypeVar("_M", bound=BaseModel)


def parse_json_data(model: type[_M], data: Any) -> _M:
    """Validate decoded JSON against ``model`` with JSON's own types (no coercion).

    pydantic's lax mode would read ``true`` as 1 and ``"1"`` as a number, which
    the OpenAPI schema (``"type": "number"``) does not allow; its strict JSON
    mode keeps the JSON types apart and still reads RFC 3339 strings as
    date-times and strings as enum members. Integer fields take integral
    numbers (``Integer``).

    Raises:
        ValidationError: as ``model.model_validate`` would.
    """
    return model.model_validate_json(to_json(data, inf_nan_mode="constants"), strict=True)


class AssetKind(StrEnum):
    """The kinds of asset the service can enroll."""

    BATTERY = "battery"  #: stationary battery storage
    EV_CHARGER = "ev_charger"  #: an EV charger (bidirectional when V2G is allowed)
    FLEXIBLE_LOAD = "flexible_load"  #: a load that can shed (HVAC, chiller, compressor, line)
    PV = "pv"  #: photovoltaic generation, curtailable
    METER = "meter"  #: an enterprise's metering point (measures, never dispatched)


class MqttConnection(_Model):
    """A device that publishes telemetry and takes setpoints over MQTT."""

    model_config = ConfigDict(json_schema_extra=requires("protocol"))

    protocol: Literal["mqtt"] = "mqtt"
    topic_prefix: str = Field(
        min_length=1,
        max_length=200,
        # Spelled out, not \s: regex engines disagree on what \s matches (U+0085...).
        pattern=r"^[^#+\x00-\x20\x7f-\x9f]+$",
        description="no wildcards (#, +), spaces or control characters",
    )


class ModbusConnection(_Model):
    """A device reached over Modbus TCP (SunSpec register maps)."""

    model_config = ConfigDict(json_schema_extra=requires("protocol"))

    protocol: Literal["modbus"] = "modbus"
    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9_.:-]+$")
    port: Integer = Field(default=502, ge=1, le=65535)
    unit_id: Integer = Field(default=1, ge=0, le=247)
    # SunSpec 802 W states no sign and vendors differ: the sign is enrolled, never guessed.
    power_sign: Literal["charge_positive", "discharge_positive"] = Field(
        default="charge_positive",
        description="sign of the battery power the device reports (SunSpec 802 W)",
    )
    setpoint_sign: Literal["charge_positive", "discharge_positive"] = Field(
        default="discharge_positive",
        description="sign of the power setpoint the device takes (SunSpec 704 WSet;"
        " discharge_positive = positive is fed into the grid, the DER convention)",
    )


class OcppConnection(_Model):
    """A charge point that connects to the service over OCPP 2.0.1 / 2.1."""

    model_config = ConfigDict(json_schema_extra=requires("protocol"))

    protocol: Literal["ocpp"] = "ocpp"
    charge_point_id: str = Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9_.:-]+$")
    evse_id: Integer = Field(default=1, ge=1, le=2**31 - 1, description="OCPP evseId (int32)")


Connection: TypeAlias = Annotated[
    MqttConnection | ModbusConnection | OcppConnection, Field(discriminator="protocol")
]


class DeviationCosts(_Model):
    """What deviating from the baseline costs, per kWh.

    Attributes:
        up_per_kwh: cost of drawing more (or feeding in less) than the baseline.
        down_per_kwh: cost of drawing less (or feeding in more) than the baseline.
    """

    up_per_kwh: float = Field(default=0.0, ge=0)
    down_per_kwh: float = Field(default=0.0, ge=0)


def _not_above(name: str, other: str) -> Any:
    """A validator: field ``name`` may not exceed field ``other`` (declared before it)."""

    def check(cls: type[BaseModel], value: float, info: ValidationInfo) -> float:
        top = info.data.get(other)
        if top is not None and value > top:
            raise ValueError(f"{name} ({value}) exceeds {other} ({top})")
        return value

    return field_validator(name)(classmethod(check))


class _AssetBase(_Model):
    model_config = ConfigDict(json_schema_extra=requires("kind"))

    id: AssetId
    name: str = Field(default="", max_length=200)
    owner: str = Field(min_length=1, max_length=200, description="owner enterprise")
    grid_node: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
    costs: DeviationCosts = Field(default_factory=DeviationCosts)
    # readOnly: a client does not send them (the service sets both on enroll;
    # a patch may repeat them unchanged only).
    enrolled_at: datetime | None = Field(
        default=None, description="set by the service", json_schema_extra={"readOnly": True}
    )
    updated_at: datetime | None = Field(
        default=None, description="set by the service", json_schema_extra={"readOnly": True}
    )


class _DeviceBase(_AssetBase):
    """An asset the service dispatches: always reachable over a connection."""

    connection: Connection


class Battery(_DeviceBase):
    """Stationary battery storage: a SoC window, charge and discharge limits."""

    kind: Literal["battery"] = "battery"
    capacity_kwh: float = Field(gt=0, le=MAX_ASSET_KW)
    max_charge_kw: _Kw
    max_discharge_kw: _Kw
    soc_min: _Fraction = 0.1
    soc_max: _Fraction = Field(default=0.9, description="greater than soc_min")
    charge_efficiency: _Efficiency = 0.95
    discharge_efficiency: _Efficiency = 0.95

    @field_validator("soc_max")
    @classmethod
    def _soc_window(cls, value: float, info: ValidationInfo) -> float:
        soc_min = info.data.get("soc_min")
        if soc_min is not None and value <= soc_min:
            raise ValueError(f"soc_max ({value}) must be greater than soc_min ({soc_min})")
        return value


def _ev_schema(schema: dict[str, Any]) -> None:
    requires("kind")(schema)
    # Discharge is only for V2G chargers: what _discharge_needs_v2g checks.
    schema["if"] = {"properties": {"v2g": {"const": True}}, "required": ["v2g"]}
    schema["else"] = {"properties": {"max_discharge_kw": {"maximum": 0}}}


class EvCharger(_DeviceBase):
    """An EV charger; it may discharge only when V2G is allowed."""

    model_config = ConfigDict(json_schema_extra=_ev_schema)

    kind: Literal["ev_charger"] = "ev_charger"
    v2g: bool = False
    max_charge_kw: float = Field(gt=0, le=MAX_ASSET_KW)
    min_charge_kw: _Kw = Field(default=0.0, description="at most max_charge_kw")
    max_discharge_kw: _Kw = Field(default=0.0, description="0 unless v2g is true")
    charge_efficiency: _Efficiency = 0.92
    discharge_efficiency: _Efficiency = 0.92

    _min_below_max = _not_above("min_charge_kw", "max_charge_kw")

    @field_validator("max_discharge_kw")
    @classmethod
    def _discharge_needs_v2g(cls, value: float, info: ValidationInfo) -> float:
        if value > 0 and info.data.get("v2g") is False:
            raise ValueError("max_discharge_kw must be 0 unless v2g is true")
        return value


class FlexibleLoad(_DeviceBase):
    """A load that can shed part of its baseline for a while, then rebounds."""

    kind: Literal["flexible_load"] = "flexible_load"
    baseline_kw: float = Field(
        gt=0, le=MAX_ASSET_KW, description="typical draw with no demand response"
    )
    max_shed_kw: float = Field(gt=0, le=MAX_ASSET_KW, description="at most baseline_kw")
    max_shed_minutes: float = Field(gt=0, le=24 * 60)
    rebound_fraction: float = Field(
        default=0.0, ge=0, le=2, description="share of the shed energy drawn back afterwards"
    )
    rebound_minutes: float = Field(default=0.0, ge=0, le=24 * 60)
    min_rest_minutes: float = Field(default=0.0, ge=0, le=24 * 60)

    _shed_within_baseline = _not_above("max_shed_kw", "baseline_kw")


class Pv(_DeviceBase):
    """Photovoltaic generation, curtailable down to zero when allowed."""

    kind: Literal["pv"] = "pv"
    rated_kw: float = Field(gt=0, le=MAX_ASSET_KW, description="inverter AC rating")
    curtailable: bool = True
    tilt_deg: float = Field(
        default=20.0, ge=0, le=90, description="array tilt from horizontal, degrees (0 = flat)"
    )
    azimuth_deg: float = Field(
        default=180.0,
        ge=0,
        lt=360,
        description="direction the array faces, degrees clockwise from north (180 = south)",
    )


class Meter(_AssetBase):
    """A metering point (计量点) of an enterprise: measures its load, is never dispatched.

    A meter is read live like other assets (Modbus TCP with SunSpec meter
    models 201-204, or MQTT) or, with no ``connection``, only filled by
    importing the grid company's metering data (96 interval energies a day,
    ``PUT …/meters/{meter}/readings``). Its power follows the service's sign
    convention: positive = drawn from the grid (import).

    Attributes:
        account_no: the grid account number (户号) of the enterprise at this point.
        revenue: True for the enterprise's revenue (settlement) meter; at most
            one per enterprise. Its readings are the enterprise's "measured"
            in event reports, and the source of its baselines.
        multiplier: the meter's multiplier (倍率, CT ratio × VT ratio): live
            readings, which a meter gives on its secondary side, are scaled by
            it. Imported energies are primary values (the metering system has
            applied it already).
    """

    kind: Literal["meter"] = "meter"
    account_no: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="grid account (户号)"
    )
    revenue: bool = Field(default=False, description="the enterprise's revenue meter")
    multiplier: float = Field(default=1.0, gt=0, le=1e6, description="CT × VT ratio (倍率)")
    connection: (
        Annotated[MqttConnection | ModbusConnection, Field(discriminator="protocol")] | None
    ) = Field(default=None, description="absent for a meter filled only by import")


#: An enrolled asset of any kind: the one asset union of the service, tagged by
#: ``kind``. The tag makes pydantic pick the model directly; to a type checker
#: it is the plain union, narrowed with ``match`` / ``isinstance`` on the kind's model.
Asset: TypeAlias = Annotated[
    Battery | EvCharger | FlexibleLoad | Pv | Meter, Field(discriminator="kind")
]

#: The model class of each kind.
ASSET_MODELS: dict[str, type[Asset]] = {
    AssetKind.BATTERY.value: Battery,
    AssetKind.EV_CHARGER.value: EvCharger,
    AssetKind.FLEXIBLE_LOAD.value: FlexibleLoad,
    AssetKind.PV.value: Pv,
    AssetKind.METER.value: Meter,
}

# tag -> the union fields it may follow in an error path
_UNION_TAGS: dict[str, tuple[str, ...]] = {
    tag: ("connection",) for tag in ("mqtt", "modbus", "ocpp")
}

_ASSET_ADAPTER: TypeAdapter[Asset] = TypeAdapter(Asset)


class LiveState(_Model):
    """Live telemetry of one asset, as the adapters last saw it.

    Attributes:
        power_kw: present power, positive = drawn from the grid.
        soc: state of charge 0..1 (batteries, connected EVs).
        energy_kwh: stored energy (batteries, connected EVs).
        ev_connected: whether a vehicle is plugged in (chargers).
        ev_departure: when the plugged-in vehicle leaves.
        ev_energy_needed_kwh: energy still owed to the vehicle by departure.
        available: whether the asset takes setpoints right now.
        ts: when the reading was taken.
    """

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    power_kw: float
    soc: _Fraction | None = None
    energy_kwh: float | None = Field(default=None, ge=0)
    ev_connected: bool | None = None
    ev_departure: datetime | None = None
    ev_energy_needed_kwh: float | None = Field(default=None, ge=0)
    available: bool = True
    ts: datetime = Field(default_factory=utcnow)


def _known_zone(value: str) -> str:
    # The tz database (zoneinfo, with the tzdata package where the system has none).
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}: give an IANA name") from None
    return value


#: A name of the IANA tz database (``Asia/Shanghai``); anything else is refused.
TimeZoneName = Annotated[str, AfterValidator(_known_zone)]


#: How an event's customer baseline load (CBL) is set. ``model`` and
#: ``pre_event`` come from the live state at the event's activation;
#: ``similar_days`` and ``high_x_of_y`` from the interval history.
BaselineMethod: TypeAlias = Literal["model", "pre_event", "similar_days", "high_x_of_y"]


class BaselineAdjustment(_Model):
    """The same-day adjustment of a historical baseline.

    The baseline is scaled by (actual / baseline) over the ``hours`` before
    the event starts, the ratio clamped to ``1 ± cap``.
    """

    hours: float = Field(default=2.0, gt=0, le=12, description="window before the event, h")
    cap: float = Field(
        default=0.2, ge=0, le=1, description="largest change either way (0.2 = ±20 %)"
    )


class BaselineSettings(_Model):
    """Parameters of the historical baseline methods.

    ``similar_days``: the mean of the ``days`` most recent similar days (working
    day or not, per the official Chinese calendar with its adjusted working
    days). ``high_x_of_y``: the mean of the ``x`` highest-energy days among the
    ``y`` most recent similar days. Candidate days are looked for over the
    last ``lookback_days``; event days and days whose coverage is below
    ``min_coverage`` are left out. With fewer candidates than the method needs
    (``days``, or ``x``), the event falls back to ``fallback`` and says so.
    """

    days: Integer = Field(default=5, ge=1, le=30, description="similar_days: N")
    x: Integer = Field(default=5, ge=1, le=30, description="high_x_of_y: X")
    y: Integer = Field(
        default=10, ge=1, le=60, validate_default=True, description="high_x_of_y: Y (at least X)"
    )
    lookback_days: Integer = Field(default=45, ge=1, le=400)
    min_coverage: float = Field(default=0.9, ge=0, le=1, description="a candidate day's coverage")
    # Off unless given: an absent field and null mean the same, so a park read
    # back (where nulls are left out) and written again keeps its setting.
    adjustment: BaselineAdjustment | None = Field(
        default=None,
        description="the same-day adjustment (e.g. {hours: 2, cap: 0.2}); absent or null: none",
    )
    fallback: Literal["model", "pre_event"] = "pre_event"

    @field_validator("y")
    @classmethod
    def _y_covers_x(cls, value: int, info: ValidationInfo) -> int:
        x = info.data.get("x")
        if x is not None and value < x:
            raise ValueError(f"y ({value}) must be at least x ({x})")
        return value


#: The grid emission factors a park can choose: the ids of
#: `vpp.ledger.factors.ELECTRICITY_FACTORS`, or ``provincial`` (its own).
ElectricityFactorId: TypeAlias = Literal[
    "mee-2023-southern",
    "mee-2023-national",
    "mee-2023-national-excl-traded-nonfossil",
    "mee-2023-national-fossil",
    "provincial",
]


class ProvincialFactor(_Model):
    """A grid emission factor the operator enters with its source (e.g. a provincial one)."""

    kg_co2_per_kwh: float = Field(gt=0, le=2, description="kgCO2/kWh (= tCO2/MWh)")
    vintage: str = Field(min_length=1, max_length=32, description="the year it is for, e.g. 2023")
    source: str = Field(min_length=1, max_length=500, description="who published it, where")
    name: str = Field(default="provincial factor", min_length=1, max_length=200)


def _carbon_schema(schema: dict[str, Any]) -> None:
    # A provincial factor needs its value: what _provincial_given checks.
    schema["if"] = {
        "properties": {"electricity_factor": {"const": "provincial"}},
        "required": ["electricity_factor"],
    }
    schema["then"] = {
        "properties": {"provincial_factor": {"type": "object"}},
        "required": ["provincial_factor"],
    }


class CarbonSettings(_Model):
    """How the park's carbon is accounted (`vpp.ledger`).

    ``electricity_factor`` names the grid emission factor of purchased
    electricity: an id of `vpp.ledger.factors.ELECTRICITY_FACTORS` (default
    the MEE/NBS 2023 Southern grid region factor, 0.4042 kgCO2/kWh) or
    ``"provincial"`` for the operator's own ``provincial_factor``.
    """

    model_config = ConfigDict(json_schema_extra=_carbon_schema)

    electricity_factor: ElectricityFactorId = Field(
        default="mee-2023-southern",
        description="the grid emission factor of purchased electricity (vpp.ledger.factors)",
    )
    provincial_factor: ProvincialFactor | None = Field(
        default=None, description="required when electricity_factor is provincial"
    )

    @model_validator(mode="after")
    def _provincial_given(self) -> CarbonSettings:
        if self.electricity_factor == "provincial" and self.provincial_factor is None:
            raise ValueError("provincial_factor: required when electricity_factor is 'provincial'")
        return self


class Enterprise(_Model):
    """An enterprise's agency contract with the park (the VPP).

    Keyed in ``Park.enterprises`` by the enterprise's id, which its assets
    carry as ``owner``. Of the park's settlement of an event, the enterprise
    receives ``revenue_share`` of the payment its delivery earned (收益分成)
    and bears ``penalty_share`` of the penalty its shortfall caused (考核分摊);
    the park's operator keeps or bears the rest.
    """

    name: str = Field(default="", max_length=200)
    revenue_share: _Fraction = Field(default=1.0, description="share of its earned payment")
    penalty_share: _Fraction = Field(default=1.0, description="share of its penalty")


#: An enterprise id: what its assets carry as ``owner``.
EnterpriseId: TypeAlias = Annotated[str, Field(min_length=1, max_length=200)]


class ParkLocation(_Model):
    """Where a park is: what a PV array's clear-sky forecast (`vpp.forecast.pv`) needs."""

    latitude: float = Field(ge=-90, le=90, description="degrees north (WGS 84)")
    longitude: float = Field(ge=-180, le=180, description="degrees east (WGS 84)")
    altitude_m: float = Field(default=0.0, ge=-500, le=9000, description="metres above sea level")


class Park(_Model):
    """A park's metadata, its baseline method and its enterprises' contracts."""

    id: ParkId
    name: str = Field(default="", max_length=200)
    timezone: TimeZoneName = Field(
        default="Asia/Shanghai",
        max_length=64,
        description="an IANA time-zone name (the tz database), e.g. Asia/Shanghai",
    )
    description: str = Field(default="", max_length=2000)
    baseline_method: BaselineMethod = Field(
        default="model",
        description=(
            "how an event's baseline is set at its activation: 'model' = each asset's own "
            "forecast (batteries at their measured power, uncontrolled EV charging, loads "
            "and PV at their measured power shaped by the park's latest forecast); "
            "'pre_event' = each asset's measured power just before the event, held flat; "
            "'similar_days' = the mean of the N most recent similar days of the history; "
            "'high_x_of_y' = the mean of the X highest of the last Y similar days"
        ),
    )
    baseline: BaselineSettings = Field(default_factory=BaselineSettings)
    enterprises: dict[EnterpriseId, Enterprise] = Field(
        default_factory=dict,
        max_length=1000,
        description="each enterprise's contract, by enterprise id (the assets' owner)",
    )
    carbon: CarbonSettings = Field(
        default_factory=CarbonSettings, description="the ledger's electricity emission factor"
    )
    location: ParkLocation | None = Field(
        default=None,
        description="the park's latitude and longitude, for its PV arrays' clear-sky forecast "
        "(without it PV is forecast from its history alone)",
    )

    @model_validator(mode="after")
    def _lookback_holds_the_days(self) -> Park:
        # The park's own method must be able to find its days in the lookback at
        # all (calendar days: similar days are fewer still); an event's override
        # that cannot falls back at activation and says why.
        settings, method = self.baseline, self.baseline_method
        need = {"similar_days": ("days", settings.days), "high_x_of_y": ("y", settings.y)}
        if method in need and settings.lookback_days < need[method][1]:
            name, days = need[method]
            raise ValueError(
                f"baseline.lookback_days: {settings.lookback_days} days cannot hold the"
                f" {days} similar days {method} needs (baseline.{name}): give at least {days}"
            )
        return self

    def enterprise(self, owner: str) -> Enterprise:
        """The contract of ``owner``; an enterprise with none gets the defaults (all its own)."""
        return self.enterprises.get(owner) or Enterprise()


def revenue_meters(assets: Iterable[Asset]) -> dict[str, Meter]:
    """Enterprise (owner) -> its revenue meter, the lowest id when it enrolled several.

    The one meter an enterprise is measured and accounted by: its event
    delivery (`vpp.scopes`), its part of the park's history series
    (`vpp.api.history`) and its grid exchange in the ledger (`vpp.ledger.balance`).
    Any assets may be given; those that are not revenue meters are skipped.
    """
    out: dict[str, Meter] = {}
    for asset in sorted(assets, key=lambda a: a.id):
        if isinstance(asset, Meter) and asset.revenue:
            out.setdefault(asset.owner, asset)
    return out


def enterprise_ids(park: Park, assets: Iterable[Asset]) -> set[str]:
    """The enterprises of a park: those with a contract and the owners of its assets."""
    return set(park.enterprises) | {asset.owner for asset in assets}


class ParkSummary(_Model):
    """A park with the count of its enrolled assets by kind."""

    park: Park
    assets: dict[str, int] = Field(description="enrolled assets by kind")


#: "field: message" as raised by a model validator about one field.
_NAMED_MESSAGE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*): (.+)$", re.DOTALL)


def invalid_input(exc: ValidationError, prefix: str = "") -> InvalidInput:
    """Translate a pydantic error into ``InvalidInput`` with dotted field names."""
    errors = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        # A tagged union puts its tag into the path ('connection.modbus.port');
        # the caller knows the field as 'connection.port'.
        loc = [p for i, p in enumerate(loc) if not (i and loc[i - 1] in _UNION_TAGS.get(p, ()))]
        message = err["msg"].removeprefix("Value error, ")
        named = _NAMED_MESSAGE.match(message) if err["type"] == "value_error" else None
        if named and (not loc or named.group(1) not in loc):
            # A cross-field check (a model validator) has no location of its
            # own (or only its model's, as a nested one): it names its field
            # as "field: message".
            loc, message = [*loc, named.group(1)], named.group(2)
        field = ".".join(filter(None, [prefix, *loc])) or "body"
        errors.append(FieldError(field=field, message=message, type=err["type"]))
    return InvalidInput(errors)


def parse_asset(data: Any) -> Asset:
    """Validate an asset payload (a JSON object) into the model of its kind.

    Args:
        data: the decoded JSON payload.

    Returns:
        The validated asset.

    Raises:
        InvalidInput: naming each invalid field; ``kind`` when the kind is
            missing or unknown, ``body`` when ``data`` is not an object.
    """
    if not isinstance(data, dict):
        raise InvalidInput([FieldError("body", "must be a JSON object", "dict_type")])
    kind = data.get("kind")
    model = ASSET_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        kinds = ", ".join(ASSET_MODELS)
        if kind is None:
            raise InvalidInput([FieldError("kind", f"Field required; one of {kinds}", "missing")])
        raise InvalidInput([FieldError("kind", f"unknown kind {kind!r}; one of {kinds}", "kind")])
    try:
        # Validating against the kind's own model keeps the error paths free of
        # the union tag: 'soc_max', not 'battery.soc_max'.
        return parse_json_data(model, data)
    except ValidationError as exc:
        raise invalid_input(exc) from exc


def asset_from_dict(data: dict[str, Any]) -> Asset:
    """Rebuild an asset that was stored by the service (trusted, already validated)."""
    return _ASSET_ADAPTER.validate_python(data)


#: Fields a PATCH may not change.
IMMUTABLE_FIELDS = ("id", "kind", "enrolled_at", "updated_at")


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: ``null`` deletes, objects merge, the rest replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = _merge(result.get(name), value)
    return result


def apply_patch(asset: Asset, patch: Any) -> Asset:
    """Apply a JSON merge patch (RFC 7396) to an asset and validate the result.

    Args:
        asset: the enrolled asset.
        patch: the decoded JSON merge patch.

    Returns:
        The changed asset (``enrolled_at`` kept; ``updated_at`` is the caller's).

    Raises:
        InvalidInput: the patch touches an immutable field or yields an invalid asset.
    """
    if not isinstance(patch, dict):
        raise InvalidInput([FieldError("body", "must be a JSON object", "dict_type")])
    current = asset.model_dump(mode="json")
    bad = [
        FieldError(name, f"{name} cannot be changed; retire and enroll instead", "immutable")
        for name in IMMUTABLE_FIELDS
        if name in patch and patch[name] != current.get(name)
    ]
    if bad:
        raise InvalidInput(bad)
    connection = patch.get("connection")
    present = current.get("connection") or {}  # an import-only meter has none
    if isinstance(connection, dict) and connection.get("protocol") not in (
        None,
        present.get("protocol"),
    ):
        # A new protocol brings a new connection; merging would keep the old one's fields.
        current.pop("connection")
    return parse_asset(_merge(current, patch))
