"""The registry's events as a client receives them: :class:`Subscriber`, a SUB socket,
and :class:`HeadSubscriber`, the same with each event's object left undecoded.

Runs in controllers (the informer, which reads events' heads only), the CLI's ``watch``
and the link agent. Filtered by kind, always receiving heartbeats; frames that do not
decode are logged and skipped. On a remote link it is a CURVE client with ZMTP heartbeats
(:mod:`~ecsm_actors.registry.sockets`), so a silent connection is dropped and
re-established; ZeroMQ re-sends the subscriptions. Re-exported by
:mod:`ecsm_actors.registry.client`.

The transport follows the endpoint's scheme: ``unix://`` is the registry's local event
stream (:mod:`~ecsm_actors.registry.stream_events`; ``Config.events_local_endpoint``),
read by :class:`StreamEvents` in the caller's own thread (no I/O thread woken by each
event); ``ipc://`` and ``tcp://`` a SUB socket. The stream is made again, its
subscription sent again, every :data:`RECONNECT_INTERVAL` while the registry is gone (a
registry restarted: the events meanwhile are a gap its reader finds by the event chain,
as on ZeroMQ).
"""

from __future__ import annotations

import logging
import select
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Self, TypeVar

import zmq

from ecsm_actors import protocol
from ecsm_actors.config.settings import RegistrySettings
from ecsm_actors.curve import ClientKeys
from ecsm_actors.errors import BadRequest
from ecsm_actors.protocol import FRAME_HEAD_BYTES, Event, EventHead, Heartbeat, frame_size
from ecsm_actors.registry.sockets import LinkOptions, prepare

logger = logging.getLogger(__name__)

_Decoded = TypeVar("_Decoded")

#: Seconds between two attempts to connect to a stream endpoint (ZeroMQ's default).
RECONNECT_INTERVAL = 0.1
#: Bytes one read of the stream takes at most.
RECV_BYTES = 256 << 10
#: The mark a subscription names when the subscriber has none of its own (``hwm`` 0:
#: ``registry.pub_hwm`` 0, ZeroMQ's "no limit"): the registry's bounds hold alone.
NO_MARK = 1 << 31
#: ``registry.max_frame_bytes`` when the subscriber is not told the registry's.
MAX_FRAME = int(RegistrySettings.max_frame_bytes)


class StreamEvents:
    """The events of a ``unix://`` event stream endpoint matching ``topics`` (prefixes, as
    a SUB socket's subscriptions), read as they come: connected at once and again whenever
    the connection ends (see module docstring). ``hwm``: the most events the registry may
    queue for it before it drops some (0 or less: no mark of its own, as ZeroMQ's
    ``RCVHWM`` 0 — the registry's bounds alone); ``max_frame``: the registry's
    ``registry.max_frame_bytes`` — a frame announcing more than
    :func:`~ecsm_actors.protocol.stream_frame_limit` of it is not read (its connection is
    dropped, one warning, and made again: the event lost is a gap, as any). Never raises
    OSError."""

    def __init__(self, endpoint: str, topics: list[bytes], hwm: int, *,
                 max_frame: int = MAX_FRAME) -> None:
        if not endpoint.startswith(protocol.STREAM_SCHEME):
            raise ValueError(f"not a stream endpoint: {endpoint}")
        self.endpoint = endpoint
        self.path = endpoint[len(protocol.STREAM_SCHEME):]
        #: The longest frame read.
        self.limit = protocol.stream_frame_limit(max_frame)
        subscription = protocol.encode_subscription(topics, hwm if hwm > 0 else NO_MARK)
        self._subscription = protocol.frame_head(len(subscription)) + subscription
        self.sock: socket.socket | None = None
        self._fds = select.poll()
        self._buf = bytearray()
        #: Messages read and not yet taken, in order.
        self._ready: deque[list[bytes]] = deque()
        self._retry_at = 0.0
        self._connect()

    def _connect(self) -> bool:
        """Connect and subscribe (the subscription waits in the socket's buffer for the
        registry's loop to accept it); False when the registry is not there (or the
        process is out of descriptors: tried again as well)."""
        self._retry_at = time.monotonic() + RECONNECT_INTERVAL
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        except OSError:
            return False
        try:
            sock.connect(self.path)
            sock.send(self._subscription)  # a fresh socket's buffer: it all fits
        except OSError:
            sock.close()
            return False
        self.sock = sock
        self._fds = select.poll()
        self._fds.register(sock.fileno(), select.POLLIN)
        self._buf = bytearray()
        return True

    def _drop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._buf = bytearray()

    def next(self, deadline: float | None) -> list[bytes] | None:
        """The next message's frames ``[topic, body]``, or None once ``deadline``
        (monotonic; None: no end) passed waiting (what the socket holds is still read
        once: a deadline of now takes a message already come, as a SUB socket's)."""
        ready, polled = self._ready, False
        while not ready:
            now = time.monotonic()
            if deadline is not None and now >= deadline and (polled or self.sock is None):
                return None
            if self.sock is None:
                if now < self._retry_at or not self._connect():
                    end = self._retry_at if deadline is None else min(deadline,
                                                                      self._retry_at)
                    time.sleep(max(0.0, end - time.monotonic()))
                continue
            wait = -1 if deadline is None else max(0, int((deadline - now) * 1000) + 1)
            polled = True
            if self._fds.poll(wait):
                self._read()
        return ready.popleft()

    def _read(self) -> None:
        """What the socket has, split into messages (a message's rest waits for the next
        read); the connection dropped at its end or at a frame that breaks the framing."""
        sock = self.sock
        assert sock is not None
        try:
            data = sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop()
            return
        buf = self._buf
        if buf:
            buf += data
            data = buf
        size, start, end = len(data), 0, 0
        ready, limit = self._ready, self.limit
        try:
            while size - start >= FRAME_HEAD_BYTES:
                length = frame_size(data, start)[0]
                if length > limit:
                    raise BadRequest(f"a frame of {length} bytes announced (the most "
                                     f"read is {limit})")
                end = start + FRAME_HEAD_BYTES + length
                if end > size:
                    break
                if end > start + FRAME_HEAD_BYTES:  # the greeting is empty
                    with memoryview(data) as view:
                        ready.append(protocol.split_event(view[start + FRAME_HEAD_BYTES:end]))
                start = end
        except BadRequest as e:
            logger.warning("dropping the connection to %s: %s", self.endpoint, e)
            self._drop()
            return
        if data is buf:  # a frame's rest came: the buffer kept, not copied at each read
            del buf[:start]
        else:
            self._buf = bytearray(data[start:]) if start < size else bytearray()

    def close(self) -> None:
        self._drop()


