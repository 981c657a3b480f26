"""Southbound device adapters: MQTT, Modbus TCP / SunSpec (batteries, meters), OCPP chargers.

A self-contained library that speaks device language and knows nothing of
the service above it (it never imports ``vpp`` or ``dispatch``). Every
adapter has the :class:`Adapter` shape: an async context manager with
keyword-only settings whose ``telemetry()`` yields :class:`Telemetry`
readings and whose ``apply`` sends a :class:`Setpoint` (kW, positive = drawn
from the grid) through :func:`clamp_setpoint` and answers a
:class:`Confirmation`. Failures are :class:`AdapterError` subclasses
(:mod:`adapters.errors` draws the tree).

Re-exported here: the three adapters, the shared types, the errors and the
clamp. Wire formats and helpers stay in their modules
(:mod:`adapters.mqtt_codec`, :mod:`adapters.sunspec`, :mod:`adapters.ocpp`,
:mod:`adapters.freshness`, :mod:`adapters.backoff`); the device simulators
behind ``vpp simulate`` are :mod:`adapters.sim`.
"""

from adapters.clamp import ClampResult, clamp_setpoint, power_window
from adapters.errors import AdapterError, DeviceError, PayloadError, SunSpecError, UnknownAsset
from adapters.modbus import ModbusAdapter, ModbusUnit, UnitKind
from adapters.mqtt import MqttAdapter
from adapters.ocpp import ChargerSettings, OcppCsmsAdapter
from adapters.types import (
    Adapter,
    AdapterStats,
    Confirmation,
    DeviceLimits,
    Setpoint,
    Telemetry,
    TelemetrySource,
)

__all__ = [
    "Adapter",
    "AdapterError",
    "AdapterStats",
    "ChargerSettings",
    "ClampResult",
    "Confirmation",
    "DeviceError",
    "DeviceLimits",
    "ModbusAdapter",
    "ModbusUnit",
    "MqttAdapter",
    "OcppCsmsAdapter",
    "PayloadError",
    "Setpoint",
    "SunSpecError",
    "Telemetry",
    "TelemetrySource",
    "UnitKind",
    "UnknownAsset",
    "clamp_setpoint",
    "power_window",
]
