"""Event records (``ecsm-cli get events``) in etcd, for registries on the etcd store: every
host's registry sees every record.

Runs in the registry process; the same interface as the LMDB
:class:`~ecsm_actors.store.event_store.EventStore`, the same aggregation rules
(:mod:`ecsm_actors.api.event`). Records live at ``<prefix>events/<namespace>/<kind>/<name>/
<digest>`` (value ``{record, first, last}``, msgpack), outside ``objects/``: they bump no
object's version and the registry's watch publishes none of them. Each is put with an etcd
lease that ends ``registry.event_ttl`` (plus at most a 16th of it) after it was last
seen — etcd removes expired records itself — and :meth:`EtcdEventRecords.expire`, called
at every heartbeat, evicts the least recently seen beyond ``registry.event_limit``. A
record seen by two registries at once is aggregated once each: the txn compares the
record's ``mod_revision`` and is read again when it lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import msgpack

from ecsm_actors.api import event as ev
from ecsm_actors.errors import StoreFull, Unavailable
from ecsm_actors.etcd.client import Compare, EtcdClient, KeyValue, RangeResult, TxnOp, prefix_end
from ecsm_actors.store import etcd_layout
from ecsm_actors.store.event_store import Recorded, kept_record, list_floor

EVENTS = b"events/"
#: Times a RECORD_EVENTS txn is read and merged again after losing to another registry.
MAX_ATTEMPTS = 20
#: Leases per event_ttl (a record outlives its TTL by at most one such part).
LEASE_BUCKETS = 16
#: Records deleted per txn when evicting (etcd's txn limit is 128 operations).
EVICT_PER_TXN = 100


class EtcdEventRecords:
    """The event records in etcd. Not thread-safe: the registry's loop thread owns it."""

    def __init__(self, client: EtcdClient, prefix: str, *, limit: int = 10_000,
                 ttl: float = 86_400.0, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.prefix = etcd_layout.prefix_bytes(prefix) + EVENTS
        self.limit = max(1, int(limit))
        self.ttl = float(ttl)
        self._clock, self._monotonic = clock, monotonic
        self._lease, self._lease_until = 0, 0.0
        self.stats = {"recorded": 0, "evicted": 0, "expired": 0, "refused": 0}
        self._count = self.client.range(self.prefix, prefix_end(self.prefix),
                                        count_only=True).count

    @classmethod
    def from_config(cls, cfg: Any) -> EtcdEventRecords:
        r = cfg.registry
        return cls(EtcdClient.from_config(cfg), cfg.store.etcd_prefix, limit=r.event_limit,
                   ttl=r.event_ttl)

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        self.client.close()

    def _lease_id(self) -> int:
        now = self._monotonic()
        if not self._lease or now >= self._lease_until:
            bucket = max(1.0, self.ttl / LEASE_BUCKETS)
            self._lease = self.client.lease_grant(int(self.ttl + bucket) + 1)
            self._lease_until = now + bucket
        return self._lease

    # -- writes --------------------------------------------------------------------------

    def record(self, occurrences: Iterable[Any]) -> list[Recorded]:
        """Aggregate occurrences (raw wire maps) into their records, in one txn. Raises
        Invalid (nothing written) when one is malformed, StoreFull when etcd is full."""
        checked = [ev.occurrence(doc) for doc in occurrences]
        horizon = self._clock() - self.ttl
        live = [(occ, first, last) for occ, first, last in checked if last >= horizon]
        if not live:
            return []
        keys = sorted({self.prefix + ev.record_key(occ) for occ, _, _ in live})
        for _ in range(MAX_ATTEMPTS):
            read = self.client.txn([], [TxnOp.range(k) for k in keys])
            held: dict[bytes, KeyValue | None] = {
                k: (r.kvs[0] if isinstance(r, RangeResult) and r.kvs else None)
                for k, r in zip(keys, read.responses, strict=True)}
            staged: dict[bytes, dict[str, Any]] = {}
            out: list[Recorded] = []
            for occ, first, last in live:
                rkey = ev.record_key(occ)
                key = self.prefix + rkey
                kv = held[key]
                current = staged.get(key) or (msgpack.unpackb(kv.value, raw=False)
                                              if kv is not None else None)
                staged[key] = kept = kept_record(current, occ, rkey, first, last)
                out.append(Recorded(added=current is None, record=kept["record"]))
            try:
                lease = self._lease_id()
                txn = self.client.txn(
                    [Compare.mod_revision(k, "=", kv.mod_revision if kv else 0)
                     for k, kv in held.items()],
                    [TxnOp.put(k, msgpack.packb(v, use_bin_type=True), lease=lease)
                     for k, v in staged.items()])
            except StoreFull:
                self.stats["refused"] += len(checked)
                raise
            if txn.succeeded:
                self._count += sum(1 for k in staged if held[k] is None)
                self.stats["recorded"] += len(out)
                return out
        raise Unavailable("event records: the write lost to other registries "
                          f"{MAX_ATTEMPTS} times in a row; retry")

    def expire(self, max_records: int = 1000) -> int:
        """Evict at most ``max_records`` of the least recently seen records beyond the
        limit (etcd's leases expire records past their TTL by themselves); return how
        many records expired or were evicted since the last call, as counted."""
        head = self.client.range(self.prefix, prefix_end(self.prefix), count_only=True)
        expired = max(0, self._count - head.count)
        self._count = head.count
        self.stats["expired"] += expired
        excess = min(max_records, self._count - self.limit)
        if excess <= 0:
            return expired
        every = self.client.range(self.prefix, prefix_end(self.prefix))
        oldest = sorted(every.kvs, key=lambda kv: msgpack.unpackb(kv.value, raw=False)["last"])
        for i in range(0, excess, EVICT_PER_TXN):
            part = oldest[i:min(excess, i + EVICT_PER_TXN)]
            self.client.txn([], [TxnOp.delete(kv.key) for kv in part])
        self._count -= excess
        self.stats["evicted"] += excess
        return expired + excess

    # -- reads ---------------------------------------------------------------------------

    def list(self, namespace: str | None = None, kind: str | None = None,
             name: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        """As :meth:`EventStore.list`: least recently seen first, within the TTL."""
        floor = list_floor(self._clock(), self.ttl, namespace, kind, since)
        start = self.prefix + (ev.object_prefix(namespace, kind, name) if namespace else b"")
        held = [msgpack.unpackb(kv.value, raw=False)
                for kv in self.client.range(start, prefix_end(start)).kvs]
        held = [h for h in held if h["last"] >= floor]
        held.sort(key=lambda h: h["last"])
        return [h["record"] for h in held]
