"""The etcd store's reads: GET, LIST (whole, versions, pages) and WATCH_SINCE.

Runs in the registry process: :class:`EtcdReads` is a part of
:class:`~ecsm_actors.store.etcd_store.EtcdStore` (which owns the client, the prefix, its
:class:`~.etcd_quorum.Quorum` and :class:`~.etcd_epoch.Epoch`). Each read is one etcd range,
linearizable (or stale while quorum is lost, see :mod:`.etcd_quorum`), so a LIST is one
snapshot at etcd's revision; an object's resourceVersion is its key's ``mod_revision``
(:func:`.etcd_layout.object_frame`, spliced without decoding the object). LIST pages use
the LMDB store's continue token (the last store key), so a token is good on either
backend; each page is read at its own revision.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ecsm_actors.errors import NotFound
from ecsm_actors.etcd.client import EtcdClient, KeyValue, RangeResult, prefix_end
from ecsm_actors.protocol import Event
from ecsm_actors.store import etcd_layout, paging, semantics
from ecsm_actors.store.etcd_epoch import Epoch
from ecsm_actors.store.etcd_quorum import Quorum
from ecsm_actors.store.records import RawList

#: Objects whose last known key-value the store keeps (a write's fast path).
KNOWN_KEYS = 1024
#: ... and values of at most this many bytes in all (large objects are read first).
KNOWN_BYTES = 4 << 20


class EtcdReads:
    """The read methods of the etcd store (same signatures as the LMDB store's)."""

    client: EtcdClient
    prefix: bytes
    quorum: Quorum
    _epoch: Epoch
    #: The last known key-value of recently read or written objects (None: absent), so
    #: that a write can be staged without reading first (its txn checks it).
    _known: OrderedDict[bytes, KeyValue | None]

    _known_bytes: int = 0

    def _remember(self, key: bytes, kv: KeyValue | None) -> None:
        held = self._known.pop(key, None)
        self._known_bytes -= len(held.value) if held is not None else 0
        if kv is not None and len(kv.value) > KNOWN_BYTES // 64:
            return  # a large object: its writes read it first
        self._known[key] = kv
        self._known_bytes += len(kv.value) if kv is not None else 0
        while len(self._known) > KNOWN_KEYS or self._known_bytes > KNOWN_BYTES:
            _, dropped = self._known.popitem(last=False)
            self._known_bytes -= len(dropped.value) if dropped is not None else 0

    @property
    def epoch(self) -> str:
        return self._epoch.value

    def _range(self, key: bytes, range_end: bytes | None = None, **options: Any) -> RangeResult:
        self._epoch.check()
        return self.quorum.range(key, range_end, **options)[0]

    def _objects_prefix(self, kind: str, namespace: str | None) -> tuple[bytes, bytes]:
        """(etcd prefix, store-key prefix) of the objects of a kind (in one namespace)."""
        store = f"{kind}/{namespace}/".encode() if namespace else f"{kind}/".encode()
        return etcd_layout.objects_prefix(self.prefix) + store, store

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        target = semantics.Target(kind=kind, namespace=namespace, name=name)
        key = etcd_layout.object_key(self.prefix, target.store_key)
        result = self._range(key)
        self._remember(key, result.kvs[0] if result.kvs else None)
        if not result.kvs:
            raise NotFound(f"{target} not found")
        kv = result.kvs[0]
        return etcd_layout.decode_object(kv.value, kv.mod_revision)

    def list_raw(self, kind: str, namespace: str | None = None, *,
                 head: Callable[[int, int], bytes] | None = None) -> RawList:
        """As the LMDB store's: ``head(count, resource_version)`` starts ``data``."""
        start, _ = self._objects_prefix(kind, namespace)
        result = self._range(start, prefix_end(start))
        frames = [etcd_layout.object_frame(kv.value, kv.mod_revision) for kv in result.kvs]
        if head is not None:
            frames.insert(0, head(len(result.kvs), result.revision))
        return RawList(count=len(result.kvs), data=b"".join(frames),
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
