"""Running the service: the Redis it uses, the HTTP server, graceful shutdown.

``redis_endpoint`` yields the Redis URL to use: the configured one, or a
private ``redis-server`` (loopback, free port, AOF on, data under
``<state dir>/redis``) that it starts and stops. While a private server runs,
its URL is written to ``<state dir>/redis.url`` so that ``vpp token create``
and ``vpp enroll`` reach the same data instead of starting a second server
on the same files.

``running_service`` is the one way the service starts: the HTTP app with
its background work (device supervisor, one control loop per park, the
OpenADR VEN when configured: see ``vpp.runtime``) listening on a TCP port.
``serve`` (``vpp serve``), ``vpp demo``, the end-to-end benchmark and the
end-to-end tests all start it, passing the runtime's hooks where they differ.
On the way out it lets in-flight requests finish (``http.shutdown_timeout_s``)
and the control loops release every device they were driving.

``serve`` runs it until SIGTERM/SIGINT (or ``duration``), then closes Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from vpp.api import create_app
from vpp.clock import Clock
from vpp.metrics import Metrics
from vpp.runtime import RuntimeCtx, runtime_cleanup_ctx
from vpp.servers import RedisServer, port_open
from vpp.settings import Settings, redact_url
from vpp.state import State

__all__ = ["RunningService", "open_state", "redis_endpoint", "running_service", "serve"]

log = logging.getLogger("vpp.service")

#: Called once the server listens, with its base URL and the state.
OnReady = Callable[[str, State], Awaitable[None]]


def _url_file(settings: Settings) -> Path:
    return settings.state_dir / "redis.url"


def _running_private(settings: Settings) -> str | None:
    """The URL of a private Redis another process of ours runs, if it answers."""
    try:
        url = _url_file(settings).read_text().strip()
    except OSError:
        return None
    parts = urlsplit(url)
    if url and parts.hostname and port_open(parts.hostname, parts.port or 6379):
        return url
    return None


@contextlib.contextmanager
def redis_endpoint(settings: Settings) -> Iterator[str]:
    """Yield the Redis URL to use, starting a private server when none is configured.

    Raises:
        ServerBinaryMissing: no URL is configured and redis-server is not installed.
        ServerError: the private server did not start.
    """
    if settings.redis.url:
        yield settings.redis.url
        return
    shared = _running_private(settings)
    if shared is not None:
        log.info("using the private Redis already running at %s", redact_url(shared))
        yield shared
        return
    server = RedisServer(data_dir=settings.state_dir / "redis")
    with server:
        url_file = _url_file(settings)
        url_file.write_text(server.url + "\n")
        log.info("started a private redis-server at %s (data in %s)", server.url, server.data_dir)
        try:
            yield server.url
        finally:
            url_file.unlink(missing_ok=True)
            log.info("stopping the private redis-server")


def open_state(settings: Settings, url: str, metrics: Metrics | None = None) -> State:
    """A ``State`` on ``url`` with the namespace, timeouts and log length of ``settings``."""
    return State.from_url(
        url,
        namespace=settings.redis.namespace,
        timeout=settings.redis.timeout_s,
        cluster=settings.redis.cluster,
        log_maxlen=settings.redis.log_maxlen,
        on_error=metrics.redis_failed if metrics is not None else None,
    )


@dataclass(frozen=True)
class RunningService:
    """The service once it listens.

    Attributes:
        app: the aiohttp app (its keys reach the supervisor, the control manager...).
        base_url: ``http://host:port`` it answers on.
    """

    app: web.Application
    base_url: str


@contextlib.asynccontextmanager
async def running_service(
    settings: Settings,
    state: State,
    *,
    metrics: Metrics,
    clock: Clock | None = None,
    runtime: RuntimeCtx | None = None,
    host: str | None = None,
    port: int | None = None,
) -> AsyncIterator[RunningService]:
    """Serve the API with the service's background work; stop both on the way out.

    The caller owns ``state`` (opens and closes it).

    Args:
        settings: the service settings.
        state: the Redis repository.
        metrics: the metrics the API and the runtime record into.
        clock: the clock of events and control loops (compressed in the demo); real time if None.
        runtime: the background work (default ``runtime_cleanup_ctx()``, as ``vpp serve``).
        host: interface to listen on (default ``http.host``).
        port: port to listen on, 0 for a free one (default ``http.port``).
    """
    app = create_app(settings, state, metrics=metrics, clock=clock)
    # the device supervisor, one control loop per park and (if configured) the VEN
    app.cleanup_ctx.append(runtime if runtime is not None else runtime_cleanup_ctx())
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=settings.http.shutdown_timeout_s
    )
    try:
        await runner.setup()
        site = web.TCPSite(
            runner,
            settings.http.host if host is None else host,
            settings.http.port if port is None else port,
        )
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield RunningService(app=app, base_url=f"http://{bound_host}:{bound_port}")
    finally:
        # the control loops release their devices before the supervisor stops
        await runner.cleanup()


async def serve(
    settings: Settings,
    redis_url: str,
    *,
    duration: float | None = None,
    on_ready: OnReady | None = None,
) -> None:
    """Serve the HTTP API until SIGTERM/SIGINT or ``duration`` seconds.

    Args:
        settings: the service settings (``http.host``/``http.port``; port 0 picks one).
        redis_url: the Redis to keep state in.
        duration: stop by itself after this many seconds; None to run until a signal.
        on_ready: awaited once the server listens, with its base URL and the state.
    """
    metrics = Metrics()
    state = open_state(settings, redis_url, metrics)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running_service(settings, state, metrics=metrics) as service:
            log.info("serving the API on %s (redis %s)", service.base_url, redact_url(redis_url))
            if not await state.ping():
                log.warning(
                    "Redis at %s does not answer yet; /readyz says so", redact_url(redis_url)
                )
            if on_ready is not None:
                await on_ready(service.base_url, state)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
            log.info("shutting down")
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await state.aclose()
