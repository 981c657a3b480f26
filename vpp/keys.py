"""Every Redis key name the service uses, in one place.

Park-scoped keys carry the park id in braces, the Redis Cluster hash tag, so a
park's keys live on one shard and a transaction or script over them stays
legal in a cluster::

    {ns}:{{park}}:meta          string msgpack Park metadata
    {ns}:{{park}}:assets        hash   asset id -> kind (the registry index)
    {ns}:{{park}}:asset:{id}    string msgpack enrolled asset (durable)
    {ns}:{{park}}:live:{id}     string msgpack LiveState, with a TTL
    {ns}:{{park}}:log           stream the park log: enrolled, patched, retired, event states
    {ns}:{{park}}:events        zset   event id scored by start time
    {ns}:{{park}}:event:{id}    string msgpack EventRecord (durable)
    {ns}:{{park}}:event:{id}:rebound string msgpack SeriesBaselines (each device's baseline)
    {ns}:{{park}}:bids          zset   bid id scored by creation time
    {ns}:{{park}}:bid:{id}      string msgpack BidRecord (durable)
    {ns}:{{park}}:lease:control string owner id of the park's control loop (TTL)
    {ns}:{{park}}:openadr:events hash  OpenADR event id -> msgpack VEN tracking state
    {ns}:{{park}}:hist:{series}:{YYYYMMDD} string packed day vector (vpp.history.store)
    {ns}:{{park}}:lease:history string owner id of the park's history recorder (TTL)
    {ns}:{{park}}:ledger:entries hash  {YYYY-MM}:{enterprise} -> msgpack monthly entries
    {ns}:{{park}}:ledger:months hash   {YYYY-MM} -> msgpack closed (frozen) month of the ledger
    {ns}:{{park}}:ledger:stale hash    {YYYY-MM} -> ISO time metering data was last imported into it
    {ns}:{{park}}:forecast      string msgpack latest ParkForecast (vpp.forecast.store)
    {ns}:{{park}}:forecast:backtest string msgpack latest Backtest summary (vpp.forecast.store)
    {ns}:{{park}}:irradiance    hash   {YYYYMMDD} -> packed uploaded irradiance of a local day
    {ns}:{{park}}:ev:sessions   zset   msgpack charger session scored by its arrival (epoch s)
    {ns}:{{park}}:ocpp:connected hash  charge point id -> id of the replica holding its websocket
    {ns}:{{park}}:readings      stream readings taken by a replica that does not hold the park,
                                       for the history recorder of the one that does

Keys that are not about one park are global under the namespace::

    {ns}:parks                  set    ids of the parks that were ever enrolled into
    {ns}:tokens:{sha256}        string msgpack token record (hashed secret in the name)
    {ns}:replicas               zset   live replica id scored by its heartbeat's expiry (epoch ms)
    {ns}:{{replica:{id}}}:instance string token of the process beating as that replica (TTL)
    {ns}:{{replica:{id}}}:inbox  stream requests to one replica (setpoints for its chargers)
    {ns}:{{replica:{id}}}:outbox stream answers to the requests it sent (confirmations)

The replica streams' hash tag is the replica (one shard holds both); their
name starts with the namespace like every other key, so one SCAN of
``{ns}:*`` finds everything the service wrote.

``ns`` defaults to ``vpp`` (setting ``redis.namespace``); tests use a unique one.
To add a park-scoped key, add a property or method to ``Keys`` (as the bids,
events and lease keys were added); to add a global one, to ``GlobalKeys``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

__all__ = ["DEFAULT_NAMESPACE", "GlobalKeys", "Keys"]

DEFAULT_NAMESPACE = "vpp"


@dataclass(frozen=True, slots=True)
class Keys:
    """The key names of one park under one namespace.

    Example:
        >>> Keys("vpp", "park1").asset("bess-01")
        'vpp:{park1}:asset:bess-01'
    """

    namespace: str
    park: str

    @property
    def prefix(self) -> str:
        """The common prefix of all the park's keys, with the hash tag."""
        return f"{self.namespace}:{{{self.park}}}"

    @property
    def pattern(self) -> str:
        """A SCAN ``MATCH`` pattern for every key of the park."""
        # Braces are not glob characters, but '[' and '?' could be in a namespace.
        return f"{self.prefix}:*"

    @property
    def meta(self) -> str:
        """String: the msgpack park metadata."""
        return f"{self.prefix}:meta"

    @property
    def assets(self) -> str:
        """Hash asset id -> kind: the registry index of enrolled assets."""
        return f"{self.prefix}:assets"

    def asset(self, asset_id: str) -> str:
        """String: the msgpack enrolled asset."""
        return f"{self.prefix}:asset:{asset_id}"

    def live(self, asset_id: str) -> str:
        """String: the msgpack live telemetry, expiring after its TTL."""
        return f"{self.prefix}:live:{asset_id}"

    @property
    def park_log(self) -> str:
        """Stream: the park log (enrollments, patches, retirements, event states)."""
        return f"{self.prefix}:log"

    @property
    def events(self) -> str:
        """Sorted set: event ids scored by their start (epoch seconds)."""
        return f"{self.prefix}:events"

    def event(self, event_id: str) -> str:
        """String: the msgpack event record."""
        return f"{self.prefix}:event:{event_id}"

    def event_rebound(self, event_id: str) -> str:
        """String: msgpack `vpp.events.model.SeriesBaselines` of an event (beside its record).

        Each device's baseline over the event and past its end, per interval:
        the record keeps the park's and each enterprise's, and is rewritten
        every control cycle, so the per-device figures live here.
        """
        return f"{self.prefix}:event:{event_id}:rebound"

    @property
    def bids(self) -> str:
        """Sorted set: bid ids scored by creation time (epoch seconds)."""
        return f"{self.prefix}:bids"

    def bid(self, bid_id: str) -> str:
        """String: the msgpack stored bid."""
        return f"{self.prefix}:bid:{bid_id}"

    @property
    def control_lease(self) -> str:
        """String: the id of the worker running the park's control loop (expires)."""
        return f"{self.prefix}:lease:control"

    @property
    def openadr_events(self) -> str:
        """Hash OpenADR event id -> msgpack tracking state of the park's VEN.

        The state (service event id, version, window, baseline) outlives a
        service restart, so the VEN recognises the events it already mapped.
        """
        return f"{self.prefix}:openadr:events"

    def history(self, series: str, day: date) -> str:
        """String: one series' day of interval history, packed (`vpp.history.store`).

        ``series`` is an asset or meter id; ``day`` the park's local day.
        """
        return f"{self.prefix}:hist:{series}:{day:%Y%m%d}"

    def histories(self, series: Sequence[str], days: Sequence[date]) -> list[str]:
        """`history` of every series on every day, series-major (``len(series) × len(days)``).

        The day suffixes are formatted once: for a year of a thousand series
        formatting each key's date costs more than reading it.
        """
        suffixes = [f"{day:%Y%m%d}" for day in days]
        return [f"{self.prefix}:hist:{s}:{suffix}" for s in series for suffix in suffixes]

    @property
    def history_lease(self) -> str:
        """String: the id of the worker recording the park's history (expires).

        With several service processes that all read the same devices, only
        the holder adds telemetry to the history, so no interval is counted twice.
        """
        return f"{self.prefix}:lease:history"

    @property
    def ledger_entries(self) -> str:
        """Hash ``{YYYY-MM}:{enterprise}`` -> msgpack monthly entries (`vpp.ledger.entries`)."""
        return f"{self.prefix}:ledger:entries"

    @property
    def ledger_months(self) -> str:
        """Hash ``{YYYY-MM}`` -> msgpack closed month of the ledger (`vpp.ledger`), frozen."""
        return f"{self.prefix}:ledger:months"

    @property
    def forecast(self) -> str:
        """String: msgpack latest forecast of the park's series (`vpp.forecast.store`)."""
        return f"{self.prefix}:forecast"

    @property
    def forecast_backtest(self) -> str:
        """String: msgpack summary of the park's latest forecast backtest (`vpp.forecast.store`)."""
        return f"{self.prefix}:forecast:backtest"

    @property
    def irradiance(self) -> str:
        """Hash ``{YYYYMMDD}`` -> one local day of uploaded irradiance, packed (`vpp.forecast`)."""
        return f"{self.prefix}:irradiance"

    @property
    def ev_sessions(self) -> str:
        """Sorted set: msgpack charger sessions scored by arrival, epoch s (`vpp.forecast`)."""
        return f"{self.prefix}:ev:sessions"

    @property
    def ocpp_connected(self) -> str:
        """Hash charge point id -> id of the replica whose listener holds its websocket.

        Written by the replica the charger connected to (`vpp.supervisor._links`);
        a setpoint decided on another replica is sent through that one's inbox.
        """
        return f"{self.prefix}:ocpp:connected"

    @property
    def readings(self) -> str:
        """Stream: readings of the park taken by a replica that does not hold its lease.

        The park's lease holder feeds them to its history recorder, so a
        reading taken anywhere is recorded once.
        """
        return f"{self.prefix}:readings"

    @property
    def ledger_stale(self) -> str:
        """Hash ``{YYYY-MM}`` -> ISO time of the last metering import into a day of the month.

        A frozen month computed before that time is stale (`vpp.ledger.months`).
        """
        return f"{self.prefix}:ledger:stale"


