"""The watch events of a registry on etcd: an etcd watch of ``<prefix>objects/`` turned into
the event frames the LMDB store publishes, and ``WATCH_SINCE`` answered from etcd.

Runs in the registry process. :class:`EtcdEventSource` owns one thread that watches the
objects (``prev_kv`` on) and hands every revision, already encoded, to the registry's loop
over an inproc PAIR socket the loop polls with its request sockets: the loop never waits
on etcd, and a revision's events travel in one ZeroMQ message, so they are published
together, never split by a heartbeat. Since the watch sees every write to the prefix,
the writes made through any registry on the same store reach every registry's
subscribers, and a registry publishes nothing from its own write outcomes.

An event, per changed key (``<prefix>objects/<kind>/<namespace>/<name>``): ``ADDED`` when
the key's ``create_revision`` equals its ``mod_revision``, else ``MODIFIED``; ``DELETED``
with the object before the delete (``prev_kv``). ``seq`` and ``resourceVersion`` are the
etcd revision, as is the object's ``metadata.resourceVersion``. The chain
(:class:`~ecsm_actors.protocol.ChainMark`): ``prev`` is the revision of the previous
revision published, or the revision the watch started after (the stream holds nothing
between); ``index``/``last`` place the events of a revision (one etcd txn, e.g. an atomic
BATCH) among themselves. The heartbeat carries :attr:`EtcdEventSource.published`.

After an etcd failure the watch resumes from the revision after the last one seen, on
whichever member answers. When that revision was compacted meanwhile (or the cluster was
replaced: its id changed, or its revision went back), the events in between are gone:
the watch restarts from etcd's current revision, ``prev`` and the heartbeat jump to it,
and a subscriber behind it replays, gets ``Expired`` and relists.

``WATCH_SINCE rv`` (:func:`watch_since_raw`): the recent events come from the source's
own window (the bodies it published: the last :data:`WINDOW` revisions, at most
:data:`WINDOW_BYTES`); older ones from
an etcd watch of the prefix from ``rv + 1``, read up to a progress mark: a key
(``<prefix>progress``) is put first, and its revision ends the read. An etcd watch has no
end of history, and revisions of keys outside the prefix (another program sharing the
cluster) may never show in it: the mark is the one revision surely seen. A compacted
``rv``, or one from the future, answers ``Expired``.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

import zmq

from ecsm_actors.errors import Expired, RegistryError, Unavailable
from ecsm_actors.etcd.client import EtcdClient, Watch, WatchEvent, prefix_end
from ecsm_actors.protocol import EventType, encode_event_body, event_topic
from ecsm_actors.store import etcd_layout
from ecsm_actors.store.records import RawList

logger = logging.getLogger(__name__)

#: The key put to mark how far a replay from etcd's history must read.
PROGRESS = b"progress"
#: Revisions the event source keeps for WATCH_SINCE (older ones are read from etcd).
WINDOW = 10_000
WINDOW_BYTES = 16 << 20
#: Revisions handed to the publisher per turn of the registry's loop (the rest wait for
#: the next turn: requests are served between).
PER_TURN = 512
#: Wait between attempts to watch again while etcd does not answer, seconds (doubling).
RETRY_BASE = 0.05
RETRY_CAP = 2.0

Frames = list[bytes]
_ids = count()


@dataclass(frozen=True, kw_only=True)
class Revision:
    """The events of one etcd revision, encoded: ``bodies`` (msgpack event bodies, in
    order) and their ``topics``."""

    seq: int
    topics: tuple[bytes, ...]
    bodies: tuple[bytes, ...]


def encode_revision(prefix: bytes, epoch: str, seq: int, prev: int,
                    changes: Sequence[WatchEvent]) -> Revision | None:
    """The events of the object keys among ``changes`` (all of revision ``seq``), None
    when none is an object's. A value that cannot be read is logged and left out."""
    objects = etcd_layout.objects_prefix(prefix)
    picked: list[tuple[EventType, str, str, bytes]] = []
    for change in changes:
        if not change.kv.key.startswith(objects):
            continue
        store_key = etcd_layout.store_key_of(prefix, change.kv.key).decode(errors="replace")
        kind, _, key = store_key.partition("/")
        try:
            if change.type == "DELETE":
                if change.prev_kv is None:
                    raise RegistryError(f"no previous value of deleted {store_key}")
                type_ = EventType.DELETED
                frame = etcd_layout.object_frame(change.prev_kv.value, seq)
            else:
                type_ = (EventType.ADDED if change.kv.create_revision == change.kv.mod_revision
                         else EventType.MODIFIED)
                frame = etcd_layout.object_frame(change.kv.value, seq)
        except RegistryError as e:
            logger.error("etcd revision %d: %s left out of the events: %s", seq, store_key, e)
            continue
        picked.append((type_, kind, key, frame))
    if not picked:
        return None
    last = len(picked) - 1
    return Revision(seq=seq, topics=tuple(event_topic(kind, t) for t, kind, _, _ in picked),
                    bodies=tuple(encode_event_body(epoch, t, kind, key, seq, frame,
                                                   prev=prev, index=i, last=i == last)
                                 for i, (t, kind, key, frame) in enumerate(picked)))


