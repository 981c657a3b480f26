"""The service's background work, started and stopped with the HTTP app.

`runtime_cleanup_ctx` is the one ``app.cleanup_ctx`` entry that runs, beside
the API:

* the adapter `vpp.supervisor.Supervisor` (device telemetry in, setpoints out);
* the `vpp.history.recorder.HistoryRecorder`, which the supervisor hands every
  accepted reading and which writes the interval history;
* one `vpp.control.ControlLoop` per park, following new parks as they appear
  (each loop takes its park's lease in Redis, so with several service
  processes exactly one of them controls a park at a time);
* the `vpp.ledger.gauges.IndicatorRefresher`, which sets every park's
  zero-carbon indicator gauges from its ledger every ``[ledger] refresh_s``;
* the `vpp.forecast.refresh.ForecastRefresher`, which issues every park's
  forecast every ``[forecast] refresh_s`` and backtests it once a day (the
  bids' margin comes from that backtest);
* the OpenADR VEN of a park when ``[openadr] vtn_url`` and ``park`` are set.

Each is a :class:`~adapters.lifecycle.BackgroundService` entered on one exit
stack, so they stop in the reverse order: the VEN first, then the control
loops, which release every device they were controlling before the
supervisor stops the adapters; the recorder writes the last readings last.

`vpp serve`, `vpp demo`, the end-to-end benchmark and the end-to-end tests all
run this one runtime; where they differ they pass hooks: the parks to run
(instead of following every park in Redis), a wrapper around the supervisor
as the loops' sink (the benchmark's recorder) and the control-loop class (the
benchmark's loop that notes when each cycle starts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from aiohttp import web

from adapters.lifecycle import BackgroundService
from vpp.api.context import CLOCK, COMPONENTS, METRICS, SETTINGS, STATE
from vpp.api.events import EVENTS, WAKE
from vpp.api.forecast import EXTRA_CONTEXT, FORECASTERS_KEY, FORECASTS
from vpp.api.ledger import LEDGER
from vpp.control import ControlLoop
from vpp.forecast.inputs import Forecaster
from vpp.forecast.kinds import FORECASTERS
from vpp.forecast.refresh import ForecastRefresher
from vpp.history.recorder import HistoryRecorder
from vpp.history.store import HistoryStore
from vpp.ledger.gauges import IndicatorRefresher
from vpp.openadr import Ven
from vpp.openadr.bridge import OpenAdrBridge
from vpp.openadr.metrics import VenCollector
from vpp.supervisor import SUPERVISOR, SetpointSink, Supervisor

__all__ = [
    "CONTROL",
    "HISTORY",
    "ControlManager",
    "RuntimeCtx",
    "SinkWrapper",
    "runtime_cleanup_ctx",
]

log = logging.getLogger("vpp.runtime")


class ControlManager(BackgroundService):
    """Runs a control loop for every park and starts loops for new parks.

    Use as ``async with ControlManager(...) as manager:``; entering starts
    following the park list (the task ``control-manager``), each park's loop
    running in its own task ``control-manager/{park}`` of the manager's task
    group. Leaving lets every loop finish its cycle and release its devices
    (all parks at once) before it returns. A loop whose work ended by itself
    is logged and started anew at the next look at the park list.

    Args:
        loop_factory: makes the loop of one park.
        list_parks: returns the parks to control.
        poll_s: how often to look for new parks.
    """

    _task_name = "control-manager"
    # Leaving waits for the loops to release their devices, never cuts them short.
    _stop_grace_s = None

    def __init__(
        self,
        loop_factory: Callable[[str], ControlLoop],
        list_parks: Callable[[], Awaitable[list[str]]],
        *,
        poll_s: float = 5.0,
    ) -> None:
        self._factory = loop_factory
        self._list_parks = list_parks
        self.poll_s = poll_s
        self.loops: dict[str, ControlLoop] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def _run(self) -> None:
        while not self._closing:
            try:
                parks = await self._list_parks()
            except Exception as exc:  # Redis down: keep the loops we have
                log.warning("cannot list parks: %s", exc)
                parks = list(self.loops)
            for park in parks:
                task = self._tasks.get(park)
                if task is None or task.done():
                    loop = self._factory(park)
                    self.loops[park] = loop
                    self._tasks[park] = self._spawn(
                        self._control(park, loop), name=f"control-manager/{park}"
                    )
                    log.info("control loop started for park %s", park)
            await self._wait_closing(self.poll_s)

    async def _control(self, park: str, loop: ControlLoop) -> None:
        """Run one park's loop until the manager is left (or the loop's work ends)."""
        try:
            async with loop:
                await self._wait_closing(None, loop.wait_stopped())
                if not self._closing:
                    error = await loop.wait_stopped()
                    log.error("park %s: control loop stopped (%r); it starts anew", park, error)
        except Exception:  # one park's loop never ends the others
            log.exception("park %s: control loop failed; it starts anew", park)

    def wake(self, park: str) -> asyncio.Future[None] | None:
        """Make the park's loop run a cycle now (if this process runs it).

        Returns:
            Done once that cycle has handed its setpoints over
            (`vpp.control.ControlLoop.wake`); None when no loop of the park runs here.
        """
        loop = self.loops.get(park)
        return loop.wake() if loop is not None else None


#: The running control manager of an app.
CONTROL = web.AppKey("vpp.control", ControlManager)
#: The running recorder of the interval history of an app.
HISTORY = web.AppKey("vpp.history", HistoryRecorder)

#: An ``app.cleanup_ctx`` entry.
RuntimeCtx = Callable[[web.Application], AsyncIterator[None]]
#: Makes the sink the control loops send through from the running supervisor.
SinkWrapper = Callable[[Supervisor], SetpointSink]


def runtime_cleanup_ctx(
    *,
    with_ven: bool = True,
    parks: Sequence[str] | None = None,
    sink: SinkWrapper | None = None,
    loop_class: type[ControlLoop] = ControlLoop,
) -> RuntimeCtx:
    """An ``app.cleanup_ctx`` entry running the supervisor, the control loops and the VEN.

    The app must have been made by `vpp.api.create_app` (its state, settings,
    metrics and clock are used). The defaults are what ``vpp serve`` runs.

    Args:
        with_ven: run the OpenADR VEN when ``[openadr]`` configures one.
        parks: serve and control only these parks (None: every park in Redis,
            new ones as they appear).
        sink: wraps the supervisor into the loops' `SetpointSink` (None: the
            supervisor itself).
        loop_class: the control loop of a park, `ControlLoop` or a subclass.
    """

    async def run(app: web.Application) -> AsyncIterator[None]:
        settings, state, metrics, clock = app[SETTINGS], app[STATE], app[METRICS], app[CLOCK]
        events = app[EVENTS]
        async with contextlib.AsyncExitStack() as stack:
            store = HistoryStore(state, retention_days=settings.history.retention_days)
            recorder = HistoryRecorder(
                store, hold_s=settings.redis.live_ttl_s, flush_s=settings.history.flush_s,
                clock=clock, metrics=metrics,
            )  # fmt: skip
            app[HISTORY] = await stack.enter_async_context(recorder)
            supervisor = Supervisor(
                state=state, settings=settings, registry=metrics.registry, clock=clock,
                parks=parks, history=recorder.record, replica_id=settings.replicas.id,
            )  # fmt: skip
            await stack.enter_async_context(supervisor)
            app[SUPERVISOR] = supervisor
            loop_sink = supervisor if sink is None else sink(supervisor)

            def make(park: str) -> ControlLoop:
                return loop_class(
                    park=park, state=state, events=events, sink=loop_sink, clock=clock,
                    settings=settings.control, metrics=metrics,
                )  # fmt: skip

            async def fixed_parks() -> list[str]:
                return list(parks or ())

            manager = await stack.enter_async_context(
                ControlManager(make, state.list_parks if parks is None else fixed_parks)
            )
            app[CONTROL] = manager
            app[WAKE] = manager.wake
            await stack.enter_async_context(
                IndicatorRefresher(
                    app[LEDGER], state.list_parks if parks is None else fixed_parks, metrics,
                    refresh_s=settings.ledger.refresh_s, clock=clock,
                )
            )  # fmt: skip
            listed = state.list_parks if parks is None else fixed_parks
            forecasters: dict[str, Forecaster] = app.get(FORECASTERS_KEY, FORECASTERS)
            await stack.enter_async_context(
                ForecastRefresher(
                    state, store, app[FORECASTS], listed, settings.forecast, clock=clock,
                    forecasters=forecasters, extra_context=app.get(EXTRA_CONTEXT),
                    backtest_days=settings.forecast.backtest_days or None,
                )
            )  # fmt: skip
            oadr = settings.openadr
            if with_ven and oadr.enabled:
                bridge = OpenAdrBridge(park=oadr.park, state=state, events=events, clock=clock)
                ven = await stack.enter_async_context(
                    Ven(settings=oadr.ven_settings(), sink=bridge, report_source=bridge)
                )
                # its supervised tasks show in /readyz and in the metrics
                app.setdefault(COMPONENTS, {})["openadr"] = ven.health
                collector = VenCollector(ven, oadr.park)
                metrics.registry.register(collector)
                stack.callback(metrics.registry.unregister, collector)
                log.info("OpenADR VEN of park %s polling %s", oadr.park, oadr.vtn_url)
            yield

    return run
