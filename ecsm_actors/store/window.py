"""The request window: what the store recorded of each write that carried a ``requestId``.

Runs in the registry process, inside the store's write transaction (never a transaction
of its own): a write's outcome is recorded in the SAME transaction as the write, so after
a crash either both are on disk or neither is, and a retried request is answered with the
recorded outcome instead of being applied again (see :mod:`ecsm_actors.protocol`).

One sub-database of the store's environment, ``requests``, holding two kinds of records:

* requestId (ASCII) → ``seq`` (8 bytes big-endian) + the wall time it was recorded
  (8-byte double) + the msgpack record: ``{op, key, rv, action?, gone?}`` for a success
  (the object's store key and the resourceVersion it had after the write; ``gone`` when it
  left the store), ``{op, error: {code, message, causes}}`` for a refusal, ``{op:
  "BATCH", rv, results: [record...]}`` for a BATCH. A few dozen bytes: the objects
  themselves are found again in the event log (see ``Store._replay``).
* :data:`ORDER` (``0xff``, a byte no UTF-8 text holds, so after every requestId) +
  ``seq`` → the wall time + the requestId: the order in which records leave the window,
  appended at the end of the sub-database. Seqs are consecutive (each record the next,
  the oldest pruned first), so the window holds ``last - first + 1`` records.

One sub-database, not one for each kind of record: a write that records its outcome
dirties one root page fewer (see :func:`migrate_order` for stores written before).

Bounds: at most ``size`` records (registry.request_window) and none older than ``age``
seconds (registry.request_window_age). A record past its age is never replayed, even
before it is pruned. Pruning is incremental: a write transaction prunes once the window
holds 1% more than ``size`` (at most :data:`PRUNE_BATCH` more: so it prunes in every
32nd transaction or so, not in each, which keeps the cost per write low) or its oldest
record is past its age, and removes at most :data:`PRUNE_STEP` more of the oldest records
than it added, so the window converges to its bounds without ever holding a commit for
long. The store also prunes a window that holds more than ``size`` in a transaction of
its own at its heartbeat (:meth:`RequestWindow.over`, ``idle``: at most
:data:`IDLE_PRUNE`), so that at up to about 32 writes a second no write prunes (one
record deleted per write instead had cost three times the CPU: each delete copies its
leaf and the pages above it alone). The count and the oldest record's time are kept in
memory (read at open).
"""

from __future__ import annotations

import struct
from typing import Any

import lmdb
import msgpack

from ecsm_actors.store.wal import Txn

#: Records a write transaction prunes beyond those it adds.
PRUNE_STEP = 64
#: Most records the window holds beyond its size before a transaction prunes.
PRUNE_BATCH = 32
#: Most records pruned in the transaction of an idle turn (about 8 µs each).
IDLE_PRUNE = 256

_TIME = struct.Struct(">d")

#: First byte of the key of an order record (no requestId holds it).
ORDER = b"\xff"


def _be(n: int) -> bytes:
    return n.to_bytes(8, "big")


