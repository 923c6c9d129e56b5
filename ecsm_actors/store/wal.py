"""The store's write-ahead log: one file, ``<data dir>/wal``, and what a transaction logs.

Runs only in the registry process, under the store (:mod:`.checkpoint` drives it). LMDB is
committed without ``fsync`` (``sync=False``); the durable copy of each write transaction
is ONE record appended here and ``fdatasync``'d before the write is acknowledged: its
redo, the ordered puts and deletes it made (sub-database name, key, value or None).

Layout of the file, at most ``size`` bytes, allocated ahead of the records with
``posix_fallocate`` (:data:`CHUNK` at a time: it grows only to what the records between
two checkpoints need, and a record's ``fdatasync`` seldom has to commit a new extent):

* two header slots of :data:`SLOT` bytes at offsets 0 and :data:`SLOT` — the checkpoint
  of generation ``g`` is written into slot ``g % 2``, so a header torn by a power loss
  leaves the other one valid: ``{magic, generation, boot id, LMDB txnid, page size, the
  length and crc32 of the records it starts with, the two meta pages of data.mdb, the
  generation's salt, the size of a record region, crc32}``;
* from :data:`RECORDS_AT` on, two record regions of half the rest each: the records of
  generation ``g`` in region ``g % 2``, one after the other: ``{length, crc32,
  generation, payload}`` (the crc32 covers the generation, the header's random salt and
  the payload), the payload the msgpack list ``[code, sub-db, key, value,
  code, …]`` (:data:`PUT`, :data:`APPEND`, :data:`DELETE`); or a cancel record,
  ``[CANCEL, None, None, None]``: the record before it is not redone (its transaction
  was logged, then LMDB's commit failed: :meth:`WriteAheadLog.cancel`).

A record is written before its transaction commits in LMDB, its pages handed to the disk
at once (:meth:`WriteAheadLog.write`), and synced by the turn's wait
(:class:`~.log_sync.LogSync`); nothing is acknowledged before that sync. LMDB's commit
may come turns later (the store's batch, ``registry.commit_interval``): until then the
log alone holds the acknowledged write, so every recovery, in the same boot too, replays
the records of the checkpoint's generation onto its snapshot. When a commit fails before
its turn is acknowledged, a cancel record follows, durable before the error is answered;
one that fails after stops the process (:class:`WalFailed`). A ``kill -9`` between the
record and LMDB's commit leaves the record orphaned in the log: the recovery redoes it —
a write applied without an acknowledgement, whose request-window record (in the same
redo) answers a retry of its requestId.

Invariants: generations only grow; the header of ``g`` is written with the records it
starts with (the transactions committed since its snapshot, copied from ``g - 1``'s
region), one ``fdatasync`` for both, and is valid only when those records are whole
(their length and crc32 are in it); it goes into the slot and the region that ``g - 2``
used, so that until it is durable, ``g - 1``'s header and records are intact; whatever
follows the last valid record of ``g`` in its region (a torn record, zeros, records of
``g - 2``, or records of an attempt at ``g`` whose header never became durable: another
salt) is not of ``g`` or fails its crc, and reading stops there. The region size is the
one the header names: a changed ``registry.wal_size`` applies to a new log only (a log's
regions never move under records a header still needs).

Disk full: the space of a record is allocated (:meth:`WriteAheadLog.reserve`) before its
transaction commits in LMDB, so that a full disk refuses the write (``StoreFull``) instead
of leaving it committed but not durable. An ``fdatasync`` that fails after the commit
(EIO) stays fatal: :class:`WalFailed`.

Blocks given back (:meth:`WriteAheadLog.trim`, when the registry is idle after a
checkpoint): once the header of ``g`` is durable, a recovery reads the header slots, the
records of ``g`` up to the first that is not whole, and the start of the other region only
to find ``g - 1``'s header no longer whole (it lost to ``g`` anyway). So the other region
and the current one after its last record are punched (``fallocate`` PUNCH_HOLE, the
file's size kept; they read as zeros, which end a region's records); a power loss during
or after the punch leaves either the old blocks or zeros there, both read alike. Space is
allocated again (:meth:`WriteAheadLog.reserve`) before a record needs it.

:class:`Recording` is the proxy of an LMDB write transaction that the store's code writes
through: it notes each put and delete that took effect (nested transactions of an atomic
BATCH keep theirs only when committed).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import struct
import sys
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lmdb
import msgpack

from ecsm_actors.protocol import pack

#: Bytes of one header slot (two meta pages of up to 16 KiB each fit).
SLOT = 64 << 10
#: Offset of the first record.
RECORDS_AT = 2 * SLOT
#: The file is allocated this much further ahead when the records reach its end.
CHUNK = 1 << 20
#: Smallest WAL file accepted: the headers and two regions of records.
MIN_SIZE = RECORDS_AT + 2 * CHUNK

PUT, APPEND, DELETE = 0, 1, 2
#: The code of a cancel record, ``[CANCEL, None, None, None]``: the record just before it
#: is not to be redone (its transaction was written to the log, then LMDB's commit failed).
CANCEL = 3

#: errno of a write or an allocation refused for want of space (EFBIG: the process's
#: file size limit).
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
#: How LMDB words them (it raises lmdb.Error with the message only).
NO_SPACE_TEXT = tuple(os.strerror(n) for n in NO_SPACE)

MAGIC = b"ECSMWAL2"
#: The first layout (no salt, no region size: read, never written).
MAGIC_1 = b"ECSMWAL1"
# magic, generation, boot id, txnid, page size, records' length and crc32, meta length
_HEAD_1 = struct.Struct(">8sQ36sQIQII")
# ... then the salt and the size of a record region
_HEAD = struct.Struct(">8sQ36sQIQII8sQ")
_CRC = struct.Struct(">I")
_REC = struct.Struct(">IIQ")  # payload length, crc32 of generation + payload, generation
_GEN = struct.Struct(">Q")

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

#: fallocate(2) mode: free the blocks of a range (reads return zeros), keep the file size.
_PUNCH_HOLE = 2 | 1  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
#: errno of a punch the filesystem or kernel cannot do: the blocks stay, nothing else.
_CANNOT_PUNCH = (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENOTTY)

@functools.cache
def libc_function(*names: str, argtypes: tuple[Any, ...]) -> Any:
    """The first of ``names`` libc has, typed (returns an int; errno kept for
    ``ctypes.get_errno``), or None where there is none (not Linux). ctypes lets the GIL
    go during the call."""
    if sys.platform != "linux":
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    for name in names:
        fn = getattr(libc, name, None)
        if fn is not None:
            fn.argtypes = list(argtypes)
            fn.restype = ctypes.c_int
            return fn
    return None


def libc_sync_file_range() -> Any:
    """libc's ``sync_file_range``."""
    return libc_function("sync_file_range",
                         argtypes=(ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint))


