"""Device supervision: the adapters of the enrolled assets, their live state, setpoints.

:class:`Supervisor` starts one adapter per protocol group (an MQTT adapter per
park, a Modbus adapter per host and port, one OCPP listener for every park),
writes their telemetry to the live state in Redis, restarts a failed adapter,
follows enrollments and retirements, and exposes per-adapter metrics. The
control loop depends on :class:`SetpointSink` only.
"""

from vpp.supervisor._core import SUPERVISOR, SetpointSink, Supervisor
from vpp.supervisor._metrics import RTT_BUCKETS, Result
from vpp.supervisor._routing import (
    SHARED_ADAPTER_PARK,
    AdapterKey,
    AdapterRoute,
    charger_password,
    device_limits,
    plan_park,
)

__all__ = [
    "RTT_BUCKETS",
    "SHARED_ADAPTER_PARK",
    "SUPERVISOR",
    "AdapterKey",
    "AdapterRoute",
    "Result",
    "SetpointSink",
    "Supervisor",
    "charger_password",
    "device_limits",
    "plan_park",
]
