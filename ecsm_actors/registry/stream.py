"""The registry's local stream endpoint (``unix://PATH``): its listener and connections.

Runs in the registry process, in its loop's thread (no thread of its own). A message is a
request or reply document as on the ROUTER, preceded by its 4-byte big-endian length
(:func:`~ecsm_actors.protocol.frame_head`), on an AF_UNIX stream socket: a round trip
wakes two threads, where ZeroMQ's wakes four (each side's own and its I/O thread).

The loop waits on the listener's and every connection's descriptor beside its sockets, in
its one ``poll`` (:meth:`StreamEndpoint.watch` keeps each poller's registrations in step);
:meth:`StreamEndpoint.on_event` accepts, reads and writes, never blocking. A turn of the
loop takes the complete frames of every connection that has some, one from each in turn
(:meth:`StreamEndpoint.serving`, :meth:`StreamEndpoint.take`), and each reply goes back on
its own connection, in order (:meth:`StreamConnection.send`): written at once, or what the
peer has not read yet queued and written as it reads.

Bounds against a peer (local, but buggy or hostile); nothing a peer sends raises out of
here:

* a frame longer than ``registry.max_frame_bytes`` is read and answered BadRequest by the
  request path; one announced longer than
  :func:`~ecsm_actors.protocol.stream_frame_limit` (what ZeroMQ's MAXMSGSIZE allows on the
  ROUTER) closes the connection, one log line (rate-limited);
* a connection's input buffer holds at most one frame and one read
  (:data:`RECV_BYTES`): it is not read while it holds a complete frame, and a frame's
  bytes are held only as they come (a slow peer's half frame costs what it sent);
* replies the peer has not read: once they hold ``registry.peer_queue_bytes``, no more
  of its requests are taken, nor read (its socket's buffer fills and its sends block),
  until it reads. Every request taken is answered and none is dropped: a stream cannot
  lose a frame in its middle, and a client that reads late still gets its answers in
  order (ZeroMQ drops replies beyond its high-water mark instead; a REQ client has one
  request outstanding). The queue can exceed the bound by one turn's replies;
* each connection begins with the registry's :data:`GREETING`;
* at most :data:`MAX_CONNECTIONS` connections, and :data:`MAX_CONNECTIONS_PER_PROCESS`
  from one process (its pid, ``SO_PEERCRED``): one more is closed at once, logged
  (:class:`Admission`, which the event stream endpoint shares);
* a peer gone (end of stream, reset) loses its queued replies and the requests not yet
  taken, nothing else.

:class:`Listener` holds what this endpoint and the event stream endpoint
(:mod:`~ecsm_actors.registry.stream_events`) do alike: the listening socket, the pollers,
accepting, closing.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import zmq

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest, Internal, Unavailable
from ecsm_actors.failures import FailureLog

logger = logging.getLogger(__name__)

#: Connections served at once; one more is closed as soon as it is accepted.
MAX_CONNECTIONS = 256
#: Connections one process (the pid the kernel gives for its end, ``SO_PEERCRED``) may
#: hold at once; one more from it is closed as soon as it is accepted. Without it, one
#: local process holding MAX_CONNECTIONS (half frames suffice) had every other process's
#: connection closed at once, their clients retrying to their deadline. A process holds
#: one a client: a controller one a reconcile worker (``controller.workers``, 2 by
#: default) and its recorder's and informer's; 64 leaves room for 60 workers, and takes a
#: quarter of MAX_CONNECTIONS.
MAX_CONNECTIONS_PER_PROCESS = 64
#: Bytes one read of a connection takes at most.
RECV_BYTES = 256 << 10
#: Connections accepted at most per wake-up of the listener (the rest at the next).
ACCEPT_PER_WAKE = 64
#: What the registry sends first on each connection it accepts: an empty frame (its head
#: alone). A client sends its first request only once it came, as a ZeroMQ client only
#: once its handshake is done: a request is never written on a connection no live loop
#: accepted (a registry stopped or hung holds it in its listener's queue, and would serve
#: it once resumed, after the client gave up on it and said it was not applied).
GREETING = protocol.frame_head(0)
#: A reply at least this large is sent as two buffers (head, reply), not copied after
#: its head.
GATHER_BYTES = 64 << 10

_IN, _OUT = select.POLLIN, select.POLLOUT
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL
_ZMQ_IN, _ZMQ_OUT, _ZMQ_ERR = int(zmq.POLLIN), int(zmq.POLLOUT), int(zmq.POLLERR)

Poller = Any  # select.poll or zmq.Poller


def stream_path(endpoint: str) -> Path:
    """The socket file of a ``unix://PATH`` endpoint."""
    if not endpoint.startswith(protocol.STREAM_SCHEME):
        raise Internal(f"not a stream endpoint: {endpoint}")
    return Path(endpoint[len(protocol.STREAM_SCHEME):])


