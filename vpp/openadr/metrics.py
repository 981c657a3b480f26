"""Prometheus view of a running VEN: polls, rejections, task restarts.

:class:`VenCollector` reads :class:`~vpp.openadr.ven.VenStatus` at scrape
time, so the VEN keeps plain counters and needs no registry of its own.
Every series carries the ``park`` the VEN speaks for.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vpp.openadr.ven import Ven

__all__ = ["VenCollector"]


class VenCollector(Collector):
    """Exports one VEN's status as ``vpp_openadr_*`` series.

    Args:
        ven: the running VEN.
        park: the park it speaks for (the ``park`` label).
    """

    def __init__(self, ven: Ven, park: str) -> None:
        self._ven = ven
        self._park = park

    def collect(self) -> Iterator[Metric]:
        """The series, computed from the VEN's status now."""
        s, park = self._ven.status, self._park
        for name, doc, value in (
            ("vpp_openadr_polls", "Successful VTN poll cycles.", s.polls),
            ("vpp_openadr_poll_failures", "Failed VTN poll cycles.", s.poll_failures),
            ("vpp_openadr_dispatches", "Event versions handed to the service.", s.dispatches),
            (
                "vpp_openadr_dispatch_failures",
                "Hand-overs to the service that raised (retried at the next poll).",
                s.dispatch_failures,
            ),
            ("vpp_openadr_reports_sent", "Reports the VTN accepted.", s.reports_sent),
            (
                "vpp_openadr_report_failures",
                "Reports that could not be made or were refused.",
                s.report_failures,
            ),
        ):
            counter = CounterMetricFamily(name, doc, labels=["park"])
            counter.add_metric([park], value)
            yield counter
        rejected = CounterMetricFamily(
            "vpp_openadr_events_rejected",
            "Event versions rejected alone, by reason (schema, mapping, refused).",
            labels=["park", "reason"],
        )
        for reason, count in sorted(s.rejected.items()):
            rejected.add_metric([park, reason], count)
        yield rejected
        restarts = CounterMetricFamily(
            "vpp_openadr_task_restarts",
            "VEN tasks that died of an unexpected error and were restarted, by task.",
            labels=["park", "task"],
        )
        up = GaugeMetricFamily(
            "vpp_openadr_task_up", "1 while the VEN task runs, by task.", labels=["park", "task"]
        )
        for task, health in sorted(s.tasks.items()):
            restarts.add_metric([park, task], health.restarts)
            up.add_metric([park, task], 1.0 if health.running else 0.0)
        yield restarts
        yield up
        failing = GaugeMetricFamily(
            "vpp_openadr_consecutive_poll_failures",
            "Failed poll cycles since the last success.",
            labels=["park"],
        )
        failing.add_metric([park], s.consecutive_failures)
        yield failing
