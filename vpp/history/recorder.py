"""The recorder: live telemetry in, interval energy and coverage out to the history store.

Every accepted live reading (the supervisor's, as it writes the live state)
goes to `HistoryRecorder.record`. Integration is sample-and-hold, per
series (asset or meter id): a reading's power holds from its ``ts`` until the
series' next reading, for at most ``hold_s`` (the live TTL,
``redis.live_ttl_s``, after which the live state drops out too); longer
silence is missing data, so its intervals get partial coverage, never zero
load. Held power is cut at the interval boundaries of the grid
(`vpp.history.grid`) into energy and covered seconds per slot.

A late reading (older than its series' latest) splits the segment of the
reading before it, exactly as if it had come in order: the earlier reading's
power over the overlap is replaced by the late one's (an energy-only
correction) and the late reading's hold beyond that is added with its
coverage, into its interval, closed or not. A late reading older than the
recent readings kept (1.5 x the hold) is dropped and counted.

Time: readings are dated by the wall clock (``LiveState.ts``); each is placed
on the grid at the service clock's time for that instant
(`vpp.clock.Clock.from_wall`; the same instant when ``time_scale`` is 1), and
the hold is ``hold_s`` of wall time, ``hold_s x time_scale`` on that clock.

Writing: the energy and coverage gathered per slot are added to the store
(`HistoryStore.add`, additive) when an interval closes and every
``flush_s`` for the open one, and once more when the recorder stops (the
store keeps whole covered seconds; the open interval's fraction of a second
waits for the next write). A crash loses at most the unwritten part of the
open interval, which then shows as partial coverage; a write that fails
(Redis down) is kept and tried again with the next one.

Charger sessions: every reading also goes to the park's
`vpp.forecast.sessions.SessionTracker` (plug-in opens a session, unplug
closes it, an outage does not split it), on the same service-clock time and
hold; the sessions that changed are written to the `SessionStore` (an
upsert) with the telemetry, open ones included, so a restart resumes them:
a park's open sessions of the last `RESUME_DAYS` are read back when its
first reading comes in.

Several service replicas may take readings of one park (a charger connected
to one, an MQTT message delivered to another), so only one adds a park's
telemetry: the holder of the park's history lease
(`vpp.keys.Keys.history_lease`, renewed at every write, lasting three
flush periods). A replica that does not hold it hands its readings of the
park to the holder through the park's readings stream (`vpp.history.forward`:
one XADD per park per write, the holder reading it with a consumer group and
acknowledging what a write of its own has stored), so a reading taken
anywhere is recorded once. A holder that loses the lease forwards the
readings it took since its last write and leaves what it read from the
stream unacknowledged, for the next holder to claim; the new holder records
from then on (sessions likewise: an open one is written again at its next
reading). What the stream trims before the holder reads it is lost. The
replica that takes the park (`HistoryRecorder.watch`) takes the history lease
at once from whoever holds it, rather than after a dead holder's lease runs
out; a holder still alive then fails its renewal before its next write and
forwards. (Entries the old holder read in the few milliseconds between its
renewal and its acknowledgement may be claimed and recorded by both.)
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from adapters.lifecycle import BackgroundService
from vpp.clock import Clock
from vpp.errors import StateError
from vpp.forecast.sessions import SessionStore, SessionTracker
from vpp.history.forward import ReadingsStream
from vpp.history.grid import INTERVAL_S, locate
from vpp.history.store import HistoryStore, IntervalDelta
from vpp.lease import Lease
from vpp.metrics import Metrics
from vpp.model import LiveState

__all__ = ["LEASE_FLUSHES", "MAX_WAITING", "RESUME_DAYS", "WINDOW", "HistoryRecorder"]

log = logging.getLogger("vpp.history")

#: Recent readings kept per series, as a multiple of the hold (and the one
#: before them): a late reading the live path accepts is younger than the live
#: TTL, so it finds its place.
WINDOW = 1.5
#: Readings of a park kept while its time zone is being read, at most.
MAX_WAITING = 100_000
#: The history lease lasts this many flush periods without renewal.
LEASE_FLUSHES = 3
#: Days back a park's open charger sessions are resumed from (a longer stay is closed).
RESUME_DAYS = 7
#: Seconds the last write on stopping may take.
_CLOSE_FLUSH_S = 5.0

#: Pending telemetry: (series, quarter-hour index since the epoch) -> [kWh, covered s].
_Pending = dict[tuple[str, int], list[float]]


@dataclass(slots=True)
class _Series:
    """One series' recent readings (service-clock epoch seconds, ascending)."""

    times: list[float]
    powers: list[float]
    #: clock time up to which the latest reading's hold is in the pending telemetry
    credited: float
    #: older readings were let go (a late reading before ``times[0]`` has no place)
    trimmed: bool = False
    #: its latest reading came through the readings stream (its next may still be on the way)
    remote: bool = False


