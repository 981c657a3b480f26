"""Per-connection OCPP sessions: the handlers for 2.0.1 and 2.1 charge points.

Handlers only record state and return responses; they never make calls
(a call from inside an ``@on`` handler deadlocks the library's receive loop).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ocpp.exceptions import OCPPError
from ocpp.messages import Call, MessageType, validate_payload
from ocpp.routing import on as _ocpp_on
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v201 import ChargePoint as ChargePoint201

if TYPE_CHECKING:
    from adapters.ocpp.csms import OcppCsmsAdapter

__all__ = ["Session21", "Session201", "SessionState"]

log = logging.getLogger("adapters.ocpp")

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def on(action: str) -> Callable[[_Handler], _Handler]:
    """The library's ``@on`` routing decorator, typed."""
    return cast(Callable[[_Handler], _Handler], _ocpp_on(action))


@dataclass(slots=True)
class SessionState:
    """What the CSMS knows about one connected charger (one EVSE)."""

    version: str
    evse_id: int = 1
    transaction_id: str | None = None
    power_kw: float = 0.0
    soc: float | None = None
    energy_kwh: float | None = None
    departure_ts: float | None = None
    needs_kwh: float | None = None
    needs_at_kwh: float = 0.0
    max_charge_kw: float | None = None
    max_discharge_kw: float | None = None


def _iso_ts(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class _SessionMixin:
    """Handlers shared by the 2.0.1 and 2.1 charge point classes."""

    id: str
    _call_result: Any
    _ocpp_version: str
    _call_lock: asyncio.Lock
    _response_timeout: float
    adapter: OcppCsmsAdapter
    state: SessionState

    # Provided by ocpp.ChargePoint (annotations only: defining them would shadow it).
    _send: Callable[[str], Awaitable[None]]
    _get_specific_response: Callable[[str, float], Awaitable[Any]]

    async def call_raw(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Send a CALL whose payload is already in wire form; None on a CallError."""
        message = Call(unique_id=f"{time.monotonic_ns():x}", action=action, payload=payload)
        await validate_payload(message, self._ocpp_version)
        async with self._call_lock:
            await self._send(message.to_json())
            response = await self._get_specific_response(message.unique_id, self._response_timeout)
        if response.message_type_id == MessageType.CallError:
            log.warning("%s answered %s with %s", self.id, action, response)
            return None
        response.action = action
        await validate_payload(response, self._ocpp_version)
        return cast(dict[str, Any], response.payload)

    async def _handle_call(self, msg: Any) -> Any:
        try:
            return await super()._handle_call(msg)  # type: ignore[misc]
        except OCPPError as exc:
            self.adapter.session_bad_message(self.id, f"{msg.action}: {exc}")
            raise

    def _now_iso(self) -> str:
        return datetime.now(UTC).isoformat().replace("+00:00", "Z")

    @on("BootNotification")
    def on_boot(self, **_: Any) -> Any:
        self.adapter.session_changed(self.id)
        return self._call_result.BootNotification(
            current_time=self._now_iso(), interval=300, status="Accepted"
        )

    @on("Heartbeat")
    def on_heartbeat(self, **_: Any) -> Any:
        return self._call_result.Heartbeat(current_time=self._now_iso())

    @on("StatusNotification")
    def on_status(self, evse_id: int, connector_status: str, **_: Any) -> Any:
        self.state.evse_id = evse_id
        if connector_status == "Available":
            self.state.transaction_id = None
            self.state.power_kw = 0.0
        self.adapter.session_changed(self.id)
        return self._call_result.StatusNotification()

    @on("TransactionEvent")
    def on_transaction(self, event_type: str, transaction_info: dict[str, Any], **kw: Any) -> Any:
        st = self.state
        if isinstance(kw.get("evse"), dict):
            st.evse_id = int(kw["evse"].get("id", st.evse_id))
        if event_type == "Ended":
            st.transaction_id, st.power_kw = None, 0.0
            st.departure_ts = st.needs_kwh = st.max_charge_kw = st.max_discharge_kw = None
        else:
            st.transaction_id = transaction_info["transaction_id"]
        self._meter(kw.get("meter_value") or [])
        self.adapter.session_changed(self.id)
        return self._call_result.TransactionEvent()

    @on("MeterValues")
    def on_meter_values(self, evse_id: int, meter_value: list[dict[str, Any]], **_: Any) -> Any:
        self.state.evse_id = evse_id or self.state.evse_id
        self._meter(meter_value)
        self.adapter.session_changed(self.id)
        return self._call_result.MeterValues()

    @on("NotifyEVChargingNeeds")
    def on_needs(self, charging_needs: dict[str, Any], evse_id: int, **_: Any) -> Any:
        st = self.state
        st.evse_id = evse_id
        st.departure_ts = _iso_ts(charging_needs.get("departure_time"))
        ac = charging_needs.get("ac_charging_parameters") or {}
        v2x = charging_needs.get("v2x_charging_parameters") or {}
        wh = v2x.get("ev_target_energy_request", ac.get("energy_amount"))
        st.needs_kwh = None if wh is None else float(wh) / 1000.0
        st.needs_at_kwh = st.energy_kwh or 0.0
        if v2x.get("max_charge_power") is not None:
            st.max_charge_kw = float(v2x["max_charge_power"]) / 1000.0
        if v2x.get("max_discharge_power") is not None:
            st.max_discharge_kw = abs(float(v2x["max_discharge_power"])) / 1000.0
        self.adapter.session_changed(self.id)
        return self._call_result.NotifyEVChargingNeeds(status="Accepted")

    def _meter(self, meter_values: list[dict[str, Any]]) -> None:
        imported = exported = None
        for mv in meter_values:
            for sv in mv.get("sampled_value", []):
                measurand = sv.get("measurand", "Energy.Active.Import.Register")
                value = float(sv["value"])
                if measurand == "Power.Active.Import":
                    imported = value
                elif measurand == "Power.Active.Export":
                    exported = value
                elif measurand == "SoC":
                    self.state.soc = value / 100.0
                elif measurand == "Energy.Active.Import.Register":
                    self.state.energy_kwh = value / 1000.0
        if imported is not None or exported is not None:
            self.state.power_kw = ((imported or 0.0) - (exported or 0.0)) / 1000.0


class Session201(_SessionMixin, ChargePoint201):  # type: ignore[misc]
    """An OCPP 2.0.1 charge point connection."""


class Session21(_SessionMixin, ChargePoint21):  # type: ignore[misc]
    """An OCPP 2.1 charge point connection."""
