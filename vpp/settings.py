"""Settings: a TOML file, overridden by ``VPP_*`` environment variables.

Every field of every section can be set in the file (``[redis] url = ...``)
and overridden by ``VPP_<SECTION>_<FIELD>`` (``VPP_REDIS_URL``,
``VPP_HTTP_PORT``, ``VPP_REDIS_NAMESPACE``, ``VPP_STATE_DIR``). Unknown
sections or fields in the file are errors, so a typo does not pass silently;
``VPP_*`` variables that name no field are left to whoever reads them. See
``config/vpp.example.toml`` for every field with its default.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, get_type_hints

from vpp.errors import SettingsError
from vpp.keys import DEFAULT_NAMESPACE

__all__ = [
    "AuthSettings",
    "ControlSettings",
    "HttpSettings",
    "LogSettings",
    "ModbusSettings",
    "MqttSettings",
    "OcppSettings",
    "OpenAdrSettings",
    "RedisSettings",
    "Settings",
    "StateSettings",
]

ENV_PREFIX = "VPP_"


@dataclass
class HttpSettings:
    """The HTTP API listener."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: seconds in-flight requests get to finish on SIGTERM
    shutdown_timeout: float = 10.0


@dataclass
class RedisSettings:
    """Where the state lives. An empty ``url`` starts a private redis-server."""

    url: str = ""
    namespace: str = DEFAULT_NAMESPACE
    #: connect and command timeout, seconds
    timeout: float = 2.0
    #: age (by its own timestamp) at which a live reading no longer counts, seconds
    live_ttl: float = 60.0
    #: approximate length each park's event log is trimmed to
    log_maxlen: int = 100_000


@dataclass
class StateSettings:
    """Local files: the private Redis's data and its address."""

    dir: str = "state"


@dataclass
class AuthSettings:
    """Authentication of the HTTP API."""

    #: the realm named in WWW-Authenticate
    realm: str = "vpp"


@dataclass
class LogSettings:
    """Logging of the service (configured by the CLI only)."""

    level: str = "INFO"


