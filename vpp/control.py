"""The closed-loop control of one park: events in, setpoints out, delivery measured.

Every cycle (``[control] period_s`` of the clock's time; 5 s in the service's
settings, :class:`vpp.settings.ControlSettings`) the loop

1. renews its lease (only the lease holder controls the park, so two service
   processes never fight over the devices);
2. moves events through their life cycle (received → scheduled → active →
   completed, or failed), and releases the devices of an event that ended or
   was cancelled;
3. for the active event, reads the live state, builds the portfolio of the
   assets that are flexible right now (`vpp.flex`), disaggregates what is
   left of the target from the current interval to the end of the event, and
   sends the current interval's setpoints through the `SetpointSink`;
4. measures the park: the mean measured power per interval against the
   baseline taken when the event became active, written into the event.

The baseline fixed at activation reaches ``[control] horizon_after_h`` past
the event's end, as far as the loop plans: what lies past the end is written
into the event as its `vpp.events.model.ReboundBaseline`, so the event's
report can count the rebound after it (`vpp.events.rebound`) against the
event's own baseline method.

Targets are kept as *absolute* park power: ``baseline[k] + target[k]``. The
portfolio is rebuilt every cycle from live state, so its own baseline moves
(an EV held back has more left to charge); the deviation handed to the
disaggregator is the absolute goal minus the uncontrolled part minus the
portfolio's current baseline, so what the park delivers is always measured
against the baseline fixed at activation, never a moving one.

Re-allocation: an asset that drops out (its telemetry aged out, it reports
itself unavailable, a vehicle left) is not in the next cycle's portfolio, so
the others take its share. An asset that stays away from its setpoint for two
cycles in a row does not follow: it is recognised once (a log line and
``vpp_control_not_following_total``) and held at its measured power for the
rest of the event, so its shortfall moves to the others and its setpoint no
longer flips between the plan and its real draw.

Honest delivery: no kW is credited without a change in measured power. Each
asset's baseline is anchored on what was measured when the event became
active: an EV's baseline charges at the rate its vehicle drew then (never the
charger's nameplate), every other asset's is its measured draw (not a
battery's assumed idle nor a load's enrolled baseline) under every method, and
a load's shed debt is counted against that draw. Under ``model`` (and for the
anchors that steer the devices under a historical method) a flexible load's
and a PV array's baseline keeps that measured level and takes its shape over
the event from the park's latest forecast (`_shaped`: a load moves at most
±20 % from its measured draw, as NYISO caps its CBL adjustment; PV scales by
its measured share of the forecast); without a forecast it is held flat. An asset with no reading at
activation (or a charger with no vehicle) has no anchor: its first reading
(its vehicle's arrival) anchors its baseline for the rest of the event, and
the event's ``baseline_kw`` is updated, so it earns no delivery for appearing
and a vehicle that would have charged anyway is not held against the park.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np

import dispatch as dx
from adapters.lifecycle import BackgroundService
from adapters.types import Confirmation
from vpp.clock import Clock
from vpp.errors import NotFound
from vpp.events import EventRecord, EventState, EventStore
from vpp.events.model import BaselineInfo, EnterpriseTrack, ReboundBaseline, SeriesBaselines
from vpp.flex import PortfolioView, build_view, forecast_at, grid_at, nominal_kw
from vpp.forecast import ForecastStore
from vpp.history.baselines import HistoricalMethod
from vpp.lease import Lease
from vpp.metrics import Metrics
from vpp.model import (
    Asset,
    BaselineMethod,
    FlexibleLoad,
    LiveState,
    Meter,
    Park,
    Pv,
    revenue_meters,
)
from vpp.scopes import (
    LIVE_METHODS,
    LIVE_NOTES,
    Scope,
    ScopeBaselines,
    historical_bases,
    metered_live_base,
    metered_scopes,
    telemetry_kw,
)
from vpp.settings import ControlSettings
from vpp.state import State
from vpp.supervisor import SetpointSink

__all__ = ["ControlLoop"]

log = logging.getLogger("vpp.control")

#: asset id -> its live state (None where it aged out)
_Live = dict[str, LiveState | None]


@dataclass
class _Running:
    """What the loop remembers about the event it is delivering."""

    event_id: str
    #: each device's anchored baseline (kW per event interval, then ``after``
    #: intervals past the end): the control's reference for shed debts, late
    #: anchors and the devices' own scopes
    base_by_asset: dict[str, np.ndarray]
    #: what is measured against which baseline (`vpp.scopes`)
    scopes: list[Scope]
    #: intervals past the event's end the baselines reach (its rebound window)
    after: int = 0
    #: the longest rebound of the park's flexible loads at activation, minutes
    load_rebound_minutes: float = 0.0
    #: why the baseline past the end is not known (the history cannot serve it), or ""
    rebound_note: str = ""
    #: the park's baseline per interval (the sum of the scopes')
    park_base: np.ndarray = field(init=False)
    sums: dict[int, float] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    #: enterprise -> interval -> summed measured kW (the same counts as ``sums``)
    owner_sums: dict[str, dict[int, float]] = field(default_factory=dict)
    #: enterprise -> interval -> summed telemetry kW of its devices
    telemetry_sums: dict[str, dict[int, float]] = field(default_factory=dict)
    #: asset -> (kW sent, wall time the value changed, wall time last sent)
    sent: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    #: assets a setpoint was handed over for (released at the end, confirmed or not)
    handed: set[str] = field(default_factory=set)
    strikes: dict[str, int] = field(default_factory=dict)
    shed_debt: dict[str, float] = field(default_factory=dict)
    #: charger or load id -> what it drew when the event became active (kW)
    uncontrolled: dict[str, float] = field(default_factory=dict)
    #: assets with no reading yet in this event: counted at their baseline
    unanchored: set[str] = field(default_factory=set)
    #: assets recognised as not following their setpoints in this event
    not_following: set[str] = field(default_factory=set)
    #: when the event was due to act (its receipt or its start, whichever came later;
    #: service clock), until its first send is answered
    due: datetime | None = None

    def __post_init__(self) -> None:
        self.sum_base()

    def sum_base(self) -> None:
        """Recompute the park's baseline from the scopes'."""
        self.park_base = np.sum([s.baseline(self.base_by_asset) for s in self.scopes], axis=0)

    def owner_base(self) -> dict[str, np.ndarray]:
        """Each enterprise's baseline per interval (the sum of its scopes')."""
        out: dict[str, np.ndarray] = {}
        for scope in self.scopes:
            base = scope.baseline(self.base_by_asset)
            out[scope.owner] = out[scope.owner] + base if scope.owner in out else base.copy()
        return out

    def cover(self, n: int) -> None:
        """Grow the baselines to ``n`` intervals and ``after`` past them (an extended event).

        What was fixed at activation is kept: the new intervals take the
        baseline fixed past the old end, and beyond that each baseline is held
        at its last value (nothing else in this state is per interval, so shed
        debts, setpoints and sums carry on).
        """
        n += self.after
        if len(self.park_base) >= n:
            return
        for asset_id, base in self.base_by_asset.items():
            self.base_by_asset[asset_id] = np.pad(base, (0, n - len(base)), mode="edge")
        for scope in self.scopes:
            scope.cover(n)
        self.sum_base()

    def write_rebound(self, record: EventRecord, owner_base: Mapping[str, np.ndarray]) -> None:
        """Write the baseline past the record's end into it (park and tracks, kW).

        Args:
            record: the event, its targets as they stand (its end is where the
                rebound baseline starts).
            owner_base: each enterprise's baseline (`owner_base`).
        """
        n = len(record.target_kw)
        record.rebound = ReboundBaseline(
            start=record.end,
            baseline_kw=self._past_end(self.park_base, n),
            load_rebound_minutes=self.load_rebound_minutes,
            note=self.rebound_note,
        )
        for owner, track in record.enterprises.items():
            if owner in owner_base:
                track.rebound_baseline_kw = self._past_end(owner_base[owner], n)

    def series_baselines(self, record: EventRecord) -> SeriesBaselines:
        """Each device scope's baseline over the event and past its end (beside the record)."""
        n = len(record.target_kw)

        def values(base: np.ndarray) -> list[float | None]:
            return [round(float(v), 3) for v in base[:n]] + self._past_end(base, n)

        return SeriesBaselines(
            start=record.start,
            baseline_kw={
                scope.id: values(scope.baseline(self.base_by_asset))
                for scope in self.scopes
                if scope.meter is None
            },
        )

    def _past_end(self, base: np.ndarray, n: int) -> list[float | None]:
        """A baseline's ``after`` intervals past the event's ``n``, as stored (None: not known)."""
        return [None if self.rebound_note else round(float(v), 3) for v in base[n : n + self.after]]


