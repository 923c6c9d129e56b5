"""Clients of the registry: :class:`RegistryClient` (requests) and :class:`Subscriber` (events).

Run in every process that talks to the registry (controllers, the CLI, tests). Never
create one before a fork: ZeroMQ sockets do not survive it.

``RegistryClient`` is a REQ socket with a deadline per request. When the deadline passes
the socket is discarded (a REQ socket that missed its reply is stuck) and a fresh one is
connected for the next call; the call raises :class:`~ecsm_actors.errors.Unavailable`.
It never retries: the caller's loop (the workqueue) does. A lock makes it usable from
several threads, one request at a time. Error replies raise the typed
:class:`~ecsm_actors.errors.RegistryError` they carry, with the registry's code and
message (a ``BadRequest`` the registry answered is that ``BadRequest``); only a reply that
does not decode is ``Internal("undecodable reply ...")``.

``Subscriber`` is a SUB socket on the registry's events, filtered by kind, always
receiving heartbeats; frames that do not decode are logged and skipped.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import zmq

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest, Internal, Unavailable, describe_input
from ecsm_actors.lifecycle import gc_paused
from ecsm_actors.protocol import ApplyAction, Event, Heartbeat, ListView, Op

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ListResult:
    items: list[dict[str, Any]]
    resource_version: int
    epoch: str


@dataclass(frozen=True, kw_only=True)
class VersionList:
    """``(namespace/name, resourceVersion)`` of every listed object (a versions-only
    LIST: what an informer keeps), read at ``resource_version``."""

    versions: list[tuple[str, int]]
    resource_version: int
    epoch: str


@dataclass(frozen=True, kw_only=True)
class ApplyResult:
    object: dict[str, Any]
    action: ApplyAction


@dataclass(frozen=True, kw_only=True)
class WatchResult:
    """Events after the asked version, in order. ``resource_version``: the events are
    complete up to it — the registry's current version, or, when the reply was cut at a
    page (10,000 events), the last event's; ask again from there."""

    events: list[Event]
    resource_version: int
    epoch: str


#: Replies this large (a LIST, a replay) are decoded with the cyclic GC paused.
GC_PAUSE_BYTES = 64 << 10


_SLICE_MS = 200


