"""The lending pool behind the Modbus adapter's connections."""

from __future__ import annotations

import asyncio

import pytest

from adapters._pool import LendingPool
from adapters.errors import DeviceError

pytestmark = pytest.mark.timeout(10)


async def test_urgent_borrowers_go_before_waiting_polls() -> None:
    pool = LendingPool(["c1"])
    order: list[str] = []

    async def borrow(name: str, urgent: bool) -> None:
        async with pool.lend(urgent=urgent) as item:
            order.append(f"{name}:{item}")
            await asyncio.sleep(0)

    async with pool.lend(urgent=False):
        polls = [asyncio.create_task(borrow(f"poll{i}", False)) for i in range(2)]
        await asyncio.sleep(0)
        setpoint = asyncio.create_task(borrow("setpoint", True))
        await asyncio.sleep(0)
        assert pool.waiting == 3
    await asyncio.gather(*polls, setpoint)
    assert order == ["setpoint:c1", "poll0:c1", "poll1:c1"]
    assert len(pool) == 1


async def test_a_cancelled_waiter_hands_its_item_on() -> None:
    pool = LendingPool([1])
    async with pool.lend(urgent=True):
        waiter = asyncio.create_task(pool.lend(urgent=True).__aenter__())
        await asyncio.sleep(0)
    waiter.cancel()  # cancelled after the item was handed over, before it ran
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert len(pool) == 1 and pool.waiting == 0


async def test_close_fails_waiting_and_later_borrowers() -> None:
    pool = LendingPool(["c1"])
    gone = DeviceError("connection lost")

    async def borrow() -> None:
        async with pool.lend(urgent=True):
            pass

    async with pool.lend(urgent=False):
        waiter = asyncio.create_task(borrow())
        await asyncio.sleep(0)
        pool.close(gone)
        with pytest.raises(DeviceError):
            await waiter
    with pytest.raises(DeviceError):
        await borrow()
    assert len(pool) == 0


async def test_polls_wait_while_a_setpoint_is_out_even_with_idle_items() -> None:
    pool = LendingPool(["c1", "c2", "c3"])
    started: list[str] = []

    async def poll(name: str) -> None:
        async with pool.lend(urgent=False):
            started.append(name)

    async with pool.lend(urgent=True):
        assert pool.urgent_out == 1 and len(pool) == 2
        polls = [asyncio.create_task(poll(f"poll{i}")) for i in range(2)]
        await asyncio.sleep(0)
        # two connections idle, yet no poll started beside the setpoint
        assert started == [] and pool.waiting == 2
        async with pool.lend(urgent=True):  # another setpoint goes at once
            assert pool.urgent_out == 2
        assert started == [] and pool.urgent_out == 1
    await asyncio.gather(*polls)
    assert started == ["poll0", "poll1"]
    assert pool.urgent_out == 0 and len(pool) == 3 and pool.waiting == 0


async def test_a_cancelled_urgent_waiter_lets_the_polls_go() -> None:
    pool = LendingPool(["c1"])
    async with pool.lend(urgent=True):
        waiter = asyncio.create_task(pool.lend(urgent=True).__aenter__())
        await asyncio.sleep(0)
        polling = asyncio.create_task(pool.lend(urgent=False).__aenter__())
        await asyncio.sleep(0)
    waiter.cancel()  # handed the item as it was cancelled: it goes on to the poll
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert await polling == "c1"
    assert pool.urgent_out == 0
