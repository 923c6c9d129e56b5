"""The client sockets to the registry: their options, and one REQ socket watched by its monitor.

Runs in every process that talks to the registry, inside
:class:`~ecsm_actors.registry.client.RegistryClient` and
:class:`~ecsm_actors.registry.client.Subscriber`.

:func:`prepare` sets what every client socket needs before ``connect``: fast reconnects,
no linger, and on a remote link (CURVE keys, or any ``tcp://``) the CURVE client keys and
ZMTP heartbeats, so a silent TCP connection (a stalled or dead link) is dropped and
re-established instead of waited on forever. Keys are never logged.

:class:`RequestSocket` is one REQ socket and the socket monitor that tells what happened
to its connection: connected, handshaken (ZMTP/CURVE done: from then on a request can
leave), dropped, or refused at the handshake. :meth:`RequestSocket.exchange` sends one
request and waits for its reply, the connection dropping, or the attempt's time running
out; it never retries (the client does, on a fresh socket). Not thread-safe: the client
uses it under its lock.
"""

from __future__ import annotations

import itertools
import math
import select
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import zmq

if TYPE_CHECKING:  # not imported: the supervisor's probe and event sender use this module
    from ecsm_actors.curve import ClientKeys  # (through stream_socket) without zmq.auth

_EVENTS = (zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
           | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
           | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_MONITOR_STOPPED)
_HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                     | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
_monitor_ids = itertools.count(1)
# Plain ints: pyzmq's enum members cost an enum operation on every use.
_EVENTS_OPTION = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_NOBLOCK = int(zmq.NOBLOCK)
#: pyzmq's own send, without the Python method around it (``zmq.Socket.send``, which only
#: adds the draft sockets' ``routing_id`` and ``group``).
_send = zmq.backend.Socket.send
#: A monitor event's first frame: its 16-bit event, its 32-bit value (as pyzmq's
#: ``parse_monitor_message`` reads it, without importing zmq.asyncio with it).
_MONITOR_EVENT = struct.Struct("=H")
#: How long closing a socket waits for its monitor's last events, seconds.
_CLOSE_DRAIN = 0.05


@dataclass(frozen=True, kw_only=True)
class LinkOptions:
    """Options of a client socket: CURVE keys (None: plain), ZMTP heartbeat period and
    timeout in seconds (used on remote links only)."""

    curve: ClientKeys | None = None
    heartbeat_interval: float = 2.0
    heartbeat_timeout: float = 8.0

    def remote(self, endpoint: str) -> bool:
        return self.curve is not None or endpoint.startswith("tcp://")


