"""The service's own Prometheus metrics and the registry every other one joins.

Each app gets its own ``Metrics`` with a dedicated ``CollectorRegistry``, so
several apps (tests) can live in one process. Names are prefixed ``vpp_``.
Sections here: HTTP (``vpp_http_*``), registry (``vpp_assets_enrolled``),
Redis (``vpp_redis_*``), dispatch and control loop (``vpp_solver_seconds``,
``vpp_control_*``, ``vpp_event_*``, ``vpp_events``, ``vpp_delivered_kw``,
``vpp_flexibility_*``), interval history (``vpp_history_*``), the park's
zero-carbon indicators from the energy-carbon ledger (``vpp_ledger_*``), the parks this
replica holds among several (``vpp_park_held``, ``vpp_replicas_live``,
``vpp_park_lease_changes_total``, set by `vpp.replicas`). Two collectors
register on the same registry from where their data lives: the adapters' and
setpoints' series (``vpp_adapter_*``, ``vpp_telemetry_*``, ``vpp_setpoint*``) in
:mod:`vpp.supervisor._metrics`, the VEN's (``vpp_openadr_*``) in
:mod:`vpp.openadr.metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["EXPOSITION_CONTENT_TYPE", "HTTP_BUCKETS", "SOLVER_BUCKETS", "Metrics"]

#: The Content-Type of the Prometheus text exposition format (``/metrics``).
EXPOSITION_CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Latency buckets (seconds) for API requests: a registry read is ~1 ms.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

#: Buckets (seconds) for solver calls and control cycles: 1 ms to a minute.
SOLVER_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The service's metrics, registered in their own registry.

    Args:
        registry: the registry to register into; a new one when omitted.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry

        # -- HTTP
        self.http_requests = Counter(
            "vpp_http_requests",
            "HTTP requests served, by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "vpp_http_request_duration_seconds",
            "HTTP request latency, by route template, method and status.",
            ["route", "method", "status"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )

        # -- registry
        self.assets_enrolled = Gauge(
            "vpp_assets_enrolled",
            "Enrolled assets by park and kind (refreshed from Redis at each scrape).",
            ["park", "kind"],
            registry=r,
        )

        # -- Redis
        self.redis_errors = Counter(
            "vpp_redis_errors",
            "Redis operations that failed, by operation.",
            ["operation"],
            registry=r,
        )
        self.redis_up = Gauge(
            "vpp_redis_up", "1 when Redis answered the last readiness check.", registry=r
        )

        # -- dispatch and control loop
        self.solver_seconds = Histogram(
            "vpp_solver_seconds",
            "Time of a dispatch-engine call, by operation (bid, disaggregate, portfolio).",
            ["operation"],
            buckets=SOLVER_BUCKETS,
            registry=r,
        )
        self.control_cycle_seconds = Histogram(
            "vpp_control_cycle_seconds",
            "Duration of one control-loop cycle (read state, solve, send setpoints).",
            ["park"],
            buckets=SOLVER_BUCKETS,
            registry=r,
        )
        self.event_dispatch_seconds = Histogram(
            "vpp_event_dispatch_seconds",
            "From an event's receipt (or its start, if later) to the answer of every "
            "setpoint of its first send (confirmed or not), real seconds.",
            ["park"],
            buckets=SOLVER_BUCKETS,
            registry=r,
        )
        self.control_leader = Gauge(
            "vpp_control_loop_leader",
            "1 while this process holds the park's control-loop lease.",
            ["park"],
            registry=r,
        )
        self.event_active = Gauge(
            "vpp_event_active",
            "1 while the event is being delivered.",
            ["park", "event"],
            registry=r,
        )
        self.event_target_kw = Gauge(
            "vpp_event_target_kw",
            "Target deviation of the current interval, kW (negative = reduce load).",
            ["park", "event"],
            registry=r,
        )
        self.event_delivered_kw = Gauge(
            "vpp_event_delivered_kw",
            "Measured deviation from the baseline in the current interval so far, kW.",
            ["park", "event"],
            registry=r,
        )
        self.event_performance = Gauge(
            "vpp_event_performance_ratio",
            "Delivered over target for the event so far (1 = on target).",
            ["park", "event"],
            registry=r,
        )
        self.delivered_by_kind = Gauge(
            "vpp_delivered_kw",
            "Deviation from baseline of the controlled assets by kind, kW.",
            ["park", "kind"],
            registry=r,
        )
        self.flex_up = Gauge(
            "vpp_flexibility_up_kw",
            "Extra consumption the park could take on now, kW.",
            ["park"],
            registry=r,
        )
        self.flex_down = Gauge(
            "vpp_flexibility_down_kw",
            "Consumption the park could shed now, kW.",
            ["park"],
            registry=r,
        )
        self.not_following = Counter(
            "vpp_control_not_following",
            "Assets recognised as not following their setpoints (once per event), by kind.",
            ["park", "kind"],
            registry=r,
        )
        self.events_total = Counter(
            "vpp_events",
            "Event state changes made by the control loop, by state.",
            ["park", "state"],
            registry=r,
        )

        # -- interval history (vpp.history.recorder)
        self.history_flush_seconds = Histogram(
            "vpp_history_flush_seconds",
            "Duration of one write of recorded telemetry into the interval history.",
            buckets=SOLVER_BUCKETS,
            registry=r,
        )
        self.history_late_readings = Counter(
            "vpp_history_late_readings",
            "Readings older than their series' latest one, added into their (closed) interval.",
            ["park"],
            registry=r,
        )
        self.history_dropped_readings = Counter(
            "vpp_history_dropped_readings",
            "Readings the interval history could not use, by reason "
            "(too_late: older than the recent readings kept; overflow: too many waiting).",
            ["park", "reason"],
            registry=r,
        )

        # -- the energy-carbon ledger's zero-carbon indicators (vpp.ledger.gauges)
        ledger_labels = ["park", "window"]
        self.ledger_carbon_intensity = Gauge(
            "vpp_ledger_carbon_intensity_tco2_per_tce",
            "The park's carbon emissions per unit of energy consumed, tCO2/tce, over the last "
            "complete month or the rolling year to it (window).",
            ledger_labels,
            registry=r,
        )
        self.ledger_carbon_intensity_threshold = Gauge(
            "vpp_ledger_carbon_intensity_threshold_tco2_per_tce",
            "The zero-carbon park threshold of carbon per unit energy for the park's size class, "
            "tCO2/tce (national zero-carbon park notice, 2025).",
            ledger_labels,
            registry=r,
        )
        self.ledger_clean_energy_share = Gauge(
            "vpp_ledger_clean_energy_share",
            "The park's clean-energy share of its energy consumption (tce basis), 0..1.",
            ledger_labels,
            registry=r,
        )
        self.ledger_clean_energy_threshold = Gauge(
            "vpp_ledger_clean_energy_share_threshold",
            "The zero-carbon park threshold of the clean-energy share (0.9).",
            ledger_labels,
            registry=r,
        )
        self.ledger_annual_energy_tce = Gauge(
            "vpp_ledger_annual_energy_tce",
            "The park's energy consumption scaled to a year, tce (its size class is read from it).",
            ledger_labels,
            registry=r,
        )
        self.ledger_refresh_errors = Counter(
            "vpp_ledger_refresh_errors",
            "Refreshes of a park's zero-carbon indicators that failed (the gauges keep their "
            "last values).",
            ["park"],
            registry=r,
        )

        # -- replicas (vpp.replicas)
        self.park_held = Gauge(
            "vpp_park_held",
            "1 while this replica holds the park's lease (runs its devices and control loop); "
            "only the holder exposes the series.",
            ["park", "replica"],
            registry=r,
        )
        self.replicas_live = Gauge(
            "vpp_replicas_live",
            "Service replicas whose heartbeat has not expired, as this replica last counted them.",
            registry=r,
        )
        self.park_lease_changes = Counter(
            "vpp_park_lease_changes",
            "Park leases this replica took (taken), gave back to rebalance or stop (given) or "
            "lost to another replica (lost).",
            ["replica", "change"],
            registry=r,
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one HTTP request and its latency."""
        labels = (route, method, str(status))
        self.http_requests.labels(*labels).inc()
        self.http_duration.labels(*labels).observe(seconds)

    def redis_failed(self, operation: str) -> None:
        """Count one failed Redis operation (``State``'s ``on_error`` hook)."""
        self.redis_errors.labels(operation).inc()

    def set_assets(self, counts: Mapping[str, Mapping[str, int]]) -> None:
        """Replace the enrolled-asset gauge with ``{park: {kind: count}}``."""
        self.assets_enrolled.clear()
        for park, kinds in counts.items():
            for kind, count in kinds.items():
                self.assets_enrolled.labels(park, kind).set(count)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
