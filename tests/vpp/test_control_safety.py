"""Issue 8, cases 4, 5 and 10 end to end through the plan and the clamp.

The control loop runs against the real Redis state; its setpoints go through a
sink that applies the adapters' clamp (`adapters.clamp.clamp_setpoint`) with
each asset's enrolled limits (`vpp.supervisor._routing.device_limits`, as the
supervisor hands them to the adapters) and its live state, then records what
was asked and what would leave the adapter. The devices are the live keys the
test writes, as telemetry would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
import redis.asyncio as aioredis

from adapters.clamp import clamp_setpoint
from adapters.types import Confirmation, Telemetry
from vpp.clock import Clock
from vpp.control import ControlLoop
from vpp.events import EventState, EventStore, parse_event_request
from vpp.metrics import Metrics
from vpp.model import LiveState, Park, parse_asset
from vpp.settings import ControlSettings
from vpp.state import State
from vpp.supervisor._routing import device_limits

#: The park's baseline methods (``vpp.model.Park.baseline_method``).
BaselineMethod = Literal["model", "pre_event"]
PARK = "safe-park"
START = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
#: the loop's settings in these tests: a 30 s hold (3 x 10 s), quick settling
SETTINGS = ControlSettings(period_s=10, lease_ttl_s=5, settle_s=0.05)


class ClampingSink:
    """Clamps every setpoint as an adapter would, confirms it, records both sides."""

    def __init__(self, state: State, clock: Clock) -> None:
        self.state = state
        self.clock = clock
        self.asked: list[dict[str, float]] = []
        self.sent: list[dict[str, float]] = []
        self.released: list[str] = []

    async def send(
        self, park: str, setpoints: Mapping[str, float], *, hold_s: float
    ) -> dict[str, Confirmation]:
        assets = {a.id: a for a in await self.state.list_assets(park)}
        live = await self.state.read_live_many(park, list(setpoints))
        now = self.clock.now().timestamp()
        out: dict[str, Confirmation] = {}
        sent: dict[str, float] = {}
        for asset_id, kw in setpoints.items():
            res = clamp_setpoint(
                kw, device_limits(assets[asset_id]), _telemetry(asset_id, live.get(asset_id)),
                now=now, hold_s=hold_s,
            )  # fmt: skip
            sent[asset_id] = res.power_kw
            out[asset_id] = Confirmation(
                asset_id=asset_id, requested_kw=kw, sent_kw=res.power_kw, clamped=res.clamped,
                confirmed=True, reason=res.reason,
            )  # fmt: skip
        self.asked.append(dict(setpoints))
        self.sent.append(sent)
        return out

    async def release(self, park: str, asset_ids: Iterable[str]) -> dict[str, bool]:
        ids = list(asset_ids)
        self.released.extend(ids)
        return dict.fromkeys(ids, True)


def _telemetry(asset_id: str, live: LiveState | None) -> Telemetry | None:
    """The adapter's view of the same reading (its clamp input)."""
    if live is None:
        return None
    return Telemetry(
        asset_id=asset_id,
        ts=live.ts.timestamp(),
        power_kw=live.power_kw,
        soc=live.soc,
        ev_connected=live.ev_connected,
        departure_ts=live.ev_departure.timestamp() if live.ev_departure else None,
        energy_needed_kwh=live.ev_energy_needed_kwh,
    )


@pytest.fixture
async def state(redis_client: aioredis.Redis, namespace: str) -> State:
    return State(redis_client, namespace=namespace)


async def enroll(state: State, *assets: dict[str, Any]) -> None:
    for body in assets:
        await state.enroll(PARK, parse_asset(body))


async def post(state: State, clock: Clock, **over: Any) -> None:
    body: dict[str, Any] = {
        "id": "ev-1", "kind": "peak_shaving", "start": START.isoformat(),
        "target_kw": 300, "duration_minutes": 60,
    }  # fmt: skip
    body.update(over)
    await EventStore(state).create(PARK, parse_event_request(body), clock.now())


def control(state: State, sink: ClampingSink, clock: Clock, **kw: Any) -> ControlLoop:
    return ControlLoop(
        park=PARK, state=state, events=EventStore(state), sink=sink, clock=clock,
        settings=SETTINGS, **kw,
    )  # fmt: skip


