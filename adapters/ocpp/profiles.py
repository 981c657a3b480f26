"""OCPP wire payloads the CSMS sends, built as plain JSON-ready dicts.

The ``ocpp`` package turns snake_case dataclass fields into camelCase, which
spells 2.1's per-phase fields wrongly (``limit_l2`` becomes ``limitL2`` where
the schema says ``limit_L2``), so a payload built from its dataclasses fails
schema validation or loses the field. These builders emit the spec's own
names and are sent without that conversion (see ``_SessionMixin.call_raw``).

Sign: ``power_w`` follows the adapters' convention (positive = the EV draws
from the grid). In 2.1 a V2G setpoint uses ``operationMode=CentralSetpoint``
whose ``setpoint`` is negative to discharge; everything else is a charge
``limit`` >= 0 (2.0.1 has no discharge at all).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "OCPP_SUBPROTOCOLS",
    "V21",
    "V201",
    "clear_profile_request",
    "set_profile_request",
]

V21 = "ocpp2.1"
V201 = "ocpp2.0.1"
#: Websocket subprotocols the CSMS accepts, preferred first.
OCPP_SUBPROTOCOLS = (V21, V201)

_PHASE_SUFFIX = ("", "_L2", "_L3")


def _per_phase(field: str, values: Sequence[float]) -> dict[str, float]:
    """``limit`` with per-phase values -> ``limit``, ``limit_L2``, ``limit_L3``."""
    return {field + _PHASE_SUFFIX[i]: round(v, 1) for i, v in enumerate(values[:3])}


def set_profile_request(
    *,
    version: str,
    evse_id: int,
    profile_id: int,
    transaction_id: str,
    power_w: float,
    duration_s: int,
    v2g: bool,
    phases_w: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Build a SetChargingProfile request with one TxProfile period.

    Args:
        version: ``ocpp2.1`` or ``ocpp2.0.1``.
        evse_id: the EVSE of the transaction.
        profile_id: profile id (re-used to replace the previous profile).
        transaction_id: the transaction the TxProfile binds to.
        power_w: total power in W, positive = charge.
        duration_s: how long the schedule holds.
        v2g: whether discharge is enrolled (2.1 only); without it a negative
            ``power_w`` is a programming error.
        phases_w: optional per-phase values (L1, L2, L3) instead of the total.

    Raises:
        ValueError: a discharge requested where it is not allowed.
    """
    if power_w < 0 and not (v2g and version == V21):
        raise ValueError(f"discharge ({power_w} W) needs V2G over OCPP 2.1")
    values = list(phases_w) if phases_w else [power_w]
    period: dict[str, Any] = {"startPeriod": 0}
    if version == V21 and v2g:
        period["operationMode"] = "CentralSetpoint"
        period.update(_per_phase("setpoint", values))
    else:
        if version == V21:
            period["operationMode"] = "ChargingOnly"
        period.update(_per_phase("limit", [max(0.0, v) for v in values]))
    return {
        "evseId": evse_id,
        "chargingProfile": {
            "id": profile_id,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "transactionId": transaction_id,
            "chargingSchedule": [
                {
                    "id": profile_id,
                    "chargingRateUnit": "W",
                    "duration": duration_s,
                    "chargingSchedulePeriod": [period],
                }
            ],
        },
    }


def clear_profile_request(*, profile_id: int) -> dict[str, Any]:
    """Build a ClearChargingProfile request for one profile id."""
    return {"chargingProfileId": profile_id}
