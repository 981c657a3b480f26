"""The zero-carbon indicator gauges: every park's, refreshed from its ledger in the background.

`IndicatorRefresher` computes each park's indicators (`LedgerBook.indicators`:
the last complete month and the rolling year to it) every ``[ledger]
refresh_s`` and sets the ``vpp_ledger_*`` gauges of `vpp.metrics.Metrics`,
labelled by park and window (``month``, ``rolling_year``). A null figure (no
energy recorded) removes its series rather than showing 0, which would read
as a perfect park. A park whose refresh fails (Redis down, a bad history) is
logged and counted (``vpp_ledger_refresh_errors``) and keeps its last values;
the others go on.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import Gauge

from adapters.lifecycle import BackgroundService
from vpp.clock import Clock
from vpp.errors import VppError
from vpp.ledger.book import LedgerBook
from vpp.ledger.rows import Indicator
from vpp.metrics import Metrics

__all__ = ["IndicatorRefresher", "set_indicators"]

log = logging.getLogger("vpp.ledger")


def _set(gauge: Gauge, park: str, window: str, value: float | None) -> None:
    if value is None:
        with contextlib.suppress(KeyError):  # not set yet
            gauge.remove(park, window)
    else:
        gauge.labels(park, window).set(value)


def set_indicators(metrics: Metrics, park: str, indicators: Sequence[Indicator]) -> None:
    """Set the ``vpp_ledger_*`` gauges of ``park`` from its indicators (one per window)."""
    for ind in indicators:
        w = ind.window
        _set(metrics.ledger_carbon_intensity, park, w, ind.carbon_intensity_t_per_tce)
        _set(metrics.ledger_carbon_intensity_threshold, park, w, ind.carbon_intensity_threshold)
        _set(metrics.ledger_clean_energy_share, park, w, ind.clean_energy_share)
        _set(metrics.ledger_clean_energy_threshold, park, w, ind.clean_energy_threshold)
        _set(metrics.ledger_annual_energy_tce, park, w, ind.annual_tce)


class IndicatorRefresher(BackgroundService):
    """Refreshes every park's indicator gauges every ``refresh_s`` real seconds.

    Use as ``async with IndicatorRefresher(...):``; the work is the task
    ``ledger-indicators``. `refresh` does one round at once (also without
    entering, in tests).

    Args:
        book: the ledger.
        parks: returns the ids of the parks to refresh (e.g. ``State.list_parks``).
        metrics: where the gauges are.
        refresh_s: real seconds between rounds (``[ledger] refresh_s``).
        clock: the service clock, for "now" (wall time when None).

    Raises:
        ValueError: ``refresh_s`` not above 0.
    """

    _task_name = "ledger-indicators"

    def __init__(
        self,
        book: LedgerBook,
        parks: Callable[[], Awaitable[list[str]]],
        metrics: Metrics,
        *,
        refresh_s: float,
        clock: Clock | None = None,
    ) -> None:
        if refresh_s <= 0:
            raise ValueError("refresh_s must be above 0")
        self.book = book
        self._parks = parks
        self.metrics = metrics
        self.refresh_s = refresh_s
        self._clock = clock

    async def refresh(self) -> dict[str, list[Indicator]]:
        """One round over every park; the indicators set, by park (failed parks left out)."""
        now = self._clock.now() if self._clock is not None else None
        done: dict[str, list[Indicator]] = {}
        try:
            parks = await self._parks()
        except VppError as exc:
            log.warning("ledger indicators: cannot list the parks: %s", exc)
            return done
        for park in parks:
            try:
                indicators = await self.book.indicators(park, now=now)
            except VppError as exc:
                self.metrics.ledger_refresh_errors.labels(park).inc()
                log.warning("ledger indicators of park %s not refreshed: %s", park, exc)
                continue
            except Exception:
                # One park's fault (a bug, a corrupt record) must not end the
                # refresher of every park: it is logged with its traceback.
                self.metrics.ledger_refresh_errors.labels(park).inc()
                log.exception("ledger indicators of park %s not refreshed", park)
                continue
            set_indicators(self.metrics, park, indicators)
            done[park] = indicators
        return done

    async def _run(self) -> None:
        while not self._closing:
            await self.refresh()
            await self._wait_closing(self.refresh_s)