#: A reading of one series of a park, as `HistoryRecorder.record` takes it.
_Reading = tuple[str, LiveState]


@dataclass(slots=True)
class _Park:
    tz: ZoneInfo
    lease: Lease
    #: whether this process held the history lease at its last look
    holder: bool
    sessions: SessionTracker
    series: dict[str, _Series] = field(default_factory=dict)
    pending: _Pending = field(default_factory=dict)
    #: readings taken while not the holder, to forward to the holder at the next write
    outgoing: list[_Reading] = field(default_factory=list)
    #: readings taken here as the holder since its last write (forwarded if the lease goes)
    unwritten: list[_Reading] = field(default_factory=list)
    #: ids of forwarded entries read since the last write (acknowledged once written)
    taken: list[bytes | str] = field(default_factory=list)
    #: just became the holder: claim the entries an earlier holder read but never wrote
    claim: bool = True
    #: the last reading of each series forwarded (repeated before the series' next batch)
    forwarded_last: dict[str, LiveState] = field(default_factory=dict)


def _credit(
    pending: _Pending, series: str, t0: float, t1: float, power_kw: float, *, covered: bool
) -> None:
    """Add ``power_kw`` held over ``[t0, t1)`` (clock epoch s), cut at the quarter hours.

    NaN (a reading that says the device is unavailable) adds nothing: no
    energy, no coverage.
    """
    if math.isnan(power_kw):
        return
    t = t0
    while t < t1:
        quarter = math.floor(t / INTERVAL_S)
        end = min(t1, (quarter + 1) * INTERVAL_S)
        acc = pending.setdefault((series, quarter), [0.0, 0.0])
        acc[0] += power_kw * (end - t) / 3600.0
        if covered:
            acc[1] += end - t
        t = end


def _measured_kw(live: LiveState) -> float:
    """The power a reading measured, or NaN for one that says the device is unavailable."""
    return live.power_kw if live.available else math.nan


def _recredit(
    pending: _Pending, series: str, t0: float, t1: float, new_kw: float, old_kw: float
) -> None:
    """Replace ``old_kw``, credited over ``[t0, t1)``, by ``new_kw`` (either may be NaN).

    A known power replacing another moves only energy; one replacing a gap
    (NaN: nothing was credited) covers the span. A gap replacing a known
    power leaves what was credited (coverage is never taken back).
    """
    if math.isnan(new_kw):
        return
    if math.isnan(old_kw):
        _credit(pending, series, t0, t1, new_kw, covered=True)
    else:
        _credit(pending, series, t0, t1, new_kw - old_kw, covered=False)


