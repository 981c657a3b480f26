"""The interval history in Redis: one packed day vector per series and local day.

Key (`vpp.keys.Keys.history`): ``{ns}:{park}:hist:{series}:{YYYYMMDD}``, a
string under the park's hash tag. Value: 96 slots of 6 bytes (576 bytes),
slot ``i`` at byte offset ``6 i``::

    float32 LE  energy over the slot's covered part, kWh (positive = drawn)
    uint16  LE  bits 0-9: covered seconds 0..900; bit 15: imported

An unwritten slot reads as six zero bytes: coverage 0, i.e. no data (never
zero load). Telemetry is merged in additively (`HistoryStore.add`: energy
adds up, covered seconds add up to at most 900), one Lua script per batch of
day vectors, so any number of writers and late readings merge in any order;
a slot holding imported metering data (bit 15, written by
`HistoryStore.put_days`) is never touched by telemetry: revenue-grade data
wins. A day vector is created at its full 576 bytes, so Redis never grows it
(a grown string keeps up to twice its length allocated).

Retention: every write sets the key's ``EXPIREAT`` to the end of its local
day (the next local midnight in ``Park.timezone``) plus ``retention_days``
(setting ``[history] retention_days``), so old days leave by themselves,
without a scan of the keyspace. The bytes one asset-day takes in Redis are
measured by ``python -m tests.benchmarks.history`` (``MEMORY USAGE``).

Errors: Redis failures become ``StateUnavailable`` / ``StateError``
(`vpp.state.State.guard`); bad arguments raise ``ValueError``.
"""

from __future__ import annotations

import logging
import math
import struct
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from vpp.errors import NotFound
from vpp.history.grid import INTERVAL_S, SLOTS_PER_DAY, DayVector, day_start
from vpp.model import Park
from vpp.state import State

__all__ = [
    "DAY_BYTES",
    "SLOT_BYTES",
    "DayArrays",
    "HistoryStore",
    "IntervalDelta",
    "pack_day",
    "unpack_day",
]

log = logging.getLogger("vpp.history")

#: Bytes of one slot: float32 energy, uint16 covered seconds and flags.
SLOT_BYTES = 6
#: Bytes of one day vector.
DAY_BYTES = SLOT_BYTES * SLOTS_PER_DAY
#: Bits 0-9 of a slot's uint16: covered seconds.
COVERED_MASK = 0x03FF
#: Bit 15 of a slot's uint16: the slot holds imported metering data.
IMPORTED_BIT = 0x8000

_SLOT_DTYPE = np.dtype([("energy", "<f4"), ("flags", "<u2")])
#: Keys per MGET of a bulk read: bounds how long one command holds Redis.
_KEYS_PER_MGET = 2000
#: One slot's telemetry as the add script takes it: slot, energy kWh, covered s.
_DELTA = struct.Struct("<BdH")
#: Day vectors per script call: bounds how long one call holds Redis (~1 ms per 250).
_KEYS_PER_CALL = 250
#: Seconds a park's time zone is remembered before it is read again.
_ZONE_TTL_S = 300.0

# KEYS: day vectors. ARGV, two per key in order: its expireat, and its slots
# packed as n x '<BdH' (slot, energy kWh, covered s). Creates a missing key at
# its full size, adds into each slot not imported (covered capped at 900) and
# sets the expiry. Returns the number of (key, slot) pairs left alone because
# they hold imported data.
_ADD = f"""
local kept = 0
for k = 1, #KEYS do
  local key = KEYS[k]
  local slots = ARGV[2 * k]
  if redis.call('EXISTS', key) == 0 then
    redis.call('SET', key, string.rep('\\0', {DAY_BYTES}))
  end
  for p = 1, #slots, {_DELTA.size} do
    local slot, add_energy, add_covered = struct.unpack('{_DELTA.format}', slots, p)
    local offset = slot * {SLOT_BYTES}
    local energy, flags = struct.unpack('<fH', redis.call('GETRANGE', key, offset, offset + 5))
    if flags >= {IMPORTED_BIT} then
      kept = kept + 1
    else
      local covered = math.min({INTERVAL_S}, flags + add_covered)
      redis.call('SETRANGE', key, offset, struct.pack('<fH', energy + add_energy, covered))
    end
  end
  redis.call('EXPIREAT', key, ARGV[2 * k - 1])
end
return kept
"""