class RequestWindow:
    """The bounded map requestId → recorded outcome. Every method takes the caller's
    write transaction; :meth:`begin` and :meth:`committed` bracket one."""

    def __init__(self, env: lmdb.Environment, *, size: int, age: float) -> None:
        self.size = int(size)
        self.age = float(age)
        self.requests = env.open_db(b"requests")
        self._slack = max(1, min(PRUNE_BATCH, self.size // 100))
        self._pack = msgpack.Packer(use_bin_type=True).pack  # as protocol.pack, kept
        self.load(env)

    def load(self, env: lmdb.Environment) -> None:
        """Read the count, the last seq and the oldest record's time as committed."""
        with env.begin(db=self.requests) as txn:
            first, last, oldest = self._bounds(txn)
        self._seq, self._oldest = last, oldest
        self._count = last - first + 1 if first else 0
        self.begin()

    def _bounds(self, txn: Txn) -> tuple[int, int, float | None]:
        """(first seq, last seq, the oldest record's time) of the order records; (0,
        0, None) when there is none."""
        cursor = txn.cursor(db=self.requests)
        if not cursor.set_range(ORDER):
            return 0, 0, None
        first, oldest = int.from_bytes(cursor.key()[1:], "big"), _TIME.unpack_from(
            cursor.value())[0]
        cursor.last()
        return first, int.from_bytes(cursor.key()[1:], "big"), oldest

    def begin(self) -> None:
        """A write transaction starts: forget what an aborted one had counted."""
        self._pending, self._added = self._seq, 0
        self._p_count, self._p_oldest = self._count, self._oldest

    def committed(self) -> None:
        """The transaction since :meth:`begin` is durable."""
        self._seq, self._count, self._oldest = self._pending, self._p_count, self._p_oldest

    def lookup(self, txn: Txn, request_id: str,
               now: float) -> dict[str, Any] | None:
        """The record of ``request_id`` if it is in the window and younger than ``age``."""
        raw = txn.get(request_id.encode(), db=self.requests)
        if raw is None or _TIME.unpack_from(raw, 8)[0] < now - self.age:
            return None
        record: dict[str, Any] = msgpack.unpackb(bytes(raw[16:]), raw=False)
        return record

    def record(self, txn: Txn, request_id: str, record: dict[str, Any],
               now: float) -> None:
        """Keep ``record`` for ``request_id`` (replacing one past its age)."""
        self._pending += 1
        self._added += 1
        self._p_count += 1
        if self._p_oldest is None:
            self._p_oldest = now
        seq, stamp = _be(self._pending), _TIME.pack(now)
        rid = request_id.encode()
        txn.put(rid, seq + stamp + self._pack(record), db=self.requests)
        txn.put(ORDER + seq, stamp + rid, db=self.requests, append=True)

    def over(self) -> bool:
        """Does the window hold more than ``size`` records (as last committed)?"""
        return self._count > self.size

    def prune(self, txn: Txn, now: float, *, idle: bool = False) -> int:
        """Remove the oldest records beyond ``size`` or older than ``age``: at most
        :data:`PRUNE_STEP` more than this transaction added (``idle``: a transaction of
        its own, any record beyond ``size``, at most :data:`IDLE_PRUNE`). Returns how
        many."""
        count, horizon = self._p_count, now - self.age
        if count - self.size < (1 if idle else self._slack) and (
                self._p_oldest is None or self._p_oldest >= horizon):
            return 0
        budget = IDLE_PRUNE if idle else self._added + PRUNE_STEP
        requests = self.requests
        cursor = txn.cursor(db=requests)
        removed = 0
        oldest = None
        while cursor.set_range(ORDER):
            key, value = cursor.item()
            oldest = _TIME.unpack_from(value)[0]
            if removed >= budget or (count - removed <= self.size and oldest >= horizon):
                break
            oldest = None
            key, rid = bytes(key), bytes(value[8:])
            raw = txn.get(rid, db=requests)
            # A record replaced after its age has a newer seq: it stays.
            if raw is not None and bytes(raw[:8]) == key[1:]:
                txn.delete(rid, db=requests)
            txn.delete(key, db=requests)
            removed += 1
        self._p_count, self._p_oldest = count - removed, oldest
        return removed

    def count(self, txn: Txn) -> int:
        """The records in the window as ``txn`` sees it."""
        first, last, _ = self._bounds(txn)
        return last - first + 1 if first else 0


def migrate_order(txn: lmdb.Transaction, requests: Any, order: Any) -> int:
    """Move the order records of a store written before the window was one sub-database
    (``request_order``: key ``seq``, value the time + the requestId) into ``requests``
    (:data:`ORDER` + ``seq``), and drop ``request_order``. In the caller's transaction,
    which is not logged: a checkpoint must follow it (and, when the snapshot held is not
    the log's checkpoint, precede it). Returns the records moved."""
    moved = 0
    cursor = txn.cursor(db=order)
    for seq, value in cursor:
        txn.put(ORDER + seq, value, db=requests, append=True)
        moved += 1
    txn.drop(order, delete=True)
    return moved