def battery(asset_id: str, unit: int) -> dict[str, Any]:
    return {
        "kind": "battery", "id": asset_id, "owner": "o", "grid_node": "n",
        "connection": {"protocol": "modbus", "host": "127.0.0.1", "unit_id": unit},
        "capacity_kwh": 1000, "max_charge_kw": 500, "max_discharge_kw": 500,
        "soc_min": 0.10, "soc_max": 0.90,
    }  # fmt: skip


def charger(asset_id: str) -> dict[str, Any]:
    return {
        "kind": "ev_charger", "id": asset_id, "owner": "o", "grid_node": "n",
        "connection": {"protocol": "ocpp", "charge_point_id": f"CP-{asset_id}"},
        "max_charge_kw": 11,
    }  # fmt: skip


def assert_sent_as_planned(sink: ClampingSink) -> None:
    """The clamp changed nothing the plan chose."""
    assert sink.sent, "nothing was sent"
    for asked, sent in zip(sink.asked, sink.sent, strict=True):
        assert sent == pytest.approx(asked, abs=1e-6)


@pytest.mark.parametrize(("soc", "kind"), [(0.05, "peak_shaving"), (0.95, "valley_filling")])
async def test_case4_battery_outside_its_window_is_held_at_zero(
    state: State, soc: float, kind: str
) -> None:
    """SoC 5 % below soc_min 0.10 in a 300 kW peak-shaving event (was: charge 210-500 kW).

    Mirror: SoC 95 % above soc_max 0.90 in valley filling. A second battery carries
    the target.
    """
    await enroll(state, battery("low", 1), battery("ok", 2))
    await state.write_live_many(
        PARK,
        {"low": LiveState(power_kw=0.0, soc=soc), "ok": LiveState(power_kw=0.0, soc=0.5)},
        ttl=60,
    )
    clock = Clock(time_scale=1, origin=START + timedelta(seconds=30))
    await post(state, clock, kind=kind)
    sink = ClampingSink(state, clock)
    ctl = control(state, sink, clock)
    assert await ctl.lease.acquire()
    await ctl.cycle()
    assert (await EventStore(state).get(PARK, "ev-1")).state is EventState.ACTIVE
    assert sink.sent[-1]["low"] == pytest.approx(0.0, abs=1e-3)
    sign = -1.0 if kind == "peak_shaving" else 1.0
    assert sink.sent[-1]["ok"] == pytest.approx(sign * 300.0, abs=100.0)  # carries the event
    assert_sent_as_planned(sink)


@pytest.mark.parametrize("departure_min", [-10, 5])
async def test_case5_ev_past_its_departure_is_sent_what_was_planned(
    state: State, departure_min: int
) -> None:
    """Departure now - 10 min (and now + 5 min), 10 kWh still needed, 11 kW one-way charger.

    A 10 kW peak-shaving event: the EV is flexible again (best-effort need), its
    baseline is its uncontrolled 11 kW, it is planned at about 1 kW and that is
    what the clamp sends (it used to send 11 kW against a planned 0 kW).
    """
    await enroll(state, charger("cp1"))
    clock = Clock(time_scale=1, origin=START + timedelta(seconds=30))
    departure = clock.now() + timedelta(minutes=departure_min)
    reading = LiveState(
        power_kw=11.0, ev_connected=True, ev_departure=departure, ev_energy_needed_kwh=10.0
    )
    await state.write_live_many(PARK, {"cp1": reading}, ttl=60)
    await post(state, clock, target_kw=10)
    sink = ClampingSink(state, clock)
    ctl = control(state, sink, clock)
    assert await ctl.lease.acquire()
    await ctl.cycle()
    record = await EventStore(state).get(PARK, "ev-1")
    assert record.state is EventState.ACTIVE
    assert record.baseline_kw[0] == pytest.approx(11.0, abs=0.01)
    assert_sent_as_planned(sink)
    assert 0.0 <= sink.sent[-1]["cp1"] <= 2.0  # 11 kW - 10 kW, plus the lag correction


