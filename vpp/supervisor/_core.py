"""The supervisor: runs the adapters of the enrolled assets and keeps their live state.

One task per adapter (named ``adapter-{label}``) enters the adapter, pumps
its telemetry into a batch and restarts it after a jittered, growing delay
when it fails; the others keep running. A flush task writes the batch to
Redis (``State.write_live_many``: one pipeline per park, each key with the
live TTL) every ``flush_interval_s`` or as soon as ``flush_max`` readings
wait, keeping only the latest reading of each asset. A follow task reads the
park logs (``asset.enrolled``, ``asset.patched``, ``asset.retired``)
with a blocking ``XREAD`` and reconciles the park that changed; a full
reconcile every ``reconcile_interval_s`` is the safety net, and new parks are
picked up from ``State.list_parks``.

Freshness: each reading is judged by its age on arrival
(:func:`~vpp.supervisor._live.date_reading`: dated ahead of our clock ->
re-dated to its arrival, already ``live_ttl_s`` old -> not written) and is then
live until it is ``live_ttl_s`` old by its own ``ts``. When an adapter's
transport goes down (broker or Modbus connection lost, listener closed, the
adapter failed and waits for its restart), its assets are marked unavailable
in the live state at once rather than left to age out; an adapter that has
not connected ``CONNECT_GRACE_S`` after its start is treated the same way.
Readings consumed while the transport is down are written unavailable.

Meters are served like the other assets (telemetry in, live state out; a
meter's reading scaled by its multiplier on the way, `_live.live_state`) but
take no setpoint: ``send`` refuses one for a meter without reaching its
adapter, and ``release`` has nothing to hand back.

With several service replicas (`vpp.replicas`) the Modbus and MQTT adapters
of a park run only on the replica holding the park (``holds``): a park taken
is reconciled at once (`Supervisor.on_park_change`), a park given back or
lost has its adapters stopped without marking its assets unavailable (the
replica holding it now keeps their live state), and without announcing the
service offline on MQTT when it was lost. The OCPP listener keeps every
park's chargers: a charger may connect to any replica.

A change to a Modbus or MQTT adapter's assets or limits rebuilds that one
adapter. The OCPP listener is shared by every park and is never rebuilt for
an enrollment: its charger table is replaced in place (a new charger can
connect at once; a retired one that is still connected stays connected, but
its readings are no longer written).

Chargers behind another replica: the listener's connects and disconnects go
to the park's ``ocpp_connected`` map (`vpp.supervisor._links`, keyed by this
supervisor's ``replica_id``). A setpoint or release for a charger that is not
connected here goes, when a live replica holds it, through that replica's
inbox (`vpp.supervisor._remote`), which runs it on its own listener as a
local call; this supervisor's inbox runs the others' calls the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from itertools import zip_longest
from typing import Any, Protocol, TypeVar, runtime_checkable

from aiohttp import web
from prometheus_client import CollectorRegistry

from adapters.backoff import Backoff
from adapters.errors import UnknownAsset
from adapters.lifecycle import BackgroundService
from adapters.modbus import METER_REFUSAL, ModbusAdapter, ModbusUnit, UnitKind
from adapters.mqtt import MqttAdapter
from adapters.ocpp.csms import ChargerSettings, OcppCsmsAdapter
from adapters.types import AdapterStats, Confirmation, Setpoint, TelemetrySource
from vpp.clock import Clock
from vpp.errors import StateError
from vpp.replicas import Change
from vpp.settings import Settings
from vpp.state import State
from vpp.supervisor._follow import ParkLogs
from vpp.supervisor._links import ChargerLinks, LinkKeeper
from vpp.supervisor._live import FLUSH_INTERVAL_S, FLUSH_MAX, LiveBatch, LiveSink
from vpp.supervisor._metrics import AdapterSample, SupervisorMetrics
from vpp.supervisor._remote import ANSWER_SLACK_S, RemoteCalls, RemoteRequest
from vpp.supervisor._routing import AdapterKey, AdapterRoute, charger_password, ocpp_key, plan_park

__all__ = ["SUPERVISOR", "SetpointSink", "Supervisor"]

log = logging.getLogger("vpp.supervisor")

AnyAdapter = MqttAdapter | ModbusAdapter | OcppCsmsAdapter
_T = TypeVar("_T")

#: Default setpoint and release calls in flight at once per adapter. MQTT
#: commands only wait for device acks, each on its own: the bound is wide so
#: that devices that never ack (a gateway gone silent before its last will
#: fires) cannot hold every slot for their ack timeout while the others'
#: setpoints queue; a Modbus adapter queues the rest on its connections
#: (setpoints before polls); OCPP keeps one call per charger connection
#: itself, so its bound only caps the tasks.
SEND_CONCURRENCY: Mapping[TelemetrySource, int] = {
    TelemetrySource.MQTT: 4096,
    TelemetrySource.MODBUS: 256,
    TelemetrySource.OCPP: 1024,
}
#: An adapter that ran this long before failing restarts without a long wait.
HEALTHY_RUN_S = 60.0
#: How long one blocking XREAD on the park logs waits (below the Redis socket timeout).
LOG_BLOCK_S = 1.0
#: How long a new adapter instance may take to connect before its assets are marked
#: unavailable (a rebuild for an enrollment change connects well within it).
CONNECT_GRACE_S = 5.0


@runtime_checkable
class SetpointSink(Protocol):
    """Where the control loop sends setpoints (the :class:`Supervisor`, or a test double)."""

    async def send(
        self, park: str, setpoints: Mapping[str, float], *, hold_s: float
    ) -> dict[str, Confirmation]:
        """Send one setpoint (kW, positive = draw) per asset; never raises per asset."""
        ...

    async def release(self, park: str, asset_ids: Iterable[str]) -> dict[str, bool]:
        """Hand assets back to their own behaviour; True where acknowledged."""
        ...


class _AdapterDied(RuntimeError):
    """An adapter's own background task ended (it never should)."""


