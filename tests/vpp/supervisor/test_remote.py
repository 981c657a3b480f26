"""Chargers behind another replica: two supervisors on one Redis namespace, chargers on B.

Replica A decides setpoints for park ``p1``; its chargers (OCPP simulators)
connect to replica B's listener. Each replica has its own State (its own
connections) and OCPP port; both share the Redis namespace. The replicas'
heartbeats in ``GlobalKeys.replicas`` are written here as `vpp.replicas`
writes them (id -> expiry, epoch ms), so a replica can be live or gone on cue.
Everything else is real: Redis streams, websockets, the chargers' answers.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, timedelta

import pytest

from adapters.ocpp.csms import OcppCsmsAdapter
from adapters.ocpp.profiles import V21
from adapters.sim._clock import SimClock
from adapters.sim.chargers import ChargerSpec, SimCharger
from adapters.types import Confirmation, Setpoint
from tests.support import eventually
from tests.vpp.supervisor import assets
from tests.vpp.supervisor.assets import PARK, SECRET
from tests.vpp.supervisor.conftest import SupervisorFactory
from vpp.history.recorder import HistoryRecorder
from vpp.history.store import HistoryStore
from vpp.servers import free_port
from vpp.settings import Settings
from vpp.state import State, pack
from vpp.supervisor import Supervisor, charger_password
from vpp.supervisor._remote import RemoteCalls, RemoteRequest

pytestmark = pytest.mark.timeout(90)

A, B = "replica-a", "replica-b"


def _charger(settings: Settings, cp_id: str, *, ev_gap_s: float = 0.0) -> SimCharger:
    """A 2.1 V2G charger connecting to ``settings``' listener; its EV arrives after ``ev_gap_s``."""
    spec = ChargerSpec(
        cp_id=cp_id, password=charger_password(SECRET, cp_id), version=V21, max_kw=11.0,
        v2g=True, ev_gap_s=ev_gap_s,
    )  # fmt: skip
    return SimCharger(
        url=f"ws://127.0.0.1:{settings.ocpp.port}/ocpp/", spec=spec, clock=SimClock(),
        period_s=0.2, backoff_base=0.05,
    )  # fmt: skip


async def _beat(state: State, replica: str, ttl_s: float = 120.0) -> None:
    """Write a replica's heartbeat as `vpp.replicas` does (negative ttl: it ran out)."""
    expiry = (time.time() + ttl_s) * 1000.0
    await state.redis.zadd(state.keys.replicas, {replica: expiry})


@pytest.fixture
def b_settings(sup_settings: Settings) -> Settings:
    """Replica B's settings: the same namespace, its own OCPP port."""
    settings = copy.deepcopy(sup_settings)
    settings.ocpp.port = free_port()
    return settings


@pytest.fixture
async def b_state(state: State, redis_url: str, namespace: str) -> AsyncIterator[State]:
    """Replica B's own connection to the shared namespace; removes the replicas' streams after."""
    other = State.from_url(redis_url, namespace=namespace)
    yield other
    keys = state.keys
    for replica in (A, B):
        await other.redis.delete(keys.replica_inbox(replica), keys.replica_outbox(replica))
    await other.aclose()


def _replica_b(b_state: State, b_settings: Settings, **options: object) -> Supervisor:
    return Supervisor(
        state=b_state, settings=b_settings, replica_id=B, backoff_base=0.05,
        **options,  # type: ignore[arg-type]
    )  # fmt: skip


async def _holder(state: State, cp_id: str) -> str | None:
    raw = await state.redis.hget(state.park(PARK).ocpp_connected, cp_id)
    return raw.decode() if isinstance(raw, bytes) else raw


def _held_by(state: State, cp_id: str, replica: str) -> Callable[[], Awaitable[bool]]:
    """A check for ``eventually``: the connection map names ``replica`` for ``cp_id``."""

    async def held() -> bool:
        return await _holder(state, cp_id) == replica

    return held


def _plugged_in(state: State, asset_id: str) -> Callable[[], Awaitable[bool]]:
    async def ev_session() -> bool:
        live = await state.read_live(PARK, asset_id)
        return live is not None and bool(live.ev_connected) and live.available

    return ev_session


