"""The registry's store on an etcd v3 cluster: the same interface and semantics as the
LMDB :class:`~ecsm_actors.store.lmdb_store.Store`, for several computers.

Runs in the registry process; several registries (one per host) may serve the same
prefix at once: the registry holds no state of its own beyond a cache of the epoch. Keys
and values: :mod:`.etcd_layout`. The rules of each write are those of :mod:`.semantics`
and :mod:`.replay`, applied by :mod:`.etcd_writes`.

Writes. :meth:`EtcdStore.execute` takes the writes of one turn of the registry's loop and
groups them (no object or requestId twice in a group, at most :data:`MAX_TXN_KEYS` keys):
a group is staged over what the store last knew of its keys (the objects it read or
wrote lately; a CREATE's object never seen and a requestId as absent), or else over one
read txn of them, and commits in one txn that compares every key staged over
(``mod_revision`` as known, 0 for an absent key: a create) and the epoch key, its failure
branch reading them all. A txn that loses to another registry's write (or to a stale
guess) is staged again over what it read (never a Conflict the client did not cause), up
to :data:`MAX_ATTEMPTS` times; an answer that writes nothing is given only from a read,
never from a guess. An etcd txn holds at most 128 operations: an atomic BATCH of more than
:data:`MAX_TXN_KEYS` objects is refused (BadRequest); a larger non-atomic one is committed
in parts, its requestId claimed before the first part and recorded after the last.

Exactly once: a write carrying ``requestId`` has its outcome put in its own txn
(:mod:`.etcd_window`).

Full. etcd's NOSPACE alarm (``StoreFull``) refuses every txn that puts a key: the writes of
a group are then tried one by one, and a DELETE is tried once more without its request
window record (answered, not recorded) so that a full store still takes deletes.

Reads (:mod:`.etcd_reads`) are linearizable; while quorum is lost they are served from
the answering member's state and :meth:`EtcdStore.take_stale` says so (the registry marks
the reply ``stale: true``), and writes answer ``Unavailable`` naming the store
(:mod:`.etcd_quorum`). The epoch: :mod:`.etcd_epoch`. The resourceVersion of the store is
etcd's revision (global to the cluster: not contiguous per prefix).

Not thread-safe: the registry's loop thread owns it.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from ecsm_actors.errors import (
    BadRequest,
    DeadlineExceeded,
    Internal,
    RegistryError,
    StoreFull,
    Unavailable,
)
from ecsm_actors.etcd.client import Compare, EtcdClient, KeyValue, RangeResult, TxnOp
from ecsm_actors.protocol import Op
from ecsm_actors.store import etcd_layout, replay, semantics
from ecsm_actors.store.etcd_epoch import Epoch
from ecsm_actors.store.etcd_quorum import Quorum
from ecsm_actors.store.etcd_reads import EtcdReads
from ecsm_actors.store.etcd_window import RequestWindow
from ecsm_actors.store.etcd_writes import (
    AppliedBatch,
    Result,
    View,
    finish,
    keys_of,
    record_of,
)
from ecsm_actors.store.records import Outcome, Staged, StagedBatch, Write, stage

logger = logging.getLogger(__name__)

#: Keys one txn reads and writes at most (etcd's --max-txn-ops is 128; the epoch is one).
MAX_TXN_KEYS = 120
#: Times a group is read and staged again after losing its txn to another writer.
MAX_ATTEMPTS = 50
#: etcd's default backend quota (--quota-backend-bytes), for :meth:`EtcdStore.usage`.
DEFAULT_QUOTA = 2 << 30

Unit = tuple[str | None, Op, Staged | StagedBatch | RegistryError]


class EtcdStore(EtcdReads):
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
        self._usage = 0.0
        self.window = RequestWindow(client, self.prefix, age=request_window_age,
                                    monotonic=monotonic)
        self.quorum = Quorum(client, monotonic)
        self._epoch = Epoch(client, self.prefix, self.quorum, monotonic)
        self.stats = {"txnRetries": 0}
        self._known: OrderedDict[bytes, KeyValue | None] = OrderedDict()
        #: Compaction floor (etcd's is not tracked here; informers get Expired from etcd).
        self.compacted = 0
        logger.info("etcd store %s%s opened: epoch=%s revision=%d", client.endpoint,
                    self.prefix.decode(errors="replace"), self.epoch, self.resource_version)

    @classmethod
    def from_config(cls, cfg: Any) -> EtcdStore:
        r = cfg.registry
        return cls(EtcdClient.from_config(cfg), prefix=cfg.store.etcd_prefix,
                   request_window=r.request_window, request_window_age=r.request_window_age)

    @property
    def resource_version(self) -> int:
        """etcd's revision, as last seen (every read and write, every heartbeat)."""
        return self.quorum.revision

    @property
    def stale(self) -> bool:
        """A read was served from one member's state since :meth:`take_stale`."""
        return self.quorum.stale

    def release_pages(self) -> None:
        """Nothing to release: the objects live in etcd."""

    def close(self) -> None:
        self.client.close()

    def take_stale(self) -> bool:
        """Whether the reads since the last call were served stale (and forget it)."""
        stale, self.quorum.stale = self.quorum.stale, False
        return stale

    def usage(self) -> float:
        """Fraction of etcd's default quota in use (the last figure while unreachable);
        also checks the epoch, so an idle registry notices a wiped prefix."""
        stale = self.quorum.stale  # a heartbeat's check marks no reply stale
        try:
            self._epoch.check()
            status = self.client.status()
        except RegistryError:
            return self._usage
        finally:
            self.quorum.stale = stale
        self.quorum.seen(int(status["revision"]))
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
        group: list[Unit] = [(None, write.op, stage(write))]
        try:
            view, revision = self._read(group)
            results = self._stage(view, group, self._clock(), record=False)
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
            keys.add(self.window.key(rid))
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

    def _stage(self, view: View, group: list[Unit], now: float, *,
               record: bool = True) -> list[Result]:
        """Stage the writes of ``group`` over ``view``."""
        results: list[Result] = []
        for rid, op, s in group:
            key = self.window.key(rid) if rid is not None else None
            if key is not None and record:
                recorded = self.window.recorded(view.reads.get(key), now)
                if recorded is not None:
                    assert rid is not None
                    results.append(self.window.replay(rid, op, s, recorded))
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
        return results

    def _commit(self, group: list[Unit], now: float, *,
                record: bool = True) -> list[Outcome | RegistryError]:
        results, revision = self._commit_raw(group, now, record=record)
        return [finish(r, revision) for r in results]

    def _commit_raw(self, group: list[Unit], now: float, *,
                    record: bool = True) -> tuple[list[Result], int]:
        """Stage and commit ``group`` in one txn, again while it loses to another writer
        (or to what the store guessed); the staged results and the revision to finish
        them with. Staged first over what the store last knew of its keys (one round
        trip), else over a read of them; a txn that fails reads them in its failure
        branch, so the next attempt is staged over the truth."""
        self.quorum.check()
        reads, fresh, revision = self._guess(group), False, self.resource_version
        for _ in range(MAX_ATTEMPTS):
            if reads is None:
                view, revision = self._read(group)
                fresh = True
            else:
                view = View(prefix=self.prefix, reads=reads)
            results = self._stage(view, group, now, record=record)
            puts = view.puts()
            if not puts and not view.records:
                if fresh:
                    return results, revision
                reads = None  # answered from what was guessed: read to be sure
                continue
            ops = [TxnOp.delete(k) if obj is None
                   else TxnOp.put(k, etcd_layout.pack_object(obj)) for k, obj in puts.items()]
            if view.records:
                lease = self.window.lease()
                ops += [TxnOp.put(k, v, lease=lease) for k, v in view.records.items()]
            keys = sorted(view.reads)
            compares = [self._epoch.compare()]
            compares += [Compare.mod_revision(k, "=", view.reads[k].mod_revision  # type: ignore[union-attr]
                                              if view.reads[k] else 0) for k in keys]
            try:
                txn = self.client.txn(compares, ops, [TxnOp.range(self._epoch.key),
                                                      *(TxnOp.range(k) for k in keys)])
            except Internal as e:
                if "lease not found" not in e.message:
                    raise
                self.window.forget_lease()  # ended early (etcd restored?): take a new one
                continue
            except DeadlineExceeded:
                raise  # its answer lost (a member died under it): no sign of a lost quorum
            except Unavailable:
                self.quorum.lost()
                raise
            self.quorum.seen(txn.revision)
            if txn.succeeded:
                self._remember_txn(view, puts, txn.revision)
                return results, txn.revision
            self.stats["txnRetries"] += 1
            reads, fresh, revision = self._reads_of(keys, txn.responses), True, txn.revision
        raise Unavailable(f"etcd store ({self.client.endpoint}): the write lost to "
                          f"concurrent writers {MAX_ATTEMPTS} times in a row; retry")

    def _guess(self, group: list[Unit]) -> dict[bytes, KeyValue | None] | None:
        """What the keys of ``group`` hold as far as the store knows without reading: the
        last known value of an object, absent for a CREATE's object never seen and for a
        requestId (nearly always new); None when a key is unknown."""
        reads: dict[bytes, KeyValue | None] = {}
        for rid, _, s in group:
            if rid is not None:
                reads[self.window.key(rid)] = None
            for w in s.writes if isinstance(s, StagedBatch) else (s,):
                if not isinstance(w, Staged):
                    continue
                key = etcd_layout.object_key(self.prefix, w.target.store_key)
                if key in self._known:
                    reads.setdefault(key, self._known[key])
                elif w.op is Op.CREATE:
                    reads.setdefault(key, None)
                else:
                    return None
        return reads

    def _remember_txn(self, view: View, puts: dict[bytes, dict[str, Any] | None],
                      revision: int) -> None:
        """Keep what a committed txn left in its object keys."""
        objects = etcd_layout.objects_prefix(self.prefix)
        for key, kv in view.reads.items():
            if key.startswith(objects) and key not in puts:
                self._remember(key, kv)
        for key, obj in puts.items():
            self._remember(key, None if obj is None else KeyValue(
                key=key, value=etcd_layout.pack_object(obj), create_revision=0,
                mod_revision=revision, version=0, lease=0))

    def _reads_of(self, keys: list[bytes],
                  responses: Sequence[RangeResult | int | None]) -> dict[bytes, KeyValue | None]:
        """The keys as a failed txn's failure branch read them (the epoch first)."""
        ranges = [r for r in responses if isinstance(r, RangeResult)]
        epoch = ranges[0].kvs[0] if ranges[0].kvs else None
        if epoch is None or epoch.mod_revision != self._epoch.mod_revision:
            self._epoch.adopt(epoch)
        reads = {k: (r.kvs[0] if r.kvs else None) for k, r in zip(keys, ranges[1:], strict=True)}
        objects = etcd_layout.objects_prefix(self.prefix)
        for key, kv in reads.items():
            if key.startswith(objects):
                self._remember(key, kv)
        return reads

    def _read(self, group: list[Unit]) -> tuple[View, int]:
        """One read-only txn of the epoch and every key of ``group``."""
        keys = sorted(set().union(*(self._unit_keys(u) for u in group)))
        self.quorum.check()
        try:
            txn = self.client.txn([], [TxnOp.range(self._epoch.key),
                                       *(TxnOp.range(k) for k in keys)])
        except Unavailable:
            self.quorum.lost()
            raise
        self.quorum.seen(txn.revision)
        return View(prefix=self.prefix, reads=self._reads_of(keys, txn.responses)), \
            txn.revision

    def _large_batch(self, unit: Unit, now: float) -> Outcome | RegistryError:
        """A BATCH with more objects than one txn holds: atomic, refused; else committed
        in parts, its requestId claimed before the first and recorded after the last (a
        crash between lets a retry apply the first parts' writes again once the claim
        ended, see :mod:`.etcd_window`)."""
        rid, op, s = unit
        assert isinstance(s, StagedBatch)
        if s.atomic:
            return BadRequest(f"an atomic BATCH on the etcd store holds at most "
                              f"{MAX_TXN_KEYS - 1} writes (etcd's txn limit), not "
                              f"{len(s.writes)}; send it in parts or without atomic")
        claim = 0
        if rid is not None:  # the same BATCH through another registry waits, never applies
            try:
                claimed = self.window.claim(rid, op, s, now)
            except RegistryError as e:
                return e.with_traceback(None)
            if not isinstance(claimed, int):
                return claimed
            claim = claimed
        per_write: list[Outcome | RegistryError] = []
        size = MAX_TXN_KEYS - 1
        revision = self.resource_version
        for i in range(0, len(s.writes), size):
            part = StagedBatch(ops=s.ops[i:i + size], writes=s.writes[i:i + size])
            results, revision = self._commit_part(part, now)
            per_write += results
        outcome = replay.batch_outcome(s.ops, per_write, revision)
        if rid is not None:
            kept = outcome.record
            try:
                self.window.settle(rid, claim, kept if kept and not semantics.transient_batch(
                    kept) else None, now)
            except RegistryError as e:  # answered all the same; the claim ends by its lease
                logger.warning("etcd store: the outcome of BATCH %s was not recorded: %s",
                               rid, e.message)
        return outcome

    def _commit_part(self, part: StagedBatch,
                     now: float) -> tuple[list[Outcome | RegistryError], int]:
        """One part of a large BATCH: its per-write results and its revision."""
        try:
            results, revision = self._commit_raw([(None, Op.BATCH, part)], now)
        except RegistryError as e:
            return [e.with_traceback(None) for _ in part.writes], self.resource_version
        batch = results[0]
        assert isinstance(batch, AppliedBatch)
        return [finish(r, revision) for r in batch.results], revision


__all__ = ["EtcdStore"]
