"""The history route over real HTTP and Redis: resolutions, partial coverage, the park series, CSV.

Every expected number is worked out by hand from the few slots written below.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from tests.vpp.api.metering.support import OWNER_A, OWNER_B, days_before
from tests.vpp.conftest import ApiClient, TokenFactory
from tests.vpp.samples import PARK
from vpp.history.store import HistoryStore, IntervalDelta

URL = f"/v1/parks/{PARK}/history"

pytestmark = pytest.mark.usefixtures("enrolled")


@pytest.fixture
async def day(store: HistoryStore, today: date) -> date:
    """Two days ago, with a few slots of history (the rest of it unknown).

    * ``load-b``: slot 0 25 kWh over the whole slot (100 kW), slot 1 10 kWh over
      half of it (80 kW), slot 2 nothing, slot 3 20 kWh (80 kW);
    * ``pv-b``: slot 0 -5 kWh (-20 kW, exported);
    * ``meter-a`` (A's revenue meter): imported, 30 kWh in every slot;
    * ``bess-a`` (behind A's meter) and ``sub-b`` (B's sub-meter): slot 0, never in the park.
    """
    (d,) = days_before(today, 2)
    await store.add(
        PARK,
        [
            IntervalDelta("load-b", d, 0, 25.0, 900),
            IntervalDelta("load-b", d, 1, 10.0, 450),
            IntervalDelta("load-b", d, 3, 20.0, 900),
            IntervalDelta("pv-b", d, 0, -5.0, 900),
            IntervalDelta("bess-a", d, 0, 10.0, 900),
            IntervalDelta("sub-b", d, 0, 999.0, 900),
        ],
    )
    await store.put_days(PARK, "meter-a", {d: [30.0] * 96})
    return d


async def _history(client: ApiClient, headers: dict[str, str], **params: str) -> dict[str, Any]:
    resp = await client.get(URL, params=params, headers=headers)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def _values(point: dict[str, Any]) -> tuple[Any, Any, Any]:
    return point["energy_kwh"], point["mean_kw"], point["coverage"]


async def test_15m_points_carry_partial_coverage_and_nulls_where_nothing_is_known(
    client: ApiClient, operator: dict[str, str], day: date
) -> None:
    d = day.isoformat()
    body = await _history(client, operator, series="load-b", **{"from": d, "to": d})
    assert (body["series"], body["resolution"], body["timezone"]) == (
        "load-b",
        "15m",
        "Asia/Shanghai",
    )
    assert (body["first"], body["last"], body["sources"]) == (d, d, [])
    points = body["points"]
    assert len(points) == 96
    assert [p["start"] for p in points[:2]] == [f"{d}T00:00:00+08:00", f"{d}T00:15:00+08:00"]
    assert [_values(p) for p in points[:5]] == [
        (25.0, 100.0, 1.0),
        (10.0, 80.0, 0.5),
        (None, None, 0.0),  # unknown: null, never 0
        (20.0, 80.0, 1.0),
        (None, None, 0.0),
    ]


async def test_1h_and_1d_points_add_energy_average_coverage_and_mean_over_covered_time(
    client: ApiClient, operator: dict[str, str], day: date
) -> None:
    d = day.isoformat()
    hourly = await _history(
        client, operator, series="load-b", resolution="1h", **{"from": d, "to": d}
    )
    assert len(hourly["points"]) == 24
    first = hourly["points"][0]
    # 55 kWh over 2.5 of 4 slots: coverage 0.625, 55 kWh / 0.625 h = 88 kW
    assert (first["start"], *_values(first)) == (f"{d}T00:00:00+08:00", 55.0, 88.0, 0.625)
    assert _values(hourly["points"][1]) == (None, None, 0.0)

    previous = (day - timedelta(days=1)).isoformat()
    daily = await _history(
        client, operator, series="load-b", resolution="1d", **{"from": previous, "to": d}
    )
    assert [p["start"] for p in daily["points"]] == [
        f"{previous}T00:00:00+08:00",
        f"{d}T00:00:00+08:00",
    ]
    assert _values(daily["points"][0]) == (None, None, 0.0)
    # 55 kWh over 2.5 of 96 slots (0.625 h): 88 kW
    energy, kw, coverage = _values(daily["points"][1])
    assert (energy, kw) == (55.0, 88.0) and coverage == pytest.approx(2.5 / 96, abs=1e-6)


async def test_the_park_is_each_enterprise_revenue_meter_else_its_devices(
    client: ApiClient, operator: dict[str, str], day: date
) -> None:
    d = day.isoformat()
    body = await _history(client, operator, **{"from": d, "to": d})
    assert body["series"] == "park"
    assert body["sources"] == [
        {"enterprise": OWNER_A, "source": "revenue_meter", "series": ["meter-a"]},
        {"enterprise": OWNER_B, "source": "devices", "series": ["load-b", "pv-b"]},
    ]
    points = body["points"]
    # slot 0: 30 + 25 - 5 = 50 kWh, all three members whole: 200 kW (bess-a, sub-b left out)
    assert _values(points[0]) == (50.0, 200.0, 1.0)
    # slot 1: 30 + 10 kWh; coverage (1 + 0.5 + 0) / 3 = 0.5; the members' means
    # 30 / 0.25 h + 10 / (0.5 x 0.25 h) = 120 + 80 = 200 kW (the silent one adds nothing)
    assert _values(points[1]) == (40.0, 200.0, 0.5)
    # slot 4: the meter alone: 30 kWh, coverage 1/3, its own 120 kW (never scaled up by
    # the count of members without data: a new user saw 10x from 2 of 20)
    energy, kw, coverage = _values(points[4])
    assert (energy, kw) == (30.0, 120.0) and coverage == pytest.approx(1 / 3, abs=1e-6)


async def test_a_meter_and_an_asset_read_as_their_own_series(
    client: ApiClient, operator: dict[str, str], day: date
) -> None:
    d = day.isoformat()
    body = await _history(
        client, operator, series="meter-a", resolution="1d", **{"from": d, "to": d}
    )
    assert [_values(p) for p in body["points"]] == [(2880.0, 120.0, 1.0)]
    body = await _history(client, operator, series="sub-b", **{"from": d, "to": d})
    assert _values(body["points"][0]) == (999.0, 3996.0, 1.0)


async def test_csv_by_format_or_accept_with_empty_cells_for_unknown_values(
    client: ApiClient, auth: TokenFactory, day: date
) -> None:
    viewer = await auth("viewer", PARK)
    d = day.isoformat()
    params = {"series": "load-b", "resolution": "1h", "from": d, "to": d}
    by_format = await client.get(URL, params={**params, "format": "csv"}, headers=viewer)
    by_accept = await client.get(URL, params=params, headers={**viewer, "Accept": "text/csv"})
    for resp in (by_format, by_accept):
        assert resp.status == 200 and resp.content_type == "text/csv"
    text = await by_format.text()
    assert text == await by_accept.text()
    lines = text.splitlines()
    assert lines[:3] == [
        "start,energy_kwh,mean_kw,coverage",
        f"{d}T00:00:00+08:00,55.0,88.0,0.625",
        f"{d}T01:00:00+08:00,,,0.0",
    ]
    assert len(lines) == 25
    json_first = await client.get(
        URL, params=params, headers={**viewer, "Accept": "application/json, text/csv;q=0.5"}
    )
    assert json_first.content_type == "application/json"


async def test_the_default_span_is_the_week_to_today(
    client: ApiClient, operator: dict[str, str], today: date
) -> None:
    body = await _history(client, operator, resolution="1d")
    assert (body["first"], body["last"]) == (
        (today - timedelta(days=6)).isoformat(),
        today.isoformat(),
    )
    assert len(body["points"]) == 7


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-11-20", "to": "2026-11-19"}, "from"),
        ({"from": "2026-10-01", "to": "2026-11-01", "resolution": "15m"}, "to"),
        ({"from": "2026-01-01", "to": "2026-04-03", "resolution": "1h"}, "to"),
        ({"from": "2025-01-01", "to": "2026-01-02", "resolution": "1d"}, "to"),
        ({"from": "1732320000"}, "from"),
        ({"to": "2026-02-29"}, "to"),
        ({"resolution": "5m"}, "resolution"),
        ({"series": "no/such"}, "series"),
    ],
)
async def test_a_bad_span_or_parameter_is_422_naming_it(
    client: ApiClient, operator: dict[str, str], params: dict[str, str], field: str
) -> None:
    resp = await client.get(URL, params=params, headers=operator)
    assert resp.status == 422, await resp.text()
    assert [e["field"] for e in (await resp.json())["errors"]] == [field]


@pytest.mark.parametrize(
    ("resolution", "first", "last", "points"),
    [("15m", "2026-10-01", "2026-10-31", 31 * 96), ("1h", "2026-01-01", "2026-04-02", 92 * 24),
     ("1d", "2025-01-01", "2026-01-01", 366)],
)  # fmt: skip
async def test_the_longest_spans_are_served(
    client: ApiClient,
    operator: dict[str, str],
    resolution: str,
    first: str,
    last: str,
    points: int,
) -> None:
    params = {"resolution": resolution, "from": first, "to": last}
    assert len((await _history(client, operator, **params))["points"]) == points


async def test_an_unknown_series_is_404_and_roles_are_those_of_the_assets(
    client: ApiClient, auth: TokenFactory, operator: dict[str, str]
) -> None:
    resp = await client.get(URL, params={"series": "nope"}, headers=operator)
    assert resp.status == 404 and "series 'nope' not found" in (await resp.json())["detail"]
    assert (await client.get(URL, headers=await auth("viewer", PARK))).status == 200
    assert (await client.get(URL, headers=await auth("grid_operator", PARK))).status == 403
    assert (await client.get(URL, headers=await auth("viewer", "park-b"))).status == 403
