"""The Redis repository: enrolled assets, parks, live state and the park log.

Everything the service keeps lives here, behind ``State``. Values are msgpack
(models dumped in JSON mode, so datetimes travel as ISO 8601 strings). Writes
that must be atomic (enroll with its duplicate check, patch, retire) run as
Lua scripts over keys of one park, which share a hash tag and so one cluster
slot. The global park set is written outside those scripts for the same
reason, so the same code runs on one Redis and on a Redis Cluster
(`vpp.redis_client`).

Redis errors never leave this module raw: a connection or timeout failure
becomes ``StateUnavailable``, anything else ``StateError``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import msgpack
from redis import exceptions as redis_errors
from redis.asyncio.client import Pipeline

from vpp.errors import AlreadyExists, Conflict, NotFound, StateError, StateUnavailable
from vpp.keys import DEFAULT_NAMESPACE, GlobalKeys, Keys
from vpp.model import (
    Asset,
    LiveState,
    Meter,
    Park,
    apply_patch,
    asset_from_dict,
    utcnow,
)
from vpp.redis_client import RedisClient, connect, is_cluster, slot_pipeline

__all__ = ["ParkLogEntry", "State", "pack", "unpack"]

log = logging.getLogger("vpp.state")

#: (stream id, fields) of one entry of the park log.
ParkLogEntry = tuple[str, dict[str, Any]]

# KEYS: asset, index, park log. ARGV: id, kind, payload, maxlen, ts.
_ENROLL = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*',
           'event', 'asset.enrolled', 'asset', ARGV[1], 'ts', ARGV[5], 'data', ARGV[3])
return 1
"""
# KEYS: asset, park log. ARGV: id, old payload, new payload, maxlen, ts.
_REPLACE = """
local old = redis.call('GET', KEYS[1])
if not old then return -1 end
if old ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*',
           'event', 'asset.patched', 'asset', ARGV[1], 'ts', ARGV[5], 'data', ARGV[3])
return 1
"""
# KEYS: asset, index, live, park log. ARGV: id, maxlen, ts.
_RETIRE = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], '*',
           'event', 'asset.retired', 'asset', ARGV[1], 'ts', ARGV[3])
