"""One lifecycle for everything that runs in the background: an async context manager.

The device adapters, the simulated chargers and load gateway are each a
:class:`BackgroundService`, and so is every background component of the
service built on this package (its supervisor, control loops and their
manager, OpenADR VEN). (The simulated Modbus battery is a pymodbus server,
used as an async context manager too; its ``start()``/``stop()`` model the
device being switched on and off, which tests do mid-run.) All are used the
same way::

    async with Service(...) as service:  # _open(), then the work starts as named tasks
        ...                              # the work runs while the block runs
    # leaving: the work is asked to end, then cancelled and awaited; then _close()

A subclass implements some of three hooks and names its task:

* ``_open()``: connect or listen before any work starts; an error here
  leaves ``__aenter__`` and nothing runs;
* ``_run()``: the work, run as the task ``_task_name``; a loop that retries
  by itself and/or :meth:`~BackgroundService._spawn` of further named tasks
  into the service's task group; by default nothing (a listener whose
  connections are served by its library);
* ``_close()``: disconnect, once every task has ended (also when the caller
  is cancelled while leaving).

Leaving sets ``_closing`` and wakes :meth:`~BackgroundService._wait_closing`.
The work then has ``_stop_grace_s`` to end by itself (0: it is cancelled at
once; None: no bound, for a loop that finishes its cycle and hands its
devices back), and is then cancelled. The cancellation cannot be swallowed:

* a protocol library may turn a cancellation into its own connection error,
  which a retry loop would retry: the task running ``_run`` is cancelled
  again every ``RECANCEL_S`` until the work has ended, for at most
  ``_stop_limit_s`` (None: no bound), and every retry loop, in ``_run`` or
  in a spawned task (which the task group cancels once), checks ``_closing``;
* a cancellation of the caller while it leaves still stops the work and
  runs ``_close()``, then propagates.

Errors: the tasks run in one ``asyncio.TaskGroup``, so an error in any of
them ends the work; :meth:`~BackgroundService.wait_stopped` returns it (a
single error as itself, several as an ``ExceptionGroup``). Leaving does not
raise it again: the owner that must react to the work ending (the
supervisor restarting an adapter) awaits ``wait_stopped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

__all__ = ["RECANCEL_S", "BackgroundService"]

log = logging.getLogger("adapters.lifecycle")

#: How often a cancellation is delivered again while the work has not ended.
RECANCEL_S = 0.2

_T = TypeVar("_T")


class BackgroundService:
    """Runs ``_run`` (and the tasks it spawns) between ``__aenter__`` and ``__aexit__``.

    See the module docstring for the hooks and the stopping contract.
    """

    #: name of the task that runs ``_run`` (subclasses make it specific)
    _task_name = "background-service"
    #: seconds the work may take to end by itself once asked (0: cancelled at
    #: once; None: no bound)
    _stop_grace_s: float | None = 0.0
    #: seconds leaving waits for the cancelled work before it gives up with an
    #: error and closes anyway (None: no bound)
    _stop_limit_s: float | None = 10.0
    #: set when the context is left; retry loops end instead of retrying
    _closing = False

    _task: asyncio.Task[None] | None = None
    _group: asyncio.TaskGroup | None = None
    _closing_event: asyncio.Event | None = None

    # -- hooks ---------------------------------------------------------------

    async def _open(self) -> None:
        """Connect or listen before the work starts (default: nothing)."""

    async def _run(self) -> None:
        """The work; by default none, the service only waits to be left."""
        await self._wait_closing()

    async def _close(self) -> None:
        """Disconnect once every task has ended (default: nothing)."""

    # -- for the work ----------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, _T], name: str) -> asyncio.Task[_T]:
        """Start a named task in the service's task group.

        Raises:
            RuntimeError: the service is not running (not entered, or its work ended).
        """
        if self._group is None:
            coro.close()
            raise RuntimeError(f"{self._task_name} is not running")
        return self._group.create_task(coro, name=name)

    async def _wait_closing(self, timeout_s: float | None = None, *also: Awaitable[Any]) -> None:
        """Wait until the context is being left, one of ``also`` is done or ``timeout_s`` passed.

        Whatever is still pending among ``also`` is cancelled on return.
        """
        waiters = {asyncio.ensure_future(a) for a in also}
        if self._closing_event is not None:
            waiters.add(asyncio.ensure_future(self._closing_event.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def wait_stopped(self) -> BaseException | None:
        """Wait until the background work ends; return the exception that ended it.

        Before the context is left it should never end: a supervisor awaits
        this to notice a service whose work died (an adapter's telemetry just
        stops). Returns None when the work was cancelled by leaving, and at
        once when the context was not entered or already left.
        """
        task = self._task
        if task is None:
            return None
        await asyncio.wait({task})
        return None if task.cancelled() else task.exception()

    # -- the context -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._closing = False
        self._closing_event = asyncio.Event()
        await self._open()
        self._task = asyncio.create_task(self._main(), name=self._task_name)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing = True
        if self._closing_event is not None:
            self._closing_event.set()
        task, self._task = self._task, None
        try:
            if task is not None:
                await self._stop_work(task)
        finally:
            await self._close()

    async def _main(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                await self._run()
        except BaseExceptionGroup as errors:
            if len(errors.exceptions) == 1:
                # one failed task surfaces as its own error, as if it ran alone
                raise errors.exceptions[0] from None
            raise
        finally:
            self._group = None

    async def _stop_work(self, task: asyncio.Task[None]) -> None:
        try:
            if self._stop_grace_s != 0:
                await asyncio.wait({task}, timeout=self._stop_grace_s)
            await self._cancel_work(task)
        except asyncio.CancelledError:
            # The caller is being cancelled: the work still stops before that goes on.
            await self._cancel_work(task)
            raise
        if not task.done():
            log.error("%s did not stop within %s s", task.get_name(), self._stop_limit_s)
            return
        # The work's own error was for wait_stopped; cancelled work is what leaving asked for.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()

    async def _cancel_work(self, task: asyncio.Task[None]) -> None:
        """Cancel ``task`` until it has ended, for at most ``_stop_limit_s``."""
        limit = self._stop_limit_s
        deadline = None if limit is None else asyncio.get_running_loop().time() + limit
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=RECANCEL_S)
            if deadline is not None and asyncio.get_running_loop().time() >= deadline:
                return
