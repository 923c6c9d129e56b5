"""The epoch of an etcd store: made, adopted, renewed when the prefix is wiped or the
cluster replaced.

Runs in the registry process, for :class:`~ecsm_actors.store.etcd_store.EtcdStore`. The key
``<prefix>epoch`` holds ``<epoch>/<cluster id>`` (:mod:`.etcd_layout`). At open, an absent
key is made (a txn on ``mod_revision == 0``: of two registries starting at once, one makes
it and the other adopts it). Later, the key found changed is adopted, found gone (a wiped
prefix) or made on another cluster (a cluster replaced, or restored from a backup: new
cluster id, old keys) is made anew — by whichever registry sees it first, the others adopt
that one. Every write's txn compares the key's ``mod_revision``, so no write lands under an
epoch its registry does not know; reads check the key at most every :data:`EPOCH_CHECK`
seconds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from ecsm_actors.errors import Unavailable
from ecsm_actors.etcd.client import Compare, EtcdClient, KeyValue, RangeResult, TxnOp
from ecsm_actors.store import etcd_layout
from ecsm_actors.store.etcd_quorum import Quorum

logger = logging.getLogger(__name__)

#: Seconds between two checks of the epoch key by reads (writes check it every time).
EPOCH_CHECK = 1.0


class Epoch:
    """The epoch as this registry knows it (``value``) and the key's ``mod_revision``."""

    def __init__(self, client: EtcdClient, prefix: bytes, quorum: Quorum,
                 monotonic: Callable[[], float]) -> None:
        self.client = client
        self.key = etcd_layout.epoch_key(prefix)
        self._prefix = prefix.decode(errors="replace")
        self._quorum = quorum
        self._monotonic = monotonic
        self.value = ""
        self.mod_revision = 0
        self._checked = 0.0
        result, stale = quorum.range(self.key)
        self.cluster = result.cluster_id
        kv = result.kvs[0] if result.kvs else None
        if kv is None and stale:
            raise Unavailable(f"etcd store unavailable ({client.endpoint}): quorum lost and "
                              "no epoch yet under the prefix")
        self.adopt(kv, may_create=not stale)

    def compare(self) -> Compare:
        """The condition every write's txn holds: the epoch key is as this registry knows."""
        return Compare.mod_revision(self.key, "=", self.mod_revision)

    def check(self) -> None:
        """Read the key again, at most every EPOCH_CHECK seconds."""
        now = self._monotonic()
        if now - self._checked < EPOCH_CHECK:
            return
        self._checked = now
        result, stale = self._quorum.range(self.key)
        kv = result.kvs[0] if result.kvs else None
        cluster_changed = bool(result.cluster_id) and result.cluster_id != self.cluster
        if cluster_changed:
            logger.warning("etcd cluster id changed %s -> %s", self.cluster, result.cluster_id)
            self.cluster = result.cluster_id
        if cluster_changed or kv is None or kv.mod_revision != self.mod_revision:
            self.adopt(kv, may_create=not stale)

    def adopt(self, kv: KeyValue | None, *, may_create: bool = True) -> None:
        """Take the epoch ``kv`` holds when it was made on this cluster; else make one."""
        if kv is not None:
            epoch, cluster = etcd_layout.unpack_epoch(kv.value)
            if cluster == self.cluster or not self.cluster:
                self._set(epoch, kv.mod_revision)
                return
        if not may_create:
            return
        new = os.urandom(8).hex()  # not secrets: it maps libcrypto (as the LMDB store)
        txn = self.client.txn(
            [Compare.mod_revision(self.key, "=", kv.mod_revision if kv else 0)],
            [TxnOp.put(self.key, etcd_layout.pack_epoch(new, self.cluster))],
            [TxnOp.range(self.key)])
        self._quorum.seen(txn.revision)
        if txn.succeeded:
            logger.info("new epoch %s under %s (%s)", new, self._prefix,
                        "the prefix was empty" if kv is None else "another etcd cluster")
            self._set(new, txn.revision)
            return
        other = txn.responses[0]
        if isinstance(other, RangeResult) and other.kvs:  # another registry made it first
            self._set(etcd_layout.unpack_epoch(other.kvs[0].value)[0],
                      other.kvs[0].mod_revision)

    def _set(self, epoch: str, mod_revision: int) -> None:
        if self.value and epoch != self.value:
            logger.warning("store epoch changed %s -> %s (the prefix was wiped or the etcd "
                           "cluster replaced): clients relist", self.value, epoch)
        self.value, self.mod_revision = epoch, mod_revision
