"""The supervisor's way of sending Event records: one raw socket, one request at a time.

Runs in the supervisor process, in the event recorder's flusher thread (see
:mod:`ecsm_actors.runtime.events`). The full registry client would bring asyncio, ssl,
hashlib and secrets into the supervisor (about 3 MiB of private memory and 80 ms of
imports at its first event, holding the GIL while a child restarts) for one request a
second at most, to a local endpoint, with no retry wanted: an event the registry does not
take within the deadline is dropped and counted by the recorder.

The socket is the local one every process of this computer uses
(``Config.registry_local_endpoint``): the registry's stream endpoint when it is served,
on the stream client's own socket
(:class:`~ecsm_actors.registry.stream_socket.StreamRequestSocket`, without the registry
client), else a REQ socket on ``registry.endpoint``.

Invariants: a request that got no reply within the deadline closes the socket (a REQ
socket waiting for a reply cannot send again, a stream's reply would come late); the next
request opens a new one.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import zmq

from ecsm_actors import protocol
from ecsm_actors.errors import Unavailable
from ecsm_actors.registry.stream_socket import StreamRequestSocket


class EventSender:
    """``record_events`` on ``endpoint`` with a ``timeout`` (seconds) per request."""

    def __init__(self, endpoint: str, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._socket: zmq.Socket[Any] | None = None
        self._stream: StreamRequestSocket | None = None
        self._ids = itertools.count(1)

    def record_events(self, events: Sequence[Mapping[str, Any]]) -> int:
        """Send occurrences; the records written. Raises a RegistryError (the registry's
        refusal, or ``Unavailable`` with no answer within the deadline)."""
        if self.endpoint.startswith(protocol.STREAM_SCHEME):
            return self._recorded(self._on_stream(events))
        sock = self._socket
        if sock is None:
            sock = self._socket = zmq.Context.instance().socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(self.endpoint)
        try:
            sock.send(protocol.encode_request(protocol.Op.RECORD_EVENTS, next(self._ids),
                                              events=list(events)))
            if not sock.poll(int(self.timeout * 1000)):
                raise Unavailable(f"registry {self.endpoint}: no answer within "
                                  f"{self.timeout:g}s")
            reply = protocol.decode_reply(sock.recv())
        except zmq.ZMQError as e:
            self.close()
            raise Unavailable(f"registry {self.endpoint}: {e}") from e
        except BaseException:
            self.close()
            raise
        return self._recorded(reply)

    def _on_stream(self, events: Sequence[Mapping[str, Any]]) -> protocol.Reply:
        sock = self._stream
        if sock is None:
            sock = self._stream = StreamRequestSocket(self.endpoint)
        frame = protocol.encode_request(protocol.Op.RECORD_EVENTS, next(self._ids),
                                        events=list(events))
        attempt = sock.exchange(frame, rto=self.timeout,
                                until=time.monotonic() + self.timeout)
        if attempt.reply is None:
            self.close()
            raise Unavailable(f"registry {self.endpoint}: no answer within "
                              f"{self.timeout:g}s")
        try:
            return protocol.decode_reply(attempt.reply)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _recorded(reply: protocol.Reply) -> int:
        result = reply.result
        return int(result.get("recorded", 0)) if isinstance(result, Mapping) else 0

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close(linger=0)
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()


def sender_factory(cfg: Any) -> Callable[[], EventSender]:
    """What :class:`~ecsm_actors.runtime.events.EventRecorder` calls for its client: the
    configured registry, with a short deadline (an event is not worth waiting for)."""
    deadline = min(2.0, float(cfg.registry.request_timeout))
    return lambda: EventSender(cfg.registry_local_endpoint, deadline)
