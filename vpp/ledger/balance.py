"""The energy balance of every enterprise per 15-minute slot, from the interval history.

Scopes: every enterprise of the park — every owner of an enrolled asset and
every key of ``Park.enterprises`` (named by its contract's ``name``, else its
id). Each enterprise has its own grid account (户号), so the park's figures
are the sums of its enterprises' (`vpp.ledger.book`).

Per slot and enterprise (`balance`), from the history's energy per slot over
its covered part (`vpp.history.store.DayArrays`, positive = drawn from the
grid):

* a series' energy over the whole slot is ``energy_kwh / coverage`` where
  coverage > 0 (its mean power over the slot); a slot with coverage 0 has no
  data and counts nowhere (never as zero load);
* the grid exchange ``E`` comes from the enterprise's revenue meter (basis
  ``revenue_meter``), or for an enterprise with none from the sum of its
  enrolled devices (basis ``devices``: its unmetered load is not in it);
  ``grid_import = max(E, 0)``, ``grid_export = max(−E, 0)``;
* PV generation is ``max(−E_pv, 0)`` of each PV series; storage charge and
  discharge the positive and negative battery energies; EV charging and V2G
  discharge likewise for EV chargers; each summed over the enterprise's
  devices of that kind;
* PV self-consumed is ``max(PV − export, 0)`` (at most the PV generation):
  what the enterprise's own PV covered behind its meter in that slot;
* ``covered_h``: the hours of the slot the basis has data for — the
  meter's coverage, or the mean coverage of the enterprise's devices.

A slot the basis has no data for is left out of every figure of that
enterprise (device flows included), so import, PV and consumption stay
consistent with each other; a row's coverage (``covered_h`` over its hours)
says how much was left out. Non-revenue meters (sub-meters) are not read.

Everything is vectorised over the series: the plan groups the series it
reads by (kind, enterprise), and one sparse product per quantity (a 0/1
matrix of groups × series) sums every enterprise's devices of every kind at
once, for every slot of the days read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from vpp.history.grid import INTERVAL_S
from vpp.history.store import DayArrays
from vpp.model import Asset, Meter, Park, enterprise_ids, revenue_meters

__all__ = [
    "FLOWS",
    "BalancePlan",
    "Basis",
    "EnterpriseScope",
    "balance",
    "plan_balance",
]

#: How an enterprise's grid exchange is known.
Basis: TypeAlias = Literal["revenue_meter", "devices"]

#: The quantities of a balance, in the order of its first axis (kWh, and hours for covered_h).
FLOWS: tuple[str, ...] = (
    "grid_import_kwh",
    "grid_export_kwh",
    "pv_generation_kwh",
    "pv_self_consumed_kwh",
    "storage_charge_kwh",
    "storage_discharge_kwh",
    "ev_charge_kwh",
    "v2g_discharge_kwh",
    "covered_h",
)
(
    _IMPORT,
    _EXPORT,
    _PV,
    _PV_SELF,
    _CHARGE,
    _DISCHARGE,
    _EV,
    _V2G,
    _COVERED,
) = range(len(FLOWS))

#: The roles a series plays, in the order the plan groups them.
_ROLES = ("meter", "pv", "battery", "ev_charger", "load")
_METER, _ROLE_PV, _ROLE_BATTERY, _ROLE_EV, _ROLE_LOAD = range(len(_ROLES))
_SLOT_H = INTERVAL_S / 3600.0


@dataclass(frozen=True, slots=True)
class EnterpriseScope:
    """One enterprise of the park and the series its balance is made of.

    Attributes:
        id: the enterprise id (its assets' ``owner``).
        name: the contract's name, else the id.
        basis: ``revenue_meter`` or ``devices`` (see the module docstring).
        meter: its revenue meter's id (basis ``revenue_meter``).
        devices: its enrolled devices (every kind but meters), sorted.
    """

    id: str
    name: str
    basis: Basis
    meter: str | None
    devices: tuple[str, ...]


@dataclass(frozen=True, slots=True, eq=False)
class BalancePlan:
    """What to read for a park's balance, and how the series group into enterprises.

    Attributes:
        scopes: the enterprises, sorted by id.
        series: the series to read, grouped by (role, enterprise).
        groups: for each series, its group ``role × len(scopes) + enterprise``
            (non-decreasing).
        membership: ``(roles × enterprises, series)`` sparse 0/1: which series
            each group sums.
    """

    scopes: tuple[EnterpriseScope, ...]
    series: tuple[str, ...]
    groups: NDArray[np.int64]
    membership: sparse.csr_matrix

    @property
    def ids(self) -> list[str]:
        """The enterprise ids, in the order of a balance's enterprise axis."""
        return [s.id for s in self.scopes]


def plan_balance(park: Park, assets: Iterable[Asset]) -> BalancePlan:
    """The park's enterprises and the series their balance needs.

    A metered enterprise needs its revenue meter and its PV, batteries and
    EV chargers (its flexible loads are inside the meter); an enterprise
    without one needs every device it owns.
    """
    assets = list(assets)
    meters = revenue_meters(assets)
    owners = sorted(enterprise_ids(park, assets))
    index = {owner: i for i, owner in enumerate(owners)}
    devices: dict[str, list[Asset]] = {owner: [] for owner in owners}
    for asset in assets:
        if not isinstance(asset, Meter):
            devices[asset.owner].append(asset)
    scopes: list[EnterpriseScope] = []
    members: list[tuple[int, str]] = []
    n = len(owners)
    for owner in owners:
        own = sorted(devices[owner], key=lambda a: a.id)
        meter = meters.get(owner)
        contract = park.enterprises.get(owner)
        scopes.append(
            EnterpriseScope(
                id=owner,
                name=(contract.name if contract is not None else "") or owner,
                basis="revenue_meter" if meter is not None else "devices",
                meter=meter.id if meter is not None else None,
                devices=tuple(a.id for a in own),
            )
        )
        if meter is not None:
            members.append((_METER * n + index[owner], meter.id))
        for asset in own:
            role = _ROLES.index(asset.kind) if asset.kind in _ROLES else _ROLE_LOAD
            if role == _ROLE_LOAD and meter is not None:
                continue  # inside the meter: no flow of its own in the ledger
            members.append((role * n + index[owner], asset.id))
    members.sort()
    groups = np.array([g for g, _ in members], dtype=np.int64)
    return BalancePlan(
        scopes=tuple(scopes),
        series=tuple(s for _, s in members),
        groups=groups,
        membership=sparse.csr_matrix(
            (np.ones(len(groups)), (groups, np.arange(len(groups)))),
            shape=(len(_ROLES) * n, len(groups)),
        ),
    )


def _group_sums(values: NDArray[np.float64], plan: BalancePlan) -> NDArray[np.float64]:
    """``(roles, enterprises, T)``: the sum of ``values (S, T)`` over each group's series."""
    # a sparse product: one pass over the values (np.add.reduceat along axis 0 is ~9x slower)
    sums = np.asarray(plan.membership @ values, dtype=np.float64)
    return sums.reshape(len(_ROLES), len(plan.scopes), values.shape[1])


def balance(plan: BalancePlan, arrays: DayArrays) -> NDArray[np.float64]:
    """Every enterprise's balance per slot.

    Args:
        plan: from `plan_balance`.
        arrays: the history of ``plan.series`` (in that order) on some days,
            ``(S, D, 96)`` (`vpp.history.store.HistoryStore.read_arrays`).

    Returns:
        ``(len(FLOWS), enterprises, D, 96)``: each quantity of `FLOWS` per
        enterprise (``plan.scopes`` order), day and slot; kWh, and hours for
        ``covered_h``.

    Raises:
        ValueError: ``arrays`` does not hold one series per planned series.
    """
    s, d, k = arrays.energy_kwh.shape
    if s != len(plan.series):
        raise ValueError(f"{s} series of history for a plan of {len(plan.series)}")
    n = len(plan.scopes)
    coverage = arrays.coverage.reshape(s, d * k)
    # mean power over the covered part, held over the whole slot
    full = np.divide(
        arrays.energy_kwh.reshape(s, d * k), coverage, out=np.zeros((s, d * k)), where=coverage > 0
    )
    net = _group_sums(full, plan)
    drawn = _group_sums(np.maximum(full, 0.0, out=full), plan)
    # Σ max(−x, 0) = Σ max(x, 0) − Σ x, group by group (clamped: rounding)
    given = np.maximum(drawn - net, 0.0)
    covered = _group_sums(coverage, plan)

    metered = np.array([sc.basis == "revenue_meter" for sc in plan.scopes])[:, None]
    n_devices = np.array([max(len(sc.devices), 1) for sc in plan.scopes], dtype=np.float64)
    devices = slice(_ROLE_PV, None)
    exchange = np.where(metered, net[_METER], net[devices].sum(axis=0))
    device_cover = covered[devices].sum(axis=0)
    basis_seen = np.where(metered, covered[_METER], device_cover) > 0
    basis_covered = np.where(metered, covered[_METER], device_cover / n_devices[:, None])

    out = np.zeros((len(FLOWS), n, d * k))
    out[_IMPORT] = np.maximum(exchange, 0.0)
    out[_EXPORT] = np.maximum(-exchange, 0.0)
    out[_PV] = given[_ROLE_PV]
    out[_CHARGE] = drawn[_ROLE_BATTERY]
    out[_DISCHARGE] = given[_ROLE_BATTERY]
    out[_EV] = drawn[_ROLE_EV]
    out[_V2G] = given[_ROLE_EV]
    out[_PV:_COVERED] *= basis_seen  # a slot the basis does not see counts nowhere
    out[_PV_SELF] = np.clip(out[_PV] - out[_EXPORT], 0.0, out[_PV])
    out[_COVERED] = basis_covered * _SLOT_H
    return out.reshape(len(FLOWS), n, d, k)
