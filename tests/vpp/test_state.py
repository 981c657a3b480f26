"""The Redis repository against a real Redis: keys, live TTL, log, errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tests.vpp.samples import PARK, sample
from vpp.errors import AlreadyExists, NotFound, StateUnavailable
from vpp.keys import GlobalKeys, Keys
from vpp.model import Battery, LiveState, parse_asset
from vpp.servers import free_port
from vpp.state import State, unpack


def test_key_layout() -> None:
    keys = Keys("vpp", "park1")
    assert keys.assets == "vpp:{park1}:assets"
    assert keys.asset("b1") == "vpp:{park1}:asset:b1"
    assert keys.live("b1") == "vpp:{park1}:live:b1"
    assert keys.park_log == "vpp:{park1}:log"
    assert GlobalKeys().token("abc") == "vpp:tokens:abc"
    assert GlobalKeys("ns").park("p") == Keys("ns", "p")


async def test_enrolled_asset_is_msgpack_under_the_park_hash_tag(
    state: State, namespace: str
) -> None:
    await state.enroll(PARK, parse_asset(sample()))
    raw = await state.redis.get(f"{namespace}:{{{PARK}}}:asset:bess-01")
    assert raw is not None
    assert unpack(raw)["capacity_kwh"] == 1000.0
    assert await state.redis.hgetall(f"{namespace}:{{{PARK}}}:assets") == {b"bess-01": b"battery"}
    keys = [k.decode() async for k in state.redis.scan_iter(match=f"{namespace}:*")]
    park_keys = [k for k in keys if k != f"{namespace}:parks"]
    assert park_keys and all(k.startswith(f"{namespace}:{{{PARK}}}:") for k in park_keys)
    assert await state.list_parks() == [PARK]


async def test_duplicate_enroll_is_refused_even_when_concurrent(state: State) -> None:
    asset = parse_asset(sample())
    results = await asyncio.gather(
        *(state.enroll(PARK, asset) for _ in range(10)), return_exceptions=True
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, AlreadyExists) for r in results if isinstance(r, Exception))


async def test_concurrent_patches_all_land(state: State) -> None:
    await state.enroll(PARK, parse_asset(sample()))
    await asyncio.gather(
        state.patch_asset(PARK, "bess-01", {"name": "renamed"}),
        state.patch_asset(PARK, "bess-01", {"max_charge_kw": 123.0}),
        state.patch_asset(PARK, "bess-01", {"costs": {"up_per_kwh": 0.5}}),
    )
    asset = await state.get_asset(PARK, "bess-01")
    assert isinstance(asset, Battery)
    assert (asset.name, asset.max_charge_kw, asset.costs.up_per_kwh) == ("renamed", 123.0, 0.5)


async def test_live_state_expires_after_its_ttl(state: State) -> None:
    await state.enroll(PARK, parse_asset(sample()))
    reading = LiveState(power_kw=-250.0, soc=0.55, energy_kwh=550.0)
    await state.write_live(PARK, "bess-01", reading, ttl=0.3)
    assert await state.read_live(PARK, "bess-01") == reading
    await asyncio.sleep(0.5)
    assert await state.read_live(PARK, "bess-01") is None


async def test_write_live_many_and_retire_drops_live(state: State) -> None:
    for kind in ("battery", "ev_charger"):
        await state.enroll(PARK, parse_asset(sample(kind)))
    departure = datetime(2026, 11, 28, 18, 0, tzinfo=UTC)
    readings = {
        "bess-01": LiveState(power_kw=100.0, soc=0.5),
        "ev-01": LiveState(
            power_kw=7.0, ev_connected=True, ev_departure=departure, ev_energy_needed_kwh=20.0
        ),
    }
    await state.write_live_many(PARK, readings, ttl=30)
    got = await state.read_live_many(PARK, ["bess-01", "ev-01", "nope"])
    assert got == {**readings, "nope": None}
    await state.retire(PARK, "ev-01")
    assert await state.read_live(PARK, "ev-01") is None
    assert await state.count_assets(PARK) == {"battery": 1}
    with pytest.raises(NotFound):
        await state.retire(PARK, "ev-01")


async def test_event_log_records_each_change_in_order(state: State) -> None:
    await state.enroll(PARK, parse_asset(sample()))
    await state.patch_asset(PARK, "bess-01", {"name": "x"})
    await state.retire(PARK, "bess-01")
    await state.append_park_log(PARK, "note", text="hello")
    entries = await state.read_park_log(PARK)
    assert [e["event"] for _, e in entries] == [
        "asset.enrolled",
        "asset.patched",
        "asset.retired",
        "note",
    ]
    assert entries[0][1]["data"]["id"] == "bess-01"
    assert entries[3][1]["text"] == "hello"


async def test_redis_down_is_translated_and_counted() -> None:
    failures: list[str] = []
    url = f"redis://127.0.0.1:{free_port()}/0"
    dead = State.from_url(url, timeout=0.5, on_error=failures.append)
    try:
        assert not await dead.ping()
        with pytest.raises(StateUnavailable):
            await dead.get_asset(PARK, "bess-01")
    finally:
        await dead.aclose()
    assert failures == ["ping", "get_asset"]


async def test_listing_decodes_only_assets_whose_stored_bytes_changed(
    state: State, redis_url: str, namespace: str
) -> None:
    for kind in ("battery", "ev_charger"):
        await state.enroll(PARK, parse_asset(sample(kind)))
    first = {a.id: a for a in await state.list_assets(PARK)}
    again = {a.id: a for a in await state.list_assets(PARK)}
    # unchanged bytes: the very models of the last read, not decoded again
    assert all(again[i] is first[i] for i in first)
    # a change written by another client (another process) is seen on the next read
    other = State.from_url(redis_url, namespace=namespace)
    try:
        await other.patch_asset(PARK, "bess-01", {"name": "renamed"})
    finally:
        await other.aclose()
    changed = {a.id: a for a in await state.list_assets(PARK)}
    assert changed["bess-01"] is not first["bess-01"]
    assert changed["bess-01"].name == "renamed"
    assert changed["ev-01"] is first["ev-01"]
    # a listing of one kind reuses the same models and keeps the others' entries
    (charger,) = await state.list_assets(PARK, "ev_charger")
    assert charger is first["ev-01"]
    assert (await state.list_assets(PARK))[0] is changed["bess-01"]
    await state.retire(PARK, "ev-01")
    assert [a.id for a in await state.list_assets(PARK)] == ["bess-01"]
    # re-enrolled with other content under the same id: decoded afresh
    await state.enroll(PARK, parse_asset(sample("ev_charger", name="second life")))
    back = {a.id: a for a in await state.list_assets(PARK)}
    assert back["ev-01"].name == "second life"


async def test_live_reads_decode_only_new_readings(state: State) -> None:
    for kind in ("battery", "ev_charger"):
        await state.enroll(PARK, parse_asset(sample(kind)))
    await state.write_live_many(
        PARK,
        {"bess-01": LiveState(power_kw=1.0, soc=0.5), "ev-01": LiveState(power_kw=7.0)},
        ttl=30,
    )
    first = await state.read_live_many(PARK, ["bess-01", "ev-01"])
    await state.write_live(PARK, "bess-01", LiveState(power_kw=2.0, soc=0.6), ttl=30)
    second = await state.read_live_many(PARK, ["bess-01", "ev-01"])
    assert second["ev-01"] is first["ev-01"]
    bess = second["bess-01"]
    assert bess is not None and (bess.power_kw, bess.soc) == (2.0, 0.6)
    await state.redis.delete(state.park(PARK).live("ev-01"))  # aged out
    assert (await state.read_live_many(PARK, ["ev-01"]))["ev-01"] is None


def test_ports_picked_one_by_one_are_never_the_same_twice() -> None:
    """Each pick is closed before its taker binds it: a later pick must not hand it out again."""
    picked = [free_port() for _ in range(300)]
    assert len(set(picked)) == len(picked)