def from_zmq(events: int) -> int:
    """A ``zmq.Poller`` result for a plain descriptor, in ``select.poll``'s bits."""
    return ((_IN if events & _ZMQ_IN else 0) | (_OUT if events & _ZMQ_OUT else 0)
            | (select.POLLERR if events & _ZMQ_ERR else 0))


def register(poller: Poller, fd: int, mask: int) -> None:
    """Wait in ``poller`` for ``mask`` (``select.poll``'s bits) on ``fd``; 0 waits for
    nothing (a ``zmq.Poller`` then forgets it)."""
    if isinstance(poller, zmq.Poller):  # 0 unregisters
        poller.register(fd, (_ZMQ_IN if mask & _IN else 0) | (_ZMQ_OUT if mask & _OUT else 0))
    else:
        poller.register(fd, mask)


def write_queued(sock: socket.socket, out: collections.deque[Any]) -> int:
    """Write ``out``'s buffers in order, as far as ``sock`` takes them (removing those
    written whole; a buffer written in part keeps its rest first: a bytearray's start moved
    in place, no copy); returns the bytes written. Raises ``OSError`` (not a full socket's
    ``BlockingIOError``)."""
    written = 0
    try:
        while out:
            view = out[0]
            sent = sock.send(view)
            written += sent
            if sent < len(view):
                if isinstance(view, bytearray):
                    del view[:sent]  # its start moves: no copy
                else:
                    out[0] = memoryview(view)[sent:]
                break
            out.popleft()
    except BlockingIOError:
        pass
    return written


def listen(endpoint: str) -> socket.socket:
    """A listening socket on ``endpoint``'s file, as the ROUTER's ipc file is bound
    (``server.bind``): its directory created 0700, a stale file removed (we hold the
    store's lock: no other registry of this store is alive), the file created 0600 under
    a umask of 0177. Non-blocking."""
    path = stream_path(endpoint)
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    if path.exists() or path.is_symlink():
        logger.info("removing stale socket %s", path)
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o177)
    try:
        sock.bind(str(path))
        sock.listen(socket.SOMAXCONN)
    except OSError as e:
        sock.close()
        raise Internal(f"cannot bind {endpoint}: {e}") from e
    finally:
        os.umask(umask)
    sock.setblocking(False)
    return sock


def peer_pid(sock: socket.socket) -> int:
    """The pid of the process at the other end of ``sock`` (as of its connect,
    ``SO_PEERCRED``); 0 when the kernel does not say."""
    try:
        return int(_UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                 _UCRED.size))[0])
    except (OSError, struct.error):
        return 0


