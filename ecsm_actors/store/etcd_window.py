"""The etcd store's request window: the records of writes that carried a ``requestId``.

Runs in the registry process, for :class:`~ecsm_actors.store.etcd_store.EtcdStore`, which
puts a write's record at ``<prefix>requests/<id>`` in the write's own txn (see
:mod:`.etcd_writes` for the records' pending versions). Each record is attached to an etcd
lease that ends it once past ``registry.request_window_age``: one lease per
:data:`LEASE_BUCKETS`-th of that age, so a record lives at most that much longer, and etcd
removes it by itself; a record past its age is never replayed even before. The count bound
of the LMDB window (``registry.request_window``) is not enforced: etcd's leases bound this
window by age only. A replayed success answers the object as it was at its version (an
etcd read at that revision), else the current object when it still has that version, else
its identity (as the LMDB store after compaction).

A BATCH too large for one txn is applied in several: its requestId is first *claimed*
(:meth:`RequestWindow.claim`: a record of its own, on a lease of :data:`CLAIM_TTL`), so the
same BATCH sent through another registry meanwhile is answered ``Unavailable`` (the client
retries, and gets the outcome replayed) instead of being applied a second time; the claim
is replaced by the record once the last part is in (:meth:`RequestWindow.settle`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ecsm_actors.errors import Expired, RegistryError, Unavailable
from ecsm_actors.etcd.client import Compare, EtcdClient, KeyValue, RangeResult, TxnOp
from ecsm_actors.protocol import Op
from ecsm_actors.store import etcd_layout, replay
from ecsm_actors.store.etcd_writes import resolve_record
from ecsm_actors.store.records import Outcome, Staged, StagedBatch

#: The request window's leases: one per this fraction of registry.request_window_age.
LEASE_BUCKETS = 16
#: Seconds a requestId stays claimed by a registry applying a BATCH in several txns; past
#: it (the registry died mid-way), a retry applies the BATCH again.
CLAIM_TTL = 30
#: The record of a claimed requestId.
CLAIMED: dict[str, Any] = {"op": str(Op.BATCH), "claimed": True}


class RequestWindow:
    """Looks records up, replays them, and gives the lease new ones are put with."""

    def __init__(self, client: EtcdClient, prefix: bytes, *, age: float,
                 monotonic: Callable[[], float]) -> None:
        self.client = client
        self.prefix = prefix
        self.age = float(age)
        self._monotonic = monotonic
        self._lease, self._lease_until = 0, 0.0

    def key(self, request_id: str) -> bytes:
        return etcd_layout.request_key(self.prefix, request_id)

    def lease(self) -> int:
        """The lease a record put now is attached to (granted once per bucket)."""
        now = self._monotonic()
        if not self._lease or now >= self._lease_until:
            bucket = max(1.0, self.age / LEASE_BUCKETS)
            self._lease = self.client.lease_grant(int(self.age + bucket) + 1)
            self._lease_until = now + bucket
        return self._lease

    def forget_lease(self) -> None:
        """The lease ended early (etcd restored?): the next record takes a new one."""
        self._lease = 0

    def recorded(self, kv: KeyValue | None, now: float) -> dict[str, Any] | None:
        """The record a request window key holds, unless absent or past its age."""
        if kv is None:
            return None
        stamp, record = etcd_layout.unpack_request_record(kv.value)
        if stamp < now - self.age:
            return None
        return resolve_record(record, kv.mod_revision)

    def replay(self, request_id: str, op: Op, s: Staged | StagedBatch | RegistryError,
               recorded: dict[str, Any]) -> Outcome | RegistryError:
        """The recorded answer, replayed; BadRequest for an id reused for another write."""
        refused = replay.reused_id(request_id, op, s, recorded)
        if refused is not None:
            return refused
        if recorded.get("claimed"):
            return Unavailable(f"requestId {request_id} is being applied through another "
                               "registry; retry to get its outcome")
        return replay.replayed(recorded, replay.rebuild_with(recorded, self._object_at))

    def claim(self, request_id: str, op: Op, s: StagedBatch,
              now: float) -> int | Outcome | RegistryError:
        """Claim ``request_id`` before applying its BATCH in several txns: the claim's
        mod_revision (for :meth:`settle`); or the answer to give instead (the recorded
        outcome replayed, ``Unavailable`` while another registry holds the claim)."""
        key = self.key(request_id)
        lease = self.client.lease_grant(CLAIM_TTL)
        expected = 0
        for _ in range(3):
            txn = self.client.txn([Compare.mod_revision(key, "=", expected)], [TxnOp.put(
                key, etcd_layout.pack_request_record(CLAIMED, now), lease=lease)],
                [TxnOp.range(key)])
            if txn.succeeded:
                return txn.revision
            found = txn.responses[0] if txn.responses else None
            kv = found.kvs[0] if isinstance(found, RangeResult) and found.kvs else None
            recorded = self.recorded(kv, now)
            if recorded is not None:
                self.client.lease_revoke(lease)
                return self.replay(request_id, op, s, recorded)
            expected = kv.mod_revision if kv is not None else 0  # a record past its age
        self.client.lease_revoke(lease)
        return Unavailable(f"requestId {request_id} is being recorded by another registry; "
                           "retry to get its outcome")

    def settle(self, request_id: str, claim: int, record: dict[str, Any] | None,
               now: float) -> None:
        """Replace the claim (still this registry's: ``claim`` its mod_revision) by the
        BATCH's ``record``; None: nothing to keep, the claim removed (a retry applies)."""
        key = self.key(request_id)
        ops = ([TxnOp.put(key, etcd_layout.pack_request_record(record, now),
                          lease=self.lease())] if record is not None else [TxnOp.delete(key)])
        self.client.txn([Compare.mod_revision(key, "=", claim)], ops)

    def _object_at(self, store_key: str, rv: int) -> bytes:
        """The object of ``store_key`` as it was at ``rv`` (see :func:`replay.object_at`)."""
        key = etcd_layout.object_key(self.prefix, store_key.encode())
        try:
            result = self.client.range(key, revision=rv)
            if result.kvs and result.kvs[0].mod_revision == rv:
                return etcd_layout.object_frame(result.kvs[0].value, rv)
        except Expired:
            current = self.client.range(key)
            if current.kvs and current.kvs[0].mod_revision == rv:
                return etcd_layout.object_frame(current.kvs[0].value, rv)
        return replay.identity_frame(store_key, rv)
