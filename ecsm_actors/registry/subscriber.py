"""The registry's events as a client receives them: :class:`Subscriber`, a SUB socket,
and :class:`HeadSubscriber`, the same with each event's object left undecoded.

Runs in controllers (the informer, which reads events' heads only), the CLI's ``watch``
and the link agent. Filtered by kind, always receiving heartbeats; frames that do not
decode are logged and skipped. On a remote link it is a CURVE client with ZMTP heartbeats
(:mod:`~ecsm_actors.registry.sockets`), so a silent connection is dropped and
re-established; ZeroMQ re-sends the subscriptions. Re-exported by
:mod:`ecsm_actors.registry.client`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Self, TypeVar

import zmq

from ecsm_actors import protocol
from ecsm_actors.curve import ClientKeys
from ecsm_actors.errors import BadRequest
from ecsm_actors.protocol import Event, EventHead, Heartbeat
from ecsm_actors.registry.sockets import LinkOptions, prepare

logger = logging.getLogger(__name__)

_Decoded = TypeVar("_Decoded")


class _Subscription:
    """The SUB socket of events of the given kinds (all kinds when empty) and every
    heartbeat, and the wait for its next message."""

    def __init__(self, endpoint: str, *, kinds: Iterable[str] = (), rcvhwm: int = 100_000,
                 context: zmq.Context[Any] | None = None, curve: ClientKeys | None = None,
                 heartbeat_interval: float = 2.0, heartbeat_timeout: float = 8.0) -> None:
        self.endpoint = endpoint
        self._socket = (context or zmq.Context.instance()).socket(zmq.SUB)
        prepare(self._socket, endpoint, LinkOptions(curve=curve,
                                                    heartbeat_interval=heartbeat_interval,
                                                    heartbeat_timeout=heartbeat_timeout))
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
    def from_config(cls, cfg: Any, kinds: Iterable[str] = (), *,
                    curve: ClientKeys | None = None) -> Self:
        return cls(cfg.events_endpoint, kinds=kinds, rcvhwm=cfg.registry.pub_hwm, curve=curve,
                   heartbeat_interval=cfg.link.heartbeat_interval,
                   heartbeat_timeout=cfg.link.heartbeat_timeout)

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