class RegistryClient:
    """Typed requests to the registry (see module docstring)."""

    def __init__(self, endpoint: str, *, timeout: float = 5.0,
                 context: zmq.Context[Any] | None = None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.epoch = ""
        self._context = context or zmq.Context.instance()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._socket: zmq.Socket[Any] | None = None
        self._monitor: zmq.Socket[Any] | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> RegistryClient:
        return cls(cfg.registry_endpoint, timeout=cfg.registry.request_timeout)

    def _connect(self) -> zmq.Socket[Any]:
        sock = self._context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, 10)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        # The deadline is the socket's own (a blocking recv, no poller), cut in slices so
        # that a registry dying with our request in flight is noticed in a slice, not
        # after the whole timeout: its reply can no longer come.
        sock.setsockopt(zmq.RCVTIMEO, max(0, min(int(self.timeout * 1000), _SLICE_MS)))
        self._monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        sock.connect(self.endpoint)
        return sock

    def _discard(self) -> None:
        if self._socket is not None:
            self._socket.disable_monitor()
            self._socket.close(linger=0)
            self._socket = None
        if self._monitor is not None:
            self._monitor.close(linger=0)
            self._monitor = None

    def _peer_lost(self) -> bool:
        """Whether the registry connection dropped since the last call (drains the
        monitor's queue; only DISCONNECTED events are subscribed)."""
        lost = False
        monitor = self._monitor
        while monitor is not None and int(monitor.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            monitor.recv_multipart()
            lost = True
        return lost

    def _await_reply(self, sock: zmq.Socket[Any], op: Op) -> bytes:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return sock.recv()
            except zmq.Again:
                if self._peer_lost():
                    raise Unavailable(f"registry at {self.endpoint}: connection lost while "
                                      f"waiting for the answer to {op}") from None
                if time.monotonic() >= deadline:
                    raise Unavailable(f"registry at {self.endpoint} did not answer {op} "
                                      f"within {self.timeout:g}s") from None

    def request(self, op: Op, **fields: Any) -> Any:
        """Send one request and return the reply's ``result`` (raises its error)."""
        with self._lock:
            rid = next(self._ids)
            frame = protocol.encode_request(op, rid, **fields)
            if self._socket is None:
                self._socket = self._connect()
            sock = self._socket
            self._peer_lost()  # forget drops that happened between calls
            try:
                sock.send(frame)
                answer = self._await_reply(sock, op)
            except Unavailable:
                self._discard()
                raise
            except zmq.ZMQError as e:
                self._discard()
                raise Unavailable(f"registry at {self.endpoint}: {e}") from e
        try:
            if len(answer) < GC_PAUSE_BYTES:
                doc = protocol.unpack_reply(answer)
            else:
                with gc_paused():
                    doc = protocol.unpack_reply(answer)
        except BadRequest as e:
            raise Internal(f"undecodable reply from the registry: {e}") from e
        reply = protocol.reply_of(doc)  # an error reply raises the registry's own error
        self.epoch = reply.epoch or self.epoch
        if reply.id != rid:
            raise Internal(f"reply id {describe_input(reply.id)} does not match "
                           f"request id {rid}")
        return reply.result

    # -- typed operations ----------------------------------------------------------------

    def ping(self) -> dict[str, Any]:
        return self.request(Op.PING)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return self.request(Op.GET, kind=kind, namespace=namespace, name=name)

    def list(self, kind: str, namespace: str | None = None) -> ListResult:
        result = self.request(Op.LIST, kind=kind, namespace=namespace)
        return ListResult(items=result["items"], resource_version=result["resourceVersion"],
                          epoch=self.epoch)

    def list_versions(self, kind: str, namespace: str | None = None) -> VersionList:
        """Keys and resourceVersions only (``LIST`` with ``view: versions``)."""
        result = self.request(Op.LIST, kind=kind, namespace=namespace,
                              view=str(ListView.VERSIONS))
        return VersionList(versions=[(str(k), int(rv)) for k, rv in result["versions"]],
                           resource_version=result["resourceVersion"], epoch=self.epoch)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.request(Op.CREATE, object=obj)

    def update(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.request(Op.UPDATE, object=obj)

    def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.request(Op.UPDATE_STATUS, object=obj)

    def apply(self, obj: dict[str, Any]) -> ApplyResult:
        result = self.request(Op.APPLY, object=obj)
        return ApplyResult(object=result["object"], action=ApplyAction(result["action"]))

    def delete(self, kind: str, namespace: str, name: str,
               resource_version: int | None = None) -> dict[str, Any] | None:
        return self.request(Op.DELETE, kind=kind, namespace=namespace, name=name,
                            resourceVersion=resource_version)

    def watch_since(self, resource_version: int) -> WatchResult:
        result = self.request(Op.WATCH_SINCE, resourceVersion=resource_version)
        try:
            events = [Event.from_wire(e) for e in result["events"]]
        except BadRequest as e:  # not the registry's answer to us: its reply is broken
            raise Internal(f"undecodable reply from the registry: {e}") from e
        return WatchResult(events=events, resource_version=result["resourceVersion"],
                           epoch=self.epoch)

    def close(self) -> None:
        with self._lock:
            self._discard()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Subscriber:
    """Events of the given kinds (all kinds when empty) and every heartbeat."""

    def __init__(self, endpoint: str, *, kinds: Iterable[str] = (), rcvhwm: int = 100_000,
                 context: zmq.Context[Any] | None = None) -> None:
        self.endpoint = endpoint
        self._socket = (context or zmq.Context.instance()).socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RECONNECT_IVL, 10)
        self._socket.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        self._socket.setsockopt(zmq.RCVHWM, rcvhwm)
        kinds = list(kinds)
        if kinds:
            for kind in kinds:
                self._socket.setsockopt(zmq.SUBSCRIBE, protocol.kind_topic(kind))
            self._socket.setsockopt(zmq.SUBSCRIBE, protocol.HEARTBEAT_TOPIC)
        else:
            self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._socket.connect(endpoint)
        self._poller = zmq.Poller()  # made once: Socket.poll makes one per call
        self._poller.register(self._socket, zmq.POLLIN)

    @classmethod
    def from_config(cls, cfg: Any, kinds: Iterable[str] = ()) -> Subscriber:
        return cls(cfg.events_endpoint, kinds=kinds, rcvhwm=cfg.registry.pub_hwm)

    def recv(self, timeout: float | None) -> Event | Heartbeat | None:
        """The next event or heartbeat, or None when ``timeout`` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = -1 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not self._poller.poll(wait):
                return None
            frames = self._recv_frames()
            try:
                return protocol.decode_published(frames)
            except BadRequest as e:
                logger.warning("skipping a malformed message from %s: %s", self.endpoint, e)

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
        self._socket.close(linger=0)

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
