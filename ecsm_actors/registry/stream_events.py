"""The registry's local event endpoint (``unix://PATH``): events and heartbeats to the
subscribers of this computer, on AF_UNIX stream connections instead of the PUB socket.

Runs in the registry process, in its loop's thread (no thread of its own), beside the PUB
socket, which keeps serving ZeroMQ subscribers (remote CURVE ones on their own socket).
An event goes from the loop straight to each subscriber's socket: one thread woken on
each side, where ZeroMQ's PUB and SUB wake their I/O threads too.

A connection begins with the registry's greeting (an empty frame); the subscriber sends
its subscription (:func:`~ecsm_actors.protocol.encode_subscription`: topic prefixes as a
SUB socket's, and its high-water mark), then only reads: each published message whose
topic begins with one of its prefixes comes as one frame
(:func:`~ecsm_actors.protocol.frame_event`), in the order published — so, as on the PUB
socket, after its durable commit, in ``seq`` order.

The same semantics as PUB, and bounds against a peer (local, but buggy or hostile);
nothing a peer does raises out of here:

* a subscriber that does not read loses events beyond its bound: once the events queued
  for it (beyond what its socket's buffer took) number its high-water mark — the least of
  its own and :class:`~ecsm_actors.registry.server.PeerQueues`' ``events`` — or hold
  ``registry.peer_queue_bytes``, each further event is dropped WHOLE (a frame begun is
  always finished), counted; the subscriber finds the gap by the event chain and replays,
  as it does on ZeroMQ;
* a subscription longer than :data:`~ecsm_actors.protocol.MAX_SUBSCRIPTION_BYTES`, one
  that does not decode, any byte after it, or none within :data:`SUBSCRIBE_WITHIN`
  seconds: the connection is closed, one log line (rate-limited);
* at most :data:`~ecsm_actors.registry.stream.MAX_CONNECTIONS` connections, and
  :data:`~ecsm_actors.registry.stream.MAX_CONNECTIONS_PER_PROCESS` from one process: one
  more is closed at once, logged (:class:`~ecsm_actors.registry.stream.Admission`, as on
  the request stream).
"""

from __future__ import annotations

import collections
import logging
import select
import socket
import time

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest
from ecsm_actors.failures import FailureLog
from ecsm_actors.registry.stream import Listener, register, write_queued

logger = logging.getLogger(__name__)

#: Seconds a connection may take to send its subscription (checked at each heartbeat).
SUBSCRIBE_WITHIN = 10.0
#: A subscriber's socket buffer is held to its high-water mark times this when that is
#: below the kernel's default (a mark of a few events: about that many in flight).
SOCKET_BYTES_PER_EVENT = 4096

_IN, _OUT = select.POLLIN, select.POLLOUT
_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL


