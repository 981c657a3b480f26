"""Helpers for the adapter tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

Eventually = Callable[[Callable[[], bool]], Awaitable[None]]


@pytest.fixture
def eventually() -> Eventually:
    """Return ``wait(predicate)``: poll a condition for at most 10 s, fail otherwise."""

    async def wait(predicate: Callable[[], bool]) -> None:
        for _ in range(200):
            if predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("condition not met within 10 s")

    return wait
