"""OpenADR 3.1 VEN: the park as a client of its grid operator's VTN.

:class:`Ven` polls the VTN's events (woken early by MQTT notifications),
hands each as a :class:`GridDispatch` to a :class:`DispatchSink`, and reports
USAGE, BASELINE, DELTA_USAGE and STORAGE_CHARGE_LEVEL from a
:class:`ReportSource`. Those modules speak only the VEN's own types. The
service's side of both seams is ``vpp.openadr.bridge`` (``OpenAdrBridge``:
dispatches become park events, events become readings), the one module here
that knows the service's events and live state; it is imported from there,
not re-exported, so the VEN loads without the service.
The VTN the tests run against (``tests/vpp/openadr/vtn_sim.py``) is test code, not
part of the product.
"""

from vpp.openadr.errors import (
    DispatchRejected,
    MappingError,
    OpenAdrError,
    SchemaViolation,
    VtnAuthError,
    VtnError,
    VtnUnavailable,
)
from vpp.openadr.model import (
    DispatchInterval,
    DispatchSink,
    GridDispatch,
    ImportLimitKw,
    Instruction,
    IntervalReading,
    RelativeKw,
    ReportRequest,
    ReportSource,
    SetpointKw,
    SimpleLevel,
)
from vpp.openadr.schema import OpenAdrSchema, locate_spec
from vpp.openadr.settings import OpenAdrSettings, VenSettings
from vpp.openadr.ven import TaskHealth, Ven, VenStatus

__all__ = [
    "DispatchInterval",
    "DispatchRejected",
    "DispatchSink",
    "GridDispatch",
    "ImportLimitKw",
    "Instruction",
    "IntervalReading",
    "MappingError",
    "OpenAdrError",
    "OpenAdrSchema",
    "OpenAdrSettings",
    "RelativeKw",
    "ReportRequest",
    "ReportSource",
    "SchemaViolation",
    "SetpointKw",
    "SimpleLevel",
    "TaskHealth",
    "Ven",
    "VenSettings",
    "VenStatus",
    "VtnAuthError",
    "VtnError",
    "VtnUnavailable",
    "locate_spec",
]
