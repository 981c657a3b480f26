"""The service's background work, started and stopped with the HTTP app.

`runtime_cleanup_ctx` is the one ``app.cleanup_ctx`` entry that runs, beside
the API:

* the `vpp.replicas.ParkShares` of this replica, which takes its fair share
  of the parks by lease (with the other ``vpp serve`` processes on the same
  Redis) and gives parks back when another replica joins;
* the adapter `vpp.supervisor.Supervisor` (device telemetry in, setpoints
  out): the OCPP listener for every park's chargers, the Modbus and MQTT
  adapters of the held parks only;
* the `vpp.history.recorder.HistoryRecorder`, which the supervisor hands every
  accepted reading and which writes the interval history;
* one `vpp.control.ControlLoop` per held park, started when the park is
  taken, stopped (its devices released) before it is given back, abandoned
  without a word to its devices when the lease was lost to another replica;
* the `vpp.ledger.gauges.IndicatorRefresher`, which sets every held park's
  zero-carbon indicator gauges from its ledger every ``[ledger] refresh_s``;
* the `vpp.forecast.refresh.ForecastRefresher`, which issues every held
  park's forecast every ``[forecast] refresh_s`` and backtests it once a day
  (the bids' margin comes from that backtest); the API reads every park's;
* the OpenADR VEN of a park when ``[openadr] vtn_url`` and ``park`` are set.

Each is a :class:`~adapters.lifecycle.BackgroundService` entered on one exit
stack, so they stop in the reverse order: the VEN first, the refreshers, then
the park shares, which give every park back (its loop releases the devices
it was controlling, then the supervisor stops the park's adapters, then the
lease goes), the control manager, the supervisor; the recorder writes the
last readings last.

With a fixed park list (``parks=``: the demo's and the benchmarks' hooks)
nothing is shared: those parks are served as before, each loop taking its
park's lease itself (owner: the replica id).

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
from vpp.errors import StateError
from vpp.forecast.inputs import Forecaster
from vpp.forecast.kinds import FORECASTERS
from vpp.forecast.refresh import ForecastRefresher
from vpp.history.recorder import HistoryRecorder
from vpp.history.store import HistoryStore
from vpp.ledger.gauges import IndicatorRefresher
from vpp.openadr import Ven
from vpp.openadr.bridge import OpenAdrBridge
from vpp.openadr.metrics import VenCollector
from vpp.replicas import Change, ParkShares, replica_id
from vpp.state import State
from vpp.supervisor import SUPERVISOR, SetpointSink, Supervisor

__all__ = [
    "CONTROL",
    "HISTORY",
    "SHARES",
    "ControlManager",
    "RuntimeCtx",
    "SinkWrapper",
    "runtime_cleanup_ctx",
]

log = logging.getLogger("vpp.runtime")


class ControlManager(BackgroundService):
    """Runs a control loop for every park it is given and follows that list.

    Use as ``async with ControlManager(...) as manager:``; entering starts
    following the park list (the task ``control-manager``), each park's loop
    running in its own task ``control-manager/{park}`` of the manager's task
    group. Leaving lets every loop finish its cycle and release its devices
    (all parks at once) before it returns. A loop whose work ended by itself
    is logged and started anew at the next look at the park list.

    With several replicas the list is the parks this replica holds
    (`vpp.replicas.ParkShares.held`) and `on_park_change` is subscribed to the
    shares: a park taken starts its loop at once, a park given back stops its
    loop (which releases its devices) before the lease goes, and a park lost
    abandons its loop (`vpp.control.ControlLoop.abandon`: nothing more is sent
    to its devices from here).

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
        self._stops: dict[str, asyncio.Event] = {}

    async def _run(self) -> None:
        while not self._closing:
            try:
                parks = await self._list_parks()
            except Exception as exc:  # Redis down: keep the loops we have
                log.warning("cannot list parks: %s", exc)
                parks = list(self.loops)
            for park in parks:
                self._ensure(park)
            await self._wait_closing(self.poll_s)

    def _ensure(self, park: str) -> None:
        """Start the park's loop unless it runs (or is stopping)."""
        task = self._tasks.get(park)
        if self._closing or (task is not None and not task.done()):
            return
        loop = self._factory(park)
        stop = asyncio.Event()
        self.loops[park], self._stops[park] = loop, stop
        self._tasks[park] = self._spawn(
            self._control(park, loop, stop), name=f"control-manager/{park}"
        )
        log.info("control loop started for park %s", park)

    async def _control(self, park: str, loop: ControlLoop, stop: asyncio.Event) -> None:
        """Run one park's loop until the manager is left, the park is let go (or the loop ends)."""
        try:
            async with loop:
                await self._wait_closing(None, loop.wait_stopped(), stop.wait())
                if not self._closing and not stop.is_set():
                    error = await loop.wait_stopped()
                    log.error("park %s: control loop stopped (%r); it starts anew", park, error)
        except Exception:  # one park's loop never ends the others
            log.exception("park %s: control loop failed; it starts anew", park)

    async def on_park_change(self, park: str, change: Change) -> None:
        """A `vpp.replicas.ParkHandler`: start, stop or abandon the park's loop."""
        if change is Change.TAKEN:
            self._ensure(park)
            return
        loop, task = self.loops.get(park), self._tasks.get(park)
        if loop is None or task is None:
            return
        if change is Change.LOST:
            loop.abandon()
        self._stops[park].set()
        await asyncio.wait({task})
        if self._tasks.get(park) is task:
            del self.loops[park], self._tasks[park], self._stops[park]
        log.info("control loop of park %s stopped: park %s", park, change.value)

    def wake(self, park: str) -> asyncio.Future[None] | None:
        """Make the park's loop run a cycle now (if this process runs it).

        Returns:
            Done once that cycle has handed its setpoints over
            (`vpp.control.ControlLoop.wake`); None when no loop of the park runs here.
        """
        loop = self.loops.get(park)
        return loop.wake() if loop is not None else None

    def delivering(self, park: str, within_s: float) -> bool:
        """Whether the park's loop here runs an event or starts one within ``within_s`` real s."""
        loop = self.loops.get(park)
        return loop is not None and loop.delivering(within_s)


