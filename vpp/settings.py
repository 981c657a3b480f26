"""Settings: a TOML file, overridden by ``VPP_*`` environment variables.

Every field of every section can be set in the file (``[redis] url = ...``)
and overridden by ``VPP_<SECTION>_<FIELD>`` (``VPP_REDIS_URL``,
``VPP_HTTP_PORT``, ``VPP_REDIS_NAMESPACE``, ``VPP_STATE_DIR``). Unknown
sections or fields in the file are errors, so a typo does not pass silently;
``VPP_*`` variables that name no field are left to whoever reads them. See
``config/vpp.example.toml`` for every field with its default.

Each section is the settings object of its component, with the one default
of each value: ``[control]`` is the `ControlSettings` the control loops run
with, ``[openadr]`` builds the VEN's settings
(`vpp.openadr.OpenAdrSettings.ven_settings`). Durations and rates carry
their unit in their name (``period_s``, ``price_per_kwh``); the names they had
before (`RENAMED`) are still read, with a `FutureWarning` (Python's category
for deprecations meant for users, shown by default), and a file or
environment that sets a field under both names is an error. A key that is
no longer a setting (`REMOVED`) is an error naming what replaced it, in the
file and as a ``VPP_*`` variable: an operator who set it must not believe it
still applies. Secrets
(passwords, the Redis URL's password) stay out of ``repr``; log a Redis URL
through `redact_url`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, get_type_hints
from urllib.parse import urlsplit

from vpp.errors import SettingsError
from vpp.keys import DEFAULT_NAMESPACE
from vpp.openadr.settings import OpenAdrSettings

__all__ = [
    "REMOVED",
    "RENAMED",
    "AuthSettings",
    "ControlSettings",
    "ForecastSettings",
    "HistorySettings",
    "HttpSettings",
    "LedgerSettings",
    "LogSettings",
    "MarketSettings",
    "ModbusSettings",
    "MqttSettings",
    "OcppSettings",
    "RedisSettings",
    "ReplicaSettings",
    "ReportSettings",
    "Settings",
    "StateSettings",
    "redact_url",
]

ENV_PREFIX = "VPP_"

#: Keys renamed to name their unit: (section, old key) -> new key. The old keys
#: and their ``VPP_*`` variables are still read, with a `FutureWarning`.
RENAMED: Mapping[tuple[str, str], str] = {
    ("http", "shutdown_timeout"): "shutdown_timeout_s",
    ("redis", "timeout"): "timeout_s",
    ("redis", "live_ttl"): "live_ttl_s",
    ("mqtt", "keepalive"): "keepalive_s",
    ("ocpp", "heartbeat_interval"): "heartbeat_interval_s",
    ("modbus", "poll_interval"): "poll_interval_s",
    ("modbus", "timeout"): "timeout_s",
    ("control", "period"): "period_s",
    ("control", "lease_ttl"): "lease_ttl_s",
    ("openadr", "poll_interval"): "poll_interval_s",
}

_PER_PARK_FACTOR = (
    "the grid emission factor of event reports is now chosen per park, with its vintage and "
    "source: set carbon.electricity_factor on the park (PUT /v1/parks/{park}, or [park.carbon] "
    "in a park file) to an id of vpp.ledger.factors.ELECTRICITY_FACTORS (default "
    "mee-2023-southern, MEE/NBS 2023 Southern grid region, 0.4042 kgCO2/kWh), or to "
    "'provincial' with carbon.provincial_factor {kg_co2_per_kwh, vintage, source}; "
    "remove this key"
)

#: Keys that are no longer settings: (section, key) -> what replaced them. A
#: file or environment that still sets one is an error naming the replacement.
REMOVED: Mapping[tuple[str, str], str] = {
    ("reports", "emission_factor_t_per_mwh"): _PER_PARK_FACTOR,
    ("reports", "emission_factor_source"): _PER_PARK_FACTOR,
}


@dataclass
class HttpSettings:
    """The HTTP API listener."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: seconds in-flight requests get to finish on SIGTERM
    shutdown_timeout_s: float = 10.0


