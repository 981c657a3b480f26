"""The irradiance upload over HTTP and Redis: JSON and CSV, slots replaced, bad values named."""

from __future__ import annotations

import io
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tests.vpp.conftest import ApiClient, TokenFactory
from tests.vpp.samples import PARK, sample
from vpp.forecast.inputs import ForecastContext, HistoryWindow
from vpp.forecast.irradiance import PAST_DAYS, irradiance_days
from vpp.forecast.pv import forecast_pv
from vpp.model import Park, ParkLocation, parse_asset
from vpp.state import State

URL = f"/v1/parks/{PARK}/irradiance"
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
async def tomorrow(state: State) -> date:
    await state.put_park(Park(id=PARK))
    return datetime.now(UTC).astimezone(TZ).date() + timedelta(days=1)


@pytest.fixture
async def operator(auth: TokenFactory) -> dict[str, str]:
    return await auth("park_operator", PARK)


def _at(day: date, hh: int, mm: int = 0) -> str:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=TZ).isoformat()


async def _held(client: ApiClient, headers: dict[str, str], day: date) -> list[Any]:
    resp = await client.get(URL, params={"from": day.isoformat(), "to": day.isoformat()},
                            headers=headers)  # fmt: skip
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["timezone"] == "Asia/Shanghai"
    return [d["ghi_w_m2"] for d in body["days"] if d["date"] == day.isoformat()]


async def test_json_hours_set_four_slots_and_a_later_upload_replaces_only_its_slots(
    client: ApiClient, operator: dict[str, str], tomorrow: date, state: State
) -> None:
    # the second hour written in UTC: 13:00+08:00 is 05:00Z
    utc = f"{tomorrow.isoformat()}T05:00:00Z"
    body = {"interval_minutes": 60,
            "values": [{"start": _at(tomorrow, 12), "ghi_w_m2": 512.0},
                       {"start": utc, "ghi_w_m2": 300.5}]}  # fmt: skip
    resp = await client.put(URL, json=body, headers=operator)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"park": PARK, "timezone": "Asia/Shanghai",
                                 "days": [tomorrow.isoformat()], "slots": 8}  # fmt: skip
    (held,) = await _held(client, operator, tomorrow)
    assert held[48:56] == [512.0] * 4 + [300.5] * 4
    assert held[:48] == [None] * 48 and held[56:] == [None] * 40

    fix = {"interval_minutes": 15, "values": [{"start": _at(tomorrow, 12, 15), "ghi_w_m2": 100.0}]}
    assert (await client.put(URL, json=fix, headers=operator)).status == 200
    (held,) = await _held(client, operator, tomorrow)
    assert held[48:52] == [512.0, 100.0, 512.0, 512.0]
    assert held[52] == 300.5

    # what the refresh reads: the same day, NaN where nothing was uploaded
    got = await irradiance_days(state, PARK, [tomorrow, tomorrow + timedelta(days=1)])
    assert list(got) == [tomorrow]
    assert got[tomorrow][49] == 100.0 and math.isnan(got[tomorrow][0])
    ttl = await state.redis.ttl(state.park(PARK).irradiance)
    assert (PAST_DAYS + 1) * 86400 < ttl <= (PAST_DAYS + 2) * 86400  # tomorrow + PAST_DAYS


async def test_csv_with_its_interval_in_the_query(
    client: ApiClient, operator: dict[str, str], tomorrow: date
) -> None:
    text = f"start,ghi_w_m2\r\n{_at(tomorrow, 9)},200\r\n{_at(tomorrow, 9, 30)},250.25\r\n"
    resp = await client.put(URL, data=text, params={"interval_minutes": "30"},
                            headers={**operator, "Content-Type": "text/csv"})  # fmt: skip
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["slots"] == 4
    (held,) = await _held(client, operator, tomorrow)
    assert held[36:40] == [200.0, 200.0, 250.25, 250.25]


async def _refused(client: ApiClient, headers: dict[str, str], **kwargs: Any) -> list[str]:
    resp = await client.put(URL, headers=headers, **kwargs)
    assert resp.status == 422, await resp.text()
    problem = await resp.json()
    return [e["field"] for e in problem["errors"]]


async def test_bad_json_values_are_named_and_nothing_is_stored(
    client: ApiClient, operator: dict[str, str], tomorrow: date
) -> None:
    far = tomorrow + timedelta(days=30)
    values = [
        {"start": _at(tomorrow, 10), "ghi_w_m2": 400.0},  # fine
        {"start": _at(tomorrow, 11), "ghi_w_m2": -1.0},  # negative
        {"start": _at(tomorrow, 12), "ghi_w_m2": 1600.0},  # above 1500 W/m²
        {"start": f"{tomorrow.isoformat()}T13:00:00", "ghi_w_m2": 100.0},  # naive
        {"start": _at(tomorrow, 14, 10), "ghi_w_m2": 100.0},  # off the 15-minute grid
        {"start": _at(tomorrow, 10), "ghi_w_m2": 10.0},  # the slot of values[0] again
        {"start": _at(far, 10), "ghi_w_m2": 10.0},  # over 16 days ahead
    ]
    fields = await _refused(client, operator, json={"values": values})
    assert fields == ["values[1].ghi_w_m2", "values[2].ghi_w_m2", "values[3].start",
                      "values[4].start", "values[5].start", "values[6].start"]  # fmt: skip
    assert await _held(client, operator, tomorrow) == []
    # an hour must start on a whole local hour
    hour = {"interval_minutes": 60, "values": [{"start": _at(tomorrow, 10, 15), "ghi_w_m2": 1.0}]}
    assert await _refused(client, operator, json=hour) == ["values[0].start"]
    # the query's interval contradicts the body's
    fields = await _refused(client, operator, json=hour, params={"interval_minutes": "15"})
    assert fields == ["interval_minutes"]