async def test_a_setpoint_decided_on_one_replica_reaches_a_charger_connected_to_another(
    state: State,
    b_state: State,
    sup_settings: Settings,
    b_settings: Settings,
    supervisor: SupervisorFactory,
) -> None:
    await assets.enroll(state, assets.charger("ev-1", "CP-1"), assets.charger("ev-2", "CP-2"))
    await _beat(state, A)
    await _beat(state, B)
    async with (
        supervisor(replica_id=A, send_timeout_s=3.0) as a,
        _replica_b(b_state, b_settings) as b,
        _charger(b_settings, "CP-1") as one,
        # connected, but no EV arrives during the test: nothing to send a profile to
        _charger(b_settings, "CP-2", ev_gap_s=36_000.0) as two,
    ):
        await b.wait_ready()
        await eventually(_held_by(state, "CP-1", B))
        await eventually(_held_by(state, "CP-2", B))
        await eventually(_plugged_in(state, "ev-1"))
        a_listener = a.adapter(f"ocpp-127.0.0.1:{sup_settings.ocpp.port}")
        assert isinstance(a_listener, OcppCsmsAdapter) and a_listener.connected_chargers == []

        confs = await a.send(PARK, {"ev-1": -7.0, "ev-2": 4.0}, hold_s=60.0)
        conf = confs["ev-1"]
        assert conf.asset_id == "ev-1"
        assert conf.confirmed and not conf.clamped and conf.sent_kw == pytest.approx(-7.0), conf
        assert one.profile_kw == pytest.approx(-7.0)
        # refused by the charger's state on B, with B's reason
        refused = confs["ev-2"]
        assert not refused.confirmed and refused.sent_kw is None
        assert refused.reason.endswith("no EV session")
        assert two.profile_kw is None
        assert b.remote.served == 2

        # the same clamp as a local call: beyond the enrolled 11 kW
        clamped = (await a.send(PARK, {"ev-1": 50.0}, hold_s=60.0))["ev-1"]
        assert clamped.confirmed and clamped.clamped and clamped.sent_kw == pytest.approx(11.0)
        assert one.profile_kw == pytest.approx(11.0)

        assert await a.release(PARK, ["ev-1"]) == {"ev-1": True}
        assert one.profile_kw is None

    # B stopped cleanly: it leaves no entry naming it
    assert await _holder(state, "CP-1") is None and await _holder(state, "CP-2") is None


async def test_a_charger_whose_replica_died_is_reported_unconfirmed(
    state: State, b_state: State, b_settings: Settings, supervisor: SupervisorFactory
) -> None:
    await assets.enroll(state, assets.charger("ev-1", "CP-1"))
    await _beat(state, A)
    await _beat(state, B)
    inbox = state.keys.replica_inbox(B)
    async with (
        supervisor(replica_id=A, send_timeout_s=3.0) as a,
        _charger(b_settings, "CP-1") as charger,
    ):
        async with _replica_b(b_state, b_settings) as b:
            await b.wait_ready()
            await eventually(_held_by(state, "CP-1", B))
            await eventually(_plugged_in(state, "ev-1"))
            assert (await a.send(PARK, {"ev-1": 6.0}, hold_s=60.0))["ev-1"].confirmed
        assert await _holder(state, "CP-1") is None  # a clean stop leaves no entry

        # B crashed: its entry and its heartbeat are still there, nobody reads its inbox
        await state.redis.hset(state.park(PARK).ocpp_connected, "CP-1", B)
        lost = (await a.send(PARK, {"ev-1": 3.0}, hold_s=60.0))["ev-1"]
        assert not lost.confirmed and lost.sent_kw is None
        assert lost.reason == f"no answer from replica {B} within 2 s"
        assert await state.redis.xlen(inbox) == 1

        # its heartbeat ran out: the charger counts as not connected, the entry goes
        await _beat(state, B, ttl_s=-1.0)
        gone = (await a.send(PARK, {"ev-1": 3.0}, hold_s=60.0))["ev-1"]
        assert not gone.confirmed and gone.reason == "charger not connected"
        assert await _holder(state, "CP-1") is None
        assert await a.release(PARK, ["ev-1"]) == {"ev-1": False}

        # B comes back under the same id: the request left in its inbox is past its
        # deadline and is not run; new requests are
        await _beat(state, B)
        async with _replica_b(b_state, b_settings) as b:
            await eventually(lambda: b.remote.expired == 1)
            assert await state.redis.xlen(inbox) == 0
            await eventually(_held_by(state, "CP-1", B))
            await eventually(_plugged_in(state, "ev-1"))
            again = (await a.send(PARK, {"ev-1": 8.0}, hold_s=60.0))["ev-1"]
            assert again.confirmed and charger.profile_kw == pytest.approx(8.0)
            assert b.remote.served == 1