@pytest.mark.parametrize("method", ["model", "pre_event"])
async def test_case10_charger_that_does_not_follow_is_held_and_credits_nothing(
    state: State, method: BaselineMethod
) -> None:
    """An 11 kW charger whose vehicle draws 7.4 kW whatever limit it gets; 10 kW event.

    Its baseline is its measured 7.4 kW (not the 11 kW nameplate, which credited
    3.6 kW), it is recognised once as not following and then held at 7.4 kW for
    the rest of the event (its limit used to flip between about 1 and 7.4 kW).
    """
    await enroll(state, charger("cp1"))
    await state.put_park(Park(id=PARK, baseline_method=method))
    clock = Clock(time_scale=1, origin=START + timedelta(seconds=30))
    departure = clock.now() + timedelta(hours=3)

    async def report() -> None:  # the vehicle's draw, whatever it was sent
        reading = LiveState(
            power_kw=7.4, ev_connected=True, ev_departure=departure, ev_energy_needed_kwh=10.0
        )
        await state.write_live_many(PARK, {"cp1": reading}, ttl=60)

    await report()
    await post(state, clock, target_kw=10)
    metrics = Metrics()
    sink = ClampingSink(state, clock)
    ctl = control(state, sink, clock, metrics=metrics)
    assert await ctl.lease.acquire()
    await ctl.cycle()
    record = await EventStore(state).get(PARK, "ev-1")
    assert record.baseline_kw[0] == pytest.approx(7.4, abs=0.01)
    limits: list[float] = [sink.sent[-1]["cp1"]]
    for _ in range(10):
        await asyncio.sleep(SETTINGS.settle_s * 2)  # the next reading postdates the setpoint
        await report()
        await ctl.cycle()
        limits.append(sink.sent[-1]["cp1"])
    assert_sent_as_planned(sink)
    # planned down first; once recognised it is held at its measured draw, and stays there
    assert limits[0] < 1.0
    held = limits.index(next(v for v in limits if v == pytest.approx(7.4)))
    assert held <= 3
    assert all(v == pytest.approx(7.4) for v in limits[held:])
    record = await EventStore(state).get(PARK, "ev-1")
    assert record.delivered_kw[0] == pytest.approx(0.0, abs=0.01)
    text = metrics.exposition().decode()
    assert 'vpp_control_not_following_total{kind="ev_charger",park="safe-park"} 1.0' in text


def load(asset_id: str) -> dict[str, Any]:
    return {
        "kind": "flexible_load", "id": asset_id, "owner": "o", "grid_node": "n",
        "connection": {"protocol": "mqtt", "topic_prefix": f"safe-park/loads/{asset_id}"},
        "baseline_kw": 100, "max_shed_kw": 50, "max_shed_minutes": 120,
        "rebound_fraction": 0.5,
    }  # fmt: skip


STUCK = [
    # a load enrolled at 100 kW that draws 60 kW (its enrolled baseline credited 40 kW)
    (load("l1"), LiveState(power_kw=60.0)),
    # a battery whose own EMS discharges 50 kW (its "idle" model credited 50 kW)
    (battery("b1", 1), LiveState(power_kw=-50.0, soc=0.5)),
]


@pytest.mark.parametrize("method", ["model", "pre_event"])
@pytest.mark.parametrize(("asset", "reading"), STUCK, ids=["load", "battery"])
async def test_no_delivery_without_a_change_in_measured_power(
    state: State, method: BaselineMethod, asset: dict[str, Any], reading: LiveState
) -> None:
    """A device that keeps doing what it did before the event earns nothing."""
    await enroll(state, asset)
    await state.put_park(Park(id=PARK, baseline_method=method))
    clock = Clock(time_scale=1, origin=START + timedelta(seconds=30))
    await post(state, clock, target_kw=30)
    sink = ClampingSink(state, clock)
    ctl = control(state, sink, clock)
    assert await ctl.lease.acquire()
    for _ in range(4):
        # taken now: a reading dated at collection time may be older than the live TTL
        fresh = reading.model_copy(update={"ts": datetime.now(UTC)})
        await state.write_live_many(PARK, {asset["id"]: fresh}, ttl=60)
        await ctl.cycle()
        await asyncio.sleep(SETTINGS.settle_s * 2)
    record = await EventStore(state).get(PARK, "ev-1")
    assert record.baseline_kw[0] == pytest.approx(reading.power_kw, abs=0.01)
    assert record.delivered_kw[0] == pytest.approx(0.0, abs=0.01)
    assert_sent_as_planned(sink)


