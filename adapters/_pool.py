"""A pool that lends a few connections one request at a time, urgent borrowers first.

A Modbus TCP client carries one request at a time (pymodbus serialises them),
so an adapter opens several connections to a gateway and lends them out per
request. Setpoints borrow as *urgent* and are served before any waiting poll:
a poll of hundreds of units never delays a setpoint by more than the one
request already on the wire. And while any urgent borrower holds an item, no
poll starts: a setpoint burst to hundreds of units does not share the wire,
the device and the event loop with the polls that fall due during it (they
run as soon as the burst's last request is back).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Generic, TypeVar

__all__ = ["LendingPool"]

_T = TypeVar("_T")


class LendingPool(Generic[_T]):
    """Lends items (connections) to one borrower at a time each, FIFO within a priority.

    Args:
        items: what is lent.
    """

    def __init__(self, items: Iterable[_T] = ()) -> None:
        self._idle: deque[_T] = deque(items)
        self._closed: BaseException | None = None
        #: items lent to urgent borrowers right now
        self._urgent_out = 0
        self._waiters: tuple[deque[asyncio.Future[_T]], deque[asyncio.Future[_T]]] = (
            deque(),
            deque(),
        )

    def __len__(self) -> int:
        """Items idle right now."""
        return len(self._idle)

    @property
    def waiting(self) -> int:
        """Borrowers waiting for an item."""
        return sum(len(q) for q in self._waiters)

    @property
    def urgent_out(self) -> int:
        """Items lent to urgent borrowers right now (no non-urgent one starts meanwhile)."""
        return self._urgent_out

    def close(self, exc: BaseException) -> None:
        """Fail every waiting and later borrower with ``exc`` (the connections are gone)."""
        self._closed = exc
        self._idle.clear()
        for queue in self._waiters:
            while queue:
                future = queue.popleft()
                if not future.done():
                    future.set_exception(exc)

    @contextlib.asynccontextmanager
    async def lend(self, *, urgent: bool) -> AsyncIterator[_T]:
        """Borrow one item for the duration of the block.

        Args:
            urgent: served before every non-urgent waiter; while any urgent
                borrower holds an item, non-urgent ones wait.
        """
        item = await self._take(urgent)
        try:
            yield item
        finally:
            self._give_back(item, urgent)

    async def _take(self, urgent: bool) -> _T:
        if self._closed is not None:
            raise self._closed
        if urgent:
            free = not self._waiters[0]
        else:
            free = not (self._waiters[0] or self._waiters[1] or self._urgent_out)
        if self._idle and free:
            self._urgent_out += urgent
            return self._idle.popleft()
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        queue = self._waiters[0 if urgent else 1]
        queue.append(future)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                self._give_back(future.result(), urgent)  # handed over as we were cancelled
            raise
        finally:
            with contextlib.suppress(ValueError):
                queue.remove(future)

    def _give_back(self, item: _T, urgent: bool) -> None:
        self._urgent_out -= urgent
        if self._closed is not None:
            return
        self._idle.append(item)
        while self._idle:
            queue = self._waiters[0]
            if not queue:
                if self._urgent_out:
                    return  # the polls wait for the burst's last request
                queue = self._waiters[1]
                if not queue:
                    return
            future = queue.popleft()
            if future.done():
                continue
            self._urgent_out += queue is self._waiters[0]
            future.set_result(self._idle.popleft())
