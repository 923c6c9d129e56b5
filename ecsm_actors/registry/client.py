"""Clients of the registry: :class:`RegistryClient` (requests) and :class:`Subscriber` (events).

Run in every process that talks to the registry (controllers, the CLI, the drill, the
link agent, tests). Never create one before a fork: ZeroMQ sockets do not survive it.

``RegistryClient`` retries every request itself, in one place (:meth:`RegistryClient.request`),
until one overall ``deadline``; callers above it retry only what it gave up on (the
workqueue, as before). Each attempt sends the same frame — the same envelope ``id`` and,
for a write, the same ``requestId``, the idempotency key under which the registry records
the write's outcome and answers a repeat with that outcome (``replayed``) instead of
applying it twice. The next attempt goes on a fresh REQ socket (the "lazy pirate": a REQ
socket that missed its reply is stuck), after a pause of exponential backoff with full
jitter; the last socket whose request is out on a live connection is still listened to
while the retries go out, and the first answer on either is taken (after a stall its
answer comes one round trip after the link returns; a new connection needs a whole CURVE
handshake). An attempt ends:

* with the reply — returned, or its error raised as the typed
  :class:`~ecsm_actors.errors.RegistryError` with the registry's code and message (an
  error reply is an answer and is not retried), except ``Unavailable``, which means the
  request was not served (a link agent that could not send it): retried;
* at once when the connection drops after the request could leave (socket monitor);
* when no reply came within the RTO after the request could leave: the RTO adapts to the
  measured round trips (:class:`~ecsm_actors.registry.retry.RttEstimator`, RFC 6298,
  floor 0.2 s, capped by ``timeout``), so a local registry that stopped answering is asked
  again within a fraction of a second while a one-second link is not given up on early
  (before the first answer, an attempt waits its whole ``timeout``); a connection still
  in its (CURVE) handshake, about five round trips, is waited on until the deadline.

When the deadline passes, :class:`~ecsm_actors.errors.DeadlineExceeded` says in one line
the endpoint, the op, the attempts and the seconds, and ``applied``: False when it is
known that the request never reached the registry (no connection was ever handshaken
during the call, or each attempt was answered ``Unavailable``, never with ``applied``
unknown: a registry whose etcd store lost a write's answer), None (unknown) otherwise.
A lock makes the client usable from several threads, one attempt at a time. Only a reply
that does not decode is ``Internal("undecodable reply ...")``.

The transport follows the endpoint's scheme: ``unix://`` is the registry's local stream
endpoint (:class:`~ecsm_actors.registry.stream_socket.StreamRequestSocket`: one AF_UNIX
connection kept across requests, a fresh one after a failed attempt; a round trip costs
about half of ZeroMQ's), ``ipc://`` and ``tcp://`` a ZeroMQ REQ socket; both give each
attempt the same outcomes. ``from_config`` takes the local endpoint
(``Config.registry_local_endpoint``).

``Subscriber`` (:mod:`~ecsm_actors.registry.subscriber`, re-exported here) receives the
registry's events. With CURVE keys (a remote registry) both are CURVE clients and send
ZMTP heartbeats, so a silent connection is dropped and re-established (see
:mod:`~ecsm_actors.registry.sockets`).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import zmq

from ecsm_actors import protocol
from ecsm_actors.curve import ClientKeys
from ecsm_actors.errors import (
    BadRequest,
    DeadlineExceeded,
    Internal,
    RegistryError,
    Unavailable,
    describe_input,
)
from ecsm_actors.lifecycle import gc_paused_long_lived
from ecsm_actors.protocol import ApplyAction, Event, ListView, Op
from ecsm_actors.registry.results import (
    ApplyResult,
    BatchItem,
    BatchResult,
    ListResult,
    VersionList,
    WatchResult,
    batch_result,
)
from ecsm_actors.registry.retry import Backoff, RttEstimator, new_request_id
from ecsm_actors.registry.sockets import LinkOptions, RequestSocket
from ecsm_actors.registry.stream_socket import StreamRequestSocket
from ecsm_actors.registry.subscriber import Subscriber

__all__ = ["ApplyResult", "BatchItem", "BatchResult", "ListResult", "RegistryClient",
           "Subscriber", "VersionList", "WatchResult", "OnWait"]

logger = logging.getLogger(__name__)

#: Replies this large (a LIST, a replay) are decoded with the cyclic GC paused, their
#: containers then old (:func:`~ecsm_actors.lifecycle.gc_paused_long_lived`).
GC_PAUSE_BYTES = 64 << 10

#: ``on_wait(attempt, elapsed)``: called before each retry with the number of the attempt
#: about to be made (2 for the first retry) and the seconds since the call started.
OnWait = Callable[[int, float], None]

_WRITE_OPS = frozenset({Op.CREATE, Op.UPDATE, Op.UPDATE_STATUS, Op.APPLY, Op.DELETE, Op.BATCH})
#: No attempt starts with less time than this (or a round trip) left before the deadline.
_LAST_CHANCE = 0.05
_OMITTED_WHEN_NONE = ("requestId", "limit", "continue", "atomic", "dryRun")
#: ``(replayed, stale)`` of a thread that got no reply yet.
_NEITHER = (False, False)


class _Call(SimpleNamespace):
    """The state of one :meth:`RegistryClient.request` across its attempts: ``started``
    and ``until`` given, the others the class's defaults until set (a namespace is made
    in C, without the Python ``__init__`` of a dataclass)."""

    started: float
    until: float
    attempts: int = 0
    #: Whether any attempt may have reached the registry (else: known not applied).
    maybe_sent: bool = False
    lost: bool = False
    refused: str = ""
    #: The message of the last ``Unavailable`` answer.
    answered: str = ""
    #: A previous attempt's socket, its request out on a live connection.
    earlier: Any = None


class RegistryClient:
    """Typed requests to the registry, retried within a deadline (see module docstring).

    ``timeout``: the longest one attempt waits for its reply (the RTO's cap); ``deadline``:
    the whole call, retries included (default ``2 × timeout``); ``curve``: the keys of a
    remote (CURVE) registry; ``on_wait(attempt, elapsed)``: called before each retry;
    ``heartbeat_interval``/``heartbeat_timeout``: ZMTP heartbeats on a remote link."""

    def __init__(self, endpoint: str, *, timeout: float = 5.0, deadline: float | None = None,
                 curve: ClientKeys | None = None, context: zmq.Context[Any] | None = None,
                 on_wait: OnWait | None = None, heartbeat_interval: float = 2.0,
                 heartbeat_timeout: float = 8.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.deadline = timeout * 2 if deadline is None else deadline
        self.on_wait = on_wait
        self.epoch = ""
        self._replies = threading.local()
        #: The round-trip estimate behind each attempt's timeout.
        self.rtt = RttEstimator(cap=timeout)
        self.backoff = Backoff(cap=min(2.0, max(timeout, 0.05)))
        self._options = LinkOptions(curve=curve, heartbeat_interval=heartbeat_interval,
                                    heartbeat_timeout=heartbeat_timeout)
        self._context = context or zmq.Context.instance()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        #: The transport, by the endpoint's scheme: ``unix://`` the registry's local
        #: stream endpoint (:mod:`~ecsm_actors.registry.stream_socket`), else ZeroMQ REQ.
        self._stream = endpoint.startswith(protocol.STREAM_SCHEME)
        self._socket: RequestSocket | StreamRequestSocket | None = None

    @classmethod
    def from_config(cls, cfg: Any, *, curve: ClientKeys | None = None,
                    deadline: float | None = None,
                    on_wait: OnWait | None = None) -> RegistryClient:
        """A client of ``cfg``'s local registry (its stream endpoint when served, else its
        ZeroMQ endpoint): ``registry.request_timeout`` per attempt, ``deadline`` (default
        ``registry.request_deadline``) in all, ``link.heartbeat_*``."""
        return cls(cfg.registry_local_endpoint, timeout=cfg.registry.request_timeout,
                   deadline=cfg.registry.request_deadline if deadline is None else deadline,
                   curve=curve, on_wait=on_wait,
                   heartbeat_interval=cfg.link.heartbeat_interval,
                   heartbeat_timeout=cfg.link.heartbeat_timeout)

    @property
    def last_replayed(self) -> bool:
        """Whether the last reply this thread got (success or error) was the replay of a
        recorded outcome (the write was applied by an earlier attempt, not again)."""
        return getattr(self._replies, "last", _NEITHER)[0]

    @property
    def last_stale(self) -> bool:
        """Whether the last reply this thread got was a read the registry served while its
        store had lost quorum (etcd), from one member's state: it may lag."""
        return getattr(self._replies, "last", _NEITHER)[1]

    # -- the request loop --------------------------------------------------------------

    def request(self, op: Op, **fields: Any) -> Any:
        """Send one request, retried until it is answered or the deadline passes, and
        return the reply's ``result`` (raises its error). Fields take their wire names;
        a write without ``requestId`` gets a fresh one, used by every attempt."""
        if op in _WRITE_OPS and fields.get("requestId") is None:
            fields["requestId"] = new_request_id()
        if None in fields.values():  # a GET has none: no loop over the names
            for name in _OMITTED_WHEN_NONE:
                if name in fields and fields[name] is None:
                    del fields[name]
        envelope = next(self._ids)
        frame = protocol.encode_request_of(op, envelope, fields)
        now = time.monotonic()
        call = _Call(started=now, until=now + self.deadline)
        try:
            while True:
                call.attempts += 1
                answer, round_trip = self._attempt(frame, op, call)
                if answer is not None:
                    try:
                        result = self._answer(answer, envelope)
                    except Unavailable as e:
                        # Not served (a link agent could not send it): no round trip;
                        # unless the registry could not tell whether its store applied it.
                        logger.debug("%s to %s answered Unavailable: %s", op, self.endpoint,
                                     e)
                        call.answered = e.message
                        if isinstance(e, DeadlineExceeded) and e.applied is not False:
                            call.maybe_sent = True
                    except BaseException:
                        self._observe(round_trip)  # an error answer is an answer
                        raise
                    else:
                        with self._lock:  # _observe inline: one call fewer a request
                            self.rtt.observe(round_trip)
                        return result
                now = time.monotonic()
                pause = min(self.backoff.delay(call.attempts), max(0.0, call.until - now))
                if call.until - (now + pause) < max(self.rtt.srtt or 0.0, _LAST_CHANCE):
                    # no answer could come back in time: sending again would only leave
                    # one more request of unknown fate behind
                    raise self._deadline_exceeded(op, fields, call, now - call.started)
                if self.on_wait is not None:
                    self.on_wait(call.attempts + 1, now - call.started)
                time.sleep(pause)
        finally:
            if call.earlier is not None:
                call.earlier.close()

    def _observe(self, round_trip: float) -> None:
        with self._lock:
            self.rtt.observe(round_trip)

    def _attempt(self, frame: bytes, op: Op, call: _Call) -> tuple[bytes | None, float]:
        """One attempt of ``call``: (its reply or None, the round trip). Records in
        ``call`` whether the request may have reached the registry, a dropped connection,
        a refused handshake; keeps a socket whose request is out on a live connection as
        ``call.earlier``, still listened to while the next attempt goes on a fresh one."""
        with self._lock:
            if self._socket is None:
                if self._stream:
                    self._socket = StreamRequestSocket(self.endpoint)
                else:
                    try:
                        self._socket = RequestSocket(self._context, self.endpoint,
                                                     self._options)
                    except zmq.ZMQError as e:
                        raise Unavailable(f"registry at {self.endpoint}: {e}") from e
            sock: Any = self._socket
            handshakes = sock.handshakes
            try:
                attempt = sock.exchange(frame, rto=self.rtt.rto(), until=call.until,
                                        earlier=call.earlier)
            except BaseException as e:  # a REQ socket left waiting for its reply is stuck
                self._discard()
                if not isinstance(e, zmq.ZMQError):
                    raise
                if e.errno == zmq.ETERM:
                    raise Unavailable(f"registry at {self.endpoint}: {e}") from e
                logger.debug("%s to %s: %s", op, self.endpoint, e)
                call.maybe_sent = True
                return None, 0.0
            if attempt.earlier_lost and call.earlier is not None:
                call.earlier.close()
                call.earlier, call.lost = None, True
            if attempt.reply is not None:
                if attempt.from_earlier:  # the new socket now waits for a reply: stuck
                    sock.close()
                    self._socket, call.earlier = call.earlier, None
                round_trip = attempt.replied_at - (attempt.sent_at or attempt.replied_at)
                return attempt.reply, round_trip
            if attempt.timed_out:  # Karn: a link slower than the estimate is waited on longer
                self.rtt.timed_out()
            self._socket = None
            if attempt.sent_at is not None and not attempt.lost:
                if call.earlier is not None:  # one earlier socket at most: keep the newer
                    call.earlier.close()
                call.earlier = sock
            else:
                sock.close()
            call.maybe_sent = (call.maybe_sent or attempt.sent_at is not None
                               or sock.handshakes > handshakes)
            call.lost = call.lost or attempt.lost
            call.refused = attempt.refused or call.refused
            return None, 0.0

    def _answer(self, answer: bytes, envelope: int) -> Any:
        """The result of a reply frame; an error reply raises its typed error."""
        try:
            if len(answer) < GC_PAUSE_BYTES:
                doc = protocol.unpack_reply(answer)
            else:
                with gc_paused_long_lived():
                    doc = protocol.unpack_reply(answer)
        except BadRequest as e:
            raise Internal(f"undecodable reply from the registry: {e}") from e
        replayed = doc.get("replayed") is True
        self._replies.last = (replayed, doc.get("stale") is True)  # one thread-local set
        epoch = doc.get("epoch")
        if epoch:  # a str (unpack_reply checked it)
            self.epoch = epoch
        if doc.get("ok") is True and doc.get("id") == envelope:
            return doc.get("result")  # a success reply: no Reply object needed
        try:
            reply = protocol.reply_of(doc)  # an error reply raises the registry's own error
        except RegistryError as e:
            e.replayed = replayed
            raise
        if reply.id != envelope:
            raise Internal(f"reply id {describe_input(reply.id)} does not match "
                           f"request id {envelope}")
        return reply.result

    def _deadline_exceeded(self, op: Op, fields: Mapping[str, Any], call: _Call,
                           elapsed: float) -> DeadlineExceeded:
        applied = None if call.maybe_sent else False
        if call.answered:
            why = f"; last answer: {call.answered}"
        elif call.refused:
            why = f"; the registry refused the connection: {call.refused}"
        else:
            why = "; the connection dropped" if call.lost else ""
        text = (f"registry at {self.endpoint} did not answer {op} within {elapsed:.1f}s "
                f"({call.attempts} attempt{'s' if call.attempts != 1 else ''}{why})")
        if op in _WRITE_OPS:
            rid = fields.get("requestId")
            text += ("; not applied: the request never reached the registry" if applied
                     is False else f"; it may or may not have been applied (request id {rid})")
        return DeadlineExceeded(text, applied=applied)

    def _discard(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    # -- typed operations ----------------------------------------------------------------

    def ping(self) -> dict[str, Any]:
        return self.request(Op.PING)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return self.request(Op.GET, kind=kind, namespace=namespace, name=name)

    def list(self, kind: str, namespace: str | None = None, *, limit: int | None = None,
             continue_token: str | None = None) -> ListResult:
        """Objects of ``kind``: all at once, or one page of at most ``limit`` from
        ``continue_token`` (the previous page's; ``continue_token`` "" on the last)."""
        result = self.request(Op.LIST, kind=kind, namespace=namespace, limit=limit,
                              **{"continue": continue_token or None})
        remaining = result.get("remainingItemCount")
        token = result.get("continue")
        return ListResult(items=result["items"], resource_version=result["resourceVersion"],
                          epoch=self.epoch, continue_token=token if isinstance(token, str)
                          else "",
                          remaining=remaining if isinstance(remaining, int)
                          and not isinstance(remaining, bool) else None)

    def list_versions(self, kind: str, namespace: str | None = None) -> VersionList:
        """Keys and resourceVersions only (``LIST`` with ``view: versions``)."""
        result = self.request(Op.LIST, kind=kind, namespace=namespace,
                              view=str(ListView.VERSIONS))
        return VersionList(versions=[(str(k), int(rv)) for k, rv in result["versions"]],
                           resource_version=result["resourceVersion"], epoch=self.epoch)

    def create(self, obj: dict[str, Any], *, request_id: str | None = None) -> dict[str, Any]:
        return self.request(Op.CREATE, object=obj, requestId=request_id)

    def update(self, obj: dict[str, Any], *, request_id: str | None = None) -> dict[str, Any]:
        return self.request(Op.UPDATE, object=obj, requestId=request_id)

    def update_status(self, obj: dict[str, Any], *,
                      request_id: str | None = None) -> dict[str, Any]:
        return self.request(Op.UPDATE_STATUS, object=obj, requestId=request_id)

    def apply(self, obj: dict[str, Any], *, request_id: str | None = None) -> ApplyResult:
        result = self.request(Op.APPLY, object=obj, requestId=request_id)
        return ApplyResult(object=result["object"], action=ApplyAction(result["action"]))

    def delete(self, kind: str, namespace: str, name: str,
               resource_version: int | None = None, *,
               request_id: str | None = None) -> dict[str, Any] | None:
        return self.request(Op.DELETE, kind=kind, namespace=namespace, name=name,
                            resourceVersion=resource_version, requestId=request_id)

    def batch(self, writes: Sequence[Mapping[str, Any]], *, atomic: bool = False,
              request_id: str | None = None, dry_run: bool = False) -> BatchResult:
        """Several writes (``{op, ...that op's wire fields}`` each) in one request: one
        outcome per write, in order; ``atomic``: all or none; ``dry_run``: what they would
        do, nothing stored."""
        wire = [{**w, "op": str(w["op"])} for w in writes]
        result = self.request(Op.BATCH, writes=wire, atomic=atomic or None,
                              requestId=request_id, dryRun=dry_run or None)
        return batch_result(result, len(wire), replayed=self.last_replayed)

    def watch_since(self, resource_version: int) -> WatchResult:
        result = self.request(Op.WATCH_SINCE, resourceVersion=resource_version)
        try:
            events = [Event.from_wire(e) for e in result["events"]]
        except BadRequest as e:  # not the registry's answer to us: its reply is broken
            raise Internal(f"undecodable reply from the registry: {e}") from e
        return WatchResult(events=events, resource_version=result["resourceVersion"],
                           epoch=self.epoch)

    def record_events(self, events: Sequence[Mapping[str, Any]]) -> int:
        """Send occurrences of events (see :mod:`ecsm_actors.api.event`) to be aggregated
        into their records; return how many records were written."""
        result = self.request(Op.RECORD_EVENTS, events=list(events))
        return int(result.get("recorded", 0)) if isinstance(result, Mapping) else 0

    def list_events(self, namespace: str | None = None, *, kind: str | None = None,
                    name: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        """The Event records of a namespace (all: None) or of one object, last seen at or
        after ``since`` (seconds since the epoch), least recently seen first."""
        result = self.request(Op.LIST_EVENTS, namespace=namespace, involvedKind=kind,
                              involvedName=name, since=since)
        items = result.get("items") if isinstance(result, Mapping) else None
        if not isinstance(items, list):
            raise Internal("undecodable reply from the registry: LIST_EVENTS without items")
        return [i for i in items if isinstance(i, dict)]

    def close(self) -> None:
        with self._lock:
            self._discard()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
