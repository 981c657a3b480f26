"""Device simulators that speak the real protocols: the devices behind ``vpp simulate``.

Batteries serve SunSpec registers over Modbus TCP (:class:`ModbusBatteryServer`),
EV chargers connect to a CSMS over OCPP 2.0.1 / 2.1 (:class:`SimCharger`),
flexible loads talk MQTT through a site gateway (:class:`MqttLoadFleet`), and
meters read an enterprise's devices plus its base load and serve SunSpec 203
on a Modbus gateway or publish on an MQTT one (:class:`MeterModel`); each
is an async context manager whose physics run in simulated time
(``time_scale`` simulated seconds per wall-clock second). :func:`run_park`
runs a whole :class:`SimParkSpec` until cancelled, made from a park file that
``vpp.parkfile`` read and validated (:func:`park_spec`) or generated at any
size (:func:`generate_park`, for load tests); ``vpp simulate`` runs a park
file's devices from the command line; :func:`shard_park` splits a park over
several processes.
"""

from adapters.sim.battery import BatteryModel, BatterySpec, Fault, ModbusBatteryServer
from adapters.sim.chargers import ChargerSpec, SimCharger
from adapters.sim.loads import LoadModel, LoadSpec, MqttLoadFleet
from adapters.sim.meters import MeterModel, MeterSpec
from adapters.sim.park import (
    DEFAULT_PASSWORD,
    MAX_UNITS_PER_ENDPOINT,
    SimBattery,
    SimMeter,
    SimParkSpec,
    generate_park,
    park_spec,
    run_park,
    shard_park,
)

__all__ = [
    "DEFAULT_PASSWORD",
    "MAX_UNITS_PER_ENDPOINT",
    "BatteryModel",
    "BatterySpec",
    "ChargerSpec",
    "Fault",
    "LoadModel",
    "LoadSpec",
    "MeterModel",
    "MeterSpec",
    "ModbusBatteryServer",
    "MqttLoadFleet",
    "SimBattery",
    "SimCharger",
    "SimMeter",
    "SimParkSpec",
    "generate_park",
    "park_spec",
    "run_park",
    "shard_park",
]
