"""The batch envelope builders agree exactly with the per-asset ones (`dispatch.batch`)."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import dispatch as dx
from dispatch.batch import (
    BatteryColumns,
    CurtailableColumns,
    EvColumns,
    PvColumns,
    battery_envelopes,
    curtailable_envelopes,
    ev_envelopes,
    pv_envelopes,
)
from dispatch.portfolio import Portfolio

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

kw = st.floats(0.0, 500.0, allow_nan=False)
share = st.floats(0.0, 1.0, allow_nan=False)
eta = st.floats(0.5, 1.0, allow_nan=False)
grids = st.builds(
    lambda n, step, offset: dx.TimeGrid(
        n=n, step=timedelta(minutes=step), start=T0 + timedelta(seconds=offset)
    ),
    st.integers(1, 40),
    st.sampled_from([5, 15, 30, 60]),
    st.integers(0, 3600),
)


def _same(batch: Portfolio, parts: list[Portfolio]) -> None:
    """Every field of the batch equals the per-asset portfolios joined (NaN/inf included)."""
    joined = Portfolio.concat(parts)
    assert batch.grid == joined.grid
    assert batch.asset_ids == joined.asset_ids
    for f in fields(Portfolio):
        if f.name in ("grid", "asset_ids"):
            continue
        got, want = getattr(batch, f.name), getattr(joined, f.name)
        assert got.shape == want.shape, f.name
        assert got.dtype == want.dtype, f.name
        np.testing.assert_array_equal(got, want, err_msg=f.name, strict=True)


@st.composite
def batteries(draw: st.DrawFn) -> dx.Battery:
    soc_min = draw(st.floats(0.0, 0.5))
    end = st.none() | st.floats(0.0, 1.0)
    return dx.Battery(
        asset_id=f"b{draw(st.integers(0, 10**6))}",
        capacity_kwh=draw(st.floats(0.1, 2000.0)),
        max_charge_kw=draw(kw),
        max_discharge_kw=draw(kw),
        soc=draw(st.floats(0.0, 1.0)),  # outside the window too
        soc_min=soc_min,
        soc_max=draw(st.floats(soc_min, 1.0)),
        end_soc_min=draw(end),
        end_soc_max=draw(end),
        eta_charge=draw(eta),
        eta_discharge=draw(eta),
        cost_kwh=draw(st.floats(0.0, 1.0)),
        owner=draw(st.integers(0, 5)),
    )


@st.composite
def sessions(draw: st.DrawFn) -> dx.EvSession:
    minutes = st.integers(-600, 1800)
    arrival = T0 + timedelta(minutes=draw(minutes), seconds=draw(st.integers(0, 59)))
    departure = arrival + timedelta(minutes=draw(st.integers(0, 1200)))
    v2g = draw(st.booleans())
    as_of = draw(st.none() | st.integers(-900, 3600))
    return dx.EvSession(
        asset_id=f"ev{draw(st.integers(0, 10**6))}",
        arrival=arrival,
        departure=departure,
        energy_needed_kwh=draw(st.floats(0.0, 120.0)),
        max_charge_kw=draw(st.floats(0.0, 350.0)),
        uncontrolled_kw=draw(st.none() | st.floats(-10.0, 400.0)),
        max_discharge_kw=draw(st.floats(0.0, 50.0)) if v2g else 0.0,
        v2g=v2g,
        energy_added_kwh=draw(st.floats(0.0, 60.0)),
        headroom_kwh=draw(st.just(float("inf")) | st.floats(-5.0, 100.0)),
        v2g_floor_kwh=draw(st.floats(-5.0, 30.0)),
        eta_charge=draw(eta),
        eta_discharge=draw(eta),
        cost_up=draw(st.floats(0.0, 1.0)),
        cost_down=draw(st.floats(0.0, 1.0)),
        owner=draw(st.integers(0, 5)),
        as_of=None if as_of is None else T0 + timedelta(seconds=as_of),
    )


@st.composite
def loads(draw: st.DrawFn) -> dx.CurtailableLoad:
    return dx.CurtailableLoad(
        asset_id=f"l{draw(st.integers(0, 10**6))}",
        max_shed_kw=draw(kw),
        max_shed_minutes=draw(st.floats(0.0, 600.0)),
        # a share of 0 (none), out of range (clipped), or a real one (1/share stays finite)
        rebound_share=draw(st.sampled_from([0.0, -0.2, 1.5]) | st.floats(1e-3, 1.0)),
        max_rebound_kw=draw(st.none() | kw),
        shed_debt_kwh=draw(st.floats(0.0, 500.0)),
        cost_down=draw(st.floats(0.0, 1.0)),
        cost_up=draw(st.floats(0.0, 1.0)),
        owner=draw(st.integers(0, 5)),
    )


def _rows(data: st.DataObject, n: int, grid: dx.TimeGrid, lo: float, hi: float) -> np.ndarray:
    values = data.draw(st.lists(st.floats(lo, hi), min_size=n * grid.n, max_size=n * grid.n))
    return np.asarray(values, dtype=np.float64).reshape(n, grid.n)


@settings(max_examples=150, deadline=None)
@given(grid=grids, specs=st.lists(batteries(), min_size=1, max_size=12), data=st.data())
def test_batteries_agree(grid: dx.TimeGrid, specs: list[dx.Battery], data: st.DataObject) -> None:
    _same(
        battery_envelopes(BatteryColumns.from_specs(specs), grid),
        [dx.battery_envelope(s, grid) for s in specs],
    )
    base = _rows(data, len(specs), grid, -600.0, 600.0)
    _same(
        battery_envelopes(BatteryColumns.from_specs(specs), grid, base),
        [dx.battery_envelope(s, grid, base[i]) for i, s in enumerate(specs)],
    )


@settings(max_examples=200, deadline=None)
@given(grid=grids, specs=st.lists(sessions(), min_size=1, max_size=12))
def test_ev_sessions_agree(grid: dx.TimeGrid, specs: list[dx.EvSession]) -> None:
    _same(
        ev_envelopes(EvColumns.from_sessions(specs, grid), grid),
        [dx.ev_envelope(s, grid) for s in specs],
    )


@settings(max_examples=50, deadline=None)
@given(grid=grids, specs=st.lists(sessions(), min_size=1, max_size=6), data=st.data())
def test_ev_sessions_with_a_baseline_agree(
    grid: dx.TimeGrid, specs: list[dx.EvSession], data: st.DataObject
) -> None:
    base = _rows(data, len(specs), grid, -50.0, 400.0)
    _same(
        ev_envelopes(EvColumns.from_sessions(specs, grid), grid, base),
        [dx.ev_envelope(s, grid, base[i]) for i, s in enumerate(specs)],
    )


@settings(max_examples=150, deadline=None)
@given(grid=grids, specs=st.lists(loads(), min_size=1, max_size=12), data=st.data())
def test_curtailable_loads_agree(
    grid: dx.TimeGrid, specs: list[dx.CurtailableLoad], data: st.DataObject
) -> None:
    base = _rows(data, len(specs), grid, -20.0, 800.0)
    _same(
        curtailable_envelopes(CurtailableColumns.from_specs(specs), grid, base),
        [dx.curtailable_envelope(s, grid, base[i]) for i, s in enumerate(specs)],
    )


@settings(max_examples=80, deadline=None)
@given(grid=grids, n=st.integers(1, 10), data=st.data())
def test_pv_agrees(grid: dx.TimeGrid, n: int, data: st.DataObject) -> None:
    specs = [
        dx.PvCurtailment(asset_id=f"pv{i}", cost_kwh=data.draw(st.floats(0, 1)), owner=i % 3)
        for i in range(n)
    ]
    gen = _rows(data, n, grid, -5.0, 300.0)
    _same(
        pv_envelopes(PvColumns.from_specs(specs), grid, gen),
        [dx.pv_envelope(s, grid, gen[i]) for i, s in enumerate(specs)],
    )


def test_a_thousand_random_assets_agree() -> None:
    """Seeded random parks of the benchmark's size, all kinds, one grid per draw."""
    rng = np.random.default_rng(13)
    for _ in range(5):
        grid = dx.TimeGrid(n=int(rng.integers(4, 30)), step=timedelta(minutes=15),
                           start=T0 + timedelta(seconds=int(rng.integers(0, 900))))  # fmt: skip
        bats = [
            dx.Battery(asset_id=f"b{i}", capacity_kwh=float(rng.uniform(5, 500)),
                       max_charge_kw=float(rng.uniform(1, 250)),
                       max_discharge_kw=float(rng.uniform(1, 250)), soc=float(rng.uniform()),
                       soc_min=0.1, soc_max=0.95, owner=i % 7)
            for i in range(400)
        ]  # fmt: skip
        evs = [
            dx.EvSession(asset_id=f"e{i}", arrival=grid.start - timedelta(minutes=5),
                         departure=grid.start + timedelta(minutes=float(rng.uniform(0, 600))),
                         energy_needed_kwh=float(rng.uniform(0, 80)),
                         max_charge_kw=float(rng.choice([7.4, 11.0, 22.0, 50.0])),
                         uncontrolled_kw=float(rng.uniform(0, 22)) if i % 3 else None,
                         v2g=bool(i % 2), max_discharge_kw=11.0 if i % 2 else 0.0,
                         as_of=grid.start + timedelta(seconds=float(rng.uniform(0, 900))),
                         owner=i % 7)
            for i in range(300)
        ]  # fmt: skip
        lds = [
            dx.CurtailableLoad(asset_id=f"l{i}", max_shed_kw=float(rng.uniform(0, 80)),
                               max_shed_minutes=120.0, rebound_share=0.3,
                               max_rebound_kw=float(rng.uniform(0, 30)),
                               shed_debt_kwh=float(rng.uniform(0, 40)), owner=i % 7)
            for i in range(300)
        ]  # fmt: skip
        base = rng.uniform(0, 150, size=(300, grid.n))
        _same(battery_envelopes(BatteryColumns.from_specs(bats), grid),
              [dx.battery_envelope(b, grid) for b in bats])  # fmt: skip
        _same(ev_envelopes(EvColumns.from_sessions(evs, grid), grid),
              [dx.ev_envelope(e, grid) for e in evs])  # fmt: skip
        _same(curtailable_envelopes(CurtailableColumns.from_specs(lds), grid, base),
              [dx.curtailable_envelope(ld, grid, base[i]) for i, ld in enumerate(lds)])  # fmt: skip
