"""Checkpoints and recovery of the LMDB store behind its write-ahead log (:mod:`.wal`).

Runs only in the registry process, owned by :class:`~.lmdb_store.Store`. LMDB is opened
with ``sync=False``: a commit reaches the page cache only (a crash of the process loses
nothing, a power loss may lose or tear any page written since the last ``fsync``). What
makes a write durable is its record in the log. A checkpoint is what etcd's bbolt commit
is to its WAL:

1. commit the store's batch (:attr:`Checkpoints.before_snapshot`: the turns gathered in
   one LMDB transaction, see :meth:`.lmdb_store.Store.flush`), then open a read
   transaction: snapshot C, the latest commit; read data.mdb's two meta pages (C's and the
   one before);
2. ``fdatasync`` data.mdb — in a thread of its own, writes going on meanwhile (logged as
   ever, and kept aside as the records since C);
3. once it is done, at the next write or idle turn: write the records since C into the
   next generation's region of the log and the header ``{generation + 1, boot id, C,
   the meta pages}``, one ``fdatasync`` for both (:meth:`.wal.WriteAheadLog.write_header`);
4. end the previous checkpoint's read transaction, keep the new one.

A checkpoint begins about every ``interval`` while there are writes (:meth:`Checkpoints.idle`),
as soon as the log's region is half full or (``page_budget``, registry.checkpoint_pages,
when not 0) the commits since the last one began dirtied about that many pages
(:func:`.wal.dirtied_pages`: every page a commit dirties is a fresh one while a snapshot is
held, so this bounds what data.mdb grows by under sustained writes), and at once
(synchronously) at open, close, when the region is full, and when LMDB's map is full
(the held snapshot keeps the pages freed since it from being reused; the next checkpoint
lets them go). Once one is complete and nothing was written for an interval since it began
(and at close), the log's blocks that no recovery reads are given back
(:meth:`.wal.WriteAheadLog.trim`).

A replay runs under the checkpoint's held snapshot too: a replayed transaction would
otherwise reuse the pages of C that an earlier one freed, and a power loss during the
replay would find C torn.

The held read transaction is the invariant that makes this sound: LMDB reuses only pages
freed by transactions older than its oldest reader, so no page of the last durable
snapshot C is ever overwritten, on disk or in the page cache, until the next checkpoint
is durable.

Recovery, before LMDB is opened: with no header (a new store, or one written before the
log; the store refuses a data.mdb marked as written behind a log) nothing is done.
Otherwise the saved meta pages are written back into data.mdb (``fdatasync``) before
LMDB opens it, so LMDB opens snapshot C, whose pages the held reader protected and the
checkpoint made durable; then the records of the header's generation are replayed in
order, in one LMDB transaction (as the batches wrote them: no more of data.mdb needed than
they took), and one INFO line says so (why: after a reboot, a failed sync in this boot —
:meth:`Checkpoints.distrust` — or in the same boot, then only when there were records to
redo). In the same boot too: the store
commits its turns to LMDB in batches (``registry.commit_interval``), before the snapshot
of each checkpoint (:attr:`Checkpoints.before_snapshot`) but not before each
acknowledgement, so after a ``kill -9`` data.mdb may lack acknowledged writes that only
the log holds; C's pages are whole in the page cache (no commit since C overwrote them,
the held reader saw to it). A checkpoint follows at once.

Threads: one checkpoint thread lives as long as the store (started when it opens,
stopped and joined when it closes; the registry never forks once its store is open, and a
thread found gone — after a fork — makes the sync synchronous again). The loop hands it a
begun checkpoint through a queue and never waits for it; the thread only writes data.mdb
back and ``fdatasync``s it through its own descriptor, and sets the checkpoint's ``done``
(an error kept for the loop to raise, as WalFailed). Every LMDB call (the snapshot's read
transaction begun and aborted, commits, the replay) is made on the registry's loop thread.

The log's own syncs (:class:`~.log_sync.LogSync`, :attr:`Checkpoints.syncs`): a write's
record is written before LMDB commits it (:meth:`Checkpoints.write`), its pages handed to
the disk at once, its ``fdatasync`` made by the turn's wait (:meth:`Checkpoints.wait`), a
cancel record following when the commit fails (:meth:`Checkpoints.cancel`). Every other
write to the log (the deferred window redo, a header with its records, a cancel record)
is synced on the loop thread at once: its ``fdatasync`` covers the records still waiting
for their sync too, and a new generation's header copies their records (``since``) before
it is durable. The log's blocks are given back only once every record is synced.

Writeback in chunks (:func:`write_back`): a checkpoint's ``fdatasync`` alone would put a
second's worth of dirty pages (13-16 ms of writeback) in the disk's queue at once, and
every log ``fdatasync`` issued meanwhile (a write's durability) waited behind them. The
thread first writes data.mdb back :data:`WRITEBACK_CHUNK` bytes at a time, each chunk
waited for (``sync_file_range``), so a log sync queues behind one chunk at most; the
``fdatasync`` that follows writes what is left (pages dirtied meanwhile, the file's size)
and flushes the disk's cache. A checkpoint is complete only after that ``fdatasync``:
the writeback is no part of its durability, and a writeback error is the sync's.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import lmdb

from ecsm_actors.errors import Internal, StoreFull
from ecsm_actors.store import wal
from ecsm_actors.store.log_sync import LogSync
from ecsm_actors.store.wal import Header, WalFailed, WriteAheadLog, libc_sync_file_range

logger = logging.getLogger(__name__)

#: A directory that lives as long as this boot (tmpfs): it holds a file for each data.mdb
#: whose page cache a failed sync made untrustworthy (see :meth:`Checkpoints.distrust`).
VOLATILE_DIR = Path("/dev/shm")

#: Why a store is recovered when its log was written in this boot (no sync failed).
_SAME_BOOT = "in the same boot"

#: Fraction of the interval after which a checkpoint is due (heartbeats come about once
#: an interval: a few µs early must not skip one).
_DUE = 0.9

#: Bytes of data.mdb written back (and waited for) at a time before a checkpoint's
#: ``fdatasync`` (see the module docstring): 64 KiB let a log sync issued meanwhile take
#: p50 0.26 ms against 0.45 with 256 KiB (bench_watch_stages, same run). 128 KiB: each
#: chunk costs the checkpoint thread a wake-up (its wait, the GIL, the disk's kick),
#: about 20 µs here, so half as many took its CPU from 45-46 to 33-35 µs a create
#: (1 client; bench_registry_turn create: the process 378-380 against 408-439 µs), and the
#: writeback ends sooner (41-55 against 58-68 ms at 500 writes/s): fewer log syncs overlap
#: it (185-243 against 246-335), each a little slower on a quiet disk (a synthetic 32 MB
#: writeback beside appends at 500/s, 20 runs: p50 0.27 against 0.22 ms, p99 0.46 alike);
#: the watcher's p99 within the noise (seven runs: 3 lower, 3 higher, 1 alike).
WRITEBACK_CHUNK = 128 << 10

#: At most this many chunks a checkpoint (about 1.2 µs of CPU each when clean): a larger
#: data.mdb is written back in larger chunks.
WRITEBACK_CALLS = 1024

#: sync_file_range(2): wait for writeback under way, start it, wait for it.
_SYNC_FILE_RANGE_WAIT_ALL = 1 | 2 | 4

def write_back(fd: int, chunk: int = WRITEBACK_CHUNK) -> None:
    """Write the dirty pages of ``fd`` back ``chunk`` bytes at a time (at most
    :data:`WRITEBACK_CALLS` chunks), each chunk waited for, so that the disk never queues
    more than a chunk of it ahead of another file's sync. Durable only after an
    ``fdatasync`` (which this is not). Raises OSError when the disk refuses; does nothing
    where ``sync_file_range`` is not to be had."""
    fn = libc_sync_file_range()
    if fn is None:
        return
    size = os.fstat(fd).st_size
    chunk = max(chunk, -(-size // WRITEBACK_CALLS))
    for offset in range(0, size, chunk):
        if fn(fd, offset, chunk, _SYNC_FILE_RANGE_WAIT_ALL) != 0:
            err = ctypes.get_errno()
            if err in (errno.ENOSYS, errno.EINVAL, errno.ESPIPE, errno.EOPNOTSUPP):
                return  # not supported here: the fdatasync writes it all
            raise OSError(err, os.strerror(err))


class _Pending:
    """A checkpoint begun: its snapshot, data.mdb's meta pages then, the records logged
    since, and the sync of data.mdb (done when ``done`` is set)."""

    def __init__(self, reader: lmdb.Transaction, page_size: int, meta: bytes) -> None:
        self.reader = reader
        self.page_size = page_size
        self.meta = meta
        self.began = time.monotonic()
        #: When data.mdb was synced (what ``lastCheckpointMs`` measures from ``began``).
        self.synced = 0.0
        self.since: list[bytes] = []
        self.done = threading.Event()
        self.error: OSError | None = None


#: What the checkpoint thread is handed: a checkpoint and data.mdb's descriptor, or None
#: to stop.
_Job = tuple[_Pending, int] | None


class Checkpoints:
    """The log of one store and the snapshot it holds: see the module docstring."""

    def __init__(self, data_dir: Path, *, wal_size: int, interval: float,
                 page_budget: int = 0, boot_id: Callable[[], str] = wal.read_boot_id,
                 clock: Callable[[], float] = time.monotonic,
                 volatile_dir: Path = VOLATILE_DIR,
                 before_snapshot: Callable[[], None] | None = None) -> None:
        self.data_file = data_dir / "data.mdb"
        #: Called before a checkpoint's snapshot is taken: the store commits its batch.
        self.before_snapshot = before_snapshot
        self.volatile_dir = volatile_dir
        #: Why the store is recovered at open ('' when it is not).
        self.recovering = ""
        self.interval = interval
        #: Pages dirtied (estimated) since the last checkpoint began after which the next
        #: one begins at once (None: never). data.mdb then keeps about twice this many
        #: free pages under sustained writes, plus what is dirtied while a checkpoint's
        #: sync runs, instead of one to two intervals' worth (bench_store_steady: 500
        #: writes/s, 30.5 -> 15.1 MiB with 2,048; 1,024 kept 5.5-9 MiB but cost 15% more
        #: CPU a write back to back: reused pages are written one by one, not in runs) —
        #: for more checkpoints, whose syncs of data.mdb the log's appends queue behind
        #: (watcher p99 about 1.4× at 500 writes/s).
        self.page_budget = page_budget if page_budget > 0 else None
        #: Pages dirtied (estimated) since the last checkpoint began.
        self._dirtied = 0
        self._clock = clock
        self.boot_id = boot_id()
        self.log = WriteAheadLog(data_dir / "wal", wal_size)
        #: The log's syncs (see :meth:`write`): made by the wait that follows each turn.
        self.syncs = LogSync(self.log.fd)
        self.found = self.log.found
        if self.found is not None and self.found.region and self.found.region != (
                WriteAheadLog.region_for(wal_size)):
            logger.info("store %s: the write-ahead log keeps its size (%d bytes); a changed "
                        "registry.wal_size applies to a new log", data_dir,
                        self.log.region * 2 + wal.RECORDS_AT)
        #: Replay the log after opening (set by :meth:`restore_meta`).
        self.replaying = False
        self._held: lmdb.Transaction | None = None
        self._pending: _Pending | None = None
        self._data_fd: int | None = None
        self._written = False
        #: The redo of the transactions committed since the last record that wrote only
        #: the request window (:meth:`defer`): logged with the next record.
        self._deferred: list[Any] = []
        #: The log could not be written: no checkpoint may follow (see WalFailed).
        self.failed = False
        #: A checkpoint completed since the log's unused blocks were last given back.
        self._untrimmed = False
        self._last = clock()
        #: checkpoints made, the last one's duration (begun → its header durable), records
        #: replayed at open.
        self.stats: dict[str, float] = {"checkpoints": 0, "lastCheckpointMs": 0.0,
                                        "replayed": 0}
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = threading.Thread(
            target=self._serve, name="store-checkpoint", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        """The checkpoint thread: each checkpoint handed over, data.mdb written back and
        synced (:meth:`_sync`), until told to stop."""
        while (job := self._jobs.get()) is not None:
            pending, fd = job
            try:
                self._sync(pending, fd)
            except BaseException as e:  # noqa: BLE001 - the loop raises it (WalFailed)
                if not pending.done.is_set():
                    pending.error = OSError(errno.EIO, f"checkpoint thread: {e!r}")
                    pending.done.set()

    def _stop(self) -> None:
        """Stop the checkpoint thread and wait for it (no thread left behind)."""
        thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._jobs.put(None)
            thread.join()

    def restore_meta(self) -> None:
        """Before LMDB opens data.mdb: after another boot (or an unknown one), put back
        the meta pages of the last checkpoint, so LMDB opens its durable snapshot."""
        found = self.found
        if found is None:
            return
        if not self.data_file.is_file():
            raise Internal(f"{self.data_file} is gone but its write-ahead log is there: "
                           "put data.mdb back beside it, or restore the store from a backup")
        if self._distrust_file().exists():
            self.recovering = "after a failed sync in this boot"
        elif not self.boot_id or found.boot_id != self.boot_id:
            self.recovering = "after a reboot"
        else:  # acknowledged writes may be in the log only (the store's batch)
            self.recovering = _SAME_BOOT
        fd = os.open(self.data_file, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.pwrite(fd, found.meta, 0)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        self.replaying = True

    def opened(self, env: lmdb.Environment) -> None:
        """LMDB is open (first, or again): hold its snapshot until the next checkpoint."""
        self._held = env.begin()
        if self._data_fd is None:
            self._data_fd = os.open(self.data_file, os.O_RDWR | os.O_CLOEXEC)
        if self.replaying and self.found is not None and self._held.id() != self.found.txnid:
            raise Internal(f"{self.data_file}: opened at transaction {self._held.id()}, not "
                           f"at the checkpoint's {self.found.txnid}")

    def replay(self, env: lmdb.Environment, dbs: dict[str, Any]) -> int:
        """Redo the logged transactions after the checkpoint (after :meth:`opened`; the
        caller checkpoints next)."""
        if not self.replaying or self.found is None:
            return 0
        count = 0
        # One transaction for them all: the turns were committed in batches (the store's
        # commit_interval), each page dirtied once a batch; one transaction a record
        # would dirty fresh pages for each (the held snapshot), data.mdb then needing
        # more blocks than the run that logged them had — on a full disk, an open that
        # fails at every restart.
        with env.begin(write=True) as txn:
            for ops in self.log.records(self.found.generation):
                wal.apply(txn, dbs, ops)
                count += 1
        self.replaying = False
        self.stats["replayed"] = count
        # A start after a clean stop (nothing to redo in this boot) is no recovery.
        level = logging.DEBUG if not count and self.recovering == _SAME_BOOT else logging.INFO
        logger.log(level, "store %s recovered %s: checkpoint txn %d, replayed %d records",
                   self.data_file.parent, self.recovering, self.found.txnid, count)
        return count

    def _distrust_file(self) -> Path:
        st = os.stat(self.data_file)
        return self.volatile_dir / f"ecsm-actors-store-{st.st_dev}-{st.st_ino}"

    def distrust(self) -> None:
        """A sync failed: pages of data.mdb may be marked clean in the page cache but
        not on the disk (Linux drops them later), so until the next boot the page cache is
        no proof: the next open recovers from the log as after a reboot (best effort: a
        file in :data:`VOLATILE_DIR`)."""
        try:
            self._distrust_file().touch()
        except OSError as e:
            logger.error("store %s: cannot note that data.mdb's page cache is not to be "
                         "trusted (%s): after a restart in this boot, check the store",
                         self.data_file.parent, e)

    def trusted(self) -> None:
        """Recovered and checkpointed: data.mdb's page cache is whole again."""
        if self.recovering:
            self.recovering = ""
            with contextlib.suppress(OSError):
                self._distrust_file().unlink()

    def defer(self, ops: list[Any]) -> None:
        """A transaction that wrote only the request window (the record of a refusal or of
        a write that changed nothing, a prune) committed: no ``fdatasync`` before its
        reply. Its redo ``ops`` lead the next record (:meth:`reserve`), or a record of
        their own before the next checkpoint's snapshot (:meth:`_begin`), so the log stays
        the redo of every commit after the checkpoint, in order. A power loss before then
        loses these window records only (and every commit after them, none acknowledged):
        each recorded an outcome that changed no object, no event, no resourceVersion, so
        a retry of its request, evaluated again, cannot apply a write twice — and so does
        a ``kill -9`` (every open replays the log onto the checkpoint)."""
        self._deferred += ops
        if self.page_budget is not None:
            self._dirtied += wal.dirtied_pages(ops)
        self._written = True

    def reserve(self, ops: list[Any]) -> bytes:
        """Before the transaction of the redo ``ops`` commits in LMDB: its record's
        payload (led by the deferred redo, :meth:`defer`), its space in the log
        allocated. Raises StoreFull when the disk has no room for it (abort the
        transaction: nothing is lost, reads go on), Internal when the log cannot be grown
        for another reason."""
        payload = wal.encode(self._deferred + ops if self._deferred else ops)
        try:
            self.log.reserve(len(payload))
        except OSError as e:
            if e.errno in wal.NO_SPACE:
                raise StoreFull(f"no space left for the registry's write-ahead log "
                                f"{self.log.path}: write refused (reads go on) — free space "
                                f"on that filesystem") from None
            raise Internal(f"cannot grow the write-ahead log {self.log.path}: {e}; write "
                           "refused") from None
        return payload

    @property
    def wal_bytes(self) -> int:
        """Bytes of records in the log's current generation."""
        return self.log.used

    def write(self, payload: bytes) -> bool:
        """Before LMDB commits the transaction of ``payload`` (from :meth:`reserve`):
        write its record, its pages handed to the disk at once (the data's write-back
        runs while LMDB commits and the caller makes its replies), and ask for its sync
        (:attr:`syncs`: made by the caller's :meth:`wait`; durable once :attr:`syncs`
        passes :attr:`LogSync.requested`). False (nothing written) when it does not fit
        in the region: :meth:`logged` then checkpoints after the commit. Raises
        WalFailed when the disk refuses (its space was reserved)."""
        try:
            if not self.log.write(payload):
                return False
        except OSError as e:
            self.fail("the write-ahead log failed", e)
        self.syncs.request()
        return True

    def cancel(self) -> None:
        """LMDB's commit of the transaction whose record was just written failed: a
        cancel record, durable before the caller answers (no recovery redoes the record).
        Raises WalFailed when it cannot be made durable."""
        try:
            self.log.cancel()
        except OSError as e:
            self.fail("the write-ahead log failed", e)

    def wait(self, ticket: int | None = None) -> None:
        """Return once the record of ``ticket`` (default: every record written) is
        durable. Raises WalFailed when its sync failed."""
        try:
            self.syncs.wait(self.syncs.requested if ticket is None else ticket)
        except OSError as e:
            self.fail("the write-ahead log failed", e)

    def allocate_data(self, offset: int, length: int) -> None:
        """Allocate the blocks of ``length`` bytes of data.mdb at ``offset`` without
        changing its size (``fallocate`` KEEP_SIZE): LMDB's writes there need no new
        block. Raises OSError (ENOSPC: the disk is full); nothing where the filesystem
        cannot."""
        assert self._data_fd is not None
        fn = wal.libc_fallocate()
        if fn is None or not self._can_allocate:
            return
        if fn(self._data_fd, wal.KEEP_SIZE, offset, length) != 0:
            err = ctypes.get_errno()
            if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                self._can_allocate = False
                return
            raise OSError(err, os.strerror(err))

    #: data.mdb's blocks may be allocated ahead (False once the filesystem could not).
    _can_allocate = True

    def fail(self, what: str, error: BaseException) -> NoReturn:
        """Stop the store: ``what`` failed with ``error``, and writes may be acknowledged
        that only the log holds (raises :class:`~.wal.WalFailed`; the next open recovers
        from the log)."""
        self.failed = True
        if self.syncs.error is None:  # nor may a later sync acknowledge a write
            self.syncs.error = OSError(errno.EIO, f"{what}: {error}")
        self.distrust()
        logger.critical("store %s: %s (%s); stopping", self.data_file.parent, what, error)
        raise WalFailed(70) from error

    def logged(self, env: lmdb.Environment, payload: bytes, written: bool,
               pages: int = 0) -> None:
        """The transaction of the record ``payload`` (:meth:`reserve`; ``written`` by
        :meth:`write`, its sync under way; it dirtied about ``pages``) committed in LMDB:
        when it was not written (the log is full), a checkpoint now makes it durable; then
        finish a checkpoint whose sync is done, or begin one in the background once the
        log's region is half full or about ``page_budget`` pages were dirtied since the
        last one began. Raises WalFailed when the disk refuses (the write is committed in
        LMDB but not durable: an ``fdatasync`` EIO is fatal, the process exits; a full disk
        was refused before the commit by :meth:`reserve`)."""
        self._deferred = []  # in payload, or in the checkpoint's snapshot below
        self._dirtied += pages
        try:
            if not written:
                self.checkpoint(env)
                return
            self._written = True
            pending = self._pending
            if pending is not None:
                pending.since.append(payload)
                if pending.done.is_set():
                    self._finish(env)
            elif (self.log.used > self.log.region // 2  # before the region fills up
                  or (self.page_budget is not None and self._dirtied >= self.page_budget)):
                self._begin(env, background=True)
        except (OSError, lmdb.Error) as e:
            self.fail("the write-ahead log failed", e)

    def written(self) -> None:
        """Something was committed that the next checkpoint must cover."""
        self._written = True

    def idle(self, env: lmdb.Environment) -> None:
        """The registry is idle: finish a checkpoint whose sync is done, and begin one
        in the background when due (about every ``interval`` while there are writes).
        Once a checkpoint is complete and nothing was written for an interval since it
        began, give back the log's blocks that no recovery reads (:meth:`_trim`)."""
        try:
            pending = self._pending
            if pending is not None:
                if pending.done.is_set():
                    self._finish(env)
            elif self._written and (self._clock() - self._last >= self.interval * _DUE or (
                    self.page_budget is not None and self._dirtied >= self.page_budget)):
                self._begin(env, background=True)
            if (self._untrimmed and self._pending is None and not self._written
                    and self._clock() - self._last >= self.interval * _DUE):
                self._trim()
        except (OSError, lmdb.Error) as e:  # a sync of data.mdb or of the log failed
            self.fail("a checkpoint failed", e)

    def _trim(self) -> None:
        """The latest checkpoint is complete and writes have paused: punch the log's
        blocks that its header no longer needs (:meth:`.wal.WriteAheadLog.trim`; not at
        every checkpoint: a record written into blocks allocated again takes a slower
        ``fdatasync``). A punch that fails is no failure of the log: the blocks stay."""
        self._untrimmed = False
        self.wait()  # no record's sync under way beside the punch
        try:
            self.log.trim()
        except OSError as e:
            self.log.can_trim = False
            logger.warning("store %s: cannot give back the unused blocks of the write-ahead "
                           "log (%s); it keeps them", self.data_file.parent, e)

    def checkpoint(self, env: lmdb.Environment) -> None:
        """Make LMDB's latest snapshot durable and the log start over, now (a checkpoint
        begun in the background is finished first). A failure is the caller's to raise;
        no checkpoint may follow it (:attr:`failed`)."""
        try:
            if self._pending is not None:
                self._pending.done.wait()
                self._finish(env)
            self._begin(env, background=False)
            self._finish(env)
        except (OSError, lmdb.Error) as e:
            self.failed = True
            self.distrust()
            if self.syncs.error is None:  # nor may the log's syncs acknowledge a write
                self.syncs.error = OSError(errno.EIO, f"a checkpoint failed: {e}")
            raise

    def _log_deferred(self) -> None:
        """Before a snapshot: the deferred redo (:meth:`defer`) as a record of its own, so
        that no commit before the snapshot is left out of the log of the generation that
        a power loss before the checkpoint's header would recover from. When it does not
        fit (the region or the disk is full), the checkpoint alone covers them."""
        ops, self._deferred = self._deferred, []
        if ops:
            at = self.log.offset
            try:
                written = self.log.write(wal.encode(ops))
            except OSError as e:  # no room for it: nothing to sync
                if e.errno not in wal.NO_SPACE or self.log.offset != at:
                    raise  # written, its write-back refused: its pages may be lost
                written = False
            if written:  # a sync that fails (ENOSPC too) fails the checkpoint
                os.fdatasync(self.log.fd)

    def _begin(self, env: lmdb.Environment, *, background: bool) -> None:
        assert self._data_fd is not None and self._pending is None
        if self.failed:  # a sync that succeeds after a failed one proves nothing
            raise OSError(errno.EIO, "a sync failed before: no checkpoint may follow")
        if self.before_snapshot is not None:
            self.before_snapshot()  # the snapshot holds every commit the log recorded
        self._log_deferred()
        reader = env.begin()
        try:
            page_size = env.stat()["psize"]
            meta = os.pread(self._data_fd, 2 * page_size, 0)
        except BaseException:
            reader.abort()
            raise
        pending = self._pending = _Pending(reader, page_size, meta)
        self._written = False
        self._dirtied = 0
        self._last = self._clock()
        if background and self._thread is not None and self._thread.is_alive():
            self._jobs.put((pending, self._data_fd))  # never waits for the thread
        else:
            try:
                os.fdatasync(self._data_fd)
                pending.synced = time.monotonic()
            except OSError as e:
                pending.error = e
            finally:
                pending.done.set()

    @staticmethod
    def _sync(pending: _Pending, fd: int) -> None:
        """In the checkpoint thread: data.mdb written back in chunks (:func:`write_back`),
        then one ``fdatasync`` (LMDB writes the file, meta pages included, through its own
        descriptor: the sync is the file's). Done when that returns."""
        try:
            write_back(fd)
            os.fdatasync(fd)
            pending.synced = time.monotonic()
        except OSError as e:
            pending.error = e
        except BaseException as e:  # noqa: BLE001 - never done without the sync
            pending.error = OSError(errno.EIO, f"checkpoint thread: {e!r}")
        finally:
            pending.done.set()

    def _finish(self, env: lmdb.Environment) -> None:
        """The sync is done: write the next generation's records and header."""
        pending, self._pending = self._pending, None
        assert pending is not None
        try:
            if pending.error is not None:
                raise pending.error
            header = Header(generation=self.log.generation + 1, boot_id=self.boot_id,
                            txnid=pending.reader.id(), page_size=pending.page_size,
                            meta=pending.meta)
            if not self.log.write_header(header, pending.since):
                pending.reader.abort()  # too much since: a checkpoint of the latest
                self._begin(env, background=False)
                self._finish(env)
                return
        except BaseException:
            pending.reader.abort()
            raise
        held, self._held = self._held, pending.reader
        if held is not None:
            held.abort()
        self._untrimmed = True
        self.stats["checkpoints"] += 1
        # the checkpoint's own time (snapshot to data.mdb synced), not the wait until the
        # idle hook found it done
        synced = pending.synced or time.monotonic()
        self.stats["lastCheckpointMs"] = round((synced - pending.began) * 1e3, 3)

    def release(self) -> None:
        """LMDB is about to close (after a checkpoint): let the snapshots go."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.done.wait()
            pending.reader.abort()
        if self._held is not None:
            self._held.abort()
            self._held = None

    def close(self) -> None:
        if not self.failed and self._pending is None and not self._written:
            self._trim()  # after the store's last checkpoint
        self.release()
        self._stop()
        if self._data_fd is not None:
            os.close(self._data_fd)
        self.log.close()
