"""The registry process: the store behind a ROUTER socket, its events on a PUB socket.

Runs as ``python -m ecsm_actors registry [--conf FILE]``; the only process that opens
LMDB. One thread owns the store and both sockets; a daemon thread sends liveness reports.

Loop: wait for requests (or the next heartbeat), drain every request already queued,
answer reads from committed state, then apply all the writes in ONE transaction (group
commit: a refused write does not affect the others), publish their events, and only then
acknowledge them. So an acknowledged write is on disk, and every event is published after
its commit, in ``seq`` order, without gaps.

The LMDB store's log record of a turn goes to the disk while the turn makes its replies
and events; the turn's wait then syncs it (:mod:`ecsm_actors.store.log_sync`) before it
sends them, so no reply or event (nor a read of a later turn) ever shows a write a power
loss could take back.

Hostile input — malformed msgpack, wrong types, unknown op or version, an oversized or
too deeply nested frame, a wrong frame count — is answered ``BadRequest``; any unexpected
failure while serving a request is answered ``Internal`` (the one catch-all of this
process, per request: the other requests of the batch, and its writes, are served as if
nothing happened). Neither stops the registry; both are logged, the first
:data:`~ecsm_actors.failures.LOGGED_FAILURES` of each kind and then one in
:data:`~ecsm_actors.failures.LOG_EVERY`. SIGTERM/SIGINT end
the loop and the process exits 0.

With the store on etcd (``store.backend = "etcd"``) the events come from an etcd watch
of the store's objects (:mod:`ecsm_actors.store.etcd_events`), never from this
registry's write outcomes: the writes made through every registry on the store reach
every registry's subscribers, and the heartbeat carries the latest revision published.

A write with ``dryRun`` is answered at once, like a read: the store runs it in a
transaction it aborts, so it joins no group commit and publishes nothing.

The processes of this computer send their requests to the local stream endpoint
(``registry.stream_endpoint``, ``unix://<run dir>/registry.stream``;
:mod:`ecsm_actors.registry.stream`): the same documents, length-prefixed, on AF_UNIX
stream connections, whose descriptors the loop waits on in the same ``poll`` as the
ROUTER's. A turn takes the requests of the ROUTER and of every connection with a complete
frame, one from each in turn, and commits their writes together; each reply goes back on
the connection its request came from. The ROUTER stays bound and served as before.
A turn whose writes come from fewer connections than wrote in the last millisecond waits
up to ``registry.commit_delay`` (100 µs) for the others' next writes, which one commit
and one sync then serve too (:meth:`RegistryServer._gather`); a lone writer never waits.
Their subscribers receive the events on the local event stream
(``registry.stream_events_endpoint``, ``unix://<run dir>/events.stream``;
:mod:`ecsm_actors.registry.stream_events`): each event, as published on the PUB socket,
is written by the loop straight to every subscriber whose topics it matches, whose
descriptors the same ``poll`` waits on; the PUB socket stays bound and served.

With ``registry.remote_endpoint`` / ``remote_events_endpoint`` set, the same requests
and events are also served on TCP with CURVE, clients authenticated through ZAP and held
to their key's role (:mod:`ecsm_actors.registry.remote`); a request is answered on the
socket it came from. Plain TCP is served only on loopback (``check_served_endpoints``).

Memory is bounded against peers, in bytes:

* a turn of the loop takes at most :data:`MAX_BATCH` requests and stops early once they
  hold ``registry.max_batch_bytes`` (8 MiB; at least one request is taken): 40 writes of
  4 MiB from several clients are decoded and validated a few at a time, not all at once;
* what ZeroMQ queues for one peer is held to about ``registry.peer_queue_bytes`` (64 MiB)
  by high-water marks in messages (:class:`PeerQueues`): that budget divided by the
  largest message — replies ``max_frame_bytes`` (16), requests twice that (8), never
  fewer than 4 — and for a subscriber's events at least 1,000, at most
  ``registry.pub_hwm``. A client that pipelines requests and never reads its replies is
  sent no more once 16 are queued (the rest are dropped: a REQ client has only one
  outstanding); a subscriber that never reads loses events beyond 1,000 (a subscriber
  that reads detects the gap and replays). A reply larger than ``max_frame_bytes`` (a LIST
  of many objects) still counts as one message.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import select
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

from ecsm_actors import api, lifecycle, logs, protocol
from ecsm_actors.config import Config, RegistrySettings, check_served_endpoints, load_config
from ecsm_actors.errors import (
    BadRequest,
    EcsmActorsError,
    Forbidden,
    Internal,
    Invalid,
    RegistryError,
    StoreFull,
    describe_input,
)
from ecsm_actors.failures import FailureLog
from ecsm_actors.histogram import Histogram
from ecsm_actors.liveness import LivenessReporter
from ecsm_actors.protocol import ListView, Op, Request, describe_error
from ecsm_actors.registry.authorized import Role
from ecsm_actors.registry.remote import READ_OPS, RemoteEndpoints
from ecsm_actors.registry.stream import StreamConnection, StreamEndpoint, from_zmq
from ecsm_actors.registry.stream_events import StreamEventEndpoint
from ecsm_actors.store import WRITE_OPS, Outcome, Store, Write
from ecsm_actors.store.backends import open_event_store, open_store

if TYPE_CHECKING:
    from ecsm_actors.store.etcd_events import EtcdEventSource

logger = logging.getLogger(__name__)

#: Requests taken from the socket per turn of the loop (one transaction for their writes).
MAX_BATCH = 512
#: How long the loop sleeps at most between checks of the stop flag, seconds.
POLL_CAP = 0.1
#: A read returning this many documents releases the map pages it touched at once (right
#: after its reply is sent: the reply does not wait for it).
BULK = 1000
#: A reply this large is sent without a copy: ZeroMQ sends the reply's own bytes and lets
#: go of them once written (11 MB, a LIST of 10,000, took 7 ms to copy).
ZERO_COPY_BYTES = 1 << 20
#: WATCH_SINCE answers at most this many events (about this many bytes) per reply; its
#: resourceVersion then says how far the page goes, and the caller asks again from there.
WATCH_PAGE = 10_000
WATCH_PAGE_BYTES = 32 << 20
#: Expired Event records removed at most per heartbeat (the rest at the next ones).
EXPIRE_PER_BEAT = 1000
#: Event occurrences the registry takes per second (a token bucket, this deep): beyond,
#: RECORD_EVENTS is refused (StoreFull, not retried; the recorder counts them dropped),
#: so an event flood costs the object writes a bounded share of the loop. Recorders
#: aggregate and rate-limit: a healthy device sends a few a second.
EVENT_RATE = 500.0
EVENT_BURST = 1000.0
#: Fewest replies or requests queued per peer, whatever the byte budget.
MIN_PEER_MESSAGES = 4
#: Fewest events queued per subscriber: the events of a whole batch (up to MAX_BATCH)
#: are published at once, faster than a subscriber that reads can take them.
MIN_SUBSCRIBER_EVENTS = 1000

#: The commit delay (see RegistryServer._gather) waits only for connections whose
#: latest write's turn ended at most this long before, seconds: writers still busy, not
#: one that wrote once a while ago.
RECENT_WRITERS = 0.001
#: select() takes descriptors below this only (the commit delay's wait uses it: poll
#: and epoll wait in whole milliseconds).
FD_SETSIZE = 1024

Frames = list[bytes]
#: Where a reply goes: a ZeroMQ request's routing frames (on the socket the turn serves),
#: or a stream request's connection.
Envelope = Frames | StreamConnection
_MORE = zmq.NOBLOCK | zmq.SNDMORE
#: pyzmq's own send, without the Python method around it (``zmq.Socket.send``, which only
#: adds the draft sockets' ``routing_id`` and ``group``).
_zmq_send = zmq.backend.Socket.send
# Plain ints: pyzmq's enum members cost an enum operation on every use.
_EVENTS_OPTION = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


@dataclass(frozen=True, kw_only=True)
class PeerQueues:
    """High-water marks, in messages, that hold what is queued for one peer to about
    ``registry.peer_queue_bytes`` (see the module docstring)."""

    replies: int
    requests: int
    events: int

    @classmethod
    def from_settings(cls, r: RegistrySettings) -> PeerQueues:
        budget, frame = int(r.peer_queue_bytes), max(1, int(r.max_frame_bytes))
        events = max(MIN_SUBSCRIBER_EVENTS, budget // frame)
        return cls(replies=max(MIN_PEER_MESSAGES, budget // frame),
                   requests=max(MIN_PEER_MESSAGES, budget // (2 * frame)),
                   events=min(events, r.pub_hwm) if r.pub_hwm > 0 else events)


def split_envelope(frames: Frames) -> tuple[Frames, Frames]:
    """ROUTER frames → (routing envelope, body frames). A REQ peer sends an empty
    delimiter after its identity; a DEALER peer may not."""
    try:
        i = frames.index(b"", 1)
    except ValueError:
        return frames[:1], frames[1:]
    return frames[: i + 1], frames[i + 1:]


def bind(sock: zmq.Socket[Any], endpoint: str) -> None:
    """Bind ``endpoint``; for ipc, create the directory (0700) and remove a stale socket
    file (safe: we hold the store lock, so no other registry of this store is alive).
    The socket file is created 0600 — under a umask of 0177, so it is never reachable by
    group or others, not even for an instant (the run dir's 0700 is a second fence)."""
    umask = None
    if endpoint.startswith("ipc://"):
        path = Path(endpoint[len("ipc://"):])
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700)
        if path.exists() or path.is_symlink():
            logger.info("removing stale socket %s", path)
            path.unlink()
        umask = os.umask(0o177)
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as e:
        raise Internal(f"cannot bind {endpoint}: {e}") from e
    finally:
        if umask is not None:
            os.umask(umask)