async def test_a_reading_taken_on_one_replica_is_recorded_by_the_park_holder(
    state: State, b_state: State, b_settings: Settings
) -> None:
    await assets.enroll(state, assets.charger("ev-1", "CP-1"))
    ttl = b_settings.redis.live_ttl_s
    store = HistoryStore(state)
    started = time.time()
    async with (
        HistoryRecorder(store, hold_s=ttl, flush_s=0.3) as rec_a,
        HistoryRecorder(HistoryStore(b_state), hold_s=ttl, flush_s=0.3) as rec_b,
    ):
        rec_a.watch(PARK)  # A holds the park: its recorder records it

        async def a_holds() -> bool:
            return await state.redis.exists(state.park(PARK).history_lease) == 1

        await eventually(a_holds)
        async with (
            _replica_b(b_state, b_settings, history=rec_b.record) as b,
            _charger(b_settings, "CP-1"),
        ):
            await b.wait_ready()

            async def recorded_on_a() -> bool:
                return rec_a.received > 0 and await _covered(store) >= 2.0

            await eventually(recorded_on_a)
        assert rec_b.forwarded > 0 and rec_b.received == 0
    # every reading was B's, recorded by A alone: never more seconds than went by
    assert 2.0 <= await _covered(store) <= time.time() - started + 1.0


async def _covered(store: HistoryStore) -> float:
    """Seconds of ev-1's history covered around today."""
    today = date.today()
    got = await store.read(PARK, ["ev-1"], today - timedelta(days=1), today + timedelta(days=1))
    return sum(float(d.coverage.sum()) for d in got["ev-1"].values()) * 900


async def test_a_wake_reaches_the_replica_holding_the_park_and_a_stale_one_is_dropped(
    state: State, b_state: State
) -> None:
    """An event posted on A for a park B runs: B's loop is woken through B's inbox."""
    woken: list[str] = []

    async def never(request: RemoteRequest) -> bool:  # no setpoint travels in this test
        raise AssertionError(f"unexpected call {request}")

    a = RemoteCalls(state, A, never, block_s=0.2)
    b = RemoteCalls(b_state, B, never, block_s=0.2)
    b.on_wake = woken.append
    async with a, b:
        assert await a.wake(B, PARK)
        await eventually(lambda: woken == [PARK])
        # a wake nobody read within WAKE_TTL_S is not acted on: the loop's own period has
        await state.redis.xadd(
            state.keys.replica_inbox(B),
            {"m": pack({"op": "wake", "park": "late", "deadline_ms": int(time.time() * 1000) - 1})},
        )
        assert await a.wake(B, "p2")
        await eventually(lambda: woken == [PARK, "p2"])


async def test_an_answer_whose_write_fails_is_written_again_while_the_sender_waits(
    state: State, b_state: State
) -> None:
    """The charger acted: a failed answer must not leave A waiting out its timeout."""
    failures: list[str] = []
    b_state.on_error = failures.append
    outbox = state.keys.replica_outbox(A)
    await state.redis.set(outbox, b"not a stream")  # every write of an answer fails: WRONGTYPE

    async def accept(request: RemoteRequest) -> Confirmation:
        return Confirmation(
            asset_id=request.asset_id, requested_kw=request.kw, sent_kw=request.kw,
            clamped=False, confirmed=True, reason="",
        )  # fmt: skip

    async def never(request: RemoteRequest) -> bool:
        raise AssertionError(f"unexpected call {request}")

    a = RemoteCalls(state, A, never, block_s=0.2, backoff_base=0.05)
    b = RemoteCalls(b_state, B, accept, block_s=0.2)
    async with a, b:
        call = asyncio.ensure_future(
            a.setpoint(B, PARK, "ev-1", Setpoint(asset_id="cp-1", power_kw=-7.0, hold_s=60.0),
                       timeout_s=30.0)
        )  # fmt: skip
        await eventually(lambda: "remote_answer" in failures)
        assert not call.done()
        await state.redis.delete(outbox)  # the outbox is writable again
        confirmation = await asyncio.wait_for(call, 20)
    assert confirmation.confirmed and confirmation.sent_kw == -7.0
    assert confirmation.asset_id == "ev-1"
