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
* Even so, paho spends ~10-20 us of Python on each PUBLISH it parses (a
  packet dict, an ``MQTTMessage``, a debug-log call, topic matching, then
  aiomqtt's own ``Message``), more than decoding and storing the reading.
  Given a ``publishes`` handler, :class:`ReadAhead` takes the QoS 0 PUBLISH
  packets (telemetry) that lie whole at the head of its buffer, at a packet
  boundary of paho's, and hands them to it as one batch of
  :data:`Publish` tuples per socket read (one cut by the end of a read waits
  for its rest); every other packet (CONNACK, SUBACK, PUBACK, PINGRESP, QoS 1
  acks and statuses) is left to paho, in order. A QoS 0 PUBLISH has no
  packet id and needs no answer: fixed header, remaining length, topic,
  payload (MQTT 3.1.1 section 3.3), and in MQTT 5 the properties between
  topic and payload (section 3.3.2.3), skipped, so nothing paho would do
  with it is skipped beyond building its objects. An MQTT 5 PUBLISH whose
  topic comes from a Topic Alias is paho's (:func:`take_qos0_publishes`).

Installing :class:`ReadAhead` swaps a private paho attribute and reads two more
(``_in_packet``, ``_last_bytes_received``); :func:`install_read_ahead` checks the
shape it expects and leaves the client untouched otherwise.

Outgoing bursts (a cycle's commands, a gateway's acks, the PUBACKs of either)
cost, per packet, in aiomqtt 2.5: a task and a scan of every pending call in
``client.publish``, a ``call_soon_threadsafe`` (a write to the event loop's
self-pipe) to register paho's writer, and a ``send`` of its own. Two more seams:

* :func:`publish_nowait` hands a message to paho at once, without a task or a
  wait for the broker's PUBACK: for QoS 1 messages whose confirmation is an
  answer from the other end (a command and its device ack), where the PUBACK
  says nothing more. paho still keeps and, on reconnect, resends them.
* :func:`install_write_batching` registers paho's writer straight on the
  event loop (no self-pipe write when already on the loop's thread) and
  writes every packet queued by then with the socket corked (Linux
  ``TCP_CORK``), so a burst leaves in full segments rather than one segment
  and one broker wake-up per packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho_client

__all__ = [
    "Publish",
    "PublishHandler",
    "ReadAhead",
    "announce_retained",
    "inline_queue",
    "install_read_ahead",
    "install_write_batching",
    "publish_nowait",
    "take_qos0_publishes",
]

log = logging.getLogger("adapters.mqtt")

#: Bytes fetched per system call.
_CHUNK = 64 * 1024
#: Bytes served in one reader-callback turn before yielding to other tasks.
_TURN_BUDGET = 64 * 1024

#: Times ``pending()`` says "more" in one turn, whatever paho consumed meanwhile.
_TURN_ANSWERS = 4096

#: What an inline queue calls with each received message.
MessageHandler = Callable[[aiomqtt.Message], None]

#: One QoS 0 PUBLISH taken off the wire: ``(topic, payload, retain)`` (topic as raw UTF-8).
Publish = tuple[bytes, bytes, bool]
#: Takes the QoS 0 PUBLISH packets of one socket read, in arrival order; must not raise.
PublishHandler = Callable[[list[Publish]], None]


def take_qos0_publishes(
    buf: bytearray | bytes, out: list[Publish], *, mqtt5: bool = False
) -> tuple[int, bool]:
    """Parse the whole QoS 0 PUBLISH packets at the head of ``buf``.

    MQTT 3.1.1 (section 3.3): fixed header, remaining length, topic, payload.
    MQTT 5 (section 3.3.2) puts the properties between topic and payload: a
    property length (variable byte integer) and the properties, which are
    skipped (none changes what a reading says). Stops at the first packet
    that is anything else, which is left for paho: another type, QoS 1 or 2,
    a DUP flag, a malformed length, and in MQTT 5 an empty topic or a Topic
    Alias property (0x23): the topic is then the broker's alias mapping,
    which is paho's to keep, not guessed here. Stops too at a packet that is
    not whole yet.

    Args:
        buf: received bytes starting at a packet boundary.
        out: appended with ``(topic, payload, retain)`` per packet taken.
        mqtt5: the connection speaks MQTT 5.

    Returns:
        How many bytes of ``buf`` the packets taken span, and whether the
        packet after them is a QoS 0 PUBLISH still missing bytes.
    """
    pos, end = 0, len(buf)
    while pos < end:
        first = buf[pos]
        if first & 0xFE != 0x30:  # PUBLISH, QoS 0, no DUP; the low bit is RETAIN
            return pos, False
        # remaining length: 1-4 bytes, 7 bits each, low groups first (inline: per message)
        length, shift, at = 0, 0, pos + 1
        while True:
            if at == end:
                return pos, True
            digit = buf[at]
            length |= (digit & 0x7F) << shift
            at += 1
            if not digit & 0x80:
                break
            shift += 7
            if shift > 21:
                return pos, False  # more than 4 length bytes: paho reports it
        stop = at + length
        if length < 2:
            return pos, False
        if stop > end:
            return pos, True
        topic_end = at + 2 + (buf[at] << 8 | buf[at + 1])
        if topic_end > stop:
            return pos, False  # malformed: paho reports it
        payload_at = topic_end
        if mqtt5:
            if topic_end == at + 2:
                return pos, False  # an empty topic: a topic alias stands for it, paho's
            if topic_end < stop and not buf[topic_end]:
                payload_at = topic_end + 1  # the common case: no properties
            else:
                payload_at = _skip_properties(buf, topic_end, stop)
                if payload_at < 0:
                    return pos, False  # a topic alias, or what paho refuses: paho's
        out.append((bytes(buf[at + 2 : topic_end]), bytes(buf[payload_at:stop]), bool(first & 1)))
        pos = stop
    return pos, False


#: What `_varint` returns for a number cut by the end of its bytes...
_CUT = -1
#: ... and for one of more than 4 bytes (malformed).
_MALFORMED = -2

#: MQTT 5 PUBLISH properties (section 3.3.2.3) by identifier: the size of a
#: fixed-size value, or how many length-prefixed strings the value is
#: (negated). Subscription Identifier (0x0B, a variable byte integer) is
#: handled apart; Topic Alias (0x23) is absent on purpose: such a packet is paho's.
_PUBLISH_PROPERTIES = {
    0x01: 1,  # Payload Format Indicator (byte)
    0x02: 4,  # Message Expiry Interval (four-byte integer)
    0x03: -1,  # Content Type (UTF-8 string)
    0x08: -1,  # Response Topic (UTF-8 string)
    0x09: -1,  # Correlation Data (binary data)
    0x26: -2,  # User Property (UTF-8 string pair)
}
_USER_PROPERTY = 0x26
_CORRELATION_DATA = 0x09
_SUBSCRIPTION_IDENTIFIER = 0x0B


def _varint(buf: bytearray | bytes, at: int, end: int) -> tuple[int, int]:
    """Read a variable byte integer (1-4 bytes, 7 bits each, low groups first).

    Returns:
        The number (or `_CUT`, `_MALFORMED`) and the position after it.
    """
    value, shift = 0, 0
    while True:
        if at >= end:
            return _CUT, at
        digit = buf[at]
        value |= (digit & 0x7F) << shift
        at += 1
        if not digit & 0x80:
            return value, at
        shift += 7
        if shift > 21:
            return _MALFORMED, at


def _skip_properties(buf: bytearray | bytes, at: int, stop: int) -> int:
    """Position after the MQTT 5 properties starting at ``at`` of a packet ending at ``stop``.

    A packet with properties is read as strictly as paho reads it (a string
    must be UTF-8 without U+0000 or U+FEFF, only User Property and
    Subscription Identifier may repeat), so that what paho would refuse is
    left to paho to refuse.

    Returns:
        -1 when they hold a Topic Alias, an identifier not of PUBLISH, or
        anything paho refuses (paho reads such a packet, or reports it).
    """
    length, at = _varint(buf, at, stop)
    end = at + length
    if length < 0 or end > stop:
        return -1
    seen: set[int] = set()
    while at < end:
        ident = buf[at]
        at += 1
        size = _PUBLISH_PROPERTIES.get(ident)
        if ident in seen:
            return -1  # only a repeatable one is never added
        if size is None:
            if ident != _SUBSCRIPTION_IDENTIFIER:
                return -1
            number, at = _varint(buf, at, end)
            if number < 0:
                return -1
            continue
        if ident != _USER_PROPERTY:
            seen.add(ident)
        if size > 0:
            at += size
            continue
        for _ in range(-size):
            if at + 2 > end:
                return -1
            value_end = at + 2 + (buf[at] << 8 | buf[at + 1])
            text = ident != _CORRELATION_DATA
            if value_end > end or (text and not _mqtt_utf8(buf[at + 2 : value_end])):
                return -1
            at = value_end
    return end if at == end else -1


def _mqtt_utf8(raw: bytearray | bytes) -> bool:
    """Whether ``raw`` is an MQTT UTF-8 string (section 1.5.4) as paho checks it."""
    try:
        text = raw.decode("utf-8")  # strict: encoded surrogates are refused too
    except UnicodeDecodeError:
        return False
    return "\x00" not in text and "\ufeff" not in text


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
        publishes: takes the QoS 0 PUBLISH packets at the head of each read
            (None: paho reads every packet).
        at_boundary: whether paho is between packets (only then may a packet
            be taken from under it).
        on_bytes: called when bytes were taken for ``publishes`` (paho's
            keepalive must see that the broker is talking).
        mqtt5: the connection speaks MQTT 5 (PUBLISH packets carry properties).
    """

    def __init__(
        self,
        sock: socket.socket,
        resume: Callable[[], None],
        *,
        publishes: PublishHandler | None = None,
        at_boundary: Callable[[], bool] = lambda: False,
        on_bytes: Callable[[], None] = lambda: None,
        mqtt5: bool = False,
    ) -> None:
        self._sock = sock
        self._mqtt5 = mqtt5
        self._buf = bytearray()
        self._served = 0
        self._answers = 0
        self._resume = resume
        self._resume_scheduled = False
        #: the buffer holds only the head of a QoS 0 PUBLISH and the kernel had no more
        self._starved = False
        self._publishes = publishes
        self._at_boundary = at_boundary
        self._on_bytes = on_bytes

    def recv(self, bufsize: int) -> bytes:
        """Serve ``bufsize`` bytes at most, from the buffer or one large read.

        At a packet boundary, QoS 0 PUBLISH packets at the head of the buffer
        go to the ``publishes`` handler first; when they were all there was,
        this reads once more, and raises ``BlockingIOError`` (paho: "nothing
        now") when the kernel has no more: level-triggered readiness brings
        the reader back for what is left, after other tasks had their turn.
        """
        if self._publishes is not None and bufsize == 1 and self._at_boundary():
            self._take_publishes()
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

    def _take_publishes(self) -> None:
        """Hand the QoS 0 PUBLISH packets at the head of the buffer over, read by read.

        Returns when a packet for paho is at the head (or the stream ended);
        raises ``BlockingIOError`` when the kernel has nothing more (a cut
        packet stays buffered: its rest wakes the reader), or when this turn
        served ``_TURN_BUDGET`` bytes (``pending()`` then ends the turn; the
        kernel's readiness, or a scheduled resume, brings the reader back
        after other tasks ran).
        """
        assert self._publishes is not None
        while True:
            if self._buf:
                batch: list[Publish] = []
                taken, cut = take_qos0_publishes(self._buf, batch, mqtt5=self._mqtt5)
                if taken:
                    del self._buf[:taken]
                    self._served += taken  # one budget per turn, whoever parsed the bytes
                    self._on_bytes()
                    try:
                        self._publishes(batch)
                    except Exception:  # the handler's bug must not end the connection
                        log.exception("QoS 0 PUBLISH handler failed on %d messages", len(batch))
                if self._buf and not cut:
                    return  # a packet for paho
            if self._served >= _TURN_BUDGET:
                raise BlockingIOError
            try:
                data = self._sock.recv(_CHUNK)
            except BlockingIOError:
                # a cut packet waits for its rest: the kernel's readiness brings the
                # reader back, and until then nothing here is ready (no spinning)
                self._starved = bool(self._buf)
                raise
            self._starved = False
            if not data:
                return  # end of stream: paho's own read reports it
            self._buf += data

    def pending(self) -> int:
        """Buffered bytes to process now; 0 ends the reader's turn (then resumes soon)."""
        self._answers += 1
        if self._starved:
            self._served = self._answers = 0
            return 0
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


def install_read_ahead(client: aiomqtt.Client, publishes: PublishHandler | None = None) -> bool:
    """Wrap the connected client's socket in a :class:`ReadAhead`; True if it was done.

    Args:
        client: a connected aiomqtt client (MQTT 3.1.1 or 5 for ``publishes``).
        publishes: takes QoS 0 PUBLISH packets in batches instead of paho
            (see the module docstring); ignored unless the client speaks 3.1.1 or 5.
    """
    paho = getattr(client, "_client", None)
    sock = getattr(paho, "_sock", None)
    if paho is None or not isinstance(sock, socket.socket):
        log.info("aiomqtt client not of the expected shape: reading without read-ahead")
        return False
    in_packet = getattr(paho, "_in_packet", None)
    protocol = getattr(paho, "_protocol", None)
    if publishes is not None and (
        protocol not in (paho_client.MQTTv311, paho_client.MQTTv5)
        or not isinstance(in_packet, dict)
        or "command" not in in_packet
        or not hasattr(paho, "_last_bytes_received")
    ):
        log.info("paho client not of the expected shape: every PUBLISH goes through paho")
        publishes = None

    def at_boundary() -> bool:
        # paho resets _in_packet to a new dict after each packet
        return bool(paho._in_packet["command"] == 0)

    def on_bytes() -> None:
        # what paho's own read does for its keepalive
        paho._last_bytes_received = paho_client.time_func()

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

    wrapper = ReadAhead(
        sock,
        resume,
        publishes=publishes,
        at_boundary=at_boundary,
        on_bytes=on_bytes,
        mqtt5=protocol == paho_client.MQTTv5,
    )
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


def publish_nowait(
    client: aiomqtt.Client, topic: str, payload: bytes, *, qos: int, retain: bool = False
) -> None:
    """Hand one message to paho now, without waiting for the broker's PUBACK.

    Args:
        client: a connected aiomqtt client.
        topic: the topic.
        payload: the payload.
        qos: 0 or 1 (paho keeps a QoS 1 message until the broker acknowledges it).
        retain: the broker keeps it as the topic's retained message.

    Raises:
        aiomqtt.MqttCodeError: paho refused it (not connected, queue full).
    """
    info = client._client.publish(topic, payload, qos, retain)
    if info.rc != paho_client.MQTT_ERR_SUCCESS:
        raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")


def _set_cork(sock: Any, on: bool) -> None:
    if _CORK is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, _CORK, 1 if on else 0)


#: Linux's TCP_CORK (None elsewhere: packets are written as paho writes them).
_CORK: int | None = getattr(socket, "TCP_CORK", None)


def install_write_batching(client: aiomqtt.Client) -> bool:
    """Register paho's writer on the loop directly and write bursts corked; True if done.

    Replaces aiomqtt's ``on_socket_register_write`` / ``unregister_write``
    callbacks of a connected client (call it on the event loop's thread). A
    registration from another thread still goes through
    ``call_soon_threadsafe``, as aiomqtt's own does.
    """
    paho = getattr(client, "_client", None)
    loop = getattr(client, "_loop", None)
    disconnected = getattr(client, "_disconnected", None)
    if (
        paho is None
        or getattr(paho, "_sock", None) is None  # not connected
        or not isinstance(loop, asyncio.AbstractEventLoop)
        or disconnected is None
    ):
        log.info("aiomqtt client not connected or not of the expected shape: writes as it does")
        return False
    thread = threading.get_ident()

    def write() -> None:
        sock = paho._sock
        _set_cork(sock, True)
        try:
            paho.loop_write()
        except Exception as exc:  # as aiomqtt's writer: the link is broken
            if not disconnected.done():
                disconnected.set_exception(exc)
        finally:
            _set_cork(sock, False)  # uncorking pushes what was written

    def register(_client: Any, _userdata: Any, sock: Any) -> None:
        if threading.get_ident() == thread:
            loop.add_writer(sock.fileno(), write)
        else:
            loop.call_soon_threadsafe(loop.add_writer, sock.fileno(), write)

    def unregister(_client: Any, _userdata: Any, sock: Any) -> None:
        loop.remove_writer(sock.fileno())

    paho.on_socket_register_write = register
    paho.on_socket_unregister_write = unregister
    return True
