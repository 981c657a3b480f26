"""From enrolled assets to adapters: which adapter serves which asset, with what limits.

Pure functions, no I/O. :func:`plan_park` turns one park's enrolled assets
into :class:`AdapterRoute` s, each naming its adapter by an :class:`AdapterKey`:

* ``mqtt``: one adapter per park and topic base. The adapters' topic scheme is
  ``{root}/{park}/{asset}/{leaf}``, so an enrolled ``topic_prefix`` of the form
  ``{root}/{level}/{asset id}`` (at least three levels, the last one the asset
  id) is honoured as root ``{root}`` and park level ``{level}``; any other
  prefix cannot be expressed in that scheme and the asset is served under
  ``{mqtt.root}/{park}/{asset id}`` instead (logged once per plan).
* ``modbus``: one adapter per ``host:port``, one unit per battery or meter
  (SunSpec 802 and 704 for a battery, 201-204 for a meter).
* ``ocpp``: one adapter for every park (one listener); the charge point id is
  the device id, unique across parks (a second claim is skipped).

Kinds a protocol cannot serve (a PV inverter on Modbus, a battery on OCPP)
are skipped with a reason; a meter without a connection (filled by import
only) has no route. A meter's route carries its multiplier (CT x VT), which
`vpp.supervisor._live.live_state` applies to its readings.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from adapters.sunspec import PowerSign
from adapters.types import DeviceLimits, TelemetrySource
from vpp.model import (
    Asset,
    AssetKind,
    Battery,
    EvCharger,
    FlexibleLoad,
    Meter,
    ModbusConnection,
    MqttConnection,
    Pv,
)

__all__ = [
    "SHARED_ADAPTER_PARK",
    "AdapterKey",
    "AdapterRoute",
    "charger_password",
    "device_limits",
    "mqtt_base",
    "plan_park",
]

#: The park of an adapter shared by every park (the one OCPP listener): its
#: `AdapterKey.park` and the ``park`` label of its metrics. Not a token scope
#: (that is ``vpp.auth.ALL_PARKS_SCOPE``).
SHARED_ADAPTER_PARK = "*"


def charger_password(secret: str, charge_point_id: str) -> str:
    """The basic-auth password of one charge point (OCPP security profile 1).

    ``hmac_sha256(secret, charge_point_id)`` as hex, first 32 characters. The
    service checks it and the simulator runner (or a commissioning tool) hands
    it to the charger; neither stores it.

    Args:
        secret: the service's ``ocpp.auth_secret``.
        charge_point_id: the charge point's id as enrolled.
    """
    digest = hmac.new(secret.encode(), charge_point_id.encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


@dataclass(frozen=True, slots=True, order=True)
class AdapterKey:
    """Names one adapter instance.

    Attributes:
        protocol: the protocol it speaks.
        park: the park it serves (`SHARED_ADAPTER_PARK` for the shared OCPP listener).
        endpoint: ``{root}/{park level}`` (mqtt), ``host:port`` (modbus, ocpp).
        label: the ``adapter`` label of its metrics.
    """

    protocol: TelemetrySource
    park: str
    endpoint: str
    label: str


@dataclass(frozen=True, slots=True)
class AdapterRoute:
    """One enrolled asset as its adapter knows it.

    Attributes:
        park: the park it is enrolled in.
        asset_id: its enrolled id.
        kind: its asset kind.
        key: the adapter serving it.
        device_id: its id inside that adapter (the charge point id for OCPP,
            the asset id otherwise).
        limits: its enrolled limits in device language.
        unit_id: Modbus unit id (Modbus only).
        v2g: whether discharge is enrolled (OCPP only).
        power_sign: the enrolled sign of its reported power (Modbus only).
        setpoint_sign: the enrolled sign of its power setpoint (Modbus only).
        multiplier: what its readings are multiplied by to become primary
            values (a meter's CT x VT ratio; 1 for every other kind).
    """

    park: str
    asset_id: str
    kind: str
    key: AdapterKey
    device_id: str
    limits: DeviceLimits
    unit_id: int = 0
    v2g: bool = False
    power_sign: PowerSign = PowerSign.CHARGE_POSITIVE
    setpoint_sign: PowerSign = PowerSign.DISCHARGE_POSITIVE
    multiplier: float = 1.0

    @property
    def meter(self) -> bool:
        """Whether it is a meter (it measures; it takes no setpoint)."""
        return self.kind == AssetKind.METER.value


def device_limits(asset: Asset) -> DeviceLimits:
    """The enrolled limits of an asset as the adapters' clamp reads them.

    * battery: ``-max_discharge .. +max_charge`` with its capacity and SoC window;
    * EV charger: ``-max_discharge`` (V2G only) or 0 .. ``max_charge``, with its
      charge efficiency (the departure need is energy in the vehicle);
    * flexible load: ``baseline - max_shed .. baseline + rebound_fraction * max_shed``;
    * PV: ``-rated .. 0``;
    * meter: ``0 .. 0`` (it takes no setpoint; the supervisor refuses one before any clamp).
    """
    if isinstance(asset, Battery):
        return DeviceLimits(
            p_min_kw=-asset.max_discharge_kw,
            p_max_kw=asset.max_charge_kw,
            capacity_kwh=asset.capacity_kwh,
            soc_min=asset.soc_min,
            soc_max=asset.soc_max,
        )
    if isinstance(asset, EvCharger):
        return DeviceLimits(
            p_min_kw=-asset.max_discharge_kw if asset.v2g else 0.0,
            p_max_kw=asset.max_charge_kw,
            bidirectional=asset.v2g,
            charge_efficiency=asset.charge_efficiency,
        )
    if isinstance(asset, FlexibleLoad):
        rebound = asset.rebound_fraction * asset.max_shed_kw
        return DeviceLimits(
            p_min_kw=asset.baseline_kw - asset.max_shed_kw,
            p_max_kw=asset.baseline_kw + rebound,
            bidirectional=False,
        )
    if isinstance(asset, Pv):
        return DeviceLimits(p_min_kw=-asset.rated_kw, p_max_kw=0.0)
    return DeviceLimits(p_min_kw=0.0, p_max_kw=0.0)  # a meter takes no setpoint


def mqtt_base(conn: MqttConnection, park: str, asset_id: str, default_root: str) -> tuple[str, str]:
    """The ``(root, park level)`` an MQTT asset is served under.

    Args:
        conn: its enrolled connection.
        park: the park it is enrolled in.
        asset_id: its id.
        default_root: the root used when ``topic_prefix`` does not fit the scheme.

    Returns:
        ``(root, level)`` such that its topics are ``{root}/{level}/{asset_id}/...``.
    """
    parts = conn.topic_prefix.strip("/").split("/")
    if len(parts) >= 3 and parts[-1] == asset_id and all(parts):
        return "/".join(parts[:-2]), parts[-2]
    return default_root, park


def _mqtt_key(park: str, root: str, level: str, default_root: str) -> AdapterKey:
    endpoint = f"{root}/{level}"
    default = root == default_root and level == park
    label = f"mqtt-{park}" if default else f"mqtt-{park}-{endpoint}"
    return AdapterKey(TelemetrySource.MQTT, park, endpoint, label)


def ocpp_key(host: str, port: int) -> AdapterKey:
    """The key of the one shared OCPP listener."""
    return AdapterKey(
        TelemetrySource.OCPP, SHARED_ADAPTER_PARK, f"{host}:{port}", f"ocpp-{host}:{port}"
    )


def plan_park(
    park: str,
    assets: Iterable[Asset],
    *,
    mqtt_root: str,
    ocpp: AdapterKey,
) -> tuple[list[AdapterRoute], list[str]]:
    """Route every enrolled asset of one park to its adapter.

    Args:
        park: the park id.
        assets: its enrolled assets.
        mqtt_root: the fallback MQTT root (``mqtt.root``).
        ocpp: the key of the shared OCPP listener.

    Returns:
        The routes, and one line per asset that no adapter can serve (or whose
        MQTT prefix had to be mapped), for the log.
    """
    routes: list[AdapterRoute] = []
    notes: list[str] = []
    units: set[tuple[str, int]] = set()
    for asset in assets:
        conn = asset.connection
        if conn is None:
            continue  # a meter filled only by import: nothing to connect to
        limits = device_limits(asset)
        multiplier = asset.multiplier if isinstance(asset, Meter) else 1.0
        if isinstance(conn, MqttConnection):
            root, level = mqtt_base(conn, park, asset.id, mqtt_root)
            if (root, level) == (
                mqtt_root,
                park,
            ) and conn.topic_prefix != f"{root}/{park}/{asset.id}":
                notes.append(
                    f"{park}/{asset.id}: topic_prefix {conn.topic_prefix!r} does not end in the"
                    f" asset id; served under {root}/{park}/{asset.id}/"
                )
            key = _mqtt_key(park, root, level, mqtt_root)
            routes.append(
                AdapterRoute(
                    park, asset.id, asset.kind, key, asset.id, limits, multiplier=multiplier
                )
            )
        elif isinstance(conn, ModbusConnection):
            if not isinstance(asset, Battery | Meter):
                notes.append(
                    f"{park}/{asset.id}: no Modbus adapter for {asset.kind}"
                    " (batteries and meters only)"
                )
                continue
            endpoint = f"{conn.host}:{conn.port}"
            if (endpoint, conn.unit_id) in units:
                notes.append(f"{park}/{asset.id}: unit {conn.unit_id} at {endpoint} is taken")
                continue
            units.add((endpoint, conn.unit_id))
            key = AdapterKey(TelemetrySource.MODBUS, park, endpoint, f"modbus-{endpoint}")
            routes.append(
                AdapterRoute(
                    park,
                    asset.id,
                    asset.kind,
                    key,
                    asset.id,
                    limits,
                    conn.unit_id,
                    power_sign=PowerSign(conn.power_sign),
                    setpoint_sign=PowerSign(conn.setpoint_sign),
                    multiplier=multiplier,
                )
            )
        elif isinstance(asset, EvCharger):
            routes.append(
                AdapterRoute(
                    park, asset.id, asset.kind, ocpp, conn.charge_point_id, limits, v2g=asset.v2g
                )
            )
        else:
            notes.append(f"{park}/{asset.id}: no OCPP adapter for {asset.kind} (chargers only)")
    return routes, notes