@dataclass
class MqttSettings:
    """The MQTT broker the device adapters use (aiomqtt 2.x)."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str = ""
    password: str = ""
    client_id: str = "vpp"
    keepalive: int = 30
    #: first topic level(s) for assets whose enrolled topic_prefix does not name
    #: their own ({root}/{park}/{asset}/telemetry, see adapters.mqtt_codec)
    root: str = "vpp"


@dataclass
class OcppSettings:
    """The OCPP 2.0.1 / 2.1 central-system listener for charge points."""

    host: str = "127.0.0.1"
    port: int = 9000
    heartbeat_interval: int = 60
    #: key each charge point's basic-auth password is derived from
    #: (vpp.supervisor.charger_password); keep it secret, set it in production
    auth_secret: str = ""


@dataclass
class ModbusSettings:
    """Polling of Modbus TCP (SunSpec) devices."""

    poll_interval: float = 5.0
    timeout: float = 2.0
    retries: int = 2
    #: TCP connections opened to each Modbus gateway (setpoints go ahead of polls)
    connections: int = 4


@dataclass
class ControlSettings:
    """The closed-loop control of dispatch events."""

    #: seconds between control-loop ticks
    period: float = 5.0
    #: minutes per interval of the flexibility grid (96 a day at 15)
    interval_minutes: int = 15
    #: seconds a park's control lease lasts before another worker may take it
    lease_ttl: float = 15.0


@dataclass
class OpenAdrSettings:
    """The OpenADR 3.1 VEN side (disabled while ``vtn_url`` is empty)."""

    vtn_url: str = ""
    ven_name: str = "vpp-ven"
    client_id: str = ""
    client_secret: str = ""
    poll_interval: float = 30.0
    #: the park the VEN speaks for (the VEN is off while empty)
    park: str = ""
    #: programName(s) to follow, comma-separated
    programs: str = ""
    #: park load that SIMPLE levels are fractions of, kW
    park_capacity_kw: float = 1000.0


@dataclass
class ReportSettings:
    """Settlement estimate and avoided-CO2 figures of event reports (see ``vpp.reports``)."""

    #: compensation per kWh of effective response (CNY); an event's own price wins
    price_per_kwh: float = 3.5
    #: event performance below which nothing is paid and the shortfall is charged
    performance_threshold: float = 0.8
    #: charge per kWh of shortfall below the threshold (CNY)
    penalty_per_kwh: float = 1.0
    #: delivery above cap_ratio x target is not paid
    cap_ratio: float = 1.2
    currency: str = "CNY"
    #: grid emission factor, tCO2/MWh, and where it comes from
    emission_factor_t_per_mwh: float = 0.5703
    emission_factor_source: str = (
        "MEE 2023 notice on GHG reporting of power-generation enterprises "
        "(national grid average emission factor, 0.5703 tCO2/MWh)"
    )


@dataclass
class Settings:
    """All settings; build with ``Settings.load``."""

    http: HttpSettings = field(default_factory=HttpSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    state: StateSettings = field(default_factory=StateSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    log: LogSettings = field(default_factory=LogSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    ocpp: OcppSettings = field(default_factory=OcppSettings)
    modbus: ModbusSettings = field(default_factory=ModbusSettings)
    control: ControlSettings = field(default_factory=ControlSettings)
    openadr: OpenAdrSettings = field(default_factory=OpenAdrSettings)
    reports: ReportSettings = field(default_factory=ReportSettings)

    @classmethod
    def load(cls, path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Self:
        """Read the TOML file (if any), then apply ``VPP_*`` overrides.

        Args:
            path: a TOML file; None for defaults only.
            env: the environment; ``os.environ`` when omitted.

        Raises:
            SettingsError: unreadable file, unknown key, or a value of the wrong type.
        """
        data: dict[str, Any] = {}
        if path is not None:
            try:
                with Path(path).open("rb") as fh:
                    data = tomllib.load(fh)
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise SettingsError(f"cannot read settings {path}: {exc}") from exc
        settings = cls()
        for section_name, values in data.items():
            section = _section(settings, section_name)
            if not isinstance(values, dict):
                raise SettingsError(f"[{section_name}] must be a table")
            for name, value in values.items():
                _assign(section, section_name, name, value)
        environ = os.environ if env is None else env
        for var, value in environ.items():
            if var.startswith(ENV_PREFIX) and var != "VPP_CONFIG" and "_" in var[4:]:
                section_name, _, name = var[len(ENV_PREFIX) :].lower().partition("_")
                if section_name not in _section_names(settings):
                    continue
                section = _section(settings, section_name)
                # Other parts read VPP_* variables of their own (VPP_OPENADR_SPEC,
                # VPP_TEST_REDIS_URL), so an unknown one is not an error here.
                if name in get_type_hints(type(section)):
                    _assign(section, section_name, name, value)
        return settings

    @property
    def state_dir(self) -> Path:
        """The state folder as a path."""
        return Path(self.state.dir)


def _section_names(settings: Settings) -> list[str]:
    return [f.name for f in dataclasses.fields(settings)]


def _section(settings: Settings, name: str) -> Any:
    if name not in _section_names(settings):
        raise SettingsError(f"unknown settings section [{name}]")
    return getattr(settings, name)


def _assign(section: Any, section_name: str, name: str, value: Any) -> None:
    """Set ``section.name``, coercing environment strings to the field's type."""
    hints = get_type_hints(type(section))
    if name not in hints:
        raise SettingsError(f"unknown setting {section_name}.{name}")
    kind = hints[name]
    where = f"{section_name}.{name}"
    try:
        if kind is bool:
            value = _boolean(value)
        elif kind is int and not isinstance(value, bool):
            value = int(value)
        elif kind is float and not isinstance(value, bool):
            value = float(value)
        elif kind is str and not isinstance(value, str):
            raise TypeError(f"expected a string, got {type(value).__name__}")
        else:
            value = kind(value) if isinstance(value, str) else value
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"invalid {where}={value!r}: {exc}") from exc
    if not isinstance(value, kind):
        raise SettingsError(f"invalid {where}={value!r}: expected {kind.__name__}")
    setattr(section, name, value)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected a boolean")