class _AdapterGone(RuntimeError):
    """The adapter was stopped or rebuilt while a call on it was running."""

    def __str__(self) -> str:
        return "adapter stopped or rebuilt while sending"


@dataclass(eq=False)
class _Slot:
    """One adapter, its assets and the numbers that outlive its instances."""

    key: AdapterKey
    routes: tuple[AdapterRoute, ...]
    limit: asyncio.Semaphore
    adapter: AnyAdapter | None = None
    task: asyncio.Task[None] | None = None
    started: float = field(default_factory=time.time)
    restarts: int = 0
    messages: int = 0
    #: meter readings taken into the live state (never reset by a rebuild)
    meter_readings: int = 0
    bad_payloads: int = 0
    rejected_fields: Counter[tuple[str, str]] = field(default_factory=Counter)
    stale: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    last_telemetry_ts: float = 0.0
    #: setpoint and release calls running on the adapter (cut short when it stops)
    inflight: set[asyncio.Task[Any]] = field(default_factory=set)
    #: the transport was seen up since the assets were last marked down
    was_up: bool = False
    #: the assets were marked unavailable and the transport has not come back since
    marked_down: bool = False
    #: monotonic time before which a not-yet-connected instance is left alone
    grace_until: float = 0.0

    def absorb(self, stats: AdapterStats) -> None:
        """Carry a finished instance's counters over to the next one."""
        self.messages += stats.messages
        self.bad_payloads += stats.bad_payloads
        self.rejected_fields.update(stats.rejected_fields)
        self.stale.update(stats.stale)
        self.reconnects += stats.reconnects
        self.last_telemetry_ts = max(self.last_telemetry_ts, stats.last_telemetry_ts)

    def sample(self, now: float) -> AdapterSample:
        """The slot's metrics now."""
        live = self.adapter.stats if self.adapter is not None else AdapterStats()
        last = max(self.last_telemetry_ts, live.last_telemetry_ts, self.started)
        return AdapterSample(
            key=self.key,
            connected=live.connected,
            age_s=max(0.0, now - last),
            messages=self.messages + live.messages,
            meter_readings=self.meter_readings,
            bad_payloads=self.bad_payloads + live.bad_payloads,
            rejected_fields=dict(self.rejected_fields + live.rejected_fields),
            stale=dict(self.stale + live.stale),
            clock_skew_s=live.clock_skew_s,
            reconnects=self.reconnects + live.reconnects + self.restarts,
            restarts=self.restarts,
        )


def _refused(asset_id: str, requested_kw: float, reason: str) -> Confirmation:
    return Confirmation(
        asset_id=asset_id,
        requested_kw=requested_kw,
        sent_kw=None,
        clamped=False,
        confirmed=False,
        reason=reason,
    )


async def _watch(adapter: AnyAdapter, label: str) -> None:
    # An adapter's background work ending is otherwise silent: its telemetry just stops.
    exc = await adapter.wait_stopped()
    raise _AdapterDied(f"adapter {label} stopped: {exc!r}") from exc