async def test_an_asset_silent_at_activation_earns_nothing_for_appearing(state: State) -> None:
    """Silent at activation (baseline a guess: 100 kW), it then reports 60 kW."""
    await enroll(state, load("l1"), battery("b1", 1))
    clock = Clock(time_scale=1, origin=START + timedelta(seconds=30))
    await state.write_live_many(PARK, {"b1": LiveState(power_kw=0.0, soc=0.5)}, ttl=60)
    await post(state, clock, target_kw=30)
    sink = ClampingSink(state, clock)
    ctl = control(state, sink, clock)
    assert await ctl.lease.acquire()
    await ctl.cycle()
    assert (await EventStore(state).get(PARK, "ev-1")).baseline_kw[0] == pytest.approx(100.0)
    fed = [0.0]  # what the battery reported at each measured cycle
    for _ in range(3):
        await asyncio.sleep(SETTINGS.settle_s * 2)
        # the battery holds what it was sent; the load now reports, and ignores its limit
        fed.append(sink.sent[-1]["b1"])
        await state.write_live_many(
            PARK,
            {"b1": LiveState(power_kw=fed[-1], soc=0.5), "l1": LiveState(power_kw=60.0)},
            ttl=60,
        )
        await ctl.cycle()
    record = await EventStore(state).get(PARK, "ev-1")
    assert record.baseline_kw[0] == pytest.approx(60.0)  # anchored at its first reading
    # only the battery's moves count, never the load's 40 kW "drop" from a guess
    assert record.delivered_kw[0] == pytest.approx(sum(fed) / len(fed), abs=0.01)


async def test_case4_live_flexibility_offers_no_down_capacity(
    state: State, client: Any, auth: Any
) -> None:
    """GET /flexibility with the case-4 battery: nothing down from it, 500 kW up."""
    await enroll(state, battery("low", 1))
    await state.write_live_many(PARK, {"low": LiveState(power_kw=0.0, soc=0.05)}, ttl=60)
    viewer = await auth("viewer", PARK)
    resp = await client.get(
        f"/v1/parks/{PARK}/flexibility", params={"intervals": "8"}, headers=viewer
    )
    assert resp.status == 200, await resp.text()
    env = await resp.json()
    assert env["assets_included"] == 1
    assert env["down_kw"] == [0.0] * 8
    assert env["up_kw"][0] == pytest.approx(500.0)


async def test_a_vehicle_arriving_mid_event_is_neither_credited_nor_held_against(
    state: State,
) -> None:
    """The charger had no vehicle at activation; one plugs in and draws 11 kW."""
    await enroll(state, charger("cp1"), battery("b1", 1))
    clock = Clock(time_scale=1, origin=START + timedelta(seconds=30))
    await state.write_live_many(
        PARK,
        {
            "cp1": LiveState(power_kw=0.0, ev_connected=False),
            "b1": LiveState(power_kw=0.0, soc=0.5),
        },
        ttl=60,
    )
    await post(state, clock, target_kw=30)
    sink = ClampingSink(state, clock)
    ctl = control(state, sink, clock)
    assert await ctl.lease.acquire()
    await ctl.cycle()
    assert (await EventStore(state).get(PARK, "ev-1")).baseline_kw[0] == pytest.approx(0.0)
    departure = clock.now() + timedelta(hours=3)
    arrived = LiveState(
        power_kw=11.0, ev_connected=True, ev_departure=departure, ev_energy_needed_kwh=10.0
    )
    fed = [0.0]  # what the battery reported at each measured cycle
    for _ in range(3):
        await asyncio.sleep(SETTINGS.settle_s * 2)
        fed.append(sink.sent[-1]["b1"])
        await state.write_live_many(
            PARK, {"cp1": arrived, "b1": LiveState(power_kw=fed[-1], soc=0.5)}, ttl=60
        )
        await ctl.cycle()
    record = await EventStore(state).get(PARK, "ev-1")
    assert record.baseline_kw[0] == pytest.approx(11.0)  # it would have charged anyway
    # the vehicle kept drawing 11 kW (it has not moved yet): only the battery counts
    assert record.delivered_kw[0] == pytest.approx(sum(fed) / len(fed), abs=0.01)
    assert_sent_as_planned(sink)
