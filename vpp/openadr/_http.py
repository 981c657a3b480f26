"""One HTTP exchange with translated errors, shared by the token fetch and the client."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from vpp.openadr.errors import VtnUnavailable


async def exchange(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    timeout_s: float,
    **kwargs: Any,
) -> tuple[int, Any]:
    """Send one request and decode the JSON answer.

    Returns:
        The status and the decoded body (None when empty or not JSON).

    Raises:
        VtnUnavailable: No answer (refused, reset, timeout) or a 5xx status.
    """
    try:
        async with session.request(
            method, url, timeout=aiohttp.ClientTimeout(total=timeout_s), **kwargs
        ) as response:
            raw = await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise VtnUnavailable(f"{method} {url}: {exc!r}") from exc
    body: Any = None
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
    if status >= 500:
        raise VtnUnavailable(f"{method} {url}: HTTP {status}", status=status, problem=body)
    return status, body
