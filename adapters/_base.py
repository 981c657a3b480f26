"""What every adapter shares: the bounded telemetry queue, live state, stats.

Not public: each adapter composes one :class:`AssetBook` and exposes its
pieces through the :class:`adapters.types.Adapter` shape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping

from adapters.clamp import ClampResult, clamp_setpoint
from adapters.errors import UnknownAsset
from adapters.lifecycle import BackgroundService
from adapters.types import AdapterStats, Confirmation, DeviceLimits, Setpoint, Telemetry

__all__ = ["REJECT_LOG_EVERY_S", "AssetBook", "BookedService"]

#: Seconds between two warnings about the same dropped field of the same source.
REJECT_LOG_EVERY_S = 300.0
#: Bound on the remembered (source, field, reason) keys.
_WARNED_MAX = 10_000
#: Readings one by one are gathered into a waiting batch up to this many.
_BATCH_MAX = 4096


class AssetBook:
    """Per-adapter bookkeeping: enrolled limits, latest readings, a bounded queue.

    The queue holds batches (lists) of readings in arrival order: an adapter
    that reads many at once hands them over as one (``publish_many``), and the
    consumer takes what waits as one (``batches``), so a reading costs the
    queue no task switch of its own.

    Args:
        limits: enrolled limits per asset id.
        queue_size: bound on readings waiting for the consumer; when full, the
            oldest reading is dropped (and counted), never the connection.
        log: the adapter's logger.
        time_scale: device seconds per wall-clock second (1.0 for real
            equipment; a compressed simulation passes its speed-up).
    """

    def __init__(
        self,
        limits: Mapping[str, DeviceLimits],
        *,
        queue_size: int,
        log: logging.Logger,
        time_scale: float = 1.0,
    ) -> None:
        self.limits = dict(limits)
        self.time_scale = time_scale
        self.stats = AdapterStats()
        self.latest: dict[str, Telemetry] = {}
        self._queue: deque[list[Telemetry]] = deque()
        self._queued = 0
        self._queue_size = queue_size
        self._ready = asyncio.Event()
        self._log = log
        #: when each (source, field, reason) was last logged at warning level
        self._warned: dict[tuple[str, str, str], float] = {}

    def limits_of(self, asset_id: str) -> DeviceLimits:
        """Return the enrolled limits of one asset or raise :class:`UnknownAsset`."""
        try:
            return self.limits[asset_id]
        except KeyError:
            raise UnknownAsset(asset_id) from None

    def publish(self, reading: Telemetry) -> None:
        """Record a reading as the asset's live state and queue it for the consumer."""
        self.latest[reading.asset_id] = reading
        self.stats.record_telemetry()
        queue = self._queue
        if queue and len(queue[-1]) < _BATCH_MAX:
            queue[-1].append(reading)  # not taken yet: the consumer pops whole batches
        else:
            queue.append([reading])
        self._queued += 1
        self._queued_now()

    def publish_many(self, readings: list[Telemetry]) -> None:
        """Record readings (in arrival order) and queue them as one batch (the list is kept)."""
        if not readings:
            return
        latest = self.latest
        for reading in readings:
            latest[reading.asset_id] = reading
        self.stats.record_telemetry(len(readings))
        self._queue.append(readings)
        self._queued += len(readings)
        self._queued_now()

    def _queued_now(self) -> None:
        """Drop the oldest readings beyond the bound (counted), and wake the consumer."""
        excess = self._queued - self._queue_size
        while excess > 0:
            head = self._queue[0]
            n = min(len(head), excess)
            if n == len(head):
                self._queue.popleft()
            else:
                del head[:n]
            excess -= n
            self._queued -= n
            self.stats.dropped += n
        self._ready.set()

    def reject_field(self, where: str, name: str, reason: str, value: object) -> None:
        """Count and log one field dropped from a reading; the rest is kept.

        Every drop is counted; the warning is logged once per source, field and
        reason every ``REJECT_LOG_EVERY_S`` (a device that always sends a
        percent SoC must not flood the log), the repeats in between at debug.
        """
        self.stats.record_rejected_field(name, reason)
        key = (where, name, reason)
        now = time.monotonic()
        last = self._warned.get(key)
        if last is None or now - last >= REJECT_LOG_EVERY_S:
            if len(self._warned) >= _WARNED_MAX:
                self._warned.clear()
            self._warned[key] = now
            self._log.warning("dropped field %s=%r from %s: %s", name, value, where, reason)
        else:
            self._log.debug("dropped field %s=%r from %s: %s", name, value, where, reason)

    def bad_payload(self, where: str, detail: object) -> None:
        """Count and log one rejected incoming payload."""
        self.stats.bad_payloads += 1
        self._log.warning("dropped bad payload from %s: %s", where, detail)

    async def batches(self) -> AsyncIterator[list[Telemetry]]:
        """Yield what waits, batch by batch, forever (one consumer; never an empty batch)."""
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            batch = self._queue.popleft()
            self._queued -= len(batch)
            yield batch

    async def readings(self) -> AsyncIterator[Telemetry]:
        """Yield queued readings one by one, forever (one consumer)."""
        async for batch in self.batches():
            for reading in batch:
                yield reading

    def clamp(self, setpoint: Setpoint) -> ClampResult:
        """Clamp a setpoint against the asset's limits and live state."""
        return clamp_setpoint(
            setpoint.power_kw,
            self.limits_of(setpoint.asset_id),
            self.latest.get(setpoint.asset_id),
            now=time.time(),
            hold_s=setpoint.hold_s,
            time_scale=self.time_scale,
        )

    def confirm(
        self,
        setpoint: Setpoint,
        clamped: ClampResult,
        *,
        sent: bool,
        confirmed: bool,
        rtt_s: float | None,
        reason: str = "",
    ) -> Confirmation:
        """Build, count and log the confirmation of one setpoint."""
        why = "; ".join(r for r in (clamped.reason if clamped.clamped else "", reason) if r)
        conf = Confirmation(
            asset_id=setpoint.asset_id,
            requested_kw=setpoint.power_kw,
            sent_kw=clamped.power_kw if sent else None,
            clamped=clamped.clamped,
            confirmed=confirmed,
            rtt_s=rtt_s,
            reason=why,
        )
        self.stats.record_confirmation(conf)
        if not confirmed:
            self._log.warning("setpoint %s not confirmed: %s", setpoint, why)
        return conf


class BookedService(BackgroundService):
    """The read side every connecting adapter shares, served from its :class:`AssetBook`.

    Subclasses set ``_book`` and ``_connected`` (set while the link is up).
    """

    _book: AssetBook
    _connected: asyncio.Event

    @property
    def stats(self) -> AdapterStats:
        """Counters for the supervisor's metrics."""
        return self._book.stats

    async def wait_connected(self) -> None:
        """Wait until the device link is up (bound it with ``asyncio.timeout``)."""
        await self._connected.wait()

    def telemetry(self) -> AsyncIterator[Telemetry]:
        """Readings from every asset of this adapter as they arrive (one consumer)."""
        return self._book.readings()

    def telemetry_batches(self) -> AsyncIterator[list[Telemetry]]:
        """The same readings in the batches they arrived in (one consumer, instead).

        A consumer that handles many readings at once pays the hand-over once.
        """
        return self._book.batches()

    def last(self, asset_id: str) -> Telemetry | None:
        """The latest reading of one asset."""
        return self._book.latest.get(asset_id)
