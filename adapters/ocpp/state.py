"""What the CSMS knows about one charger, and the rules that change it.

One charge point is one asset with one EVSE. Its state outlives a dropped
websocket (the EV session goes on); a BootNotification resets it (a rebooted
station has lost its sessions; one that resumes says so with a new event).

Transactions (OCPP 2.0.1 part 2, E "Transactions"):

* events of a transaction other than the live one never touch the live one:
  a late ``Ended`` only marks that transaction ended; a ``Started`` or
  ``Updated`` takes the EVSE over only when it is online and not older than
  the live transaction's last event (the old one ended unseen);
* ``seqNo`` counts up per transaction: an event whose ``seqNo`` does not
  advance is a retry or a duplicate and is ignored;
* nothing reopens an ended transaction;
* ``offline: true`` events are history: they may end or start a
  transaction, advance its energy register and SoC, but their power is never
  "now".

Meter readings (:mod:`adapters.ocpp.meter`): power is live only from a
live context (``Sample.Periodic``, ``Trigger``, ``Other``), an online
message and a timestamp within ``max_age_s`` of receipt (and not more than
``max_skew_s`` ahead of it); SoC and registers take the newest sample.
Energy registers are re-based: a register that restarts (per session, or on
a meter reset) keeps counting from where it was.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from adapters.ocpp.fields import Reject
from adapters.ocpp.meter import LIVE_CONTEXTS, SOC_LOCATIONS, Sample, pick
from adapters.ocpp.needs import ChargingNeeds

__all__ = ["Register", "SessionState"]

#: Transactions remembered per charger (ended ids, last seqNo): a bound, not a rule.
_REMEMBERED = 256
#: SoC movement (0..1) over which a session learns its EV's capacity.
_LEARN_SOC = 0.1
_MIN_CAPACITY_WH, _MAX_CAPACITY_WH = 5_000.0, 2_000_000.0


@dataclass(slots=True)
class Register:
    """A cumulative energy register, re-based across restarts.

    Attributes:
        total_wh: the re-based count (starts at the first raw value seen).
        last_wh: the last raw value.
        last_ts: the timestamp of the last raw value.
    """

    total_wh: float | None = None
    last_wh: float | None = None
    last_ts: float | None = None

    def step(self, raw_wh: float, ts: float | None) -> None:
        """Take one raw reading; an older one than the last is history and ignored."""
        if ts is not None and self.last_ts is not None and ts < self.last_ts:
            return
        if self.total_wh is None or self.last_wh is None:
            self.total_wh = raw_wh
        elif raw_wh >= self.last_wh:
            self.total_wh += raw_wh - self.last_wh
        else:
            # The register went back: it restarted from zero (per-session meters).
            self.total_wh += raw_wh
        self.last_wh, self.last_ts = raw_wh, ts if ts is not None else self.last_ts


def _dated(ts: float | None, now: float) -> float | None:
    """A sample's time for ordering: never later than its receipt.

    So one sample from a clock running ahead cannot make the next correct ones look old.
    """
    return None if ts is None else min(ts, now)


def _remember(mapping: OrderedDict[str, int], key: str, value: int) -> None:
    mapping[key] = value
    mapping.move_to_end(key)
    while len(mapping) > _REMEMBERED:
        mapping.popitem(last=False)


@dataclass(slots=True)
class SessionState:
    """What the CSMS knows about one charger (one EVSE).

    Attributes:
        version: the OCPP subprotocol of its latest connection.
        evse_id: the EVSE its transactions run on.
        transaction_id: the live transaction (None: no EV session).
        tx_last_ts: the timestamp of the live transaction's newest event.
        power_kw: live power, positive = drawn from the grid.
        power_ts: when that power was measured.
        soc: the EV's SoC 0..1.
        soc_ts: when it was measured.
        imported / exported: the energy registers.
        departure_ts, needs_wh, needs_at_wh, target_soc, capacity_wh,
            max_charge_kw, max_discharge_kw: the session's stated needs
            (``needs_at_wh``: the net register when the energy need was stated).
    """

    version: str
    evse_id: int = 1
    transaction_id: str | None = None
    tx_last_ts: float | None = None
    power_kw: float = 0.0
    power_ts: float | None = None
    soc: float | None = None
    soc_ts: float | None = None
    soc_anchor: tuple[float, float] | None = None
    imported: Register = field(default_factory=Register)
    exported: Register = field(default_factory=Register)
    departure_ts: float | None = None
    needs_wh: float | None = None
    needs_at_wh: float = 0.0
    target_soc: float | None = None
    capacity_wh: float | None = None
    max_charge_kw: float | None = None
    max_discharge_kw: float | None = None
    ended: OrderedDict[str, int] = field(default_factory=OrderedDict)
    seq: OrderedDict[str, int] = field(default_factory=OrderedDict)
    resumable: tuple[str, ChargingNeeds, float] | None = None

    # -- derived ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether an EV session is live."""
        return self.transaction_id is not None

    @property
    def net_wh(self) -> float | None:
        """Imported minus exported energy (re-based registers), None before any."""
        if self.imported.total_wh is None and self.exported.total_wh is None:
            return None
        return (self.imported.total_wh or 0.0) - (self.exported.total_wh or 0.0)

    def _owed_wh(self) -> float:
        assert self.needs_wh is not None
        return max(0.0, self.needs_wh - ((self.net_wh or 0.0) - self.needs_at_wh))

    def learned_capacity_wh(self) -> float | None:
        """The EV's capacity as this session measured it, when the EV did not state it.

        Energy through the meter per SoC moved, once the SoC has moved by
        :data:`_LEARN_SOC` (SoC is often reported in whole percent: over ten
        points that is within 10 %). Meter energy includes charging losses, so
        the estimate errs high and so does a need derived from it: the EV is
        not left short.
        """
        if self.soc_anchor is None or self.soc is None or self.net_wh is None:
            return None
        soc0, wh0 = self.soc_anchor
        moved = self.soc - soc0
        if abs(moved) < _LEARN_SOC:
            return None
        capacity = (self.net_wh - wh0) / moved
        return capacity if _MIN_CAPACITY_WH <= capacity <= _MAX_CAPACITY_WH else None

    def energy_needed_kwh(self) -> float | None:
        """Energy still owed to the EV by departure, or None if it never said."""
        if not self.connected:
            return None
        if self.needs_wh is not None:
            return self._owed_wh() / 1000.0
        if self.target_soc is not None and self.soc is not None:
            if self.soc >= self.target_soc:
                return 0.0
            capacity = self.capacity_wh or self.learned_capacity_wh()
            if capacity is not None:
                return (self.target_soc - self.soc) * capacity / 1000.0
        return None

    # -- events ----------------------------------------------------------------

    def boot(self) -> None:
        """The station rebooted: its sessions are gone (ended ids and seqNo stay known).

        The stated needs of the session it had are kept aside: an EV states
        them once per session, so if the station reports that same transaction
        going on after the boot (2.1 ``TxResumed``, or simply its next
        ``Updated``), they apply again.
        """
        if self.transaction_id is not None:
            stated = ChargingNeeds(
                departure_ts=self.departure_ts,
                energy_wh=None if self.needs_wh is None else self._owed_wh(),
                target_soc=self.target_soc,
                capacity_wh=self.capacity_wh,
                max_charge_w=None if self.max_charge_kw is None else self.max_charge_kw * 1e3,
                max_discharge_w=None
                if self.max_discharge_kw is None
                else self.max_discharge_kw * 1e3,
            )
            self.resumable = (self.transaction_id, stated, self.tx_last_ts or 0.0)
        self._end_session()
        self.power_ts = None

    def _end_session(self) -> None:
        self.transaction_id = self.tx_last_ts = None
        self.power_kw, self.soc, self.soc_ts, self.soc_anchor = 0.0, None, None, None
        self.departure_ts = self.needs_wh = self.target_soc = self.capacity_wh = None
        self.max_charge_kw = self.max_discharge_kw = None
        self.needs_at_wh = 0.0

    def elsewhere(self, evse_id: int | None) -> bool:
        """Whether a message names another EVSE than the live session's (not ours)."""
        return evse_id is not None and self.connected and evse_id != self.evse_id

    def status(self, connector_status: str | None, ts: float | None, evse_id: int | None) -> None:
        """A StatusNotification: ``Available`` means no EV, unless it predates the session."""
        if self.elsewhere(evse_id):
            return
        if evse_id and not self.connected:
            self.evse_id = evse_id
        if connector_status != "Available" or not self.connected:
            return
        if ts is not None and self.tx_last_ts is not None and ts < self.tx_last_ts:
            return  # a late notification from before the live session began
        self._end_session()

    def transaction(
        self,
        *,
        tx_id: str,
        event_type: str,
        seq_no: int | None,
        offline: bool,
        ts: float | None,
        evse_id: int | None = None,
    ) -> str:
        """Apply a TransactionEvent's session effect.

        Args:
            tx_id: ``transactionInfo.transactionId``.
            event_type: ``Started``, ``Updated`` or ``Ended``.
            seq_no: its ``seqNo`` (None if unreadable: no de-duplication).
            offline: the event happened while the station was offline.
            ts: the event's timestamp.
            evse_id: ``evse.id`` if the event names it (required only in the
                first event of a transaction).

        Returns:
            ``"live"``: the event is about the live transaction (its meter
            values update the live state); ``"history"``: it is kept as history
            (only its energy registers count); ``"ignored"``: a retry, a
            duplicate or an event of an ended transaction.
        """
        if tx_id in self.ended:
            return "ignored"  # nothing reopens an ended transaction
        if seq_no is not None:
            last = self.seq.get(tx_id)
            if last is not None and seq_no <= last:
                return "ignored"  # a retry or duplicate
            _remember(self.seq, tx_id, seq_no)
        live = self.transaction_id
        if event_type == "Ended":
            _remember(self.ended, tx_id, seq_no or 0)
            if tx_id == live:
                self._end_session()
            return "history"
        if live is not None and tx_id != live:
            # An undated event never takes a live session over.
            newer = ts is not None and (self.tx_last_ts is None or ts >= self.tx_last_ts)
            if offline or not newer or self.elsewhere(evse_id):
                return "history"  # of another transaction, or of another EVSE
            # One EVSE runs one transaction: the old one ended without us hearing it.
            _remember(self.ended, live, self.seq.get(live, 0))
            self._end_session()
        # Needs stated just before the Started event belong to this session: keep them.
        if self.transaction_id != tx_id and self.resumable and self.resumable[0] == tx_id:
            self.needs(self.resumable[1])
            self.tx_last_ts = self.resumable[2]
        self.resumable = None
        self.transaction_id = tx_id
        if evse_id:
            self.evse_id = evse_id
        if ts is not None and (self.tx_last_ts is None or ts > self.tx_last_ts):
            self.tx_last_ts = ts
        return "live"

    def needs(self, needs: ChargingNeeds) -> None:
        """NotifyEVChargingNeeds: the session's needs (kept if they precede its Started event)."""
        if needs.departure_ts is not None:
            self.departure_ts = needs.departure_ts
        if needs.energy_wh is not None:
            self.needs_wh, self.needs_at_wh = needs.energy_wh, self.net_wh or 0.0
        if needs.target_soc is not None:
            self.target_soc = needs.target_soc
            if needs.energy_wh is None:
                self.needs_wh = None  # the target SoC is the need now
        if needs.capacity_wh is not None:
            self.capacity_wh = needs.capacity_wh
        if needs.soc is not None and self.soc is None:
            self.soc = needs.soc
        if needs.max_charge_w is not None:
            self.max_charge_kw = needs.max_charge_w / 1000.0
        if needs.max_discharge_w is not None:
            self.max_discharge_kw = needs.max_discharge_w / 1000.0

    def meter(
        self,
        samples: list[Sample],
        *,
        now: float,
        offline: bool,
        reject: Reject,
        max_age_s: float,
        max_skew_s: float,
        registers_only: bool = False,
    ) -> None:
        """Take a message's decoded samples into the state.

        Args:
            samples: from :func:`adapters.ocpp.meter.decode`.
            now: receive time (UNIX seconds).
            offline: the message reports what happened while offline (history).
            reject: the sink for a dropped field (stale or future power).
            max_age_s: oldest power sample still "now".
            max_skew_s: how far ahead of receipt a device clock may be.
            registers_only: the samples are history (another session, an
                ended one): only the energy registers count, an older value
                than the last being ignored by its date.
        """
        for measurand, register in (
            ("Energy.Active.Import.Register", self.imported),
            ("Energy.Active.Export.Register", self.exported),
        ):
            reading = pick(samples, measurand)
            if reading is not None:
                register.step(reading.value, _dated(reading.ts, now))
        if registers_only:
            return
        capacity = pick(samples, "Display.BatteryEnergyCapacity", locations=SOC_LOCATIONS)
        if capacity is not None and capacity.value > 0:
            self.capacity_wh = capacity.value  # 2.1: the EV's own figure
        soc = pick(samples, "SoC", locations=SOC_LOCATIONS)
        soc_ts = None if soc is None else _dated(soc.ts, now)
        if soc is not None and (soc_ts is None or self.soc_ts is None or soc_ts >= self.soc_ts):
            self.soc, self.soc_ts = soc.value / 100.0, soc_ts
            if self.soc_anchor is None and self.connected and self.net_wh is not None:
                self.soc_anchor = (self.soc, self.net_wh)
        imported = pick(samples, "Power.Active.Import", contexts=LIVE_CONTEXTS)
        exported = pick(samples, "Power.Active.Export", contexts=LIVE_CONTEXTS)
        if (imported is None and exported is None) or offline:
            return
        ts = max((p.ts for p in (imported, exported) if p and p.ts is not None), default=None)
        if ts is not None:
            if now - ts > max_age_s:
                reject("power_kw", "stale", ts)
                return
            if ts - now > max_skew_s:
                reject("power_kw", "future", ts)
                return
            if self.power_ts is not None and ts < self.power_ts:
                return  # older than the power we hold
        watts = (imported.value if imported else 0.0) - (exported.value if exported else 0.0)
        self.power_kw, self.power_ts = watts / 1000.0, _dated(ts, now) or now
