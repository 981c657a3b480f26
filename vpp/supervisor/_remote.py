"""Setpoints for chargers held by another replica, sent through Redis streams.

A charger's websocket lands on whichever replica a load balancer picks, so
the replica deciding a setpoint (the one holding the park) may not hold the
connection (`vpp.supervisor._links`). It then sends the call to the replica
that does:

* request: ``XADD GlobalKeys.replica_inbox(target) MAXLEN ~ {maxlen}`` of one
  field ``m``, msgpack of a `RemoteRequest` (request id, park, asset and
  charge point id, kW, hold, ``op`` ``setpoint`` or ``release``, ``reply_to``
  = the sender's replica id, ``deadline_ms`` = epoch ms);
* the target's inbox reader (one blocking ``XREAD`` on its own inbox) deletes
  each entry it took (``XDEL``) and runs the call on its local OCPP adapter,
  exactly as a local call (`RemoteCalls` is handed the executor), bounded by
  the time left until the deadline; a request read past its deadline is not
  run (its sender has given up);
* answer: ``XADD GlobalKeys.replica_outbox(reply_to) MAXLEN ~`` of one field
  ``m``, msgpack of ``{"id": request id, "confirmation": {...}}`` or
  ``{"id": request id, "released": bool}``;
* the sender's outbox reader (one blocking ``XREAD`` on its own outbox)
  resolves the waiting call by request id and deletes the entry.

A *wake* is a request with no answer: ``{"op": "wake", "park", "deadline_ms"}``
asks the replica holding a park to run its control loop's cycle now (an event
was posted, changed or cancelled on another replica); the inbox reader hands
it to `RemoteCalls.on_wake`.

A call with no answer by its deadline (plus `ANSWER_SLACK_S` for the answer's
way back) ends as an unconfirmed `Confirmation` (a release as ``False``) with
the reason, never an exception. Deadlines are epoch ms on each replica's own
clock: replicas are assumed NTP-synchronised (a skew eats into the timeout).
Each stream is one key whose hash tag is the replica's own, so every command
touches one cluster slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from adapters.backoff import Backoff
from adapters.lifecycle import BackgroundService
from adapters.types import Confirmation, Setpoint
from vpp.errors import StateError
from vpp.state import State, pack, unpack

__all__ = ["ANSWER_SLACK_S", "STREAM_MAXLEN", "WAKE_TTL_S", "RemoteCalls", "RemoteRequest"]

log = logging.getLogger("vpp.supervisor.remote")

#: Approximate length each inbox and outbox stream is trimmed to on XADD.
STREAM_MAXLEN = 10_000
#: Seconds a sender waits past a request's deadline for its answer to arrive.
ANSWER_SLACK_S = 0.5
#: Seconds between two tries of an answer whose write failed.
ANSWER_RETRY_S = 0.2
#: Entries one XREAD takes at most.
_READ_COUNT = 256
#: Seconds after which a wake that was not read yet is dropped (the loop's own period acts).
WAKE_TTL_S = 5.0

Op = Literal["setpoint", "release"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteRequest:
    """One call sent to the replica holding a charger's connection.

    Attributes:
        id: request id (answers are matched on it).
        park: the park the asset is enrolled in.
        asset_id: its enrolled id.
        device_id: its charge point id.
        op: ``setpoint`` or ``release``.
        kw: the setpoint in kW, positive = draw (0 for a release).
        hold_s: how long the setpoint holds (0 for a release).
        reply_to: the sender's replica id.
        deadline_ms: epoch ms after which the call is not run.
    """

    id: str
    park: str
    asset_id: str
    device_id: str
    op: Op
    kw: float
    hold_s: float
    reply_to: str
    deadline_ms: int

    @property
    def remaining_s(self) -> float:
        """Seconds left until the deadline (negative once past)."""
        return self.deadline_ms / 1000.0 - time.time()


#: Runs a request on this replica's own OCPP adapter: a setpoint's confirmation
#: (``asset_id`` as the request's) or whether a release was acknowledged.
Executor = Callable[[RemoteRequest], Awaitable[Confirmation | bool]]


def _refused(request: RemoteRequest, reason: str) -> Confirmation:
    return Confirmation(
        asset_id=request.asset_id, requested_kw=request.kw, sent_kw=None, clamped=False,
        confirmed=False, reason=reason,
    )  # fmt: skip


def _entries(rows: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The entries of an XREAD answer on one stream (RESP2 list or RESP3 map)."""
    if not rows:
        return []
    streams = rows.values() if isinstance(rows, dict) else [r[1] for r in rows]
    return [(entry_id, fields) for entries in streams for entry_id, fields in entries]


