"""MQTT adapter for flexible loads (aiomqtt 2.x).

One connection serves every asset of a park through wildcard subscriptions;
topics and payloads are described in :mod:`adapters.mqtt_codec`.

What one device sends costs only that device: a payload is read field by
field (a bad field is dropped and counted, the rest of the reading kept), a
reading's timestamp is judged against its receive time
(:mod:`adapters.freshness`: late, replayed and retained readings and device
clocks that are off), an ack counts only on the topic of the device the
command went to, and every command waits for its own ack alone.

The service announces itself on the retained ``{root}/{park}/_vpp/status``:
``{"online": true}`` on every connection, ``{"online": false}`` on a clean
stop, and the same as the last will for an unclean one. While a park moves
between service replicas, the outgoing one's "offline" (or last will) may
come after the incoming one's "online": a running adapter that hears a live
"offline" there says "online" again, so the retained status ends true.

The connection speaks MQTT 5. With a ``share_group``, several replicas split
a park's telemetry: it is read through the shared subscription
``$share/{group}/{root}/{park}/+/telemetry`` (MQTT 5 section 4.8.2), so the
broker hands each reading to one replica of the group. Acks and statuses
stay plain subscriptions, read by every replica (see `subscriptions`).

Example:
    >>> limits = {"hvac-1": DeviceLimits(p_min_kw=10, p_max_kw=60)}
    >>> mqtt = MqttAdapter(host="127.0.0.1", park="p1", assets=limits)
    >>> async with mqtt:  # doctest: +SKIP
    ...     conf = await mqtt.apply(Setpoint(asset_id="hvac-1", power_kw=30))
    ...     async for reading in mqtt.telemetry():
    ...         print(reading)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode

from adapters import mqtt_codec as codec
from adapters._base import AssetBook, BookedService
from adapters._mqtt_transport import (
    Publish,
    announce_retained,
    inline_queue,
    install_read_ahead,
    install_write_batching,
    publish_nowait,
)
from adapters.backoff import Backoff
from adapters.errors import DeviceError, PayloadError
from adapters.freshness import DeviceClocks
from adapters.types import (
    Confirmation,
    DeviceLimits,
    Setpoint,
    Telemetry,
    TelemetrySource,
)

__all__ = ["MqttAdapter"]

log = logging.getLogger("adapters.mqtt")

#: Node name under which the service publishes its own availability.
SERVICE_NODE = "_vpp"
#: Longest wait for the broker to take the offline status on a clean stop.
OFFLINE_TIMEOUT_S = 2.0
#: aiomqtt's "pending publish calls" warning threshold (only statuses wait for a PUBACK).
_PENDING_CALLS_WARNING = 1000
#: How often the largest device clock offset is refreshed in the stats.
SKEW_REFRESH_S = 1.0


class MqttAdapter(BookedService):
    """Telemetry in and setpoints out for many MQTT devices over one connection.

    Args:
        host: broker host.
        port: broker port.
        park: park id (second topic level).
        assets: enrolled limits per asset id; readings from other assets are ignored.
        root: first topic level(s); tests use a unique prefix.
        username: broker user, if the broker wants one.
        password: broker password.
        client_id: MQTT client id (default: generated, unique).
        encoding: payload encoding of commands to an asset not heard from yet
            (afterwards each asset is answered in the encoding it uses).
        ack_timeout_s: how long ``apply`` waits for the device's ack.
        queue_size: bound on readings waiting for the consumer (the oldest is
            dropped and counted beyond it).
        keepalive_s: MQTT keepalive.
        backoff_base: scale on reconnect delays (1.0 in production).
        time_scale: device seconds per wall-clock second for the clamp (1.0 for real
            equipment; a simulated park on a compressed clock passes its speed-up).
        read_ahead: read the socket 64 KiB at a time and take QoS 0 telemetry
            off it in batches, past paho's per-message parsing
            (:mod:`adapters._mqtt_transport`); off: every packet goes through
            paho, one by one.
        max_inflight: QoS 1 messages the client keeps unacknowledged by the broker;
            0 (the default): no limit. Every command in flight waits for its own
            device ack, so the commands of a cycle bound them; any limit makes
            paho scan every message in flight on each PUBACK (quadratic in a
            burst), and paho's own default
            of 20 queues a burst behind PUBACKs.
        max_age_s: the oldest a reading may be on arrival and still be kept
            (seconds; the supervisor passes the live TTL).
        clock_tolerance_s: how far a device clock may be off, and a reading
            late, and still count as on time (:class:`adapters.freshness.DeviceClocks`).
        clock_relearn_s: how long a device's readings must agree on a new
            clock offset before it is learned.
        share_group: MQTT 5 share name the telemetry is read under
            (``$share/{group}/...``): the service replicas of one deployment
            use the same one and each reading reaches one of them; empty: a
            plain subscription (every reading reaches this adapter, a
            retained one too: MQTT 5 section 4.8.2 sends none to a new shared
            subscription, though Mosquitto 2 does).

    Raises:
        ValueError: ``share_group`` holds ``/``, ``+`` or ``#``.

    Attributes:
        announce_offline: publish ``{"online": false}`` on the service status
            topic when the adapter stops (a supervisor that replaces this
            adapter by a new one at once clears it, so devices see no flicker).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int = 1883,
        park: str,
        assets: Mapping[str, DeviceLimits],
        root: str = "vpp",
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        encoding: codec.Encoding = codec.Encoding.JSON,
        ack_timeout_s: float = 5.0,
        queue_size: int = 100_000,
        keepalive_s: int = 30,
        backoff_base: float = 1.0,
        time_scale: float = 1.0,
        read_ahead: bool = True,
        max_inflight: int = 0,
        max_age_s: float = 60.0,
        clock_tolerance_s: float = 2.0,
        clock_relearn_s: float = 5.0,
        share_group: str = "",
    ) -> None:
        self.host, self.port = host, port
        self._read_ahead = read_ahead
        self.topics = codec.Topics(root, park)
        self._telemetry_filter = codec.shared(share_group, self.topics.wildcard("telemetry"))
        self._username, self._password = username, password
        self._client_id = client_id or f"vpp-{park}-{uuid.uuid4().hex[:8]}"
        self._default_encoding = encoding
        self._encodings: dict[str, codec.Encoding] = {}
        self._ack_timeout = ack_timeout_s
        self._keepalive = keepalive_s
        self._backoff = Backoff(base=backoff_base)
        self._book = AssetBook(assets, queue_size=queue_size, log=log, time_scale=time_scale)
        #: telemetry topic (raw UTF-8, as taken off the wire) -> enrolled asset
        self._telemetry_topics = {self.topics.telemetry(a).encode(): a for a in assets}
        self._client: aiomqtt.Client | None = None
        #: command id -> (the asset it went to, the future its ack resolves)
        self._pending: dict[str, tuple[str, asyncio.Future[codec.Ack]]] = {}
        self._clocks = DeviceClocks(
            tolerance_s=clock_tolerance_s, max_age_s=max_age_s, relearn_s=clock_relearn_s
        )
        self._skew_due = 0.0
        self.announce_offline = True
        self._max_inflight = max_inflight
        self._connected = asyncio.Event()
        self._task_name = f"mqtt-adapter-{park}"

    async def apply(self, setpoint: Setpoint) -> Confirmation:
        """Clamp a setpoint, publish it with QoS 1 and await the device's ack.

        Raises:
            UnknownAsset: the asset is not enrolled with this adapter.
        """
        clamped = self._book.clamp(setpoint)
        ack, rtt, reason = await self._command(setpoint.asset_id, clamped.power_kw, setpoint.hold_s)
        confirmed = ack is not None and ack.ok and ack.p_kw is not None
        if confirmed and ack is not None and abs((ack.p_kw or 0.0) - clamped.power_kw) > 1e-3:
            confirmed, reason = False, f"device applied {ack.p_kw} kW"
        if ack is not None and not ack.ok:
            reason = ack.reason or "device refused"
        return self._book.confirm(
            setpoint, clamped, sent=rtt is not None or ack is not None, confirmed=confirmed,
            rtt_s=rtt, reason=reason,
        )  # fmt: skip

    async def release(self, asset_id: str) -> bool:
        """Send ``p_kw: null``: the device returns to its own behaviour."""
        self._book.limits_of(asset_id)
        ack, _, _ = await self._command(asset_id, None, 0.0)
        return ack is not None and ack.ok

    async def _command(
        self, asset_id: str, p_kw: float | None, hold_s: float
    ) -> tuple[codec.Ack | None, float | None, str]:
        """Publish one command and wait for the device's ack, within ``ack_timeout_s`` in all.

        The broker's PUBACK is not waited for (`publish_nowait`): the device's
        ack is the confirmation, and a task per command waiting for both cost
        more than the rest of the round trip. A publish paho refuses ends the
        wait at once; a connection lost while waiting fails it (`_abandon`).
        """
        client = self._client
        if client is None:
            return None, None, "broker not connected"
        cmd = codec.Command(uuid.uuid4().hex, p_kw, hold_s, time.time())
        enc = self._encodings.get(asset_id, self._default_encoding)
        future: asyncio.Future[codec.Ack] = asyncio.get_running_loop().create_future()
        self._pending[cmd.id] = (asset_id, future)
        start = time.perf_counter()
        try:
            publish_nowait(client, self.topics.cmd(asset_id), codec.encode_command(cmd, enc), qos=1)
            async with asyncio.timeout(self._ack_timeout):
                ack = await future
            return ack, time.perf_counter() - start, ""
        except aiomqtt.MqttError as exc:
            return None, None, f"publish failed: {exc}"
        except TimeoutError:
            return None, None, f"no ack within {self._ack_timeout} s"
        except DeviceError as exc:  # the connection went while we waited
            return None, None, str(exc)
        finally:
            self._pending.pop(cmd.id, None)

    async def _run(self) -> None:
        first = True
        will = aiomqtt.Will(
            self.topics.status(SERVICE_NODE),
            codec.encode_status(codec.Status(False)),
            qos=1,
            retain=True,
        )
        while not self._closing:
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    username=self._username,
                    password=self._password,
                    identifier=self._client_id,
                    protocol=aiomqtt.ProtocolVersion.V5,
                    will=will,
                    keepalive=self._keepalive,
                    queue_type=inline_queue(self._on_message),
                    logger=log,
                    max_inflight_messages=self._max_inflight,
                ) as client:
                    # a burst of commands is expected, not a sign of trouble
                    client.pending_calls_threshold = _PENDING_CALLS_WARNING
                    if self._read_ahead:
                        install_read_ahead(client, self._on_publishes)
                    install_write_batching(client)
                    await self._subscribe(client)
                    if self._stopping():
                        break  # stopped while connecting: announce nothing
                    await client.publish(
                        will.topic, codec.encode_status(codec.Status(True)), qos=1, retain=True
                    )
                    self._client = client
                    self._on_connected(first)
                    first = False
                    # Messages go to _dispatch as they are read (inline_queue); this
                    # loop only ends, with MqttError, when the connection does.
                    async for message in client.messages:
                        self._on_message(message)
            except aiomqtt.MqttError as exc:
                log.warning("MQTT connection to %s:%d lost: %s", self.host, self.port, exc)
            finally:
                self._client = None
                self._connected.clear()
                self.stats.connected = False
                self._abandon(DeviceError("broker connection lost"))
            await self._backoff.wait()

    def subscriptions(self) -> list[tuple[str, int]]:
        """The topic filters this adapter subscribes to, with their QoS.

        * telemetry (QoS 0): shared when a ``share_group`` is set; a reading
          needs handling once, by any replica (the readings of a park not
          held there are another concern, the recorder's).
        * acks (QoS 1): plain. The ack must reach the replica that sent the
          command, the only one waiting for it; a shared subscription would
          hand it to a replica at random. Every replica gets every ack and
          ignores the ids it did not send.
        * statuses (QoS 1): plain. They are retained, and a new shared
          subscription gets no retained messages (MQTT 5 section 4.8.2; EMQX
          and HiveMQ keep to it, Mosquitto 2 sends them anyway), so a replica
          taking a park over would not learn who is offline; and the last
          wills and the service's own status must reach every replica.
        """
        return [
            (self._telemetry_filter, 0),
            (self.topics.wildcard("ack"), 1),
            (self.topics.wildcard("status"), 1),
        ]

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        """Subscribe to `subscriptions`, or fail the connection if the broker refused one.

        Raises:
            aiomqtt.MqttError: the broker refused a filter (a broker without
                shared subscriptions answers 0x9E), named with its reason.
        """
        wanted = self.subscriptions()
        granted = await client.subscribe(wanted)
        refused = [
            f"{topic_filter} ({code})"
            for (topic_filter, _), code in zip(wanted, granted, strict=False)
            if isinstance(code, ReasonCode) and code.is_failure
        ]
        if refused:
            raise aiomqtt.MqttError(f"broker refused the subscription to {', '.join(refused)}")

    def _abandon(self, exc: DeviceError) -> None:
        """Fail the commands waiting for an ack."""
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(exc)

    def _on_connected(self, first: bool) -> None:
        self._backoff.reset()
        self.stats.connected = True
        if not first:
            self.stats.reconnects += 1
        self._connected.set()
        log.info("MQTT connected to %s:%d for park %s", self.host, self.port, self.topics.park)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Announce the service offline (a clean stop fires no last will), then stop."""
        # Set first: a reconnect meanwhile must not announce "online" again.
        self._closing = True
        client = self._client
        if client is not None and self.announce_offline:
            offline = codec.encode_status(codec.Status(False))
            topic = self.topics.status(SERVICE_NODE)
            err = await announce_retained(client, topic, offline, timeout_s=OFFLINE_TIMEOUT_S)
            if err is not None:
                log.warning("could not announce the service offline: %s", err)
        await super().__aexit__(exc_type, exc, tb)

    def _on_message(self, message: aiomqtt.Message) -> None:
        """Route one message; whatever is wrong with it is counted, never raised.

        Runs inside paho's read callback: an exception here would end the
        connection for every device, so none may leave.
        """
        self._handle(message.topic.value, message.payload, bool(message.retain))

    def _handle(self, topic: str, payload: object, retained: bool) -> None:
        """:meth:`_dispatch` one message, counting what is wrong with it."""
        with self._counted(topic):
            self._dispatch(topic, payload, retained=retained)

    @contextlib.contextmanager
    def _counted(self, topic: str | bytes) -> Iterator[None]:
        """Count a message its handler found bad, or failed on, and go on with the next.

        ``topic`` may be the raw bytes off the wire (decoded only for a bad message).
        """
        try:
            yield
        except Exception as exc:  # a bug must cost this message, not the connection
            where = topic if isinstance(topic, str) else topic.decode("utf-8", "replace")
            if isinstance(exc, PayloadError):
                self._book.bad_payload(where, exc.detail)
            else:
                log.exception("message on %s not handled", where)
                self._book.bad_payload(where, repr(exc))

    def _on_publishes(self, batch: list[Publish]) -> None:
        """Take the QoS 0 messages of one socket read (telemetry, in arrival order).

        Each payload is still read field by field and each reading judged by
        its own clock; the readings kept go to the consumer as one batch.
        Anything but an enrolled asset's telemetry takes the general route.
        """
        received = time.time()
        readings: list[Telemetry] = []
        assets = self._telemetry_topics
        for raw_topic, payload, retained in batch:
            asset = assets.get(raw_topic)
            if asset is None:
                self._handle(raw_topic.decode("utf-8", "replace"), payload, retained)
                continue
            reading = None
            with self._counted(raw_topic):
                reading = self._reading(asset, payload, received, retained)
            if reading is not None:
                readings.append(reading)
        self._refresh_skew(received)
        self._book.publish_many(readings)

    def _dispatch(self, topic: str, payload: object, *, retained: bool = False) -> None:
        """Route one message to its handler.

        Raises:
            PayloadError: not decodable at all, or on no topic of this park.
        """
        if not isinstance(payload, bytes | bytearray):
            raise PayloadError(f"non-binary payload {type(payload).__name__}")
        asset, leaf = self.topics.split(topic)
        if leaf == "telemetry":
            if asset in self._book.limits:
                self._on_telemetry(topic, asset, payload, retained)
        elif leaf == "ack":
            ack, issues = codec.decode_ack(payload)
            self._reject(topic, issues)
            pending = self._pending.get(ack.id)
            if pending is None:
                return  # answered already, timed out, or never ours
            if pending[0] != asset:
                # another device answering this one's command: it cannot vouch for it
                self._reject(topic, [codec.FieldIssue("id", codec.Reason.INCONSISTENT, ack.id)])
            elif not pending[1].done():
                pending[1].set_result(ack)
        elif leaf == "status" and asset == SERVICE_NODE:
            self._on_service_status(topic, payload, retained)
        elif leaf == "status":
            status, issues = codec.decode_status(payload)
            self._reject(topic, issues)
            self._on_status(asset, status)

    def _on_service_status(self, topic: str, payload: bytes | bytearray, retained: bool) -> None:
        """Say "online" again when another instance of this park's adapter said "offline".

        A retained status (the one found on subscribing, answered by this
        connection's own "online") and an empty one (a retained message
        cleared) need nothing; nor does anything while this adapter stops.

        Raises:
            PayloadError: not a status.
        """
        client = self._client
        if retained or not payload or client is None or self._closing:
            return
        status, _ = codec.decode_status(payload)
        if not status.online:
            online = codec.encode_status(codec.Status(True))
            # not connected: the next connection announces "online" anyway
            with contextlib.suppress(aiomqtt.MqttError):
                publish_nowait(client, topic, online, qos=1, retain=True)

    def _on_telemetry(
        self, topic: str, asset: str, payload: bytes | bytearray, retained: bool
    ) -> None:
        received = time.time()
        reading = self._reading(asset, payload, received, retained)
        self._refresh_skew(received)
        if reading is not None:
            self._book.publish(reading)

    def _reading(
        self, asset: str, payload: bytes | bytearray, received: float, retained: bool
    ) -> Telemetry | None:
        """One enrolled asset's payload as a dated reading; None when nothing is kept.

        Raises:
            PayloadError: not decodable at all.
        """
        read = codec.telemetry_values(payload)
        if read.issues:
            self._reject(self.topics.telemetry(asset), read.issues)
        if read.values is None:
            return None  # no usable power: the dropped fields are counted, nothing to keep
        self._remember_encoding(asset, payload)
        if read.device_ts is None and not retained:
            ts = received  # the clocks' verdict on a live reading without a time of its own
        else:
            verdict = self._clocks.judge(asset, read.device_ts, received, retained=retained)
            if verdict.ts is None:
                self.stats.record_stale(verdict.stale or "old")
                log.debug(
                    "stale reading from %s (%s, %.1f s old)", asset, verdict.stale, verdict.age_s
                )
                return None
            ts = verdict.ts
        return Telemetry(asset_id=asset, ts=ts, source=TelemetrySource.MQTT, **read.values)

    def _refresh_skew(self, received: float) -> None:
        if received >= self._skew_due:
            self._skew_due = received + SKEW_REFRESH_S
            self.stats.clock_skew_s = self._clocks.largest_offset()

    def _stopping(self) -> bool:
        # a method, not the attribute: the loop condition must not narrow it
        return self._closing

    def _reject(self, topic: str, issues: Iterable[codec.FieldIssue]) -> None:
        for issue in issues:
            self._book.reject_field(topic, issue.name, issue.reason.value, issue.value)

    def _remember_encoding(self, asset: str, payload: bytes | bytearray) -> None:
        if asset not in self._encodings:
            self._encodings[asset] = codec.encoding_of(payload)

    def _on_status(self, node: str, status: codec.Status) -> None:
        now = time.time()
        for asset in status.assets or (node,):
            if asset not in self._book.limits:
                continue
            if not status.online:
                self._abandon_asset(asset)
            last = self._book.latest.get(asset)
            if last is None and status.online:
                continue  # nothing known yet; its first reading will say it all
            if last is not None and last.available == status.online:
                continue
            self._book.publish(
                Telemetry(
                    asset_id=asset,
                    ts=now,
                    power_kw=0.0 if last is None else last.power_kw,
                    available=status.online,
                    source=TelemetrySource.MQTT,
                )
            )

    def _abandon_asset(self, asset: str) -> None:
        """Fail the commands waiting for an ack from a device that went offline."""
        gone = DeviceError(f"{asset} went offline")
        for target, future in self._pending.values():
            if target == asset and not future.done():
                future.set_exception(gone)
