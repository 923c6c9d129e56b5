"""The registry's durable state in LMDB: objects, the resourceVersion counter, the event log.

Runs only in the registry process (never opened before a fork, never by two processes: a
``flock`` on ``<data dir>/registry.lock`` refuses a second registry on the same store).

Layout, four sub-databases of one environment with an explicit map size:

* ``objects`` — key ``Kind/namespace/name``, value the msgpack object.
* ``events``  — key the resourceVersion (8 bytes big-endian), value the msgpack event body
  exactly as published (``{v, epoch, seq, …, resourceVersion, object}``) — or, while the
  event's object is the current one, the body without it (see below).
* ``meta``    — ``epoch`` (random hex, written once when the store is created).
* ``requests`` — the request window (:mod:`.window`): requestId → recorded outcome, and
  the order in which records leave it, written in the transaction of the write it
  records. A store from before keeps that order in a fifth, ``request_order``: moved into
  ``requests`` when the store opens (:func:`.window.migrate_order`), after its log is replayed.

No object is kept twice: the event of an object's current version is kept as a *stub*,
``0x00``, the first letter of its type (``A``/``M``), then the store key (a 0x00 never
starts a msgpack map, so bodies written before stubs read as they always did): its body is
:func:`~ecsm_actors.protocol.encode_event_body` of that, its ``seq`` and the object in
``objects``, which has that version. The write that supersedes or removes the object
first makes the stub whole again, in the same transaction, so the log still holds every
event and :meth:`Store.watch_since_raw` serves each body as it was published. With 10,000
objects this takes a third off the data file.

The log is the counter: the current resourceVersion is the last key of ``events`` and
the compaction floor is its first key minus one (compaction always keeps at least one
event), so a write touches no meta record.

Durability: LMDB is committed without ``fsync``; a turn's write transaction is durable
once its redo — the puts and deletes it made — is ONE record of the write-ahead log
(``<data dir>/wal``, :mod:`.wal`) and ``fdatasync``'d, and only then does :meth:`Store.execute`
return. The record is written before LMDB commits, its pages on their way to the disk
meanwhile; :meth:`Store.execute_unsynced` returns once it is written, and the registry
makes the replies and events of the turn, then sends them once :meth:`Store.wait_synced`
made it durable (one ``fdatasync`` a turn, :mod:`.log_sync`). With ``commit_interval``
(registry.commit_interval) the turns write into one LMDB transaction kept open across
them, the batch, committed to data.mdb once it is that old and the loop idle
(:meth:`Store.idle`) or dirtied about :data:`BATCH_PAGES`, before a checkpoint's
snapshot, before a read that needs a snapshot (a GET reads in the batch), at the
heartbeat and at close (:meth:`Store.flush`): so a ``kill -9`` may leave acknowledged
writes in the log only, and every open replays the log onto the last checkpoint
(:mod:`.checkpoint`). A turn that fails midway is taken out of
the batch by aborting it and redoing the turns before it; a batch that cannot be committed
once its turns were acknowledged stops the process (:class:`~.wal.WalFailed`); data.mdb's
blocks are allocated ahead of what the batch may write, so that a full disk refuses a
write before its record, never at the batch's commit; near the map's end each turn
commits alone, so a full map refuses the write that does not fit. A
transaction that wrote only the request window — the record of a refusal, or of a write
that changed nothing — changed no object, event or resourceVersion: it is answered without
a sync, its redo leading the next record (:meth:`.checkpoint.Checkpoints.defer`). A
checkpoint (:mod:`.checkpoint`: about every ``registry.checkpoint_interval`` in
:meth:`Store.release_pages`, when the log is full, at open and close) syncs data.mdb and
starts the log over, holding the synced snapshot so that LMDB never overwrites its pages
before the next checkpoint; after a power loss the store opens at that snapshot and
replays the log. A record's space in the log is allocated before its transaction commits:
a full disk refuses the write (``StoreFull``, nothing applied, reads go on); a record that
cannot be written once committed (an ``fdatasync`` EIO) stops the process
(:class:`~.wal.WalFailed`). A data.mdb written behind the log (``meta`` holds
:data:`WAL_MARK`) is refused when the log holds no valid checkpoint (lost, or both headers
torn): alone it may be torn.

Invariants: the counter is global and gap-free and is bumped in the same transaction as
the write; every committed mutation is exactly one event with ``seq == resourceVersion``;
the log holds exactly the events ``(compacted, rv]``, at most ``event_log_limit`` of them
(and, once full, at least that many less :data:`COMPACT_BATCH`: the oldest are dropped a
batch at a time, see :meth:`Store._compact`).
:meth:`Store.execute` applies a batch of writes in ONE durable transaction (group commit),
each write checked before its first ``put`` so a refused write leaves no trace; a full map
(``MapFullError``) aborts the transaction and the batch is retried write by write, so only
the writes that do not fit are refused with ``StoreFull`` and the store stays intact.

Exactly once: a write (or BATCH) carrying ``requestId`` is first looked up in the request
window, in the same transaction; when recorded, its recorded outcome is answered
(``replayed``) and nothing is applied — also for a second copy in the same batch, which
sees the first's record. A success, or a definitive refusal (NotFound, AlreadyExists,
Conflict, Invalid, BadRequest), is recorded; a transient one (StoreFull, Internal) is not,
so a retry may still apply the write. A BATCH is recorded whole, its per-write outcomes
included (a refusal for a full store among them), unless it applied nothing and one of
its refusals was transient. A replayed success gets its reply back from the event log:
the object at the recorded resourceVersion is the event of that version while it is not
compacted, else the current object when it still has that version; otherwise the reply
holds only
``apiVersion``, ``kind`` and ``metadata`` ``{namespace, name, resourceVersion}`` (no spec,
no status: the object has changed since, read it for its current state).

An atomic BATCH runs in a nested transaction: when any of its writes is refused, the
nested transaction is aborted (nothing of it remains), the refused writes carry their
error and the others :class:`~ecsm_actors.errors.Aborted`.

A dry run (:meth:`Store.dry_run`) runs a write in a write transaction that is always
aborted: its answer is the real one, and nothing of it remains.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import resource
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import lmdb
import msgpack

from ecsm_actors.errors import (
    BadRequest,
    Expired,
    Internal,
    NotFound,
    RegistryError,
    StoreFull,
)
from ecsm_actors.files import fsync_dir
from ecsm_actors.protocol import (
    Event,
    EventType,
    Op,
    encode_event_body,
    event_topic,
    object_key,
    pack,
    peek_resource_version,
)
from ecsm_actors.store import paging, replay, semantics, wal
from ecsm_actors.store.checkpoint import VOLATILE_DIR, Checkpoints
from ecsm_actors.store.log_sync import LogSync
from ecsm_actors.store.records import (
    Outcome,
    RawList,
    Staged,
    StagedBatch,
    StoredEvent,
    Write,
    stage,
    unpack_stored,
)
from ecsm_actors.store.residency import MapPages, trim_heap
from ecsm_actors.store.semantics import Change, Target
from ecsm_actors.store.versions import VersionChange, VersionIndex
from ecsm_actors.store.window import RequestWindow, migrate_order

#: A write on its way into a transaction: its requestId, op, and what staging made of it.
Pending = tuple[str | None, Op, Staged | StagedBatch | RegistryError]

logger = logging.getLogger(__name__)


def _be(n: int) -> bytes:
    return n.to_bytes(8, "big")


#: Events one transaction may write before :meth:`Store.release_pages` opens the
#: environment again to let go of the pages it dirtied (about 0.5 MiB of them).
REOPEN_AFTER = 128

#: While writes go on, :meth:`Store.release_pages` lets the map's pages go at every Nth
#: call only (about every N heartbeats).
RELEASE_WHILE_WRITING = 10

#: Free bytes on the filesystem under which a commit cut short (EIO) is taken for a full
#: disk (a transaction writes a few MiB at most).
NO_SPACE_FLOOR = 8 << 20

#: Key in ``meta`` of a store written behind the write-ahead log (its data.mdb alone may be
#: torn after a power loss; one from before the log was committed with fsync).
WAL_MARK = b"wal"

#: Most events a full log drops at once beyond the one a write adds (a hundredth of
#: ``event_log_limit`` at most): dropped one a write, each write also rewrote the log's
#: oldest leaf and the pages above it (2 of a create's 14 dirtied pages).
COMPACT_BATCH = 64

#: Most LMDB pages (estimated from the redo, :func:`.wal.dirtied_pages`, plus the bytes
#: of the values) that the batch (see :meth:`Store.flush`) may have dirtied before it is
#: committed: its dirty pages are malloc'd until then, and LMDB keeps them for later
#: transactions (1 MiB at most).
BATCH_PAGES = 256

#: Bytes of data.mdb allocated ahead of its last page (``fallocate`` KEEP_SIZE), so that
#: a batch's commit never meets a full disk: a write that would need more is refused first.
DATA_AHEAD = 256 << 10

#: The request window's sub-databases (a transaction that wrote only them is not synced).
_WINDOW = frozenset(("requests", "request_order"))

#: First byte of an event kept without its object (see the module docstring).
STUB = 0
_STUB_TYPES = {ord(t.value[0]): t for t in (EventType.ADDED, EventType.MODIFIED)}
#: A stub's first two bytes by event type, and each kind's event topics: made once.
_STUB_HEADS = {t: bytes((STUB, ord(t.value[0]))) for t in EventType}
_TOPICS: dict[tuple[str, EventType], bytes] = {}


class _EventBodies:
    """:func:`~ecsm_actors.protocol.encode_event_body` of one store (its epoch), the same
    bytes in a third of the time: the map's constant runs packed once per event type and
    kind, only the versions and the key packed each time (an update encodes two bodies,
    its own and the one that makes its old version's stub whole)."""

    __slots__ = ("_epoch", "_parts", "_pack")

    def __init__(self, epoch: str) -> None:
        self._epoch = epoch
        self._parts: dict[tuple[EventType, str], tuple[bytes, bytes, bytes]] = {}
        self._pack = msgpack.Packer(use_bin_type=True).pack

    def _made(self, type_: EventType, kind: str) -> tuple[bytes, bytes, bytes]:
        # Cut out of a body that encode_event_body makes (so both always agree) around
        # marks standing for the values packed each time: seq, prev, key, resourceVersion.
        pack, seq, key = self._pack, 0x7FFFFFFF, "\x00key\x00"
        body = encode_event_body(self._epoch, type_, kind, key, seq, b"")
        head, rest = body.split(pack(seq) + _PREV + pack(seq - 1), 1)
        middle, tail = rest.split(pack(key) + _RV + pack(seq), 1)
        parts = self._parts[type_, kind] = (head, middle, tail)
        return parts

    def body(self, type_: EventType, kind: str, key: str, seq: int,
             frame: bytes | memoryview) -> bytes:
        parts = self._parts.get((type_, kind))
        if parts is None:
            parts = self._made(type_, kind)
        head, middle, tail = parts
        pack = self._pack
        s = pack(seq)
        return b"".join((head, s, _PREV, pack(seq - 1), middle, pack(key), _RV, s, tail,
                         frame))


_PREV = msgpack.packb("prev")
_RV = msgpack.packb("resourceVersion")


class Store:
    """The LMDB store. Not thread-safe: the registry's single loop thread owns it."""

    def __init__(self, path: str | os.PathLike[str], *, map_size: int, full_ratio: float = 0.95,
                 event_log_limit: int = 100_000, request_window: int = 100_000,
                 request_window_age: float = 172_800.0, wal_size: int = 4 << 20,
                 checkpoint_interval: float = 1.0, checkpoint_pages: int = 0,
                 commit_interval: float = 0.0,
                 clock: Callable[[], float] = time.time,
                 boot_id: Callable[[], str] = wal.read_boot_id,
                 volatile_dir: Path = VOLATILE_DIR) -> None:
        self.path = Path(path)
        self.map_size = int(map_size)
        self.full_ratio = full_ratio
        self.event_log_limit = event_log_limit
        self._clock = clock
        #: msgpack's packer kept (as ``protocol.pack``, without making one each write).
        self._pack = msgpack.Packer(use_bin_type=True).pack
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._window_bounds = (request_window, request_window_age)
        #: How old the batch may grow before it is committed (0: every turn, see
        #: :meth:`flush`).
        self.commit_interval = float(commit_interval)
        #: The batch: LMDB's write transaction kept open across turns (None: none open),
        #: when it began, the redo of each turn in it, the pages it dirtied (estimated).
        self._open_batch: lmdb.Transaction | None = None
        self._batch_began = 0.0
        self._batch_redo: list[list[Any]] = []
        self._batch_pages = 0
        #: data.mdb's bytes as of the last commit, and how far its blocks are allocated.
        self._data_end = 0
        self._data_reserved = 0
        #: The most events one transaction wrote since the environment was opened.
        self._largest = 0
        self._lock_fd = self._lock(self.path / "registry.lock")
        try:
            self._ckpt = Checkpoints(self.path, wal_size=wal_size,
                                     interval=checkpoint_interval,
                                     page_budget=checkpoint_pages, boot_id=boot_id,
                                     volatile_dir=volatile_dir, before_snapshot=self.flush)
        except OSError as e:
            os.close(self._lock_fd)
            raise Internal(f"cannot open the write-ahead log of {self.path}: {e}") from e
        existed = (self.path / "data.mdb").is_file()
        try:
            self._ckpt.restore_meta()
            self._open()
            if self._ckpt.found is None:
                # No checkpoint in the log: a new store, or one from before the log
                # (committed with fsync: data.mdb is whole). One written behind the log
                # but without it may be torn: refused. A checkpoint first, so that even
                # the first unsynced commit has one under it.
                if existed and self._written_behind_log():
                    raise Internal(
                        f"{self.path / 'wal'} is missing or has no valid checkpoint, but "
                        f"{self.path / 'data.mdb'} was written behind it (without fsync) and "
                        "may be torn alone: put the wal file back beside it, or restore the "
                        "store from a backup (ecsm-operator store migrate)")
                self._ckpt.checkpoint(self._env)
            self.epoch, self._rv, self.compacted = self._load_meta()
            self._bodies = _EventBodies(self.epoch)
            self._ckpt.checkpoint(self._env)
            self._ckpt.trusted()
            if not existed or self._ckpt.log.created:  # their entries, durable before a write
                fsync_dir(self.path)
        except (lmdb.Error, OSError, RegistryError) as e:
            self._ckpt.close()
            if hasattr(self, "_env"):
                self._env.close()
            os.close(self._lock_fd)
            if isinstance(e, RegistryError):
                raise
            raise Internal(f"cannot open the store at {self.path}: {e}") from e
        logger.info("store %s opened: epoch=%s resourceVersion=%d compacted=%d", self.path,
                    self.epoch, self._rv, self.compacted)

    def _open(self) -> None:
        """Open the environment unsynced (the log makes writes durable), hold its
        snapshot for the checkpoints, and replay the log when recovering."""
        self._env = lmdb.open(str(self.path), map_size=self.map_size, max_dbs=5,
                              subdir=True, readahead=False, meminit=False, sync=False)
        self._objects = self._env.open_db(b"objects")
        self._events = self._env.open_db(b"events")
        self._meta = self._env.open_db(b"meta")
        self._ckpt.opened(self._env)
        names = {"objects": self._objects, "events": self._events, "meta": self._meta,
                 "requests": self._env.open_db(b"requests")}
        try:  # a store from before (migrate_order): its log may still name it
            self._legacy_order = names["request_order"] = self._env.open_db(
                b"request_order", create=False)
        except lmdb.NotFoundError:
            self._legacy_order = None
        replayed = self._ckpt.replay(self._env, names)
        self._dbs = names
        size, age = self._window_bounds
        self.window = RequestWindow(self._env, size=size, age=age)
        self._names = {self._objects: "objects", self._events: "events",
                       self._meta: "meta", self.window.requests: "requests"}
        self._page_size = self._env.stat()["psize"]
        self._data_end = (self._env.info()["last_pgno"] + 1) * self._page_size
        self._data_reserved = 0
        self._pages = MapPages(self.path / "data.mdb")
        # A replay is one transaction: its dirty pages let go as a large one's are.
        self._largest = replayed
        #: Versions by key of the kinds listed by version (:mod:`.versions`), started over
        #: at each open (a log replayed, or the environment opened again).
        self._versions = VersionIndex()
        #: The object changes of the write transaction under way, for the index once
        #: it has committed.
        self._changes: list[VersionChange] = []

    @classmethod
    def from_config(cls, cfg: Any) -> Store:
        r = cfg.registry
        return cls(cfg.data_dir, map_size=r.map_size, full_ratio=r.full_ratio,
                   event_log_limit=r.event_log_limit, request_window=r.request_window,
                   request_window_age=r.request_window_age, wal_size=r.wal_size,
                   checkpoint_interval=r.checkpoint_interval,
                   checkpoint_pages=r.checkpoint_pages, commit_interval=r.commit_interval)

    @staticmethod
    def _lock(path: Path) -> int:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            raise Internal(f"the store at {path.parent} is in use by another registry") from e
        return fd

    def _written_behind_log(self) -> bool:
        """Does data.mdb say it was written behind the write-ahead log (or is it
        unreadable)?"""
        try:
            with self._env.begin(db=self._meta) as txn:
                return txn.get(WAL_MARK) is not None
        except lmdb.Error:
            return True

    def _load_meta(self) -> tuple[str, int, int]:
        with self._env.begin(write=True, db=self._meta) as txn:
            epoch = txn.get(b"epoch")
            if epoch is None:
                epoch = os.urandom(8).hex().encode()  # not secrets: it maps libcrypto (3.8 MiB)
                txn.put(b"epoch", epoch)
                logger.info("new store: epoch %s", epoch.decode())
            if txn.get(WAL_MARK) is None:
                txn.put(WAL_MARK, b"1")
            if self._legacy_order is not None:
                moved = migrate_order(txn, self.window.requests, self._legacy_order)
                logger.info("store %s: its request window's order (%d records) moved into "
                            "requests", self.path, moved)
            rv, compacted = self._log_bounds(txn)
        if self._legacy_order is not None:
            self._legacy_order = None
            self.window.load(self._env)
        return epoch.decode(), rv, compacted

    def _log_bounds(self, txn: lmdb.Transaction) -> tuple[int, int]:
        """(current resourceVersion, compaction floor) as recorded by the event log."""
        cursor = txn.cursor(db=self._events)
        if not cursor.last():
            return 0, 0
        rv = int.from_bytes(cursor.key(), "big")
        cursor.first()
        return rv, int.from_bytes(cursor.key(), "big") - 1

    @property
    def resource_version(self) -> int:
        return self._rv

    #: The resourceVersion at the last call of :meth:`release_pages`, and the calls
    #: since the map's pages were last released.
    _seen_rv: int = -1
    _release_skipped: int = 0
    #: The heartbeat's prune of the request window failed last time (reported once).
    _prune_failing: bool = False

    def release_pages(self) -> None:
        """Let go of map pages read so far and of the C heap's free pages (see
        :mod:`.residency`; a LIST's buffers of several MiB are freed amid the heap, where
        glibc keeps them otherwise); call when idle (0.05-0.4 ms, up to 1-2 ms on a busy
        machine). While writes go on (the resourceVersion moved since the last release)
        they are released only every :data:`RELEASE_WHILE_WRITING`-th call: a write
        arriving meanwhile would wait for them, and steady writes touch few pages.

        LMDB keeps the pages a write transaction dirtied (4 KiB each, from malloc) for
        later transactions until its environment closes: one BATCH of 1,000 creates left
        the registry 10 MiB larger for good. So once a transaction has written more than
        :data:`REOPEN_AFTER` events, the environment is closed and opened again here
        (every transaction is over: nothing is lost, a few ms).

        Also checkpoints (:mod:`.checkpoint`): begins one in the background once
        ``checkpoint_interval`` has passed since the last one and something was written,
        finishes one whose sync is done. And commits the batch (:meth:`flush`)."""
        self.flush()
        if self._largest > REOPEN_AFTER:
            self._ckpt.checkpoint(self._env)
            self._ckpt.release()
            self._env.close()
            try:
                self._open()
            except lmdb.Error as e:
                raise Internal(f"cannot open the store at {self.path} again: {e}") from e
            logger.debug("store environment opened again (its dirty pages let go)")
        else:
            self._prune_window()
            self._ckpt.idle(self._env)
            writing, self._seen_rv = self._rv != self._seen_rv, self._rv
            if writing and self._release_skipped < RELEASE_WHILE_WRITING - 1:
                self._release_skipped += 1
                return
            info = self._env.info()
            self._pages.release((info["last_pgno"] + 1) * self._page_size)
        self._release_skipped = 0
        trim_heap()

    def _prune_window(self) -> None:
        """An idle turn: the request window, when it holds more than its size, pruned in
        a transaction of its own (:mod:`.window`), so that writes seldom prune (every
        32nd did, 0.3 ms on it, once the window is full). It writes only the window: no
        ``fdatasync`` (:meth:`.checkpoint.Checkpoints.defer`). When it fails (a full
        map), the writes prune as before."""
        window = self.window
        if not window.over():
            return
        self.flush()
        window.begin()
        ops: list[Any] = []
        txn = wal.Recording(self._env, self._env.begin(write=True), self._names, ops)
        try:
            window.prune(txn, self._clock(), idle=True)
            txn.commit()
        except lmdb.Error as e:
            txn.abort()
            if not self._prune_failing:  # once, not at every heartbeat while it lasts
                logger.warning("store %s: the request window is left to the writes to "
                               "prune (%s)", self.path, e)
            self._prune_failing = True
            return
        except BaseException:
            txn.abort()
            raise
        self._prune_failing = False
        if ops:
            self._ckpt.defer(ops)
        window.committed()

    def checkpoint(self) -> None:
        """Make every commit durable in data.mdb and start the log over."""
        self._ckpt.checkpoint(self._env)

    def wal_stats(self) -> dict[str, float]:
        """The write-ahead log's figures: ``checkpoints`` made since open,
        ``lastCheckpointMs``, ``bytes`` (of records since the last checkpoint),
        ``replayed`` (records replayed at open)."""
        return {**self._ckpt.stats, "bytes": self._ckpt.wal_bytes}

    def close(self) -> None:
        try:
            if not self._ckpt.failed:
                self._ckpt.checkpoint(self._env)  # the batch committed first
        finally:
            if self._open_batch is not None:  # the store failed: the log has its turns
                self._open_batch.abort()
                self._open_batch = None
            self._ckpt.close()
            self._env.close()
            os.close(self._lock_fd)

    # -- reads ---------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        target = Target(kind=kind, namespace=namespace, name=name)
        raw = self._get(target.store_key)
        if raw is None:
            raise NotFound(f"{target} not found")
        return unpack_stored(raw)

    def get_raw(self, kind: str, namespace: str, name: str) -> bytes:
        """The object as stored (msgpack bytes): a GET is answered with them, not
        decoded and encoded again. Raises NotFound."""
        raw = self._get(f"{kind}/{namespace}/{name}".encode())  # as Target.store_key
        if raw is None:
            raise NotFound(f"{Target(kind=kind, namespace=namespace, name=name)} not found")
        return raw

    def _get(self, store_key: bytes) -> bytes | None:
        """The stored object of ``store_key``, read in the open batch when there is one
        (it holds every acknowledged write: a point read costs less there than a commit)."""
        batch = self._open_batch
        if batch is not None:
            return batch.get(store_key, db=self._objects)  # type: ignore[no-any-return]
        with self._env.begin(db=self._objects) as txn:
            return txn.get(store_key)  # type: ignore[no-any-return]

    def list_raw(self, kind: str, namespace: str | None = None, *,
                 head: Callable[[int, int], bytes] | None = None) -> RawList:
        """Every object of a kind (in one namespace, or all), undecoded, with the version
        of the snapshot they were read at. ``head(count, resource_version)``: bytes that
        ``data`` starts with, before the objects (a reply around them, made in the one
        copy out of the map; 10,000 objects, 11 MB, are not joined twice).

        The objects are the map's own buffers until that copy, each appended to ``data``
        (a ``bytearray``) as it is read: no list of a buffer per object, whose 10,000
        ``memoryview`` objects (2 MiB) each LIST left in the interpreter's object arenas,
        freed but resident for good. The head is written into room left before them once
        the count is known. The first key past the prefix is found first: each key is
        compared with it whole, no prefix cut out of it, and none at all when no key
        follows (10,000 objects in 3 ms instead of 6; a generator and a ``bytes`` of each
        key had taken 7 ms of 10,000's 11)."""
        prefix = f"{kind}/{namespace}/".encode() if namespace else f"{kind}/".encode()
        self.flush()  # read at a snapshot of the map's own buffers: the batch committed
        with self._env.begin(db=self._objects, buffers=True) as txn:
            rv, _ = self._log_bounds(txn)
            cursor = txn.cursor()
            # Room for the head: of its bytes only the array header's (1 to 5) depend on
            # the count.
            room = 0 if head is None else len(head(0, rv)) + 4
            data = bytearray(room)
            count = 0
            # "/" + 1 is "0": the first key past every key with the prefix
            past = bytes(cursor.key()) if cursor.set_range(prefix[:-1] + b"0") else None
            if cursor.set_range(prefix):
                if past is None:
                    rows = enumerate(cursor.iternext(keys=False), 1)
                    for count, value in rows:  # noqa: B007 - the last is the count
                        data += value
                else:
                    for count, (key, value) in enumerate(cursor, 1):
                        if key == past:
                            count -= 1
                            break
                        data += value
            if head is not None:
                made = head(count, rv)
                if len(made) <= room:
                    data[room - len(made):room] = made
                    del data[:room - len(made)]  # off the front: no copy
                else:
                    data[:room] = made
            return RawList(count=count, data=data, resource_version=rv)

    def list_versions(self, kind: str,
                      namespace: str | None = None) -> tuple[list[tuple[str, int]], int]:
        """``[(namespace/name, resourceVersion)...]`` of every object of a kind (in one
        namespace, or all) and the version of the snapshot, without decoding objects:
        the key comes from the store key, the version is peeked from the frame; read
        from the index of versions (:mod:`.versions`) once the kind is in it: the first
        call for a kind reads every object of it (all namespaces) and indexes them."""
        if kind not in self._versions:
            self._versions.build(kind, self._peek_versions(kind))
        return self._versions.versions(kind, namespace or None), self._rv

    def _peek_versions(self, kind: str) -> list[tuple[str, int]]:
        """``(namespace/name, resourceVersion)`` of every object of a kind, in all
        namespaces, as stored now (the resourceVersion of the snapshot is ``_rv``)."""
        prefix = f"{kind}/".encode()
        skip = len(kind) + 1
        versions: list[tuple[str, int]] = []
        self.flush()
        with self._env.begin(db=self._objects, buffers=True) as txn:
            cursor = txn.cursor()
            if cursor.set_range(prefix):
                for raw_key, value in cursor:
                    key = bytes(raw_key)
                    if not key.startswith(prefix):
                        break
                    try:
                        version = peek_resource_version(value)
                    except RegistryError as e:
                        raise Internal(f"stored object {key!r} is unreadable: {e}") from e
                    versions.append((key[skip:].decode(), version))
        return versions

    def list_page(self, kind: str, namespace: str | None, *, limit: int,
                  continue_token: str | None = None, versions: bool = False) -> paging.Page:
        """One page of a LIST: at most ``limit`` objects of a kind (in one namespace, or
        all) after the position ``continue_token`` (from the previous page) names, read at
        this page's own resourceVersion — pages are no consistent snapshot of the whole
        list (LMDB keeps no old versions to read them at), but as keys are served in
        order and a page starts strictly after the last key of the previous one, an object
        present throughout appears exactly once. ``versions``: ``[key, rv]`` pairs instead
        of objects (as :meth:`list_versions`). Raises BadRequest for a foreign token."""
        prefix = f"{kind}/{namespace}/".encode() if namespace else f"{kind}/".encode()
        after = paging.decode_token(continue_token, prefix) if continue_token else None
        self.flush()
        with self._env.begin(db=self._objects, buffers=True) as txn:
            rv, _ = self._log_bounds(txn)
            return paging.read_page(txn.cursor(), prefix, after, limit, rv,
                                    versions_from=len(kind) + 1 if versions else None)

    def list_objects(self, kind: str,
                     namespace: str | None = None) -> tuple[list[dict[str, Any]], int]:
        raw = self.list_raw(kind, namespace)
        return raw.decode(), raw.resource_version

    def watch_since_raw(self, resource_version: int, *, max_events: int | None = None,
                        max_bytes: int | None = None) -> RawList:
        """The events with rv > ``resource_version`` (bodies undecoded), at most
        ``max_events`` / about ``max_bytes`` of them (always at least one). The result's
        ``resource_version`` is the version the events are complete up to: the current
        one, or the last event's when the page was cut short. Raises Expired when the
        events are no longer all in the log (or the version is from the future)."""
        self.flush()
        with self._env.begin(db=self._events, buffers=True) as txn:
            rv, floor = self._log_bounds(txn)
            if resource_version < floor or resource_version > rv:
                raise Expired(f"resourceVersion {resource_version} is not in the event log "
                              f"(it holds {floor + 1}..{rv}, epoch {self.epoch}); relist")
            cursor = txn.cursor()
            values: list[bytes | memoryview] = []
            upto, size = rv, 0
            if cursor.set_range(_be(resource_version + 1)):
                for key, value in cursor:
                    if values and ((max_events is not None and len(values) >= max_events)
                                   or (max_bytes is not None and size >= max_bytes)):
                        upto = int.from_bytes(bytes(key), "big") - 1
                        break
                    if value[0] == STUB:
                        value = self._whole(txn, int.from_bytes(bytes(key), "big"), value)
                    values.append(value)
                    size += len(value)
            return RawList(count=len(values), data=b"".join(values), resource_version=upto)

    def _whole(self, txn: wal.Txn, seq: int, stub: bytes | memoryview) -> bytes:
        """The body of the stub event ``seq``, around the current object of its key, which
        has the event's version (checked: a log that breaks it is reported, not served)."""
        store_key = bytes(stub[2:])
        frame = txn.get(store_key, db=self._objects)
        try:
            held = peek_resource_version(frame) if frame is not None else None
        except RegistryError:
            held = None
        if held != seq:
            raise Internal(f"event {seq} of {store_key.decode(errors='replace')} lost "
                           f"its object (the store holds version {held}); relist")
        kind, namespace, name = store_key.decode().split("/", 2)
        return self._bodies.body(_STUB_TYPES[stub[1]], kind, object_key(namespace, name),
                                 seq, frame)

    def watch_since(self, resource_version: int, **limits: int) -> tuple[list[Event], int]:
        raw = self.watch_since_raw(resource_version, **limits)
        return [Event.from_wire(doc) for doc in raw.decode()], raw.resource_version

    def usage(self) -> float:
        """Fraction of the map held by live pages (freed pages are reusable)."""
        with self._env.begin() as txn:  # as committed (a turn may be under way)
            return self._usage(txn)

    def _usage(self, txn: wal.Txn) -> float:
        pages = 0
        for db in (self._objects, self._events, self._meta, self.window.requests):
            st = txn.stat(db)
            pages += st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
        return pages * self._page_size / self.map_size

    # -- writes --------------------------------------------------------------------------

    def execute(self, writes: Sequence[Write]) -> list[Outcome | RegistryError]:
        """Apply ``writes`` in order in one durable transaction; one result per write."""
        results = self.execute_unsynced(writes)
        self._ckpt.wait()
        return results

    @property
    def log_sync(self) -> LogSync:
        """The log's syncs: :attr:`LogSync.requested` is the ticket that covers every
        commit made so far, :attr:`LogSync.synced` how far they are durable."""
        return self._ckpt.syncs

    def wait_synced(self, ticket: int | None = None) -> None:
        """Return once the commits of ``ticket`` (default: all made so far) are durable.
        Raises WalFailed when a sync failed."""
        self._ckpt.wait(ticket)

    def execute_unsynced(self, writes: Sequence[Write]) -> list[Outcome | RegistryError]:
        """:meth:`execute`, returning once the transaction is committed in LMDB, its
        record written and on its way to the disk, its sync made by :meth:`wait_synced`:
        nothing of it — its replies, its events, a read that sees it — may leave before
        the ticket :attr:`log_sync` ``.requested`` (taken after this returns) is synced."""
        now = self._clock()
        staged = [(w.fields.get("requestId"), w.op, stage(w)) for w in writes]
        try:
            return self._commit(staged, now)
        except lmdb.MapFullError:
            pass
        except StoreFull as e:  # no room on the disk for the log's record: nothing applied
            logger.warning("%s", e)
            return [e] * len(staged)
        # The pages freed since the last checkpoint are held for it (see .checkpoint):
        # a checkpoint lets them be reused.
        self._ckpt.checkpoint(self._env)
        try:
            return self._commit(staged, now)
        except lmdb.MapFullError:
            if len(staged) == 1:
                return [self._full_error()]
        logger.warning("store map full in a batch of %d writes; retrying them one by one",
                       len(staged))
        results: list[Outcome | RegistryError] = []
        for one in staged:
            try:
                results.extend(self._commit([one], now))
            except lmdb.MapFullError:
                results.append(self._full_error())
        return results

    def dry_run(self, write: Write) -> Outcome | RegistryError:
        """What ``write`` would do, run in a write transaction that is always aborted:
        nothing stored, the resourceVersion not bumped, no requestId looked up or recorded.
        The outcome's events are dropped (never to be published)."""
        staged = stage(write)
        self._changes = []  # its changes never reach the index (nor stay held)
        self.flush()  # one write transaction at a time
        txn = wal.Recording(self._env, self._env.begin(write=True), self._names, None)
        try:
            result, _ = self._run(txn, staged, self._rv, self._clock(), self._nearly_full(txn))
        except lmdb.MapFullError:
            result = self._full_error()
        finally:
            txn.abort()
        if isinstance(result, Outcome):
            return Outcome(result=result.result, encoded=result.encoded)
        return result

    def restore(self, objects: Iterable[dict[str, Any]]) -> int:
        """Write ``objects`` as they are into this empty store, in one durable transaction
        (``ecsm-operator store migrate``): uid, creationTimestamp, generation, labels,
        annotations, finalizers, deletionTimestamp and status kept, only
        ``metadata.resourceVersion`` given anew (the next version each, with its ADDED
        event, as any write). No validation: the objects come from a store that took
        them. Returns the resourceVersion after them. Raises BadRequest when the store
        already holds objects or an object comes twice, StoreFull when they do not fit."""
        self.flush()
        txn = wal.Recording(self._env, self._env.begin(write=True), self._names, None)
        try:
            held = txn.stat(self._objects)["entries"]
            if held:
                raise BadRequest(f"the store at {self.path} already holds {held} objects; "
                                 "restore writes only into an empty store")
            rv = self._rv
            for obj in objects:
                target = semantics.target_of(obj)
                rv += 1
                obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": rv}}
                frame = pack(obj)
                if not txn.put(target.store_key, frame, db=self._objects, overwrite=False):
                    raise BadRequest(f"{target} comes twice in what is restored")
                self._log_event(txn, target, Change(type=EventType.ADDED, object=obj),
                                frame, rv)
            compacted = self._compact(txn, rv)
            txn.commit()
        except lmdb.MapFullError:
            txn.abort()
            raise self._full_error() from None
        except BaseException:
            txn.abort()
            raise
        self._ckpt.checkpoint(self._env)  # durable without a record (it may be large)
        self._largest = max(self._largest, rv - self._rv)
        self._rv, self.compacted = rv, compacted
        self._versions.clear()
        return rv

    def write(self, op: Op, **fields: Any) -> Any:
        """One write; returns its reply payload or raises its error (tests, tools)."""
        result = self.execute([Write(op=op, fields=fields)])[0]
        if isinstance(result, RegistryError):
            raise result
        return result.result

    def _full_error(self) -> StoreFull:
        return StoreFull(f"the registry store is full (map size {self.map_size} bytes, "
                         f"{self.usage():.0%} used); write refused — delete objects or raise "
                         f"registry.map_size")

    def _no_space(self, error: lmdb.Error) -> bool:
        """Did a commit fail for want of room for data.mdb to grow? LMDB reports ENOSPC,
        or EIO when a write was cut short: then the filesystem is nearly full (under
        :data:`NO_SPACE_FLOOR`) or data.mdb is at the process's file size limit."""
        text = str(error)
        if text.endswith(wal.NO_SPACE_TEXT):
            return True
        if not text.endswith(os.strerror(errno.EIO)):
            return False
        try:
            fs = os.statvfs(self.path)
            size = os.path.getsize(self.path / "data.mdb")
        except OSError:
            return False
        free = (fs.f_bfree if os.geteuid() == 0 else fs.f_bavail) * fs.f_frsize
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        return free < NO_SPACE_FLOOR or (
            limit != resource.RLIM_INFINITY and size + NO_SPACE_FLOOR > limit)

    def _nearly_full(self, txn: wal.Txn, high_water: int | None = None) -> bool:
        """Usage past ``full_ratio``? Live pages never lie beyond the file's high-water
        mark (``high_water``: known to the caller, else read), so they are counted only
        once that mark is past it."""
        if high_water is None:
            high_water = (self._env.info()["last_pgno"] + 1) * self._page_size
        if high_water < self.full_ratio * self.map_size:
            return False
        return self._usage(txn) >= self.full_ratio

    def _commit(self, staged: Sequence[Pending], now: float) -> list[Outcome | RegistryError]:
        results: list[Outcome | RegistryError] = []
        window = self.window
        window.begin()
        ops: list[Any] = []
        changes: list[VersionChange] = []
        self._changes = changes
        if self._open_batch is None and self.commit_interval:
            # data.mdb's end as committed: a transaction of its own since the last batch
            # (an idle prune of the request window, the open's) may have grown it, and
            # what the batch writes is reserved beyond it (_reserve_data).
            self._data_end = (self._env.info()["last_pgno"] + 1) * self._page_size
        # Near the map's end, each turn commits alone (as with commit_interval 0), so a
        # full map refuses the write that does not fit, never a batch acknowledged.
        alone = not self.commit_interval or self.map_size < self._data_end + (
            self._batch_pages + BATCH_PAGES + 64) * self._page_size
        if alone:
            self.flush()
        batch = self._open_batch if self._open_batch is not None else self._begin_batch()
        txn = wal.Recording(self._env, batch, self._names, ops)
        pages = 0
        try:
            rv = self._rv
            # With commit_interval, data.mdb's end as last committed is _data_end (read
            # above when no batch was open; no other write transaction commits while one
            # is): no env.info() a turn (5 µs).
            full = self._nearly_full(txn, self._data_end if self.commit_interval else None)
            for request_id, op, s in staged:
                if request_id is None:
                    result, rv = self._run(txn, s, rv, now, full)
                    results.append(result)
                    continue
                recorded = window.lookup(txn.txn, request_id, now)
                if recorded is not None:
                    results.append(self._replay(txn, request_id, op, s, recorded))
                    continue
                result, rv = self._run(txn, s, rv, now, full)
                if isinstance(result, Outcome):
                    assert result.record is not None
                    if not semantics.transient_batch(result.record):
                        window.record(txn, request_id, result.record, now)
                elif not isinstance(result, semantics.TRANSIENT_ERRORS):
                    window.record(txn, request_id, {"op": str(op), "error": result.to_wire()},
                                  now)
                results.append(result)
            window.prune(txn, now)
            compacted = self._compact(txn, rv) if rv != self._rv else self.compacted
            # A transaction that wrote only the request window needs no fdatasync before
            # its replies (see Checkpoints.defer); any other: its record, space reserved.
            logged = bool(ops) and not _WINDOW.issuperset(ops[1::4])
            payload = self._ckpt.reserve(ops) if logged else None  # StoreFull: disk full
            if ops:
                pages = wal.dirtied_pages(ops)
                if payload is not None:  # values beyond a page each: overflow pages
                    pages += len(payload) // self._page_size
                if self.commit_interval:
                    self._reserve_data(pages)  # StoreFull: no room for data.mdb to grow
            # The record first, its pages on their way to the disk while LMDB commits
            # (and the caller makes its replies), its sync after: see Checkpoints.write.
            written = payload is not None and self._ckpt.write(payload)
        except BaseException:
            self._undo_turn()
            raise
        if ops:
            self._batch_redo.append(ops)
            self._batch_pages += pages
        # Once commit_interval old, the loop's idle moment commits it (:meth:`idle`), off
        # the way of a reply; here only a loop never idle, or a batch grown large.
        if (alone or self._batch_pages >= BATCH_PAGES
                or time.monotonic() - self._batch_began >= 2 * self.commit_interval):
            alone = len(self._batch_redo) == (1 if ops else 0)  # no earlier turn in it
            try:
                self._commit_batch()
            except BaseException as e:  # nothing of the batch committed
                if not alone:  # acknowledged writes with it: only the log has them now
                    self._ckpt.fail("the commit of acknowledged writes failed", e)
                if written:  # the record is not to be redone: durable before the error
                    self._ckpt.cancel()
                if not isinstance(e, lmdb.Error) or not self._no_space(e):
                    raise
                raise StoreFull(f"no space left for the registry's store {self.path}/data.mdb"
                                f" ({e}): write refused (reads go on) — free space on that "
                                "filesystem") from None
        if payload is not None:
            self._ckpt.logged(self._env, payload, written,
                              wal.dirtied_pages(ops) if self._ckpt.page_budget else 0)
        elif ops:
            self._ckpt.defer(ops)
        window.committed()
        self._largest = max(self._largest, rv - self._rv)
        self._rv, self.compacted = rv, compacted
        self._versions.commit(changes)
        return results

    def _begin_batch(self) -> lmdb.Transaction:
        batch = self._open_batch = self._env.begin(write=True)
        self._batch_began = time.monotonic()
        return batch

    def flush(self) -> None:
        """Commit the batch to data.mdb (unsynced), if one is open.

        The batch is one LMDB write transaction kept open across turns, as etcd's backend
        batches its bbolt commits: each turn writes into it, its record written and synced
        as ever before anything is acknowledged (the log makes it durable), and the batch
        commits once it is ``commit_interval`` old (0: at every turn), when the loop is
        idle (:meth:`idle`; in a turn once twice that old), or dirtied about
        :data:`BATCH_PAGES`, before a checkpoint's snapshot, before a read that needs a
        snapshot (a GET reads in the batch), at the heartbeat, and at close. A commit
        costs the loop about 40 µs whatever its size, and every page it dirties is a fresh
        one while a checkpoint's snapshot is held: the batch pays both once. A commit that
        fails here holds acknowledged writes: fatal (:class:`~.wal.WalFailed`), the next
        open replays them from the log."""
        if self._open_batch is None:
            return
        try:
            self._commit_batch()
        except (lmdb.Error, OSError) as e:
            self._ckpt.fail("the commit of acknowledged writes failed", e)

    def idle(self) -> float | None:
        """The registry's loop is about to wait: commit the batch once it is
        ``commit_interval`` old (off the way of any write's reply). Returns the seconds
        until a batch still open is due, for the loop's wait to end then (else the next
        write's turn would commit it); None when none is open."""
        if self._open_batch is None:
            return None
        left = self._batch_began + self.commit_interval - time.monotonic()
        if left > 0:
            return left
        self.flush()
        return None

    def _commit_batch(self) -> None:
        batch, self._open_batch = self._open_batch, None
        self._batch_redo, self._batch_pages = [], 0
        assert batch is not None
        batch.commit()  # LMDB aborts it when it fails
        if self.commit_interval:
            self._data_end = (self._env.info()["last_pgno"] + 1) * self._page_size

    def _undo_turn(self) -> None:
        """The turn under way failed midway (a full map or disk, any LMDB error): no half
        of it may stay in the batch. The batch is aborted and the redo of the turns before
        it in the batch applied again (they fitted, they fit again); failing that, the
        store stops (they are acknowledged, and in the log)."""
        batch, self._open_batch = self._open_batch, None
        if batch is None:
            return
        batch.abort()
        redo, began = self._batch_redo, self._batch_began
        if not redo:
            self._batch_pages = 0
            return
        try:
            again = self._begin_batch()
            for ops in redo:
                wal.apply(again, self._dbs, ops)
        except (lmdb.Error, OSError) as e:
            self._ckpt.fail("the batch of acknowledged writes could not be made again", e)
        self._batch_began = began

    def _reserve_data(self, pages: int) -> None:
        """Before a turn's record is written: allocate data.mdb's blocks for what the batch
        may write beyond the file's last page (``fallocate`` KEEP_SIZE,
        :data:`DATA_AHEAD` at a time), so that its commit, made after the turn is
        acknowledged, never meets a full disk (and its pages need no delayed allocation).
        Raises StoreFull when there is no room (the turn is undone, nothing lost)."""
        need = self._data_end + (self._batch_pages + pages + 64) * self._page_size
        if need <= self._data_reserved:
            return
        upto = need + DATA_AHEAD
        try:
            limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]  # KEEP_SIZE passes it by
            if limit != resource.RLIM_INFINITY:
                if need > limit:
                    raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))
                upto = min(upto, limit)
            self._ckpt.allocate_data(self._data_end, upto - self._data_end)
        except OSError as e:
            if e.errno in wal.NO_SPACE:
                raise StoreFull(f"no space left for the registry's store {self.path}/"
                                "data.mdb: write refused (reads go on) — free space on that "
                                "filesystem") from None
            raise Internal(f"cannot allocate {self.path}/data.mdb: {e}; write refused"
                           ) from None
        self._data_reserved = upto

    def _run(self, txn: wal.Recording, s: Staged | StagedBatch | RegistryError, rv: int,
             now: float, full: bool) -> tuple[Outcome | RegistryError, int]:
        """Apply one staged write or BATCH; (its result, the resourceVersion after it)."""
        if isinstance(s, RegistryError):
            return s, rv
        if isinstance(s, StagedBatch):
            return self._batch(txn, s, rv, now, full)
        try:
            outcome = self._apply(txn, s, rv, now, full)
        except RegistryError as e:
            return e.with_traceback(None), rv  # no cycle (see records.stage)
        return outcome, rv + len(outcome.events)

    def _batch(self, txn: wal.Recording, batch: StagedBatch, rv: int, now: float,
               full: bool) -> tuple[Outcome, int]:
        """A BATCH: each write alone, or (atomic) all in a nested transaction that is
        aborted when any is refused."""
        start, changed = rv, len(self._changes)
        target = txn.child() if batch.atomic else txn
        results: list[Outcome | RegistryError] = []
        try:
            for s in batch.writes:
                result, rv = self._run(target, s, rv, now, full)
                results.append(result)
            if batch.atomic:
                if any(isinstance(r, RegistryError) for r in results):
                    target.abort()
                    del self._changes[changed:]
                    rv = start
                    results = replay.aborted(results)
                else:
                    target.commit_into(txn)
        except BaseException:
            if batch.atomic:
                target.abort()
            raise
        return replay.batch_outcome(batch.ops, results, rv), rv

    def _replay(self, txn: wal.Recording, request_id: str, op: Op,
                s: Staged | StagedBatch | RegistryError,
                recorded: dict[str, Any]) -> Outcome | RegistryError:
        """The answer recorded for ``request_id``, marked replayed; BadRequest when the id
        was recorded for another op or another object (a client reusing ids)."""
        refused = replay.reused_id(request_id, op, s, recorded)
        if refused is not None:
            return refused
        return replay.replayed(recorded, replay.rebuild(txn.txn, recorded, self._events,
                                                        self._objects))

    def _apply(self, txn: wal.Recording, s: Staged, rv: int, now: float,
               full: bool) -> Outcome:
        key = s.target.store_key
        raw = txn.txn.get(key, db=self._objects)  # LMDB's own: a read records nothing
        current = unpack_stored(raw) if raw is not None else None
        change, action = semantics.change_for(s, current, now)
        if change.type is None:
            assert raw is not None and current is not None
            return replay.outcome(s.op, s.target, change, current, bytes(raw), action, ())
        if full and not semantics.exempt_from_full(s.op, current):
            raise self._full_error()
        rv += 1
        version = current["metadata"]["resourceVersion"] if current is not None else 0
        # Its version set in place: change_for made the object and its metadata afresh,
        # or they are ``current``'s, decoded for this write alone (read above, first).
        obj = change.object
        obj["metadata"]["resourceVersion"] = rv
        frame = self._pack(obj)
        if raw is not None and current is not None:
            self._supersede(txn, version, raw, last=version == rv - 1, target=s.target)
        if change.remove:
            txn.delete(key, db=self._objects)
        else:
            txn.put(key, frame, db=self._objects)
        self._changes.append((s.target.kind, s.target.key, None if change.remove else rv))
        event = self._log_event(txn, s.target, change, frame, rv)
        return replay.outcome(s.op, s.target, change, obj, frame, action, (event,))

    def _log_event(self, txn: wal.Recording, target: Target, change: Change,
                   frame: bytes, rv: int) -> StoredEvent:
        """Append the event of a write: a stub while its object stays in ``objects``,
        whole when the object left it."""
        assert change.type is not None
        body = self._bodies.body(change.type, target.kind, target.key, rv, frame)
        kept = body if change.remove else _STUB_HEADS[change.type] + target.store_key
        txn.put(_be(rv), kept, db=self._events, append=True)
        topic = _TOPICS.get((target.kind, change.type))
        if topic is None:
            topic = _TOPICS[target.kind, change.type] = event_topic(target.kind, change.type)
        return StoredEvent(topic=topic, body=body)

    def _supersede(self, txn: wal.Recording, version: int, frame: bytes,
                   last: bool, target: Target) -> None:
        """The object ``frame`` of ``version`` is about to be replaced or removed: its
        event, when still in the log as a stub, gets the object back (``last``: it is the
        last event of the log)."""
        if version <= self.compacted:
            return
        seq = _be(version)
        held = txn.txn.get(seq, db=self._events)
        if held is not None and held[0] == STUB:
            # Its body around the object being superseded (the target's own key).
            whole = self._bodies.body(_STUB_TYPES[held[1]], target.kind, target.key, version,
                                      frame)
            if last:  # appended again: grown in place, it would leave its page half full
                txn.delete(seq, db=self._events)
            txn.put(seq, whole, db=self._events, append=last)

    def _compact(self, txn: wal.Recording, rv: int) -> int:
        """Drop the oldest events beyond the limit, and up to :data:`COMPACT_BATCH` more
        (so that the next writes drop none); return the new floor."""
        floor = self.compacted
        new_floor = rv - self.event_log_limit
        if new_floor <= floor:
            return floor
        new_floor += min(COMPACT_BATCH, self.event_log_limit // 100)
        for seq in range(floor + 1, new_floor + 1):
            txn.delete(_be(seq), db=self._events)
        return new_floor