def prepare(sock: zmq.Socket[Any], endpoint: str, options: LinkOptions) -> None:
    """Set ``sock``'s options before it connects to ``endpoint`` (see module docstring)."""
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, 10)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
    if options.curve is not None:
        options.curve.apply(sock)
    if options.remote(endpoint) and options.heartbeat_interval > 0:
        sock.setsockopt(zmq.HEARTBEAT_IVL, max(1, int(options.heartbeat_interval * 1000)))
        timeout_ms = max(1, int(options.heartbeat_timeout * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, timeout_ms)
        # The peer drops us after as long a silence (ZMTP PING's TTL, 0.1 s units).
        sock.setsockopt(zmq.HEARTBEAT_TTL, min(timeout_ms, 6_553_500))


@dataclass(kw_only=True)
class Attempt:
    """What one :meth:`RequestSocket.exchange` saw. ``reply``: the answer, if any;
    ``sent_at``: when the request could leave (sent on a handshaken connection, or the
    handshake time), None when it never could; ``lost``: the connection dropped after it
    could leave; ``refused``: a handshake failed (e.g. a key the registry does not know);
    ``timed_out``: no reply within the attempt's own time (not cut by ``until``);
    ``from_earlier``: the reply came on the ``earlier`` socket; ``earlier_lost``: that
    socket's connection dropped (it will not answer)."""

    reply: bytes | None = None
    sent_at: float | None = None
    replied_at: float = 0.0
    lost: bool = False
    refused: str = ""
    #: Ended by its own timeout (not by the caller's ``until``).
    timed_out: bool = False
    from_earlier: bool = False
    earlier_lost: bool = False


class RequestSocket:
    """One REQ socket to the registry and its monitor (see module docstring)."""

    def __init__(self, context: zmq.Context[Any], endpoint: str, options: LinkOptions) -> None:
        self.endpoint = endpoint
        self.socket: zmq.Socket[Any] = context.socket(zmq.REQ)
        monitor: zmq.Socket[Any] | None = None
        try:
            prepare(self.socket, endpoint, options)
            # An address of our own: pyzmq's get_monitor_socket names it after the socket's
            # file descriptor, which the next socket reuses before the closed one's
            # monitor endpoint is gone (EADDRINUSE).
            address = f"inproc://ecsm-registry-monitor.{next(_monitor_ids)}"
            self.socket.monitor(address, _EVENTS)
            monitor = context.socket(zmq.PAIR)
            monitor.setsockopt(zmq.LINGER, 0)
            monitor.connect(address)
            self.socket.connect(endpoint)
        except BaseException:
            self.socket.close(linger=0)
            if monitor is not None:
                monitor.close(linger=0)
            raise
        self._monitor: zmq.Socket[Any] | None = monitor
        self.connected_at: float | None = None
        self.handshaken_at: float | None = None
        #: Handshakes completed on this socket: a request queued before one may have left.
        self.handshakes = 0
        self.refused = ""
        #: When this socket's request could leave (see :class:`Attempt`).
        self.sent_at: float | None = None
        self._lost = False
        #: The monitor's mailbox descriptor, readable once an event (a command) is pending
        #: after :meth:`drain` found none: polled as a plain descriptor, so a wait for a
        #: reply asks libzmq for the monitor's ``EVENTS`` only when something happened
        #: (each ask is a ``poll`` and a ``getpid`` system call; two a request otherwise).
        self._monitor_fd: int = monitor.getsockopt(zmq.FD)
        #: Whether a :meth:`drain` ran to its end: only then does the monitor's descriptor
        #: become readable at its next event (before, libzmq's pipe need not signal).
        self._drained = False
        self._poller = zmq.Poller()
        self._poller.register(self.socket, zmq.POLLIN)
        self._poller.register(self._monitor_fd, zmq.POLLIN)
        #: The same two as plain descriptors (see :meth:`_wait`): the socket's mailbox,
        #: readable once a command (a reply's arrival among them) is pending, the monitor's.
        self._fd: int = self.socket.getsockopt(zmq.FD)
        self._fds = select.poll()
        self._fds.register(self._fd, select.POLLIN)
        self._fds.register(self._monitor_fd, select.POLLIN)
        self._monitor_fds = select.poll()
        self._monitor_fds.register(self._monitor_fd, select.POLLIN)

    @property
    def handshaken(self) -> bool:
        return self.handshaken_at is not None

    def _on_event(self, event: int, now: float) -> None:
        if event == zmq.EVENT_CONNECTED:
            self.connected_at = now
        elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.handshaken_at = now
            self.handshakes += 1
            self.refused = ""
        elif event == zmq.EVENT_DISCONNECTED:
            if self.handshaken_at is not None:
                self._lost = True
            self.connected_at = self.handshaken_at = None
        elif event & _HANDSHAKE_FAILED:
            self.refused = ("authentication failed" if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH
                            else "handshake failed")

    def drain(self) -> bool:
        """Take the monitor's pending events; True when MONITOR_STOPPED was among them."""
        monitor = self._monitor
        now = time.monotonic()
        while monitor is not None and monitor.get(_EVENTS_OPTION) & _POLLIN:
            event = _MONITOR_EVENT.unpack_from(monitor.recv_multipart()[0])[0]
            if event == zmq.EVENT_MONITOR_STOPPED:
                return True
            self._on_event(event, now)
        self._drained = monitor is not None
        return False

    def exchange(self, frame: bytes, *, rto: float, until: float,
                 earlier: RequestSocket | None = None) -> Attempt:
        """Send ``frame`` and wait for its reply. The wait ends early when the connection
        drops after the request could leave, when no reply came ``rto`` seconds after it
        could leave (sent on a handshaken connection, or the handshake time), when no
        connection is made within ``rto``, and in any case at ``until`` (monotonic
        time). A connection in its handshake is waited on until ``until``: a CURVE
        handshake takes about five round trips (6 s on a 1 s link) and a fresh socket
        would only start it again; libzmq itself drops a handshake stuck for
        ZMQ_HANDSHAKE_IVL (30 s) and reconnects.

        ``earlier``: the socket of a previous attempt of the same request, still waiting
        on a live connection (a stalled link delivers its reply when it comes back, long
        before a new connection is handshaken): its reply is taken as well.

        Raises zmq.ZMQError from the socket (the client wraps it)."""
        if not self._drained or self._monitor_fds.poll(0):
            self.drain()
        self._lost = False
        attempt = Attempt()
        now = time.monotonic()
        try:
            _send(self.socket, frame, _NOBLOCK)
        except zmq.Again:
            return attempt  # no pipe to the registry: nothing left
        queued_at = now
        if self.handshaken_at is not None:
            attempt.sent_at = self.sent_at = now
        if earlier is None:
            return self._wait(attempt, queued_at, rto, until)
        poller = self._poller_with(earlier)
        while True:
            timeout = self._timeout(attempt, queued_at, rto, until, now)
            if timeout is None:
                return attempt
            ready = dict(poller.poll(timeout))
            now = time.monotonic()
            if earlier is not None:
                if earlier.socket in ready:
                    try:
                        attempt.reply = earlier.socket.recv(_NOBLOCK)
                    except zmq.Again:
                        continue
                    attempt.replied_at, attempt.from_earlier = now, True
                    attempt.sent_at = earlier.sent_at
                    return attempt
                if earlier._monitor_fd in ready:
                    earlier.drain()
                    if earlier._lost:
                        attempt.earlier_lost = True
                        earlier, poller = None, self._poller
            if self.socket in ready:
                try:
                    attempt.reply = self.socket.recv(_NOBLOCK)
                except zmq.Again:
                    continue
                return self._replied(attempt, queued_at, now)
            if self._monitor_fd in ready:
                self.drain()
                if self._lost and attempt.sent_at is not None:
                    attempt.lost = True
                    return attempt

    def _timeout(self, attempt: Attempt, queued_at: float, rto: float, until: float,
                 now: float) -> int | None:
        """The next poll's timeout in ms, or None when the attempt's wait is over (then
        ``refused`` and ``timed_out`` say how). It ends ``rto`` after the request went
        out (its send time taken from the handshake once that is known), at ``until``
        while connected without a handshake (a slow CURVE handshake), ``rto`` after it
        was queued before any connection, and at ``until`` in any case."""
        if attempt.sent_at is None and self.handshaken_at is not None:
            attempt.sent_at = self.sent_at = max(self.handshaken_at, queued_at)
        if attempt.sent_at is not None:
            limit = attempt.sent_at + rto
        elif self.connected_at is not None:
            limit = math.inf
        else:
            limit = queued_at + rto
        if now >= min(limit, until):
            attempt.refused = self.refused
            attempt.timed_out = limit < until
            return None
        return max(1, int((min(limit, until) - now) * 1000) + 1)

    def _wait(self, attempt: Attempt, queued_at: float, rto: float, until: float) -> Attempt:
        """:meth:`exchange`'s wait for its reply on this socket alone, as its loop with
        ``earlier`` waits, with fewer system calls: libzmq's ``zmq_poll`` polls once
        without waiting, asks for the socket's ``EVENTS`` (two more) before and after it
        waits, and pyzmq's poller is Python around it. Here ``EVENTS`` is asked once after
        the send (which also makes the socket's descriptor signal the reply: libzmq
        signals a pipe's reader only once it found the pipe empty) and one ``poll`` waits
        on both descriptors; once the socket's is readable, the receive itself takes the
        pending commands (a wake-up that brought no reply raises ``zmq.Again`` and leaves
        the descriptor armed again), and a readable monitor is drained."""
        sock = self.socket
        if sock.get(_EVENTS_OPTION) & _POLLIN:
            attempt.reply = sock.recv(_NOBLOCK)
            return self._replied(attempt, queued_at, time.monotonic())
        wait, fd, monitor_fd = self._fds.poll, self._fd, self._monitor_fd
        now = time.monotonic()
        while True:
            timeout = self._timeout(attempt, queued_at, rto, until, now)
            if timeout is None:
                return attempt
            ready = wait(timeout)
            now = time.monotonic()
            socket_ready = monitor_ready = False
            for ready_fd, _ in ready:
                if ready_fd == fd:
                    socket_ready = True
                elif ready_fd == monitor_fd:
                    monitor_ready = True
            if socket_ready:
                try:
                    attempt.reply = sock.recv(_NOBLOCK)
                except zmq.Again:
                    pass
                else:
                    return self._replied(attempt, queued_at, now)
            if monitor_ready:
                self.drain()
                if self._lost and attempt.sent_at is not None:
                    attempt.lost = True
                    return attempt

    def _replied(self, attempt: Attempt, queued_at: float, now: float) -> Attempt:
        attempt.replied_at = now
        if attempt.sent_at is None:  # its handshake event not read yet
            self.drain()
            attempt.sent_at = max(self.handshaken_at or queued_at, queued_at)
            self.sent_at = attempt.sent_at
        return attempt

    def _poller_with(self, earlier: RequestSocket) -> zmq.Poller:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(earlier.socket, zmq.POLLIN)
        for owner in (self, earlier):
            if owner._monitor is not None:
                poller.register(owner._monitor_fd, zmq.POLLIN)
        return poller

    def close(self) -> int:
        """Close the socket, then read its monitor to the end (MONITOR_STOPPED, or a short
        wait): a handshake that completed at the last moment is still counted. Returns
        :attr:`handshakes`."""
        self.socket.close(linger=0)
        monitor = self._monitor
        if monitor is None:
            return self.handshakes
        end = time.monotonic() + _CLOSE_DRAIN
        try:
            stopped = self.drain()
            while not stopped and monitor.poll(max(0, int((end - time.monotonic()) * 1000))):
                stopped = self.drain()
        finally:
            self._monitor = None
            monitor.close(linger=0)
        return self.handshakes