class Admission:
    """Which accepted connections an endpoint serves: at most :data:`MAX_CONNECTIONS` in
    all, :data:`MAX_CONNECTIONS_PER_PROCESS` from one process (its pid read once, at
    accept); any other is closed at once and counted (``streamRefused``), one line
    logged (rate-limited) naming the process when its own cap refused it. ``what`` names
    a connection in it ("stream connection", "stream subscriber")."""

    def __init__(self, endpoint: str, what: str, failures: FailureLog, *,
                 pid_of: Callable[[socket.socket], int] = peer_pid) -> None:
        self.endpoint = endpoint
        self.what = what
        self.failures = failures
        self._pid_of = pid_of
        #: The pid of each connection served, by its descriptor; connections by pid.
        self._pids: dict[int, int] = {}
        self._held: dict[int, int] = {}

    def admit(self, sock: socket.socket) -> bool:
        """Whether ``sock`` (just accepted) is served: then counted until
        :meth:`release`; else closed and logged."""
        if len(self._pids) >= MAX_CONNECTIONS:
            why = f"{MAX_CONNECTIONS} {self.what}s are open on {self.endpoint} (the most)"
        else:
            pid = self._pid_of(sock)
            held = self._held.get(pid, 0)
            if held < MAX_CONNECTIONS_PER_PROCESS:
                self._pids[sock.fileno()] = pid
                self._held[pid] = held + 1
                return True
            why = (f"process {pid} holds {held} {self.what}s on {self.endpoint} (the most "
                   "one process may)")
        sock.close()
        self.failures.record("streamRefused", f"{self.what} refused",
                             Unavailable(why))
        return False

    def release(self, fd: int) -> None:
        """The connection on ``fd`` (admitted) is closed: no longer counted."""
        pid = self._pids.pop(fd, None)
        if pid is not None:
            held = self._held[pid] - 1
            if held:
                self._held[pid] = held
            else:
                del self._held[pid]


class Served(Protocol):
    """What :class:`Listener` needs of a connection."""

    fd: int
    open: bool
    queued: int
    sock: socket.socket
    out: collections.deque[Any]

    @property
    def mask(self) -> int:
        """The events the connection waits for."""
        ...


ConnT = TypeVar("ConnT", bound=Served)


class Listener(Generic[ConnT]):
    """What both stream endpoints do alike: the listening socket, the pollers kept in
    step, the accept loop (:data:`ACCEPT_PER_WAKE` a wake-up, :class:`Admission`, the
    :data:`GREETING`; out of descriptors: not accepting until a close or the next
    heartbeat), closing a connection, and shutting down. An endpoint gives the connection
    made of an accepted socket (:meth:`_connection`), what else a close forgets
    (:meth:`_forget`), its logger and its name for a connection (``what``)."""

    #: A connection's name in log lines and failures ("stream connection").
    what = "stream connection"
    log = logger

    def __init__(self, endpoint: str, failures: FailureLog) -> None:
        self.endpoint = endpoint
        self.listener = listen(endpoint)
        self.fd = self.listener.fileno()
        self.failures = failures
        self.admission = Admission(endpoint, self.what, failures)
        self.connections: dict[int, ConnT] = {}
        self._pollers: list[Poller] = []
        self._accepting = True

    def _connection(self, sock: socket.socket) -> ConnT:
        """The connection served on ``sock`` (accepted, admitted, greeted)."""
        raise NotImplementedError

    def _forget(self, conn: ConnT) -> None:
        """What else :meth:`close` forgets of ``conn`` (its lists)."""

    # -- the pollers ------------------------------------------------------------------

    def owns(self, fd: int) -> bool:
        return fd == self.fd or fd in self.connections

    def watch(self, poller: Poller, *, replacing: Poller | None = None) -> None:
        """Register the listener and every connection in ``poller`` (a ``select.poll`` or
        a ``zmq.Poller``), and keep it in step from now on (``replacing`` no longer)."""
        if replacing is not None and replacing in self._pollers:
            self._pollers.remove(replacing)
        self._pollers.append(poller)
        register(poller, self.fd, _IN if self._accepting else 0)
        for conn in self.connections.values():
            register(poller, conn.fd, conn.mask)

    def _unregister(self, fd: int) -> None:
        for poller in self._pollers:
            try:
                poller.unregister(fd)
            except KeyError:
                pass

    # -- accepting ----------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(ACCEPT_PER_WAKE):
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as e:  # out of descriptors: try again after the next close
                self.failures.record("streamRefused", f"cannot accept a {self.what}",
                                     Unavailable(f"cannot accept a {self.what}: {e}"))
                self._set_accepting(False)
                return
            if not self.admission.admit(sock):
                continue
            sock.setblocking(False)
            try:
                sock.send(GREETING)  # a fresh socket's buffer: it all fits
            except OSError:  # gone already
                self.admission.release(sock.fileno())
                sock.close()
                continue
            conn = self._connection(sock)
            self.connections[conn.fd] = conn
            mask = conn.mask
            for poller in self._pollers:
                register(poller, conn.fd, mask)

    def _set_accepting(self, accepting: bool) -> None:
        if accepting != self._accepting:
            self._accepting = accepting
            for poller in self._pollers:
                register(poller, self.fd, _IN if accepting else 0)

    def heartbeat(self) -> None:
        """Once a heartbeat: accept again after running out of descriptors."""
        self._set_accepting(True)

    # -- closing ------------------------------------------------------------------------

    def close(self, conn: ConnT, why: str) -> None:
        """Close ``conn``: what it sent and was not taken, and what is queued for it, go."""
        if not conn.open:
            return
        conn.open = False
        if why:
            self.log.debug("%s closed: %s", self.what, why)
        self._unregister(conn.fd)
        self.connections.pop(conn.fd, None)
        self._forget(conn)
        conn.out.clear()
        conn.queued = 0
        self.admission.release(conn.fd)
        conn.sock.close()
        self._set_accepting(True)

    def shut(self) -> None:
        """Close every connection and the listener, and remove the socket file."""
        for conn in list(self.connections.values()):
            self.close(conn, "")
        self._unregister(self.fd)
        self.listener.close()
        try:
            stream_path(self.endpoint).unlink()
        except OSError:
            pass


