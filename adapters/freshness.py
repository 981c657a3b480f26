"""How old a device's reading really is: its timestamp judged against receive time.

A device stamps its readings with its own clock, which may be wrong (never
set, drifting, stepped by NTP), and a message may arrive long after it was
taken (a gateway replaying what it buffered while offline, a retained MQTT
message delivered on subscribing, a duplicate). :class:`DeviceClocks` keeps,
per device, the offset of its clock from ours (device minus receive time, as
learned from its readings) and turns each device timestamp into the time the
reading was taken *on the service's clock*::

    skew = device_ts - received          this reading's apparent offset
    age  = offset - skew                 how much later than usual it arrived
    ts   = received - max(0, age)        when it was taken, on our clock

The offset follows the least-delayed readings (transit only ever adds
delay): a reading that arrives earlier than the offset predicts moves the
offset up at once; one within ``tolerance_s`` later nudges it down (drift).
A reading later than that by more than ``tolerance_s`` is *late*: it keeps
its age (so it counts as live only as long as its age allows), unless late
readings keep agreeing with each other on a new offset for ``relearn_s`` of
receive time: that is a clock that stepped back, not a replay (a replayed
burst has device times racing ahead of receive times). The same holds for
a device's first readings when its clock is off by more than ``tolerance_s``.

A reading is not kept (``stale``, with a :class:`Stale` reason) when:

* its device time is before the last kept reading's (``replayed``: an old
  reading after a newer one). The same device time again is judged by its
  age like any reading: devices with whole-second clocks send several
  readings a second, and a duplicate delivered at once repeats what is live;
* its age is beyond ``max_age_s`` (``old``);
* it is a retained MQTT message whose age cannot be told: no device time, or
  a device clock not in step (``retained``). The broker sets the retain flag
  only on messages sent because a subscription was made, never on live ones
  (MQTT 3.1.1 section 3.3.1.3);
* the device clock is off by more than ``tolerance_s`` and has not yet shown
  a steady offset (``unsynced``: until then a clock error and a replay look
  the same).

A reading without a device time is taken when received.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["DeviceClocks", "Judgement", "Stale"]

#: Readings that must agree on a new offset before a device's clock is re-learned.
RELEARN_READINGS = 3
#: Weight of one on-time reading pulling a drifting offset down.
DRIFT_WEIGHT = 0.1


class Stale(StrEnum):
    """Why a reading was not taken as live (the ``reason`` label of the stale counter)."""

    #: older than the live window when it arrived
    OLD = "old"
    #: older than the device's last kept reading (out of order)
    REPLAYED = "replayed"
    #: a retained MQTT message of unknown or too great an age
    RETAINED = "retained"
    #: the device's clock is off and its offset is not known yet
    UNSYNCED = "unsynced"


@dataclass(frozen=True, slots=True)
class Judgement:
    """What became of one reading's timestamp.

    Attributes:
        ts: when the reading was taken, on the service's clock (UNIX seconds),
            or None when the reading is not kept.
        stale: why it is not kept (None when it is).
        age_s: how old it was when it arrived (0 when on time or unknown).
    """

    ts: float | None
    stale: Stale | None = None
    age_s: float = 0.0


@dataclass(slots=True)
class _Clock:
    offset: float | None = None
    last_device_ts: float | None = None
    #: a run of readings off the learned offset: first receive time, skew range, count
    run_since: float = 0.0
    run_lo: float = 0.0
    run_hi: float = 0.0
    run_count: int = 0


class DeviceClocks:
    """The clock offset of every device of one adapter, and the judgement of each reading.

    Args:
        tolerance_s: how far a device clock may be from ours, and a reading
            later than usual, and still count as on time (seconds).
        max_age_s: the oldest a reading may be on arrival and still be kept
            (seconds; the live TTL is the natural choice).
        relearn_s: how long (receive time) readings off the learned offset
            must agree with each other before they are taken as the device's
            clock rather than late deliveries (seconds).
    """

    def __init__(
        self, *, tolerance_s: float = 2.0, max_age_s: float = 60.0, relearn_s: float = 5.0
    ) -> None:
        self.tolerance_s = tolerance_s
        self.max_age_s = max_age_s
        self.relearn_s = relearn_s
        self._clocks: dict[str, _Clock] = {}

    def offset(self, device: str) -> float | None:
        """The learned offset of a device's clock (device minus ours, seconds), if known."""
        clock = self._clocks.get(device)
        return None if clock is None else clock.offset

    def largest_offset(self) -> float:
        """The learned offset of largest magnitude among the devices (0 when none)."""
        offsets = [c.offset for c in self._clocks.values() if c.offset is not None]
        return max(offsets, key=abs, default=0.0)

    def forget(self, device: str) -> None:
        """Drop what is known of a device's clock (it rebooted, or was re-enrolled)."""
        self._clocks.pop(device, None)

    def judge(
        self, device: str, device_ts: float | None, received: float, *, retained: bool = False
    ) -> Judgement:
        """Judge one reading (see the module docstring for the rules).

        Args:
            device: the device (asset) id.
            device_ts: the device's own timestamp (UNIX seconds), if it gave a valid one.
            received: when the message arrived (UNIX seconds, our clock).
            retained: whether it is a retained message delivered on subscribing.
        """
        if device_ts is None:
            return Judgement(None, Stale.RETAINED) if retained else Judgement(received)
        clock = self._clocks.setdefault(device, _Clock())
        skew = device_ts - received
        if retained:
            return self._retained(clock, device_ts, skew, received)
        tol = self.tolerance_s
        in_order = clock.last_device_ts is None or device_ts >= clock.last_device_ts
        if in_order and clock.offset is not None:
            if skew > clock.offset + tol:  # earlier than a reading can come: a clock step
                return self._learn(clock, device_ts, skew, received)
            age = clock.offset - skew
            if age <= tol:
                if skew > clock.offset:  # the least-delayed reading so far
                    clock.offset = skew
                else:  # a drifting clock, or transit jitter
                    clock.offset += (skew - clock.offset) * DRIFT_WEIGHT
                clock.run_count = 0
                clock.last_device_ts = device_ts
                return Judgement(received - max(0.0, age), None, max(0.0, age))
        elif in_order and abs(skew) <= tol:  # the first reading, from a clock in step
            return self._learn(clock, device_ts, skew, received)
        # late, out of order, or from an unknown clock that is off
        if self._steady(clock, skew, received):
            # the least-delayed reading of the run dates the clock
            return self._learn(clock, device_ts, clock.run_hi, received)
        if not in_order:
            return Judgement(None, Stale.REPLAYED)
        if clock.offset is None:
            return Judgement(None, Stale.UNSYNCED)
        age = clock.offset - skew
        if age > self.max_age_s:
            return Judgement(None, Stale.OLD, age)
        # late, but young enough: kept with its true age (it ages out sooner)
        clock.last_device_ts = device_ts
        return Judgement(received - age, None, age)

    def _retained(self, clock: _Clock, device_ts: float, skew: float, received: float) -> Judgement:
        # never learn from a message of unknown delivery time: only its age counts
        if clock.last_device_ts is not None and device_ts < clock.last_device_ts:
            return Judgement(None, Stale.REPLAYED)
        if clock.offset is not None:
            age = max(0.0, clock.offset - skew)
        elif abs(skew) <= self.tolerance_s:
            age = max(0.0, -skew)
        else:
            return Judgement(None, Stale.RETAINED)
        if age > self.max_age_s:
            return Judgement(None, Stale.RETAINED, age)
        clock.last_device_ts = device_ts
        return Judgement(received - age, None, age)

    def _steady(self, clock: _Clock, skew: float, received: float) -> bool:
        """Track a run of readings off the offset; True once it is a steady clock."""
        if clock.run_count == 0 or max(clock.run_hi, skew) - min(clock.run_lo, skew) > (
            self.tolerance_s
        ):
            # a new run (a replayed burst keeps restarting: its device times race ahead)
            clock.run_since, clock.run_lo, clock.run_hi, clock.run_count = received, skew, skew, 1
            return False
        clock.run_lo, clock.run_hi = min(clock.run_lo, skew), max(clock.run_hi, skew)
        clock.run_count += 1
        return clock.run_count >= RELEARN_READINGS and received - clock.run_since >= self.relearn_s

    @staticmethod
    def _learn(clock: _Clock, device_ts: float, offset: float, received: float) -> Judgement:
        clock.offset = offset
        clock.run_count = 0
        clock.last_device_ts = device_ts
        return Judgement(received)
