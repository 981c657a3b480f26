"""The async-context-manager lifecycle shared by adapters and simulators."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Self

__all__ = ["BackgroundService"]

log = logging.getLogger("adapters.lifecycle")


class BackgroundService:
    """Runs :meth:`_run` as a named task between ``__aenter__`` and ``__aexit__``.

    Subclasses implement ``_run`` (a loop that reconnects by itself) and set
    ``_task_name``; leaving the context cancels the task and waits for it.
    """

    _task_name = "adapters-service"
    _task: asyncio.Task[None] | None = None
    #: set when the context is left; reconnect loops end instead of retrying
    _closing = False

    async def _run(self) -> None:
        raise NotImplementedError

    async def wait_stopped(self) -> BaseException | None:
        """Wait until the background work ends; return the exception that ended it.

        Before the context is left it should never end: a supervisor awaits
        this to notice an adapter whose work died (its telemetry just stops).
        Returns at once when the context was not entered or already left.
        """
        task = self._task
        if task is None:
            return None
        await asyncio.wait({task})
        return None if task.cancelled() else task.exception()

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name=self._task_name)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing = True
        task, self._task = self._task, None
        if task is None:
            return
        # A protocol library may turn our cancellation into its own connection
        # error, which a reconnect loop would then retry: keep cancelling (the
        # loop also checks _closing) until the task has really ended.
        for _ in range(50):
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=0.2)
            if done:
                break
        else:
            log.error("task %s did not stop within 10 s", task.get_name())
            return
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()