#: A park whose event starts within this many lease times is busy: not given back.
BUSY_LEASES = 2

#: The running control manager of an app.
CONTROL = web.AppKey("vpp.control", ControlManager)
#: The parks this replica holds among several (absent with a fixed park list).
SHARES = web.AppKey("vpp.shares", ParkShares)
#: The running recorder of the interval history of an app.
HISTORY = web.AppKey("vpp.history", HistoryRecorder)


class _Wakes:
    """Wakes a park's control loop here, or on the replica holding the park's lease.

    The events API calls `wake` for every event posted, changed or cancelled:
    with several replicas the request may land on one that does not run the
    park, which then sends the wake through the holder's inbox
    (`vpp.supervisor._remote.RemoteCalls.wake`) so the event is acted on at
    once rather than at the holder's next period.
    """

    def __init__(self, state: State, supervisor: Supervisor, manager: ControlManager) -> None:
        self._state = state
        self._supervisor = supervisor
        self._manager = manager
        self._sending: set[asyncio.Task[None]] = set()

    def wake(self, park: str) -> Awaitable[None] | None:
        """`vpp.api.events.WAKE`: the local loop's wake, else a task sending it to the holder."""
        local = self._manager.wake(park)
        if local is not None:
            return local
        task = asyncio.ensure_future(self._wake_holder(park))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return task

    async def _wake_holder(self, park: str) -> None:
        try:
            async with self._state.guard("wake"):
                raw = await self._state.redis.get(self._state.park(park).control_lease)
        except StateError as exc:
            log.warning("cannot find the holder of park %s to wake it: %s", park, exc)
            return
        holder = raw.decode() if isinstance(raw, bytes) else raw
        if holder and holder != self._supervisor.replica_id:
            await self._supervisor.remote.wake(holder, park)


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
        parks: serve and control only these parks, each loop taking its lease
            itself (None: this replica's share of every park in Redis, new
            ones as they appear, `vpp.replicas.ParkShares`).
        sink: wraps the supervisor into the loops' `SetpointSink` (None: the
            supervisor itself).
        loop_class: the control loop of a park, `ControlLoop` or a subclass.
    """

    async def run(app: web.Application) -> AsyncIterator[None]:
        settings, state, metrics, clock = app[SETTINGS], app[STATE], app[METRICS], app[CLOCK]
        events = app[EVENTS]
        replica = replica_id(settings.replicas.id)
        # every park, shared with the other replicas by lease; or the fixed ones, as before
        shares = None

        def busy(park: str) -> bool:
            # never give back a park delivering an event, or starting one within two leases
            control = app.get(CONTROL)
            lead_s = BUSY_LEASES * settings.control.lease_ttl_s
            return control is not None and control.delivering(park, within_s=lead_s)

        if parks is None:
            shares = ParkShares(
                state, replica=replica, heartbeat_s=settings.replicas.heartbeat_s,
                lease_ttl_s=settings.control.lease_ttl_s, metrics=metrics, busy=busy,
            )  # fmt: skip
        async with contextlib.AsyncExitStack() as stack:
            store = HistoryStore(state, retention_days=settings.history.retention_days)
            recorder = HistoryRecorder(
                store, hold_s=settings.redis.live_ttl_s, flush_s=settings.history.flush_s,
                clock=clock, metrics=metrics,
            )  # fmt: skip
            app[HISTORY] = await stack.enter_async_context(recorder)
            supervisor = Supervisor(
                state=state, settings=settings, registry=metrics.registry, clock=clock,
                parks=parks, history=recorder.record, replica_id=replica,
                holds=None if shares is None else shares.holds,
            )  # fmt: skip
            await stack.enter_async_context(supervisor)
            app[SUPERVISOR] = supervisor
            loop_sink = supervisor if sink is None else sink(supervisor)

            def make(park: str) -> ControlLoop:
                return loop_class(
                    park=park, state=state, events=events, sink=loop_sink, clock=clock,
                    settings=settings.control, metrics=metrics, owner=replica,
                    shared_lease=shares is not None,
                )  # fmt: skip

            async def fixed_parks() -> list[str]:
                return list(parks or ())

            async def held_parks() -> list[str]:
                assert shares is not None
                await shares.settled()  # the first round of each refresher sees the taken parks
                return sorted(shares.held)

            # per-park work done once, by the park's holder: its loop, ledger gauges, forecasts
            listed = fixed_parks if shares is None else held_parks
            manager = await stack.enter_async_context(ControlManager(make, listed))
            app[CONTROL] = manager
            wakes = _Wakes(state, supervisor, manager)
            supervisor.remote.on_wake = manager.wake
            app[WAKE] = wakes.wake
            if shares is not None:
                shares.subscribe(recorder.on_park_change)
                # takes start adapters, then the loop; gives and losses stop them in reverse
                shares.subscribe(supervisor.on_park_change)
                shares.subscribe(manager.on_park_change)
                # left before the loops and the supervisor: every park is given back first
                app[SHARES] = await stack.enter_async_context(shares)
                app.setdefault(COMPONENTS, {})["replicas"] = shares.health
            await stack.enter_async_context(
                IndicatorRefresher(
                    app[LEDGER], listed, metrics, refresh_s=settings.ledger.refresh_s, clock=clock,
                )
            )  # fmt: skip
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