@dataclass(repr=False)
class RedisSettings:
    """Where the state lives. An empty ``url`` starts a private redis-server.

    A Redis Cluster is named by the URL scheme ``redis+cluster://host:port``
    (``rediss+cluster://`` with TLS), or by ``cluster = true`` with a plain
    ``redis://host:port`` URL: either names any one node, or several seed
    nodes tried in turn (``redis+cluster://h1:7000,h2:7000,h3:7000``, so a
    replica starts while one is down), from which the cluster client learns
    the rest; no host, a port that is not a number or a database other than
    0 is a `SettingsError` at start (`vpp.redis_client.cluster_seeds`). ``repr`` shows the
    URL with its password masked (`redact_url`).
    """

    url: str = ""
    #: the URL names a node of a Redis Cluster (same as a ``redis+cluster://`` URL)
    cluster: bool = False
    namespace: str = DEFAULT_NAMESPACE
    #: connect and command timeout, seconds
    timeout_s: float = 2.0
    #: age (by its own timestamp) at which a live reading no longer counts, seconds
    live_ttl_s: float = 60.0
    #: approximate length each park log (a Redis stream) is trimmed to
    log_maxlen: int = 100_000

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        shown["url"] = redact_url(self.url)
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


@dataclass
class ReplicaSettings:
    """This process as one of several service replicas sharing one Redis: ``[replicas]``.

    Every replica serves the whole API; each park's device supervision, control
    loop and history run on the replica holding the park's lease (the key
    ``Keys.control_lease``, its owner this replica's ``id``), and a replica
    takes at most its fair share of the unheld parks (`vpp.replicas`).

    Attributes:
        id: this replica's id, unique among the live ones; empty: ``{host}-{pid}-{random}``,
            new at every start, so a restarted replica never inherits a lease it lost.
        heartbeat_s: real seconds between this replica's heartbeats in
            ``GlobalKeys.replicas`` (it counts as gone after ``3 × heartbeat_s``).
    """

    id: str = ""
    heartbeat_s: float = 2.0


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
    """The MQTT broker the device adapters use (aiomqtt 2.x); ``password`` is not in ``repr``."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str = ""
    password: str = field(default="", repr=False)
    client_id: str = "vpp"
    keepalive_s: int = 30
    #: first topic level(s) for assets whose enrolled topic_prefix does not name
    #: their own ({root}/{park}/{asset}/telemetry, see adapters.mqtt_codec)
    root: str = "vpp"
    #: MQTT 5 share name the replicas of one deployment read telemetry under
    #: ($share/{group}/{root}/{park}/+/telemetry): each reading reaches one
    #: replica. "{namespace}" stands for [redis] namespace, so deployments on
    #: one broker each get every reading once. Empty: plain subscriptions
    #: (every replica reads everything). No '/', '+' or '#' (share_group_in).
    share_group: str = "{namespace}"

    def share_group_in(self, namespace: str) -> str:
        """``share_group`` with ``{namespace}`` replaced by ``namespace`` (the Redis one).

        Raises:
            SettingsError: the result holds '/', '+' or '#' (MQTT 5 section 4.8.2).
        """
        group = self.share_group.replace("{namespace}", namespace)
        if any(c in group for c in "/+#"):
            raise SettingsError(f"mqtt.share_group {group!r} must not contain '/', '+' or '#'")
        return group


@dataclass
class OcppSettings:
    """The OCPP 2.0.1 / 2.1 central-system listener for charge points."""

    host: str = "127.0.0.1"
    port: int = 9000
    heartbeat_interval_s: int = 60
    #: key each charge point's basic-auth password is derived from
    #: (vpp.supervisor.charger_password); keep it secret, set it in production.
    #: Not in ``repr``.
    auth_secret: str = field(default="", repr=False)


@dataclass
class ModbusSettings:
    """Polling of Modbus TCP (SunSpec) devices."""

    poll_interval_s: float = 5.0
    timeout_s: float = 2.0
    retries: int = 2
    #: TCP connections opened to each Modbus gateway (setpoints go ahead of polls)
    connections: int = 4


@dataclass(kw_only=True)
class ControlSettings:
    """The closed-loop control of dispatch events: the ``[control]`` section.

    `vpp.control.ControlLoop` runs with these (its lease, its period, its tuning).

    Attributes:
        period_s: seconds of clock time between cycles.
        interval_minutes: minutes per interval of the flexibility grid (96 a day at 15).
        lease_ttl_s: real seconds a park's control lease lasts without renewal,
            before another worker may take it.
        hold_factor: a setpoint holds for this many periods, so a loop that dies
            leaves devices to revert by themselves soon after.
        horizon_after_h: the dispatch grid reaches this far past the event's end,
            so rebound and EV departure needs after the event are planned for.
        resend_kw: a setpoint is sent again only when it moved by more than this
            (or half its hold time passed).
        stick_kw: an asset further than this from its setpoint (and 10 % of its
            deviation) counts as under-delivering.
        correction: how much of the current interval's lag the loop adds to the
            goal for the rest of the interval (0 = none), as a fraction of the target.
        lead_periods: the loop starts an event this many periods before its
            start, so devices have reached their setpoints when the first
            interval begins (its measurement starts at the start, not before).
        settle_s: real seconds a device gets to reach a new setpoint before a
            reading that misses it counts against it.
        time_limit_s: time limit of the disaggregation's plan LP.
    """

    period_s: float = 5.0
    interval_minutes: int = 15
    lease_ttl_s: float = 15.0
    hold_factor: float = 3.0
    horizon_after_h: float = 4.0
    resend_kw: float = 0.05
    stick_kw: float = 1.0
    correction: float = 0.25
    lead_periods: float = 1.0
    settle_s: float = 1.5
    time_limit_s: float = 1.0


@dataclass
class ReportSettings:
    """Settlement estimate and avoided-CO2 figures of event reports (see ``vpp.events.report``).

    The grid emission factor is not a setting: each park chooses its own
    (``Park.carbon``, `vpp.ledger.factors`); the old keys are `REMOVED`.
    """

    #: compensation per kWh of effective response (CNY); an event's own price wins
    price_per_kwh: float = 3.5
    #: event performance below which nothing is paid and the shortfall is charged
    performance_threshold: float = 0.8
    #: charge per kWh of shortfall below the threshold (CNY)
    penalty_per_kwh: float = 1.0
    #: delivery above cap_ratio x target is not paid
    cap_ratio: float = 1.2
    currency: str = "CNY"
    #: the least rebound window an event's avoided CO2 counts past its end, hours;
    #: longer for a longer event or a load's longer rebound (see vpp.events.rebound)
    rebound_window_h: float = 1.0
    #: a revenue meter disagrees with its enterprise's telemetry sum when they
    #: differ by more than this fraction of the meter's reading ...
    reconcile_tolerance: float = 0.05
    #: ... and by more than this, kW (see vpp.events.report on both defaults)
    reconcile_floor_kw: float = 1.0


@dataclass
class HistorySettings:
    """The interval history (``vpp.history``): how long it is kept, how often it is written."""

    #: days a series' day is kept after it ended (Redis expiry, set on every write)
    retention_days: int = 400
    #: real seconds between writes of the open interval's telemetry (a restart
    #: loses at most this much of it, shown as partial coverage)
    flush_s: float = 60.0


@dataclass
class LedgerSettings:
    """The energy-carbon ledger (``vpp.ledger``): when a month closes, how often gauges refresh."""

    #: days after a month's end (park time) at which its ledger closes: its
    #: figures are frozen with the factors they used, and change only when
    #: recomputed on request (late metering imports and entries land before)
    close_after_days: int = 5
    #: seconds between refreshes of the zero-carbon indicator gauges
    refresh_s: float = 900.0


@dataclass
class ForecastSettings:
    """Forecasts (``vpp.forecast``): refresh, horizon, history needed, the bids' margin."""

    #: seconds between refreshes of every park's forecast (also refreshed on demand)
    refresh_s: float = 900.0
    #: local days the forecast covers from the issue day's midnight (2 = today and tomorrow)
    horizon_days: int = 2
    #: days of history a series needs before the model forecasts it; with fewer
    #: its forecast is the similar-day profile, named as such
    min_history_days: int = 14
    #: days of history the model learns from
    training_days: int = 56
    #: local time at which the backtest issues its day-ahead forecast (HH:MM)
    issue_time: str = "09:00"
    #: the forecast quantile a bid's capacity is taken at (0.1: the park delivers
    #: it in 9 of 10 days by the backtest's error distribution; 0.5: no margin)
    bid_quantile: float = 0.1
    #: days the background refresher's daily backtest scores (0: none in the
    #: background; run one with ``vpp forecast backtest``); the bids' margin
    #: comes from the latest backtest
    backtest_days: int = 14
    #: a silent device's share of covered intervals over the recent history at
    #: or above which a bid for a later day counts it by its enrolled limits
    min_availability: float = 0.8
    #: days of interval history the availability of a silent device is measured over
    availability_days: int = 7