class StreamConnection:
    """One peer's connection: its input frames (:class:`~ecsm_actors.protocol.FrameReader`)
    and the reply bytes it has not read yet."""

    __slots__ = ("blocked", "endpoint", "fd", "open", "out", "pending", "queued", "reader",
                 "sock")

    def __init__(self, endpoint: StreamEndpoint, sock: socket.socket, limit: int) -> None:
        self.endpoint = endpoint
        self.sock = sock
        self.fd = sock.fileno()
        self.reader = protocol.FrameReader(limit)
        #: Reply bytes not written yet, in order, and their sum: a large reply's own
        #: bytes, smaller ones copied together into one buffer (a queue of many small
        #: replies holds their bytes, not two objects each: the bound is memory).
        self.out: collections.deque[memoryview | bytearray] = collections.deque()
        self.queued = 0
        self.open = True
        #: Listed in the endpoint's pending connections (a complete frame buffered).
        self.pending = False
        #: Its unread replies hold peer_queue_bytes: neither read nor taken from.
        self.blocked = False

    def send(self, reply: bytes) -> None:
        """Send one reply (its head first); what the peer's socket does not take now is
        queued and written as the peer reads. A peer gone loses it."""
        if not self.open:
            return
        head = protocol.frame_head(len(reply))
        if self.out:  # behind what is queued: in order
            self._queue(memoryview(head), memoryview(reply))
            return
        try:
            if len(reply) < GATHER_BYTES:
                data = head + reply
                sent = self.sock.send(data)
                if sent < len(data):
                    self._queue(memoryview(data)[sent:])
                return
            sent = self.sock.sendmsg((head, reply))
        except BlockingIOError:
            sent = 0
        except OSError as e:
            self.endpoint.close(self, f"reply not sent: {e}")
            return
        if sent < len(head):
            self._queue(memoryview(head)[sent:], memoryview(reply))
        elif sent < len(head) + len(reply):
            self._queue(memoryview(reply)[sent - len(head):])

    def _queue(self, *views: memoryview) -> None:
        out = self.out
        was_empty = not out
        for view in views:
            last = out[-1] if out else None
            if len(view) >= GATHER_BYTES:
                out.append(view)
            elif isinstance(last, bytearray):
                last += view  # in place
            else:
                out.append(bytearray(view))
            self.queued += len(view)
        endpoint = self.endpoint
        if self.queued > endpoint.queue_bytes and not self.blocked:
            self.blocked = True
        if was_empty or self.blocked:
            endpoint.update(self)

    def flush(self) -> None:
        """Write what is queued, as far as the peer's socket takes it."""
        out = self.out
        try:
            self.queued -= write_queued(self.sock, out)
        except OSError as e:
            self.endpoint.close(self, f"replies not sent: {e}")
            return
        endpoint = self.endpoint
        if self.blocked and self.queued <= endpoint.queue_bytes:
            self.blocked = False
            if self.reader.ready():
                endpoint.mark_pending(self)
        if not out or not self.blocked:
            endpoint.update(self)

    def read(self) -> None:
        """One read of what the peer sent (not while a complete frame is buffered: the
        turn takes it first)."""
        if self.pending:
            return
        endpoint = self.endpoint
        try:
            n = self.sock.recv_into(endpoint.scratch)
        except BlockingIOError:
            return
        except OSError as e:
            endpoint.close(self, f"connection lost: {e}")
            return
        if not n:
            endpoint.close(self, "")
            return
        reader = self.reader
        reader.feed(endpoint.scratch_view[:n])
        if reader.ready():
            endpoint.mark_pending(self)

    @property
    def mask(self) -> int:
        """The events this connection waits for."""
        return (0 if self.blocked else _IN) | (_OUT if self.out else 0)


