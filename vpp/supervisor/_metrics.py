"""Adapter and setpoint metrics (the names the ops alerts and dashboard use).

The adapters keep plain counters (:class:`adapters.types.AdapterStats`); a
custom collector reads them at scrape time, so nothing on the telemetry path
touches Prometheus. Per adapter, labels ``park, protocol, adapter``::

    vpp_adapter_connected                    gauge    1 while the transport is up
    vpp_adapter_last_telemetry_age_seconds   gauge    since the last reading (or the start)
    vpp_adapter_messages_total               counter  readings accepted
    vpp_adapter_meter_readings_total         counter  of those, meters' readings taken into
                                                      the live state (a meter measures the
                                                      devices: counted on its own)
    vpp_adapter_bad_payloads_total           counter  payloads rejected whole
    vpp_telemetry_fields_rejected_total      counter  fields dropped from kept readings
                                                      (extra labels ``field, reason``)
    vpp_telemetry_stale_total                counter  readings not taken as live (extra
                                                      label ``reason``: old, replayed,
                                                      retained, unsynced)
    vpp_telemetry_clock_skew_seconds         gauge    device clock offset of largest
                                                      magnitude (device minus receive time)
    vpp_adapter_reconnects_total             counter  reconnections, restarts included
    vpp_adapter_restarts_total               counter  restarts by the supervisor after a failure

Counters survive an adapter being rebuilt or restarted (the supervisor
carries the old instance's numbers over). ``send`` itself records::

    vpp_setpoint_rtt_seconds{protocol}       histogram  send-to-acknowledgement time
    vpp_setpoints_total{park,protocol,result}  counter  confirmed | clamped | unconfirmed

``clamped`` is a confirmed setpoint the clamp changed; ``unconfirmed`` wins
over both. A setpoint for a meter is refused before any adapter and is not
counted here (no device was asked; the supervisor logs it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from adapters.types import Confirmation
from vpp.supervisor._routing import AdapterKey

__all__ = ["RTT_BUCKETS", "AdapterSample", "Result", "SupervisorMetrics", "result_of"]

#: Setpoint round-trip buckets (seconds): a loopback Modbus write is ~1 ms, a
#: charger over a cellular link a few seconds.
RTT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_LABELS = ["park", "protocol", "adapter"]


class Result(StrEnum):
    """The ``result`` label of ``vpp_setpoints_total``."""

    #: acknowledged as requested
    CONFIRMED = "confirmed"
    #: acknowledged after the clamp changed it
    CLAMPED = "clamped"
    #: not sent, refused, or no acknowledgement
    UNCONFIRMED = "unconfirmed"


def result_of(conf: Confirmation) -> Result:
    """Classify one confirmation for ``vpp_setpoints_total``."""
    if not conf.confirmed:
        return Result.UNCONFIRMED
    return Result.CLAMPED if conf.clamped else Result.CONFIRMED


@dataclass(frozen=True, slots=True)
class AdapterSample:
    """One adapter's numbers at scrape time."""

    key: AdapterKey
    connected: bool
    age_s: float
    messages: int
    meter_readings: int
    bad_payloads: int
    rejected_fields: Mapping[tuple[str, str], int]
    stale: Mapping[str, int]
    clock_skew_s: float
    reconnects: int
    restarts: int


