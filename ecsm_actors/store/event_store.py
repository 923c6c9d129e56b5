"""Event records (``ecsm-cli get events``) in an LMDB environment of their own.

Runs only in the registry process. Events are kept apart from the objects so that they can
never fill the object store nor slow its writes:

* their own environment ``<data dir>/events`` with its own map (a full event map evicts
  the oldest events; the object store never sees it), committed without ``fsync``
  (``sync=False``: a crash of the machine may lose the last events, never corrupts them;
  a crash of the registry loses nothing) and outside the objects' resourceVersion and
  event log (an event flood neither bumps the counter nor compacts the log informers
  replay from);
* at most ``registry.event_limit`` records, each kept ``registry.event_ttl`` seconds after
  it was last seen; beyond the count the least recently seen go first, and
  :meth:`EventStore.expire` removes the expired ones a bounded number at a time.

Two sub-databases: ``records`` (key ``<namespace>/<kind>/<name>/<digest>``, see
:func:`ecsm_actors.api.event.record_key`, value ``{record, first, last}``) and ``seen``
(key the last-seen time in microseconds, 8 bytes big-endian, then the record key: oldest
first, for eviction, expiry and ``--since``).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb
import msgpack

from ecsm_actors.api import event as ev
from ecsm_actors.errors import Internal, Invalid, StoreFull

logger = logging.getLogger(__name__)

#: Bytes of map per record allowed (a record is at most about 2 KiB), plus a floor.
MAP_BYTES_PER_RECORD = 8 << 10
MAP_FLOOR = 8 << 20
#: Fraction of the records evicted at once when the map is nearly full.
EVICT_FRACTION = 0.1
#: Map usage (live pages) beyond which the least recently seen records are evicted, in
#: the same transaction: deletes need free pages too, so the map is never let fill up.
FULL_RATIO = 0.75


@dataclass(frozen=True, kw_only=True)
class Recorded:
    """A record written: ``added`` (new) or modified, and the record."""

    added: bool
    record: dict[str, Any]


#: Latest time a key can hold, seconds (8 bytes of microseconds).
MAX_TIME = float((1 << 63) // 1_000_000)


def _seen_key(last: float, key: bytes) -> bytes:
    return max(0, int(min(last, MAX_TIME) * 1_000_000)).to_bytes(8, "big") + key


def _seen_time(seen_key: bytes) -> float:
    return int.from_bytes(seen_key[:8], "big") / 1_000_000


def kept_record(held: dict[str, Any] | None, occ: dict[str, Any], key: bytes,
                first: float, last: float) -> dict[str, Any]:
    """The stored value ``{record, first, last}`` of a record after one more occurrence
    (``held``: the value before it, None for a new record)."""
    if held is None:
        return {"record": ev.merge(None, occ, key, first, last), "first": first,
                "last": last}
    return {"record": ev.merge(held["record"], occ, key, first, last, held["first"],
                               held["last"]),
            "first": min(first, held["first"]), "last": max(last, held["last"])}


def list_floor(now: float, ttl: float, namespace: str | None, kind: str | None,
               since: float | None) -> float:
    """The earliest last-seen time a LIST of events returns (within the TTL, at or
    after ``since``); raises Invalid for a ``since`` that is not finite or a ``kind``
    without its namespace."""
    floor = now - ttl
    if since is not None:
        if not math.isfinite(since):
            raise Invalid("since must be a finite number of seconds")
        floor = max(floor, min(float(since), MAX_TIME))
    if kind is not None and namespace is None:
        raise Invalid("events of an object need its namespace")
    return floor


class EventStore:
    """The event records. Not thread-safe: the registry's loop thread owns it."""

    def __init__(self, path: str | os.PathLike[str], *, limit: int = 10_000,
                 ttl: float = 86_400.0, map_size: int | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.limit = max(1, int(limit))
        self.ttl = float(ttl)
        self._clock = clock
        self.map_size = int(map_size or max(MAP_FLOOR, self.limit * MAP_BYTES_PER_RECORD))
        self.stats = {"recorded": 0, "evicted": 0, "expired": 0, "refused": 0}
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._env = lmdb.open(str(self.path), map_size=self.map_size, max_dbs=2,
                                  subdir=True, sync=False, metasync=False, readahead=False,
                                  meminit=False)
            self._records = self._env.open_db(b"records")
            self._seen = self._env.open_db(b"seen")
            self._page_size = int(self._env.stat()["psize"])
            with self._env.begin(db=self._records) as txn:
                self._count = int(txn.stat(self._records)["entries"])
        except lmdb.Error as e:
            raise Internal(f"cannot open the event store at {self.path}: {e}") from e

    @classmethod
    def from_config(cls, cfg: Any) -> EventStore:
        r = cfg.registry
        return cls(Path(cfg.data_dir) / "events", limit=r.event_limit, ttl=r.event_ttl)

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        self._env.close()

    # -- writes --------------------------------------------------------------------------

    def record(self, occurrences: Iterable[Any]) -> list[Recorded]:
        """Aggregate occurrences (raw wire maps) into their records, in one transaction.
        Raises Invalid (nothing written) when one is malformed, StoreFull when the map is
        full even after evicting the oldest records."""
        checked = [ev.occurrence(doc) for doc in occurrences]
        for attempt in (1, 2):
            try:
                return self._record(checked)
            except lmdb.MapFullError:
                if attempt == 2:
                    self.stats["refused"] += len(checked)
                    raise StoreFull("the event store is full") from None
                self._evict(max(1, int(self._count * EVICT_FRACTION)))
            except lmdb.Error as e:
                raise Internal(f"event store: {e}") from e
        raise AssertionError("unreachable")

    def _record(self, checked: list[tuple[dict[str, Any], float, float]]) -> list[Recorded]:
        out: list[Recorded] = []
        count = self._count
        horizon = self._clock() - self.ttl
        with self._env.begin(write=True) as txn:
            for occ, first, last in checked:
                if last < horizon:
                    continue  # expired already: never stored
                key = ev.record_key(occ)
                raw = txn.get(key, db=self._records)
                held = None if raw is None else msgpack.unpackb(raw, raw=False)
                if held is None:
                    count += 1
                else:
                    txn.delete(_seen_key(held["last"], key), db=self._seen)
                kept = kept_record(held, occ, key, first, last)
                txn.put(key, msgpack.packb(kept, use_bin_type=True), db=self._records)
                txn.put(_seen_key(kept["last"], key), b"", db=self._seen)
                out.append(Recorded(added=raw is None, record=kept["record"]))
            evicted = self._drop_oldest(txn, count - self.limit) if count > self.limit else 0
            if self._usage(txn) > FULL_RATIO:
                evicted += self._drop_oldest(txn, max(1, int(count * EVICT_FRACTION)))
        self._count = count - evicted
        self.stats["recorded"] += len(out)
        self.stats["evicted"] += evicted
        return out

    def _drop_oldest(self, txn: lmdb.Transaction, n: int, *,
                     before: float | None = None) -> int:
        """Delete the ``n`` least recently seen records (only those seen before
        ``before`` when given); return how many went."""
        cursor = txn.cursor(db=self._seen)
        dropped = 0
        if not cursor.first():
            return 0
        while dropped < n:
            seen_key = cursor.key()  # b"" once the cursor ran off the end
            if not seen_key or (before is not None and _seen_time(seen_key) >= before):
                break
            txn.delete(seen_key[8:], db=self._records)
            cursor.delete()  # moves on to the next entry
            dropped += 1
        return dropped

    def _usage(self, txn: lmdb.Transaction) -> float:
        pages = 0
        for db in (self._records, self._seen):
            st = txn.stat(db)
            pages += st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
        return pages * self._page_size / self.map_size

    def _evict(self, n: int) -> None:
        try:
            with self._env.begin(write=True) as txn:
                evicted = self._drop_oldest(txn, n)
        except lmdb.MapFullError:
            return  # not even room to delete: the write is refused (StoreFull)
        self._count -= evicted
        self.stats["evicted"] += evicted
        logger.warning("event store full: evicted the %d least recently seen events", evicted)

    def expire(self, max_records: int = 1000) -> int:
        """Remove at most ``max_records`` records last seen longer than the TTL ago;
        return how many went (call again while it returns ``max_records``)."""
        before = self._clock() - self.ttl
        try:
            with self._env.begin(write=True) as txn:
                expired = self._drop_oldest(txn, max_records, before=before)
        except lmdb.Error as e:
            raise Internal(f"event store: {e}") from e
        self._count -= expired
        self.stats["expired"] += expired
        return expired

    # -- reads ---------------------------------------------------------------------------

    def list(self, namespace: str | None = None, kind: str | None = None,
             name: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        """The records of a namespace (all: None), optionally of one object (``kind`` and
        ``name``), last seen at or after ``since`` and within the TTL, least recently seen
        first."""
        floor = list_floor(self._clock(), self.ttl, namespace, kind, since)
        try:
            with self._env.begin() as txn:
                if namespace is None:
                    return [r for _, r in self._since(txn, floor)]
                prefix = ev.object_prefix(namespace, kind, name)
                held = [h for h in self._prefixed(txn, prefix) if h["last"] >= floor]
        except lmdb.Error as e:
            raise Internal(f"event store: {e}") from e
        held.sort(key=lambda h: h["last"])
        return [h["record"] for h in held]

    def _since(self, txn: lmdb.Transaction,
               floor: float) -> Iterator[tuple[float, dict[str, Any]]]:
        cursor = txn.cursor(db=self._seen)
        if not cursor.set_range(_seen_key(floor, b"")):
            return
        for seen_key, _ in cursor:
            raw = txn.get(seen_key[8:], db=self._records)
            if raw is not None:
                yield _seen_time(seen_key), msgpack.unpackb(raw, raw=False)["record"]

    def _prefixed(self, txn: lmdb.Transaction, prefix: bytes) -> Iterator[dict[str, Any]]:
        cursor = txn.cursor(db=self._records)
        if not cursor.set_range(prefix):
            return
        for key, value in cursor:
            if not key.startswith(prefix):
                return
            yield msgpack.unpackb(value, raw=False)

