"""Checkpoints and recovery of the LMDB store behind its write-ahead log (:mod:`.wal`).

Runs only in the registry process, owned by :class:`~.lmdb_store.Store`. LMDB is opened
with ``sync=False``: a commit reaches the page cache only (a crash of the process loses
nothing, a power loss may lose or tear any page written since the last ``fsync``). What
makes a write durable is its record in the log. A checkpoint is what etcd's bbolt commit
is to its WAL:

1. open a read transaction: snapshot C, the latest commit;
2. ``env.sync(True)``: one ``fdatasync`` of data.mdb, meta pages included;
3. read data.mdb's two meta pages;
4. write the header ``{generation + 1, boot id, C, the meta pages}`` into the log and
   ``fdatasync`` it; records start over after the headers;
5. end the previous checkpoint's read transaction, keep the new one.

The held read transaction is the invariant that makes this sound: LMDB reuses only pages
freed by transactions older than its oldest reader, so no page of the last durable
snapshot C is ever overwritten, on disk or in the page cache, until the next checkpoint
is durable.

Recovery, before LMDB is opened: with no header (a new store, or one written before the
log) nothing is done. When the header's boot id is this boot's, the OS has not gone down
since, the page cache and so data.mdb are whole: nothing is replayed (replaying would be
wrong: LMDB may hold one committed but unlogged, never acknowledged transaction). Any
other boot (a power loss, a crash or a reboot since): the saved meta pages are written
back into data.mdb (``fdatasync``) before LMDB opens it, so LMDB opens snapshot C, whose
pages the held reader protected and the checkpoint made durable; then the records of the
header's generation are replayed in order. Either way a checkpoint follows at once.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb

from ecsm_actors.errors import Internal
from ecsm_actors.store import wal
from ecsm_actors.store.wal import Header, WalFailed, WriteAheadLog

logger = logging.getLogger(__name__)

#: Fraction of the interval after which a checkpoint is due (heartbeats come about once
#: an interval: a few µs early must not skip one).
_DUE = 0.9


class Checkpoints:
    """The log of one store and the snapshot it holds: see the module docstring."""

    def __init__(self, data_dir: Path, *, wal_size: int, interval: float,
                 boot_id: Callable[[], str] = wal.read_boot_id,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.data_file = data_dir / "data.mdb"
        self.interval = interval
        self._clock = clock
        self.boot_id = boot_id()
        self.log = WriteAheadLog(data_dir / "wal", wal_size)
        self.found = self.log.header()
        self.log.generation = self.found.generation if self.found else 0
        #: Replay the log after opening (set by :meth:`restore_meta`).
        self.replaying = False
        self._held: lmdb.Transaction | None = None
        self._written = False
        #: The log could not be written: no checkpoint may follow (see WalFailed).
        self.failed = False
        self._last = clock()
        self.stats = {"checkpoints": 0, "replayed": 0}

    def restore_meta(self) -> None:
        """Before LMDB opens data.mdb: after another boot (or an unknown one), put back
        the meta pages of the last checkpoint, so LMDB opens its durable snapshot."""
        found = self.found
        if found is None or (self.boot_id and found.boot_id == self.boot_id):
            return
        if not self.data_file.is_file():
            raise Internal(f"{self.data_file} is gone but its write-ahead log is there")
        fd = os.open(self.data_file, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.pwrite(fd, found.meta, 0)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        self.replaying = True
        logger.warning("store %s: recovering from its write-ahead log (checkpoint of "
                       "transaction %d, another boot)", self.data_file.parent, found.txnid)

    def opened(self, env: lmdb.Environment) -> None:
        """LMDB is open (first, or again): hold its snapshot until the next checkpoint."""
        self._held = env.begin()
        if self.replaying and self.found is not None and self._held.id() != self.found.txnid:
            raise Internal(f"{self.data_file}: opened at transaction {self._held.id()}, not "
                           f"at the checkpoint's {self.found.txnid}")

    def replay(self, env: lmdb.Environment, dbs: dict[str, Any]) -> int:
        """Redo the logged transactions after the checkpoint (after :meth:`opened`; the
        caller checkpoints next)."""
        if not self.replaying or self.found is None:
            return 0
        count = 0
        for ops in self.log.records(self.found.generation):
            with env.begin(write=True) as txn:
                wal.apply(txn, dbs, ops)
            count += 1
        self.replaying = False
        self.stats["replayed"] = count
        logger.warning("store %s: %d logged transactions replayed", self.data_file.parent,
                       count)
        return count

    def logged(self, env: lmdb.Environment, ops: list[Any]) -> None:
        """Make the transaction just committed (its redo ``ops``) durable: one record, or
        a checkpoint when the log is full. Raises WalFailed when the disk refuses."""
        try:
            if self.log.append(ops):
                self._written = True
                return
            self.checkpoint(env)
        except (OSError, lmdb.Error) as e:
            self.failed = True
            logger.critical("store %s: the write-ahead log failed (%s); stopping",
                            self.data_file.parent, e)
            raise WalFailed(70) from e

    def written(self) -> None:
        """Something was committed that the next checkpoint must cover."""
        self._written = True

    def due(self) -> bool:
        return self._written and self._clock() - self._last >= self.interval * _DUE

    def checkpoint(self, env: lmdb.Environment) -> None:
        """Make LMDB's latest snapshot durable and the log start over (module docstring)."""
        reader = env.begin()
        try:
            env.sync(True)
            page_size = env.stat()["psize"]
            with open(self.data_file, "rb") as f:
                meta = f.read(2 * page_size)
            self.log.write_header(Header(generation=self.log.generation + 1,
                                         boot_id=self.boot_id, txnid=reader.id(),
                                         page_size=page_size, meta=meta))
        except BaseException:
            reader.abort()
            raise
        held, self._held = self._held, reader
        if held is not None:
            held.abort()
        self._written = False
        self._last = self._clock()
        self.stats["checkpoints"] += 1

    def release(self) -> None:
        """LMDB is about to close (after a checkpoint): let the snapshot go."""
        if self._held is not None:
            self._held.abort()
            self._held = None

    def close(self) -> None:
        self.release()
        self.log.close()
