"""One test's corner of an MQTT broker: its address, a private topic root, one park.

The ``mqtt`` fixture (``tests/conftest.py``) makes one on the shared broker;
a test that stops its broker makes one on ``private_mosquitto`` with
:meth:`MqttRig.on`. Retained messages a test leaves behind are named with
:meth:`MqttRig.retained` and cleared when the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiomqtt

from adapters.mqtt import MqttAdapter
from adapters.mqtt_codec import Topics
from adapters.sim.loads import LoadSpec, MqttLoadFleet
from adapters.types import DeviceLimits
from vpp.servers import MosquittoServer

#: How long an adapter may take to connect to a broker on loopback (s).
CONNECT_WITHIN_S = 5.0


class MqttRig:
    """A broker address and a private topic root, with the adapter and devices of one park.

    Args:
        host: The broker's host.
        port: The broker's port.
        root: The topic root private to this test (``{root}/{park}/{asset}/{leaf}``).
        park: The park the adapter and the simulated devices serve.
    """

    def __init__(self, host: str, port: int, root: str, park: str = "p1") -> None:
        self.host, self.port, self.root, self.park = host, port, root, park
        self.topics = Topics(root, park)
        self._retained: set[str] = set()

    @classmethod
    def on(cls, server: MosquittoServer, root: str, park: str = "p1") -> MqttRig:
        """A rig on a private broker (one the test may stop and restart)."""
        return cls(server.host, server.port, root, park)

    @contextlib.asynccontextmanager
    async def adapter(
        self, assets: Mapping[str, DeviceLimits], **options: Any
    ) -> AsyncIterator[MqttAdapter]:
        """The park's :class:`MqttAdapter`, entered and connected (within 5 s).

        ``options`` are the adapter's other keyword settings (``ack_timeout_s``,
        ``backoff_base``, ...).
        """
        async with MqttAdapter(
            host=self.host, port=self.port, park=self.park, assets=dict(assets), root=self.root,
            **options,
        ) as adapter:  # fmt: skip
            await asyncio.wait_for(adapter.wait_connected(), CONNECT_WITHIN_S)
            yield adapter

    def fleet(self, loads: Sequence[LoadSpec], **options: Any) -> MqttLoadFleet:
        """A simulated load gateway of the park (not entered); ``options`` as MqttLoadFleet's."""
        return MqttLoadFleet(
            host=self.host, port=self.port, park=self.park, loads=loads, root=self.root, **options
        )

    def client(self) -> aiomqtt.Client:
        """A raw broker client (a device, a gateway or a reader), not entered."""
        return aiomqtt.Client(self.host, self.port)

    def retained(self, *topics: str) -> None:
        """Name topics that may carry a retained message once the test ends (cleared then)."""
        self._retained.update(topics)

    async def clear_retained(self) -> None:
        """Clear the retained message of every topic named with :meth:`retained`."""
        if not self._retained:
            return
        async with self.client() as cleaner:
            for topic in sorted(self._retained):
                await cleaner.publish(topic, b"", qos=1, retain=True)
        self._retained.clear()
