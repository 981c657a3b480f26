"""Simulated flexible loads (HVAC, process lines) speaking MQTT.

:class:`LoadModel` is the physics, free of I/O; :class:`MqttLoadFleet` puts
many of them on one broker connection, as a site gateway would: it publishes
each load's telemetry, follows commands within ramp limits, acknowledges them,
and announces its loads' availability with a retained status: online on
connecting, offline on a clean stop, and offline as its last will. The same
gateway may publish simulated meters (:mod:`adapters.sim.meters`): their
readings only, on their secondary side; a command to a meter is ignored.

Physics: a load follows its baseline ``b(t)`` unless a command holds. Energy
not drawn while shed (``b - p``) accumulates as a deficit that comes back as
rebound once the command ends (``p = b + deficit / rebound_tau``, inside the
power window), so a shed load's energy returns rather than vanishing; a
load pushed above its baseline banks the surplus and draws less afterwards.

With a :class:`~adapters.sim.profiles.LoadProfile` the baseline follows the
profile's shape on the local clock (a two-shift line is at 30 % at night, an
office's HVAC off at weekends): ``b(t) = profile.kw_at(origin + t) ×
baseline_kw``, its power window ``[p_min, p_max]`` scaled by the same factor
(a line running at half load can shed half as much), and the kind of each
day told by the caller (:func:`~adapters.sim.profiles.weekday_type` unless
given). Without a profile a load keeps its flat (``process``) or gently
swinging (``hvac``) baseline and its fixed window.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import TracebackType

import aiomqtt

from adapters import mqtt_codec as codec
from adapters._mqtt_transport import (
    announce_retained,
    inline_queue,
    install_write_batching,
    publish_nowait,
)
from adapters.backoff import Backoff
from adapters.errors import PayloadError
from adapters.lifecycle import BackgroundService
from adapters.sim._clock import SimClock
from adapters.sim.meters import MeterModel
from adapters.sim.profiles import DayType, LoadProfile, weekday_type

__all__ = ["LoadModel", "LoadSpec", "MqttLoadFleet"]

#: QoS 1 messages a gateway keeps unacknowledged by the broker: no limit (0), as
#: the adapter's (`adapters.mqtt.MqttAdapter`, ``max_inflight``); the acks of a
#: burst of commands bound them.
_MAX_INFLIGHT = 0
#: aiomqtt's "pending publish calls" warning threshold.
_PENDING_CALLS_WARNING = 1000
#: Topic filters per SUBSCRIBE packet.
_SUBSCRIBE_SLICE = 500
#: Telemetry messages handed to paho before its writer gets a turn.
_PUBLISH_SLICE = 200

log = logging.getLogger("adapters.sim.loads")


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadSpec:
    """One simulated flexible load.

    Attributes:
        asset_id: its id (third topic level).
        kind: ``hvac`` (baseline swings hourly) or ``process`` (flat baseline).
        baseline_kw: mean power drawn with no demand response.
        p_min_kw: lowest power it can run at (fully shed).
        p_max_kw: highest power it can run at.
        ramp_kw_per_s: how fast its power may change (simulated seconds).
        rebound_tau_s: time constant over which a shed energy deficit returns.
        profile: the baseline's daily shape (``baseline_kw`` is its nominal,
            a working day's daytime level); None = flat or hourly swing by ``kind``.
    """

    asset_id: str
    kind: str = "hvac"
    baseline_kw: float = 50.0
    p_min_kw: float = 10.0
    p_max_kw: float = 80.0
    ramp_kw_per_s: float = 2.0
    rebound_tau_s: float = 1800.0
    profile: LoadProfile | None = None


class LoadModel:
    """The physics of one load, stepped in simulated seconds.

    Args:
        spec: the load's description.
        origin: the instant of simulated time 0 (aware; now when None); a
            profile's shape is read at ``origin + t`` on its local clock.
        day_type: the kind of a local day, for the profile (the caller's calendar).
    """

    def __init__(
        self,
        spec: LoadSpec,
        *,
        origin: datetime | None = None,
        day_type: Callable[[date], DayType] = weekday_type,
    ) -> None:
        self.spec = spec
        self.origin = origin or datetime.now(UTC)
        self.day_type = day_type
        self.power_kw = self.baseline(0.0)
        self.energy_kwh = 0.0
        self.deficit_kwh = 0.0
        self.command_kw: float | None = None
        self.command_until = 0.0
        #: the simulated time its physics has been stepped to
        self.t = 0.0

    def scale(self, t: float) -> float:
        """The profile's per-unit level at simulated time ``t`` (1.0 without a profile)."""
        profile = self.spec.profile
        if profile is None:
            return 1.0
        return profile.kw_after(self.origin, t, 1.0, self.day_type)

    def window(self, t: float) -> tuple[float, float]:
        """``(p_min, p_max)`` kW the load can run at, at simulated time ``t``."""
        k = self.scale(t)
        return self.spec.p_min_kw * k, self.spec.p_max_kw * k

    def baseline(self, t: float) -> float:
        """Power the load would draw at simulated time ``t`` with no demand response."""
        if self.spec.profile is not None:
            return self.spec.baseline_kw * self.scale(t)
        if self.spec.kind == "hvac":
            return self.spec.baseline_kw * (1.0 + 0.1 * math.sin(2 * math.pi * t / 3600.0))
        return self.spec.baseline_kw

    def command(self, p_kw: float | None, *, until: float, t: float = 0.0) -> float | None:
        """Take a command at simulated time ``t`` (None releases); return its target."""
        if p_kw is None:
            self.command_kw = None
            return None
        low, high = self.window(t)
        self.command_kw = min(max(p_kw, low), high)
        self.command_until = until
        return self.command_kw

    def target(self, t: float) -> float:
        """Power the load is heading for at simulated time ``t``."""
        low, high = self.window(t)
        if self.command_kw is not None and t < self.command_until:
            return min(max(self.command_kw, low), high)
        self.command_kw = None
        rebound = self.deficit_kwh * 3600.0 / self.spec.rebound_tau_s
        return min(max(self.baseline(t) + rebound, low), high)

    def advance_to(self, t: float) -> None:
        """Step the physics from where it was up to simulated time ``t``."""
        dt, self.t = t - self.t, max(t, self.t)
        self.step(t, dt)

    def step(self, t: float, dt: float) -> None:
        """Advance ``dt`` simulated seconds ending at ``t``."""
        if dt <= 0:
            return
        goal = self.target(t)
        max_move = self.spec.ramp_kw_per_s * dt
        self.power_kw += min(max(goal - self.power_kw, -max_move), max_move)
        hours = dt / 3600.0
        self.energy_kwh += self.power_kw * hours
        self.deficit_kwh += (self.baseline(t) - self.power_kw) * hours


class MqttLoadFleet(BackgroundService):
    """Many simulated loads on one MQTT connection (a gateway).

    Args:
        host: broker host.
        port: broker port.
        park: park id.
        loads: the loads this gateway serves.
        root: topic root (as the adapter's).
        node: gateway name used for its status topic and last will.
        period_s: wall-clock seconds between telemetry rounds.
        time_scale: simulated seconds per wall-clock second.
        encoding: payload encoding of telemetry and acks.
        backoff_base: scale on reconnect delays.
        origin: the instant the fleet's simulated time starts at (aware; now
            when None): where the loads' profiles are on their local clock.
        day_type: the kind of a local day, for the loads' profiles (the
            caller's calendar; Monday to Friday work when not given).
        meters: meters this gateway publishes too (their own clocks).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int = 1883,
        park: str,
        loads: Sequence[LoadSpec],
        root: str = "vpp",
        node: str | None = None,
        period_s: float = 1.0,
        time_scale: float = 1.0,
        encoding: codec.Encoding = codec.Encoding.JSON,
        backoff_base: float = 1.0,
        origin: datetime | None = None,
        day_type: Callable[[date], DayType] = weekday_type,
        meters: Sequence[MeterModel] = (),
    ) -> None:
        self.host, self.port = host, port
        self.topics = codec.Topics(root, park)
        self.node = node or f"gw-{uuid.uuid4().hex[:8]}"
        # Node names repeat across parks and runs; broker client ids must not.
        self._client_id = f"{self.node}-{uuid.uuid4().hex[:8]}"
        origin = origin or datetime.now(UTC)
        self.models = {
            spec.asset_id: LoadModel(spec, origin=origin, day_type=day_type) for spec in loads
        }
        self.meters = {model.spec.asset_id: model for model in meters}
        self.period_s = period_s
        self.clock = SimClock(time_scale=time_scale)
        self.encoding = encoding
        self._backoff = Backoff(base=backoff_base)
        self._task_name = f"sim-loads-{self.node}"
        self.connected = asyncio.Event()
        self.commands = 0
        #: command messages this gateway received (its loads' and any other)
        self.received = 0
        self._queued = 0
        self._client: aiomqtt.Client | None = None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Announce the loads offline (a clean disconnect fires no last will), then stop."""
        self._closing = True
        client = self._client
        if client is not None:
            offline = codec.encode_status(codec.Status(False, self._assets()))
            topic = self.topics.status(self.node)
            err = await announce_retained(client, topic, offline, timeout_s=2.0)
            if err is not None:
                log.warning("load gateway %s could not announce offline: %s", self.node, err)
        await super().__aexit__(exc_type, exc, tb)

    def _assets(self) -> tuple[str, ...]:
        return (*self.models, *self.meters)

    def advance(self) -> float:
        """Step every load's physics up to now; return the simulated time."""
        t = self.clock.now()
        for model in self.models.values():
            model.advance_to(t)
        return t

    async def _run(self) -> None:
        status = self.topics.status(self.node)
        assets = self._assets()
        will = aiomqtt.Will(status, codec.encode_status(codec.Status(False, assets)), 1, True)
        while not self._closing:
            try:
                async with aiomqtt.Client(
                    self.host, self.port, identifier=self._client_id, will=will, logger=log,
                    max_inflight_messages=_MAX_INFLIGHT, queue_type=inline_queue(self._on_command),
                ) as client:  # fmt: skip
                    client.pending_calls_threshold = _PENDING_CALLS_WARNING
                    install_write_batching(client)
                    self._client = client
                    # each load's own command topic, not the park's wildcard: with
                    # 30 gateways every command would reach all 30 (and overflow the
                    # broker's per-client queue on a burst of 3,000)
                    cmds = [(self.topics.cmd(a), 1) for a in self.models]
                    for i in range(0, len(cmds), _SUBSCRIBE_SLICE):
                        await client.subscribe(cmds[i : i + _SUBSCRIBE_SLICE])
                    online = codec.encode_status(codec.Status(True, assets))
                    await client.publish(status, online, qos=1, retain=True)
                    self._backoff.reset()
                    self.connected.set()
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._publish_loop(client), name=f"{self.node}-telemetry")
                        # Commands are answered as paho reads them (inline_queue ->
                        # _on_command); this loop only ends, with MqttError, when
                        # the connection does.
                        async for message in client.messages:
                            self._on_command(message)
            except* aiomqtt.MqttError as group:
                log.warning("load gateway %s lost the broker: %s", self.node, group.exceptions)
            finally:
                self._client = None
                self.connected.clear()
            await self._backoff.wait()

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        while True:
            started = time.monotonic()
            t = self.advance()
            now = time.time()
            for asset, model in self.models.items():
                low, high = model.window(t)
                payload = codec.encode_telemetry(
                    p_kw=round(model.power_kw, 3),
                    ts=now,
                    e_kwh=round(model.energy_kwh, 4),
                    max_kw=round(high, 3),
                    min_kw=round(low, 3),
                    encoding=self.encoding,
                )
                await self._telemetry(client, self.topics.telemetry(asset), payload)
            for asset, meter in self.meters.items():
                meter.step()
                payload = codec.encode_telemetry(
                    p_kw=round(meter.secondary_kw(), 4),
                    ts=now,
                    e_kwh=round(meter.secondary_energy_kwh(), 5),
                    encoding=self.encoding,
                )
                await self._telemetry(client, self.topics.telemetry(asset), payload)
            await asyncio.sleep(max(0.0, self.period_s - (time.monotonic() - started)))

    async def _telemetry(self, client: aiomqtt.Client, topic: str, payload: bytes) -> None:
        """Queue one QoS 0 reading; paho's writer gets a turn every `_PUBLISH_SLICE` of them."""
        publish_nowait(client, topic, payload, qos=0)
        self._queued += 1
        if self._queued >= _PUBLISH_SLICE:
            self._queued = 0
            await asyncio.sleep(0)

    def _on_command(self, message: aiomqtt.Message) -> None:
        """Apply one command now and publish its ack (QoS 1, not waiting for the PUBACK).

        Runs inside paho's read callback (`inline_queue`), so the commands of
        one socket read are answered in one burst; nothing may raise here.
        Each load answers on its own, as separate devices would: no ack waits
        for the broker's PUBACK of the one before.
        """
        client = self._client
        self.received += 1
        try:
            asset, _ = self.topics.split(message.topic.value)
            model = self.models.get(asset)
            if (
                client is None
                or model is None
                or not isinstance(message.payload, bytes | bytearray)
            ):
                return
            cmd, enc = codec.decode_command(message.payload)
        except PayloadError as exc:
            log.warning("load gateway %s ignored a bad command: %s", self.node, exc.detail)
            return
        # only the commanded load is stepped: each load's physics is its own, and a
        # burst of commands to a gateway must not step all its loads per command
        t = self.clock.now()
        model.advance_to(t)
        applied = model.command(cmd.p_kw, until=t + self.clock.sim_seconds(cmd.hold_s), t=t)
        self.commands += 1
        ack = codec.Ack(cmd.id, True, applied)
        try:
            publish_nowait(client, self.topics.ack(asset), codec.encode_ack(ack, enc), qos=1)
        except aiomqtt.MqttError as exc:  # the connection is going; the command waits in vain
            log.warning("load gateway %s could not ack %s: %s", self.node, cmd.id, exc)
