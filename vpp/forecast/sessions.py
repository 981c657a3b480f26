"""Charger sessions: what each plug-in was, kept in Redis, learned from live readings.

A `ChargerSession` is one vehicle's stay at a charger: when it plugged in
and out, the departure and energy it stated, and the energy the charger
delivered. The `SessionStore` keeps a park's sessions in one sorted set
(`vpp.keys.Keys.ev_sessions`), scored by arrival (epoch s); a session is
identified by its charger and arrival, so writing it again (an open session
updated, then closed) replaces it: every write is idempotent.

The `SessionTracker` turns a charger's successive live readings into
sessions (the history recorder feeds it, `vpp.history.recorder`):

* ``ev_connected`` going from false (or no session) to true opens a
  session; true to false closes it. A reading that does not say
  (``ev_connected`` None) neither opens nor closes one.
* A reading that says the charger is unavailable (``available`` false: its
  websocket dropped, its gateway is down) is no news about the plug: it
  neither opens nor closes a session, and its power is not counted.
* The outage rule: a session whose vehicle is seen plugged in again at most
  ``max_gap_s`` after it was last seen plugged in (available) is the same
  session, whatever was in between (silence or unavailable readings): a short
  outage never splits a session. After a longer gap, a vehicle seen plugged
  in is taken for the same one only when it states the same departure as
  before; otherwise the old session is closed when it was last seen and a
  new one opens. The default gap, one hour, is longer than the reconnects
  of an OCPP websocket or a gateway (seconds to minutes) and shorter than
  any but the briefest stay (a workplace charge lasts hours).
* Departure: the time of the first available reading that saw the plug
  out, when the reading before it (plugged in) was at most one hold
  (``hold_s``, the live TTL) earlier; otherwise the vehicle left at some
  unknown time in the gap, and the session ends when it was last seen
  plugged in (the earlier bound: a stay is never overstated).
* Energy delivered: the net energy through the charger (grid side, kWh; a
  V2G discharge counts against it), sample-and-hold over the session's
  available readings exactly as the interval history integrates them (each
  reading's power holds until the next reading, at most ``hold_s``; an
  unavailable reading ends the hold), so over an outage it is a lower bound.
* The departure and energy need stated by the vehicle are the first ones it
  states in the session (the need "at plug-in"; OCPP sends the charging
  needs just after the transaction starts).
* Readings are taken in time order; one not newer than the charger's latest
  is ignored (the interval history places late readings, sessions do not).

A restart resumes: the tracker is given the park's open sessions from the
store (`SessionTracker.resume`) before its first readings, and carries them
on under the same rules (a vehicle still plugged in within ``max_gap_s`` of
when it was last seen continues its session).

Retention: every write drops the sessions that arrived more than
``retention_days`` (``[history] retention_days``) before the newest one
written, and sets the set to expire that long after the newest arrival, so
the sessions go with the interval history they belong to.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from vpp.model import LiveState
from vpp.state import State, pack, unpack

__all__ = [
    "DEFAULT_MAX_GAP_S",
    "ChargerSession",
    "SessionStore",
    "SessionTracker",
    "session_from_data",
    "session_to_data",
]

#: Seconds a vehicle may go unseen (silence or an outage) and still be the same session.
DEFAULT_MAX_GAP_S = 3600.0
#: The msgpack header of a stored session (an array of 7).
_HEADER = pack([None] * 7)[:1]
#: Sessions per script call of a write: bounds how long one call holds Redis.
_PER_CALL = 500

# KEYS: the session set. ARGV: the oldest arrival kept (epoch s), the expiry
# (epoch s), then per session its score, its identity prefix (the packed
# charger and arrival the member starts with) and the member. Replaces a
# member of the same charger and arrival, adds the session, drops the ones
# before the oldest kept and pushes the expiry out (never in). Returns the
# number of sessions new to the set.
_PUT = """
local added = 0
for i = 3, #ARGV, 3 do
  local score, prefix, member = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], score, score)) do
    if old ~= member and string.sub(old, 1, #prefix) == prefix then
      redis.call('ZREM', KEYS[1], old)
      added = added - 1
    end
  end
  added = added + redis.call('ZADD', KEYS[1], score, member)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
local expires = redis.call('EXPIRETIME', KEYS[1])
if expires == -1 or expires < tonumber(ARGV[2]) then
  redis.call('EXPIREAT', KEYS[1], ARGV[2])
end
return added
"""


@dataclass(frozen=True, slots=True)
class ChargerSession:
    """One vehicle's stay at a charger.

    Attributes:
        asset_id: the charger.
        arrival: when the vehicle plugged in (aware; the service clock's time).
        departure: when it unplugged (aware), None while it is plugged in.
        stated_departure: the departure the vehicle stated (first one), if any.
        energy_needed_kwh: the energy it stated it needed, first statement
            (at plug-in), kWh; None when it stated none.
        energy_delivered_kwh: the net energy delivered so far, kWh (grid side).
        seen: when it was last seen plugged in by an available reading
            (aware; the departure's lower bound while the session is open).
    """

    asset_id: str
    arrival: datetime
    departure: datetime | None
    stated_departure: datetime | None
    energy_needed_kwh: float | None
    energy_delivered_kwh: float
    seen: datetime

    @property
    def open(self) -> bool:
        """Whether the vehicle is still plugged in (as far as is known)."""
        return self.departure is None

    @property
    def until(self) -> datetime:
        """Its departure, or, while open, when it was last seen plugged in."""
        return self.seen if self.departure is None else self.departure

    @property
    def need_kwh(self) -> float:
        """What the vehicle came for: its stated need, else the energy delivered (kWh, ≥ 0)."""
        need = self.energy_needed_kwh
        return max(self.energy_delivered_kwh if need is None else need, 0.0)


def _epoch(t: datetime | None) -> float | None:
    return None if t is None else t.timestamp()


def _time(s: float | None) -> datetime | None:
    return None if s is None else datetime.fromtimestamp(s, UTC)


def session_to_data(s: ChargerSession) -> list[Any]:
    """The stored form: ``[asset_id, arrival s, departure s, stated s, need, delivered, seen s]``.

    Times as epoch seconds (float, None where unknown). The charger and the
    arrival come first, so a member's first bytes identify its session.
    """
    return [
        s.asset_id,
        s.arrival.timestamp(),
        _epoch(s.departure),
        _epoch(s.stated_departure),
        s.energy_needed_kwh,
        s.energy_delivered_kwh,
        s.seen.timestamp(),
    ]


def session_from_data(data: Sequence[Any]) -> ChargerSession:
    """Read back `session_to_data` (times come back in UTC)."""
    asset_id, arrival, departure, stated, need, delivered, seen = data
    return ChargerSession(
        asset_id=str(asset_id),
        arrival=datetime.fromtimestamp(float(arrival), UTC),
        departure=_time(departure),
        stated_departure=_time(stated),
        energy_needed_kwh=None if need is None else float(need),
        energy_delivered_kwh=float(delivered),
        seen=datetime.fromtimestamp(float(seen), UTC),
    )


def _identity(s: ChargerSession) -> bytes:
    """The first bytes of the session's member: the array header, its charger and arrival."""
    return _HEADER + pack(s.asset_id) + pack(s.arrival.timestamp())


class SessionStore:
    """A park's charger sessions in Redis, scored by arrival.

    Args:
        state: the repository.
        retention_days: days a session is kept after the newest one written
            (``[history] retention_days``, as the interval history).

    Raises:
        ValueError: ``retention_days`` below 1.
        StateUnavailable: (every method) Redis did not answer.
    """

    def __init__(self, state: State, *, retention_days: int = 400) -> None:
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        self.state = state
        self.retention_days = retention_days
        self._put = state.redis.register_script(_PUT)

    async def add(self, park: str, sessions: Iterable[ChargerSession]) -> int:
        """Add sessions, each replacing the one of the same charger and arrival.

        Closing a session is adding it with its departure. Writing the same
        session twice changes nothing.

        Returns:
            How many sessions were new to the set.
        """
        batch = list(sessions)
        if not batch:
            return 0
        newest = max(s.arrival for s in batch)
        keep = newest - timedelta(days=self.retention_days)
        expires = math.ceil((newest + timedelta(days=self.retention_days)).timestamp())
        key = self.state.park(park).ev_sessions
        added = 0
        async with self.state.guard("ev_sessions_add"):
            for i in range(0, len(batch), _PER_CALL):
                args: list[Any] = [repr(keep.timestamp()), expires]
                for s in batch[i : i + _PER_CALL]:
                    args += [repr(s.arrival.timestamp()), _identity(s), pack(session_to_data(s))]
                added += int(await self._put(keys=[key], args=args))
        return added

    async def read(
        self,
        park: str,
        begin: datetime,
        end: datetime,
        asset_ids: Iterable[str] | None = None,
    ) -> list[ChargerSession]:
        """The sessions that arrived in ``[begin, end)``, by arrival (of ``asset_ids`` if given)."""
        key = self.state.park(park).ev_sessions
        async with self.state.guard("ev_sessions_read"):
            raw = await self.state.redis.zrangebyscore(
                key, repr(begin.timestamp()), f"({end.timestamp()!r}"
            )
        wanted = None if asset_ids is None else set(asset_ids)
        out = [session_from_data(unpack(cast(bytes, m))) for m in raw]
        return [s for s in out if wanted is None or s.asset_id in wanted]

    async def open_sessions(self, park: str, since: datetime) -> list[ChargerSession]:
        """The sessions still open that arrived at or after ``since``, by arrival."""
        far = datetime.max.replace(tzinfo=UTC)
        return [s for s in await self.read(park, since, far) if s.open]


@dataclass(slots=True)
class _Plug:
    """What the tracker knows of one charger."""

    #: time (epoch s) of its latest reading taken
    last: float
    #: its open session, if a vehicle is plugged in
    session: ChargerSession | None = None
    #: power of the latest available reading (NaN after an unavailable one) and its time
    held_kw: float = math.nan
    held_at: float = 0.0


class SessionTracker:
    """Sessions of one park's chargers, from their successive live readings.

    Feed it with `observe` in time order per charger; take what changed with
    `drain` (the latest state of each session opened, updated or closed
    since the last drain) and write it with `SessionStore.add`.

    Args:
        hold_s: seconds a reading's power holds at most (the live TTL), on
            the timeline of the times given to `observe`.
        max_gap_s: seconds a vehicle may go unseen and still be the same session.

    Raises:
        ValueError: ``hold_s`` or ``max_gap_s`` not above 0.
    """

    def __init__(self, *, hold_s: float, max_gap_s: float = DEFAULT_MAX_GAP_S) -> None:
        if hold_s <= 0 or max_gap_s <= 0:
            raise ValueError("hold_s and max_gap_s must be above 0")
        self.hold_s = hold_s
        self.max_gap_s = max_gap_s
        self._plugs: dict[str, _Plug] = {}
        self._changed: dict[tuple[str, float], ChargerSession] = {}

    def resume(self, sessions: Iterable[ChargerSession]) -> None:
        """Carry on open sessions (from the store, after a restart).

        The newest open session of a charger is carried on; an older one
        (left open by a crash before its vehicle left) is closed when it was
        last seen, and comes out of the next `drain`. A charger that already
        has readings keeps what they said.
        """
        newest: dict[str, ChargerSession] = {}
        for s in sorted((s for s in sessions if s.open), key=lambda s: s.arrival):
            older = newest.get(s.asset_id)
            if older is not None:
                self._changed_to(replace(older, departure=older.seen))
            newest[s.asset_id] = s
        for asset_id, s in newest.items():
            if asset_id not in self._plugs:
                self._plugs[asset_id] = _Plug(last=s.seen.timestamp(), session=s)

    def open(self) -> dict[str, ChargerSession]:
        """The open session of each charger that has one."""
        return {a: p.session for a, p in self._plugs.items() if p.session is not None}

    def drain(self) -> list[ChargerSession]:
        """The sessions that changed since the last drain, their latest state, by arrival."""
        changed, self._changed = self._changed, {}
        return sorted(changed.values(), key=lambda s: (s.arrival, s.asset_id))

    def _changed_to(self, s: ChargerSession) -> None:
        self._changed[(s.asset_id, s.arrival.timestamp())] = s

    @property
    def pending(self) -> bool:
        """Whether changed sessions wait for `drain`."""
        return bool(self._changed)

    def keep(self, sessions: Iterable[ChargerSession]) -> None:
        """Put back sessions a failed write did not store (a newer state of one wins)."""
        for s in sessions:
            self._changed.setdefault((s.asset_id, s.arrival.timestamp()), s)

    def observe(self, asset_id: str, t: float, live: LiveState) -> None:
        """Take one reading of a charger, taken at ``t`` (epoch s on the service clock).

        Readings of other assets (``ev_connected`` None and no session) cost
        a dictionary lookup.
        """
        plug = self._plugs.get(asset_id)
        if plug is None and not live.ev_connected:
            return
        if plug is None:
            plug = self._plugs[asset_id] = _Plug(last=-math.inf)
        if t <= plug.last:
            return  # late or repeated: the session has moved on
        plug.last = t
        session = plug.session
        if session is not None:
            session = self._integrate(plug, session, t)
        if not live.available:
            plug.held_kw = math.nan
        else:
            session = self._plug_state(asset_id, plug, session, t, live)
            plug.held_kw, plug.held_at = live.power_kw, t
        plug.session = session
        if session is not None:
            self._changed_to(session)

    def _integrate(self, plug: _Plug, s: ChargerSession, t: float) -> ChargerSession:
        """Add the held power of the latest available reading up to ``t`` (at most a hold)."""
        if math.isnan(plug.held_kw):
            return s
        end = min(t, plug.held_at + self.hold_s)
        if end <= plug.held_at:
            return s
        kwh = plug.held_kw * (end - plug.held_at) / 3600.0
        plug.held_at = end
        return replace(s, energy_delivered_kwh=s.energy_delivered_kwh + kwh)

    def _plug_state(
        self, asset_id: str, plug: _Plug, s: ChargerSession | None, t: float, live: LiveState
    ) -> ChargerSession | None:
        """Apply what an available reading says about the plug; returns the open session."""
        at = datetime.fromtimestamp(t, UTC)
        if live.ev_connected is None:
            return s
        if not live.ev_connected:
            if s is not None:
                seen = s.seen.timestamp()
                gone = at if t - seen <= self.hold_s else s.seen
                self._changed_to(replace(s, departure=gone))
            return None
        if s is not None:
            gap = t - s.seen.timestamp()
            same_departure = (
                live.ev_departure is not None and live.ev_departure == s.stated_departure
            )
            if gap <= self.max_gap_s or same_departure:
                return replace(
                    s,
                    seen=at,
                    stated_departure=s.stated_departure or live.ev_departure,
                    energy_needed_kwh=(
                        live.ev_energy_needed_kwh
                        if s.energy_needed_kwh is None
                        else s.energy_needed_kwh
                    ),
                )
            self._changed_to(replace(s, departure=s.seen))
        return ChargerSession(
            asset_id=asset_id,
            arrival=at,
            departure=None,
            stated_departure=live.ev_departure,
            energy_needed_kwh=live.ev_energy_needed_kwh,
            energy_delivered_kwh=0.0,
            seen=at,
        )
