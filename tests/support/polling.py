"""The one polling helper: wait until the system under test reaches a state.

Tests on real servers cannot know when a reading is stored, a route served
or an event completed; they wait for that state, never for a fixed time.
The bound only turns a state that is never reached into a failure; it is
generous because the machine may be loaded, and a test that passes never
waits for it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

#: A condition on the system under test: a plain or an async predicate.
Check = Callable[[], bool | Awaitable[bool]]


async def _holds(check: Check) -> bool:
    result = check()
    if inspect.isawaitable(result):
        result = await result
    return bool(result)


async def eventually(check: Check, *, within_s: float = 20.0, every_s: float = 0.05) -> None:
    """Return as soon as ``check()`` is true; fail the test if it is not within ``within_s``.

    Args:
        check: A predicate, plain or async, called at once and then every
            ``every_s`` seconds (an async one may take its time: the bound
            covers it too).
        within_s: How long the state may take to be reached, in real seconds.
        every_s: The pause between two calls, in seconds.

    Raises:
        AssertionError: The state was not reached within ``within_s``.
    """
    timeout = asyncio.timeout(within_s)
    try:
        async with timeout:
            while True:
                if await _holds(check):
                    return
                await asyncio.sleep(every_s)
    except TimeoutError:
        if not timeout.expired():
            raise  # the check's own TimeoutError, not the bound
        name = getattr(check, "__qualname__", repr(check))
        raise AssertionError(f"{name} not reached within {within_s} s") from None