@dataclass
class MarketSettings:
    """Market rule profiles (``vpp.market``): the tables live in a profiles file, not here."""

    #: a TOML file of [profiles.<name>] tables that add to or replace the shipped
    #: ones (vpp/market/profiles.toml) by name; empty: the shipped ones only
    profiles_file: str = ""
    #: the profile a declaration is checked against when its bid names none
    default_profile: str = "gd-spot-unit"


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
    history: HistorySettings = field(default_factory=HistorySettings)
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    forecast: ForecastSettings = field(default_factory=ForecastSettings)
    market: MarketSettings = field(default_factory=MarketSettings)
    replicas: ReplicaSettings = field(default_factory=ReplicaSettings)

    @classmethod
    def load(cls, path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Self:
        """Read the TOML file (if any), then apply ``VPP_*`` overrides.

        Args:
            path: a TOML file; None for defaults only.
            env: the environment; ``os.environ`` when omitted.

        Raises:
            SettingsError: unreadable file, unknown key, a value of the wrong type,
                or one field set under its old and its new name (`RENAMED`), a
                ``control.lease_ttl_s`` not above ``replicas.heartbeat_s``.
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
            _refuse_removed(section_name, values, from_env=False, source=str(path))
            in_file = _current_names(section_name, values, from_env=False, source=str(path))
            for name, value in in_file.items():
                _assign(section, section_name, name, value)
        environ = os.environ if env is None else env
        by_section: dict[str, dict[str, str]] = {}
        for var, value in environ.items():
            if var.startswith(ENV_PREFIX) and var != "VPP_CONFIG" and "_" in var[4:]:
                section_name, _, name = var[len(ENV_PREFIX) :].lower().partition("_")
                if section_name not in _section_names(settings):
                    continue
                # Other parts read VPP_* variables of their own (VPP_OPENADR_SPEC,
                # VPP_TEST_REDIS_URL), so an unknown one is not an error here.
                section = _section(settings, section_name)
                known = (section_name, name) in RENAMED or (section_name, name) in REMOVED
                if name in get_type_hints(type(section)) or known:
                    by_section.setdefault(section_name, {})[name] = value
        for section_name, values in by_section.items():
            _refuse_removed(section_name, values, from_env=True, source="the environment")
            section = _section(settings, section_name)
            in_env = _current_names(section_name, values, from_env=True, source="the environment")
            for name, value in in_env.items():
                _assign(section, section_name, name, value)
        settings.mqtt.share_group_in(settings.redis.namespace)  # a bad share name fails here
        _check_lease_outlives_heartbeat(settings)
        return settings

    @property
    def state_dir(self) -> Path:
        """The state folder as a path."""
        return Path(self.state.dir)


def _check_lease_outlives_heartbeat(settings: Settings) -> None:
    """Refuse a park lease no longer than a replica's heartbeat (`vpp.replicas.ParkShares`).

    The heartbeat renews the leases, so such a lease runs out between two
    renewals and its park is lost and taken again every beat.
    """
    lease, beat = settings.control.lease_ttl_s, settings.replicas.heartbeat_s
    if lease <= beat:
        raise SettingsError(
            f"control.lease_ttl_s={lease} must be above replicas.heartbeat_s={beat}: "
            "the heartbeat renews the park leases, a shorter lease runs out between renewals"
        )


def _section_names(settings: Settings) -> list[str]:
    return [f.name for f in dataclasses.fields(settings)]


def _section(settings: Settings, name: str) -> Any:
    if name not in _section_names(settings):
        raise SettingsError(f"unknown settings section [{name}]")
    return getattr(settings, name)


def _say(section_name: str, key: str, *, from_env: bool) -> str:
    """A key the way its source spells it: ``[control] period`` or ``VPP_CONTROL_PERIOD``."""
    if from_env:
        return f"{ENV_PREFIX}{section_name}_{key}".upper()
    return f"[{section_name}] {key}"


def _refuse_removed(
    section_name: str, values: Mapping[str, Any], *, from_env: bool, source: str
) -> None:
    """Refuse a key that is no longer a setting (`REMOVED`), naming what replaced it.

    Raises:
        SettingsError: naming the key, its source and the replacement.
    """
    for key in values:
        instead = REMOVED.get((section_name, key))
        if instead is not None:
            where = _say(section_name, key, from_env=from_env)
            raise SettingsError(f"{where} in {source} is no longer a setting: {instead}")


def _current_names(
    section_name: str, values: Mapping[str, Any], *, from_env: bool, source: str
) -> dict[str, Any]:
    """``values`` of one section with every old key (`RENAMED`) under its new name.

    Each old key found is announced with a `FutureWarning` that names it the way
    its source spells it (``[control] period`` or ``VPP_CONTROL_PERIOD``) and the
    source (the file's path, or the environment).

    Raises:
        SettingsError: a field is given under both its old and its new name.
    """

    def say(key: str) -> str:
        return _say(section_name, key, from_env=from_env)

    current = dict(values)
    for old in values:
        new = RENAMED.get((section_name, old))
        if new is None:
            continue
        if new in values:
            raise SettingsError(
                f"{say(old)} and {say(new)} are the same setting: keep {say(new)} only"
            )
        warnings.warn(
            f"{say(old)} in {source} is deprecated: name it {say(new)}",
            FutureWarning,
            stacklevel=3,
        )
        current[new] = current.pop(old)
    return current


def redact_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (for logs and ``repr``).

    Both places a Redis URL may carry one are masked: the user info
    (``redis://user:pw@host``) and a ``password=`` query field.
    """
    parts = urlsplit(url)
    if parts.password is not None:
        userinfo, _, host = parts.netloc.rpartition("@")
        url = url.replace(parts.netloc, f"{userinfo.partition(':')[0]}:***@{host}", 1)
    return re.sub(r"([?&])password=[^&#]*", r"\1password=***", url)


#: Name endings of durations: a setting so named must be above 0.
_DURATION_SUFFIXES = ("_s", "_h", "_minutes", "_days")


def _check_range(where: str, name: str, value: float) -> None:
    """Refuse a number no setting can mean: not finite, negative, a duration of 0, a bad port.

    Raises:
        SettingsError: naming the setting and the value.
    """
    if not math.isfinite(value) or value < 0:
        raise SettingsError(f"invalid {where}={value!r}: expected a finite number >= 0")
    if name.endswith(_DURATION_SUFFIXES) and value <= 0:
        raise SettingsError(f"invalid {where}={value!r}: a duration must be above 0")
    if name == "port" and value > 65535:
        raise SettingsError(f"invalid {where}={value!r}: a port is 0..65535")


def _assign(section: Any, section_name: str, name: str, value: Any) -> None:
    """Set ``section.name``, coercing environment strings to the field's type.

    Raises:
        SettingsError: the value is not of the field's type (an integer field
            refuses a fractional number rather than truncate it) or out of range
            (`_check_range`).
    """
    hints = get_type_hints(type(section))
    if name not in hints:
        raise SettingsError(f"unknown setting {section_name}.{name}")
    kind = hints[name]
    where = f"{section_name}.{name}"
    try:
        if kind is bool:
            value = _boolean(value)
        elif kind is int and not isinstance(value, bool):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("expected an integer")
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
    if kind in (int, float):
        _check_range(where, name, value)
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
