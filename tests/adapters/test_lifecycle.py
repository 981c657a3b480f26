"""The one background-service lifecycle: named tasks, errors, a stop that cannot be swallowed."""

from __future__ import annotations

import asyncio

import pytest

from adapters.lifecycle import BackgroundService


class Worker(BackgroundService):
    """Spawns a named helper task beside its own loop; records the hooks it went through."""

    _task_name = "worker"

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.names: set[str] = set()

    async def _open(self) -> None:
        self.steps.append("open")

    async def _run(self) -> None:
        _ = self._spawn(self._helper(), name="worker-helper")
        task = asyncio.current_task()
        assert task is not None
        self.names.add(task.get_name())
        await asyncio.Event().wait()

    async def _helper(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.names.add(task.get_name())
        await asyncio.Event().wait()

    async def _close(self) -> None:
        self.steps.append("close")


async def test_named_tasks_run_inside_and_stop_on_leaving() -> None:
    worker = Worker()
    async with worker:
        await asyncio.sleep(0.05)
        assert worker.names == {"worker", "worker-helper"}
        assert worker.steps == ["open"]
    assert worker.steps == ["open", "close"]
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("worker")] == []
    assert await worker.wait_stopped() is None


async def test_an_error_in_a_spawned_task_is_returned_as_itself() -> None:
    class Failing(BackgroundService):
        async def _run(self) -> None:
            _ = self._spawn(self._boom(), name="boom")
            await asyncio.Event().wait()

        async def _boom(self) -> None:
            raise ValueError("boom")

    async with Failing() as service:
        exc = await asyncio.wait_for(service.wait_stopped(), 5)
    assert isinstance(exc, ValueError) and str(exc) == "boom"


async def test_a_swallowed_cancellation_is_delivered_again() -> None:
    class Stubborn(BackgroundService):
        swallowed = 0

        async def _run(self) -> None:
            while True:  # a retry loop that never looks at _closing
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    if self.swallowed == 0:
                        self.swallowed += 1  # as a library turning it into its own error
                        continue
                    raise

    service = Stubborn()
    async with asyncio.timeout(5):
        async with service:
            await asyncio.sleep(0.01)
    assert service.swallowed == 1


async def test_graceful_work_ends_by_itself_and_the_callers_cancellation_propagates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Graceful(BackgroundService):
        _stop_grace_s = None

        def __init__(self) -> None:
            self.finished = False
            self.closed = False

        async def _run(self) -> None:
            await self._wait_closing()
            await asyncio.sleep(0.05)  # hands its devices back
            self.finished = True

        async def _close(self) -> None:
            self.closed = True

    service = Graceful()
    async with service:
        pass
    assert service.finished and service.closed

    slow = Graceful()

    async def leave_slowly() -> None:
        async with slow:
            pass

    monkeypatch.setattr(slow, "_run", lambda: asyncio.sleep(3600))
    caller = asyncio.create_task(leave_slowly())
    await asyncio.sleep(0.05)  # the caller now waits for the work to end by itself
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert slow.closed  # the work was stopped and closed before the cancellation went on
    assert await slow.wait_stopped() is None


async def test_spawning_outside_the_context_is_refused() -> None:
    async def nothing() -> None:
        pass

    with pytest.raises(RuntimeError, match="not running"):
        _ = Worker()._spawn(nothing(), name="x")
