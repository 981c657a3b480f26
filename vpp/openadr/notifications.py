"""MQTT notifications from the VTN (User Guide 6.3.2), as a hint to poll now.

``GET /notifiers`` may offer an MQTT binding (broker URIs, JSON serialization,
authentication); ``GET /notifiers/mqtt/topics/programs/{id}/events`` names the
topics. The listener subscribes and calls ``on_notification`` for each
message; the VEN then polls. Polling stays the source of truth, so a lost or
malformed notification costs only latency.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiomqtt

from vpp.openadr.auth import TokenProvider
from vpp.openadr.backoff import equal_jitter_delay
from vpp.openadr.errors import VtnError
from vpp.openadr.schema import OpenAdrSchema

log = logging.getLogger("vpp.openadr.notifications")

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class MqttBinding:
    """Where and how to connect to the VTN's broker.

    Attributes:
        host: Broker host.
        port: Broker port.
        tls: Whether to use TLS (``mqtts://``).
        username: MQTT username, if the broker wants one.
        bearer_password: Send the VEN's OAuth2 access token as the password.
    """

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    bearer_password: bool = False


def binding_from_notifiers(notifiers: Json, client_id: str) -> MqttBinding | None:
    """Pick a usable MQTT binding from a ``notifiersResponse``, or None.

    ANONYMOUS and OAUTH2_BEARER_TOKEN are supported; CERTIFICATE is not.
    """
    mqtt = notifiers.get("MQTT")
    if not isinstance(mqtt, dict) or mqtt.get("serialization") != "JSON":
        return None
    auth = mqtt.get("authentication") or {}
    method = auth.get("method")
    if method not in ("ANONYMOUS", "OAUTH2_BEARER_TOKEN"):
        log.warning("MQTT notifier with %s authentication is not supported; polling only", method)
        return None
    for uri in mqtt.get("URIS") or []:
        parts = urlsplit(uri)
        if parts.scheme in ("mqtt", "tcp", "mqtts", "ssl") and parts.hostname:
            tls = parts.scheme in ("mqtts", "ssl")
            username = None
            if method == "OAUTH2_BEARER_TOKEN":
                raw = str(auth.get("username", "{clientID}"))
                username = client_id if raw == "{clientID}" else raw
            return MqttBinding(
                host=parts.hostname,
                port=parts.port or (8883 if tls else 1883),
                tls=tls,
                username=username,
                bearer_password=method == "OAUTH2_BEARER_TOKEN",
            )
    return None


def topics_to_subscribe(topics: Json) -> list[str]:
    """The ALL topic if the VTN names one, else CREATE, UPDATE and DELETE."""
    if topics.get("ALL"):
        return [str(topics["ALL"])]
    return [str(topics[op]) for op in ("CREATE", "UPDATE", "DELETE") if topics.get(op)]


class NotificationListener:
    """Subscribes to the VTN's event topics and reports each message.

    Attributes:
        subscribed: Set while connected and subscribed.
        received: Messages received so far.
        invalid: Messages that were not a valid ``notification``.
    """

    def __init__(
        self,
        *,
        binding: MqttBinding,
        topics: Sequence[str],
        on_notification: Callable[[Json | None], None],
        tokens: TokenProvider | None = None,
        schema: OpenAdrSchema | None = None,
        backoff_scale_s: float = 1.0,
    ) -> None:
        """Configure; :meth:`run` connects."""
        self._binding = binding
        self._topics = list(topics)
        self._on_notification = on_notification
        self._tokens = tokens
        self._schema = schema
        self._backoff = backoff_scale_s
        self.subscribed = asyncio.Event()
        self.received = 0
        self.invalid = 0
        #: the last reconnect delays decided, seconds (what the backoff chose)
        self.delays: deque[float] = deque(maxlen=32)

    async def _password(self) -> str | None:
        if not self._binding.bearer_password or self._tokens is None:
            return None
        return await self._tokens.token()

    def _handle(self, payload: bytes) -> None:
        self.received += 1
        notification: Json | None = None
        try:
            decoded = json.loads(payload)
        except ValueError:
            decoded = None
        errors = (
            self._schema.errors("notification", decoded)
            if self._schema is not None and decoded is not None
            else ([] if isinstance(decoded, dict) else ["not a JSON object"])
        )
        if errors:
            self.invalid += 1
            log.warning("malformed MQTT notification: %s", "; ".join(errors[:3]))
        else:
            notification = decoded
        self._on_notification(notification)

    async def run(self) -> None:
        """Connect, subscribe and listen until cancelled, reconnecting with backoff."""
        attempt = 0
        while True:
            try:
                client = aiomqtt.Client(
                    self._binding.host,
                    self._binding.port,
                    username=self._binding.username,
                    password=await self._password(),
                    tls_context=ssl.create_default_context() if self._binding.tls else None,
                )
                async with client:
                    for topic in self._topics:
                        await client.subscribe(topic, qos=1)
                    self.subscribed.set()
                    attempt = 0
                    log.info("subscribed to %s", ", ".join(self._topics))
                    # A reconnect may have missed messages: ask for a poll.
                    self._on_notification(None)
                    async for message in client.messages:
                        if isinstance(message.payload, bytes | bytearray):
                            self._handle(bytes(message.payload))
            except (aiomqtt.MqttError, VtnError) as exc:
                self.subscribed.clear()
                attempt += 1
                delay = equal_jitter_delay(attempt, self._backoff)
                self.delays.append(delay)
                log.warning("MQTT notifier: %s; reconnecting in %.1f s", exc, delay)
                await asyncio.sleep(delay)
            finally:
                self.subscribed.clear()