class _Activation:
    """The write of an event that became active in this cycle, run once (`_activate`)."""

    def __init__(self, write: Callable[[], Awaitable[EventRecord]]) -> None:
        self._write = write
        self.tried = False
        self.record: EventRecord | None = None

    async def __call__(self) -> None:
        """Write the activation (the first call only; raises what the write raises)."""
        if not self.tried:
            self.tried = True
            self.record = await self._write()


#: kinds whose envelope is laid around what they drew when the event started
_ANCHORED_KINDS = ("ev_charger", "flexible_load")


def _draws(assets: list[Asset], live: _Live) -> dict[str, float]:
    """Load or charger (with a vehicle) id -> its measured draw (kW), where it has a reading."""
    out: dict[str, float] = {}
    for asset in assets:
        reading = live.get(asset.id)
        if reading is None or asset.kind not in _ANCHORED_KINDS:
            continue
        if asset.kind == "flexible_load" or reading.ev_connected:
            out[asset.id] = reading.power_kw
    return out


#: How far the forecast may move a load's baseline from its measured draw at
#: activation, as a share of that draw: NYISO's weather-sensitive CBL caps its
#: in-day adjustment at ±20 % (NYISO Emergency Demand Response Program Manual,
#: customer baseline load), so a forecast never credits more than that.
LOAD_SHAPE_CAP = 0.2

#: Below this share of its rating a PV array's forecast at activation is too
#: small to scale by (dawn, dusk, night): the forecast's change is added instead.
PV_RATIO_FLOOR = 0.05


def _shaped(
    asset: FlexibleLoad | Pv, measured_kw: float, curve: np.ndarray, at_activation: float
) -> np.ndarray:
    """The ``model`` baseline of a load or PV array: level measured, shape forecast (kW).

    Every rule keeps the first interval at the measured power when the
    forecast at activation is known, so nothing is credited for the forecast
    alone at the start (the honest-delivery rule of the module docstring):

    * a flexible load: ``measured × clip(forecast[k] / forecast(now), 0.8, 1.2)``
      (`LOAD_SHAPE_CAP`); held at the measurement where either is unknown or
      the forecast at activation is not positive;
    * PV (power negative = generation): generation ``measured ×
      forecast[k] / forecast(now)`` (the measured clear-sky index carried
      over the event), capped at the rating; when the forecast at activation
      is below `PV_RATIO_FLOOR` of the rating, the measured power plus the
      forecast's change since activation; held at the measurement where the
      forecast is unknown.
    """
    n = len(curve)
    flat = np.full(n, measured_kw)
    known = np.isfinite(curve)
    if not np.isfinite(at_activation) or not np.any(known):
        return flat
    if isinstance(asset, FlexibleLoad):
        if at_activation <= 0:
            return flat
        ratio = np.clip(curve / at_activation, 1 - LOAD_SHAPE_CAP, 1 + LOAD_SHAPE_CAP)
        return np.where(known, measured_kw * ratio, flat)
    gen_now, gen = max(-measured_kw, 0.0), -curve
    ref = -at_activation
    if ref >= PV_RATIO_FLOOR * asset.rated_kw:
        shaped = -np.clip(gen_now * gen / ref, 0.0, asset.rated_kw)
    else:
        shaped = -np.clip(gen_now + (gen - ref), 0.0, asset.rated_kw)
    return np.where(known, shaped, flat)


