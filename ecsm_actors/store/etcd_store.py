"""The registry's store on an etcd v3 cluster: the same interface and semantics as the
LMDB :class:`~ecsm_actors.store.lmdb_store.Store`, for several computers.

Runs in the registry process; several registries (one per host) may serve the same
prefix at once: the registry holds no state of its own beyond a cache of the epoch. Keys
and values: :mod:`.etcd_layout`. The rules of each write are those of :mod:`.semantics`
and :mod:`.replay`, applied by :mod:`.etcd_writes`.

Writes. :meth:`EtcdStore.execute` takes the writes of one turn of the registry's loop and
groups them (no object or requestId twice in a group, at most :data:`MAX_TXN_KEYS` keys):
a group reads all its keys in one txn, is staged, and commits in one txn that compares
every key read (``mod_revision == read``, 0 for an absent key: a create) and the epoch
key. A txn that loses to another registry's write is read and staged again (never a
Conflict the client did not cause), up to :data:`MAX_ATTEMPTS` times. An etcd txn holds
at most 128 operations: an atomic BATCH of more than :data:`MAX_TXN_KEYS` objects is
refused (BadRequest); a larger non-atomic one is committed in parts, its requestId
recorded after the last part.

Exactly once. A write carrying ``requestId`` has its outcome put at
``<prefix>requests/<id>`` in its own txn, attached to an etcd lease that ends it once past
``registry.request_window_age`` (one lease per :data:`LEASE_BUCKETS`-th of that age, so a
record lives at most that much longer; a record past its age is never replayed). The
count bound of the LMDB window (``registry.request_window``) is not enforced here: etcd's
leases bound the window by age only. A replayed success answers the object as it was at
its version (an etcd read at that revision), else the current object when it still has
that version, else its identity (as LMDB after compaction).

Full. etcd's NOSPACE alarm (``StoreFull``) refuses every txn that puts a key: the writes of
a group are then tried one by one, and a DELETE is tried once more without its request
window record (answered, not recorded) so that a full store still takes deletes.

Reads are linearizable; while quorum is lost they fall back to the answering member's
local state (serializable) and :attr:`EtcdStore.stale` says so (the registry marks the
reply ``stale: true``). Writes then answer ``Unavailable`` naming the store.

Epoch. ``<prefix>epoch`` is made at start when absent; a registry that finds it changed
(another registry made a new one), gone (the prefix wiped) or made on another etcd cluster
(the cluster replaced) adopts or makes a new one, checked at every write and at least
every :data:`EPOCH_CHECK` seconds by reads and heartbeats. The resourceVersion of the
store is etcd's revision (global to the cluster: not contiguous per prefix).

Not thread-safe: the registry's loop thread owns it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from ecsm_actors.errors import (
    BadRequest,
    Expired,
    Internal,
    NotFound,
    RegistryError,
    StoreFull,
    Unavailable,
)
from ecsm_actors.etcd.client import Compare, EtcdClient, KeyValue, RangeResult, TxnOp, prefix_end
from ecsm_actors.protocol import Event, Op
from ecsm_actors.store import etcd_layout, paging, replay, semantics
from ecsm_actors.store.etcd_writes import (
    AppliedBatch,
    Result,
    View,
    finish,
    keys_of,
    record_of,
    resolve_record,
)
from ecsm_actors.store.records import Outcome, RawList, Staged, StagedBatch, Write, stage

logger = logging.getLogger(__name__)

#: Keys one txn reads and writes at most (etcd's --max-txn-ops is 128; the epoch is one).
MAX_TXN_KEYS = 120
#: Times a group is read and staged again after losing its txn to another writer.
MAX_ATTEMPTS = 50
#: Seconds between two checks of the epoch key by reads (writes check it every time).
EPOCH_CHECK = 1.0
#: The request window's leases: one per this fraction of registry.request_window_age.
LEASE_BUCKETS = 16
#: etcd's default backend quota (--quota-backend-bytes), for :meth:`EtcdStore.usage`.
DEFAULT_QUOTA = 2 << 30
#: Seconds between two checks of a member's leader while quorum is lost (see _degraded).
PROBE_EVERY = 0.5

Unit = tuple[str | None, Op, Staged | StagedBatch | RegistryError]


class EtcdStore:
    """The etcd store (see the module docstring)."""

    def __init__(self, client: EtcdClient, *, prefix: str = "/ecsm-actors/",
                 request_window: int = 100_000, request_window_age: float = 172_800.0,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.prefix = etcd_layout.prefix_bytes(prefix)
        self.request_window = request_window
        self.request_window_age = float(request_window_age)
        self._clock = clock
        self._monotonic = monotonic
        self._epoch_key = etcd_layout.epoch_key(self.prefix)
        self.epoch = ""
        self._epoch_mod = 0
        self._cluster = ""
        self._rv = 0
        self._checked = 0.0
        self._usage = 0.0
        self._lease, self._lease_until = 0, 0.0
        #: The last read was served from a member's local state (quorum lost).
        self.stale = False
        #: Quorum was lost at the last try: reads go serializable and writes are refused
        #: at once (no wait of a request timeout each) until a member has a leader again.
        self._degraded = False
        self._probed = 0.0
        self.stats = {"txnRetries": 0, "staleReads": 0}
        #: Compaction floor (etcd's is not tracked here; informers get Expired from etcd).
        self.compacted = 0
        self._load_epoch()
        logger.info("etcd store %s%s opened: epoch=%s revision=%d",
                    client.endpoint, self.prefix.decode(errors="replace"), self.epoch, self._rv)

    @classmethod
    def from_config(cls, cfg: Any) -> EtcdStore:
        r = cfg.registry
        return cls(EtcdClient.from_config(cfg), prefix=cfg.store.etcd_prefix,
                   request_window=r.request_window, request_window_age=r.request_window_age)

    @property
    def resource_version(self) -> int:
        """etcd's revision, as last seen (every read and write, every heartbeat)."""
        return self._rv

    def release_pages(self) -> None:
        """Nothing to release: the objects live in etcd."""

    def close(self) -> None:
        self.client.close()

    def take_stale(self) -> bool:
        """Whether the reads since the last call were served stale (and forget it)."""
        stale, self.stale = self.stale, False
        return stale

    # -- epoch ---------------------------------------------------------------------------

    def _load_epoch(self) -> None:
        result, stale = self._range_raw(self._epoch_key)
        self._cluster = result.cluster_id
        kv = result.kvs[0] if result.kvs else None
        if kv is None and stale:
            raise Unavailable(f"etcd store unavailable ({self.client.endpoint}): quorum lost "
                              "and no epoch yet under the prefix")
        self._adopt(kv, may_create=not stale)

    def _adopt(self, kv: KeyValue | None, *, may_create: bool = True) -> None:
        """Take the epoch ``kv`` holds when it was made on this cluster; else make one."""
        if kv is not None:
            epoch, cluster = etcd_layout.unpack_epoch(kv.value)
            if cluster == self._cluster or not self._cluster:
                self._set_epoch(epoch, kv.mod_revision)
                return
        if not may_create:
            return
        new = os.urandom(8).hex()  # not secrets: it maps libcrypto (as the LMDB store)
        txn = self.client.txn(
            [Compare.mod_revision(self._epoch_key, "=", kv.mod_revision if kv else 0)],
            [TxnOp.put(self._epoch_key, etcd_layout.pack_epoch(new, self._cluster))],
            [TxnOp.range(self._epoch_key)])
        self._rv = max(self._rv, txn.revision)
        if txn.succeeded:
            logger.info("new epoch %s under %s (%s)", new, self.prefix.decode(errors="replace"),
                        "the prefix was empty" if kv is None else "another etcd cluster")
            self._set_epoch(new, txn.revision)
            return
        other = txn.responses[0]
        if isinstance(other, RangeResult) and other.kvs:  # another registry made it first
            self._set_epoch(etcd_layout.unpack_epoch(other.kvs[0].value)[0],
                            other.kvs[0].mod_revision)

    def _set_epoch(self, epoch: str, mod_revision: int) -> None:
        if self.epoch and epoch != self.epoch:
            logger.warning("store epoch changed %s -> %s (the prefix was wiped or the etcd "
                           "cluster replaced): clients relist", self.epoch, epoch)
        self.epoch, self._epoch_mod = epoch, mod_revision

    def _check_epoch(self) -> None:
        """Read the epoch key again, at most every EPOCH_CHECK seconds."""
        now = self._monotonic()
        if now - self._checked < EPOCH_CHECK:
            return
        self._checked = now
        result, stale = self._range_raw(self._epoch_key)
        kv = result.kvs[0] if result.kvs else None
        cluster_changed = bool(result.cluster_id) and result.cluster_id != self._cluster
        if cluster_changed:
            logger.warning("etcd cluster id changed %s -> %s", self._cluster, result.cluster_id)
            self._cluster = result.cluster_id
        if cluster_changed or kv is None or kv.mod_revision != self._epoch_mod:
            self._adopt(kv, may_create=not stale)

    # -- reads ---------------------------------------------------------------------------

    def _range_raw(self, key: bytes, range_end: bytes | None = None,
                   **options: Any) -> tuple[RangeResult, bool]:
        """A linearizable range, or while quorum is lost a serializable one (stale)."""
        try:
            if self._degraded and not self._leader_back():
                raise Unavailable(f"etcd store unavailable ({self.client.endpoint}): "
                                  "quorum lost (no leader)")
            result, stale = self.client.range(key, range_end, **options), False
            self._degraded = False
        except Unavailable as e:
            self._degraded = True
            result, stale = self.client.range(key, range_end, serializable=True,
                                              **options), True
            self.stats["staleReads"] += 1
            if self.stats["staleReads"] % 100 == 1:
                logger.warning("etcd store: serving reads from one member's state, maybe "
                               "stale: %s", e.message)
        self.stale = self.stale or stale
        self._rv = max(self._rv, result.revision)
        return result, stale

    def _leader_back(self) -> bool:
        """While degraded: whether the member answering has a leader again (asked at most
        every PROBE_EVERY seconds; its status needs no quorum and answers at once)."""
        now = self._monotonic()
        if now - self._probed < PROBE_EVERY:
            return False
        self._probed = now
        try:
            return bool(self.client.status()["leader"])
        except RegistryError:
            return False

    def _range(self, key: bytes, range_end: bytes | None = None, **options: Any) -> RangeResult:
        self._check_epoch()
        return self._range_raw(key, range_end, **options)[0]

    def _objects_prefix(self, kind: str, namespace: str | None) -> tuple[bytes, bytes]:
        """(etcd prefix, store-key prefix) of the objects of a kind (in one namespace)."""
        store = f"{kind}/{namespace}/".encode() if namespace else f"{kind}/".encode()
        return etcd_layout.objects_prefix(self.prefix) + store, store

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        target = semantics.Target(kind=kind, namespace=namespace, name=name)
        result = self._range(etcd_layout.object_key(self.prefix, target.store_key))
        if not result.kvs:
            raise NotFound(f"{target} not found")
        kv = result.kvs[0]
        return etcd_layout.decode_object(kv.value, kv.mod_revision)

    def list_raw(self, kind: str, namespace: str | None = None) -> RawList:
        start, _ = self._objects_prefix(kind, namespace)
        result = self._range(start, prefix_end(start))
        frames = [etcd_layout.object_frame(kv.value, kv.mod_revision) for kv in result.kvs]
        return RawList(count=len(frames), data=b"".join(frames),
                       resource_version=result.revision)

    def list_objects(self, kind: str,
                     namespace: str | None = None) -> tuple[list[dict[str, Any]], int]:
        raw = self.list_raw(kind, namespace)
        return raw.decode(), raw.resource_version

    def list_versions(self, kind: str,
                      namespace: str | None = None) -> tuple[list[tuple[str, int]], int]:
        start, _ = self._objects_prefix(kind, namespace)
        result = self._range(start, prefix_end(start), keys_only=True)
        skip = len(etcd_layout.objects_prefix(self.prefix)) + len(kind) + 1
        return [(kv.key[skip:].decode(), kv.mod_revision) for kv in result.kvs], \
            result.revision

    def list_page(self, kind: str, namespace: str | None, *, limit: int,
                  continue_token: str | None = None, versions: bool = False) -> paging.Page:
        """One page of a LIST (as :meth:`Store.list_page`; the token is the same)."""
        start, store_prefix = self._objects_prefix(kind, namespace)
        end = prefix_end(start)
        if continue_token:
            after = paging.decode_token(continue_token, store_prefix)
            start = etcd_layout.object_key(self.prefix, after) + b"\0"
        result = self._range(start, end, limit=limit, keys_only=versions)
        remaining = max(0, result.count - len(result.kvs))
        last = etcd_layout.store_key_of(self.prefix, result.kvs[-1].key) if result.kvs else b""
        token = paging.encode_token(last) if remaining and last else ""
        if versions:
            skip = len(kind) + 1
            pairs = [(etcd_layout.store_key_of(self.prefix, kv.key)[skip:].decode(),
                      kv.mod_revision) for kv in result.kvs]
            return paging.Page(count=len(pairs), data=b"", versions=pairs,
                               resource_version=result.revision, continue_token=token,
                               remaining=remaining)
        frames = [etcd_layout.object_frame(kv.value, kv.mod_revision) for kv in result.kvs]
        return paging.Page(count=len(frames), data=b"".join(frames), versions=None,
                           resource_version=result.revision, continue_token=token,
                           remaining=remaining)

    def watch_since_raw(self, resource_version: int, *, max_events: int | None = None,
                        max_bytes: int | None = None) -> RawList:
        """The events after ``resource_version``, from etcd's history
        (:func:`ecsm_actors.store.etcd_events.watch_since_raw`; the registry answers
        recent ones from its event source's window first)."""
        from ecsm_actors.store import etcd_events

        return etcd_events.watch_since_raw(self.client, self.prefix, resource_version,
                                           self.epoch, max_events=max_events,
                                           max_bytes=max_bytes)

    def watch_since(self, resource_version: int, **limits: int) -> tuple[list[Event], int]:
        raw = self.watch_since_raw(resource_version, **limits)
        return [Event.from_wire(doc) for doc in raw.decode()], raw.resource_version

    def usage(self) -> float:
        """Fraction of etcd's default quota in use (the last figure while unreachable);
        also checks the epoch, so an idle registry notices a wiped prefix."""
        stale = self.stale  # a heartbeat's check marks no reply stale
        try:
            self._check_epoch()
            status = self.client.status()
        except RegistryError:
            return self._usage
        finally:
            self.stale = stale
        self._rv = max(self._rv, int(status["revision"]))
        self._usage = int(status["db_size_in_use"]) / DEFAULT_QUOTA
        return self._usage

    # -- writes --------------------------------------------------------------------------

    def execute(self, writes: Sequence[Write]) -> list[Outcome | RegistryError]:
        """Apply ``writes`` in order, in as few txns as they allow; one result each."""
        now = self._clock()
        units: list[Unit] = [(w.fields.get("requestId"), w.op, stage(w)) for w in writes]
        results: list[Outcome | RegistryError] = []
        for group in self._groups(units):
            results.extend(self._commit_group(group, now))
        return results

    def dry_run(self, write: Write) -> Outcome | RegistryError:
        """What ``write`` would do: read and staged, never committed (no requestId looked
        up or recorded); its resourceVersion the next revision."""
        try:
            results, _, revision = self._stage([(None, write.op, stage(write))],
                                               self._clock(), record=False)
        except RegistryError as e:
            return e.with_traceback(None)
        result = finish(results[0], revision + 1)
        if isinstance(result, Outcome):
            return Outcome(result=result.result, encoded=result.encoded)
        return result

    def write(self, op: Op, **fields: Any) -> Any:
        """One write; returns its reply payload or raises its error (tests, tools)."""
        result = self.execute([Write(op=op, fields=fields)])[0]
        if isinstance(result, RegistryError):
            raise result
        return result.result

    def _unit_keys(self, unit: Unit) -> set[bytes]:
        rid, _, s = unit
        keys = set(keys_of(self.prefix, s))
        if rid is not None:
            keys.add(etcd_layout.request_key(self.prefix, rid))
        return keys

    def _groups(self, units: list[Unit]) -> list[list[Unit]]:
        """Consecutive units, cut where a key repeats or a txn would grow too big."""
        groups: list[list[Unit]] = []
        current: list[Unit] = []
        held: set[bytes] = set()
        for unit in units:
            keys = self._unit_keys(unit)
            if current and (keys & held or len(held) + len(keys) > MAX_TXN_KEYS):
                groups.append(current)
                current, held = [], set()
            current.append(unit)
            held |= keys
        if current:
            groups.append(current)
        return groups

    def _commit_group(self, group: list[Unit], now: float) -> list[Outcome | RegistryError]:
        if len(group) == 1 and len(self._unit_keys(group[0])) > MAX_TXN_KEYS:
            return [self._large_batch(group[0], now)]
        try:
            return self._commit(group, now)
        except StoreFull as e:
            if len(group) > 1:
                return [r for unit in group for r in self._commit_group([unit], now)]
            if group[0][1] is Op.DELETE:
                try:  # a full store still takes deletes, unrecorded
                    return self._commit(group, now, record=False)
                except RegistryError as again:
                    return [again.with_traceback(None)]
            return [e.with_traceback(None)]
        except Internal as e:
            if len(group) > 1:  # e.g. a txn over etcd's request size: each alone
                logger.warning("etcd txn of %d writes failed (%s); retrying them one by one",
                               len(group), e.message)
                return [r for unit in group for r in self._commit_group([unit], now)]
            return [e.with_traceback(None)]
        except RegistryError as e:  # Unavailable: quorum lost, or the outcome unknown
            return [e.with_traceback(None) for _ in group]

    def _stage(self, group: list[Unit], now: float, *,
               record: bool = True) -> tuple[list[Result], View, int]:
        """Read every key of ``group`` (one txn) and stage its writes over them."""
        view, revision = self._read(group)
        results: list[Result] = []
        for rid, op, s in group:
            key = etcd_layout.request_key(self.prefix, rid) if rid is not None else None
            if key is not None and record:
                recorded = self._recorded(view.reads.get(key), now)
                if recorded is not None:
                    assert rid is not None
                    results.append(self._replay(rid, op, s, recorded))
                    continue
            result = view.run(s, now)
            results.append(result)
            if key is None or not record:
                continue
            if isinstance(result, RegistryError):
                if isinstance(result, semantics.TRANSIENT_ERRORS):
                    continue
                kept = {"op": str(op), "error": result.to_wire()}
            else:
                kept = record_of(result)
                if semantics.transient_batch(kept):
                    continue
            view.records[key] = etcd_layout.pack_request_record(kept, now)
        return results, view, revision

    def _commit(self, group: list[Unit], now: float, *,
                record: bool = True) -> list[Outcome | RegistryError]:
        results, revision = self._commit_raw(group, now, record=record)
        return [finish(r, revision) for r in results]

    def _commit_raw(self, group: list[Unit], now: float, *,
                    record: bool = True) -> tuple[list[Result], int]:
        """Read, stage and commit ``group`` in one txn, again while it loses to another
        writer; the staged results and the revision to finish them with."""
        for _ in range(MAX_ATTEMPTS):
            results, view, revision = self._stage(group, now, record=record)
            puts = view.puts()
            if not puts and not view.records:
                return results, revision
            ops = [TxnOp.delete(k) if obj is None
                   else TxnOp.put(k, etcd_layout.pack_object(obj)) for k, obj in puts.items()]
            if view.records:
                lease = self._request_lease()
                ops += [TxnOp.put(k, v, lease=lease) for k, v in view.records.items()]
            compares = [Compare.mod_revision(self._epoch_key, "=", self._epoch_mod)]
            compares += [Compare.mod_revision(k, "=", kv.mod_revision if kv else 0)
                         for k, kv in view.reads.items()]
            try:
                txn = self.client.txn(compares, ops)
            except Internal as e:
                if "lease not found" not in e.message:
                    raise
                self._lease = 0  # the lease ended early (etcd restored?): take a new one
                continue
            self._rv = max(self._rv, txn.revision)
            if txn.succeeded:
                return results, txn.revision
            self.stats["txnRetries"] += 1
        raise Unavailable(f"etcd store ({self.client.endpoint}): the write lost to "
                          f"concurrent writers {MAX_ATTEMPTS} times in a row; retry")

    def _read(self, group: list[Unit]) -> tuple[View, int]:
        """One read-only txn of the epoch and every key of ``group``."""
        keys = sorted(set().union(*(self._unit_keys(u) for u in group)))
        if self._degraded and not self._leader_back():
            raise Unavailable(f"etcd store unavailable ({self.client.endpoint}): quorum "
                              "lost (no leader); the write was not applied")
        try:
            txn = self.client.txn([], [TxnOp.range(self._epoch_key),
                                       *(TxnOp.range(k) for k in keys)])
        except Unavailable:
            self._degraded = True
            raise
        self._degraded = False
        ranges = [r for r in txn.responses if isinstance(r, RangeResult)]
        epoch = ranges[0].kvs[0] if ranges[0].kvs else None
        if epoch is None or epoch.mod_revision != self._epoch_mod:
            self._adopt(epoch)
        self._rv = max(self._rv, txn.revision)
        view = View(prefix=self.prefix, reads={
            k: (r.kvs[0] if r.kvs else None) for k, r in zip(keys, ranges[1:], strict=True)})
        return view, txn.revision

    def _request_lease(self) -> int:
        """The lease the request window's records are put with (see the module docstring)."""
        now = self._monotonic()
        if not self._lease or now >= self._lease_until:
            bucket = max(1.0, self.request_window_age / LEASE_BUCKETS)
            self._lease = self.client.lease_grant(int(self.request_window_age + bucket) + 1)
            self._lease_until = now + bucket
        return self._lease

    def _recorded(self, kv: KeyValue | None, now: float) -> dict[str, Any] | None:
        """The record a request window key holds, unless absent or past its age."""
        if kv is None:
            return None
        stamp, record = etcd_layout.unpack_request_record(kv.value)
        if stamp < now - self.request_window_age:
            return None
        return resolve_record(record, kv.mod_revision)

    def _replay(self, request_id: str, op: Op, s: Staged | StagedBatch | RegistryError,
                recorded: dict[str, Any]) -> Outcome | RegistryError:
        refused = replay.reused_id(request_id, op, s, recorded)
        if refused is not None:
            return refused
        return replay.replayed(recorded, replay.rebuild_with(recorded, self._object_at))

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

    def _large_batch(self, unit: Unit, now: float) -> Outcome | RegistryError:
        """A BATCH with more objects than one txn holds: atomic, refused; else committed
        in parts, its requestId recorded after the last (a crash between the parts and
        the record lets a retry apply the first parts' writes again)."""
        rid, op, s = unit
        assert isinstance(s, StagedBatch)
        if s.atomic:
            return BadRequest(f"an atomic BATCH on the etcd store holds at most "
                              f"{MAX_TXN_KEYS - 1} writes (etcd's txn limit), not "
                              f"{len(s.writes)}; send it in parts or without atomic")
        key = etcd_layout.request_key(self.prefix, rid) if rid is not None else None
        if key is not None:
            held = self.client.range(key)
            recorded = self._recorded(held.kvs[0] if held.kvs else None, now)
            if recorded is not None:
                return self._replay(rid, op, s, recorded)  # type: ignore[arg-type]
        per_write: list[Outcome | RegistryError] = []
        size = MAX_TXN_KEYS - 1
        revision = self._rv
        for i in range(0, len(s.writes), size):
            part = StagedBatch(ops=s.ops[i:i + size], writes=s.writes[i:i + size])
            results, revision = self._commit_part(part, now)
            per_write += results
        outcome = replay.batch_outcome(s.ops, per_write, revision)
        if key is not None and outcome.record and not semantics.transient_batch(outcome.record):
            self.client.txn([Compare.mod_revision(key, "=", 0)], [TxnOp.put(
                key, etcd_layout.pack_request_record(outcome.record, now),
                lease=self._request_lease())])
        return outcome

    def _commit_part(self, part: StagedBatch,
                     now: float) -> tuple[list[Outcome | RegistryError], int]:
        """One part of a large BATCH: its per-write results and its revision."""
        try:
            results, revision = self._commit_raw([(None, Op.BATCH, part)], now)
        except RegistryError as e:
            return [e.with_traceback(None) for _ in part.writes], self._rv
        batch = results[0]
        assert isinstance(batch, AppliedBatch)
        return [finish(r, revision) for r in batch.results], revision


__all__ = ["EtcdStore"]