@dataclass(frozen=True, slots=True)
class IntervalDelta:
    """Telemetry to add into one slot of one series' day.

    Attributes:
        series: the asset or meter id.
        day: the park's local day.
        slot: 0..95 (`vpp.history.grid.locate`).
        energy_kwh: energy over the covered seconds, kWh (positive = drawn; may
            be negative, also to correct a segment a late reading shortened).
        covered_s: seconds of the slot the energy covers (>= 0; rounded to
            whole seconds when stored, the slot's total capped at 900).
    """

    series: str
    day: date
    slot: int
    energy_kwh: float
    covered_s: float


def pack_day(
    energy_kwh: Sequence[float] | np.ndarray,
    covered_s: Sequence[int] | np.ndarray,
    imported: Sequence[bool] | np.ndarray,
) -> bytes:
    """Encode one day vector (96 slots each).

    Raises:
        ValueError: not 96 values each, or a covered time outside 0..900 s.
    """
    covered = np.asarray(covered_s, dtype=np.int64)
    if (
        len(energy_kwh) != SLOTS_PER_DAY
        or len(covered) != SLOTS_PER_DAY
        or len(imported) != SLOTS_PER_DAY
    ):
        raise ValueError(f"a day vector has {SLOTS_PER_DAY} slots")
    if covered.min() < 0 or covered.max() > INTERVAL_S:
        raise ValueError(f"covered seconds are 0..{INTERVAL_S}")
    slots = np.zeros(SLOTS_PER_DAY, dtype=_SLOT_DTYPE)
    slots["energy"] = energy_kwh
    slots["flags"] = covered + np.where(np.asarray(imported, dtype=bool), IMPORTED_BIT, 0)
    return slots.tobytes()


@dataclass(frozen=True, slots=True, eq=False)
class DayArrays:
    """Many series' days decoded at once: each array ``(series, days, 96)``.

    Attributes:
        energy_kwh: energy per slot over its covered part, kWh.
        coverage: covered fraction per slot, 0..1 (0 = no data).
        imported: True where the slot holds imported metering data.
    """

    energy_kwh: NDArray[np.float64]
    coverage: NDArray[np.float64]
    imported: NDArray[np.bool_]


def _full_day(raw: bytes | None) -> bytes:
    """A stored day vector at its full length: missing or short, the rest reads as no data."""
    if raw is not None and len(raw) == DAY_BYTES:
        return raw
    return (raw or b"")[:DAY_BYTES].ljust(DAY_BYTES, b"\0")


def _decode(raws: Sequence[bytes | None], shape: tuple[int, ...]) -> DayArrays:
    """Decode stored day vectors (None: no key) into arrays of ``shape + (96,)``, in one go."""
    buffer = b"".join(_full_day(r) for r in raws)
    slots = np.frombuffer(buffer, dtype=_SLOT_DTYPE).reshape(*shape, SLOTS_PER_DAY)
    flags = slots["flags"]
    return DayArrays(
        energy_kwh=slots["energy"].astype(np.float64),
        coverage=(flags & COVERED_MASK).astype(np.float64) / INTERVAL_S,
        imported=(flags & IMPORTED_BIT) != 0,
    )


def unpack_day(raw: bytes | None) -> DayVector:
    """Decode a stored day vector; None (no key) or short bytes read as no data."""
    day = _decode([raw], ())
    return DayVector(day.energy_kwh, day.coverage, day.imported)


