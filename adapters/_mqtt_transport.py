"""Two seams that let one aiomqtt connection carry tens of thousands of messages/s.

aiomqtt 2.5 over paho 2.2 costs, per incoming message: three ``recv`` system
calls (paho reads the fixed header byte by byte), one event-loop wake-up (the
reader callback handles a single packet), and a task plus ``asyncio.wait`` in
``client.messages``. Measured with the adapter benchmark (README, "Benchmarks"), that caps a
plain subscriber near 5,000 messages/s on a 2-core box. Both costs sit at seams:

* :func:`inline_queue` builds the ``queue_type`` aiomqtt's public constructor
  accepts; its ``put_nowait`` hands each message to the adapter at once (on
  the event-loop thread, where paho's callbacks run) instead of queueing it
  for ``client.messages``. Backpressure stays in the adapter's bounded queue.
* :class:`ReadAhead` wraps paho's socket: it reads up to 64 KiB per system
  call and serves paho's small reads from memory; its ``pending()`` (the hook
  aiomqtt and paho already honour for TLS sockets) makes aiomqtt's reader
  callback keep reading while whole packets are buffered, bounded per turn so
  the consumer is never starved.

Installing :class:`ReadAhead` swaps a private paho attribute; :func:`install_read_ahead`
checks the shape it expects and leaves the client untouched otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

import aiomqtt

__all__ = ["ReadAhead", "announce_retained", "inline_queue", "install_read_ahead"]

log = logging.getLogger("adapters.mqtt")

#: Bytes fetched per system call.
_CHUNK = 64 * 1024
#: Bytes served in one reader-callback turn before yielding to other tasks.
_TURN_BUDGET = 256 * 1024

#: Times ``pending()`` says "more" in one turn, whatever paho consumed meanwhile.
_TURN_ANSWERS = 4096

#: What an inline queue calls with each received message.
MessageHandler = Callable[[aiomqtt.Message], None]


def inline_queue(handler: MessageHandler) -> type[asyncio.Queue[aiomqtt.Message]]:
    """Return a queue class for aiomqtt's ``queue_type`` that calls ``handler`` instead.

    Args:
        handler: called with every incoming message (topic, payload, retain flag...).
    """

    class InlineQueue(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            handler(item)

    return InlineQueue


class ReadAhead:
    """A socket proxy with a read-ahead buffer (see the module docstring).

    Args:
        sock: paho's connected, non-blocking socket.
        resume: called soon after a turn ended with bytes still buffered (the
            kernel will not wake the reader for bytes already read).
    """

    def __init__(self, sock: socket.socket, resume: Callable[[], None]) -> None:
        self._sock = sock
        self._buf = bytearray()
        self._served = 0
        self._answers = 0
        self._resume = resume
        self._resume_scheduled = False

    def recv(self, bufsize: int) -> bytes:
        """Serve ``bufsize`` bytes at most, from the buffer or one large read."""
        if not self._buf:
            data = self._sock.recv(max(bufsize, _CHUNK))
            if len(data) <= bufsize:
                self._served += len(data)
                return data
            self._buf += data
        chunk = bytes(self._buf[:bufsize])
        del self._buf[:bufsize]
        self._served += len(chunk)
        return chunk

    def pending(self) -> int:
        """Buffered bytes to process now; 0 ends the reader's turn (then resumes soon)."""
        self._answers += 1
        if self._buf and self._served < _TURN_BUDGET and self._answers < _TURN_ANSWERS:
            return len(self._buf)
        self._served = self._answers = 0
        if self._buf and not self._resume_scheduled:
            self._resume_scheduled = True
            asyncio.get_running_loop().call_soon(self._run_resume)
        return 0

    def _run_resume(self) -> None:
        self._resume_scheduled = False
        self._resume()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def install_read_ahead(client: aiomqtt.Client) -> bool:
    """Wrap the connected client's socket in a :class:`ReadAhead`; True if it was done."""
    paho = getattr(client, "_client", None)
    sock = getattr(paho, "_sock", None)
    if paho is None or not isinstance(sock, socket.socket):
        log.info("aiomqtt client not of the expected shape: reading without read-ahead")
        return False

    def resume() -> None:
        # The same loop aiomqtt's reader callback runs, for bytes already buffered.
        try:
            while paho._sock is not None:
                paho.loop_read()
                if not wrapper.pending():
                    break
        except Exception as exc:  # as aiomqtt's callback: the link is broken
            log.warning("MQTT read failed: %r", exc)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    wrapper = ReadAhead(sock, resume)
    paho._sock = wrapper
    return True


async def announce_retained(
    client: aiomqtt.Client, topic: str, payload: bytes, *, timeout_s: float
) -> str | None:
    """Publish a retained status (QoS 1) before a clean disconnect.

    A clean disconnect fires no last will, so whoever stops on purpose says
    "offline" itself. A broker that is already gone must not hold the stop up.

    Returns:
        None when the broker took it, else why it could not be sent.
    """
    try:
        await client.publish(topic, payload, qos=1, retain=True, timeout=timeout_s)
    except (aiomqtt.MqttError, TimeoutError) as err:
        return str(err) or repr(err)
    return None