async def test_a_start_no_park_day_can_hold_is_a_422_not_a_500(
    client: ApiClient, operator: dict[str, str], tomorrow: date
) -> None:
    # a fresh user's finding: year 1 east of UTC, or year 9999 west of it, overflowed the date
    # when laid onto the park's day (500 OverflowError)
    for start in ("0001-01-01T00:00:00+08:00", "9999-12-31T23:45:00-12:00"):
        body = {"values": [{"start": start, "ghi_w_m2": 1.0}]}
        assert await _refused(client, operator, json=body) == ["values[0].start"]
    csv_headers = {**operator, "Content-Type": "text/csv"}
    text = "start,ghi_w_m2\n0001-01-01T00:00:00+08:00,100\n"
    assert await _refused(client, csv_headers, data=text) == ["row 2, column start"]


async def test_bad_csv_rows_are_named(
    client: ApiClient, operator: dict[str, str], tomorrow: date
) -> None:
    text = (f"start,ghi_w_m2\n{tomorrow.isoformat()}T10:00:00,100\n{_at(tomorrow, 11)},nan\n"
            f"{_at(tomorrow, 12)},-5\n{_at(tomorrow, 13)},12.5\n")  # fmt: skip
    csv_headers = {**operator, "Content-Type": "text/csv"}
    fields = await _refused(client, csv_headers, data=text)
    assert fields == ["row 2, column start", "row 3, column ghi_w_m2", "row 4, column ghi_w_m2"]
    assert await _held(client, operator, tomorrow) == []
    header = await _refused(client, csv_headers, data="time,ghi\n")
    assert header == ["row 1"]


async def test_roles_and_spans(
    client: ApiClient, auth: TokenFactory, operator: dict[str, str], tomorrow: date
) -> None:
    body = {"values": [{"start": _at(tomorrow, 10), "ghi_w_m2": 1.0}]}
    viewer = await auth("viewer", PARK)
    assert (await client.put(URL, json=body, headers=viewer)).status == 403
    grid = await auth("grid_operator", PARK)
    assert (await client.put(URL, json=body, headers=grid)).status == 200
    assert len(await _held(client, viewer, tomorrow)) == 1
    later = {"from": tomorrow.isoformat(), "to": (tomorrow - timedelta(days=1)).isoformat()}
    resp = await client.get(URL, params=later, headers=viewer)
    assert resp.status == 422
    assert [e["field"] for e in (await resp.json())["errors"]] == ["from"]
    # by default from the park's today to 16 days on: tomorrow is in it
    resp = await client.get(URL, headers=viewer)
    assert [d["date"] for d in (await resp.json())["days"]] == [tomorrow.isoformat()]


async def test_an_uploaded_cloudy_afternoon_reaches_the_pv_forecast(
    client: ApiClient, operator: dict[str, str], tomorrow: date, state: State
) -> None:
    # 400 W/m² every daylight hour of tomorrow, 50 from 13:00: the refresh reads it back
    rows = [f"{_at(tomorrow, h)},{400 if h < 13 else 50}" for h in range(6, 19)]
    text = "start,ghi_w_m2\n" + "\n".join(rows) + "\n"
    resp = await client.put(URL, data=text, params={"interval_minutes": "60"},
                            headers={**operator, "Content-Type": "text/csv"})  # fmt: skip
    assert resp.status == 200, await resp.text()
    targets = [tomorrow - timedelta(days=1), tomorrow]
    uploaded = await irradiance_days(state, PARK, targets)
    pv = parse_asset(sample("pv", id="pv1", rated_kw=100.0))
    park = Park(id=PARK, location=ParkLocation(latitude=22.80, longitude=113.55))
    days = [targets[0] - timedelta(days=14 - i) for i in range(15)]  # 14 complete + issue day
    window = HistoryWindow(
        ["pv1"], ["pv"], days, np.full((1, 15, 96), np.nan), np.zeros((1, 15, 96))
    )
    ctx = ForecastContext(park, {"pv1": pv}, datetime.now(UTC), targets, uploaded)
    f = forecast_pv(window, [0], ctx)["pv1"]
    assert f.method == "irradiance"
    assert f"uploaded irradiance for {tomorrow} (52 slots)" in f.note
    day = -f.kw[96:]
    assert day[40:48].mean() > 4 * day[56:64].mean() > 0  # 10:00-12:00 vs 14:00-16:00
    assert (day[:20] == 0).all()


async def test_an_oversized_body_is_a_413_the_document_declares(
    client: ApiClient, operator: dict[str, str], tomorrow: date
) -> None:
    # a fresh user's finding: the 413 of a body over 1 MiB was not in /openapi.json
    resp = await client.put(
        f"/v1/parks/{PARK}/irradiance", data=io.BytesIO(b"x" * (1 << 20 | 1)),
        headers={**operator, "Content-Type": "application/json"},
    )  # fmt: skip
    assert resp.status == 413
    doc = await (await client.get("/openapi.json")).json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if "requestBody" in op:
                assert "413" in op["responses"], (method, path)