class Supervisor(BackgroundService):
    """Runs the adapters of every enrolled asset and writes their live state.

    Use as ``async with Supervisor(...) as sup:``; entering starts the work in
    the background (``await sup.wait_ready()`` for the first reconcile),
    leaving stops every adapter and flushes what is pending. The work is the
    named tasks ``supervisor-flush``, ``supervisor-follow`` and one
    ``adapter-{label}`` per adapter, in the supervisor's task group.

    Args:
        state: the Redis repository (assets, live state, park logs).
        settings: ``mqtt``, ``modbus``, ``ocpp`` and ``redis.live_ttl_s`` are read.
        parks: the parks to serve; every park (including new ones) when None.
        registry: where the adapter and setpoint metrics are registered (the
            app's ``Metrics.registry``); a private one when omitted.
        flush_interval_s: longest a reading waits before it is written.
        flush_max: readings that trigger a write at once.
        reconcile_interval_s: period of the full reconcile.
        park_poll_s: period of the look for new parks.
        backoff_base: scale on restart and reconnect delays (tests shorten them).
        send_timeout_s: bound on one setpoint, queueing included.
        send_concurrency: calls in flight at once per adapter, by protocol
            (``SEND_CONCURRENCY`` for the protocols not given).
        clock: the service clock; device schedules (EV departures) are mapped
            onto its timeline (matters only when it runs compressed).
        history: given every park's accepted readings as they are written
            (the interval history's recorder).
        holds: whether this replica holds a park (`vpp.replicas.ParkShares.holds`):
            the Modbus and MQTT adapters of the others do not run here; every
            park's when None.
        replica_id: this replica's id among those sharing the Redis
            (`vpp.replicas.replica_id`: its chargers' entries in
            ``ocpp_connected``, its inbox and outbox, its logs); random when empty.
    """

    _task_name = "supervisor"
    # Leaving cancels the adapters' tasks once and lets each adapter leave its
    # own context (announce offline, close its connections) for as long as it
    # takes; the supervisor's loops check _closing, so none outlives a
    # cancellation a library swallowed.
    _stop_limit_s = None

    def __init__(
        self,
        *,
        state: State,
        settings: Settings,
        parks: Iterable[str] | None = None,
        registry: CollectorRegistry | None = None,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        flush_max: int = FLUSH_MAX,
        reconcile_interval_s: float = 30.0,
        park_poll_s: float = 5.0,
        backoff_base: float = 1.0,
        send_timeout_s: float = 15.0,
        send_concurrency: Mapping[TelemetrySource, int] | None = None,
        clock: Clock | None = None,
        history: LiveSink | None = None,
        holds: Callable[[str], bool] | None = None,
        replica_id: str = "",
    ) -> None:
        self._state = state
        self._holds = holds
        self._settings = settings
        self._fixed_parks = None if parks is None else sorted(set(parks))
        self.registry = registry if registry is not None else CollectorRegistry()
        self._flush_s = flush_interval_s
        self._reconcile_s, self._park_poll_s = reconcile_interval_s, park_poll_s
        self._backoff_base = backoff_base
        self._send_timeout = send_timeout_s
        self._concurrency = {**SEND_CONCURRENCY, **(send_concurrency or {})}
        self._ocpp = ocpp_key(settings.ocpp.host, settings.ocpp.port)
        self._plans: dict[str, list[AdapterRoute]] = {}
        self._routes: dict[tuple[str, str], AdapterRoute] = {}
        self._by_device: dict[tuple[AdapterKey, str], AdapterRoute] = {}
        self._slots: dict[AdapterKey, _Slot] = {}
        self._logs = ParkLogs(state)
        self._noted: set[str] = set()
        self._time_scale = clock.time_scale if clock is not None else 1.0
        self._batch = LiveBatch(
            flush_max=flush_max, schedule_time=clock.from_wall if clock else None, history=history
        )
        self._ready = asyncio.Event()
        self._reconcile_lock = asyncio.Lock()
        self.metrics: SupervisorMetrics | None = None
        self.replica_id = replica_id or f"replica-{uuid.uuid4().hex[:12]}"
        # the remote call's deadline leaves room for its answer within send_timeout_s
        self._remote_timeout = max(send_timeout_s - 2 * ANSWER_SLACK_S, send_timeout_s / 2)
        self._links = LinkKeeper(
            ChargerLinks(state, self.replica_id), self._park_of_charger, self._held_chargers
        )
        self._remote = RemoteCalls(
            state, self.replica_id, self._serve_remote, block_s=LOG_BLOCK_S,
            backoff_base=backoff_base,
        )  # fmt: skip
        self._stack = contextlib.AsyncExitStack()

    # -- lifecycle -----------------------------------------------------------

    async def _open(self) -> None:
        await self._stack.enter_async_context(self._links)
        await self._stack.enter_async_context(self._remote)
        self.metrics = SupervisorMetrics(self.registry, self._samples)

    async def _run(self) -> None:
        _ = self._spawn(self._flush_loop(), name="supervisor-flush")
        _ = self._spawn(self._follow_loop(), name="supervisor-follow")

    async def _close(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self.flush()
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        await self._stack.aclose()

    async def wait_ready(self) -> None:
        """Wait until the first full reconcile has started the adapters."""
        await self._ready.wait()

    # -- what runs: routes and adapters --------------------------------------

    def routes(self, park: str) -> dict[str, AdapterKey]:
        """The adapter serving each routed asset of ``park``."""
        return {a: r.key for (p, a), r in self._routes.items() if p == park}

    @property
    def remote(self) -> RemoteCalls:
        """This replica's inbox and outbox (its ``served`` and ``expired`` counts)."""
        return self._remote

    def adapter(self, label: str) -> AnyAdapter | None:
        """The running adapter with metrics label ``label`` (None if not running)."""
        for slot in self._slots.values():
            if slot.key.label == label:
                return slot.adapter
        return None

    async def reconcile(self) -> None:
        """Re-read every served park's assets and start, rebuild or stop adapters."""
        parks = self._fixed_parks
        if parks is None:
            parks = await self._state.list_parks()
        gone = set(self._plans) - set(parks)
        self._logs.forget(gone)
        for park in gone:
            del self._plans[park]
        await self.reconcile_parks(parks)

    async def reconcile_parks(self, parks: Iterable[str]) -> None:
        """Re-read the assets of ``parks`` and bring their adapters in line."""
        async with self._reconcile_lock:
            for park in parks:
                # The log position comes first: a change made while the assets
                # are read is then read again from the log.
                await self._logs.follow(park)
                routes, notes = plan_park(
                    park,
                    await self._state.list_assets(park),
                    mqtt_root=self._settings.mqtt.root,
                    ocpp=self._ocpp,
                )
                self._note(notes)
                self._plans[park] = routes
            await self._apply()

    async def on_park_change(self, park: str, change: Change) -> None:
        """A `vpp.replicas.ParkHandler`: start a taken park's adapters, stop a dropped one's.

        The OCPP listener keeps the park's chargers either way. Stopped
        adapters leave their assets' live state alone; an MQTT adapter of a
        park lost to another replica also leaves the service status alone.
        """
        if change is Change.LOST:
            for slot in self._slots.values():
                if slot.key.park == park and isinstance(slot.adapter, MqttAdapter):
                    slot.adapter.announce_offline = False
        await self.reconcile_parks([park])
        log.info("replica %s: park %s %s, its devices' adapters follow", self.replica_id, park,
                 change.value)  # fmt: skip

    def _runs_devices(self, route: AdapterRoute) -> bool:
        """Whether the route's adapter runs here: the shared OCPP listener, or a held park's."""
        return route.key == self._ocpp or self._holds is None or self._holds(route.park)

    def _note(self, notes: Iterable[str]) -> None:
        for note in notes:
            if note not in self._noted:
                self._noted.add(note)
                log.warning("%s", note)

    async def _apply(self) -> None:
        desired: dict[AdapterKey, list[AdapterRoute]] = defaultdict(list)
        chargers: dict[str, AdapterRoute] = {}
        for park in sorted(self._plans):
            for route in self._plans[park]:
                if route.key == self._ocpp:
                    first = chargers.setdefault(route.device_id, route)
                    if first is not route:
                        taken = f"{first.park}/{first.asset_id}"
                        self._note([f"{park}/{route.asset_id}: {route.device_id} is {taken}'s"])
                        continue
                if self._runs_devices(route):
                    desired[route.key].append(route)
        routed = [r for rs in desired.values() for r in rs]
        self._routes = {(r.park, r.asset_id): r for r in routed}
        self._by_device = {(r.key, r.device_id): r for r in routed}
        for key in [k for k in self._slots if k not in desired]:
            await self._stop(self._slots.pop(key), final=True)
        for key, routes in sorted(desired.items()):
            wanted = tuple(sorted(routes, key=lambda r: r.device_id))
            slot = self._slots.get(key)
            if slot is None:
                slot = _Slot(key, wanted, asyncio.Semaphore(self._concurrency[key.protocol]))
                self._slots[key] = slot
                self._start(slot)
            elif slot.routes != wanted:
                slot.routes = wanted
                if isinstance(slot.adapter, OcppCsmsAdapter):
                    slot.adapter.update_chargers(self._chargers(wanted))
                else:
                    await self._stop(slot, final=False)
                    self._start(slot)
                log.info("%s now serves %d assets", key.label, len(wanted))

    def _start(self, slot: _Slot) -> None:
        slot.grace_until = time.monotonic() + CONNECT_GRACE_S
        slot.task = self._spawn(self._run_slot(slot), name=f"adapter-{slot.key.label}")

    @staticmethod
    async def _stop(slot: _Slot, *, final: bool) -> None:
        """Stop a slot's adapter; ``final`` False when a new one replaces it at once."""
        if not final:
            # The new instance takes over: no "service offline" flicker for the
            # devices, and no "unavailable" for its assets unless it cannot connect.
            if isinstance(slot.adapter, MqttAdapter):
                slot.adapter.announce_offline = False
            slot.was_up = False
            slot.grace_until = time.monotonic() + CONNECT_GRACE_S
        # Calls on the old adapter would wait for answers that can no longer come.
        for call in list(slot.inflight):
            call.cancel()
        task, slot.task = slot.task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=10.0)

    def _chargers(self, routes: Iterable[AdapterRoute]) -> dict[str, ChargerSettings]:
        secret = self._settings.ocpp.auth_secret
        return {
            r.device_id: ChargerSettings(
                password=charger_password(secret, r.device_id), limits=r.limits, v2g=r.v2g
            )
            for r in routes
        }

    def _build(self, key: AdapterKey, routes: tuple[AdapterRoute, ...]) -> AnyAdapter:
        s = self._settings
        if key.protocol is TelemetrySource.MQTT:
            root, level = key.endpoint.rsplit("/", 1)
            return MqttAdapter(
                host=s.mqtt.host,
                port=s.mqtt.port,
                park=level,
                root=root,
                assets={r.device_id: r.limits for r in routes},
                username=s.mqtt.username or None,
                password=s.mqtt.password or None,
                client_id=f"{s.mqtt.client_id}-{key.park}-{uuid.uuid4().hex[:8]}",
                keepalive_s=s.mqtt.keepalive_s,
                backoff_base=self._backoff_base,
                time_scale=self._time_scale,
                max_age_s=s.redis.live_ttl_s,
                share_group=s.mqtt.share_group_in(s.redis.namespace),
            )
        if key.protocol is TelemetrySource.MODBUS:
            host, port = key.endpoint.rsplit(":", 1)
            return ModbusAdapter(
                host=host,
                port=int(port),
                units={
                    r.device_id: ModbusUnit(
                        unit_id=r.unit_id,
                        limits=r.limits,
                        power_sign=r.power_sign,
                        setpoint_sign=r.setpoint_sign,
                        kind=UnitKind.METER if r.meter else UnitKind.BATTERY,
                    )
                    for r in routes
                },
                poll_s=s.modbus.poll_interval_s,
                timeout_s=s.modbus.timeout_s,
                connections=s.modbus.connections,
                backoff_base=self._backoff_base,
                time_scale=self._time_scale,
            )
        if not s.ocpp.auth_secret:
            log.warning("ocpp.auth_secret is empty: charger passwords are guessable")
        return OcppCsmsAdapter(
            host=s.ocpp.host,
            port=s.ocpp.port,
            chargers=self._chargers(routes),
            time_scale=self._time_scale,
            on_link=self._links.note,
        )

    async def _run_slot(self, slot: _Slot) -> None:
        """Run one adapter until cancelled, restarting it whenever it fails."""
        backoff = Backoff(base=self._backoff_base)
        last_error = ""
        while True:
            adapter = self._build(slot.key, slot.routes)
            began = time.monotonic()
            try:
                async with adapter:
                    slot.adapter = adapter
                    await self._pump(slot, adapter)
            except Exception as exc:
                slot.restarts += 1
                self._mark_down(slot)  # its assets are unreachable until the restart connects
                # The traceback once per kind of failure, not once per retry.
                again = repr(exc) == last_error
                last_error = repr(exc)
                log.error(
                    "%s failed (restart %d): %r",
                    slot.key.label, slot.restarts, exc, exc_info=None if again else exc,
                )  # fmt: skip
            finally:
                slot.adapter = None
                slot.absorb(adapter.stats)
            if self._closing:
                return  # a cancellation swallowed on the way out: no restart
            if time.monotonic() - began > HEALTHY_RUN_S:
                backoff.reset()
            await backoff.wait()

    async def _pump(self, slot: _Slot, adapter: AnyAdapter) -> None:
        label = slot.key.label
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._consume(slot, adapter), name=f"telemetry-{label}")
            tg.create_task(_watch(adapter, label), name=f"watch-{label}")

    async def _consume(self, slot: _Slot, adapter: AnyAdapter) -> None:
        ttl = self._settings.redis.live_ttl_s
        key = slot.key
        async for batch in adapter.telemetry_batches():
            slot.meter_readings += self._batch.admit(
                batch,
                # the routes as they are now: a reconcile replaces the map
                lambda device: self._by_device.get((key, device)),
                now=time.time(),
                ttl=ttl,
                connected=adapter.stats.connected,
                stale=slot.stale,
                rejected=slot.rejected_fields,
            )

    # -- transport state -----------------------------------------------------

    def _check_links(self) -> None:
        """Mark the assets of every adapter whose transport is down unavailable, once."""
        now = time.monotonic()
        for slot in list(self._slots.values()):
            adapter = slot.adapter
            if adapter is not None and adapter.stats.connected:
                slot.was_up, slot.marked_down = True, False
            elif not slot.marked_down and (slot.was_up or now >= slot.grace_until):
                log.warning("%s is down: its assets are unavailable", slot.key.label)
                self._mark_down(slot)

    def _mark_down(self, slot: _Slot) -> None:
        slot.was_up, slot.marked_down = False, True
        self._batch.mark_down(slot.routes)

    # -- live state ----------------------------------------------------------

    async def _flush_loop(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._batch.due.wait(), self._flush_s)
            self._check_links()
            await self.flush()

    async def flush(self) -> int:
        """Write the pending readings now (the latest per asset); return how many."""
        return await self._batch.flush(
            self._state, self._settings.redis.live_ttl_s, lambda p, a: (p, a) in self._routes
        )

    # -- following enrollments -----------------------------------------------

    async def _follow_loop(self) -> None:
        backoff = Backoff(base=self._backoff_base)
        next_full = next_parks = 0.0
        while not self._closing:
            try:
                now = time.monotonic()
                if now >= next_full:
                    await self.reconcile()
                    self._ready.set()
                    # a park created right after this must not wait for the next full pass
                    next_full, next_parks = now + self._reconcile_s, now + self._park_poll_s
                elif self._fixed_parks is None and now >= next_parks:
                    new = set(await self._state.list_parks()) - set(self._plans)
                    if new:
                        await self.reconcile_parks(sorted(new))
                    next_parks = now + self._park_poll_s
                changed = await self._logs.changed(LOG_BLOCK_S)
                if changed:
                    await self.reconcile_parks(sorted(changed))
                backoff.reset()
            except StateError as exc:
                log.warning("cannot follow enrollments: %s", exc)
                await backoff.wait()
            except Exception:
                log.exception("following enrollments failed")
                await backoff.wait()

    # -- setpoints -----------------------------------------------------------

    def _target(self, park: str, asset_id: str) -> tuple[AdapterRoute, _Slot, AnyAdapter] | str:
        route = self._routes.get((park, asset_id))
        if route is None:
            return f"{asset_id} is not enrolled in {park} or no adapter serves it"
        slot = self._slots.get(route.key)
        if slot is None or slot.adapter is None:
            return f"adapter {route.key.label} is not running"
        return route, slot, slot.adapter

    async def send(
        self, park: str, setpoints: Mapping[str, float], *, hold_s: float
    ) -> dict[str, Confirmation]:
        """Send setpoints to the assets of a park, concurrently, and await their answers.

        Every call starts at once, taken from each adapter in turn (the first
        setpoint of every protocol and gateway leaves before the second of
        any), each bounded by its adapter's own concurrency and by
        ``send_timeout_s``; one slow adapter holds none of the others' calls,
        only this method's return.

        Args:
            park: the park id.
            setpoints: asset id -> power in kW (positive = draw from the grid).
            hold_s: how long each setpoint holds before the device reverts.

        A charger not connected to this replica's listener but to another
        live replica's is sent through that replica (`vpp.supervisor._remote`):
        its confirmation is the one that replica's listener gave (clamped
        there, ``rtt_s`` the charger's own round trip); no answer within
        ``send_timeout_s`` less a second for the way back is an unconfirmed
        one saying so. A charger no live replica holds is tried here (and is
        "charger not connected").

        Returns:
            One confirmation per asset id given. An unknown or unreachable
            asset, or a meter (:data:`adapters.modbus.METER_REFUSAL`: nothing
            is sent), gets an unconfirmed one with the reason; nothing raises
            per asset.
        """
        out: dict[str, Confirmation] = {}
        queues: dict[AdapterKey, list[tuple[str, float, _Slot, Coroutine[Any, Any, Confirmation]]]]
        queues = {}
        for asset_id, kw in setpoints.items():
            target = self._target(park, asset_id)
            if isinstance(target, str):
                out[asset_id] = _refused(asset_id, kw, target)
                self._observe(park, "none", out[asset_id])
                continue
            route, slot, adapter = target
            if route.meter:
                log.warning("setpoint for %s/%s refused: %s", park, asset_id, METER_REFUSAL)
                out[asset_id] = _refused(asset_id, kw, METER_REFUSAL)
                continue
            try:
                setpoint = Setpoint(asset_id=route.device_id, power_kw=kw, hold_s=hold_s)
            except ValueError as exc:  # not finite
                out[asset_id] = _refused(asset_id, kw, str(exc))
                self._observe(park, route.key.protocol.value, out[asset_id])
                continue
            call = (
                self._ocpp_apply(park, asset_id, adapter, setpoint)
                if isinstance(adapter, OcppCsmsAdapter)
                else adapter.apply(setpoint)
            )
            queues.setdefault(slot.key, []).append((asset_id, kw, slot, call))
        calls = [c for turn in zip_longest(*queues.values()) for c in turn if c is not None]
        works, late = await self._calls([(slot, call) for _, _, slot, call in calls])
        for (asset_id, kw, slot, _), work in zip(calls, works, strict=True):
            conf = self._outcome(park, asset_id, kw, work, work in late)
            self._observe(park, slot.key.protocol.value, conf)
            out[asset_id] = conf
        return {asset_id: out[asset_id] for asset_id in setpoints}

    def _outcome(
        self, park: str, asset_id: str, kw: float, work: asyncio.Task[Confirmation], late: bool
    ) -> Confirmation:
        """One setpoint's confirmation from its finished call, or one cut (``late``: for time)."""
        if late and (not work.done() or work.cancelled()):
            return _refused(asset_id, kw, f"no answer within {self._send_timeout} s")
        if work.cancelled():
            return _refused(asset_id, kw, str(_AdapterGone()))
        exc = work.exception()
        if exc is None:
            return replace(work.result(), asset_id=asset_id)
        if isinstance(exc, ValueError | UnknownAsset):
            return _refused(asset_id, kw, str(exc))
        if isinstance(exc, TimeoutError):
            return _refused(asset_id, kw, f"no answer within {self._send_timeout} s")
        log.error("setpoint for %s/%s failed", park, asset_id, exc_info=exc)
        return _refused(asset_id, kw, repr(exc))

    async def _calls(
        self, calls: list[tuple[_Slot, Coroutine[Any, Any, _T]]]
    ) -> tuple[list[asyncio.Task[_T]], set[asyncio.Task[_T]]]:
        """Run calls on slots' adapters at once, cut short by a stop.

        Each call is bounded in number by its slot's limit, and all of them
        in time by ``send_timeout_s`` (queueing included).

        Returns:
            Each call's task in the order given, done (a result or an
            exception) or cancelled (by a stop of its adapter, or for time);
            and the tasks cut for time (cancelled at the timeout and given a
            second to end).
        """

        async def limited(slot: _Slot, call: Coroutine[Any, Any, _T]) -> _T:
            async with slot.limit:
                return await call

        works: list[asyncio.Task[_T]] = []
        for slot, call in calls:
            work = asyncio.create_task(limited(slot, call), name=f"call-{slot.key.label}")
            slot.inflight.add(work)
            works.append(work)
        late: set[asyncio.Task[_T]] = set()
        if not works:
            return works, late
        try:
            _, late = await asyncio.wait(works, timeout=self._send_timeout)
        finally:
            for (slot, _), work in zip(calls, works, strict=True):
                slot.inflight.discard(work)
            pending = [w for w in works if not w.done()]
            for work in pending:
                work.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        return works, late

    async def _call(self, slot: _Slot, call: Coroutine[Any, Any, _T]) -> _T:
        """Run one call on a slot's adapter: bounded in number and time, cut short by a stop.

        Raises:
            TimeoutError: no result within ``send_timeout_s`` (queueing included).
            _AdapterGone: the adapter was stopped or rebuilt meanwhile.
        """
        (work,), late = await self._calls([(slot, call)])
        if late and (not work.done() or work.cancelled()):
            raise TimeoutError
        if work.cancelled():
            raise _AdapterGone
        return work.result()

    def _observe(self, park: str, protocol: str, conf: Confirmation) -> None:
        if self.metrics is not None:
            self.metrics.observe(park, protocol, conf)

    async def release(self, park: str, asset_ids: Iterable[str]) -> dict[str, bool]:
        """Hand assets back to their own behaviour, concurrently.

        Returns:
            asset id -> whether the device acknowledged (False for an unknown
            or unreachable asset, and for a meter: it has nothing to hand back).
        """
        async with asyncio.TaskGroup() as tg:
            tasks = {
                asset_id: tg.create_task(
                    self._release_one(park, asset_id), name=f"release-{park}-{asset_id}"
                )
                for asset_id in dict.fromkeys(asset_ids)
            }
        return {asset_id: task.result() for asset_id, task in tasks.items()}

    async def _release_one(self, park: str, asset_id: str) -> bool:
        target = self._target(park, asset_id)
        if isinstance(target, str):
            log.warning("release of %s/%s: %s", park, asset_id, target)
            return False
        route, slot, adapter = target
        if route.meter:
            log.warning("release of %s/%s: %s", park, asset_id, METER_REFUSAL)
            return False
        if isinstance(adapter, OcppCsmsAdapter):
            return await self._released(
                park, asset_id, slot, self._ocpp_release(park, asset_id, adapter, route.device_id)
            )
        return await self._released(park, asset_id, slot, adapter.release(route.device_id))

    async def _released(
        self, park: str, asset_id: str, slot: _Slot, call: Coroutine[Any, Any, bool]
    ) -> bool:
        """Run one release call on a slot: whether it was acknowledged (False on any failure)."""
        try:
            return await self._call(slot, call)
        except (UnknownAsset, TimeoutError, _AdapterGone) as exc:
            log.warning("release of %s/%s: %r", park, asset_id, exc)
        except Exception:
            log.exception("release of %s/%s failed", park, asset_id)
        return False

    # -- chargers connected to another replica ----------------------------------

    def _park_of_charger(self, cp_id: str) -> str | None:
        route = self._by_device.get((self._ocpp, cp_id))
        return None if route is None else route.park

    def _held_chargers(self) -> dict[str, set[str]]:
        """Park -> its charge points connected to this listener now (every park with chargers)."""
        slot = self._slots.get(self._ocpp)
        adapter = slot.adapter if slot is not None else None
        here = set(adapter.connected_chargers) if isinstance(adapter, OcppCsmsAdapter) else set()
        held: dict[str, set[str]] = {}
        for (key, cp_id), route in list(self._by_device.items()):
            if key == self._ocpp:
                held.setdefault(route.park, set()).update({cp_id} & here)
        return held

    async def _holder(self, park: str, adapter: OcppCsmsAdapter, cp_id: str) -> str | None:
        """The other live replica holding ``cp_id``'s websocket (None: call it here)."""
        if adapter.holds(cp_id):
            return None
        try:
            holder = await self._links.links.holder(park, cp_id)
        except StateError as exc:
            log.warning("charge point %s/%s: holder unknown: %s", park, cp_id, exc)
            return None
        return None if holder == self.replica_id else holder

    async def _ocpp_apply(
        self, park: str, asset_id: str, adapter: OcppCsmsAdapter, setpoint: Setpoint
    ) -> Confirmation:
        """A charger's setpoint: on this listener, or through the replica holding it."""
        holder = await self._holder(park, adapter, setpoint.asset_id)
        if holder is None:
            return await adapter.apply(setpoint)
        return await self._remote.setpoint(
            holder, park, asset_id, setpoint, timeout_s=self._remote_timeout
        )

    async def _ocpp_release(
        self, park: str, asset_id: str, adapter: OcppCsmsAdapter, cp_id: str
    ) -> bool:
        """A charger's release: on this listener, or through the replica holding it."""
        holder = await self._holder(park, adapter, cp_id)
        if holder is None:
            return await adapter.release(cp_id)
        return await self._remote.release(
            holder, park, asset_id, cp_id, timeout_s=self._remote_timeout
        )

    async def _serve_remote(self, request: RemoteRequest) -> Confirmation | bool:
        """Run another replica's call on this listener, exactly as a local one (never re-routed)."""
        slot = self._slots.get(self._ocpp)
        adapter = slot.adapter if slot is not None else None
        if slot is None or not isinstance(adapter, OcppCsmsAdapter):
            reason = f"the OCPP listener of replica {self.replica_id} is not running"
            if request.op == "release":
                log.warning("release of %s/%s: %s", request.park, request.asset_id, reason)
                return False
            return _refused(request.asset_id, request.kw, reason)
        if request.op == "release":
            return await self._released(
                request.park, request.asset_id, slot, adapter.release(request.device_id)
            )
        try:
            setpoint = Setpoint(
                asset_id=request.device_id, power_kw=request.kw, hold_s=request.hold_s
            )
        except ValueError as exc:
            return _refused(request.asset_id, request.kw, str(exc))
        (work,), late = await self._calls([(slot, adapter.apply(setpoint))])
        return self._outcome(request.park, request.asset_id, request.kw, work, work in late)

    # -- metrics -------------------------------------------------------------

    def _samples(self) -> list[AdapterSample]:
        now = time.time()
        return [slot.sample(now) for slot in list(self._slots.values())]


#: Where the service's runtime (`vpp.runtime.runtime_cleanup_ctx`) puts the running supervisor.
SUPERVISOR = web.AppKey("vpp.supervisor", Supervisor)