class StreamEndpoint(Listener[StreamConnection]):
    """The listener and its connections (see module docstring)."""

    def __init__(self, endpoint: str, *, max_frame: int, queue_bytes: int,
                 failures: FailureLog) -> None:
        super().__init__(endpoint, failures)
        self.limit = protocol.stream_frame_limit(max_frame)
        self.queue_bytes = queue_bytes
        #: Connections with a complete frame (or a head beyond the limit) buffered.
        self.pending: list[StreamConnection] = []
        #: Where every read lands first (one buffer, no allocation a read).
        self.scratch = bytearray(RECV_BYTES)
        self.scratch_view = memoryview(self.scratch)

    def _connection(self, sock: socket.socket) -> StreamConnection:
        return StreamConnection(self, sock, self.limit)

    def _forget(self, conn: StreamConnection) -> None:
        if conn.pending:
            conn.pending = False
            self.pending.remove(conn)

    def update(self, conn: StreamConnection) -> None:
        """Wait for what ``conn`` now needs (reading unless blocked; writing while
        replies are queued)."""
        mask = conn.mask
        for poller in self._pollers:
            register(poller, conn.fd, mask)

    # -- events -----------------------------------------------------------------------

    @property
    def has_frames(self) -> bool:
        """Whether a connection has a frame the loop can take now."""
        return bool(self.pending) and any(not conn.blocked for conn in self.pending)

    def on_event(self, fd: int, events: int) -> None:
        """Serve what the poller saw on ``fd`` (``select.poll``'s bits)."""
        if fd == self.fd:
            self._accept()
            return
        conn = self.connections.get(fd)
        if conn is None:
            return
        if events & _OUT or (events & _GONE and conn.out):
            conn.flush()
        if not conn.open:
            return
        if not conn.blocked and events & (_IN | _GONE):
            conn.read()
        elif events & _GONE and not conn.out:
            self.close(conn, "connection lost")

    # -- a turn of the loop -----------------------------------------------------------

    def mark_pending(self, conn: StreamConnection) -> None:
        if not conn.pending:
            conn.pending = True
            self.pending.append(conn)

    def serving(self) -> list[StreamConnection]:
        """The connections a round of a turn takes one frame from each, the pending
        list rotated by one at each call (none comes first turn after turn)."""
        pending = self.pending
        if len(pending) > 1:
            pending.append(pending.pop(0))
        return [conn for conn in pending if not conn.blocked]

    def take(self, conn: StreamConnection) -> bytes | None:
        """``conn``'s next complete frame, or None (none; blocked; closed: a head beyond
        the limit, logged)."""
        if conn.blocked or not conn.open:
            return None
        try:
            frame = conn.reader.next()
        except BadRequest as e:
            self.failures.record("streamCut", "stream connection closed", e)
            self.close(conn, "")
            return None
        if frame is None or not conn.reader.ready():
            conn.pending = False
            try:
                self.pending.remove(conn)
            except ValueError:
                pass
        return frame
