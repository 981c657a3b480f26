"""The service's background work, started and stopped with the HTTP app.

`runtime_cleanup_ctx` is the one ``app.cleanup_ctx`` entry that runs, beside
the API:

* the adapter `vpp.supervisor.Supervisor` (device telemetry in, setpoints out);
* one `vpp.control.ControlLoop` per park, following new parks as they appear
  (each loop takes its park's lease in Redis, so with several service
  processes exactly one of them controls a park at a time);
* the OpenADR VEN of a park when ``[openadr] vtn_url`` and ``park`` are set.

On shutdown the loops release every device they were controlling before the
supervisor stops the adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from vpp.api.context import COMPONENTS, METRICS, SETTINGS, STATE
from vpp.api.events import CLOCK, EVENTS, WAKE
from vpp.control import ControlLoop
from vpp.openadr import Ven
from vpp.openadr.metrics import VenCollector
from vpp.openadr_bridge import OpenAdrBridge
from vpp.supervisor import SUPERVISOR, Supervisor

__all__ = ["CONTROL", "ControlManager", "runtime_cleanup_ctx"]

log = logging.getLogger("vpp.runtime")


class ControlManager:
    """Runs a control loop for every park and starts loops for new parks.

    Args:
        loop_factory: makes the loop of one park.
        list_parks: returns the parks to control.
        poll_s: how often to look for new parks.
    """

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
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Follow the park list until stopped; stop every loop (releasing devices) at the end."""
        try:
            while not self._stop.is_set():
                try:
                    parks = await self._list_parks()
                except Exception as exc:  # Redis down: keep the loops we have
                    log.warning("cannot list parks: %s", exc)
                    parks = list(self.loops)
                for park in parks:
                    if park not in self._tasks or self._tasks[park].done():
                        loop = self._factory(park)
                        self.loops[park] = loop
                        self._tasks[park] = asyncio.create_task(
                            loop.run(self._stop), name=f"control-{park}"
                        )
                        log.info("control loop started for park %s", park)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.poll_s)
        finally:
            self._stop.set()
            if self._tasks:
                await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def wake(self, park: str) -> None:
        """Make the park's loop run a cycle now (if this process runs it)."""
        loop = self.loops.get(park)
        if loop is not None:
            loop.wake()

    def stop(self) -> None:
        """Ask every loop to finish its cycle, release its devices and stop."""
        self._stop.set()


#: The running control manager of an app.
CONTROL = web.AppKey("vpp.control", ControlManager)


def runtime_cleanup_ctx(
    *, with_ven: bool = True
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An ``app.cleanup_ctx`` entry running the supervisor, the control loops and the VEN.

    The app must have been made by `vpp.api.create_app` (its state, settings,
    metrics and clock are used).
    """

    async def run(app: web.Application) -> AsyncIterator[None]:
        settings, state, metrics, clock = app[SETTINGS], app[STATE], app[METRICS], app[CLOCK]
        events = app[EVENTS]
        async with contextlib.AsyncExitStack() as stack:
            supervisor = await stack.enter_async_context(
                Supervisor(state=state, settings=settings, registry=metrics.registry, clock=clock)
            )
            app[SUPERVISOR] = supervisor

            def make(park: str) -> ControlLoop:
                return ControlLoop(
                    park=park, state=state, events=events, sink=supervisor, clock=clock,
                    settings=settings.control, metrics=metrics,
                )  # fmt: skip

            manager = ControlManager(make, state.list_parks)
            app[CONTROL] = manager
            app[WAKE] = manager.wake
            task = asyncio.create_task(manager.run(), name="control-manager")
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
            try:
                yield
            finally:
                manager.stop()
                await task

    return run
