"""Several service replicas on one Redis share the parks, one lease per park.

Every replica serves the whole API. A park's device supervision (its Modbus
and MQTT adapters), its control loop and its per-park background work run on
the replica holding the park's lease: the key ``Keys.control_lease``, a
`vpp.lease.Lease` whose owner is the replica's id (`replica_id`).
`ParkShares` decides which parks this replica holds:

* heartbeat: every ``[replicas] heartbeat_s`` real seconds it scores its id
  in ``GlobalKeys.replicas`` with its heartbeat's expiry (epoch ms,
  ``3 × heartbeat_s`` ahead), removes the members whose expiry passed and
  reads the live ones (expiry after now);
* renewal: in the same beat it renews every lease it holds (TTL ``[control]
  lease_ttl_s``). A renewal that finds another owner, or none that succeeded
  for a whole TTL (Redis unreachable), drops the park at once as *lost*: from
  then on no setpoint, not even a release, goes from here to its devices;
* fair share: ``ceil(parks / live replicas)``. It takes unheld parks (``SET
  NX``) while it holds fewer than its share and no live replica holds fewer
  than it does; it gives one park back at a time when it holds more than its
  share or two more than the live replica holding fewest (a replica joined).
  Two replicas on ten parks settle at 5/5, three at 4/3/3;
* no herd, no cut events: only the live replica holding the most parks
  (ties: the highest id) gives, one park per heartbeat, and only while every
  park is held (the replica short of parks takes an unheld one first), so
  replicas over their share never give at once; it never gives a *busy*
  park (its control loop delivers an event or is about to: the ``busy``
  callback) and waits while all of its parks are busy. Leaving (a stop)
  still gives everything back;
* choice (`plan_takes`, `plan_give`): unheld parks are tried in rendezvous-hash
  order of park × replica, those on which this replica ranks first among
  the live ones before the others, and the park given back is the one it
  ranks lowest on, so replicas that start together reach for different parks;
* one process per id: each process has a random instance token, set with
  every heartbeat in ``GlobalKeys.replica_instance(id)`` (TTL ``3 ×
  heartbeat_s``). Entering waits up to that long for another process's
  token to expire (a crashed process restarted under a fixed id) and fails
  with `ReplicaIdInUse` when it is still renewed; a running replica that
  finds another token under its id logs an error and takes no more parks.

Giving back is graceful: the park leaves `ParkShares.held` first, the
handlers let go of it (the control loop releases the devices it drives,
then the supervisor stops the park's adapters), and only then is the lease
deleted, so the next holder never overlaps with this one. Handlers
(`ParkShares.subscribe`) are called with ``(park, Change)``; for a take in
the order they subscribed, for a give or a loss in the reverse order; the
changes of one park run one after the other, never overlapping.

Every Redis command here names one key (the registry, or one park's lease),
so it runs unchanged on a Redis Cluster. The heartbeat's expiry is wall-clock
time: replicas on different machines need clocks agreeing within about one
heartbeat (NTP does). A park is taken over within about ``lease_ttl_s +
heartbeat_s`` after its holder died, provided the dead replica has left the
registry by then (``3 × heartbeat_s`` at most ``lease_ttl_s``): while it still
counts as live, holding nothing, the others leave the unheld parks to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from adapters.lifecycle import BackgroundService
from vpp.errors import SettingsError
from vpp.lease import Lease
from vpp.metrics import Metrics
from vpp.state import State

__all__ = [
    "Change",
    "ParkHandler",
    "ParkShares",
    "ReplicaIdInUse",
    "ShareView",
    "fair_share",
    "plan_give",
    "plan_takes",
    "rendezvous",
    "replica_id",
]

log = logging.getLogger("vpp.replicas")

#: A replica counts as gone this many heartbeats after its last one.
HEARTBEATS_TO_EXPIRE = 3


class Change(StrEnum):
    """What happened to one park's lease on this replica."""

    #: taken: this replica now runs the park
    TAKEN = "taken"
    #: being given back: let go of the park (release its devices), the lease follows
    GIVEN = "given"
    #: another replica holds it now (or it expired unrenewed): stop without a word to its devices
    LOST = "lost"


#: Called with a park and what happened to it; awaited before the change goes on.
ParkHandler = Callable[[str, Change], Awaitable[None]]


class ReplicaIdInUse(SettingsError):
    """Another live process beats under this replica's ``[replicas] id``."""


@functools.cache
def _process_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def replica_id(configured: str = "") -> str:
    """This replica's id: ``configured`` (``[replicas] id``) or ``{host}-{pid}-{random hex}``.

    The generated id is made once per process, so every part of one service
    process (its park shares, control loops, charger registry) names the
    same replica, and a restarted process never inherits a lease it held.
    """
    return configured or _process_id()