def by_revision(changes: Iterable[WatchEvent]) -> list[tuple[int, list[WatchEvent]]]:
    """``changes`` grouped by revision, in order (etcd never splits a revision across
    watch responses)."""
    groups: list[tuple[int, list[WatchEvent]]] = []
    for change in changes:
        rev = change.kv.mod_revision
        if groups and groups[-1][0] == rev:
            groups[-1][1].append(change)
        else:
            groups.append((rev, [change]))
    return groups


def watch_since_raw(client: EtcdClient, prefix: bytes, revision: int, epoch: str, *,
                    max_events: int | None = None, max_bytes: int | None = None,
                    timeout: float | None = None) -> RawList:
    """The events after ``revision`` from etcd's history (see the module docstring), at
    most about ``max_events`` / ``max_bytes`` of them, cut only between revisions; the
    result's ``resource_version`` is the revision they are complete up to. Raises
    ``Expired`` (compacted, or from the future) and ``Unavailable``."""
    mark = client.put(prefix + PROGRESS, b"")
    if revision >= mark:
        raise Expired(f"resourceVersion {revision} is not in the etcd store's history (its "
                      f"revision is {mark}, epoch {epoch}); relist")
    watch = client.watch(prefix, prefix_end(prefix), start_revision=revision + 1,
                         prev_kv=True, progress_notify=False)
    timer = threading.Timer(client.request_timeout if timeout is None else timeout,
                            watch.close)
    timer.daemon = True
    timer.start()
    bodies: list[bytes] = []
    size, prev, upto = 0, revision, revision
    try:
        for response in watch:
            for seq, changes in by_revision(response.events):
                full = ((max_events is not None and len(bodies) >= max_events)
                        or (max_bytes is not None and size >= max_bytes))
                if full or seq > mark:
                    return RawList(count=len(bodies), data=b"".join(bodies),
                                   resource_version=upto)
                encoded = encode_revision(prefix, epoch, seq, prev, changes)
                if encoded is not None:
                    bodies.extend(encoded.bodies)
                    size += sum(map(len, encoded.bodies))
                    prev = seq
                upto = seq
                if seq == mark:
                    return RawList(count=len(bodies), data=b"".join(bodies),
                                   resource_version=mark)
    finally:
        timer.cancel()
        watch.close()
    raise Unavailable(f"etcd store unavailable ({watch.endpoint}): the history after "
                      f"revision {revision} was not read within the request timeout")