class AdapterCollector(Collector):
    """Reads every adapter's stats when Prometheus scrapes.

    Args:
        samples: returns the current samples (called once per scrape).
    """

    def __init__(self, samples: Callable[[], Iterable[AdapterSample]]) -> None:
        self._samples = samples

    def describe(self) -> Iterable[Metric]:
        """The families, without samples (lets the registry detect name clashes)."""
        return self._families()

    def collect(self) -> Iterable[Metric]:
        """The families with one sample per adapter."""
        families = self._families()
        connected, age, messages, meters, bad, reconnects, restarts, fields, stale, skew = families
        for s in self._samples():
            labels = [s.key.park, s.key.protocol.value, s.key.label]
            connected.add_metric(labels, 1.0 if s.connected else 0.0)
            age.add_metric(labels, s.age_s)
            messages.add_metric(labels, s.messages)
            meters.add_metric(labels, s.meter_readings)
            bad.add_metric(labels, s.bad_payloads)
            reconnects.add_metric(labels, s.reconnects)
            restarts.add_metric(labels, s.restarts)
            for (name, reason), count in s.rejected_fields.items():
                fields.add_metric([*labels, name, reason], count)
            for reason, count in s.stale.items():
                stale.add_metric([*labels, reason], count)
            skew.add_metric(labels, s.clock_skew_s)
        return families

    @staticmethod
    def _families() -> list[GaugeMetricFamily | CounterMetricFamily]:
        return [
            GaugeMetricFamily(
                "vpp_adapter_connected", "1 while the adapter's transport is up.", labels=_LABELS
            ),
            GaugeMetricFamily(
                "vpp_adapter_last_telemetry_age_seconds",
                "Seconds since the adapter's last reading (since its start if none came).",
                labels=_LABELS,
            ),
            CounterMetricFamily(
                "vpp_adapter_messages", "Telemetry readings accepted.", labels=_LABELS
            ),
            CounterMetricFamily(
                "vpp_adapter_meter_readings",
                "Meter readings taken into the live state (counted apart from the devices').",
                labels=_LABELS,
            ),
            CounterMetricFamily(
                "vpp_adapter_bad_payloads",
                "Incoming payloads rejected (malformed, out of range, schema).",
                labels=_LABELS,
            ),
            CounterMetricFamily(
                "vpp_adapter_reconnects",
                "Transport reconnections after the first connection, restarts included.",
                labels=_LABELS,
            ),
            CounterMetricFamily(
                "vpp_adapter_restarts",
                "Times the supervisor restarted the adapter after it failed.",
                labels=_LABELS,
            ),
            CounterMetricFamily(
                "vpp_telemetry_fields_rejected",
                "Telemetry fields dropped (the rest of the reading kept), by field and reason.",
                labels=[*_LABELS, "field", "reason"],
            ),
            CounterMetricFamily(
                "vpp_telemetry_stale",
                "Readings not taken as live, judged against receive time, by reason "
                "(old, replayed, retained, unsynced).",
                labels=[*_LABELS, "reason"],
            ),
            GaugeMetricFamily(
                "vpp_telemetry_clock_skew_seconds",
                "Device clock offset of largest magnitude among the adapter's devices "
                "(device minus receive time; 0 = in step or unknown).",
                labels=_LABELS,
            ),
        ]


class SupervisorMetrics:
    """The supervisor's metrics on an app's registry; :meth:`close` removes them.

    Args:
        registry: the app's registry (``Metrics.registry``).
        samples: the adapter samples, read at scrape time.
    """

    def __init__(
        self, registry: CollectorRegistry, samples: Callable[[], Iterable[AdapterSample]]
    ) -> None:
        self.registry = registry
        self.rtt = Histogram(
            "vpp_setpoint_rtt_seconds",
            "Setpoint send-to-acknowledgement time, by protocol.",
            ["protocol"],
            buckets=RTT_BUCKETS,
            registry=registry,
        )
        self.setpoints = Counter(
            "vpp_setpoints",
            "Setpoints sent through the supervisor, by park, protocol and result.",
            ["park", "protocol", "result"],
            registry=registry,
        )
        self.collector = AdapterCollector(samples)
        registry.register(self.collector)

    def observe(self, park: str, protocol: str, conf: Confirmation) -> None:
        """Count one setpoint's outcome and its round trip."""
        self.setpoints.labels(park, protocol, result_of(conf).value).inc()
        if conf.rtt_s is not None:
            self.rtt.labels(protocol).observe(conf.rtt_s)

    def close(self) -> None:
        """Unregister everything (a new supervisor may then use the registry)."""
        for collector in (self.collector, self.rtt, self.setpoints):
            self.registry.unregister(collector)