def _holds_data(raw: bytes | None) -> bool:
    return bool(raw) and bool(np.any(unpack_day(raw).coverage > 0))


def _days(first: date, last: date) -> list[date]:
    if last < first:
        raise ValueError(f"the last day {last} is before the first {first}")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


class HistoryStore:
    """Reads and writes the interval history of every park.

    Args:
        state: the service's repository (its Redis client, key namespace and
            error translation are used).
        retention_days: days a series' day is kept after its end
            (``[history] retention_days``).

    Raises:
        ValueError: ``retention_days`` below 1.
    """

    def __init__(self, state: State, *, retention_days: int = 400) -> None:
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        self.state = state
        self.retention_days = retention_days
        self._add = state.redis.register_script(_ADD)
        self._zones: dict[str, tuple[float, ZoneInfo]] = {}

    async def zone(self, park: str) -> ZoneInfo:
        """The park's time zone (``Park.timezone``; the default one for a park not enrolled).

        Remembered for a few minutes, so a write does not read the park each time.
        """
        known = self._zones.get(park)
        if known is not None and time.monotonic() - known[0] < _ZONE_TTL_S:
            return known[1]
        try:
            name = (await self.state.get_park(park)).timezone
        except NotFound:
            name = cast(str, Park.model_fields["timezone"].default)
        tz = ZoneInfo(name)
        self._zones[park] = (time.monotonic(), tz)
        return tz

    def expires_at(self, day: date, tz: ZoneInfo) -> int:
        """When the day vector of ``day`` expires: its local end plus the retention (epoch s)."""
        end = day_start(day + timedelta(days=1), tz)
        return int((end + timedelta(days=self.retention_days)).timestamp())

    async def add(
        self, park: str, deltas: Iterable[IntervalDelta], *, tz: ZoneInfo | None = None
    ) -> None:
        """Add telemetry into slots: energy adds up, covered seconds add up to at most 900.

        Deltas for the same slot are summed first. Each slot's merge is atomic
        (a Lua script over a batch of day vectors, the batches pipelined), so
        several writers and late readings merge in any order. A slot holding
        imported metering data is left as it is.

        Args:
            park: the park id.
            deltas: the telemetry, any series and days of the park.
            tz: the park's time zone (read from the park when omitted).

        Raises:
            ValueError: a slot outside 0..95, a negative covered time or a
                non-finite number.
            StateUnavailable: Redis did not answer (nothing may have been added).
        """
        merged: dict[tuple[str, date], dict[int, list[float]]] = defaultdict(dict)
        for d in deltas:
            if not 0 <= d.slot < SLOTS_PER_DAY:
                raise ValueError(f"slot {d.slot} of {d.series} is outside 0..{SLOTS_PER_DAY - 1}")
            if not (math.isfinite(d.energy_kwh) and math.isfinite(d.covered_s)) or d.covered_s < 0:
                raise ValueError(f"bad delta for {d.series} {d.day} slot {d.slot}: {d}")
            acc = merged[d.series, d.day].setdefault(d.slot, [0.0, 0.0])
            acc[0] += d.energy_kwh
            acc[1] += d.covered_s
        if not merged:
            return
        zone = tz if tz is not None else await self.zone(park)
        keys = self.state.park(park)
        calls: list[tuple[list[str], list[Any]]] = []
        expiry: dict[date, int] = {}
        for (series, day), slots in merged.items():
            if not calls or len(calls[-1][0]) >= _KEYS_PER_CALL:
                calls.append(([], []))
            call_keys, args = calls[-1]
            call_keys.append(keys.history(series, day))
            if day not in expiry:
                expiry[day] = self.expires_at(day, zone)
            packed = b"".join(
                _DELTA.pack(slot, energy, min(INTERVAL_S, round(covered)))
                for slot, (energy, covered) in slots.items()
            )
            args += [expiry[day], packed]
        async with self.state.guard("history_add"), self.state.batch(keys.meta) as pipe:
            for call_keys, args in calls:
                _ = await self._add(keys=call_keys, args=args, client=pipe)  # queued
            await pipe.execute()

    async def put_days(
        self,
        park: str,
        series: str,
        days: Mapping[date, Sequence[float]],
        *,
        tz: ZoneInfo | None = None,
    ) -> list[date]:
        """Replace whole days of a series with imported metering data.

        Every slot gets the given energy, full coverage and the imported flag;
        all days are written in one transaction (all or nothing).

        Args:
            park: the park id.
            series: the meter (or asset) id.
            days: local day -> its 96 interval energies, kWh.
            tz: the park's time zone (read from the park when omitted).

        Returns:
            The days that held data before (telemetry or an earlier import),
            now replaced, sorted.

        Raises:
            ValueError: a day without exactly 96 values, or a non-finite value.
            StateUnavailable: Redis did not answer (nothing was written, or all).
        """
        packed: dict[date, bytes] = {}
        for day, energies in sorted(days.items()):
            values = np.asarray(energies, dtype=np.float64)
            if values.shape != (SLOTS_PER_DAY,):
                raise ValueError(f"{day}: {len(values)} values, expected {SLOTS_PER_DAY}")
            if not np.all(np.isfinite(values)):
                raise ValueError(f"{day}: every energy must be a finite number")
            full = np.full(SLOTS_PER_DAY, INTERVAL_S)
            packed[day] = pack_day(values, full, np.ones(SLOTS_PER_DAY, dtype=bool))
        if not packed:
            return []
        zone = tz if tz is not None else await self.zone(park)
        keys = self.state.park(park)
        async with (
            self.state.guard("history_put"),
            self.state.transaction(keys.meta) as pipe,
        ):
            for day, value in packed.items():
                _ = pipe.set(
                    keys.history(series, day), value, exat=self.expires_at(day, zone), get=True
                )
            olds = await pipe.execute()
        return [day for day, old in zip(packed, olds, strict=True) if _holds_data(old)]

    async def read(
        self, park: str, series: Sequence[str], first: date, last: date
    ) -> dict[str, dict[date, DayVector]]:
        """The history of ``series`` over the local days ``first``..``last`` (inclusive).

        Returns:
            series -> day -> its `DayVector`, every day of the range present
            (`DayVector.empty` where nothing is stored).

        Raises:
            ValueError: ``last`` before ``first``.
            StateUnavailable: Redis did not answer.
        """
        days = _days(first, last)
        names = list(dict.fromkeys(series))
        if not names:
            return {}
        block = await self.read_arrays(park, names, days)
        return {
            s: {
                d: DayVector(block.energy_kwh[i, j], block.coverage[i, j], block.imported[i, j])
                for j, d in enumerate(days)
            }
            for i, s in enumerate(names)
        }

    async def read_arrays(
        self, park: str, series: Sequence[str], days: Sequence[date]
    ) -> DayArrays:
        """The history of ``series`` on ``days``, decoded in bulk: arrays ``(S, D, 96)``.

        For many series: one decode for every day vector instead of an object
        each (at 1,000 series the per-object decode costs more than a whole
        baseline). MGETs of at most `_KEYS_PER_MGET` keys, pipelined, so one
        command never holds Redis long. A day not stored reads as no data.

        Raises:
            StateUnavailable: Redis did not answer.
        """
        names = self.state.park(park).histories(series, days)
        raws: list[bytes | None] = []
        async with (
            self.state.guard("history_read"),
            self.state.batch(self.state.park(park).meta) as pipe,
        ):
            for i in range(0, len(names), _KEYS_PER_MGET):
                _ = pipe.mget(names[i : i + _KEYS_PER_MGET])
            for chunk in await pipe.execute():
                raws.extend(chunk)
        return _decode(raws, (len(series), len(days)))
