"""The client side of the registry's local stream endpoint (``unix://PATH``).

Runs in every process of this computer that talks to the registry, inside
:class:`~ecsm_actors.registry.client.RegistryClient` (which picks it by the endpoint's
scheme). :class:`StreamRequestSocket` keeps the exchange contract of
:class:`~ecsm_actors.registry.sockets.RequestSocket` — one request out at a time, an
:class:`~ecsm_actors.registry.sockets.Attempt` telling what happened, no retry of its own
— over one AF_UNIX stream connection, each frame preceded by its 4-byte length
(:func:`~ecsm_actors.protocol.frame_head`):

* the connection is made at the first request and kept across requests; a request is
  written only after the registry's greeting (an empty frame: its loop accepted the
  connection), as a ZeroMQ request leaves only after its handshake, so a registry stopped
  or hung cannot find it in its listener's queue later; the client makes
  a fresh socket after any attempt that failed, so a connection left in an unknown state
  is never used again;
* a request is out once its whole frame is written (the registry serves only whole
  frames): no connection (no socket file, refused, the listener's queue full, no
  greeting until the attempt's end) or a
  connection that drops before that is a request not sent (``sent_at`` None: not
  applied); a connection that drops after it is ``lost`` (it may have been applied);
* a kept connection found closed by the registry as the request is written (a registry
  restarted meanwhile: ``EPIPE`` with nothing written) is made again at once, within the
  attempt;
* per request, on the hot path: one ``send``, one ``poll`` for the reply, one ``recv``
  of its head and body when they came together;
* a reply that does not come in one read is kept as the pieces read (each read at most
  as large as what came before it, or ``RECV_BYTES``), never a buffer of the size its
  head announces: a head announcing more than is sent costs what was sent, twice at most
  (it once took the whole 2 GiB a head announced before a byte of it came); a reply
  that came whole is joined once. No cap of its own: a LIST has none but the store's
  size, nor has the ZeroMQ client; the head's 4 bytes bound a reply below 4 GiB;
* a fork: a connection made before it is never used in the child (its registry would
  interleave both processes' frames); the child closes its copy and connects anew (an
  at-fork hook counts forks, as :mod:`~ecsm_actors.registry.retry` does for request ids).

Not thread-safe: the client uses it under its lock. Never raises ``OSError``: every
failure of the socket is an :class:`~ecsm_actors.registry.sockets.Attempt`'s outcome.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time

from ecsm_actors import protocol
from ecsm_actors.registry.sockets import Attempt

#: Bytes one read of a reply takes at most before its length is known.
RECV_BYTES = 64 << 10
#: A frame at least this large is written as two buffers (head, frame), not copied.
GATHER_BYTES = 64 << 10

_HEAD = protocol.FRAME_HEAD_BYTES
#: The registry's first frame on a connection (``stream.GREETING``): empty.
_GREETING = protocol.frame_head(0)
_IN, _OUT = select.POLLIN, select.POLLOUT
_forks = 0


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


class _Lost(Exception):
    """The connection ended (end of stream, reset) or broke the framing."""


class StreamRequestSocket:
    """One connection to the registry's stream endpoint (see module docstring)."""

    def __init__(self, endpoint: str) -> None:
        if not endpoint.startswith(protocol.STREAM_SCHEME):
            raise ValueError(f"not a stream endpoint: {endpoint}")
        self.endpoint = endpoint
        self.path = endpoint[len(protocol.STREAM_SCHEME):]
        self.sock: socket.socket | None = None
        #: As RequestSocket's: a request queued on a ZeroMQ socket leaves by itself at a
        #: handshake; here none leaves but by :meth:`exchange`'s write, so always 0.
        self.handshakes = 0
        #: When this socket's request was written whole (None: never).
        self.sent_at: float | None = None
        self._forks = _forks
        self._fds = select.poll()
        #: A reply's pieces read so far (its head first), when it came in pieces, and
        #: their bytes.
        self._parts: list[bytes] = []
        self._have = 0

    # -- the connection ---------------------------------------------------------------

    def _connect(self, until: float) -> bool:
        """Connect, then wait until ``until`` for the registry's greeting (its loop
        accepted the connection): False when either fails (nothing can have been sent)."""
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        except OSError:  # out of descriptors: nothing sent
            return False
        fds = select.poll()
        fds.register(sock.fileno(), _IN)
        greeting = b""
        try:
            sock.connect(self.path)
            while len(greeting) < _HEAD:
                now = time.monotonic()
                if now >= until or not fds.poll(max(1, int((until - now) * 1000) + 1)):
                    break
                try:
                    data = sock.recv(_HEAD - len(greeting))
                except BlockingIOError:
                    continue
                if not data:
                    break
                greeting += data
        except OSError:  # no file, refused, the listener's queue full: nothing sent
            pass
        if greeting != _GREETING:
            sock.close()
            return False
        self.sock, self._forks, self._fds = sock, _forks, fds
        return True

    def _drop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._parts, self._have = [], 0

    def close(self) -> int:
        """Close the connection; returns :attr:`handshakes`."""
        self._drop()
        return self.handshakes

    # -- one request ------------------------------------------------------------------

    def exchange(self, frame: bytes, *, rto: float, until: float,
                 earlier: StreamRequestSocket | None = None) -> Attempt:
        """Send ``frame`` and wait for its reply, as :meth:`RequestSocket.exchange` does:
        the wait ends with the reply, when the connection drops after the request went
        out (``lost``), ``rto`` seconds after it went out (``timed_out`` unless ``until``
        came first), and in any case at ``until`` (monotonic). ``earlier``: the socket of
        a previous attempt of the same request, its request out: its reply is taken as
        well (``from_earlier``), its connection's end noted (``earlier_lost``)."""
        attempt = Attempt()
        if self.sock is not None and self._forks != _forks:
            self._drop()  # the parent's connection: our copy goes, the parent keeps it
        if not self._write(frame, until):
            return attempt
        now = attempt.sent_at = self.sent_at = time.monotonic()
        limit = now + rto
        fds = self._fds
        if earlier is not None and earlier.sock is not None:
            fds = select.poll()
            assert self.sock is not None
            fds.register(self.sock.fileno(), _IN)
            fds.register(earlier.sock.fileno(), _IN)
        mine = self.sock.fileno()  # type: ignore[union-attr]
        while True:
            end = min(limit, until)
            if now >= end:
                attempt.timed_out = limit < until
                return attempt
            ready = fds.poll(max(1, int((end - now) * 1000) + 1))
            now = time.monotonic()
            for fd, _ in ready:
                source = self if fd == mine else earlier
                assert source is not None
                try:
                    reply = source._receive()
                except _Lost:
                    source._drop()
                    if source is self:
                        attempt.lost = True
                        return attempt
                    attempt.earlier_lost = True
                    fds = self._fds
                    earlier = None
                    continue
                if reply is not None:
                    attempt.reply, attempt.replied_at = reply, now
                    if source is not self:
                        attempt.from_earlier, attempt.sent_at = True, source.sent_at
                    return attempt

    def _write(self, frame: bytes, until: float) -> bool:
        """Write ``frame`` whole on the connection (made first if there is none): False
        when it could not go out whole (then nothing of it can be served)."""
        reused = self.sock is not None
        if not reused and not self._connect(until):
            return False
        head = protocol.frame_head(len(frame))
        data = head + frame if len(frame) < GATHER_BYTES else None
        while True:
            sock = self.sock
            assert sock is not None
            try:
                sent = sock.send(data) if data is not None else sock.sendmsg((head, frame))
            except BlockingIOError:
                sent = 0
            except OSError as e:
                self._drop()
                if reused and e.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                    reused = False  # closed by a registry since gone: connect once more
                    if self._connect(until):
                        continue
                return False
            break
        total = _HEAD + len(frame)
        if sent == total:
            return True
        view = memoryview(data if data is not None else head + frame)[sent:]
        return self._write_rest(view, until)

    def _write_rest(self, view: memoryview, until: float) -> bool:
        """The rest of a frame the socket did not take at once (a large one), as the
        registry reads it, until ``until``."""
        sock = self.sock
        assert sock is not None
        fds = select.poll()
        fds.register(sock.fileno(), _OUT)
        while view:
            now = time.monotonic()
            if now >= until or not fds.poll(max(1, int((until - now) * 1000) + 1)):
                self._drop()  # half a frame is out: the connection cannot be used again
                return False
            try:
                view = view[sock.send(view):]
            except BlockingIOError:
                continue
            except OSError:
                self._drop()
                return False
        return True

    def _receive(self) -> bytes | None:
        """What the connection has: the reply when it is complete, else None (the pieces
        read so far kept, joined once the last came: they hold what came, never what the
        head announced). Raises _Lost at its end."""
        sock = self.sock
        if sock is None:
            raise _Lost()
        have = self._have
        try:
            if not have:
                data = sock.recv(RECV_BYTES)
                if not data:
                    raise _Lost()
                if len(data) >= _HEAD and len(data) == _HEAD + protocol.frame_size(data)[0]:
                    return data[_HEAD:]  # the whole reply in one read: the hot path
                self._parts = [data]
                have = self._have = len(data)
            parts = self._parts
            while True:
                if len(parts[0]) >= _HEAD:
                    want = _HEAD + protocol.frame_size(parts[0])[0]
                    if have >= want:
                        break
                else:
                    want = _HEAD
                # At most what came so far: a head announcing more than comes costs
                # what came (twice at most), never what it announced.
                data = sock.recv(min(want - have, max(have, RECV_BYTES)))
                if not data:
                    raise _Lost()
                if want == _HEAD:
                    parts[0] += data  # the rest of the head
                else:
                    parts.append(data)
                have = self._have = have + len(data)
        except BlockingIOError:
            return None
        except OSError as e:
            raise _Lost() from e
        if have > want:  # bytes past the reply: not this protocol (one request out)
            raise _Lost()
        pieces: list[bytes | memoryview] = [memoryview(parts[0])[_HEAD:], *parts[1:]]
        self._parts, self._have = [], 0
        return b"".join(pieces)