def fair_share(parks: int, live: int) -> int:
    """Parks one replica may hold: ``ceil(parks / live)`` (``live`` at least 1)."""
    return math.ceil(parks / max(1, live))


def rendezvous(park: str, replica: str) -> int:
    """The rendezvous (highest random weight) score of ``park`` on ``replica``: higher first."""
    digest = hashlib.blake2b(f"{park}\x00{replica}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True)
class ShareView:
    """One look at how the parks are held.

    Attributes:
        parks: every park.
        holders: park -> the id holding its lease, None when unheld.
        live: the live replicas (this one among them).
    """

    parks: Sequence[str]
    holders: Mapping[str, str | None]
    live: Sequence[str]

    def counts(self) -> dict[str, int]:
        """Live replica -> parks it holds."""
        counts = dict.fromkeys(self.live, 0)
        for holder in self.holders.values():
            if holder in counts:
                counts[holder] += 1
        return counts


def plan_takes(view: ShareView, me: str) -> list[str]:
    """The unheld parks ``me`` should try to take now, best first (maybe none).

    ``me`` takes while it holds fewer than its fair share and no live replica
    holds fewer than it does (the one holding fewest fills up first, so a
    park just given back goes to the replica that was short of one).
    """
    counts = view.counts()
    mine = counts.get(me, 0)
    share = fair_share(len(view.parks), len(counts))
    if mine >= share or any(n < mine for n in counts.values()):
        return []
    unheld = [p for p in view.parks if view.holders.get(p) is None]

    def order(park: str) -> tuple[bool, int]:
        own = rendezvous(park, me)
        first = all(own >= rendezvous(park, r) for r in counts)
        return (not first, -own)

    return sorted(unheld, key=order)[: share - mine]


def plan_give(
    view: ShareView, me: str, held: Iterable[str], busy: Callable[[str], bool] = lambda _: False
) -> str | None:
    """The park of ``held`` that ``me`` should give back now, or None.

    One when it holds more than its fair share, or two more than the live
    replica holding fewest, every park is held and ``me`` holds the most
    (ties: the highest id); of its parks not ``busy``, the one it ranks
    lowest on. None when all of them are busy: it gives one once it is quiet.
    """
    counts = view.counts()
    mine = counts.get(me, 0)
    share = fair_share(len(view.parks), len(counts))
    if mine <= share and mine <= min(counts.values(), default=0) + 1:
        return None
    if any(view.holders.get(park) is None for park in view.parks):
        return None  # the replica short of parks takes these first
    if max(counts, key=lambda r: (counts[r], r)) != me:
        return None  # the one holding most gives; the others see the new split next beat
    quiet = [park for park in held if not busy(park)]
    return min(quiet, key=lambda park: rendezvous(park, me), default=None)


class ParkShares(BackgroundService):
    """The parks this replica holds, taken and given back by lease (see the module docstring).

    Use as ``async with ParkShares(...) as shares:``; entering starts the
    heartbeat (the task ``park-shares``); leaving gives every park back
    (handlers first, then the lease) and removes the replica from the
    registry. Subscribe the handlers before entering.

    Args:
        state: the Redis state (its client and keys).
        replica: this replica's id (`replica_id`).
        heartbeat_s: real seconds between heartbeats (``[replicas] heartbeat_s``).
        lease_ttl_s: real seconds a park lease lasts unrenewed (``[control] lease_ttl_s``).
        metrics: where ``vpp_park_held``, ``vpp_replicas_live`` and
            ``vpp_park_lease_changes_total`` go (optional).
        busy: park -> whether its control loop delivers an event now or is
            about to (never given back then); None: no park is ever busy.

    Raises:
        ReplicaIdInUse: on entering, another live process beats under ``replica``.
    """

    _task_name = "park-shares"
    # Leaving gives every park back: the handlers release devices, never cut short.
    _stop_grace_s = None

    def __init__(
        self,
        state: State,
        *,
        replica: str,
        heartbeat_s: float,
        lease_ttl_s: float,
        metrics: Metrics | None = None,
        busy: Callable[[str], bool] | None = None,
    ) -> None:
        self._state = state
        if HEARTBEATS_TO_EXPIRE * heartbeat_s > lease_ttl_s:
            log.warning(
                "replica %s: a dead replica stays registered %.1f s, longer than a lease "
                "(%.1f s): its parks are taken over that late (lower [replicas] heartbeat_s)",
                replica, HEARTBEATS_TO_EXPIRE * heartbeat_s, lease_ttl_s,
            )  # fmt: skip
        self.replica = replica
        self.heartbeat_s = heartbeat_s
        self.lease_ttl_s = lease_ttl_s
        self._metrics = metrics
        self._busy: Callable[[str], bool] = busy or (lambda _: False)
        #: this process's token under the replica id (another one there: a duplicate id)
        self.instance = secrets.token_hex(8)
        #: another process beats under this id: no more parks are taken
        self.duplicate = False
        self._handlers: list[ParkHandler] = []
        self._held: set[str] = set()
        #: leases held here, the parks being given back included
        self._leases: dict[str, Lease] = {}
        #: monotonic time of each held lease's last successful take or renewal
        self._renewed: dict[str, float] = {}
        self._transitions: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()
        self._settled = asyncio.Event()
        self.version = 0
        #: live replicas at the last heartbeat
        self.live: tuple[str, ...] = ()

    # -- what consumers see ------------------------------------------------

    @property
    def held(self) -> frozenset[str]:
        """The parks this replica runs now (not those being given back)."""
        return frozenset(self._held)

    def holds(self, park: str) -> bool:
        """Whether this replica runs ``park`` now."""
        return park in self._held

    def subscribe(self, handler: ParkHandler) -> None:
        """Have ``handler(park, change)`` awaited on every take, give and loss of a park."""
        self._handlers.append(handler)

    async def changed(self, since: int) -> int:
        """Wait until `version` (bumped by every change of `held`) is past ``since``; return it."""
        while self.version <= since:
            event = self._changed
            await event.wait()
        return self.version

    async def settled(self) -> None:
        """Wait until the first heartbeat has taken this replica's first parks (or failed)."""
        await self._settled.wait()

    def health(self) -> dict[str, object]:
        """For ``/readyz``: this replica's id, the parks it holds, the live replicas.

        Not ok once another process beats under the same id (``duplicate_id``).
        """
        return {
            "ok": self._task is not None and not self._task.done() and not self.duplicate,
            "replica": self.replica,
            "duplicate_id": self.duplicate,
            "held": sorted(self._held),
            "live": list(self.live),
        }

    # -- one process per id ------------------------------------------------

    async def _open(self) -> None:
        """Claim the replica id: wait out a dead process's token, refuse a live one's."""
        key = self._state.keys.replica_instance(self.replica)
        ttl_ms = int(HEARTBEATS_TO_EXPIRE * self.heartbeat_s * 1000)
        # a dead process's token expires within its TTL; a live one renews it every beat
        deadline = time.monotonic() + (HEARTBEATS_TO_EXPIRE + 1) * self.heartbeat_s
        while not await self._claim_new(key, ttl_ms):
            if time.monotonic() > deadline:
                self._settled.set()  # whoever waits for the first parks goes on, with none
                raise ReplicaIdInUse(
                    f"replica id {self.replica} is in use by another live process; "
                    "give each replica its own [replicas] id"
                )
            log.info("replica %s: waiting for the id's previous process to expire", self.replica)
            await asyncio.sleep(self.heartbeat_s / 2)

    async def _claim_new(self, key: str, ttl_ms: int) -> bool:
        """Set this process's token unless another one is there; True also when Redis fails.

        With Redis unreachable the replica starts as before (the heartbeat
        retries, and finds a duplicate once Redis answers).
        """
        try:
            return bool(await self._state.redis.set(key, self.instance, nx=True, px=ttl_ms))
        except Exception as exc:
            log.warning("replica %s: cannot check its id is free: %r", self.replica, exc)
            return True

    async def _claim_beat(self) -> bool:
        """Renew this process's token under the id; False (error logged) if another's is there."""
        redis, key = self._state.redis, self._state.keys.replica_instance(self.replica)
        token = await redis.get(key)
        if token is not None and _text(token) != self.instance:
            if not self.duplicate:
                log.error(
                    "replica id %s is in use by another live process: this one takes no "
                    "more parks; give each replica its own [replicas] id", self.replica,
                )  # fmt: skip
            self.duplicate = True
            return False
        ttl_ms = int(HEARTBEATS_TO_EXPIRE * self.heartbeat_s * 1000)
        await redis.set(key, self.instance, px=ttl_ms)
        return not self.duplicate

    # -- the heartbeat -----------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self._closing:
                began = time.monotonic()
                try:
                    await self._beat()
                except Exception as exc:  # Redis down: leases unrenewed for a TTL are lost
                    log.warning("replica %s: heartbeat failed: %r", self.replica, exc)
                self._settled.set()
                self._expire_unrenewed()
                await self._wait_closing(max(0.0, self.heartbeat_s - (time.monotonic() - began)))
        finally:
            await self._leave()

    async def _beat(self) -> None:
        redis, key = self._state.redis, self._state.keys.replicas
        sole = await self._claim_beat()
        now_ms = int(time.time() * 1000)
        expiry = now_ms + int(HEARTBEATS_TO_EXPIRE * self.heartbeat_s * 1000)
        await redis.zadd(key, {self.replica: expiry})
        await redis.zremrangebyscore(key, "-inf", now_ms)
        members = await redis.zrangebyscore(key, f"({now_ms}", "+inf")
        self.live = tuple(
            sorted({_text(m) for m in members if isinstance(m, bytes | str)} | {self.replica})
        )
        if self._metrics is not None:
            self._metrics.replicas_live.set(len(self.live))
        await self._renew()
        view = await self._view()
        if not self._giving():
            park = plan_give(view, self.replica, self._held, self._busy)
            if park is not None:
                self._give(park, why="over its share")
                return
        if not sole:
            return
        for park in plan_takes(view, self.replica):
            await self._take(park)

    async def _renew(self) -> None:
        for park, lease in list(self._leases.items()):
            try:
                ok = await lease.renew()
            except Exception as exc:
                log.warning("park %s: lease renewal failed: %r", park, exc)
                continue
            if self._leases.get(park) is not lease:
                continue  # given back meanwhile
            if ok:
                self._renewed[park] = time.monotonic()
            else:
                self._lose(park, "the lease is held by another replica")

    def _expire_unrenewed(self) -> None:
        now = time.monotonic()
        for park in [p for p, t in self._renewed.items() if now - t > self.lease_ttl_s]:
            self._lose(park, f"no renewal for {self.lease_ttl_s} s")

    async def _view(self) -> ShareView:
        parks = sorted(await self._state.list_parks())
        holders = await asyncio.gather(*(self._lease(p).holder() for p in parks))
        return ShareView(parks, dict(zip(parks, holders, strict=True)), self.live)

    def _lease(self, park: str) -> Lease:
        lease = self._leases.get(park)
        if lease is None:
            key = self._state.park(park).control_lease
            lease = Lease(self._state.redis, key, ttl_s=self.lease_ttl_s, owner=self.replica)
        return lease

    def _giving(self) -> bool:
        return any(p not in self._held for p in self._leases)

    # -- changes -----------------------------------------------------------

    async def _take(self, park: str) -> None:
        lease = self._lease(park)
        if not await lease.acquire():
            return  # another replica was quicker
        self._leases[park] = lease
        self._renewed[park] = time.monotonic()
        self._held.add(park)
        self._note(park, Change.TAKEN, "")
        self._transition(park, Change.TAKEN)

    def _give(self, park: str, why: str) -> None:
        self._held.discard(park)
        self._note(park, Change.GIVEN, why)
        self._transition(park, Change.GIVEN)

    def _lose(self, park: str, why: str) -> None:
        self._leases.pop(park, None)
        self._renewed.pop(park, None)
        if park in self._held:
            self._held.discard(park)
            self._transition(park, Change.LOST)
        self._note(park, Change.LOST, why)

    def _note(self, park: str, change: Change, why: str) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()
        log.info(
            "replica %s: park %s %s%s (holds %d)",
            self.replica, park, change.value, f": {why}" if why else "", len(self._held),
        )  # fmt: skip
        if self._metrics is None:
            return
        self._metrics.park_lease_changes.labels(self.replica, change.value).inc()
        if change is Change.TAKEN:
            self._metrics.park_held.labels(park, self.replica).set(1)
        else:
            with contextlib.suppress(KeyError):
                self._metrics.park_held.remove(park, self.replica)

    def _transition(self, park: str, change: Change) -> None:
        previous = self._transitions.get(park)
        self._transitions[park] = self._spawn(
            self._apply(park, change, previous), name=f"park-shares/{change.value}/{park}"
        )

    async def _apply(self, park: str, change: Change, previous: asyncio.Task[None] | None) -> None:
        """Run the handlers of one change after the park's previous one; give the lease last."""
        if previous is not None:
            await asyncio.wait({previous})
        lease = self._leases.get(park)
        handlers = self._handlers if change is Change.TAKEN else self._handlers[::-1]
        for handler in handlers:
            try:
                await handler(park, change)
            except Exception:
                log.exception("park %s: handling %s failed", park, change.value)
        if change is Change.GIVEN and lease is not None and self._leases.get(park) is lease:
            del self._leases[park]
            self._renewed.pop(park, None)
            try:
                await lease.release()
            except Exception as exc:  # it expires by itself within its TTL
                log.warning("park %s: lease release failed: %r", park, exc)

    async def _leave(self) -> None:
        """Give every park back, wait for the handlers, leave the registry."""
        for park in sorted(self._held):
            self._give(park, why="the replica stops")
        pending = [t for t in self._transitions.values() if not t.done()]
        if pending:
            await asyncio.wait(pending)
        with contextlib.suppress(Exception):
            await self._state.redis.zrem(self._state.keys.replicas, self.replica)
        with contextlib.suppress(Exception):
            key = self._state.keys.replica_instance(self.replica)
            if _text(await self._state.redis.get(key) or b"") == self.instance:
                await self._state.redis.delete(key)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
