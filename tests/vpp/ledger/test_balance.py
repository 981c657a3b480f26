"""The per-slot energy balance, vectorised over series (no Redis)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.vpp.ledger.support import device, meter
from vpp.history.grid import SLOTS_PER_DAY
from vpp.history.store import DayArrays
from vpp.ledger.balance import FLOWS, balance, plan_balance
from vpp.model import Enterprise, Park, parse_asset


def test_the_plan_reads_what_each_basis_needs() -> None:
    park = Park(id="p", enterprises={"b": Enterprise(name="Bee"), "c": Enterprise()})
    sub = {**meter("a", "m-a2"), "revenue": False}  # a sub-meter: never read
    assets = [
        parse_asset(p)
        for p in (
            meter("a", "m-a"),
            sub,
            device("pv", "a", "pv-a"),
            device("battery", "a", "b-a"),
            device("flexible_load", "a", "l-a"),
            device("ev_charger", "b", "ev-b"),
            device("flexible_load", "b", "l-b"),
        )
    ]
    plan = plan_balance(park, assets)
    assert [(s.id, s.name, s.basis, s.meter) for s in plan.scopes] == [
        ("a", "a", "revenue_meter", "m-a"),
        ("b", "Bee", "devices", None),
        ("c", "c", "devices", None),
    ]
    assert plan.scopes[0].devices == ("b-a", "l-a", "pv-a")
    # grouped by role (meter, pv, battery, ev, load), then enterprise; a's load is in its meter
    assert plan.series == ("m-a", "pv-a", "b-a", "ev-b", "l-b")
    assert plan.groups.tolist() == sorted(plan.groups.tolist())


def arrays(
    energy: dict[str, np.ndarray], coverage: dict[str, np.ndarray], order: tuple[str, ...]
) -> DayArrays:
    """One day of ``order``'s series (full coverage unless given)."""
    e = np.stack([energy[s] for s in order])[:, None, :]
    c = np.stack([coverage.get(s, np.ones(SLOTS_PER_DAY)) for s in order])[:, None, :]
    return DayArrays(e, c, np.zeros(e.shape, dtype=bool))


def test_each_enterprises_flows_per_slot() -> None:
    park = Park(id="p")
    assets = [
        parse_asset(p)
        for p in (
            meter("a", "m-a"),
            device("pv", "a", "pv-a"),
            device("battery", "a", "b-a"),
            device("flexible_load", "b", "l-b"),
            device("ev_charger", "b", "ev-b"),
        )
    ]
    plan = plan_balance(park, assets)
    slot = np.zeros(SLOTS_PER_DAY)
    energy = {
        "m-a": slot + 10.0,
        "pv-a": slot - 4.0,
        "b-a": np.where(np.arange(SLOTS_PER_DAY) < 48, 2.0, -1.0),
        "l-b": slot + 3.0,
        "ev-b": np.where(np.arange(SLOTS_PER_DAY) < 10, -5.0, 1.0),
    }
    energy["m-a"][0] = -6.0  # exports 6 while the PV gives 4: self-consumed 0
    coverage = {"m-a": np.where(np.arange(SLOTS_PER_DAY) == 95, 0.0, 1.0)}  # the last slot: none
    coverage["l-b"] = np.full(SLOTS_PER_DAY, 0.5)  # 3 kWh over half a slot: 6 kWh
    out = balance(plan, arrays(energy, coverage, plan.series))
    assert out.shape == (len(FLOWS), 2, 1, SLOTS_PER_DAY)
    f = {name: out[i, :, 0, :] for i, name in enumerate(FLOWS)}
    a, b = 0, 1
    assert f["grid_import_kwh"][a, 1] == 10 and f["grid_export_kwh"][a, 0] == 6
    assert f["grid_import_kwh"][a, 95] == 0 and f["pv_generation_kwh"][a, 95] == 0  # no data
    assert f["pv_generation_kwh"][a, 1] == 4 and f["pv_self_consumed_kwh"][a, 1] == 4
    assert f["pv_self_consumed_kwh"][a, 0] == 0
    assert f["storage_charge_kwh"][a].sum() == 48 * 2
    assert f["storage_discharge_kwh"][a].sum() == 47 * 1  # slot 95 not seen by the meter
    assert f["covered_h"][a].sum() == pytest.approx(95 * 0.25)
    # b (devices): load 6 + EV; slots 0-9: 6 − 5 = 1 import, V2G 5
    assert f["grid_import_kwh"][b, 0] == pytest.approx(1) and f["v2g_discharge_kwh"][b, 0] == 5
    assert f["grid_import_kwh"][b, 50] == pytest.approx(7) and f["ev_charge_kwh"][b, 50] == 1
    # devices' coverage is their mean: (0.5 + 1) / 2 of each slot
    assert f["covered_h"][b, 0] == pytest.approx(0.75 * 0.25)


def test_a_park_without_series() -> None:
    plan = plan_balance(Park(id="p", enterprises={"x": Enterprise()}), [])
    empty = DayArrays(np.zeros((0, 2, 96)), np.zeros((0, 2, 96)), np.zeros((0, 2, 96), bool))
    assert plan.series == () and balance(plan, empty).shape == (len(FLOWS), 1, 2, 96)
    assert not balance(plan, empty).any()
    with pytest.raises(ValueError):
        balance(
            plan, DayArrays(np.zeros((1, 1, 96)), np.ones((1, 1, 96)), np.zeros((1, 1, 96), bool))
        )