@dataclass(frozen=True, slots=True)
class GlobalKeys:
    """Key names under a namespace that are not scoped to one park."""

    namespace: str = DEFAULT_NAMESPACE

    def park(self, park: str) -> Keys:
        """The keys of ``park`` under this namespace."""
        return Keys(self.namespace, park)

    @property
    def parks(self) -> str:
        """Set of park ids."""
        return f"{self.namespace}:parks"

    def token(self, digest: str) -> str:
        """String: the token record whose secret hashes to ``digest``."""
        return f"{self.namespace}:tokens:{digest}"

    @property
    def replicas(self) -> str:
        """Sorted set: live replica ids scored by when their heartbeat expires (epoch ms)."""
        return f"{self.namespace}:replicas"

    def replica_instance(self, replica: str) -> str:
        """String: the random token of the process beating as ``replica`` (TTL 3 heartbeats).

        Set with each heartbeat; two processes given one ``[replicas] id``
        find each other's token here (`vpp.replicas.ParkShares`).
        """
        return f"{self.namespace}:{{replica:{replica}}}:instance"

    def replica_inbox(self, replica: str) -> str:
        """Stream: requests to ``replica`` (setpoints for the chargers it holds).

        The replica's keys share a hash tag of their own, so its inbox and
        outbox live on one cluster shard.
        """
        return f"{self.namespace}:{{replica:{replica}}}:inbox"

    def replica_outbox(self, replica: str) -> str:
        """Stream: answers to the requests ``replica`` sent to the others."""
        return f"{self.namespace}:{{replica:{replica}}}:outbox"

    @property
    def token_pattern(self) -> str:
        """A SCAN ``MATCH`` pattern for every token record."""
        return f"{self.namespace}:tokens:*"
