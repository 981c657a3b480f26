"""Simulated EV chargers connecting to a CSMS over OCPP 2.0.1 / 2.1.

Each :class:`SimCharger` is one charge point with one EVSE, a websocket
client on the shared event loop (a thousand fit in one process). An EV
arrives, plugs in (TransactionEvent Started), states its needs
(NotifyEVChargingNeeds: departure time, energy, V2X limits in 2.1), charges
at full power unless a TxProfile says otherwise, reports meter values every
``period_s``, and leaves at its departure time; the next one arrives after
``ev_gap_s``. A V2G charger (2.1 only) follows a negative ``CentralSetpoint``
by discharging; a one-way charger rejects it and never discharges. Physics
run in simulated time; the websocket and OCPP timers in wall time.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import ocpp.messages
import websockets
from ocpp.exceptions import OCPPError
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v21 import call as call21
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from websockets.asyncio.client import connect

from adapters.backoff import Backoff
from adapters.lifecycle import BackgroundService
from adapters.ocpp.profiles import V21
from adapters.ocpp.session import on
from adapters.sim._clock import SimClock

__all__ = ["ChargerSpec", "SimCharger"]

log = logging.getLogger("adapters.sim.chargers")

# The ``ocpp`` package checks every message's schema in a thread pool unless
# told otherwise: a thousand simulated chargers then spend their process's
# time handing checks to threads and back. Check in the loop (the service's
# CSMS does its own checks, adapters.ocpp.session.schema_error, and is not
# affected by this setting).
ocpp.messages.ASYNC_VALIDATION = False
_tx_ids = itertools.count(1)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerSpec:
    """One simulated charge point and the EVs that visit it.

    Attributes:
        cp_id: charge point id (the asset id).
        password: basic-auth password.
        version: ``ocpp2.1`` or ``ocpp2.0.1``.
        max_kw: charger power limit (both directions for V2G).
        v2g: bidirectional hardware (honoured only with 2.1).
        ev_capacity_kwh: each EV's battery.
        ev_soc: each EV's SoC on arrival.
        ev_target_soc: the SoC it wants by departure.
        ev_stay_s: simulated seconds between arrival and departure.
        ev_gap_s: simulated seconds before the first arrival and between EVs.
        ignore_profile_kw: a charger that does not follow: it accepts every
            profile but its EV keeps drawing this (kW). None: it follows.
    """

    cp_id: str
    password: str
    version: str = V21
    max_kw: float = 11.0
    v2g: bool = False
    ev_capacity_kwh: float = 60.0
    ev_soc: float = 0.3
    ev_target_soc: float = 0.8
    ev_stay_s: float = 4 * 3600.0
    ev_gap_s: float = 0.0
    ignore_profile_kw: float | None = None


class _Ev:
    def __init__(self, spec: ChargerSpec, now: float) -> None:
        self.soc = spec.ev_soc
        self.departs = now + spec.ev_stay_s
        self.energy_needed_kwh = max(0.0, (spec.ev_target_soc - spec.ev_soc) * spec.ev_capacity_kwh)


class _SimCpMixin:
    sim: SimCharger

    @on("SetChargingProfile")
    def on_set_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        period = charging_profile["charging_schedule"][0]["charging_schedule_period"][0]
        watts = period.get("setpoint", period.get("limit"))
        ok = watts is not None and self.sim.accept_profile(float(watts) / 1000.0)
        return self.sim.results.SetChargingProfile(status="Accepted" if ok else "Rejected")

    @on("ClearChargingProfile")
    def on_clear_profile(self, **_: Any) -> Any:
        self.sim.profile_kw = None
        return self.sim.results.ClearChargingProfile(status="Accepted")


class _Cp201(_SimCpMixin, ChargePoint201):  # type: ignore[misc]
    pass


class _Cp21(_SimCpMixin, ChargePoint21):  # type: ignore[misc]
    pass


class SimCharger(BackgroundService):
    """One simulated charge point that (re)connects to a CSMS by itself.

    Args:
        url: the CSMS base URL, e.g. ``ws://127.0.0.1:9000/ocpp/``.
        spec: the charger and its EVs.
        clock: the park's simulated clock.
        period_s: wall-clock seconds between meter values.
        backoff_base: scale on reconnect delays.
    """

    def __init__(
        self,
        *,
        url: str,
        spec: ChargerSpec,
        clock: SimClock,
        period_s: float = 1.0,
        backoff_base: float = 1.0,
    ) -> None:
        self.url = url.rstrip("/") + "/" + spec.cp_id
        self.spec = spec
        self.clock = clock
        self.period_s = period_s
        self._backoff = Backoff(base=backoff_base)
        self.v2g = spec.v2g and spec.version == V21
        self.calls = call21 if spec.version == V21 else call201
        self.results: Any = (_Cp21 if spec.version == V21 else _Cp201)._call_result
        self.ev: _Ev | None = None
        self.next_arrival = spec.ev_gap_s
        self.profile_kw: float | None = None
        self.power_kw = 0.0
        self.energy_kwh = 0.0
        self.imported_kwh = 0.0
        self.exported_kwh = 0.0
        self.connections = 0
        self._seq = itertools.count()
        self._tx: str | None = None
        self._last_t = 0.0
        self._cp: Any = None
        self._task_name = f"sim-charger-{spec.cp_id}"

    def accept_profile(self, power_kw: float) -> bool:
        """Take a TxProfile value; a discharge only where the hardware and 2.1 allow it."""
        if power_kw < 0 and not self.v2g:
            return False
        self.profile_kw = power_kw
        return True

    async def drop_connection(self) -> None:
        """Close the websocket abruptly, as a network fault would (it reconnects)."""
        if self._cp is not None:
            await self._cp._connection.close(1011, "simulated fault")

    def step(self) -> None:
        """Advance the EV's physics to now."""
        t = self.clock.now()
        dt, self._last_t = t - self._last_t, t
        ev = self.ev
        if ev is None:
            self.power_kw = 0.0
            return
        lo = -self.spec.max_kw if self.v2g else 0.0
        goal = self.spec.max_kw if self.profile_kw is None else self.profile_kw
        if self.spec.ignore_profile_kw is not None:
            goal = self.spec.ignore_profile_kw
        goal = min(max(goal, lo), self.spec.max_kw)
        if (goal > 0 and ev.soc >= 1.0) or (goal < 0 and ev.soc <= 0.05):
            goal = 0.0
        self.power_kw = goal
        ev.soc = min(1.0, max(0.0, ev.soc + goal * dt / 3600.0 / self.spec.ev_capacity_kwh))
        self.energy_kwh += goal * dt / 3600.0
        # Real meters count each direction up in its own register.
        self.imported_kwh += max(goal, 0.0) * dt / 3600.0
        self.exported_kwh += max(-goal, 0.0) * dt / 3600.0

    async def _run(self) -> None:
        auth = base64.b64encode(f"{self.spec.cp_id}:{self.spec.password}".encode()).decode()
        cls = _Cp21 if self.spec.version == V21 else _Cp201
        while not self._closing:
            try:
                async with connect(
                    self.url,
                    subprotocols=[websockets.Subprotocol(self.spec.version)],
                    additional_headers={"Authorization": f"Basic {auth}"},
                    open_timeout=10,
                ) as ws:
                    cp = cls(self.spec.cp_id, ws, response_timeout=10, logger=log)
                    cp.sim, self._cp = self, cp
                    self.connections += 1
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(cp.start(), name=f"{self.spec.cp_id}-recv")
                        await self._session(cp)
            except* (OSError, TimeoutError, websockets.WebSocketException, OCPPError) as group:
                log.info("charger %s lost the CSMS: %r", self.spec.cp_id, group.exceptions[0])
            finally:
                self._cp = None
            await self._backoff.wait()

    def _iso(self, sim_offset: float = 0.0) -> str:
        wall = datetime.now(UTC) + timedelta(seconds=sim_offset / self.clock.time_scale)
        return wall.isoformat().replace("+00:00", "Z")

    async def _session(self, cp: Any) -> None:
        c = self.calls
        await cp.call(c.BootNotification(
            charging_station={"model": "sim-evse", "vendor_name": "park-vpp"}, reason="PowerUp"
        ))  # fmt: skip
        self._backoff.reset()
        await self._status(cp)
        if self._tx is not None:  # reconnected mid-session: say so
            await self._tx_event(cp, "Updated", "MeterValuePeriodic")
        while True:
            self.step()
            t = self.clock.now()
            if self.ev is None and t >= self.next_arrival:
                await self._arrive(cp, t)
            elif self.ev is not None and t >= self.ev.departs:
                await self._depart(cp, t)
            elif self.ev is not None:
                await self._tx_event(cp, "Updated", "MeterValuePeriodic")
            await asyncio.sleep(self.period_s)

    async def _status(self, cp: Any) -> None:
        await cp.call(self.calls.StatusNotification(
            timestamp=self._iso(), connector_status="Occupied" if self.ev else "Available",
            evse_id=1, connector_id=1,
        ))  # fmt: skip

    async def _arrive(self, cp: Any, t: float) -> None:
        self.ev, self.profile_kw = _Ev(self.spec, t), None
        self._tx = f"{self.spec.cp_id}-{next(_tx_ids)}"
        await self._tx_event(cp, "Started", "CablePluggedIn")
        await self._status(cp)
        ev = self.ev
        wh = round(ev.energy_needed_kwh * 1000.0)
        needs: dict[str, Any] = {
            "departure_time": self._iso(ev.departs - t),
            "ac_charging_parameters": {
                "energy_amount": wh, "ev_min_current": 6,
                "ev_max_current": 16, "ev_max_voltage": 400,
            },
        }  # fmt: skip
        if self.spec.version == V21:
            needs["requested_energy_transfer"] = "AC_BPT" if self.v2g else "AC_three_phase"
            needs["v2x_charging_parameters"] = {
                "max_charge_power": self.spec.max_kw * 1000.0,
                "max_discharge_power": self.spec.max_kw * 1000.0 if self.v2g else 0.0,
                "ev_target_energy_request": wh,
            }
        else:
            needs["requested_energy_transfer"] = "AC_three_phase"
        await cp.call(self.calls.NotifyEVChargingNeeds(charging_needs=needs, evse_id=1))

    async def _depart(self, cp: Any, t: float) -> None:
        await self._tx_event(cp, "Ended", "EVDeparted")
        self.ev, self._tx, self.profile_kw = None, None, None
        self.next_arrival = t + self.spec.ev_gap_s
        await self._status(cp)

    async def _tx_event(self, cp: Any, event_type: str, trigger: str) -> None:
        assert self._tx is not None
        sampled = [
            {"value": max(0.0, self.power_kw) * 1000.0, "measurand": "Power.Active.Import"},
            {"value": max(0.0, -self.power_kw) * 1000.0, "measurand": "Power.Active.Export"},
            {"value": round(self.imported_kwh * 1000.0, 1),
             "measurand": "Energy.Active.Import.Register"},
            {"value": round(self.exported_kwh * 1000.0, 1),
             "measurand": "Energy.Active.Export.Register"},
        ]  # fmt: skip
        if self.ev is not None:
            sampled.append({"value": round(self.ev.soc * 100.0, 2), "measurand": "SoC"})
        await cp.call(self.calls.TransactionEvent(
            event_type=event_type, timestamp=self._iso(), trigger_reason=trigger,
            seq_no=next(self._seq), transaction_info={"transaction_id": self._tx},
            evse={"id": 1, "connector_id": 1},
            meter_value=[{"timestamp": self._iso(), "sampled_value": sampled}],
        ), suppress=False)  # fmt: skip