class EventConnection:
    """One subscriber: its subscription, and the event bytes it has not read yet."""

    __slots__ = ("accepted", "endpoint", "fd", "hwm", "open", "out", "queued", "reader",
                 "sock", "topics", "waiting")

    def __init__(self, endpoint: StreamEventEndpoint, sock: socket.socket) -> None:
        self.endpoint = endpoint
        self.sock = sock
        self.fd = sock.fileno()
        self.accepted = time.monotonic()
        #: Its subscription's reader, until it came (then None).
        self.reader: protocol.FrameReader | None = protocol.FrameReader(
            protocol.MAX_SUBSCRIPTION_BYTES)
        self.topics: tuple[bytes, ...] = ()
        self.hwm = 0
        #: Event frames (or the rest of one begun) not written yet, their bytes; and
        #: whether the poller waits for room in its socket.
        self.out: collections.deque[bytes | memoryview] = collections.deque()
        self.queued = 0
        self.waiting = False
        self.open = True

    def send(self, frame: bytes) -> None:
        """Write one event frame, or queue it behind those not written yet; beyond the
        bound, drop it whole."""
        out = self.out
        if out:
            endpoint = self.endpoint
            if len(out) >= self.hwm or self.queued + len(frame) > endpoint.queue_bytes:
                endpoint.dropped += 1
                return
            out.append(frame)
            self.queued += len(frame)
            return
        try:
            sent = self.sock.send(frame)
        except BlockingIOError:
            sent = 0
        except OSError as e:
            self.endpoint.close(self, f"event not sent: {e}")
            return
        if sent < len(frame):  # the rest of a frame begun: always written, never dropped
            out.append(memoryview(frame)[sent:])
            self.queued += len(frame) - sent
            self.endpoint.update(self)

    def flush(self) -> None:
        """Write what is queued, as far as the subscriber's socket takes it."""
        out = self.out
        try:
            self.queued -= write_queued(self.sock, out)
        except OSError as e:
            self.endpoint.close(self, f"events not sent: {e}")
            return
        if not out:
            self.endpoint.update(self)

    def read(self) -> None:
        """Its subscription; anything else (or after it) closes the connection."""
        endpoint = self.endpoint
        try:
            data = self.sock.recv(protocol.MAX_SUBSCRIPTION_BYTES)
        except BlockingIOError:
            return
        except OSError as e:
            endpoint.close(self, f"subscriber lost: {e}")
            return
        if not data:
            endpoint.close(self, "")
            return
        reader = self.reader
        try:
            if reader is None:
                raise BadRequest(f"{len(data)} bytes from a subscriber after its "
                                 "subscription")
            reader.feed(data)
            frame = reader.next()
            if frame is None:
                return
            if reader.buffered:
                raise BadRequest("bytes from a subscriber after its subscription")
            self.topics, hwm = protocol.decode_subscription(frame)
        except BadRequest as e:
            endpoint.failures.record("streamCut", "stream subscriber closed", e)
            endpoint.close(self, "")
            return
        self.hwm = min(hwm, endpoint.hwm)
        self.reader = None
        # A small mark holds the socket's own buffer to about as many events too (ZeroMQ's
        # subscriber queues that many, its kernel's buffer emptied by its I/O thread).
        room = self.hwm * SOCKET_BYTES_PER_EVENT
        try:
            if room < self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, room)
        except OSError:  # gone: found at the next send
            pass
        endpoint.subscribed.append(self)

    @property
    def mask(self) -> int:
        return _IN | (_OUT if self.out else 0)


class StreamEventEndpoint(Listener[EventConnection]):
    """The listener and its subscribers (see module docstring). ``hwm``: the most events
    queued per subscriber (PeerQueues' events); ``queue_bytes``: peer_queue_bytes."""

    what = "stream subscriber"
    log = logger

    def __init__(self, endpoint: str, *, hwm: int, queue_bytes: int,
                 failures: FailureLog) -> None:
        super().__init__(endpoint, failures)
        self.hwm = hwm
        self.queue_bytes = queue_bytes
        #: The connections whose subscription came, in the order it came.
        self.subscribed: list[EventConnection] = []
        #: Events dropped whole for subscribers that did not read.
        self.dropped = 0

    def _connection(self, sock: socket.socket) -> EventConnection:
        return EventConnection(self, sock)

    def _forget(self, conn: EventConnection) -> None:
        if conn.reader is None:  # a new list: a publish going through the old goes on
            self.subscribed = [c for c in self.subscribed if c is not conn]

    def update(self, conn: EventConnection) -> None:
        """Wait for room in ``conn``'s socket while events are queued for it."""
        waiting = bool(conn.out)
        if waiting != conn.waiting:
            conn.waiting = waiting
            for poller in self._pollers:
                register(poller, conn.fd, conn.mask)

    # -- events -----------------------------------------------------------------------

    def publish(self, topic: bytes, body: bytes) -> None:
        """Send ``[topic, body]`` to every subscriber whose prefixes match it."""
        frame = None
        for conn in self.subscribed:
            if topic.startswith(conn.topics):
                if frame is None:
                    frame = protocol.frame_event(topic, body)
                conn.send(frame)

    def on_event(self, fd: int, events: int) -> None:
        """Serve what the poller saw on ``fd`` (``select.poll``'s bits)."""
        if fd == self.fd:
            self._accept()
            return
        conn = self.connections.get(fd)
        if conn is None:
            return
        if events & _OUT:
            conn.flush()
        if conn.open and events & (_IN | _GONE):
            conn.read()

    def heartbeat(self) -> None:
        """Once a heartbeat: accept again after running out of descriptors; close the
        connections that did not subscribe in time."""
        super().heartbeat()
        late = time.monotonic() - SUBSCRIBE_WITHIN
        for conn in [c for c in self.connections.values()
                     if c.reader is not None and c.accepted < late]:
            self.failures.record("streamCut", "stream subscriber closed", BadRequest(
                f"no subscription within {SUBSCRIBE_WITHIN:.0f} s"))
            self.close(conn, "")
