"""The async-context-manager lifecycle shared by adapters and simulators."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self

__all__ = ["BackgroundService"]


class BackgroundService:
    """Runs :meth:`_run` as a named task between ``__aenter__`` and ``__aexit__``.

    Subclasses implement ``_run`` (a loop that reconnects by itself) and set
    ``_task_name``; leaving the context cancels the task and waits for it.
    """

    _task_name = "adapters-service"
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name=self._task_name)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