class ControlLoop(BackgroundService):
    """The control loop of one park.

    Use as ``async with ControlLoop(...) as loop:``; entering starts the cycles
    (the task ``control-{park}``), leaving lets the running cycle finish, then
    releases every device the loop drives and gives its lease up. `cycle`
    runs one cycle by hand (the caller holds the lease).

    Args:
        park: the park id.
        state: the Redis state.
        events: the event store.
        sink: where setpoints go.
        clock: the (possibly compressed) clock.
        settings: tuning.
        metrics: the service metrics (optional).
        owner: the lease owner id (random when omitted; the replica id,
            `vpp.replicas.replica_id`, in the service).
        shared_lease: the lease is taken and given back by the replica's
            `vpp.replicas.ParkShares` (owner: the replica id): the loop only
            renews it before each cycle (never takes it, so it cannot race the
            shares) and leaves it held when it stops. False: the loop takes
            the lease itself and gives it up when it stops.
    """

    # Leaving waits for the cycle to end and the devices to be released (each
    # release is bounded by the sink's own timeouts), never cuts them short.
    _stop_grace_s = None

    def __init__(
        self,
        *,
        park: str,
        state: State,
        events: EventStore,
        sink: SetpointSink,
        clock: Clock,
        settings: ControlSettings | None = None,
        metrics: Metrics | None = None,
        owner: str | None = None,
        shared_lease: bool = False,
    ) -> None:
        self.park = park
        self.state = state
        self.events = events
        self.sink = sink
        self.clock = clock
        self.settings = settings or ControlSettings()
        self.metrics = metrics
        self.lease = Lease(
            state.redis,
            state.park(park).control_lease,
            ttl_s=self.settings.lease_ttl_s,
            owner=owner,
        )
        self.shared_lease = shared_lease
        self._running: dict[str, _Running] = {}
        self._abandoned = False
        self._wake = asyncio.Event()
        #: wakes whose cycle has not started yet, and those of the running cycle
        self._woken: list[asyncio.Future[None]] = []
        self._acting: list[asyncio.Future[None]] = []
        self._last_view: tuple[_Live, object, PortfolioView] | None = None
        #: sends handed to the sink whose confirmations are not all in yet
        self._sending: set[asyncio.Future[dict[str, Confirmation]]] = set()
        #: asset id -> kW of a send still waiting for its confirmation
        self._in_flight: dict[str, float] = {}
        self.cycles = 0
        #: the earliest start of a scheduled event at the last cycle (simulated time)
        self._next_start: datetime | None = None
        self._task_name = f"control-{park}"

    def wake(self) -> asyncio.Future[None]:
        """Run the next cycle now (an event arrived, changed or was cancelled).

        Returns:
            A future done once that cycle has handed its setpoints to the
            sink, or has ended without any (or once this loop saw it does not
            hold the park's lease): a caller with work of its own to do (the
            events API's estimate) can let the cycle have the CPU until then.
        """
        acted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._woken.append(acted)
        self._wake.set()
        return acted

    @staticmethod
    def _resolve(futures: list[asyncio.Future[None]]) -> None:
        for future in futures:
            if not future.done():
                future.set_result(None)
        futures.clear()

    # -- the loop ----------------------------------------------------------

    async def _run(self) -> None:
        """Run cycles until the context is left (or cancelled); release at the end."""
        try:
            while not self._closing and not self._abandoned:
                started = time.monotonic()
                try:
                    if await self._hold_lease():
                        self._gauge_leader(1)
                        await self.cycle()
                    else:
                        self._gauge_leader(0)
                        self._let_go()
                        self._resolve(self._woken)  # another process acts on it
                except Exception:
                    log.exception("park %s: control cycle failed", self.park)
                if self.metrics is not None:
                    self.metrics.control_cycle_seconds.labels(self.park).observe(
                        time.monotonic() - started
                    )
                pause = max(0.0, self.clock.real_seconds(self.settings.period_s))
                pause -= time.monotonic() - started
                await self._pause(max(pause, 0.01))
        finally:
            self._resolve(self._acting)
            self._resolve(self._woken)
            for sending in list(self._sending):
                sending.cancel()
            if self._abandoned:
                self._let_go()
            await self._release_all()
            if not self.shared_lease:
                with contextlib.suppress(Exception):
                    await self.lease.release()
            self._gauge_leader(0)

    async def _hold_lease(self) -> bool:
        """Whether this loop may run a cycle: it holds the park's lease (taken or renewed now)."""
        if self._abandoned:
            return False
        if self.shared_lease:
            return await self.lease.renew()
        return await self.lease.acquire()

    def delivering(self, within_s: float = 0.0) -> bool:
        """Whether an event runs here, or one starts within ``within_s`` real seconds.

        The scheduled starts are those seen at the last cycle; the park shares
        (`vpp.replicas.ParkShares`) give back only a park that is not delivering.
        """
        if self._running:
            return True
        if self._next_start is None:
            return False
        ahead_s = (self._next_start - self.clock.now()).total_seconds()
        return self.clock.real_seconds(ahead_s) <= within_s

    def abandon(self) -> None:
        """The park's lease was lost to another replica: stop sending anything to its devices.

        No further cycle runs, the devices the loop drove are not released
        (the new holder drives them now; a release from here would fight its
        setpoints), and leaving the context (which the caller does next)
        cancels a running cycle at once, its setpoints in flight with it,
        instead of letting it finish.
        """
        self._abandoned = True
        self._stop_grace_s = 0.0
        self._let_go()
        self._wake.set()

    def _let_go(self) -> None:
        """Forget the running events without releasing their devices (another holder has them)."""
        if self._running:
            log.warning(
                "park %s: lease lost; its %d running events are left to the new holder",
                self.park, len(self._running),
            )  # fmt: skip
            for event_id in self._running:
                self._gauge_event(event_id, None)
            self._running.clear()

    async def _pause(self, seconds: float) -> None:
        """Wait until the next cycle is due, the context is left or someone calls `wake`."""
        try:
            await self._wait_closing(seconds, self._wake.wait())
        finally:
            self._wake.clear()

    async def cycle(self) -> None:
        """One control cycle (the caller holds the lease)."""
        self.cycles += 1
        self._acting.extend(self._woken)  # the wakes this cycle answers
        self._woken.clear()
        try:
            now = self.clock.now()
            open_events = await self.events.open_events(self.park)
            active_ids = {e.id for e in open_events if e.state is EventState.ACTIVE}
            for event_id in [i for i in self._running if i not in active_ids]:
                await self._release(event_id)  # cancelled (or taken over) since the last cycle
            for i, event in enumerate(open_events):
                # later events are checked for overlap against this one's new state
                open_events[i] = await self._advance(event, now, open_events)
            starts = [e.start for e in open_events if e.state is EventState.SCHEDULED]
            self._next_start = min(starts, default=None)
            self._resolve(self._acting)
            await self._confirmations()
        finally:
            self._resolve(self._acting)

    # -- life cycle --------------------------------------------------------

    async def _advance(
        self, event: EventRecord, now: datetime, others: list[EventRecord]
    ) -> EventRecord:
        if event.state is EventState.RECEIVED:
            reason = self._unschedulable(event, now, others)
            if reason:
                return await self._move(event, EventState.FAILED, now, reason)
            event = await self._move(event, EventState.SCHEDULED, now)
        lead = timedelta(
            seconds=max(
                self.settings.lead_periods * self.settings.period_s,
                self.clock.time_scale * 2 * self.settings.settle_s,  # devices need real seconds
            )
        )
        if event.state not in (EventState.SCHEDULED, EventState.ACTIVE):
            return event
        if event.state is EventState.SCHEDULED and now < event.start - lead:
            return event
        if event.state is EventState.ACTIVE and now >= event.end:
            return await self._finish(event, now)
        # one read of the registry and the live state serves activation and delivery
        assets, meters, live = await self._read()
        if event.state is EventState.SCHEDULED:
            activation = await self._activate(event, now, assets, meters, live)
            if isinstance(activation, EventRecord):
                return activation  # failed: nothing flexible
            # the first setpoints go out before the activation is written
            return await self._deliver(event, now, assets, meters, live, activation)
        if event.state is EventState.ACTIVE:
            await self._deliver(event, now, assets, meters, live)
        return event

    def _unschedulable(self, event: EventRecord, now: datetime, others: list[EventRecord]) -> str:
        if now >= event.end:
            return "the event window had passed when it was received"
        for other in others:
            if other.id == event.id or other.state not in (EventState.SCHEDULED, EventState.ACTIVE):
                continue
            if other.start < event.end and event.start < other.end:
                return f"overlaps event {other.id}, which is {other.state.value}"
        return ""

    async def _move(
        self, event: EventRecord, to: EventState, now: datetime, reason: str | None = None
    ) -> EventRecord:
        record = await self.events.transition(self.park, event.id, to, now, reason)
        if self.metrics is not None:
            self.metrics.events_total.labels(self.park, to.value).inc()
        return record

    async def _activate(
        self,
        event: EventRecord,
        now: datetime,
        assets: list[Asset],
        meters: list[Meter],
        live: _Live,
    ) -> EventRecord | _Activation:
        """Decide what the loop keeps of an event becoming active (`_start`).

        Returns:
            The failed record when nothing is flexible; else the step that
            writes the activation (the record's baselines and tracks, the
            devices' series baselines, the metric, the log line), which
            `_deliver` runs right after the event's first setpoints are sent:
            none of it is needed to compute or send them.
        """
        view = self._view(assets, live, self._grid(event, 0), None, _draws(assets, live))
        if view.portfolio is None:
            return await self._move(event, EventState.FAILED, now, "no flexible asset online")
        running, info, tracks = await self._start(event, now, view, assets, meters, live)
        running.due = max(event.created, event.start)
        earlier = self._running.get(event.id)
        if earlier is not None:
            # an activation whose write failed: the devices it commanded stay released at the end
            running.sent.update({a: v for a, v in earlier.sent.items() if a not in running.sent})
        self._running[event.id] = running
        included, left_out = len(view.assets), len(view.excluded)

        def fill(record: EventRecord) -> None:
            running.cover(len(record.target_kw))  # extended since this cycle read it
            n = len(record.target_kw)
            record.baseline_kw = [round(float(v), 3) for v in running.park_base[:n]]
            record.baseline = info
            record.enterprises = tracks
            owner_base = running.owner_base()
            for owner, base in owner_base.items():
                tracks[owner].baseline_kw = [round(float(v), 3) for v in base[:n]]
                tracks[owner].measured_kw = [None] * n
                tracks[owner].telemetry_kw = [None] * n
            running.write_rebound(record, owner_base)
            record.transition(EventState.ACTIVE, now)

        async def write() -> EventRecord:
            # raises when the event is not to be active after all (cancelled meanwhile):
            # it stays among the running ones, so the next cycle releases its devices
            record = await self.events.update(self.park, event.id, fill)
            await self.events.put_series_baselines(
                self.park, event.id, running.series_baselines(record)
            )
            if self.metrics is not None:
                self.metrics.events_total.labels(self.park, "active").inc()
            log.info(
                "park %s: event %s active with %d flexible assets (%d left out); baseline %s",
                self.park, event.id, included, left_out, info.note,
            )  # fmt: skip
            return record

        return _Activation(write)

    async def _park(self) -> Park:
        """The park's metadata (defaults when it has none stored)."""
        try:
            return await self.state.get_park(self.park)
        except NotFound:
            return Park(id=self.park)

    async def _start(
        self,
        event: EventRecord,
        now: datetime,
        view: PortfolioView,
        assets: list[Asset],
        meters: list[Meter],
        live: _Live,
    ) -> tuple[_Running, BaselineInfo, dict[str, EnterpriseTrack]]:
        """What the loop remembers of an event from the reading at its activation.

        Decides the event's scopes (`vpp.scopes`) and its baseline method:
        the event's own, else the park's; a historical method the history
        cannot serve falls back to the park's ``baseline.fallback``, and the
        returned `BaselineInfo` says why.
        """
        park = await self._park()
        requested: BaselineMethod = event.baseline_method or park.baseline_method
        metered, singles = metered_scopes(assets, revenue_meters(meters), live)
        scopes = metered + singles
        tracks = {
            s.owner: EnterpriseTrack(meter=s.meter) for s in sorted(scopes, key=lambda s: s.owner)
        }
        for scope in scopes:
            tracks[scope.owner].series.append(scope.id)
        n, after = len(event.target_kw), self._after(event)
        method, reason, note, rebound_note = requested, None, "", ""
        if requested == "similar_days" or requested == "high_x_of_y":
            outcome = await historical_bases(
                self.state, self.events, park, scopes, requested,
                start=event.start, interval_s=event.interval_s, n=n, now=now,
            )  # fmt: skip
            if isinstance(outcome, str):
                method, reason = park.baseline.fallback, outcome
                log.warning(
                    "park %s: event %s falls back to the %s baseline: %s",
                    self.park, event.id, method, reason,
                )  # fmt: skip
            else:
                note = outcome.note
                rebound_note = await self._past_end(park, scopes, requested, event, now, outcome)
                for owner, track in tracks.items():
                    track.baseline_source = outcome.source[owner]
                    track.days = outcome.days[owner]
                    track.adjustment = outcome.adjustment[owner]
        live_method = method if method in LIVE_METHODS else "model"
        shapes = await self._forecast_shapes(event, now, assets, n + after, live_method)
        anchors = self._baselines(view, assets, live_method, n + after, shapes)
        if method in LIVE_METHODS:
            note = LIVE_NOTES[method]
            for scope in metered:
                scope.base = metered_live_base(scope, anchors, view.measured_kw, live, n + after)
        info = BaselineInfo(requested=requested, method=method, fallback_reason=reason, note=note)
        rebound_minutes = [a.rebound_minutes for a in assets if isinstance(a, FlexibleLoad)]
        running = _Running(
            event.id, anchors, scopes, after, max(rebound_minutes, default=0.0), rebound_note
        )
        # no reading, or (a charger) no vehicle to anchor on yet
        rows = {a.id for a in view.assets}
        running.unanchored = {
            a.id
            for a in assets
            if a.id not in view.measured_kw or (a.kind == "ev_charger" and a.id not in rows)
        }
        running.uncontrolled = {
            a.id: view.measured_kw[a.id]
            for a in assets
            if a.kind in _ANCHORED_KINDS and a.id not in running.unanchored
        }
        return running, info, tracks

    async def _past_end(
        self,
        park: Park,
        scopes: list[Scope],
        method: HistoricalMethod,
        event: EventRecord,
        now: datetime,
        own: ScopeBaselines,
    ) -> str:
        """Give each scope its historical baseline over the event and `_after` intervals past it.

        The event's part is ``own``, computed for the event alone (a high X of
        Y ranks its days on the event's hours); past the end it is the same
        method over the event and the hours after it, with the same same-day
        adjustment window.

        Returns:
            Why the baseline past the end is not known (the history cannot
            serve it; each scope is then held at its last value, for an
            extension's sake), or "".
        """
        n, after = len(event.target_kw), self._after(event)
        past = await historical_bases(
            self.state, self.events, park, scopes, method,
            start=event.start, interval_s=event.interval_s, n=n + after, now=now,
        )  # fmt: skip
        for scope in scopes:
            event_kw = own.kw[scope.id]
            tail = event_kw[-1:] if isinstance(past, str) else past.kw[scope.id][n:]
            scope.base = np.concatenate([event_kw, np.broadcast_to(tail, after)])
        if isinstance(past, str):
            return f"the history cannot serve the baseline past the end: {past}"
        return ""

    async def _forecast_shapes(
        self, event: EventRecord, now: datetime, assets: list[Asset], k: int, method: str
    ) -> dict[str, tuple[np.ndarray, float]]:
        """Flexible load or PV id -> (its forecast over ``k`` event intervals, at ``now``), kW.

        From the park's latest forecast (`vpp.forecast.ForecastStore`), for the
        ``model`` method only; empty when none is stored. NaN where the
        forecast does not know an interval.
        """
        if method != "model":
            return {}
        ids = [a.id for a in assets if isinstance(a, FlexibleLoad | Pv)]
        forecast = await ForecastStore(self.state).latest(self.park) if ids else None
        if forecast is None:
            return {}
        grid = grid_at(event.start, k, event.interval_s // 60)
        curves = forecast.on_grid_many(ids, grid)
        edges = forecast.slot_edges()
        return {
            a: (curves[i], forecast_at(forecast, a, now, edges))
            for i, a in enumerate(ids)
            if a in forecast.series
        }

    def _baselines(
        self,
        view: PortfolioView,
        assets: list[Asset],
        method: str,
        k: int,
        shapes: Mapping[str, tuple[np.ndarray, float]] | None = None,
    ) -> dict[str, np.ndarray]:
        """Per-device baseline (anchor) over ``k`` intervals from the event's start.

        ``model``: a plugged-in EV follows its envelope's forecast, which
        charges its remaining need at the rate its vehicle drew (see
        `vpp.flex.build_view`), so it falls to zero when the need is met; a
        flexible load or a PV array with a reading at activation and a
        forecast (``shapes``, `_forecast_shapes`) takes its shape from the
        forecast and its level from the measurement (`_shaped`); every other
        asset is held at its measured power (a battery's "idle" or a load's
        enrolled baseline is a guess, and crediting against a guess credits
        kW no device moved). ``pre_event``: every asset at its measured power
        just before the event (real-time response), held flat.
        Under a historical method the anchors are the ``model`` ones: they
        steer the devices (shed debts, late readings), while delivery is
        measured against the history's baseline. ``k`` reaches past the event's
        end (no further than ``view``'s grid), for its rebound window.
        """
        out: dict[str, np.ndarray] = {}
        if method == "model" and view.portfolio is not None:
            for row, asset in enumerate(view.assets):
                if asset.kind == "ev_charger":
                    out[asset.id] = view.portfolio.baseline[row, :k].copy()
        if method == "model":
            for asset in assets:
                shape = (shapes or {}).get(asset.id)
                measured = view.measured_kw.get(asset.id)
                if shape is not None and measured is not None and asset.id not in out:
                    assert isinstance(asset, FlexibleLoad | Pv)
                    out[asset.id] = _shaped(asset, measured, shape[0][:k], shape[1])
        for asset in assets:
            if asset.id not in out:
                out[asset.id] = np.full(k, view.measured_kw.get(asset.id, nominal_kw(asset)))
        return out

    async def _finish(self, event: EventRecord, now: datetime) -> EventRecord:
        await self._release(event.id)
        record = await self._move(event, EventState.COMPLETED, now)
        self._gauge_event(event.id, None)
        return record

    async def _release(self, event_id: str) -> None:
        running = self._running.pop(event_id, None)
        if running is None:
            return
        commanded = set(running.sent) | running.handed
        if not commanded:
            return
        acked = await self.sink.release(self.park, sorted(commanded))
        missing = [a for a, ok in acked.items() if not ok]
        if missing:
            log.warning("park %s: %d assets did not acknowledge release", self.park, len(missing))
        log.info("park %s: released %d assets of event %s", self.park, len(acked), event_id)
        self._gauge_event(event_id, None)

    async def _release_all(self) -> None:
        for event_id in list(self._running):
            with contextlib.suppress(Exception):
                await self._release(event_id)

    # -- delivery ----------------------------------------------------------

    async def _deliver(
        self,
        event: EventRecord,
        now: datetime,
        assets: list[Asset],
        meters: list[Meter],
        live: _Live,
        activation: _Activation | None = None,
    ) -> EventRecord:
        """Send this cycle's setpoints, then measure the park and write what it measured.

        In order: what the setpoints need (the view, late anchors, the park's
        power so far in this interval, which the goal's correction uses, the
        solve), the send, then everything else: ``activation`` (the write of
        an event that became active in this cycle, `_activate`), the shed-debt
        bookkeeping, the event record's measured and delivered kW, the gauges.

        Returns:
            The event as it stands after the cycle (active when ``activation`` ran).
        """
        try:
            await self._deliver_now(event, now, assets, meters, live, activation)
        finally:
            # whatever became of the send, an activation is written (once)
            if activation is not None:
                await activation()
        if activation is not None and activation.record is not None:
            return activation.record
        return event

    async def _deliver_now(
        self,
        event: EventRecord,
        now: datetime,
        assets: list[Asset],
        meters: list[Meter],
        live: _Live,
        activation: _Activation | None,
    ) -> None:
        running = self._running.get(event.id)
        if running is None:  # taken over from another worker mid-event
            # (the draws now are under control already: the best anchor left;
            # a historical baseline is computed again from the same history)
            view0 = self._view(assets, live, self._grid(event, 0), None, _draws(assets, live))
            running, _, _ = await self._start(event, now, view0, assets, meters, live)
            await self._resume(running, event, now, {a.id: a.kind for a in assets})
            self._running[event.id] = running
        running.cover(len(event.target_kw))  # an event extended in place keeps its state
        measuring = now >= event.start
        k = event.interval_at(max(now, event.start))
        if k is None:
            return
        step = timedelta(seconds=event.interval_s)
        grid = self._grid(event, k)
        view = self._view(assets, live, grid, running.shed_debt, running.uncontrolled)

        kinds = {a.id: a.kind for a in assets}
        reanchored = self._anchor_late(running, view, k, kinds)
        # measure the park, scope by scope: live power where fresh, the baseline where silent
        # (the sum so far in this interval is what the goal's correction needs; the
        # rest of the measurement is summed after the send)
        measured = 0.0
        values: list[tuple[Scope, float, float]] = []
        for scope in running.scopes:
            if scope.meter is None and scope.id not in kinds:
                continue  # retired mid-event
            base_k = float(scope.baseline(running.base_by_asset)[k])
            now_kw = scope.now_kw(view.measured_kw, live)
            value = base_k if now_kw is None else now_kw
            measured += value
            values.append((scope, base_k, value))
        if measuring:
            running.sums[k] = running.sums.get(k, 0.0) + measured
            running.counts[k] = running.counts.get(k, 0) + 1
        mean = running.sums[k] / running.counts[k] if running.counts.get(k) else measured
        base_k = float(running.park_base[k])
        delivered_k = mean - base_k

        setpoints: dict[str, float] = {}
        if view.portfolio is not None:
            pf = self._pin_under_deliverers(view, running, live)
            goal = self._deviation_goal(event, k, now, step, view, running, pf, delivered_k, live)
            started = time.monotonic()
            result = await asyncio.to_thread(
                dx.disaggregate, pf, goal, 0, time_limit_s=self.settings.time_limit_s
            )
            solve_s = time.monotonic() - started
            setpoints = {a.id: float(result.setpoints_kw[i, 0]) for i, a in enumerate(view.assets)}
            await self._send(running, setpoints)
            if self.metrics is not None:
                self.metrics.solver_seconds.labels("disaggregate").observe(solve_s)
        # -- after the send: nothing below changes this cycle's setpoints
        if activation is not None:
            await activation()
        self._track_debt(running, view, assets, k)
        by_kind: dict[str, float] = {}
        by_owner: dict[str, float] = {}
        telemetry: dict[str, float] = {}
        for scope, base_k, value in values:
            by_kind[scope.kind] = by_kind.get(scope.kind, 0.0) + value - base_k
            by_owner[scope.owner] = by_owner.get(scope.owner, 0.0) + value
            # a device scope is its telemetry; a meter's devices are summed beside it
            devices = value
            if scope.meter is not None:
                devices = telemetry_kw(scope, view.measured_kw, running.base_by_asset, k)
            telemetry[scope.owner] = telemetry.get(scope.owner, 0.0) + devices
        if not measuring:
            return
        for owner, value in by_owner.items():
            sums = running.owner_sums.setdefault(owner, {})
            sums[k] = sums.get(k, 0.0) + value
            tele = running.telemetry_sums.setdefault(owner, {})
            tele[k] = tele.get(k, 0.0) + telemetry[owner]

        rewrote = False

        def record(r: EventRecord) -> None:
            nonlocal rewrote
            running.cover(len(r.target_kw))
            count = running.counts[k]
            # a late anchor moves the whole baseline; an extension adds intervals;
            # a resize moves the end the rebound baseline starts at
            moved = [t for t in range(len(r.target_kw)) if reanchored or r.baseline_kw[t] is None]
            stale = r.rebound is None or r.rebound.start != r.end
            owner_base = running.owner_base() if moved or stale else {}
            rewrote = bool(moved) or stale
            if rewrote:
                running.write_rebound(r, owner_base)
            for t in moved:
                r.baseline_kw[t] = round(float(running.park_base[t]), 3)
                for owner, track in r.enterprises.items():
                    if owner in owner_base:
                        track.baseline_kw[t] = round(float(owner_base[owner][t]), 3)
            r.measured_kw[k] = round(mean, 3)
            r.delivered_kw[k] = round(delivered_k, 3)
            r.shortfall_kw[k] = round(r.target_kw[k] - delivered_k, 3)
            for owner, track in r.enterprises.items():
                if owner in running.owner_sums:
                    track.measured_kw[k] = round(running.owner_sums[owner][k] / count, 3)
                    track.telemetry_kw[k] = round(running.telemetry_sums[owner][k] / count, 3)

        updated = await self.events.update(self.park, event.id, record)
        if rewrote:
            baselines = running.series_baselines(updated)
            await self.events.put_series_baselines(self.park, event.id, baselines)
        perf = self._performance(event, k, delivered_k)
        self._gauge_event(event.id, (event.target_kw[k], delivered_k, perf))
        if self.metrics is not None:
            for kind, value in by_kind.items():
                self.metrics.delivered_by_kind.labels(self.park, kind).set(value)

    async def _resume(
        self, running: _Running, event: EventRecord, now: datetime, kinds: Mapping[str, str]
    ) -> None:
        """Carry on an event another worker ran (its replica died): from its stored state.

        The baselines fixed at activation are the stored ones (each device's,
        `vpp.events.model.SeriesBaselines`; a metered enterprise's, its track
        in the record), not the draws now, which are under control already:
        a device with a stored baseline is anchored, and a load's or charger's
        uncontrolled draw is its baseline at activation. The current
        interval's measurement goes on from the record's mean, weighted by
        the cycles the interval has had so far, so the cycles of the worker
        before count too.
        """
        stored = await self.events.series_baselines(self.park, event.id)
        n = len(event.target_kw)
        restored: set[str] = set()
        for asset_id, values in (stored.baseline_kw if stored is not None else {}).items():
            base = running.base_by_asset.get(asset_id)
            if base is None:
                continue
            for t, value in enumerate(values[: len(base)]):
                if value is not None:
                    base[t] = value
            restored.add(asset_id)
            if asset_id in running.uncontrolled or kinds.get(asset_id) == "flexible_load":
                running.uncontrolled[asset_id] = float(base[0])
        running.unanchored -= restored
        for scope in running.scopes:
            track = event.enterprises.get(scope.owner)
            if scope.base is not None and track is not None:
                for t, value in enumerate(track.baseline_kw[:n]):
                    if value is not None:
                        scope.base[t] = value
        running.sum_base()
        k = event.interval_at(now)
        mean = None if k is None else event.measured_kw[k]
        if k is None or mean is None:
            return
        into = (now - (event.start + timedelta(seconds=k * event.interval_s))).total_seconds()
        cycles = max(1, int(into / self.settings.period_s))
        running.sums[k], running.counts[k] = mean * cycles, cycles
        for owner, track in event.enterprises.items():
            for kept, sums in ((track.measured_kw, running.owner_sums),
                               (track.telemetry_kw, running.telemetry_sums)):  # fmt: skip
                value = kept[k] if k < len(kept) else None
                if value is not None:
                    sums.setdefault(owner, {})[k] = value * cycles
        log.info(
            "park %s: event %s resumed from its stored state (%d device baselines)",
            self.park, event.id, len(restored),
        )  # fmt: skip

    def _anchor_late(
        self, running: _Running, view: PortfolioView, k: int, kinds: Mapping[str, str]
    ) -> bool:
        """Anchor the baseline of assets whose first reading of the event arrived now.

        Such an asset was silent at activation, so its baseline was a guess
        (`vpp.flex.nominal_kw`); its first reading is its uncontrolled draw (no
        setpoint has reached it yet), held from interval ``k`` on. A charger
        is anchored when a vehicle that stated its needs is plugged in (it
        joins the portfolio): a vehicle that arrives mid-event would have
        charged anyway, so its draw is neither credited nor held against the
        park. Returns whether any baseline moved.
        """
        rows = {a.id for a in view.assets}
        late = [
            a
            for a in running.unanchored
            if a in view.measured_kw and (kinds.get(a) != "ev_charger" or a in rows)
        ]
        for asset_id in late:
            running.unanchored.discard(asset_id)
            base = running.base_by_asset.get(asset_id)
            if base is None:
                continue
            # this interval's earlier cycles counted it at the old guess: move them
            # too, where its anchor is what its scope is measured against
            scope = next((s for s in running.scopes if s.base is None and s.id == asset_id), None)
            if scope is not None:
                shift = view.measured_kw[asset_id] - float(base[k])
                running.sums[k] = running.sums.get(k, 0.0) + shift * running.counts.get(k, 0)
                if k in running.owner_sums.get(scope.owner, {}):
                    running.owner_sums[scope.owner][k] += shift * running.counts.get(k, 0)
            base[k:] = view.measured_kw[asset_id]
            if kinds.get(asset_id) in _ANCHORED_KINDS:
                running.uncontrolled[asset_id] = view.measured_kw[asset_id]
            log.info("park %s: baseline of %s anchored at its first reading", self.park, asset_id)
        if not late:
            return False
        before = running.park_base
        running.sum_base()
        return not np.array_equal(before, running.park_base)

    def _deviation_goal(
        self,
        event: EventRecord,
        k: int,
        now: datetime,
        step: timedelta,
        view: PortfolioView,
        running: _Running,
        pf: dx.Portfolio,
        delivered_k: float,
        live: _Live,
    ) -> np.ndarray:
        """Deviation from the portfolio's own baseline that meets the event's absolute goal."""
        rows = {a.id for a in view.assets}
        k_end = len(event.target_kw)
        goal_abs = running.park_base[k:k_end] + np.asarray(event.target_kw[k:k_end])
        # everything not in the portfolio stays where it is (or at its baseline if
        # silent); a meter's reading holds its enterprise's portfolio devices too
        outside = np.zeros(k_end - k)
        for scope in running.scopes:
            if scope.meter is None and scope.id in rows:
                continue
            now_kw = scope.now_kw(view.measured_kw, live)
            inside = sum(view.measured_kw[m] for m in scope.members if m in rows)
            if now_kw is None:
                outside += scope.baseline(running.base_by_asset)[k:k_end] - inside
            else:
                outside += now_kw - inside
        goal: np.ndarray = np.asarray(goal_abs - outside - pf.baseline.sum(axis=0)[: k_end - k])
        # close the loop on the current interval: make up part of what it lags by
        elapsed = (now - (event.start + k * step)) / step
        if 0 < elapsed < 1 and self.settings.correction > 0 and event.target_kw[k] != 0:
            lag = event.target_kw[k] - delivered_k
            extra = lag * elapsed / (1 - elapsed)
            cap = self.settings.correction * abs(event.target_kw[k])
            goal[0] += float(np.clip(extra, -cap, cap))
        return goal

    def _pin_under_deliverers(
        self, view: PortfolioView, running: _Running, live: Mapping[str, LiveState | None]
    ) -> dx.Portfolio:
        pf = view.portfolio
        assert pf is not None
        pins: list[tuple[int, float]] = []
        for row, asset in enumerate(view.assets):
            sent = running.sent.get(asset.id)
            measured = view.measured_kw.get(asset.id)
            reading = live.get(asset.id)
            lo, hi = float(pf.p_min[row, 0]), float(pf.p_max[row, 0])
            if asset.id in running.not_following and measured is not None:
                # recognised once: held at what it does for the rest of the event
                pins.append((row, min(max(measured, lo), hi)))
                continue
            if sent is None or measured is None or reading is None:
                running.strikes.pop(asset.id, None)
                continue
            if reading.ts.timestamp() < sent[1] + self.settings.settle_s:
                continue  # the reading predates the setpoint (or its settling): no verdict
            base = float(pf.baseline[row, 0])
            miss = abs(measured - sent[0])
            if miss > max(self.settings.stick_kw, 0.1 * abs(sent[0] - base)):
                running.strikes[asset.id] = running.strikes.get(asset.id, 0) + 1
            else:
                running.strikes.pop(asset.id, None)
            if running.strikes.get(asset.id, 0) >= 2:
                self._not_following(running, asset, sent[0], measured)
                pins.append((row, min(max(measured, lo), hi)))
        if not pins:
            return pf
        p_min, p_max = pf.p_min.copy(), pf.p_max.copy()
        for row, value in pins:
            p_min[row, 0] = p_max[row, 0] = value
        return replace(pf, p_min=p_min, p_max=p_max, baseline=np.clip(pf.baseline, p_min, p_max))

    def _not_following(
        self, running: _Running, asset: Asset, sent_kw: float, measured_kw: float
    ) -> None:
        """Recognise, once per event, an asset that does not follow its setpoints."""
        running.not_following.add(asset.id)
        running.strikes.pop(asset.id, None)
        log.warning(
            "park %s: %s %s does not follow its setpoint (sent %.2f kW, measured %.2f kW); "
            "held at its measured power for the rest of event %s",
            self.park, asset.kind, asset.id, sent_kw, measured_kw, running.event_id,
        )  # fmt: skip
        if self.metrics is not None:
            self.metrics.not_following.labels(self.park, asset.kind).inc()

    def _track_debt(
        self, running: _Running, view: PortfolioView, assets: list[Asset], k: int
    ) -> None:
        """Integrate flexible loads' shed energy (their devices do not report it).

        Shed is measured against the load's baseline of this event (its draw
        when the event started), not its enrolled baseline: a load that draws
        less than enrolled has shed nothing and owes no rebound.
        """
        dt_h = self.settings.period_s / 3600.0
        for asset in assets:
            if not isinstance(asset, FlexibleLoad) or asset.id not in view.measured_kw:
                continue
            anchor = running.base_by_asset.get(asset.id)
            base = float(anchor[k]) if anchor is not None else asset.baseline_kw
            measured = view.measured_kw[asset.id]
            share = max(min(asset.rebound_fraction, 1.0), 1e-6)
            debt = running.shed_debt.get(asset.id, 0.0)
            if measured < base:
                debt += (base - measured) * dt_h
            else:
                debt -= (measured - base) * dt_h / share
            running.shed_debt[asset.id] = max(debt, 0.0)

    async def _send(self, running: _Running, setpoints: Mapping[str, float]) -> None:
        """Hand the setpoints that are due to the sink; their confirmations come later.

        A setpoint is due when it moved by more than ``resend_kw``, was never
        sent, or its hold is half gone, unless the same setpoint is still on
        its way (a device slow to confirm is not sent it again every cycle).
        The cycle goes on at once (the rest of its work overlaps the devices'
        round trips) and waits for the confirmations at its end
        (:meth:`_confirmations`), where a wake does not wait for them.
        """
        hold = self.settings.hold_factor * self.settings.period_s
        real_hold = max(1.0, self.clock.real_seconds(hold))
        now = time.time()
        resend = self.settings.resend_kw
        due = {
            a: p
            for a, p in setpoints.items()
            if not (a in self._in_flight and abs(self._in_flight[a] - p) <= resend)
            and (
                a not in running.sent
                or abs(running.sent[a][0] - p) > resend
                or now - running.sent[a][2] > real_hold / 2
            )
        }
        if not due:
            return
        sending = asyncio.ensure_future(self.sink.send(self.park, due, hold_s=real_hold))
        self._sending.add(sending)
        self._in_flight.update(due)
        running.handed.update(due)
        sending.add_done_callback(lambda done: self._book(running, due, now, done))
        await asyncio.sleep(0)  # the sink starts its calls first, then a woken caller goes on
        self._resolve(self._acting)

    async def _confirmations(self) -> None:
        """Wait for the confirmations of this cycle's sends, or for a wake.

        A wake (an event arrived, changed or was cancelled) does not wait for
        a device slow to confirm: the next cycle starts at once and the
        confirmations still outstanding are booked when they come (each send
        is bounded by the sink's own timeout).
        """
        pending = [f for f in self._sending if not f.done()]
        if pending and not self._wake.is_set():
            await self._wait_closing(None, asyncio.wait(pending), self._wake.wait())

    def _book(
        self,
        running: _Running,
        due: Mapping[str, float],
        now: float,
        sending: asyncio.Future[dict[str, Confirmation]],
    ) -> None:
        """Record what a finished send confirmed (``running.sent``) and warn of the rest."""
        self._sending.discard(sending)
        for asset_id, kw in due.items():
            if self._in_flight.get(asset_id) == kw:
                del self._in_flight[asset_id]
        if sending.cancelled():
            return
        if sending.exception() is not None:
            log.error("park %s: send failed", self.park, exc_info=sending.exception())
            return
        confirmations = sending.result()
        failed = 0
        for asset_id in due:
            conf = confirmations.get(asset_id)
            if conf is not None and conf.sent_kw is not None:
                before = running.sent.get(asset_id)
                # the settling clock restarts only on a move the device must follow: a
                # setpoint that drifts by a little every cycle never gets a verdict otherwise
                if before is None or abs(before[0] - conf.sent_kw) > self.settings.stick_kw:
                    changed = now
                else:
                    changed = before[1]
                running.sent[asset_id] = (conf.sent_kw, changed, now)
            if conf is None or not conf.confirmed:
                failed += 1
        if failed:
            log.warning("park %s: %d of %d setpoints not confirmed", self.park, failed, len(due))
        if running.due is not None:
            self._observe_dispatch(running.due)
            running.due = None

    def _observe_dispatch(self, due: datetime) -> None:
        """Time an event's first send, from when it was due to act to its last answer.

        Real seconds (the clock may be compressed), from the later of the
        record's ``created`` (written by whichever replica took the POST, so
        with several replicas the figure includes their clocks' offset,
        NTP-kept on one site) and the event's start. An event resumed by
        another replica after a takeover is not timed: it was activated before.
        """
        if self.metrics is None:
            return
        waited = (self.clock.now() - due).total_seconds()
        self.metrics.event_dispatch_seconds.labels(self.park).observe(
            max(0.0, self.clock.real_seconds(waited))
        )

    # -- helpers -----------------------------------------------------------

    def _view(
        self,
        assets: list[Asset],
        live: _Live,
        grid: dx.TimeGrid,
        shed_debt: Mapping[str, float] | None = None,
        uncontrolled: Mapping[str, float] | None = None,
    ) -> PortfolioView:
        """The portfolio view of this cycle's reading on ``grid``.

        The envelopes are built per kind in one pass (`vpp.flex`, about 6 ms
        per 1,000 assets; they were 70 ms built one by one), and the cycle
        that activates an event may need the same view twice; the last one
        is kept for the cycle's reading.
        """
        key = (
            grid.start,
            grid.n,
            tuple(sorted((shed_debt or {}).items())),
            tuple(sorted((uncontrolled or {}).items())),
        )
        cached = self._last_view
        # the same reading object (held here, so its identity cannot be reused)
        if cached is not None and cached[0] is live and cached[1] == key:
            return cached[2]
        view = build_view(assets, live, grid, shed_debt_kwh=shed_debt, uncontrolled_kw=uncontrolled)
        self._last_view = (live, key, view)
        return view

    async def _read(self) -> tuple[list[Asset], list[Meter], _Live]:
        """The enrolled devices, the meters, and the live state of both."""
        assets = await self.state.list_assets(self.park)
        live = await self.state.read_live_many(self.park, [a.id for a in assets])
        meters = [a for a in assets if isinstance(a, Meter)]
        return [a for a in assets if not isinstance(a, Meter)], meters, dict(live)

    def _after(self, event: EventRecord) -> int:
        """Intervals the loop plans past the event's end (``horizon_after_h``)."""
        return math.ceil(self.settings.horizon_after_h * 3600 / event.interval_s)

    def _grid(self, event: EventRecord, k: int) -> dx.TimeGrid:
        n = len(event.target_kw) - k + self._after(event)
        start = event.start + timedelta(seconds=event.interval_s * k)
        return grid_at(start, n, event.interval_s // 60)

    @staticmethod
    def _performance(event: EventRecord, k: int, delivered_k: float) -> float | None:
        asked = sum(abs(t) for t in event.target_kw[: k + 1])
        if asked == 0:
            return None
        got = 0.0
        for t in range(k + 1):
            value = delivered_k if t == k else event.delivered_kw[t]
            if value is not None and event.target_kw[t] != 0:
                got += value * math.copysign(1.0, event.target_kw[t])
        return got / asked

    def _gauge_event(self, event_id: str, values: tuple[float, float, float | None] | None) -> None:
        if self.metrics is None:
            return
        m = self.metrics
        if values is None:
            m.event_active.labels(self.park, event_id).set(0)
            return
        target, delivered, perf = values
        m.event_active.labels(self.park, event_id).set(1)
        m.event_target_kw.labels(self.park, event_id).set(target)
        m.event_delivered_kw.labels(self.park, event_id).set(delivered)
        if perf is not None:
            m.event_performance.labels(self.park, event_id).set(perf)

    def _gauge_leader(self, value: int) -> None:
        if self.metrics is not None:
            self.metrics.control_leader.labels(self.park).set(value)