class HistoryRecorder(BackgroundService):
    """Integrates live readings into the interval history and writes it.

    Use as ``async with HistoryRecorder(...) as recorder:``; the work is the
    task ``history-recorder``, which writes at every interval close and every
    ``flush_s``; leaving writes what is left and gives the leases up. Feed it
    with `record`. `flush` writes at once (also without entering, in tests).

    Args:
        store: the interval history.
        hold_s: wall seconds a reading's power holds at most (the live TTL).
        flush_s: real seconds between writes of the open interval.
        clock: the service clock (readings are placed at its time); wall time if None.
        metrics: where the flush time and the late and dropped readings are counted.

    Raises:
        ValueError: ``hold_s`` or ``flush_s`` not above 0.
    """

    _task_name = "history-recorder"
    # A write under way when the recorder is left ends by itself (a cancelled
    # one keeps its telemetry for the last write, but Redis may have applied it).
    _stop_grace_s = 10.0

    def __init__(
        self,
        store: HistoryStore,
        *,
        hold_s: float,
        flush_s: float = 60.0,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        if hold_s <= 0 or flush_s <= 0:
            raise ValueError("hold_s and flush_s must be above 0")
        self.store = store
        self.flush_s = flush_s
        self._clock = clock
        self._scale = clock.time_scale if clock is not None else 1.0
        self._hold = hold_s * self._scale
        # how late a forwarded reading may reach the holder: the forwarder's write
        # period, then the holder's (clock seconds)
        self._lag = 2 * flush_s * self._scale
        self._metrics = metrics
        self.sessions = SessionStore(store.state, retention_days=store.retention_days)
        self._parks: dict[str, _Park] = {}
        self._stream = ReadingsStream(store.state)
        #: parks recorded here even when no reading of theirs is taken here (`watch`)
        self._watched: set[str] = set()
        #: parks whose history lease this process takes at its next look, whoever holds it
        self._seize: set[str] = set()
        #: readings handed to other replicas' recorders, and taken from theirs
        self.forwarded = 0
        self.received = 0
        #: readings of parks whose time zone is not known yet: (series, clock s, reading)
        self._waiting: dict[str, list[tuple[str, float, LiveState]]] = {}
        self._wake = asyncio.Event()

    # -- readings in -----------------------------------------------------------

    def _clock_s(self, wall: datetime) -> float:
        """The service clock's time (epoch s) at the wall instant ``wall``."""
        if wall.tzinfo is None:
            wall = wall.replace(tzinfo=UTC)
        if self._clock is None:
            return wall.timestamp()
        return self._clock.from_wall(wall.timestamp()).timestamp()

    def record(self, park: str, readings: Mapping[str, LiveState]) -> None:
        """Take accepted live readings of a park: series id -> its reading.

        Cheap and synchronous (the supervisor calls it as it writes the live
        state); a reading repeated with the same ``ts`` is ignored. A reading
        that says the device is unavailable (``available`` false: the
        adapters' mark of a lost unit, an offline gateway, a disconnected or
        faulted charger, whose power is a stand-in) is no measurement: it
        ends the previous reading's hold, and the time after it stays
        uncovered until the next available reading, never recorded as 0 kW.
        """
        known = self._parks.get(park)
        if known is None:
            waiting = self._waiting.setdefault(park, [])
            for series, live in readings.items():
                if len(waiting) >= MAX_WAITING:
                    self._count_dropped(park, "overflow")
                    continue
                waiting.append((series, self._clock_s(live.ts), live))
            self._wake.set()
            return
        if not known.holder:
            for series, live in readings.items():
                if len(known.outgoing) >= MAX_WAITING:
                    self._count_dropped(park, "overflow")
                    continue
                known.outgoing.append((series, live))
            return
        for series, live in readings.items():
            self._take(park, known, series, live)
            known.unwritten.append((series, live))

    def _take(
        self, park_id: str, park: _Park, series: str, live: LiveState, *, remote: bool = False
    ) -> None:
        """Integrate one reading (``remote``: forwarded) into the history and charger sessions."""
        t = self._clock_s(live.ts)
        self._ingest(park_id, park, series, t, _measured_kw(live))
        s = park.series.get(series)
        if s is not None:
            s.remote = remote
        park.sessions.observe(series, t, live)

    def watch(self, park: str) -> None:
        """Record ``park`` here even if no reading of it is taken here.

        The replica holding a park calls this so that its recorder takes the
        park's history lease and reads the readings the others forward,
        whatever this replica reads itself; `unwatch` undoes it. The park
        holder is authoritative: the lease is taken at the next write (or
        admission) even from another owner, not left to expire (three flush
        periods) after a holder died, and the stream's pending entries are
        claimed. A previous holder still alive finds its owner-checked renewal
        failing before its next write and forwards its readings instead
        (`_lease`).
        """
        if park not in self._watched:
            self._seize.add(park)
        self._watched.add(park)
        if park not in self._parks:
            self._waiting.setdefault(park, [])
            self._wake.set()

    def unwatch(self, park: str) -> None:
        """Stop recording ``park`` for its own sake (its lease goes at the next idle write)."""
        self._watched.discard(park)
        self._seize.discard(park)

    async def on_park_change(self, park: str, change: str) -> None:
        """A `vpp.replicas.ParkHandler`: `watch` a park this replica took, `unwatch` the others.

        ``change`` is a `vpp.replicas.Change` (``taken``, ``given``, ``lost``).
        """
        if change == "taken":
            self.watch(park)
        else:
            self.unwatch(park)

    def _ingest(self, park_id: str, park: _Park, series: str, t: float, power: float) -> None:
        s = park.series.get(series)
        if s is None:
            park.series[series] = _Series([t], [power], credited=t)
            return
        last = s.times[-1]
        if t > last:
            held = s.powers[-1]
            if t >= s.credited:
                end = min(t, last + self._hold)
                if end > s.credited:
                    _credit(park.pending, series, s.credited, end, held, covered=True)
            else:  # a write already held the latest power past this reading's time
                _recredit(park.pending, series, t, s.credited, power, held)
            s.credited = max(s.credited, t)
            s.times.append(t)
            s.powers.append(power)
            # keep the readings after the horizon and the one before them, whose
            # hold a late reading after the horizon may cut short
            drop = bisect.bisect_left(s.times, t - WINDOW * self._hold) - 1
            if drop > 0:
                del s.times[:drop], s.powers[:drop]
                s.trimmed = True
            return
        at = bisect.bisect_left(s.times, t)
        if s.times[at] == t:
            return  # the same reading again (an asset marked unavailable is re-written)
        if at == 0 and s.trimmed:
            self._count_dropped(park_id, "too_late")
            return
        self._late(park, series, s, at, t, power)
        if self._metrics is not None:
            self._metrics.history_late_readings.labels(park_id).inc()

    def _late(self, park: _Park, series: str, s: _Series, at: int, t: float, power: float) -> None:
        """Insert a reading before the latest one, as if it had come in order."""
        after = s.times[at]
        start = t
        if at > 0:
            before_t, before_p = s.times[at - 1], s.powers[at - 1]
            before_end = min(after, before_t + self._hold)
            if before_end > t:  # the earlier power held over [t, before_end): replace it
                _recredit(park.pending, series, t, before_end, power, before_p)
                start = before_end
        end = min(after, t + self._hold)
        if end > start:
            _credit(park.pending, series, start, end, power, covered=True)
        s.times.insert(at, t)
        s.powers.insert(at, power)

    def _count_dropped(self, park: str, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.history_dropped_readings.labels(park, reason).inc()

    # -- parks -----------------------------------------------------------------

    async def _admit(self) -> None:
        """Read the time zone of parks first seen and try their lease; take their readings."""
        for park_id in list(self._waiting):
            try:
                tz = await self.store.zone(park_id)
            except StateError as exc:
                log.warning("history of %s waits for its time zone: %s", park_id, exc)
                continue
            state = self.store.state
            lease = Lease(
                state.redis,
                state.park(park_id).history_lease,
                ttl_s=LEASE_FLUSHES * self.flush_s,
            )
            try:
                holder = await self._acquire(park_id, lease)
            except StateError:
                holder = True  # not known: the lease is checked again before each write
            tracker = SessionTracker(hold_s=self._hold)
            since = datetime.fromtimestamp(self._clock_s(datetime.now(UTC)), UTC)
            try:
                tracker.resume(
                    await self.sessions.open_sessions(park_id, since - timedelta(days=RESUME_DAYS))
                )
            except StateError as exc:
                log.warning("open charger sessions of %s not resumed: %s", park_id, exc)
            park = _Park(tz=tz, lease=lease, holder=holder, sessions=tracker)
            self._parks[park_id] = park
            for series, _, live in self._waiting.pop(park_id, []):
                if holder:
                    self._take(park_id, park, series, live)
                    park.unwritten.append((series, live))
                else:
                    park.outgoing.append((series, live))
            log.info("recording the history of park %s (lease %s)", park_id, holder)

    # -- writing -----------------------------------------------------------------

    async def flush(self, now: datetime | None = None) -> int:
        """Write what was gathered, each reading's hold counted up to ``now``.

        Args:
            now: the present (wall time; default the wall clock).

        Returns:
            How many slots were written.
        """
        started = time.perf_counter()
        await self._admit()
        t_now = self._clock_s(now if now is not None else datetime.now(UTC))
        written = 0
        for park_id, park in list(self._parks.items()):
            holder = await self._lease(park_id, park)
            busy = bool(park.outgoing)  # a park forwarded to stays known (its lease is read)
            if holder is False:
                await self._forward(park_id, park)
            elif holder:
                await self._take_forwarded(park_id, park)
            self._hold_until(park, t_now)
            if not (busy or park.series or park.pending or park.sessions.pending or park.outgoing):
                if park_id not in self._watched:
                    await self._forget(park_id, park)
                continue
            if holder:
                written += await self._write(park_id, park, math.floor(t_now / INTERVAL_S))
        if self._metrics is not None:
            self._metrics.history_flush_seconds.observe(time.perf_counter() - started)
        return written

    def _hold_until(self, park: _Park, t_now: float) -> None:
        """Count each series' latest reading up to ``t_now``; let silent series go.

        A forwarded series' latest reading is held only once no reading of it
        can still be on its way (a whole hold and the forwarding lag after
        it): a holder that changes meanwhile then counts nothing twice, since
        the next holder starts from that same reading (`_forward`).
        """
        for series, s in list(park.series.items()):
            until = s.times[-1] + self._hold
            if s.remote and t_now < until + self._lag:
                continue
            end = min(t_now, until)
            if end > s.credited:
                _credit(park.pending, series, s.credited, end, s.powers[-1], covered=True)
                s.credited = end
            if s.credited >= until:
                del park.series[series]

    async def _lease(self, park_id: str, park: _Park) -> bool | None:
        """Take or renew the park's history lease; whether this process holds it (None: unknown).

        Taking it over turns the readings waiting to be forwarded into this
        process's own; losing it turns the readings taken since the last
        write into readings to forward, and drops what was integrated (the
        stream entries read but not written stay unacknowledged, for the next
        holder to claim).
        """
        try:
            holder = await self._acquire(park_id, park.lease)
        except StateError as exc:
            log.warning("history of %s not written (lease unknown): %s", park_id, exc)
            return None
        if holder and not park.holder:
            park.holder, park.claim = True, True
            outgoing, park.outgoing = self._continued(park), []
            park.forwarded_last.clear()
            for series, live in outgoing:
                self._take(park_id, park, series, live)
                park.unwritten.append((series, live))
        elif park.holder and not holder:
            log.info("history lease of %s lost: its readings go to the holder", park_id)
            park.holder = False
            park.outgoing[:0], park.unwritten = park.unwritten, []
            park.series.clear()
            park.pending.clear()
            park.sessions.drain()
            park.taken.clear()
        return holder

    async def _acquire(self, park_id: str, lease: Lease) -> bool:
        """Take or renew ``lease``; a park just taken (`watch`) takes it from any owner.

        Raises:
            StateError: Redis did not answer (the take-over is tried again next time).
        """
        state = self.store.state
        async with state.guard("history_lease"):
            if park_id not in self._seize:
                return await lease.acquire()
            await state.redis.set(lease.key, lease.owner, px=lease.ttl_ms)
        self._seize.discard(park_id)
        log.info("history lease of %s taken over by %s (this replica holds the park)",
                 park_id, lease.owner)  # fmt: skip
        return True

    async def _forward(self, park_id: str, park: _Park) -> None:
        """Hand the readings taken here to the park's holder (kept for the next try on failure).

        Each series' batch starts with the series' last reading forwarded
        before, when that one is less than a hold older: the holder has it
        already (a repeat, ignored), while a holder that took over since
        starts the series from it, so the time between the two batches is
        counted once, by one of them.
        """
        if not park.outgoing:
            return
        try:
            await self._stream.append(park_id, self._continued(park))
        except StateError as exc:
            log.warning("readings of %s not forwarded, kept: %s", park_id, exc)
            return
        self.forwarded += len(park.outgoing)
        for series, live in park.outgoing:
            park.forwarded_last[series] = live
        park.outgoing = []

    def _continued(self, park: _Park) -> list[_Reading]:
        """The readings to forward, each series after its last reading forwarded before.

        That reading is repeated when it is less than a hold older than the
        series' first one here (the time between them is then counted once).
        """
        hold = timedelta(seconds=self._hold / self._scale)
        first: dict[str, LiveState] = {}
        for series, live in park.outgoing:
            first.setdefault(series, live)
        repeated = [
            (series, last)
            for series, last in park.forwarded_last.items()
            if series in first and first[series].ts - hold < last.ts < first[series].ts
        ]
        return repeated + park.outgoing

    async def _take_forwarded(self, park_id: str, park: _Park) -> None:
        """Integrate the readings others forwarded (and those an earlier holder left unwritten)."""
        consumer = park.lease.owner
        try:
            if park.claim:
                entries = await self._stream.claim(park_id, consumer)
                park.claim = False
            else:
                entries = []
            entries += await self._stream.read(park_id, consumer)
        except StateError as exc:
            log.warning("forwarded readings of %s not read: %s", park_id, exc)
            return
        for entry_id, readings in entries:
            for series, live in readings:
                self._take(park_id, park, series, live, remote=True)
            self.received += len(readings)
            park.taken.append(entry_id)

    async def _write(self, park_id: str, park: _Park, open_quarter: int) -> int:
        """Add the park's pending telemetry to the store (this process holds its lease).

        The store keeps whole covered seconds: of the open interval, the
        fraction of a second (and its share of the energy) waits for the next
        write, so frequent writes do not round it up or away each time. Once
        written, the forwarded entries read before are acknowledged.
        """
        await self._write_sessions(park_id, park)
        pending, park.pending = park.pending, {}
        for key, acc in pending.items():
            # (a millisecond short of a whole second is that second: float error)
            fraction = acc[1] - math.floor(acc[1] + 1e-3)
            if key[1] >= open_quarter and fraction > 1e-3:
                kept = acc[0] * fraction / acc[1]
                park.pending[key] = [kept, fraction]
                acc[0] -= kept
                acc[1] -= fraction
        if not pending:  # what was read added nothing yet: the next holder starts after it
            await self._acknowledge(park_id, park)
            return 0
        deltas = self._deltas(pending, park.tz)
        try:
            await self.store.add(park_id, deltas, tz=park.tz)
        except (StateError, asyncio.CancelledError) as exc:
            for key, (energy, covered) in pending.items():  # with what waited already
                acc = park.pending.setdefault(key, [0.0, 0.0])
                acc[0] += energy
                acc[1] += covered
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.warning("history of %s not written, kept for the next write: %s", park_id, exc)
            return 0
        park.unwritten.clear()
        await self._acknowledge(park_id, park)
        return len(deltas)

    async def _acknowledge(self, park_id: str, park: _Park) -> None:
        """Acknowledge the forwarded entries read so far (their readings are written)."""
        taken, park.taken = park.taken, []
        try:
            await self._stream.ack(park_id, taken)
        except StateError as exc:  # a later holder may claim and record them again
            log.warning("forwarded readings of %s written but not acknowledged: %s", park_id, exc)

    async def _write_sessions(self, park_id: str, park: _Park) -> None:
        """Write the charger sessions that changed; kept for the next write if Redis fails."""
        changed = park.sessions.drain()
        if not changed:
            return
        try:
            await self.sessions.add(park_id, changed)
        except (StateError, asyncio.CancelledError) as exc:
            park.sessions.keep(changed)
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.warning("charger sessions of %s not written, kept: %s", park_id, exc)

    @staticmethod
    def _deltas(pending: _Pending, tz: ZoneInfo) -> list[IntervalDelta]:
        """The pending telemetry on the park's grid (local day and slot of each quarter hour)."""
        places: dict[int, tuple[date, int]] = {}
        deltas = []
        for (series, quarter), (energy, covered) in pending.items():
            if energy == 0 and covered == 0:
                continue  # all of it waits for the next write
            place = places.get(quarter)
            if place is None:
                start = datetime.fromtimestamp(quarter * INTERVAL_S, UTC)
                place = places[quarter] = locate(start, tz)
            deltas.append(IntervalDelta(series, *place, energy, covered))
        return deltas

    async def _forget(self, park_id: str, park: _Park) -> None:
        """Let a park with no live series go, and its lease (taken again at its next reading)."""
        del self._parks[park_id]
        if park.holder:
            await self._acknowledge(park_id, park)
            with contextlib.suppress(StateError):
                async with self.store.state.guard("history_lease"):
                    await park.lease.release()

    # -- the background work ------------------------------------------------------

    def _real_until_close(self) -> float:
        """Real seconds until the open interval closes on the service clock."""
        t = self._clock_s(datetime.now(UTC))
        return ((math.floor(t / INTERVAL_S) + 1) * INTERVAL_S - t) / self._scale

    def _quarter(self) -> int:
        return math.floor(self._clock_s(datetime.now(UTC)) / INTERVAL_S)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_flush = loop.time() + self.flush_s
        quarter = self._quarter()
        while not self._closing:
            self._wake.clear()
            if self._waiting:
                await self._admit()
            # a little past the boundary, so the closing interval's last hold is counted
            wait = min(next_flush - loop.time(), self._real_until_close() + 0.01)
            await self._wait_closing(max(0.0, wait), self._wake.wait())
            if self._quarter() != quarter or loop.time() >= next_flush:
                await self.flush()
                quarter, next_flush = self._quarter(), loop.time() + self.flush_s

    async def _close(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_FLUSH_S):
                await self.flush()
        for park_id, park in list(self._parks.items()):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_FLUSH_S):
                    await self._forget(park_id, park)
