"""Readings in, live state out: the coalescing batch written to Redis in one pipeline.

A reading is live by its age (``State.write_live_many`` keeps it until it is
``live_ttl_s`` old by its own ``ts``); :func:`date_reading` judges that age on
arrival. An adapter whose transport went down has its assets marked
unavailable at once (:meth:`LiveBatch.mark_down`), not left to age out.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

from pydantic import ValidationError

from adapters.freshness import Stale
from adapters.types import Telemetry
from vpp.errors import StateError
from vpp.model import LiveState
from vpp.state import State
from vpp.supervisor._routing import AdapterRoute

__all__ = [
    "FLUSH_INTERVAL_S",
    "FLUSH_MAX",
    "FUTURE_TOLERANCE_S",
    "IN_FUTURE",
    "LiveBatch",
    "LiveSink",
    "date_reading",
    "live_state",
]

log = logging.getLogger("vpp.supervisor")

#: How far ahead of the service's clock a reading may be dated (seconds) before
#: its ``ts`` is taken for a wrong device clock and replaced by its arrival.
FUTURE_TOLERANCE_S = 2.0
#: The ``reason`` of a ``ts`` dated in the future (vpp_telemetry_fields_rejected_total).
IN_FUTURE = "in_future"
#: The supervisor's defaults: readings that make a write due at once, and the
#: longest a reading waits for its write (seconds).
FLUSH_MAX = 1000
FLUSH_INTERVAL_S = 0.1


def date_reading(reading: Telemetry, now: float, ttl: float) -> tuple[Telemetry | None, str]:
    """Judge a reading's age against its arrival, for every protocol alike.

    Args:
        reading: as the adapter produced it (``ts``: when it was taken).
        now: when it reached the supervisor (UNIX seconds).
        ttl: the live TTL (seconds).

    Returns:
        ``(reading, "")`` when it is live as it is; ``(re-dated reading,
        IN_FUTURE)`` when its ``ts`` lies more than ``FUTURE_TOLERANCE_S``
        ahead (a device clock ahead: the reading cannot be younger than its
        arrival); ``(None, Stale.OLD)`` when it is already ``ttl`` old.
    """
    if reading.ts > now + FUTURE_TOLERANCE_S:
        return replace(reading, ts=now), IN_FUTURE
    if now - reading.ts >= ttl:
        return None, Stale.OLD
    return reading, ""


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def live_state(
    route: AdapterRoute, reading: Telemetry, schedule_time: Callable[[float], datetime] = _utc
) -> LiveState:
    """Telemetry in device language -> the service's live state.

    A meter reports its secondary side; its power is multiplied here by its
    enrolled multiplier (``route.multiplier``, CT x VT: 倍率), the one place a
    reading of any protocol becomes live state, so the live state and the
    interval history recorded from it are primary kW (every other kind has
    multiplier 1). ``LiveState.energy_kwh`` is stored energy, so it comes from SoC and the
    enrolled capacity; a reading's ``energy_kwh`` is a meter register and is
    not copied. ``schedule_time`` maps a device's wall-clock schedule (an EV's
    departure) onto the service clock's timeline (the identity in real time;
    `vpp.clock.Clock.from_wall` under a compressed demo clock). The reading's
    own ``ts`` stays wall-clock: it dates the measurement.

    Raises:
        ValidationError: a value outside what the live state allows.
    """
    capacity = route.limits.capacity_kwh
    return LiveState(
        power_kw=reading.power_kw * route.multiplier,
        soc=reading.soc,
        energy_kwh=None if capacity is None or reading.soc is None else reading.soc * capacity,
        ev_connected=reading.ev_connected,
        ev_departure=None if reading.departure_ts is None else schedule_time(reading.departure_ts),
        ev_energy_needed_kwh=reading.energy_needed_kwh,
        available=reading.available,
        ts=_utc(reading.ts),
    )


#: Takes the accepted readings of a park, asset id -> live state (the interval
#: history's recorder, `vpp.history.recorder.HistoryRecorder.record`).
LiveSink = Callable[[str, Mapping[str, LiveState]], None]


class LiveBatch:
    """Readings waiting to be written, the latest per asset.

    Args:
        flush_max: readings (before coalescing) that make the batch due at once.
        schedule_time: maps a device's wall-clock schedule onto the service clock.
        history: given each park's readings as they are written (also when
            the write fails: the history keeps them).
    """

    def __init__(
        self,
        *,
        flush_max: int,
        schedule_time: Callable[[float], datetime] | None = None,
        history: LiveSink | None = None,
    ) -> None:
        self.flush_max = flush_max
        self._schedule_time = schedule_time or _utc
        self._history = history
        #: set when ``flush_max`` readings wait, or assets are to be marked down
        self.due = asyncio.Event()
        self._pending: dict[str, dict[str, tuple[AdapterRoute, Telemetry]]] = {}
        #: assets to mark unavailable with no reading pending: park -> asset -> route
        self._down: dict[str, dict[str, AdapterRoute]] = {}
        self._count = 0

    def admit(
        self,
        readings: Iterable[Telemetry],
        route_of: Callable[[str], AdapterRoute | None],
        *,
        now: float,
        ttl: float,
        connected: bool,
        stale: Counter[str],
        rejected: Counter[tuple[str, str]],
    ) -> int:
        """Date and keep one adapter's batch of readings (the supervisor's consumer).

        Args:
            readings: as the adapter produced them, in arrival order.
            route_of: the route of a device id of that adapter (None: retired,
                or not enrolled here: the reading is skipped).
            now: when the batch reached the supervisor (UNIX seconds).
            ttl: the live TTL (seconds).
            connected: whether the adapter's transport is up now (a reading
                read before it went down is kept unavailable).
            stale: counts readings already too old, by reason.
            rejected: counts ``ts`` fields replaced, by ``("ts", reason)``.

        Returns:
            How many of the readings kept came from meters.
        """
        meters = 0
        for reading in readings:
            route = route_of(reading.asset_id)
            if route is None:
                continue
            dated, why = date_reading(reading, now, ttl)
            if dated is None:
                stale[why] += 1
                continue
            if why:
                rejected[("ts", why)] += 1
            if dated.available and not connected:
                # read before the transport went down: the device is not reachable now
                dated = replace(dated, available=False)
            self.add(route, dated)
            if route.meter:
                meters += 1
        return meters

    def add(self, route: AdapterRoute, reading: Telemetry) -> None:
        """Keep a reading, replacing an older one of the same asset."""
        # a newer reading carries its own availability
        self._down.get(route.park, {}).pop(route.asset_id, None)
        self._pending.setdefault(route.park, {})[route.asset_id] = (route, reading)
        self._count += 1
        if self._count >= self.flush_max:
            self.due.set()

    def mark_down(self, routes: Iterable[AdapterRoute]) -> None:
        """Mark assets unavailable at the next flush (their adapter lost its transport).

        A pending reading is marked at once; an asset with none has its live
        state in Redis re-written unavailable (same power and ``ts``, so it
        still ages out when it would have).
        """
        for route in routes:
            pending = self._pending.get(route.park, {}).get(route.asset_id)
            if pending is not None:
                marked = replace(pending[1], available=False)
                self._pending[route.park][route.asset_id] = (route, marked)
            else:
                self._down.setdefault(route.park, {})[route.asset_id] = route
        self.due.set()

    async def flush(self, state: State, ttl: float, routed: Callable[[str, str], bool]) -> int:
        """Write what is pending, one pipeline per park; never raises StateError.

        Args:
            state: the repository.
            ttl: the live TTL in seconds.
            routed: whether ``(park, asset id)`` is still served (retired ones are dropped).

        Returns:
            How many live states were written.
        """
        self.due.clear()
        batch, self._pending, self._count = self._pending, {}, 0
        down, self._down = self._down, {}
        writes = []
        for park in sorted(set(batch) | set(down)):
            states: dict[str, LiveState] = {}
            for asset_id, (route, reading) in batch.get(park, {}).items():
                if not routed(park, asset_id):
                    continue
                try:
                    states[asset_id] = live_state(route, reading, self._schedule_time)
                except ValidationError as exc:
                    log.warning("%s/%s: reading does not fit live state: %s", park, asset_id, exc)
            if self._history is not None and states:
                self._history(park, states)
            gone = [a for a in down.get(park, {}) if a not in states and routed(park, a)]
            writes.append(_write(state, park, states, gone, ttl))
        return sum(await asyncio.gather(*writes))


async def _write(
    state: State, park: str, states: dict[str, LiveState], gone: list[str], ttl: float
) -> int:
    try:
        if gone:
            current = await state.read_live_many(park, gone)
            for asset_id, live in current.items():
                if live is not None and live.available:
                    states[asset_id] = live.model_copy(update={"available": False})
        if not states:
            return 0
        return await state.write_live_many(park, states, ttl)
    except StateError as exc:
        log.warning("live state of %d assets of %s not written: %s", len(states), park, exc)
        return 0
