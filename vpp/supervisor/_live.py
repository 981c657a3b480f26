"""Readings in, live state out: the coalescing batch written to Redis in one pipeline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from pydantic import ValidationError

from adapters.types import Telemetry
from vpp.errors import StateError
from vpp.model import LiveState
from vpp.state import State
from vpp.supervisor._routing import Route

__all__ = ["LiveBatch", "live_state"]

log = logging.getLogger("vpp.supervisor")


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def live_state(
    route: Route, reading: Telemetry, schedule_time: Callable[[float], datetime] = _utc
) -> LiveState:
    """Telemetry in device language -> the service's live state.

    ``LiveState.energy_kwh`` is stored energy, so it comes from SoC and the
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
        power_kw=reading.power_kw,
        soc=reading.soc,
        energy_kwh=None if capacity is None or reading.soc is None else reading.soc * capacity,
        ev_connected=reading.ev_connected,
        ev_departure=None if reading.departure_ts is None else schedule_time(reading.departure_ts),
        ev_energy_needed_kwh=reading.energy_needed_kwh,
        available=reading.available,
        ts=_utc(reading.ts),
    )


class LiveBatch:
    """Readings waiting to be written, the latest per asset.

    Args:
        flush_max: readings (before coalescing) that make the batch due at once.
    """

    def __init__(
        self, *, flush_max: int, schedule_time: Callable[[float], datetime] | None = None
    ) -> None:
        self.flush_max = flush_max
        self._schedule_time = schedule_time or _utc
        #: set when ``flush_max`` readings wait
        self.due = asyncio.Event()
        self._pending: dict[str, dict[str, tuple[Route, Telemetry]]] = {}
        self._count = 0

    def add(self, route: Route, reading: Telemetry) -> None:
        """Keep a reading, replacing an older one of the same asset."""
        self._pending.setdefault(route.park, {})[route.asset_id] = (route, reading)
        self._count += 1
        if self._count >= self.flush_max:
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
        writes = []
        for park, readings in batch.items():
            states: dict[str, LiveState] = {}
            for asset_id, (route, reading) in readings.items():
                if not routed(park, asset_id):
                    continue
                try:
                    states[asset_id] = live_state(route, reading, self._schedule_time)
                except ValidationError as exc:
                    log.warning("%s/%s: reading does not fit live state: %s", park, asset_id, exc)
            if states:
                writes.append(_write(state, park, states, ttl))
        return sum(await asyncio.gather(*writes))


async def _write(state: State, park: str, states: Mapping[str, LiveState], ttl: float) -> int:
    try:
        await state.write_live_many(park, states, ttl)
    except StateError as exc:
        log.warning("live state of %d assets of %s not written: %s", len(states), park, exc)
        return 0
    return len(states)
