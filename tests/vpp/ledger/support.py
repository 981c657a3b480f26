"""What the ledger tests share: history laid by hand, asset payloads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

import numpy as np

from vpp.history.grid import SLOTS_PER_DAY
from vpp.history.store import pack_day
from vpp.state import State

PARK = "p1"
#: fixed dates in the past: the history is kept "forever" so that they never expire
RETENTION_DAYS = 36500


def days_of(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def profile(*spans: tuple[int, int, float]) -> np.ndarray:
    """96 slot energies (kWh): ``value`` on slots ``start..stop-1`` of each span, else 0."""
    out = np.zeros(SLOTS_PER_DAY)
    for start, stop, value in spans:
        out[start:stop] = value
    return out


async def lay(
    state: State,
    series: str,
    days: Iterable[date],
    energy_kwh: Sequence[float] | np.ndarray,
    covered_s: Sequence[int] | np.ndarray | int = 900,
    park: str = PARK,
) -> None:
    """Write ``series``'s day vector on ``days`` as stored (energy over the covered part)."""
    covered = np.broadcast_to(np.asarray(covered_s), (SLOTS_PER_DAY,))
    raw = pack_day(np.asarray(energy_kwh, dtype=float), covered, np.zeros(SLOTS_PER_DAY, bool))
    async with state.redis.pipeline(transaction=False) as pipe:
        for day in days:
            _ = pipe.set(state.park(park).history(series, day), raw)
        await pipe.execute()


def meter(owner: str, meter_id: str) -> dict[str, Any]:
    return {
        "kind": "meter", "id": meter_id, "owner": owner, "grid_node": "n",
        "account_no": f"0300{meter_id}", "revenue": True,
    }  # fmt: skip


def device(kind: str, owner: str, asset_id: str) -> dict[str, Any]:
    common = {
        "id": asset_id, "owner": owner, "grid_node": "n",
        "connection": {"protocol": "mqtt", "topic_prefix": f"t/{asset_id}"},
    }  # fmt: skip
    if kind == "pv":
        return {**common, "kind": "pv", "rated_kw": 300.0}
    if kind == "battery":
        return {
            **common, "kind": "battery", "capacity_kwh": 500.0,
            "max_charge_kw": 100.0, "max_discharge_kw": 100.0,
        }  # fmt: skip
    if kind == "ev_charger":
        return {
            **common, "kind": "ev_charger", "v2g": True,
            "max_charge_kw": 60.0, "max_discharge_kw": 60.0,
        }  # fmt: skip
    return {
        **common, "kind": "flexible_load", "baseline_kw": 50.0, "max_shed_kw": 10.0,
        "max_shed_minutes": 60,
    }  # fmt: skip
