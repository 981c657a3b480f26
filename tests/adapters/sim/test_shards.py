"""A generated park split over device processes (``shard_park``), reached by the three adapters.

The split itself is checked on the specs; the run starts two real device
processes (the adapter benchmark's device role), reaches every device of
both through the adapters, then stops one process: the other's devices still
confirm their setpoints while the stopped one's are refused, which also
proves the shards ran in separate processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter

import pytest

from adapters.ocpp.csms import PATH_PREFIX
from adapters.sim.meters import MeterSpec
from adapters.sim.park import SimMeter, generate_park, shard_park
from adapters.types import Adapter, Confirmation
from tests.benchmarks.adapters import bench_park, device_args
from tests.benchmarks.support import device_processes, free_ports, parse_shard
from tests.support.sim_park import drain, park_adapters, setpoint_round, wait_for_park

pytestmark = pytest.mark.timeout(120)


def test_shards_cover_the_park_once_and_keep_each_gateway_whole() -> None:
    spec = generate_park(batteries=40, chargers=31, loads=29, modbus_ports=[1, 2, 3, 4, 5])
    shards = shard_park(spec, 3)
    assert [s.shard for s in shards] == [0, 1, 2]
    assert all(s.shards == 3 and s.park_id == spec.park_id for s in shards)
    batteries = [b.spec.asset_id for s in shards for b in s.batteries]
    assert sorted(batteries) == sorted(b.spec.asset_id for b in spec.batteries)
    assert sorted(c.cp_id for s in shards for c in s.chargers) == [c.cp_id for c in spec.chargers]
    assert [ld.asset_id for s in shards for ld in s.loads] == [ld.asset_id for ld in spec.loads]
    # a gateway's port is served by one shard only, and gateways are spread
    ports = [p for s in shards for p in s.modbus_ports]
    assert sorted(ports) == [1, 2, 3, 4, 5]
    assert [len(s.modbus_ports) for s in shards] == [2, 2, 1]
    assert [len(s.chargers) for s in shards] == [11, 10, 10]
    assert [len(s.loads) for s in shards] == [10, 10, 9]
    # MQTT gateway names do not collide across shards; unsharded names stay as they were
    assert len({s.node("sim-gw-0") for s in shards}) == 3
    assert spec.node("sim-gw-0") == "sim-gw-0"


def test_meters_follow_their_gateway_or_most_of_their_members() -> None:
    spec = generate_park(batteries=4, chargers=0, loads=4, modbus_ports=[7, 8])
    meter = MeterSpec(asset_id="m1", base_load_kw=50.0)
    loads = tuple(ld.asset_id for ld in spec.loads)
    spec.meters = [
        SimMeter(meter, ("bess-0002",), "modbus", "127.0.0.1", 8),
        SimMeter(meter, loads[2:], "mqtt"),
    ]
    first, second = shard_park(spec, 2)
    assert [m.protocol for m in second.meters] == ["modbus", "mqtt"]
    assert first.meters == []
    assert second.modbus_ports == [8]


def test_bad_shard_requests_are_refused() -> None:
    spec = generate_park(batteries=2, chargers=0, loads=0)
    with pytest.raises(ValueError, match=">= 1"):
        shard_park(spec, 0)
    with pytest.raises(ValueError, match="split again"):
        shard_park(shard_park(spec, 2)[0], 2)
    assert parse_shard("1/3") == (1, 3)
    with pytest.raises(ValueError):
        parse_shard("3/3")


async def test_sharded_park_runs_in_two_processes_and_one_failing_holds_no_other(
    mqtt_addr: tuple[str, int], topic_prefix: str
) -> None:
    host, port = mqtt_addr
    ports = free_ports(5)
    csms_port, modbus_ports = ports[0], ports[1:]
    spec = bench_park(40, modbus_ports)  # 16 batteries, 12 chargers, 12 loads
    shards = shard_park(spec, 2)
    park = park_adapters(
        spec,
        mqtt_host=host,
        mqtt_port=port,
        mqtt_root=topic_prefix,
        csms_port=csms_port,
        poll_s=0.5,
    )
    args = device_args(
        devices=40,
        root=topic_prefix,
        mqtt_host=host,
        mqtt_port=port,
        modbus_ports=modbus_ports,
        csms_url=f"ws://127.0.0.1:{csms_port}{PATH_PREFIX}",
        device_period=0.5,
    )
    listen = [s.modbus_ports for s in shards]
    assert all(listen) and not set(listen[0]) & set(listen[1])
    async with (
        device_processes("tests.benchmarks.adapters", args, listen, timeout_s=30) as procs,
        park.running(),
    ):
        draining = asyncio.create_task(drain(park))
        try:
            assert len({p.pid for p in procs}) == 2
            await wait_for_park(park, spec, 60)
            everyone = await setpoint_round(park, concurrency=100)
            assert everyone["all_confirmed"], everyone

            # stop shard 1: its devices are refused, shard 0's still confirm
            procs[1].send_signal(signal.SIGKILL)
            procs[1].wait(10)
            owner: dict[str, Adapter] = {a: m for m in park.modbus for a in m.units}
            owner.update((c.cp_id, park.ocpp) for c in spec.chargers)
            sent = [sp for p in ("modbus", "ocpp") for sp in park.setpoints[p]]
            confs: list[Confirmation] = await asyncio.gather(
                *(owner[sp.asset_id].apply(sp) for sp in sent)
            )
        finally:
            draining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await draining
    gone = {b.spec.asset_id for b in shards[1].batteries} | {c.cp_id for c in shards[1].chargers}
    decided = Counter((sp.asset_id in gone, c.confirmed) for sp, c in zip(sent, confs, strict=True))
    assert decided == {(False, True): 8 + 6, (True, False): 8 + 6}, decided
