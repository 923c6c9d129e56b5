"""An etcd watch over the v3 JSON gateway: one streaming HTTP response, one socket.

:class:`Watch` is created by :meth:`EtcdClient.watch` once etcd confirmed the watch
(the ``created`` response was read), so every change after that call is seen. It is an
iterator of :class:`WatchResponse`: events, or an empty progress notification carrying
the store's revision. It owns its own ``requests.Session`` (one connection) and nothing
else: no thread. :meth:`Watch.close` may be called from any thread: it shuts the socket
down, which wakes a reader blocked in ``recv``; the iterator then ends (StopIteration)
and the connection is released by whichever side finishes last.

A stream that breaks (member killed, connection reset) raises ``Unavailable``; a watch
whose start revision was compacted raises ``Expired`` (etcd cancels it with
``compact_revision`` set); the caller watches again from its last revision + 1.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

from ecsm_actors.errors import Expired, Internal, RegistryError, Unavailable, clip_text
from ecsm_actors.etcd.wire import KeyValue, error_from_reply, error_message, is_unavailable

#: TCP keepalive of a watch socket: a peer gone silent (host down, cable pulled) is
#: noticed in about idle + interval * count seconds instead of never.
KEEPALIVE_IDLE = 5
KEEPALIVE_INTERVAL = 2
KEEPALIVE_COUNT = 3
#: Bytes read from the stream at a time. One watch response is one line (a revision of
#: many events: megabytes), and requests' ``iter_lines`` splits its whole pending buffer
#: again at every read: 512-byte reads (its default) made reading 1,000 events take 1.6 s,
#: 64 KiB reads 0.1 s. A read returns what has arrived, it does not wait to fill.
STREAM_CHUNK = 1 << 16


@dataclass(frozen=True, kw_only=True)
class WatchEvent:
    """One change: ``type`` is ``PUT`` or ``DELETE``; ``prev_kv`` the key before it
    (when the watch asked for it and the key existed)."""

    type: str
    kv: KeyValue
    prev_kv: KeyValue | None

    @classmethod
    def from_wire(cls, event: Mapping[str, Any]) -> WatchEvent:
        prev = event.get("prev_kv")
        return cls(type="DELETE" if event.get("type") == "DELETE" else "PUT",
                   kv=KeyValue.from_wire(event.get("kv") or {}),
                   prev_kv=KeyValue.from_wire(prev) if prev else None)


@dataclass(frozen=True, kw_only=True)
class WatchResponse:
    """A batch of events of one or more revisions, or (no events) a progress
    notification; ``revision`` is the store's revision when etcd sent it."""

    events: list[WatchEvent]
    revision: int
    compact_revision: int
    canceled: bool

    @classmethod
    def from_wire(cls, result: Mapping[str, Any]) -> WatchResponse:
        header = result.get("header") or {}
        return cls(events=[WatchEvent.from_wire(e) for e in result.get("events") or ()],
                   revision=int(header.get("revision") or 0),
                   compact_revision=int(result.get("compact_revision") or 0),
                   canceled=bool(result.get("canceled")))


def stream_socket(reply: requests.Response) -> socket.socket | None:
    """The socket under a streaming response (urllib3 2.x), or None if not found."""
    conn = getattr(reply.raw, "_connection", None) or getattr(reply.raw, "connection", None)
    sock = getattr(conn, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def set_keepalive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                        ("TCP_KEEPCNT", KEEPALIVE_COUNT)):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


class Watch:
    """The changes of a key or range, as etcd streams them (see the module docstring)."""

    def __init__(self, *, endpoint: str, session: requests.Session, reply: requests.Response,
                 start_revision: int) -> None:
        self.endpoint = endpoint
        self.start_revision = start_revision
        self._session = session
        self._reply = reply
        self._sock = stream_socket(reply)
        self._lines: Iterator[bytes] = reply.iter_lines(chunk_size=STREAM_CHUNK)
        self._lock = threading.Lock()
        self._closed = False
        self._reading = False
        self._released = False
        #: The store's revision when etcd created the watch (0 until then).
        self.created_revision = 0

    # -- creation ---------------------------------------------------------------------

    def wait_created(self) -> None:
        """Read up to etcd's ``created`` answer (the caller's read timeout still holds),
        then lift the read timeout: a watch may be silent for a long time."""
        try:
            while True:
                result = self._result(self._next_line())
                if result.get("created"):
                    self.created_revision = int((result.get("header") or {})
                                                .get("revision") or 0)
                    self._check_canceled(result)
                    break
        except BaseException:
            self.close()
            raise
        if self._sock is not None:
            self._sock.settimeout(None)
            set_keepalive(self._sock)

    # -- iteration --------------------------------------------------------------------

    def __iter__(self) -> Watch:
        return self

    def __next__(self) -> WatchResponse:
        with self._lock:
            if self._closed:
                self._release_locked()
                raise StopIteration
            self._reading = True
        try:
            while True:
                result = self._result(self._next_line())
                if result.get("created"):
                    continue
                self._check_canceled(result)
                return WatchResponse.from_wire(result)
        except StopIteration:
            raise
        except RegistryError:
            if self._closed:
                raise StopIteration from None
            self.close()
            raise
        finally:
            with self._lock:
                self._reading = False
                if self._closed:
                    self._release_locked()

    def _next_line(self) -> bytes:
        try:
            while True:
                line = next(self._lines)
                if line:
                    return line
        except StopIteration:
            if self._closed:
                raise
            raise Unavailable(f"etcd store unavailable ({self.endpoint}): "
                              "the watch stream ended") from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError,
                AttributeError, ValueError) as e:
            # AttributeError/ValueError: urllib3 reading a response closed under it.
            if self._closed:
                raise StopIteration from None
            raise Unavailable(f"etcd store unavailable ({self.endpoint}): the watch "
                              f"stream broke: {clip_text(str(e), 200)}") from e

    def _result(self, line: bytes) -> Mapping[str, Any]:
        try:
            message = json.loads(line)
        except ValueError as e:
            raise Internal(f"etcd store error ({self.endpoint}): a watch line is not "
                           "JSON") from e
        if not isinstance(message, dict):
            raise Internal(f"etcd store error ({self.endpoint}): a watch line is not "
                           "a JSON object")
        if "error" in message:
            raise error_from_reply(self.endpoint, 0, message)
        result = message.get("result")
        return result if isinstance(result, dict) else {}

    def _check_canceled(self, result: Mapping[str, Any]) -> None:
        compact = int(result.get("compact_revision") or 0)
        if compact:
            raise Expired(f"etcd store ({self.endpoint}): watch from revision "
                          f"{self.start_revision}: required revision has been compacted "
                          f"(oldest kept: {compact})")
        if result.get("canceled"):
            reason = str(result.get("cancel_reason") or "canceled by etcd")
            _, message = error_message({"message": reason})
            cls = Unavailable if is_unavailable(0, message) else Internal
            word = "unavailable" if cls is Unavailable else "error"
            raise cls(f"etcd store {word} ({self.endpoint}): watch canceled: "
                      f"{clip_text(message, 200)}")

    # -- closing ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """End the watch (idempotent, from any thread): a blocked reader wakes and its
        iteration stops; the socket is released."""
        with self._lock:
            self._closed = True
            if self._sock is not None:
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already shut down or reset by the peer
            if not self._reading:
                self._release_locked()

    def _release_locked(self) -> None:
        if self._released:
            return
        self._released = True
        self._reply.close()
        self._session.close()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