class RemoteCalls(BackgroundService):
    """This replica's inbox and outbox: serves calls from the others, sends its own.

    Use as ``async with RemoteCalls(...) as calls:``; the work is the tasks
    ``remote-inbox`` and ``remote-outbox`` (and one ``remote-call-{id}`` per
    request being served).

    Args:
        state: the Redis repository (its client and key names).
        replica_id: this replica's id (its inbox and outbox, the ``reply_to``).
        execute: runs a request from another replica on the local adapter.
        block_s: how long one blocking XREAD waits (below the Redis socket timeout).
        backoff_base: scale on the retry delay after a Redis failure.
        maxlen: approximate length the streams are trimmed to.
    """

    _task_name = "remote-calls"

    def __init__(
        self,
        state: State,
        replica_id: str,
        execute: Executor,
        *,
        block_s: float = 1.0,
        backoff_base: float = 1.0,
        maxlen: int = STREAM_MAXLEN,
    ) -> None:
        self._state = state
        self.replica_id = replica_id
        self._execute = execute
        self._block_ms = max(1, int(block_s * 1000))
        self._backoff_base = backoff_base
        self._maxlen = maxlen
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._inbox = state.keys.replica_inbox(replica_id)
        self._outbox = state.keys.replica_outbox(replica_id)
        #: requests served for other replicas, and those dropped past their deadline
        self.served = 0
        self.expired = 0
        #: called with the park of every wake another replica sends here (the control manager's)
        self.on_wake: Callable[[str], object] | None = None

    async def _run(self) -> None:
        _ = self._spawn(self._read(self._inbox, self._take_request), name="remote-inbox")
        _ = self._spawn(self._read(self._outbox, self._take_answer), name="remote-outbox")
        await self._wait_closing()

    async def _close(self) -> None:
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()

    # -- sending -------------------------------------------------------------

    async def setpoint(
        self, target: str, park: str, asset_id: str, setpoint: Setpoint, *, timeout_s: float
    ) -> Confirmation:
        """Send a setpoint to ``target``'s charger ``setpoint.asset_id``; await its confirmation.

        Returns:
            The target's confirmation (``asset_id`` = ``asset_id``), or an
            unconfirmed one saying why none came (Redis failed, no answer
            within ``timeout_s``).
        """
        request = self._request(target, park, asset_id, setpoint.asset_id, "setpoint",
                                setpoint.power_kw, setpoint.hold_s, timeout_s)  # fmt: skip
        answer = await self._call(target, request, timeout_s)
        if isinstance(answer, str):
            return _refused(request, answer)
        return Confirmation(**answer["confirmation"])

    async def release(
        self, target: str, park: str, asset_id: str, device_id: str, *, timeout_s: float
    ) -> bool:
        """Ask ``target`` to release charger ``device_id``; whether it was acknowledged."""
        request = self._request(target, park, asset_id, device_id, "release", 0.0, 0.0, timeout_s)
        answer = await self._call(target, request, timeout_s)
        if isinstance(answer, str):
            log.warning("release of %s/%s: %s", park, asset_id, answer)
            return False
        return bool(answer["released"])

    async def wake(self, target: str, park: str) -> bool:
        """Ask ``target`` (the replica holding ``park``) to run the park's control cycle now.

        Returns:
            Whether the wake was written to ``target``'s inbox (False: Redis
            failed, logged; the holder's loop acts at its next period anyway).
        """
        deadline_ms = int((time.time() + WAKE_TTL_S) * 1000)
        try:
            async with self._state.guard("remote_wake"):
                await self._state.redis.xadd(
                    self._state.keys.replica_inbox(target),
                    {"m": pack({"op": "wake", "park": park, "deadline_ms": deadline_ms})},
                    maxlen=self._maxlen,
                    approximate=True,
                )
        except StateError as exc:
            log.warning("cannot wake park %s on replica %s: %s", park, target, exc)
            return False
        return True

    def _request(
        self, target: str, park: str, asset_id: str, device_id: str, op: Op,
        kw: float, hold_s: float, timeout_s: float,
    ) -> RemoteRequest:  # fmt: skip
        return RemoteRequest(
            id=uuid.uuid4().hex, park=park, asset_id=asset_id, device_id=device_id, op=op,
            kw=kw, hold_s=hold_s, reply_to=self.replica_id,
            deadline_ms=int((time.time() + timeout_s) * 1000),
        )  # fmt: skip

    async def _call(
        self, target: str, request: RemoteRequest, timeout_s: float
    ) -> dict[str, Any] | str:
        """Send a request and wait for its answer; the answer, or why there is none."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request.id] = future
        try:
            try:
                async with self._state.guard("remote_call"):
                    await self._state.redis.xadd(
                        self._state.keys.replica_inbox(target),
                        {"m": pack(asdict(request))},
                        maxlen=self._maxlen,
                        approximate=True,
                    )
            except StateError as exc:
                return f"cannot reach replica {target}: {exc}"
            try:
                async with asyncio.timeout(timeout_s + ANSWER_SLACK_S):
                    return await future
            except TimeoutError:
                return f"no answer from replica {target} within {timeout_s:g} s"
        finally:
            self._waiting.pop(request.id, None)

    # -- reading the streams -------------------------------------------------

    async def _read(self, stream: str, take: Callable[[dict[str, Any]], None]) -> None:
        """Follow one of this replica's streams, handing each entry to ``take`` and deleting it.

        Starts at the stream's beginning: what is left from before is taken
        too (a request past its deadline is then dropped, an answer nobody
        waits for ignored).
        """
        redis = self._state.redis
        backoff = Backoff(base=self._backoff_base)
        last: bytes | str = "0-0"
        while not self._closing:
            try:
                async with self._state.guard("remote_read"):
                    rows = await redis.xread(
                        {stream: last}, count=_READ_COUNT, block=self._block_ms
                    )
                entries = _entries(rows)
                for entry_id, fields in entries:
                    last = entry_id
                    raw = fields.get(b"m")
                    try:
                        take(unpack(raw) if raw is not None else {})
                    except Exception:  # one bad entry never stops the reader
                        log.exception("%s: entry %r not handled", stream, entry_id)
                if entries:
                    async with self._state.guard("remote_read"):
                        await redis.xdel(stream, *(entry_id for entry_id, _ in entries))
                backoff.reset()
            except StateError as exc:
                log.warning("cannot read %s: %s", stream, exc)
                await backoff.wait()

    def _take_answer(self, answer: dict[str, Any]) -> None:
        future = self._waiting.get(str(answer.get("id")))
        if future is not None and not future.done():
            future.set_result(answer)

    def _take_request(self, fields: dict[str, Any]) -> None:
        if fields.get("op") == "wake":
            late = time.time() * 1000 > int(fields.get("deadline_ms", 0))
            if self.on_wake is not None and not late:
                self.on_wake(str(fields["park"]))
            return
        request = RemoteRequest(**fields)
        if request.remaining_s <= 0:
            self.expired += 1
            log.warning(
                "request %s from %s for %s/%s is past its deadline: not run",
                request.id, request.reply_to, request.park, request.asset_id,
            )  # fmt: skip
            return
        _ = self._spawn(self._serve(request), name=f"remote-call-{request.id}")

    async def _serve(self, request: RemoteRequest) -> None:
        """Run one request on the local adapter, within its deadline, and answer it."""
        result: Confirmation | bool
        try:
            async with asyncio.timeout(request.remaining_s):
                result = await self._execute(request)
        except TimeoutError:
            result = False if request.op == "release" else _refused(
                request, f"no answer within the request's deadline on replica {self.replica_id}"
            )  # fmt: skip
        except Exception as exc:
            log.exception("request %s for %s/%s failed", request.id, request.park, request.asset_id)
            result = False if request.op == "release" else _refused(request, repr(exc))
        self.served += 1
        answer: dict[str, Any] = {"id": request.id}
        if isinstance(result, Confirmation):
            answer["confirmation"] = asdict(result)
        else:
            answer["released"] = result
        await self._answer(request, answer)

    async def _answer(self, request: RemoteRequest, answer: dict[str, Any]) -> None:
        """Write an answer to the sender's outbox, trying again while its wait lasts.

        The device has acted by now: a lost answer would leave the sender
        waiting out its whole timeout and reporting it unconfirmed, so a
        failed write (a busy Redis, a timeout) is tried again, with
        `ANSWER_RETRY_S` between tries, until the sender's deadline plus its
        `ANSWER_SLACK_S` has passed. An answer written twice is taken once
        (the sender resolves the request id's wait the first time).
        """
        outbox = self._state.keys.replica_outbox(request.reply_to)
        while True:
            try:
                async with self._state.guard("remote_answer"):
                    await self._state.redis.xadd(
                        outbox, {"m": pack(answer)}, maxlen=self._maxlen, approximate=True
                    )
                return
            except StateError:
                if request.remaining_s + ANSWER_SLACK_S <= ANSWER_RETRY_S or self._closing:
                    return  # the sender has given up: its timeout says it
                await asyncio.sleep(ANSWER_RETRY_S)
