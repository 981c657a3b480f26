"""Dispatch portfolios for the tests: a battery built by hand, or a synthetic park drawn at random.

Hand-computed tests want a battery whose whole state of charge is usable,
with one efficiency each way (:func:`full_range_battery`, its envelope); property tests
draw seeded synthetic parks over half a day at 15, 30 or 60 minutes
(:func:`synthetic_parks`) under :data:`PROPERTY_SETTINGS`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from dispatch import Battery, Portfolio, TimeGrid, battery_envelope
from tests.support.synthetic import synthetic_park

#: Few examples (each solves LPs), no deadline (a loaded machine), slow data allowed.
PROPERTY_SETTINGS = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def full_range_battery(
    grid: TimeGrid,
    asset_id: str = "b",
    *,
    capacity_kwh: float = 100.0,
    max_kw: float = 50.0,
    soc: float = 0.5,
    eta: float = 1.0,
    **spec: Any,
) -> Portfolio:
    """The envelope of a battery usable from 0 to 100 % SoC (join it with ``build_portfolio``).

    Args:
        grid: The time grid of the envelope.
        asset_id: The battery's id.
        capacity_kwh: Usable capacity.
        max_kw: Charge and discharge limit, both ways.
        soc: Live state of charge, 0..1.
        eta: Charge and discharge efficiency, both ways.
        **spec: Any other :class:`dispatch.Battery` field (``cost_kwh``...).
    """
    battery = Battery(
        asset_id=asset_id, capacity_kwh=capacity_kwh, max_charge_kw=max_kw,
        max_discharge_kw=max_kw, soc=soc, soc_min=0.0, soc_max=1.0, eta_charge=eta,
        eta_discharge=eta, **spec,
    )  # fmt: skip
    return battery_envelope(battery, grid)


def _half_day(n: int, seed: int, step_minutes: int) -> Portfolio:
    grid = TimeGrid(n=int(12 * 60 / step_minutes), step=timedelta(minutes=step_minutes))
    return synthetic_park(n, seed=seed, grid=grid)


def synthetic_parks(min_assets: int, max_assets: int) -> st.SearchStrategy[Portfolio]:
    """Seeded synthetic parks of ``min_assets`` to ``max_assets`` assets over 12 hours."""
    return st.builds(
        _half_day,
        n=st.integers(min_assets, max_assets),
        seed=st.integers(0, 10_000),
        step_minutes=st.sampled_from([15, 30, 60]),
    )