#: sync_file_range(2): start the write-out of the range's dirty pages, wait for nothing.
_SYNC_FILE_RANGE_WRITE = 2
#: errno of a sync_file_range the file or kernel cannot do (the fdatasync writes it all).
_CANNOT_START = (errno.ENOSYS, errno.EINVAL, errno.ESPIPE, errno.EOPNOTSUPP)


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` of ``fd``, or raise OSError: a short write
    (a disk filling or failing mid-write) would leave a torn record that a later
    ``fdatasync`` makes durable and acknowledged, and recovery stop before it."""
    written = os.pwrite(fd, data, offset)
    if written != len(data):
        raise OSError(errno.EIO, f"short write to the log: {written} of {len(data)} bytes "
                      f"at {offset}")


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Hand the dirty pages of ``length`` bytes at ``offset`` of ``fd`` to the disk now,
    waiting for nothing: an ``fdatasync`` issued later finds them written or under way
    (waits for them) instead of writing them itself. Durable only after that
    ``fdatasync``. Raises OSError when the disk refuses; nothing where the kernel cannot."""
    fn = libc_sync_file_range()
    if fn is not None and fn(fd, offset, length, _SYNC_FILE_RANGE_WRITE) != 0:
        err = ctypes.get_errno()
        if err not in _CANNOT_START:
            raise OSError(err, os.strerror(err))


#: fallocate(2) mode: allocate the range's blocks, keep the file size.
KEEP_SIZE = 1


def libc_fallocate() -> Any:
    """libc's ``fallocate`` (Python has no punching one, nor one that keeps the size)."""
    return libc_function("fallocate64", "fallocate",
                         argtypes=(ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64))


def punch(fd: int, offset: int, length: int) -> bool:
    """Give back the blocks of ``length`` bytes at ``offset`` of ``fd`` (they read as
    zeros, the size stays). False where the filesystem cannot (nothing changed); OSError
    when it fails otherwise."""
    fn = libc_fallocate()
    if fn is None:
        return False
    if length > 0 and fn(fd, _PUNCH_HOLE, offset, length) != 0:
        err = ctypes.get_errno()
        if err in _CANNOT_PUNCH:
            return False
        raise OSError(err, os.strerror(err))
    return True


class WalFailed(SystemExit):
    """The log could not be written: a write is committed in LMDB but not durable, and
    must never be acknowledged nor built upon. A ``SystemExit`` so that no catch-all of
    the registry keeps serving: the process dies, the supervisor starts it again, and the
    unacknowledged write is either kept (the page cache still holds it) or gone, as after
    a ``kill -9`` between a commit and its reply."""


def read_boot_id() -> str:
    """This boot of the kernel ('' when unknown: then every open recovers from the log)."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True, kw_only=True)
class Header:
    """A checkpoint: LMDB's snapshot ``txnid`` is durable in data.mdb, and ``meta`` holds
    data.mdb's two meta pages as they were then."""

    generation: int
    boot_id: str
    txnid: int
    page_size: int
    meta: bytes
    #: Length and crc32 of the records the generation starts with.
    records: tuple[int, int] = (0, 0)
    #: Mixed into the crc32 of each record of the generation (b'' in the first layout).
    salt: bytes = field(default=b"", compare=False)
    #: Bytes of a record region (0 in the first layout: the configured size's).
    region: int = field(default=0, compare=False)

    def encode(self) -> bytes:
        head = _HEAD.pack(MAGIC, self.generation, self.boot_id.encode()[:36].ljust(36),
                          self.txnid, self.page_size, *self.records, len(self.meta),
                          self.salt, self.region)
        head += self.meta
        return head + _CRC.pack(zlib.crc32(head))

    @classmethod
    def decode(cls, raw: bytes) -> Header | None:
        """The header in ``raw`` (one slot), or None when it is absent or torn."""
        magic = raw[:8]
        layout = _HEAD if magic == MAGIC else _HEAD_1 if magic == MAGIC_1 else None
        if layout is None or len(raw) < layout.size:
            return None
        salt, region = b"", 0
        if layout is _HEAD:
            (_, generation, boot, txnid, page_size, length, crc, meta_len, salt,
             region) = _HEAD.unpack_from(raw)
        else:
            _, generation, boot, txnid, page_size, length, crc, meta_len = _HEAD_1.unpack_from(
                raw)
        end = layout.size + meta_len
        if end + _CRC.size > len(raw):
            return None
        if _CRC.unpack_from(raw, end)[0] != zlib.crc32(raw[:end]):
            return None
        return cls(generation=generation, boot_id=boot.decode().strip(), txnid=txnid,
                   page_size=page_size, meta=bytes(raw[layout.size:end]),
                   records=(length, crc), salt=salt, region=region)


class WriteAheadLog:
    """The file ``path``: its headers, the records of the current generation. Opened,
    it takes on the latest valid header's generation, salt and region size (:attr:`found`)."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = max(int(size), MIN_SIZE)
        self.region = self.region_for(self.size)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        #: The file was made here (its directory entry is the caller's to sync).
        self.created = False
        try:
            if os.fstat(self._fd).st_size < RECORDS_AT:
                os.posix_fallocate(self._fd, 0, RECORDS_AT)
                os.fsync(self._fd)
                self.created = True
        except BaseException:
            os.close(self._fd)
            raise
        #: Bytes allocated from each region's start (at least; as far as this process knows).
        self._allocated = [0, 0]
        self.generation = 0
        self.salt = b""
        #: The salt of each generation known (found, written) in this process.
        self._salts: dict[int, bytes] = {}
        self._start = self._offset = RECORDS_AT
        #: A header was made durable by this object (its generation's is then surely
        #: durable: one found at open may sit in the page cache only, after a failed sync).
        self._wrote_header = False
        #: Blocks may be punched (False once the filesystem could not).
        self.can_trim = True
        #: The latest valid header when the file was opened.
        self.found = self.header()
        if self.found is not None:
            self.generation, self.salt = self.found.generation, self.found.salt
            self._salts[self.generation] = self.salt
            if self.found.region:
                self.region = self.found.region

    @staticmethod
    def region_for(size: int) -> int:
        """Bytes of a record region in a log of ``size`` bytes."""
        return (max(int(size), MIN_SIZE) - RECORDS_AT) // 2 // 4096 * 4096

    def header(self) -> Header | None:
        """The latest valid checkpoint header, if any."""
        found = [Header.decode(os.pread(self._fd, SLOT, slot * SLOT)) for slot in (0, 1)]
        valid = [h for h in found if h is not None and self._whole(h)]
        return max(valid, key=lambda h: h.generation) if valid else None

    def _whole(self, header: Header) -> bool:
        """Are the records ``header`` starts with whole (not torn with it)?"""
        length, crc = header.records
        if not length:
            return True
        raw = os.pread(self._fd, length, self._region(header.generation,
                                                      header.region or self.region))
        return len(raw) == length and zlib.crc32(raw) == crc

    def _region(self, generation: int, region: int | None = None) -> int:
        return RECORDS_AT + (generation % 2) * (self.region if region is None else region)

    def _allocate(self, generation: int, end: int) -> None:
        """Allocate the region of ``generation`` up to ``end`` (an offset in the file)."""
        start, r = self._region(generation), generation % 2
        if end - start > self._allocated[r]:
            upto = min(self.region, end - start + CHUNK - (end - start) % CHUNK)
            os.posix_fallocate(self._fd, start + self._allocated[r], upto - self._allocated[r])
            self._allocated[r] = upto

    def records(self, generation: int) -> Iterator[list[Any]]:
        """The redo of ``generation`` (one this object opened at or wrote: its salt is
        known): its records in order, up to the first that is not whole, without those a
        cancel record (:data:`CANCEL`) follows, nor the cancel records."""
        held: list[Any] | None = None
        for ops in self._frames(generation):
            if ops[:1] == [CANCEL]:
                held = None
                continue
            if held is not None:
                yield held
            held = ops
        if held is not None:
            yield held

    def _frames(self, generation: int) -> Iterator[list[Any]]:
        """Every whole record of ``generation``, in order, cancel records included."""
        seed = zlib.crc32(self._salts.get(generation, b""), zlib.crc32(_GEN.pack(generation)))
        offset = self._region(generation)
        limit = min(offset + self.region, os.fstat(self._fd).st_size)
        while offset + _REC.size <= limit:
            length, crc, gen = _REC.unpack(os.pread(self._fd, _REC.size, offset))
            end = offset + _REC.size + length
            if gen != generation or end > limit:
                return
            payload = os.pread(self._fd, length, offset + _REC.size)
            if len(payload) != length or zlib.crc32(payload, seed) != crc:
                return
            yield msgpack.unpackb(payload, raw=False)
            offset = end

    def write_header(self, header: Header, payloads: Sequence[bytes] = ()) -> bool:
        """Start ``header``'s generation: its region begins with ``payloads`` (the
        records of the transactions since its snapshot), the header (naming their length
        and crc32) goes into its slot, one ``fdatasync`` for both. False (nothing written)
        when they do not fit, in the region or on the disk."""
        gen, salt = header.generation, os.urandom(8)
        frames = b"".join(_frame(gen, salt, p) for p in payloads)
        start = self._region(gen)
        if len(frames) > self.region:
            return False
        raw = replace(header, records=(len(frames), zlib.crc32(frames)), salt=salt,
                      region=self.region).encode()
        if len(raw) > SLOT:
            raise OSError(f"a checkpoint header of {len(raw)} bytes does not fit a slot")
        if frames:
            try:
                self._allocate(gen, start + len(frames))
            except OSError as e:  # nothing written: the caller checkpoints without them
                if e.errno in NO_SPACE:
                    return False
                raise
            pwrite_all(self._fd, frames, start)
        pwrite_all(self._fd, raw, (gen % 2) * SLOT)
        os.fdatasync(self._fd)
        self.generation, self.salt = gen, salt
        self._salts = {gen - 1: self._salts.get(gen - 1, b""), gen: salt}
        self._start, self._offset = start, start + len(frames)
        self._wrote_header = True
        return True

    def trim(self) -> bool:
        """Give back the blocks no recovery reads (see the module docstring): the other
        region, and the current one after its last record (rounded up to a block). Only
        once this object made the current generation's header durable. False when
        nothing was punched (no such header, or the filesystem cannot: then
        :attr:`can_trim` turns False); OSError when a punch fails otherwise (the blocks
        that stay are read as before). A record appended afterwards is allocated again
        (:meth:`reserve`), into blocks never written: its ``fdatasync`` costs more, so
        trim only when writes have paused."""
        if not (self._wrote_header and self.can_trim):
            return False
        current = self.generation % 2
        keep = -(-(self._offset - self._start) // 4096) * 4096
        # What is allocated is noted as less first: allocating again is always safe.
        self._allocated[1 - current] = 0
        self._allocated[current] = min(self._allocated[current], keep)
        other = self._region(self.generation + 1)
        if not (punch(self._fd, other, self.region)
                and punch(self._fd, self._start + keep, self.region - keep)):
            self.can_trim = False
            return False
        return True

    def fits(self, length: int) -> bool:
        """Does a record of ``length`` payload bytes fit in the current region, with room
        for a cancel record after it?"""
        return self._offset + _REC.size + length + CANCEL_FRAME <= self._start + self.region

    def reserve(self, length: int) -> None:
        """Allocate the space of the next record (``length`` payload bytes) and of a
        cancel record after it when they fit in the region, so that :meth:`write` and
        :meth:`cancel` need no new block. Raises OSError (ENOSPC: the disk is full)
        before anything is committed."""
        if self.fits(length):
            self._allocate(self.generation, self._offset + _REC.size + length + CANCEL_FRAME)

    def write(self, payload: bytes) -> bool:
        """Write the record ``payload`` (:func:`encode`) after the last one, its pages
        handed to the disk at once (:func:`start_writeback`), not synced (durable once an
        ``fdatasync`` of the file that began after this returned); False (nothing
        written) when it does not fit in the region with a cancel record after it: the
        caller checkpoints. Raises OSError when the disk refuses."""
        end = self._offset + _REC.size + len(payload)
        if end + CANCEL_FRAME > self._start + self.region:
            return False
        self._allocate(self.generation, end)
        pwrite_all(self._fd, _frame(self.generation, self.salt, payload), self._offset)
        start, self._offset = self._offset, end
        start_writeback(self._fd, start, end - start)
        return True

    def append(self, payload: bytes) -> bool:
        """:meth:`write` the record ``payload`` and make it durable (``fdatasync``);
        False (nothing written) when it does not fit: the caller checkpoints."""
        if not self.write(payload):
            return False
        os.fdatasync(self._fd)
        return True

    def cancel(self) -> None:
        """Write a cancel record after the last record written (whose transaction did not
        commit in LMDB) and make both durable: no recovery redoes that record. Its space
        was reserved with the record's (:meth:`reserve`)."""
        end = self._offset + CANCEL_FRAME
        self._allocate(self.generation, end)
        pwrite_all(self._fd, _frame(self.generation, self.salt, CANCEL_PAYLOAD),
                   self._offset)
        os.fdatasync(self._fd)
        self._offset = end

    @property
    def fd(self) -> int:
        """The file's descriptor (synced by :class:`~.log_sync.LogSync`)."""
        return self._fd

    @property
    def used(self) -> int:
        """Bytes of records written in the current generation."""
        return self._offset - self._start

    @property
    def offset(self) -> int:
        """Where the next record goes in the file."""
        return self._offset

    def close(self) -> None:
        os.close(self._fd)


def encode(ops: list[Any]) -> bytes:
    """The payload of the record of ``ops`` (by the thread's kept packer: ``packb`` makes
    one, with its buffer, each call)."""
    return pack(ops)


#: The payload of a cancel record, and the bytes it takes in the log.
CANCEL_PAYLOAD = msgpack.packb([CANCEL, None, None, None])
CANCEL_FRAME = _REC.size + len(CANCEL_PAYLOAD)


#: Pages of a sub-database's path from its root to a leaf, as :func:`dirtied_pages` counts.
PATH_PAGES = 3
#: LMDB's page size as :func:`dirtied_pages` counts appended bytes.
_PAGE = 4096


def dirtied_pages(ops: list[Any]) -> int:
    """An estimate of the LMDB pages a transaction of the redo ``ops`` dirtied (each a
    fresh page while a checkpoint's snapshot is held): the main and free databases' two;
    for each sub-database it wrote, the pages above its leaves (an appended one's last
    leaf among them); each put or delete, a leaf of its own; appends, the pages their
    bytes fill. 12 for a create with a ``requestId``, 13 for an update; more than there
    are for a large transaction whose keys share leaves."""
    codes = ops[0::4]
    appends = codes.count(APPEND)
    pages = 2 + (PATH_PAGES - 1) * len(set(ops[1::4])) + len(codes) - appends
    if appends:  # a loop, not a generator over zipped slices: once a turn, in half the time
        appended = 0
        for i in range(0, len(ops), 4):
            if ops[i] == APPEND:
                appended += len(ops[i + 3])
        pages += appended // _PAGE
    return pages


def _frame(generation: int, salt: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, _seed(generation, salt))
    return _REC.pack(len(payload), crc, generation) + payload


@functools.lru_cache(maxsize=4)
def _seed(generation: int, salt: bytes) -> int:
    """The crc32 of a generation's records before their payload (its number, its salt)."""
    return zlib.crc32(salt, zlib.crc32(_GEN.pack(generation)))


def apply(txn: lmdb.Transaction, dbs: dict[str, Any], ops: list[Any]) -> None:
    """Redo the puts and deletes of one record in ``txn`` (``dbs``: name → handle)."""
    for i in range(0, len(ops), 4):
        code, name, key, value = ops[i:i + 4]
        db = dbs[name]
        if code == DELETE:
            txn.delete(key, db=db)
        else:
            txn.put(key, value, db=db, append=code == APPEND)


class Recording:
    """A write transaction that notes the puts and deletes that took effect (``ops`` in
    the record's layout; None: note nothing, as for a dry run). ``names`` maps each
    sub-database handle to its name; ``db`` is the transaction's default one."""

    __slots__ = ("txn", "ops", "_env", "_names", "_default")

    def __init__(self, env: lmdb.Environment, txn: lmdb.Transaction,
                 names: dict[Any, str], ops: list[Any] | None, default: str = "") -> None:
        self.txn = txn
        self.ops = ops
        self._env = env
        self._names = names
        self._default = default

    def _name(self, db: Any) -> str:
        return self._default if db is None else self._names[db]

    def get(self, key: bytes, default: Any = None, db: Any = None) -> Any:
        return self.txn.get(key, default, db=db)

    def put(self, key: bytes, value: bytes, *, db: Any = None, overwrite: bool = True,
            append: bool = False) -> bool:
        done: bool = self.txn.put(key, value, db=db, overwrite=overwrite, append=append)
        ops = self.ops
        if done and ops is not None:
            ops += (APPEND if append else PUT,
                    self._default if db is None else self._names[db], key, value)
        return done

    def delete(self, key: bytes, *, db: Any = None) -> bool:
        done: bool = self.txn.delete(key, db=db)
        ops = self.ops
        if done and ops is not None:
            ops += (DELETE, self._default if db is None else self._names[db], key, None)
        return done

    def cursor(self, db: Any = None) -> RecordingCursor:
        return RecordingCursor(self, self.txn.cursor(db=db), self._name(db))

    def stat(self, db: Any) -> dict[str, Any]:
        return self.txn.stat(db)  # type: ignore[no-any-return]

    def child(self) -> Recording:
        """A nested write transaction: its ops join this one's on :meth:`commit`."""
        return Recording(self._env, self._env.begin(write=True, parent=self.txn),
                         self._names, [] if self.ops is not None else None, self._default)

    def commit_into(self, parent: Recording) -> None:
        self.txn.commit()
        if parent.ops is not None and self.ops:
            parent.ops += self.ops

    def commit(self) -> None:
        self.txn.commit()

    def abort(self) -> None:
        self.txn.abort()


#: A write transaction as the store's code sees it: LMDB's own, or one that records.
Txn = lmdb.Transaction | Recording


class RecordingCursor:
    """A cursor of a :class:`Recording` whose ``delete`` is noted."""

    __slots__ = ("_owner", "_cursor", "_db")

    def __init__(self, owner: Recording, cursor: lmdb.Cursor, db: str) -> None:
        self._owner, self._cursor, self._db = owner, cursor, db

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self._cursor)

    def _unrecorded(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a write through this cursor would not reach the "
                                  "write-ahead log: write through the transaction")

    put = replace = pop = putmulti = _unrecorded

    def delete(self) -> bool:
        key = self._cursor.key()
        done: bool = self._cursor.delete()
        ops = self._owner.ops
        if done and ops is not None:
            ops += (DELETE, self._db, key, None)
        return done
