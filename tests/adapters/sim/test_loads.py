"""A simulated load's physics with and without a load profile."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from adapters import mqtt_codec as codec
from adapters.sim.loads import LoadModel, LoadSpec
from adapters.sim.profiles import DayType, LoadProfile, Shape
from adapters.types import DeviceLimits, Setpoint
from tests.support import MqttRig

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEDNESDAY = date(2026, 11, 25)


def at(day: date, hour: float) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI) + timedelta(hours=hour)


def line(profile: LoadProfile | None, **kw: float) -> LoadSpec:
    return LoadSpec(
        asset_id="line-10", kind="process", baseline_kw=400.0, p_min_kw=250.0, p_max_kw=520.0,
        ramp_kw_per_s=1e6, profile=profile, **kw,
    )  # fmt: skip


def test_without_a_profile_a_load_keeps_its_flat_baseline_and_window() -> None:
    model = LoadModel(line(None), origin=at(WEDNESDAY, 3.0))
    assert [model.baseline(t) for t in (0.0, 3600.0, 40000.0)] == [400.0] * 3
    assert model.window(40000.0) == (250.0, 520.0)
    assert model.command(100.0, until=60.0) == 250.0


def test_with_a_profile_the_baseline_follows_the_local_shift() -> None:
    profile = LoadProfile(shape=Shape.TWO_SHIFT, seed=1)
    # 03:00 Beijing time, given in UTC: the profile reads its own clock
    model = LoadModel(line(profile), origin=at(WEDNESDAY, 3.0).astimezone(ZoneInfo("UTC")))
    assert model.power_kw == pytest.approx(0.3 * 400.0, rel=0.15)  # starts where the night is
    night, shift = model.baseline(0.0), model.baseline(11 * 3600.0)  # 03:00, 14:00
    assert shift > 2.5 * night
    # the window scales with the level: a line at 30 % can shed 30 % as much
    low, high = model.window(0.0)
    assert (low / 250.0, high / 520.0) == pytest.approx((night / 400.0, night / 400.0))
    assert model.command(0.0, until=60.0, t=0.0) == pytest.approx(low)


def test_the_callers_calendar_decides_the_day_type() -> None:
    profile = LoadProfile(shape=Shape.TWO_SHIFT, seed=1, noise=0.0)
    origin = at(WEDNESDAY, 14.0)
    working = LoadModel(line(profile), origin=origin)  # Monday to Friday by default
    holiday = LoadModel(line(profile), origin=origin, day_type=lambda _: DayType.HOLIDAY)
    assert holiday.baseline(0.0) == pytest.approx(0.2 * working.baseline(0.0))


def test_a_live_slot_averages_to_the_history_of_the_same_slot() -> None:
    profile = LoadProfile(shape=Shape.TWO_SHIFT, seed=11)
    start = at(WEDNESDAY, 7.75)  # the shift starts inside the next two slots
    model = LoadModel(line(profile), origin=start)
    history = profile.day_kw(WEDNESDAY, DayType.WORKDAY, 400.0)
    energy = {31: 0.0, 32: 0.0}
    for second in range(1, 2 * 900 + 1):
        model.step(float(second), 1.0)
        energy[31 if second <= 900 else 32] += model.power_kw / 3600.0
    for slot, kwh in energy.items():
        assert kwh * 4 == pytest.approx(history[slot], rel=0.01)


def test_a_shed_load_rebounds_onto_its_profile() -> None:
    profile = LoadProfile(shape=Shape.CONTINUOUS, seed=2, noise=0.0)
    model = LoadModel(line(profile, rebound_tau_s=600.0), origin=at(WEDNESDAY, 10.0))
    model.command(0.0, until=900.0, t=0.0)
    for second in range(1, 1801):
        model.step(float(second), 1.0)
        if second == 899:
            assert model.power_kw == pytest.approx(model.window(899.0)[0])
    assert model.deficit_kwh > 0  # still owed after 15 min of rebound
    assert model.power_kw > model.baseline(1800.0)
    assert np.isfinite(model.energy_kwh)


async def test_a_gateways_profiled_load_reports_its_level_and_window(mqtt: MqttRig) -> None:
    profile = LoadProfile(shape=Shape.TWO_SHIFT, seed=1, noise=0.0)
    spec = line(profile)
    fleet = mqtt.fleet([spec], period_s=0.05, origin=at(WEDNESDAY, 3.0))  # 03:00, real time
    mqtt.retained(fleet.topics.status(fleet.node))
    expected = LoadModel(spec, origin=at(WEDNESDAY, 3.0))
    async with mqtt.client() as reader:
        await reader.subscribe(mqtt.topics.telemetry("line-10"), qos=1)
        async with fleet, asyncio.timeout(10):
            message = await anext(aiter(reader.messages))
    assert isinstance(message.payload, bytes)
    reading, _ = codec.decode(message.payload)
    level = expected.scale(0.0)
    assert 0.2 < level < 0.4  # the night between the shifts
    assert reading["p_kw"] == pytest.approx(400.0 * level, rel=0.01)
    assert (reading["min_kw"], reading["max_kw"]) == pytest.approx(
        (250.0 * level, 520.0 * level), rel=0.01
    )


async def test_a_gateway_receives_only_its_own_loads_commands(mqtt: MqttRig) -> None:
    ours = [LoadSpec(asset_id=f"a-{i}", ramp_kw_per_s=50.0) for i in range(3)]
    theirs = [LoadSpec(asset_id=f"b-{i}", ramp_kw_per_s=50.0) for i in range(3)]
    limits = {s.asset_id: DeviceLimits(p_min_kw=10, p_max_kw=80) for s in ours + theirs}
    a, b = mqtt.fleet(ours, period_s=5.0), mqtt.fleet(theirs, period_s=5.0)
    for fleet in (a, b):
        mqtt.retained(fleet.topics.status(fleet.node))
    async with mqtt.adapter(limits) as adapter, a, b:
        await asyncio.wait_for(asyncio.gather(a.connected.wait(), b.connected.wait()), 5)
        confs = await asyncio.gather(
            *(adapter.apply(Setpoint(asset_id=s.asset_id, power_kw=30.0)) for s in ours)
        )
    assert all(c.confirmed for c in confs), confs
    assert (a.received, a.commands) == (3, 3)
    assert b.received == 0  # subscribed to its own loads' topics, not the park's wildcard