return 1
"""

_PATCH_RETRIES = 10

#: Redis errors that mean "not reachable right now" (`State.guard`): a lost
#: connection, a timeout, or a cluster failing over (no master for a slot yet).
_UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    redis_errors.SlotNotCoveredError,
    OSError,
)


def pack(value: Any) -> bytes:
    """Encode a value (plain data) as msgpack."""
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(raw: bytes | str) -> Any:
    """Decode msgpack bytes."""
    return msgpack.unpackb(raw.encode() if isinstance(raw, str) else raw, raw=False)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


#: Redis key -> (the stored bytes, the model they decode to); see `_Decoded`.
_Seen = dict[str, tuple[bytes, Any]]


class _Decoded:
    """Models decoded from stored bytes, reused while the bytes are the same.

    The control loop and the event handler read the whole registry and live
    state of a park on every cycle and event; validating 1,000 assets with
    pydantic takes ~40 ms, while the stored bytes rarely change. A model is
    reused only when the bytes just read equal, byte for byte, those it was
    decoded from, so nothing stale is ever served: a patch, a re-enrollment or
    a new reading changes the bytes, and another process's write is seen on
    the next read. Each read replaces what it saw of the keys it read, so
    retired assets and aged-out readings leave with the next read.

    The models handed out are shared between callers and must not be changed
    in place (the service never does; it copies with ``model_copy``).
    """

    def __init__(self, decode: Callable[[bytes], Any]) -> None:
        self._decode = decode
        self._seen: dict[str, _Seen] = {}

    def many(self, group: str, keys: list[str], raws: list[Any], *, whole: bool) -> list[Any]:
        """The models of ``raws`` (None where a raw is None), in order.

        Args:
            group: what the keys belong to (a park).
            keys: the Redis keys read, one per raw.
            raws: the bytes read (None: nothing stored).
            whole: the keys are all the group has (what is not among them is dropped).
        """
        old = self._seen.get(group, {})
        new: _Seen = {} if whole else old
        out: list[Any] = []
        for key, raw in zip(keys, raws, strict=True):
            if raw is None:
                new.pop(key, None)
                out.append(None)
                continue
            hit = old.get(key)
            value = hit[1] if hit is not None and hit[0] == raw else self._decode(raw)
            new[key] = (raw, value)
            out.append(value)
        self._seen[group] = new
        return out


class State:
    """Async repository of the service's state in Redis.

    Args:
        redis: a ``redis.asyncio`` client (one server or a Redis Cluster, see
            `vpp.redis_client`) with ``decode_responses=False``.
        namespace: the first segment of every key.
        log_maxlen: approximate length each park log is trimmed to.
        on_error: called with the operation name whenever Redis fails (metrics).
    """

    def __init__(
        self,
        redis: RedisClient,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        log_maxlen: int = 100_000,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.redis = redis
        self.keys = GlobalKeys(namespace)
        self.log_maxlen = log_maxlen
        self.on_error = on_error
        self._enroll = redis.register_script(_ENROLL)
        self._replace = redis.register_script(_REPLACE)
        self._retire = redis.register_script(_RETIRE)
        self._assets = _Decoded(lambda raw: asset_from_dict(unpack(raw)))
        self._live = _Decoded(lambda raw: LiveState.model_validate(unpack(raw)))

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        timeout: float = 2.0,
        cluster: bool = False,
        **kwargs: Any,
    ) -> State:
        """Connect lazily to the Redis at ``url`` (the first command connects).

        Args:
            url: a ``redis://`` URL, or ``redis+cluster://host:port`` for a Redis Cluster.
            namespace: the key namespace.
            timeout: connect and command timeout in seconds.
            cluster: the ``redis://`` URL names a node of a Redis Cluster.
            **kwargs: passed on to ``State``.
        """
        client = connect(url, cluster=cluster, timeout=timeout)
        return cls(client, namespace=namespace, **kwargs)

    async def aclose(self) -> None:
        """Close the Redis connections."""
        await self.redis.aclose()

    def transaction(self, key: str) -> AbstractAsyncContextManager[Pipeline]:
        """A transaction pipeline (WATCH, reads, MULTI/EXEC) over keys of ``key``'s park.

        Every key it touches must carry ``key``'s hash tag (one park's keys
        do): on a Redis Cluster it runs on the master of that slot
        (`vpp.redis_client.slot_pipeline`).
        """
        return slot_pipeline(self.redis, key, transaction=True)

    def batch(self, key: str) -> AbstractAsyncContextManager[Pipeline]:
        """A pipeline without MULTI over keys of ``key``'s park (multi-key reads, scripts)."""
        return slot_pipeline(self.redis, key, transaction=False)

    def park(self, park: str) -> Keys:
        """The key names of ``park``."""
        return self.keys.park(park)

    @asynccontextmanager
    async def guard(self, operation: str) -> AsyncIterator[None]:
        """Translate Redis errors raised inside into the service's own.

        Connection failures, timeouts and a Redis Cluster in the middle of a
        failover (``CLUSTERDOWN``, ``TRYAGAIN``, a slot without a master) become
        `StateUnavailable` (transient: the caller retries later); any other
        Redis error becomes `StateError`.
        """
        try:
            yield
        except _UNAVAILABLE as exc:
            self._failed(operation, exc)
            raise StateUnavailable(f"Redis unavailable during {operation}: {exc}") from exc
        except (redis_errors.RedisError, redis_errors.RedisClusterException) as exc:
            self._failed(operation, exc)
            hint = ""
            if isinstance(exc, redis_errors.MovedError) and not is_cluster(self.redis):
                hint = " (MOVED: this is a Redis Cluster node; use a redis+cluster:// URL)"
            raise StateError(f"Redis error during {operation}: {exc}{hint}") from exc

    def _failed(self, operation: str, exc: BaseException) -> None:
        log.warning("redis %s failed: %r", operation, exc)  # a timeout's str() is empty
        if self.on_error is not None:
            self.on_error(operation)

    async def ping(self) -> bool:
        """Whether Redis answers right now (never raises)."""
        try:
            async with self.guard("ping"):
                return bool(await self.redis.ping())
        except StateError:
            return False

    # -- parks -------------------------------------------------------------

    async def list_parks(self) -> list[str]:
        """The ids of every park that has metadata or was enrolled into, sorted."""
        async with self.guard("list_parks"):
            members = await self.redis.smembers(self.keys.parks)
        return sorted(_text(m) for m in members)

    async def put_park(self, park: Park) -> None:
        """Store (or replace) a park's metadata."""
        async with self.guard("put_park"):
            await self.redis.sadd(self.keys.parks, park.id)
            await self.redis.set(self.park(park.id).meta, pack(park.model_dump(mode="json")))

    async def update_park(self, park: Park, *, by: str, role: str = "") -> list[str]:
        """Store a park's metadata and log the change in the park log (``park.updated``).

        The entry names who made it (``by``: a token's name, or ``park file``
        for an enrollment from a file; ``role``), the fields that changed and
        (``data``) the metadata before (null for a new park) and after. The
        same metadata again is stored and logs nothing.

        Returns:
            The names of the fields that changed (every field for a new park).
        """
        try:
            before: dict[str, Any] | None = (await self.get_park(park.id)).model_dump(mode="json")
        except NotFound:
            before = None
        await self.put_park(park)
        after = park.model_dump(mode="json")
        changed = sorted(k for k in after if before is None or before.get(k) != after[k])
        if changed:
            await self.append_park_log(
                park.id,
                "park.updated",
                by=by,
                role=role,
                fields=",".join(changed),
                data=pack({"before": before, "after": after}),
            )
        return changed

    async def get_park(self, park_id: str) -> Park:
        """A park's metadata; a park known only by its assets gets defaults.

        Raises:
            NotFound: the park is not known at all.
        """
        async with self.guard("get_park"):
            raw = await self.redis.get(self.park(park_id).meta)
            if raw is None:
                known = await self.redis.sismember(self.keys.parks, park_id)
        if raw is not None:
            return Park.model_validate(unpack(raw))
        if not known:
            raise NotFound("park", park_id)
        return Park(id=park_id)

    async def count_assets(self, park: str) -> dict[str, int]:
        """Enrolled assets of ``park`` by kind (kinds with none are left out)."""
        async with self.guard("count_assets"):
            kinds = await self.redis.hvals(self.park(park).assets)
        counts: dict[str, int] = {}
        for kind in kinds:
            counts[_text(kind)] = counts.get(_text(kind), 0) + 1
        return counts

    # -- enrolled assets ---------------------------------------------------

    async def enroll(self, park: str, asset: Asset) -> Asset:
        """Enroll ``asset`` in ``park``; atomic with the duplicate check.

        Returns:
            The stored asset, with ``enrolled_at`` and ``updated_at`` set.

        Raises:
            AlreadyExists: an asset with that id is enrolled in the park.
            Conflict: a revenue meter of an enterprise that has one already.
        """
        await self._one_revenue_meter(park, asset)
        now = utcnow()
        stored = asset.model_copy(update={"enrolled_at": now, "updated_at": now})
        payload = pack(stored.model_dump(mode="json"))
        keys = self.park(park)
        async with self.guard("enroll"):
            await self.redis.sadd(self.keys.parks, park)
            created = await self._enroll(
                keys=[keys.asset(asset.id), keys.assets, keys.park_log],
                args=[asset.id, asset.kind, payload, self.log_maxlen, now.isoformat()],
            )
        if not created:
            raise AlreadyExists("asset", asset.id)
        log.debug("enrolled %s %s in park %s", asset.kind, asset.id, park)
        return stored

    async def _one_revenue_meter(self, park: str, asset: Asset) -> None:
        """Refuse a second revenue meter for one enterprise.

        An enterprise settles on one metering point: its revenue meter is what
        its events are measured by and its park history sums. (Checked before
        the write, not inside it: two enrollments racing for one enterprise
        could both pass.)

        Raises:
            Conflict: naming the enterprise's revenue meter.
        """
        if not (isinstance(asset, Meter) and asset.revenue):
            return
        for other in await self.list_assets(park, "meter"):
            same = isinstance(other, Meter) and other.revenue and other.owner == asset.owner
            if same and other.id != asset.id:
                raise Conflict(
                    f"revenue: enterprise {asset.owner!r} has a revenue meter already"
                    f" ({other.id}); an enterprise settles on one"
                )

    async def get_packed(self, key: str, *, operation: str, kind: str, ident: str) -> Any:
        """The msgpack value stored at ``key``, unpacked (an asset, event or bid record).

        Args:
            key: the record's key (`vpp.keys.Keys`).
            operation: the name Redis errors are counted and reported under.
            kind: what the record is (``asset``, ``event``, ``bid``), for `NotFound`.
            ident: its id, for `NotFound`.

        Raises:
            NotFound: nothing is stored at ``key``.
        """
        async with self.guard(operation):
            raw = await self.redis.get(key)
        if raw is None:
            raise NotFound(kind, ident)
        return unpack(raw)

    async def get_asset(self, park: str, asset_id: str) -> Asset:
        """The enrolled asset ``asset_id`` of ``park``.

        Raises:
            NotFound: no such asset is enrolled.
        """
        key = self.park(park).asset(asset_id)
        return asset_from_dict(
            await self.get_packed(key, operation="get_asset", kind="asset", ident=asset_id)
        )

    async def list_assets(self, park: str, kind: str | None = None) -> list[Asset]:
        """Every enrolled asset of ``park`` (optionally of one kind), sorted by id.

        Read from Redis on every call; an asset whose stored bytes are those
        of the last read is not decoded again (`_Decoded`), so the models may
        be shared with other callers and must not be changed in place.
        """
        keys = self.park(park)
        async with self.guard("list_assets"):
            index = await self.redis.hgetall(keys.assets)
            ids = sorted(_text(i) for i, k in index.items() if kind is None or _text(k) == kind)
            names = [keys.asset(i) for i in ids]
            raws = await self.redis.mget(names) if ids else []
        assets = self._assets.many(park, names, raws, whole=kind is None)
        return [a for a in assets if a is not None]

    async def patch_asset(self, park: str, asset_id: str, patch: Mapping[str, Any]) -> Asset:
        """Apply a JSON merge patch to an enrolled asset (compare-and-set, retried).

        Raises:
            NotFound: no such asset is enrolled.
            InvalidInput: the patch is not allowed or yields an invalid asset.
            Conflict: it would make a second revenue meter of an enterprise.
        """
        keys = self.park(park)
        for _ in range(_PATCH_RETRIES):
            async with self.guard("patch_asset"):
                old = await self.redis.get(keys.asset(asset_id))
            if old is None:
                raise NotFound("asset", asset_id)
            current = asset_from_dict(unpack(old))
            now = utcnow()
            changed = apply_patch(current, dict(patch)).model_copy(
                update={"enrolled_at": current.enrolled_at, "updated_at": now}
            )
            await self._one_revenue_meter(park, changed)
            new = pack(changed.model_dump(mode="json"))
            async with self.guard("patch_asset"):
                outcome = await self._replace(
                    keys=[keys.asset(asset_id), keys.park_log],
                    args=[asset_id, old, new, self.log_maxlen, now.isoformat()],
                )
            if outcome == 1:
                return changed
            if outcome == -1:
                raise NotFound("asset", asset_id)
        raise StateError(f"asset {asset_id!r} kept changing; patch abandoned")

    async def retire(self, park: str, asset_id: str) -> None:
        """Remove an asset from the registry, with its live state; log it.

        Raises:
            NotFound: no such asset is enrolled.
        """
        keys = self.park(park)
        async with self.guard("retire"):
            removed = await self._retire(
                keys=[keys.asset(asset_id), keys.assets, keys.live(asset_id), keys.park_log],
                args=[asset_id, self.log_maxlen, utcnow().isoformat()],
            )
        if not removed:
            raise NotFound("asset", asset_id)
        log.info("retired asset %s of park %s", asset_id, park)

    # -- live state --------------------------------------------------------

    async def write_live(self, park: str, asset_id: str, live: LiveState, ttl: float) -> bool:
        """Store one asset's live state until it is ``ttl`` seconds old; True if written."""
        return await self.write_live_many(park, {asset_id: live}, ttl) == 1

    async def write_live_many(
        self,
        park: str,
        states: Mapping[str, LiveState],
        ttl: float,
        *,
        now: float | None = None,
    ) -> int:
        """Store many assets' live state in one round trip, each live by its age.

        A reading counts as live while it is younger than ``ttl`` by its own
        ``ts`` (when it was taken), not for ``ttl`` after it was written: a
        reading written late expires sooner, one already older than ``ttl``
        is not written (it would present old power as current), and a reading
        dated ahead of ``now`` lives ``ttl`` at most.

        Args:
            park: the park id.
            states: asset id -> its live state.
            ttl: seconds a reading counts as live (a silent device drops out).
            now: the present (UNIX seconds; default the wall clock).

        Returns:
            How many were written.
        """
        keys = self.park(park)
        now = time.time() if now is None else now
        written = 0
        async with self.guard("write_live"), self.redis.pipeline(transaction=False) as pipe:
            for asset_id, live in states.items():
                left_ms = int((ttl - max(0.0, now - live.ts.timestamp())) * 1000)
                if left_ms <= 0:
                    continue
                _ = pipe.set(keys.live(asset_id), pack(live.model_dump(mode="json")), px=left_ms)
                written += 1
            if written:
                await pipe.execute()
        return written

    async def read_live(self, park: str, asset_id: str) -> LiveState | None:
        """One asset's live state, or None when it has aged out or never came."""
        return (await self.read_live_many(park, [asset_id]))[asset_id]

    async def read_live_many(
        self, park: str, asset_ids: Iterable[str]
    ) -> dict[str, LiveState | None]:
        """Live state of many assets in one round trip (None where absent).

        A reading whose stored bytes are those of the last read is not
        decoded again (`_Decoded`); the models must not be changed in place.
        """
        keys = self.park(park)
        ids = list(asset_ids)
        if not ids:
            return {}
        names = [keys.live(i) for i in ids]
        async with self.guard("read_live"):
            raws = await self.redis.mget(names)
        return dict(zip(ids, self._live.many(park, names, raws, whole=False), strict=True))

    # -- the park log --------------------------------------------------------

    async def append_park_log(
        self, park: str, kind: str, **fields: str | bytes | int | float
    ) -> str:
        """Append an entry to the park log (a Redis stream, ``{ns}:{park}:log``).

        Args:
            park: the park id.
            kind: what happened, dotted (stored as the entry's ``event`` field),
                e.g. ``event.received``; enrollments, patches and retirements
                append ``asset.enrolled``, ``asset.patched``, ``asset.retired``.
            **fields: flat values stored with it.

        Returns:
            The stream id of the new entry.
        """
        entry: dict[str, str | bytes | int | float] = {
            "event": kind,
            "ts": utcnow().isoformat(),
            **fields,
        }
        async with self.guard("append_log"):
            entry_id = await self.redis.xadd(
                self.park(park).park_log,
                entry,  # type: ignore[arg-type]
                maxlen=self.log_maxlen,
                approximate=True,
            )
        return _text(entry_id)

    async def read_park_log(self, park: str, count: int = 100) -> list[ParkLogEntry]:
        """The latest ``count`` entries of the park log of ``park``, oldest first.

        The ``data`` field, when present, is decoded from msgpack.
        """
        async with self.guard("read_log"):
            rows = await self.redis.xrevrange(self.park(park).park_log, count=count)
        entries: list[ParkLogEntry] = []
        for entry_id, raw in reversed(rows or []):
            if entry_id is None or raw is None:
                continue
            fields: dict[str, Any] = {_text(k): v for k, v in raw.items()}
            for name, value in fields.items():
                fields[name] = unpack(value) if name == "data" else _text(value)
            entries.append((_text(entry_id), fields))
        return entries
