"""Names fixed by OpenADR 3.1.1 and by this VEN, kept in one place."""

from __future__ import annotations

#: Environment variable naming the ``openadr3.yaml`` to validate against.
SPEC_ENV = "VPP_OPENADR_SPEC"
#: Package holding the OpenADR 3.1.1 spec shipped with the service (Apache-2.0,
#: with its LICENSE and NOTICE): ``openadr3.yaml`` and the two enumeration schemas.
SPEC_PACKAGE = "vpp.openadr.spec"
#: File name of the OpenAPI document inside :data:`SPEC_PACKAGE`.
SPEC_FILE = "openadr3.yaml"

# Event interval payload types this VEN turns into dispatch instructions.
SIMPLE = "SIMPLE"
IMPORT_CAPACITY_LIMIT = "IMPORT_CAPACITY_LIMIT"
DISPATCH_SETPOINT = "DISPATCH_SETPOINT"
DISPATCH_SETPOINT_RELATIVE = "DISPATCH_SETPOINT_RELATIVE"
DISPATCH_PAYLOADS = frozenset(
    {SIMPLE, IMPORT_CAPACITY_LIMIT, DISPATCH_SETPOINT, DISPATCH_SETPOINT_RELATIVE}
)

# Report payload types this VEN sends.
USAGE = "USAGE"
BASELINE = "BASELINE"
DELTA_USAGE = "DELTA_USAGE"
STORAGE_CHARGE_LEVEL = "STORAGE_CHARGE_LEVEL"
REPORT_PAYLOADS = (USAGE, BASELINE, DELTA_USAGE, STORAGE_CHARGE_LEVEL)

#: resourceName for data summed over several resources (Definition.md, Table 5).
AGGREGATED_REPORT = "AGGREGATED_REPORT"

#: ``intervalPeriod.start`` meaning "now" (User Guide 7.3); the schema wants a full date-time.
START_NOW_PREFIX = "0001-01-01"
#: ``duration`` meaning "infinity" (User Guide 7.3).
DURATION_FOREVER = "P9999Y"

#: Page size for list endpoints; the spec caps ``limit`` at 50.
PAGE_LIMIT = 50

#: Descriptor discriminators.
EVENT_PAYLOAD_DESCRIPTOR = "EVENT_PAYLOAD_DESCRIPTOR"
REPORT_PAYLOAD_DESCRIPTOR = "REPORT_PAYLOAD_DESCRIPTOR"
VEN_VEN_REQUEST = "VEN_VEN_REQUEST"