class RegistryServer:
    """The store served over ZeroMQ. Create, then :meth:`serve` until the stop flag."""

    def __init__(self, cfg: Config, store: Store | None = None) -> None:
        self.cfg = cfg
        api.configure_limits(cfg.api)  # the upper bounds every write is validated against
        self.store = store or open_store(cfg)
        # Event records: a store of their own, written after the objects' commit.
        self.events = open_event_store(cfg)
        self._event_tokens, self._event_refill = EVENT_BURST, time.monotonic()
        self.max_frame = int(cfg.registry.max_frame_bytes)
        self.max_batch_bytes = int(cfg.registry.max_batch_bytes)
        self.commit_delay = float(cfg.registry.commit_delay)
        self._writers = {}
        self.queues = PeerQueues.from_settings(cfg.registry)
        check_served_endpoints(cfg)  # plain TCP beyond loopback is never opened
        self.context: zmq.Context[Any] = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 200)
        # Frames a little past the limit still get a BadRequest; huge ones cost the
        # sender its connection instead of our memory.
        self.router.setsockopt(zmq.MAXMSGSIZE, 2 * self.max_frame + (64 << 10))
        # Mandatory: a reply refused at the high-water mark raises instead of vanishing
        # (see _send).
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router.setsockopt(zmq.SNDHWM, self.queues.replies)
        self.router.setsockopt(zmq.RCVHWM, self.queues.requests)
        # An XPUB: a PUB socket that also reports its subscriptions (see _pub_topics).
        self.pub = self.context.socket(zmq.XPUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.SNDHWM, self.queues.events)
        # What a peer may send it: subscriptions only, each of a topic prefix (a larger
        # message drops its peer; more than RCVHWM unread ones are dropped).
        self.pub.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_SUBSCRIPTION_BYTES)
        self.pub.setsockopt(zmq.RCVHWM, 1000)
        bind(self.router, cfg.registry_endpoint)
        bind(self.pub, cfg.events_endpoint)
        self._router_fd: int = self.router.getsockopt(zmq.FD)
        self._pub_fd: int = self.pub.getsockopt(zmq.FD)
        #: The topics subscribed on the PUB socket, as it reports them (a topic when its
        #: first subscriber subscribes, again when its last one is gone): while there are
        #: none, nothing is sent there (the processes of this computer subscribe on the
        #: event stream; a send to no one cost the loop a ``poll`` and 7 µs an event).
        self._pub_topics: set[bytes] = set()
        #: With etcd, the events of the store's watch (see the module docstring).
        self.event_source: EtcdEventSource | None = None
        if cfg.store.backend == "etcd":
            from ecsm_actors.store.etcd_events import EtcdEventSource
            self.event_source = EtcdEventSource.from_config(
                cfg, epoch=lambda: self.store.epoch, context=self.context)
        self.stats: dict[str, Any] = {"requests": 0, "writes": 0, "commits": 0,
                                      "maxBatch": 0, "badRequests": 0, "internalErrors": 0}
        self.failures = FailureLog(logger, counts=self.stats)
        #: The local stream endpoint (None: ``registry.stream_endpoint`` is off), and the
        #: zmq.Poller it is watched by (made again when the remote sockets are).
        self.stream: StreamEndpoint | None = None
        self._stream_poller: zmq.Poller | None = None
        if cfg.registry_stream_endpoint:
            self.stream = StreamEndpoint(cfg.registry_stream_endpoint,
                                         max_frame=self.max_frame,
                                         queue_bytes=int(cfg.registry.peer_queue_bytes),
                                         failures=self.failures)
        #: The local event stream endpoint (None: ``registry.stream_events_endpoint`` is
        #: off), beside the PUB socket.
        self.event_stream: StreamEventEndpoint | None = None
        if cfg.registry_stream_events_endpoint:
            self.event_stream = StreamEventEndpoint(
                cfg.registry_stream_events_endpoint, hwm=self.queues.events,
                queue_bytes=int(cfg.registry.peer_queue_bytes), failures=self.failures)
        #: Writes per commit (group commit), for ``ecsm-operator metrics``.
        self.batch_sizes = Histogram()
        # The socket the current turn serves: replies go back where requests came from.
        self._serving = self.router
        self.remote: RemoteEndpoints | None = None
        if cfg.registry.remote_endpoint or cfg.registry.remote_events_endpoint:
            self.remote = RemoteEndpoints(
                self.context, cfg, max_msg_size=2 * self.max_frame + (64 << 10),
                replies_hwm=self.queues.replies, requests_hwm=self.queues.requests,
                events_hwm=self.queues.events, stats=self.stats)
        self._refresh_stats()
        self.liveness = LivenessReporter(self.context, cfg.heartbeat_endpoint, "registry",
                                         cfg.registry.heartbeat_interval,
                                         report=lambda: {"stats": {
                                             **self.stats,
                                             "batchSize": self.batch_sizes.to_dict()}})
        logger.info("registry serving %s%s, events on %s, epoch %s, resourceVersion %d; "
                    "queued per peer at most %d replies, %d requests, %d events",
                    cfg.registry_endpoint, f" and {cfg.registry_stream_endpoint}"
                    if self.stream is not None else "", cfg.events_endpoint, self.store.epoch,
                    self.store.resource_version, self.queues.replies, self.queues.requests,
                    self.queues.events)

    def serve(self, stop: lifecycle.StopFlag) -> None:
        self.liveness.start()
        if self.event_source is not None:
            self.event_source.start()
        # Everything allocated so far lives as long as the process: keep it out of the
        # cyclic GC's way (requests allocate many short-lived dicts).
        gc.collect()
        gc.freeze()
        # Then the young collections run when the loop is idle (nothing queued, about to
        # wait: _router_ready) or at the heartbeat, not inside whichever request's
        # allocation crossed the threshold.
        collector = self._collector = lifecycle.IdleCollector()
        interval = self.cfg.registry.heartbeat_interval
        next_beat = time.monotonic()
        poller, generation = self._poller(), self._generation()
        remote_router = self.remote.router if self.remote else None
        alone = self._router_alone()
        self._router_armed = False
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_beat:
                self._heartbeat()
                collector.collect()
                next_beat = now + interval
            if self._generation() != generation:  # the remote sockets were bound again
                poller, generation = self._poller(), self._generation()
                remote_router = self.remote.router if self.remote else None
            timeout = max(0.0, min(next_beat - now, POLL_CAP))
            if alone is not None:
                self._serve_local(alone, timeout)
                continue
            stream = self.stream
            if stream is not None and stream.has_frames:
                timeout = 0.0
            ready = dict(poller.poll(int(timeout * 1000)))
            # The descriptors first: serving one closes no other, so a connection
            # accepted in the round never gets a result polled for the descriptor number
            # of one closed before it (a publish can close a subscriber: after them).
            event_stream = self.event_stream
            for key, events in ready.items():
                if key.__class__ is not int:
                    continue
                if event_stream is not None and event_stream.owns(key):
                    event_stream.on_event(key, from_zmq(events))
                elif stream is not None:
                    stream.on_event(key, from_zmq(events))
            if self.pub in ready:
                self._take_pub_subscriptions()
            if self.event_source is not None and self.event_source.socket in ready:
                for frames in self.event_source.receive():
                    self._publish(frames)
            router_ready = self.router in ready
            if router_ready or (stream is not None and stream.has_frames):
                self.serve_batch(router=router_ready)
            if remote_router is not None and remote_router in ready:
                self._serving = remote_router
                try:
                    self.serve_batch()
                finally:
                    self._serving = self.router
            # Handshakes last: a flood of them delays only itself.
            if self.remote is not None and self.remote.zap in ready:
                self.remote.serve_zap()
        collector.close()
        st = self.stats
        logger.info("registry stopping (signal %s): %d requests, %d writes in %d commits "
                    "(largest batch %d), %d bad requests, %d internal errors", stop.signum,
                    st["requests"], st["writes"], st["commits"], st["maxBatch"],
                    st["badRequests"], st["internalErrors"])
        if self.remote is not None:
            logger.info("remote: %d handshakes admitted, %d refused; %d requests forbidden, "
                        "%d dropped (key withdrawn); %d rebinds", st["remoteAdmitted"],
                        st["remoteRefused"], st["remoteForbidden"], st["remoteDropped"],
                        st["remoteRebinds"])

    def _poller(self) -> zmq.Poller:
        """A poller of the request sockets and the ZAP handler (made once per binding:
        Socket.poll makes one per call)."""
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.pub, zmq.POLLIN)  # its subscriptions
        if self.stream is not None:
            self.stream.watch(poller, replacing=self._stream_poller)
        if self.event_stream is not None:
            self.event_stream.watch(poller, replacing=self._stream_poller)
        self._stream_poller = poller
        if self.event_source is not None:
            poller.register(self.event_source.socket, zmq.POLLIN)
        if self.remote is not None:
            if self.remote.router is not None:
                poller.register(self.remote.router, zmq.POLLIN)
            poller.register(self.remote.zap, zmq.POLLIN)
        return poller

    def _router_alone(self) -> select.poll | None:
        """The local router's descriptor and the stream endpoint's to wait on (see
        :meth:`_serve_local`) when they are all the loop serves (no etcd watch, no remote
        endpoints), else None."""
        if self.event_source is not None or self.remote is not None:
            return None
        fds = select.poll()
        fds.register(self._router_fd, select.POLLIN)
        fds.register(self._pub_fd, select.POLLIN)  # the PUB socket's subscriptions
        if self.stream is not None:
            self.stream.watch(fds)
        if self.event_stream is not None:
            self.event_stream.watch(fds)
        return fds

    def _serve_local(self, fds: select.poll, timeout: float) -> None:
        """One wait of the loop serving its local sockets alone, up to ``timeout``
        seconds, then one turn if a request came: ``zmq_poll`` with fewer system calls (it
        polls once without waiting and asks for ``EVENTS`` before and after it waits), the
        stream's descriptors in the same ``poll``. The router's descriptor signals a
        request only once a look found none queued (libzmq wakes a pipe's reader only when
        it went idle): a turn that ended on such a look, nothing sent since, leaves it
        armed (``_router_armed``); otherwise ``EVENTS`` is asked first. With requests
        queued already, the stream's descriptors are still looked at (without waiting):
        its requests join the same turn. The event stream's descriptors (subscribers
        connecting, reading what was queued for them) are served in the same wait, and the
        PUB socket's (its subscriptions: signalled reliably while nothing is sent there, so
        while none is known, and taken before a turn made without a wait then; once one
        is, libzmq's sends take them, and the heartbeat those a send went past)."""
        stream, event_stream = self.stream, self.event_stream
        router = not self._router_armed and bool(self.router.get(_EVENTS_OPTION) & _POLLIN)
        if not router:
            self._router_armed = True
        if stream is None:
            if router and event_stream is None:
                if not self._pub_topics:  # a turn without a wait: taken here (no send does)
                    self._take_pub_subscriptions()
                self.serve_batch()
                return
            queued = router  # the event stream's descriptors looked at all the same
        else:
            queued = router or stream.has_frames
        if not queued:
            self._collector.collect()  # idle: the GC's collection due, if any (see serve)
            idle = getattr(self.store, "idle", None)  # LMDB: its batch committed when due
            due = idle() if idle is not None else None
            if due is not None:  # woken once it is due (+1 ms: the wait is whole ms)
                timeout = min(timeout, due + 0.001)
        router_fd, pub_fd = self._router_fd, self._pub_fd
        for fd, events in fds.poll(0 if queued else int(timeout * 1000)):
            if fd == router_fd:
                self._router_armed = False  # the receive takes the pending commands
                router = True
            elif fd == pub_fd:
                self._take_pub_subscriptions()
            elif event_stream is not None and event_stream.owns(fd):
                event_stream.on_event(fd, events)
            else:
                stream.on_event(fd, events)  # type: ignore[union-attr]
        if router or (stream is not None and stream.has_frames):
            self.serve_batch(router=router)

    def _generation(self) -> int:
        return self.remote.generation if self.remote is not None else 0

    def close(self) -> None:
        self.liveness.close()
        if self.remote is not None:
            self.remote.close()
        if self.event_source is not None:
            self.event_source.close()
        if self.stream is not None:
            self.stream.shut()
        if self.event_stream is not None:
            self.event_stream.shut()
        self.router.close()
        self.pub.close()
        self.context.term()
        self.store.close()
        self.events.close()

    # -- one turn of the loop ------------------------------------------------------------

    def serve_batch(self, *, router: bool = True) -> None:
        """One turn: answer the requests already queued — at most MAX_BATCH of them,
        fewer once they hold ``max_batch_bytes`` — reads and refusals at once, then
        commit the batch's writes and acknowledge them. Every request gets exactly one
        answer, whatever it contains. ``router``: the socket served may have requests
        queued (else only the stream's connections are taken from)."""
        writes: list[tuple[Envelope, Request]] = []
        records: list[tuple[Envelope, Request]] = []
        taken = 0
        for envelope, body in self._requests(router, writes):
            taken += sum(map(len, body))
            self.stats["requests"] += 1
            try:
                if len(body) != 1:
                    raise BadRequest(f"expected 1 body frame, got {len(body)}")
                request = protocol.decode_request(
                    body[0], self.max_frame, max_writes=self.cfg.registry.max_batch_writes)
                if request.op in WRITE_OPS and request.fields.get("dryRun"):
                    self._send(envelope, self._dry_run(request))
                elif request.op in WRITE_OPS:
                    writes.append((envelope, request))
                elif request.op is Op.RECORD_EVENTS:
                    records.append((envelope, request))
                else:
                    self._send(envelope, self._read(request))
                    if self._release_due:
                        self._release_after_read()
            except Exception as e:  # noqa: BLE001 - the process boundary: answer, keep serving
                self._send(envelope, self._refusal(body, e))
            if taken >= self.max_batch_bytes:
                break
        if writes:
            self._write(writes)
            if self.commit_delay > 0:
                now, writers = time.monotonic(), self._writers
                for envelope, _ in writes:
                    if envelope.__class__ is StreamConnection:
                        writers[envelope] = now
        if records:  # after the objects' writes are acknowledged: never delays them
            self._record_events(records)

    def _requests(self, router: bool, writes: list[tuple[Envelope, Request]],
                  ) -> Iterator[tuple[Envelope, Frames]]:
        """The requests of a turn, at most MAX_BATCH: from the socket served (when
        ``router``) and, on the local router's turn, from the stream's connections with a
        complete frame, one from each source in turn (fair: a busy peer does not crowd
        the others out of a turn). Each is taken as it is served, so a turn that stops
        early (``max_batch_bytes``) leaves the rest where they were. Once none is left,
        a turn holding ``writes`` may wait a little for more (:meth:`_gather`)."""
        stream = self.stream if self._serving is self.router else None
        n, first, deadline = 0, True, 0.0
        while n < MAX_BATCH:
            before = n
            if router:
                frames = self._recv(queued_only=not first)
                first = False
                if frames is None:
                    router = False
                else:
                    n += 1
                    yield split_envelope(frames)
            if stream is not None and stream.pending:
                take = stream.take
                for conn in stream.serving():
                    if n >= MAX_BATCH:
                        break
                    frame = take(conn)
                    if frame is not None:
                        n += 1
                        yield conn, [frame]
            if n == before:
                if stream is None or not writes or self.commit_delay <= 0:
                    return
                if not deadline:
                    deadline = time.monotonic() + self.commit_delay
                if not self._gather(stream, writes, deadline):
                    return

    #: The stream connections that wrote lately, each with when its latest write's turn
    #: ended (see :meth:`_gather`; those not seen for RECENT_WRITERS are dropped there).
    _writers: dict[StreamConnection, float]

    def _drop_writers(self, since: float) -> None:
        """Let go of the commit delay's writers closed, or not seen since ``since``."""
        self._writers = {c: at for c, at in self._writers.items() if at >= since and c.open}

    def _gather(self, stream: StreamEndpoint, writes: list[tuple[Envelope, Request]],
                deadline: float) -> bool:
        """The commit delay (``registry.commit_delay``), as PostgreSQL's ``commit_delay``
        with ``commit_siblings``: a turn whose writes come from fewer stream connections
        than wrote in the turns of the last :data:`RECENT_WRITERS` seconds waits until
        ``deadline`` for the others, which were sent their replies and are likely about
        to write again, so that one commit and one sync serve them all (without it, 4
        writers settle in two pairs that take turns, 2 writes a commit). A lone writer
        (every recent writer here already) and reads never wait; the wait ends as soon
        as a frame is complete. Whether one is now (the turn takes it)."""
        if len(writes) >= len(self._writers):
            return False
        self._drop_writers(since=deadline - self.commit_delay - RECENT_WRITERS)
        here = {e for e, _ in writes if e.__class__ is StreamConnection}
        missing = {c.fd: c for c in self._writers
                   if c not in here and not c.blocked and not c.pending}
        if not missing or max(missing) >= FD_SETSIZE:
            return False
        fds, timeout = list(missing), 0.0  # first what came while the turn decoded
        while True:
            try:
                ready = select.select(fds, (), (), timeout)[0]
            except (OSError, ValueError):  # a connection closed meanwhile: commit now
                return False
            for fd in ready:
                missing[fd].read()
            if stream.has_frames:
                return True
            fds = [fd for fd, c in missing.items() if c.open and not c.pending]
            timeout = deadline - time.monotonic()
            if timeout <= 0 or not fds:
                return False

    def _record_events(self, records: list[tuple[Envelope, Request]]) -> None:
        """Aggregate RECORD_EVENTS into the event store (one transaction each), publish
        the records written, acknowledge ``{recorded: n}``. No request window: a retried
        occurrence adds its count again (a count is an approximation, as Kubernetes'
        is) and moves no timestamp, so replaying it is harmless."""
        epoch = self.store.epoch
        for envelope, request in records:
            try:
                self._take_event_tokens(len(request.fields["events"]))
                written = self.events.record(request.fields["events"])
                for w in written:
                    self._publish(protocol.encode_event_record(epoch, w.added, w.record))
                reply = protocol.encode_reply(request.id, epoch, {"recorded": len(written)})
            except RegistryError as e:
                reply = protocol.encode_error(request.id, epoch, e)
            except Exception as e:  # noqa: BLE001 - the process boundary: answer, keep serving
                reply = protocol.encode_error(request.id, epoch,
                                              self._internal(request.op, e))
            self._send(envelope, reply)

    def _refusal(self, body: Frames, error: Exception) -> bytes:
        """The answer to a request that could not be served: its BadRequest, or Internal
        for anything unexpected (logged with its traceback)."""
        if isinstance(error, BadRequest):
            refusal: RegistryError = error
            self.failures.record("badRequests", "bad request", error)
        else:
            refusal = self._internal("a request", error)
        rid = None
        if len(body) == 1 and len(body[0]) <= self.max_frame:
            rid = protocol.request_id_of(body[0])
        return protocol.encode_error(rid, self.store.epoch, refusal)

    def _internal(self, what: str, error: Exception) -> Internal:
        """Log an unexpected failure (rate-limited) and make its Internal answer."""
        self.failures.record("internalErrors", f"internal error serving {what}", error)
        return Internal(f"internal error: {describe_error(error)}")

    #: The read just answered returned at least BULK documents: release the store's
    #: pages once its reply is sent (:meth:`_release_after_read`).
    _release_due: bool = False

    def _release_after_read(self) -> None:
        """Release the pages a bulk read touched (``Store.release_pages``: the map's
        pages, the C heap's free ones; 3 ms and more after a LIST of 10,000), its reply
        already sent. Its one answer is gone: a failure is recorded, never answered."""
        self._release_due = False
        try:
            self.store.release_pages()
        except Exception as e:  # noqa: BLE001 - the reply is sent: record, keep serving
            self.failures.record("internalErrors", "cannot release the store's pages", e)

    def _read(self, request: Request) -> bytes:
        epoch = self.store.epoch
        try:
            reply = self._dispatch_read(request)
            take_stale = getattr(self.store, "take_stale", None)  # etcd: quorum lost
            return protocol.mark_stale(reply) if take_stale and take_stale() else reply
        except RegistryError as e:
            return protocol.encode_error(request.id, epoch, e)
        except Exception as e:  # noqa: BLE001 - the process boundary: answer, keep serving
            return protocol.encode_error(request.id, epoch, self._internal(request.op, e))

    def _take_event_tokens(self, n: int) -> None:
        now = time.monotonic()
        self._event_tokens = min(EVENT_BURST, self._event_tokens
                                 + (now - self._event_refill) * EVENT_RATE)
        self._event_refill = now
        if n > self._event_tokens:
            self.stats["eventsRefused"] = self.stats.get("eventsRefused", 0) + n
            raise StoreFull(f"too many events: the registry takes {EVENT_RATE:,.0f} a "
                            f"second; these {n} were dropped")
        self._event_tokens -= n

    def _dispatch_read(self, request: Request) -> bytes:
        f, rid, epoch = request.fields, request.id, self.store.epoch
        if request.op is Op.PING:
            return protocol.encode_reply(rid, epoch, {
                "epoch": epoch, "resourceVersion": self.store.resource_version,
                "pid": os.getpid()})
        if request.op is Op.LIST_EVENTS:
            items = self.events.list(f["namespace"], f["involvedKind"], f["involvedName"],
                                     f["since"])
            return protocol.encode_reply(rid, epoch, {"items": items})
        if request.op is Op.WATCH_SINCE:
            source = self.event_source or self.store
            raw = source.watch_since_raw(f["resourceVersion"], max_events=WATCH_PAGE,
                                         max_bytes=WATCH_PAGE_BYTES)
            self._release_due = raw.count >= BULK
            return protocol.encode_reply_with_raw_list(
                rid, epoch, {"resourceVersion": raw.resource_version}, "events",
                raw.count, raw.data)
        if f["kind"] not in api.KINDS:
            raise Invalid(f"unknown kind {describe_input(f['kind'])}")
        if request.op is Op.GET:
            get_raw = getattr(self.store, "get_raw", None)  # LMDB: the stored bytes as they are
            if get_raw is not None:
                return protocol.encode_reply_encoded(
                    rid, epoch, get_raw(f["kind"], f["namespace"], f["name"]))
            obj = self.store.get(f["kind"], f["namespace"], f["name"])
            return protocol.encode_reply(rid, epoch, obj)
        if request.op is Op.LIST and "limit" in f:
            return self._list_page(request)
        if request.op is Op.LIST:
            if f.get("view") == ListView.VERSIONS:
                versions, rv = self.store.list_versions(f["kind"], f["namespace"])
                self._release_due = len(versions) >= BULK
                return protocol.encode_reply(rid, epoch, {"resourceVersion": rv,
                                                          "versions": versions})
            if f.get("view") not in (None, ListView.FULL):
                raise BadRequest(f"LIST: unknown view {describe_input(f['view'])} "
                                 "(full or versions)")

            def head(count: int, rv: int) -> bytes:  # the reply made in the store's one copy
                return protocol.raw_list_reply_head(rid, epoch, {"resourceVersion": rv},
                                                    "items", count)

            raw = self.store.list_raw(f["kind"], f["namespace"], head=head)
            self._release_due = raw.count >= BULK
            return raw.data
        raise BadRequest(f"op {request.op} is not a read")

    def _list_page(self, request: Request) -> bytes:
        """One page of a LIST with ``limit`` (see :meth:`Store.list_page`)."""
        f = request.fields
        if f.get("view") not in (None, ListView.FULL, ListView.VERSIONS):
            raise BadRequest(f"LIST: unknown view {describe_input(f['view'])} "
                             "(full or versions)")
        versions = f.get("view") == ListView.VERSIONS
        page = self.store.list_page(f["kind"], f["namespace"], limit=f["limit"],
                                    continue_token=f.get("continue"), versions=versions)
        self._release_due = page.count >= BULK
        head = {"resourceVersion": page.resource_version, "continue": page.continue_token,
                "remainingItemCount": page.remaining}
        if versions:
            return protocol.encode_reply(request.id, self.store.epoch,
                                         {**head, "versions": page.versions})
        return protocol.encode_reply_with_raw_list(request.id, self.store.epoch, head,
                                                   "items", page.count, page.data)

    def _write(self, writes: list[tuple[Envelope, Request]]) -> None:
        batch = [Write(r.op, r.fields) for _, r in writes]
        # LMDB: committed, its log record's sync under way while the replies are made;
        # nothing leaves before that sync is done (waited for below).
        store = self.store
        execute = getattr(store, "execute_unsynced", None) or store.execute
        try:
            results = execute(batch)
        except Exception:  # noqa: BLE001 - the process boundary: isolate the failing write
            logger.exception("batch of %d writes failed; retrying one by one", len(batch))
            results = [self._write_alone(w) for w in batch]
        n, stats = len(batch), self.stats
        stats["writes"] += n
        stats["commits"] += 1
        if n > stats["maxBatch"]:
            stats["maxBatch"] = n
        self.batch_sizes.observe(n)
        epoch = store.epoch
        replies: list[bytes] = []
        replays = 0
        for (_, request), result in zip(writes, results, strict=True):
            if result.replayed:  # a retry answered from the request window, not applied
                replays += 1
            try:
                if isinstance(result, RegistryError):
                    reply = protocol.encode_error(request.id, epoch, result)
                else:
                    reply = protocol.encode_reply_encoded(request.id, epoch, result.encoded,
                                                          replayed=result.replayed)
            except Exception as e:  # noqa: BLE001 - the process boundary: answer, keep serving
                reply = protocol.encode_error(request.id, epoch,
                                              self._internal(request.op, e))
            replies.append(reply)
        if replays:
            stats["replays"] = stats.get("replays", 0) + replays
        wait_synced = getattr(store, "wait_synced", None)
        if wait_synced is not None:
            wait_synced()  # WalFailed (the process stops) when the disk refused
        # Published before the acknowledgements: both follow the durable commit, and a
        # watcher then never lags the writer it races with. (With etcd: from the store's
        # watch.)
        publish = self._publish
        for result in results if self.event_source is None else ():
            if isinstance(result, Outcome):
                for stored in result.events:
                    publish([stored.topic, stored.body])
        sock, send = self._serving, self._send_on
        for (envelope, _), reply in zip(writes, replies, strict=True):
            send(sock, envelope, reply)

    def _dry_run(self, request: Request) -> bytes:
        """The answer to a write with ``dryRun``: what it would do, nothing stored or
        published (see :meth:`Store.dry_run`)."""
        epoch = self.store.epoch
        try:
            result = self.store.dry_run(Write(op=request.op, fields=request.fields))
        except Exception as e:  # noqa: BLE001 - the process boundary: answer, keep serving
            return protocol.encode_error(request.id, epoch, self._internal(request.op, e))
        self.stats["dryRuns"] = self.stats.get("dryRuns", 0) + 1
        if isinstance(result, RegistryError):
            return protocol.encode_error(request.id, epoch, result)
        return protocol.encode_reply_encoded(request.id, epoch, result.encoded)

    def _write_alone(self, write: Write) -> Outcome | RegistryError:
        try:
            return self.store.execute([write])[0]
        except Exception as e:  # noqa: BLE001 - the process boundary: answer, keep serving
            return self._internal(write.op, e)

    # -- sockets -------------------------------------------------------------------------

    def _recv(self, *, queued_only: bool = False) -> Frames | None:
        """The next queued request's frames, or None. Frames carry their own "more" flag:
        recv_multipart asks for socket options, each one a Python enum lookup in pyzmq,
        which cost more than the receive itself.

        ``queued_only``: return None at once unless a message is queued (``EVENTS``, with
        plain ints: 2 µs), instead of a receive that raises ``zmq.Again`` (6 µs, ZMQError
        built in Python) — what ends every turn of the loop otherwise.

        On the remote socket, a request from a key that lost its access is dropped
        unanswered, and one from a ``read`` key that is not a read is answered
        ``Forbidden`` here: neither reaches the request path."""
        recv = self._serving.recv
        remote = self._serving is not self.router
        if queued_only and not self._serving.get(_EVENTS_OPTION) & _POLLIN:
            self._router_armed = not remote
            return None
        while True:
            try:
                frame = recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                self._router_armed = not remote
                return None
            frames = [frame.bytes]
            while frame.more:
                frame = recv(zmq.NOBLOCK, copy=False)
                frames.append(frame.bytes)
            if not remote or self._admitted(frames, frame):
                return frames

    def _admitted(self, frames: Frames, last: zmq.Frame) -> bool:
        """Whether a remote request goes on to the request path (its key, from the ZAP
        User-Id its frames carry, still authorized and allowed this op)."""
        try:
            name = last.get("User-Id")
        except zmq.ZMQError:
            name = None
        assert self.remote is not None
        key = self.remote.keys.current.by_name.get(name)
        if key is None:
            self.stats["remoteDropped"] += 1
            return False
        if key.role is Role.WRITE:
            return True
        envelope, body = split_envelope(frames)
        try:
            request = protocol.decode_request(
                body[0], self.max_frame, max_writes=self.cfg.registry.max_batch_writes)
        except Exception:  # noqa: BLE001 - malformed: the request path answers BadRequest
            return True
        if request.op in READ_OPS:
            return True
        self.stats["requests"] += 1
        self.stats["remoteForbidden"] += 1
        self._send(envelope, protocol.encode_error(request.id, self.store.epoch, Forbidden(
            f"key {key.name} has the role read: {request.op} refused (a write key is "
            "needed)")))
        return False

    # Frame by frame rather than send_multipart, which checks each frame's type in Python:
    # these run for every request and every event.

    def _send(self, envelope: Envelope, reply: bytes) -> None:
        """Send a reply on the socket being served."""
        self._send_on(self._serving, envelope, reply)

    def _send_on(self, sock: zmq.Socket[Any], envelope: Envelope, reply: bytes) -> None:
        """Send a reply on ``sock`` (a stream request's on its connection); a peer that
        is gone or does not read its replies loses it.

        libzmq learns that a peer read its messages through commands the socket
        processes lazily, so a pipe can look full (at SNDHWM) while the peer has read
        everything: about one reply in 20,000 to a REQ client (one request outstanding)
        was dropped that way, silently. So the ROUTER is mandatory (EAGAIN instead of a
        silent drop), and on EAGAIN the pending commands are processed (reading
        ``EVENTS`` does that) and the reply sent once more; still full, the peer is
        really not reading."""
        if envelope.__class__ is StreamConnection:
            envelope.send(reply)  # type: ignore[union-attr]
            return
        send = _zmq_send.__get__(sock)
        self._router_armed = False  # a send may take the commands that would signal
        for attempt in (1, 2):
            try:
                for frame in envelope:
                    send(frame, _MORE)
                send(reply, zmq.NOBLOCK, copy=len(reply) < ZERO_COPY_BYTES)
                return
            except zmq.Again:
                if attempt == 2:
                    logger.debug("reply not sent: the peer does not read")
                    return
                sock.getsockopt(zmq.EVENTS)
            except zmq.ZMQError as e:  # the peer is gone: its loss
                logger.debug("reply not sent: %s", e)
                return

    def _take_pub_subscriptions(self) -> None:
        """Take what the PUB socket reports, up to the last: each message a topic
        subscribed (``\\x01`` and the topic) or no longer (``\\x00``), once for all its
        subscribers (see :attr:`_pub_topics`). Reading ``EVENTS`` processes the socket's
        pending commands (new subscribers, their subscriptions); taken to the last, its
        descriptor signals the next one."""
        pub, topics = self.pub, self._pub_topics
        while pub.get(_EVENTS_OPTION) & _POLLIN:
            try:
                message = pub.recv(zmq.NOBLOCK)
            except zmq.ZMQError:
                return
            if message[:1] == b"\x01":
                topics.add(message[1:])
            elif message[:1] == b"\x00":
                topics.discard(message[1:])

    def _publish(self, frames: Frames) -> None:
        """Publish an event (or a heartbeat) to every subscriber: on the PUB socket only
        while someone subscribes there (a subscriber whose subscription is not taken yet
        misses it, as a PUB socket's late joiner does: the next event or heartbeat shows
        the gap, replayed)."""
        if self._pub_topics:
            self._publish_on(self.pub, frames)
        if self.event_stream is not None:
            self.event_stream.publish(frames[0], frames[-1])
        if self.remote is not None and self.remote.pub is not None:
            self._publish_on(self.remote.pub, frames)

    @staticmethod
    def _publish_on(pub: zmq.Socket[Any], frames: Frames) -> None:
        send = _zmq_send.__get__(pub)
        try:
            for frame in frames[:-1]:
                send(frame, _MORE)
            send(frames[-1], zmq.NOBLOCK)
        except zmq.ZMQError as e:  # PUB drops at HWM; a subscriber repairs by replay
            logger.debug("event not published: %s", e)

    def _heartbeat(self) -> None:
        self._take_pub_subscriptions()  # those a send took the signal of, when there are
        seq = (self.store.resource_version if self.event_source is None
               else self.event_source.published)
        self._publish(protocol.encode_heartbeat(self.store.epoch, seq))
        if self.remote is not None:
            self.remote.check_keys()  # a revoked key is cut off within a heartbeat
        if self.stream is not None:
            self.stream.heartbeat()
            self.stats["streamConnections"] = len(self.stream.connections)
            # The commit delay's writers: one closed since, or not seen lately, let go
            # (a closed connection keeps what it sent of a frame; else only a turn that
            # waits would drop it).
            self._drop_writers(since=time.monotonic() - RECENT_WRITERS)
        if self.event_stream is not None:
            self.event_stream.heartbeat()
            self.stats["streamSubscribers"] = len(self.event_stream.subscribed)
            self.stats["streamEventsDropped"] = self.event_stream.dropped
        self._refresh_stats()
        self.store.release_pages()
        try:
            self.events.expire(EXPIRE_PER_BEAT)
        except RegistryError as e:
            self.failures.record("internalErrors", "cannot expire events", e)

    def _refresh_stats(self) -> None:
        self.stats.update(resourceVersion=self.store.resource_version, epoch=self.store.epoch,
                          usage=round(self.store.usage(), 4), events=len(self.events),
                          eventStore=dict(self.events.stats))
        if self.event_source is not None:
            self.stats["eventSource"] = dict(self.event_source.stats)
        wal_stats = getattr(self.store, "wal_stats", None)  # the LMDB store's log
        if wal_stats is not None:
            self.stats["wal"] = wal_stats()


def main(argv: list[str] | None = None) -> int:
    """Process main of ``python -m ecsm_actors registry``."""
    parser = argparse.ArgumentParser(prog="python -m ecsm_actors registry")
    parser.add_argument("--conf", help="config file (TOML)")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.conf)
        check_served_endpoints(cfg)
    except EcsmActorsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logs.setup(cfg.log, "registry")
    stop = lifecycle.StopFlag().install()
    try:
        cfg.ensure_run_dir()
        server = RegistryServer(cfg)
    except (EcsmActorsError, OSError) as e:
        logger.error("registry cannot start: %s", e)
        return 1
    # Armed once the store is open and the sockets bound: a registry forked by the zygote
    # waits here for its adoption by the supervisor, which has taken place meanwhile.
    lifecycle.die_with_parent()
    try:
        server.serve(stop)
    finally:
        server.close()
    logger.info("registry stopped")
    return 0
