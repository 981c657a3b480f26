"""Dispatch events of a park: the model, its Redis store, expected delivery and the report.

An event is the grid operator's request that the park deviate from its
baseline over a window of equal intervals (`vpp.events.model`: payloads,
states and the per-interval record). `EventStore` keeps the records in Redis
and appends every state change to the park log (`vpp.events.store`);
`expected_delivery` estimates what the park can deliver against an event
from its live flexibility (`vpp.events.expected`); `build_report` settles an
event: delivered versus target, settlement estimate and avoided CO2 (with
the rebound window after the event, `vpp.events.rebound` and
`vpp.events.carbon`), broken down by enterprise (`vpp.events.report`,
`vpp.events.breakdown`). The HTTP routes are in `vpp.api.events`; the
control loop (`vpp.control`) runs the events.
"""

from vpp.events.expected import expected_delivery, read_park
from vpp.events.model import (
    INTERVAL_CHOICES,
    MAX_INTERVALS,
    MAX_LEAD,
    MAX_TARGET_KW,
    TERMINAL_STATES,
    EventKind,
    EventOverlap,
    EventPatch,
    EventRecord,
    EventRequest,
    EventState,
    ExpectedDelivery,
    IllegalTransition,
    check_window,
    first_overlap,
    parse_event_patch,
    parse_event_request,
)
from vpp.events.report import (
    EnterpriseInterval,
    EnterpriseReport,
    EventReport,
    IntervalReport,
    OperatorReport,
    ReboundInterval,
    Reconciliation,
    ReportRows,
    SettlementRules,
    SettlementStatus,
    build_report,
    report_csv,
)
from vpp.events.store import EventStore

__all__ = [
    "INTERVAL_CHOICES",
    "MAX_INTERVALS",
    "MAX_LEAD",
    "MAX_TARGET_KW",
    "TERMINAL_STATES",
    "EnterpriseInterval",
    "EnterpriseReport",
    "EventKind",
    "EventOverlap",
    "EventPatch",
    "EventRecord",
    "EventReport",
    "EventRequest",
    "EventState",
    "EventStore",
    "ExpectedDelivery",
    "IllegalTransition",
    "IntervalReport",
    "OperatorReport",
    "ReboundInterval",
    "Reconciliation",
    "ReportRows",
    "SettlementRules",
    "SettlementStatus",
    "build_report",
    "check_window",
    "expected_delivery",
    "first_overlap",
    "parse_event_patch",
    "parse_event_request",
    "read_park",
    "report_csv",
]
