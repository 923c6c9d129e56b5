"""The supervisor's way of sending Event records: one raw REQ socket, one request at a time.

Runs in the supervisor process, in the event recorder's flusher thread (see
:mod:`ecsm_actors.runtime.events`). The full registry client would bring asyncio, ssl,
hashlib and secrets into the supervisor (about 3 MiB of private memory and 80 ms of
imports at its first event, holding the GIL while a child restarts) for one request a
second at most, to a local endpoint, with no retry wanted: an event the registry does not
take within the deadline is dropped and counted by the recorder.

Invariants: a request that got no reply within the deadline closes the socket (a REQ
socket waiting for a reply cannot send again); the next request opens a new one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import zmq

from ecsm_actors import protocol
from ecsm_actors.errors import Unavailable


class EventSender:
    """``record_events`` on ``endpoint`` with a ``timeout`` (seconds) per request."""

    def __init__(self, endpoint: str, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._socket: zmq.Socket[Any] | None = None
        self._ids = itertools.count(1)

    def record_events(self, events: Sequence[Mapping[str, Any]]) -> int:
        """Send occurrences; the records written. Raises a RegistryError (the registry's
        refusal, or ``Unavailable`` with no answer within the deadline)."""
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
        result = reply.result
        return int(result.get("recorded", 0)) if isinstance(result, Mapping) else 0

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close(linger=0)


def sender_factory(cfg: Any) -> Callable[[], EventSender]:
    """What :class:`~ecsm_actors.runtime.events.EventRecorder` calls for its client: the
    configured registry, with a short deadline (an event is not worth waiting for)."""
    deadline = min(2.0, float(cfg.registry.request_timeout))
    return lambda: EventSender(cfg.registry_endpoint, deadline)