class EtcdEventSource:
    """The registry's events from an etcd watch (see the module docstring). Make it, add
    :attr:`socket` to the loop's poller, :meth:`start`; when the socket is readable,
    publish what :meth:`receive` returns."""

    def __init__(self, client: EtcdClient, prefix: str | bytes, *, epoch: Callable[[], str],
                 context: zmq.Context[Any], window: int = WINDOW,
                 window_bytes: int = WINDOW_BYTES) -> None:
        self.client = client
        self.prefix = etcd_layout.prefix_bytes(prefix)
        self._epoch = epoch
        endpoint = f"inproc://etcd-events-{id(self)}-{next(_ids)}"
        #: The loop's end: readable when revisions wait to be published.
        self.socket = context.socket(zmq.PAIR)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(endpoint)
        self._sender = context.socket(zmq.PAIR)  # the thread's end
        self._sender.setsockopt(zmq.LINGER, 0)
        self._sender.setsockopt(zmq.SNDTIMEO, 200)
        self._sender.connect(endpoint)
        self._stop = threading.Event()
        self._watch: Watch | None = None
        self._thread: threading.Thread | None = None
        head = client.range(etcd_layout.objects_prefix(self.prefix), count_only=True)
        self._cluster = head.cluster_id
        #: The revision the stream continues from: the last one seen (or started after).
        self._seen = head.revision
        self._prev = head.revision
        #: The latest ``seq`` handed to the loop's publisher (the loop's view).
        self.published = head.revision
        #: The loop's recent revisions for WATCH_SINCE: (seq, event bodies), and the
        #: revision it is complete from (every event after it is in it).
        self._window: deque[tuple[int, tuple[bytes, ...]]] = deque()
        self._window_from = head.revision
        self._window_limits = (window, window_bytes)
        self._window_size = 0
        self.stats = {"revisions": 0, "watchRestarts": 0, "resyncs": 0,
                      "windowReplays": 0, "historyReplays": 0}

    @classmethod
    def from_config(cls, cfg: Any, *, epoch: Callable[[], str],
                    context: zmq.Context[Any]) -> EtcdEventSource:
        return cls(EtcdClient.from_config(cfg), cfg.store.etcd_prefix, epoch=epoch,
                   context=context)

    # -- the loop's side --------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="etcd-events", daemon=True)
        self._thread.start()

    def receive(self) -> list[Frames]:
        """The messages to publish now (``[topic, body]`` each), in order."""
        out: list[Frames] = []
        for _ in range(PER_TURN):
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            seq = int(frames[0])
            bodies = tuple(frames[2::2])
            if bodies:
                out.extend([topic, body] for topic, body in zip(frames[1::2], bodies,
                                                                strict=True))
                self._keep(seq, bodies)
            else:  # a restart past lost history: the window holds nothing before it
                self._window.clear()
                self._window_size = 0
                self._window_from = seq
            self.published = max(self.published, seq) if bodies else seq
        return out

    def _keep(self, seq: int, bodies: tuple[bytes, ...]) -> None:
        self._window.append((seq, bodies))
        self._window_size += sum(map(len, bodies))
        most, most_bytes = self._window_limits
        while len(self._window) > most or self._window_size > most_bytes:
            dropped, dropped_bodies = self._window.popleft()
            self._window_size -= sum(map(len, dropped_bodies))
            self._window_from = dropped  # complete after the dropped one

    def watch_since_raw(self, revision: int, *, max_events: int | None = None,
                        max_bytes: int | None = None) -> RawList:
        """``WATCH_SINCE``: from the window when it holds every event after ``revision``,
        else from etcd's history."""
        if self._window_from <= revision <= self.published:
            self.stats["windowReplays"] += 1
            bodies: list[bytes] = []
            size, upto = 0, self.published
            for seq, revision_bodies in self._window:
                if seq <= revision:
                    continue
                if ((max_events is not None and len(bodies) >= max_events)
                        or (max_bytes is not None and size >= max_bytes)):
                    upto = seq - 1  # nothing between the last taken and this one
                    break
                bodies.extend(revision_bodies)
                size += sum(map(len, revision_bodies))
            return RawList(count=len(bodies), data=b"".join(bodies), resource_version=upto)
        self.stats["historyReplays"] += 1
        return watch_since_raw(self.client, self.prefix, revision, self._epoch(),
                               max_events=max_events, max_bytes=max_bytes)

    def close(self) -> None:
        self._stop.set()
        watch = self._watch
        if watch is not None:
            watch.close()
        if self._thread is not None:
            self._thread.join(5.0)
        self._sender.close()
        self.socket.close()
        self.client.close()

    # -- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        delay = RETRY_BASE
        failing: str | None = None
        lost = False  # the history after the last revision seen is gone
        while not self._stop.is_set():
            try:
                self._follow(lost)
                lost, delay = False, RETRY_BASE
            except Expired as e:
                logger.warning("etcd events: the history after revision %d was compacted "
                               "(%s); the events in between are lost, subscribers behind "
                               "will relist", self._seen, e)
                lost = True
                continue
            except Exception as e:  # noqa: BLE001 - the thread's boundary: log, watch again
                if self._stop.is_set():
                    break
                if not isinstance(e, RegistryError):
                    logger.exception("etcd events: unexpected failure; watching again")
                elif failing is None:
                    logger.warning("etcd events: watch failed (%s); watching again from "
                                   "revision %d", e, self._seen + 1)
                failing = str(e)
                self._stop.wait(delay)
                delay = min(RETRY_CAP, delay * 2)
                continue
            if failing is not None and not self._stop.is_set():
                logger.info("etcd events: watching again from revision %d", self._seen + 1)
            failing = None

    def _follow(self, lost: bool) -> None:
        """Watch from the revision after the last seen until the watch ends or fails;
        ``lost``: that history is gone, watch from the present."""
        self._check_cluster(lost)
        objects = etcd_layout.objects_prefix(self.prefix)
        watch = self.client.watch(objects, prefix_end(objects), start_revision=self._seen + 1,
                                  prev_kv=True, progress_notify=True)
        self._watch = watch
        self.stats["watchRestarts"] += 1
        if self._stop.is_set():
            watch.close()
        for response in watch:
            for seq, changes in by_revision(response.events):
                if seq <= self._seen:
                    continue  # seen before a resume
                revision = encode_revision(self.prefix, self._epoch(), seq, self._prev,
                                           changes)
                self._seen = seq
                if revision is not None:
                    self._prev = seq
                    self._send([str(seq).encode(),
                                *(f for pair in zip(revision.topics, revision.bodies,
                                                    strict=True) for f in pair)])
                    self.stats["revisions"] += 1

    def _check_cluster(self, lost: bool) -> None:
        """Before watching again: when the history after the last revision seen is lost
        (compacted, or the cluster replaced: another id, or a revision behind it),
        restart from the present."""
        head = self.client.range(etcd_layout.objects_prefix(self.prefix), count_only=True)
        if head.cluster_id != self._cluster or head.revision < self._seen:
            logger.warning("etcd events: the etcd cluster was replaced (id %s, revision %d; "
                           "was %s, %d); subscribers will relist", head.cluster_id,
                           head.revision, self._cluster, self._seen)
        elif not lost:
            return
        self._cluster = head.cluster_id
        self._restart_at(head.revision)

    def _restart_at(self, revision: int) -> None:
        self.stats["resyncs"] += 1
        self._seen = self._prev = revision
        self._send([str(revision).encode()])

    def _send(self, frames: Frames) -> None:
        """Hand a message to the loop; waits while the loop is behind (bounded by the
        socket's high-water mark), never past a stop."""
        while not self._stop.is_set():
            try:
                self._sender.send_multipart(frames)
                return
            except zmq.Again:
                continue
        raise Unavailable("etcd events: the registry is stopping")