class _Subscription:
    """The SUB socket of events of the given kinds (all kinds when empty) and every
    heartbeat, and the wait for its next message. ``max_frame``: the registry's
    ``registry.max_frame_bytes``, which bounds what a stream subscriber reads."""

    def __init__(self, endpoint: str, *, kinds: Iterable[str] = (), rcvhwm: int = 100_000,
                 context: zmq.Context[Any] | None = None, curve: ClientKeys | None = None,
                 heartbeat_interval: float = 2.0, heartbeat_timeout: float = 8.0,
                 max_frame: int = MAX_FRAME) -> None:
        self.endpoint = endpoint
        kinds = list(kinds)
        self._stream: StreamEvents | None = None
        if endpoint.startswith(protocol.STREAM_SCHEME):
            topics = ([*map(protocol.kind_topic, kinds), protocol.HEARTBEAT_TOPIC]
                      if kinds else [b""])
            self._stream = StreamEvents(endpoint, topics, rcvhwm, max_frame=max_frame)
            self._next = self._stream.next  # type: ignore[method-assign]
            return
        self._socket = (context or zmq.Context.instance()).socket(zmq.SUB)
        prepare(self._socket, endpoint, LinkOptions(curve=curve,
                                                    heartbeat_interval=heartbeat_interval,
                                                    heartbeat_timeout=heartbeat_timeout))
        self._socket.setsockopt(zmq.RCVHWM, rcvhwm)
        if kinds:
            for kind in kinds:
                self._socket.setsockopt(zmq.SUBSCRIBE, protocol.kind_topic(kind))
            self._socket.setsockopt(zmq.SUBSCRIBE, protocol.HEARTBEAT_TOPIC)
        else:
            self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._socket.connect(endpoint)
        self._poller = zmq.Poller()  # made once: Socket.poll makes one per call
        self._poller.register(self._socket, zmq.POLLIN)

    def recv_frames(self, timeout: float | None) -> list[bytes] | None:
        """The next message's frames undecoded (``ecsm-cli get events -w`` reads Event
        records, which are no object events), or None when ``timeout`` seconds pass."""
        return self._next(None if timeout is None else time.monotonic() + timeout)

    def _next(self, deadline: float | None) -> list[bytes] | None:
        """The next message's frames, or None once ``deadline`` passed waiting."""
        wait = -1 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
        if not self._poller.poll(wait):
            return None
        return self._recv_frames()

    def _decoded(self, decode: Callable[[list[bytes]], _Decoded],
                 timeout: float | None) -> _Decoded | None:
        """The next message that ``decode`` accepts, or None when ``timeout`` seconds pass
        first; a malformed one is skipped with a warning."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (frames := self._next(deadline)) is not None:
            try:
                return decode(frames)
            except BadRequest as e:
                logger.warning("skipping a malformed message from %s: %s", self.endpoint, e)
        return None

    def _recv_frames(self) -> list[bytes]:
        """One message; its frames carry their "more" flag (recv_multipart asks the socket
        for it, a Python enum lookup per frame in pyzmq)."""
        frame = self._socket.recv(copy=False)
        frames = [frame.bytes]
        while frame.more:
            frame = self._socket.recv(copy=False)
            frames.append(frame.bytes)
        return frames

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            return
        self._socket.close(linger=0)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Subscriber(_Subscription):
    """Events of the given kinds (all kinds when empty), each with its object, and every
    heartbeat."""

    def recv(self, timeout: float | None) -> Event | Heartbeat | None:
        """The next event or heartbeat, or None when ``timeout`` seconds pass first."""
        return self._decoded(protocol.decode_published, timeout)


class HeadSubscriber(_Subscription):
    """As :class:`Subscriber`, each event without its object
    (:func:`~ecsm_actors.protocol.decode_published_head`): what an informer reads — an
    event's place in the chain, its kind, type and key — at a fraction of the decode and
    none of the object's containers built."""

    def recv(self, timeout: float | None) -> EventHead | Heartbeat | None:
        """The next event head or heartbeat, or None when ``timeout`` seconds pass
        first."""
        return self._decoded(protocol.decode_published_head, timeout)
