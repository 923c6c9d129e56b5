"""The registry's choice of store backend: ``store.backend`` → an opened store.

Runs in the registry process (and in tools that open a store, such as ``store migrate``).
``lmdb`` (the default: embedded, one computer) opens :class:`~.lmdb_store.Store` on the
run directory's data; ``etcd`` opens :class:`~.etcd_store.EtcdStore` on
``store.etcd_endpoints`` under ``store.etcd_prefix``. Both have the same public methods
and semantics; the etcd client is imported only when it is used. Event records follow
the store (:func:`open_event_store`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ecsm_actors.errors import ConfigError
from ecsm_actors.store.event_store import EventStore
from ecsm_actors.store.lmdb_store import Store

if TYPE_CHECKING:
    from ecsm_actors.store.etcd_event_records import EtcdEventRecords
    from ecsm_actors.store.etcd_store import EtcdStore

BACKENDS = ("lmdb", "etcd")


def open_store(cfg: Any) -> Store | EtcdStore:
    """The store ``cfg.store.backend`` names, opened (raises ConfigError for another)."""
    backend = cfg.store.backend
    if backend == "lmdb":
        return Store.from_config(cfg)
    if backend == "etcd":
        from ecsm_actors.store.etcd_store import EtcdStore

        return EtcdStore.from_config(cfg)
    raise ConfigError(f"store.backend: {backend!r} is not one of {', '.join(BACKENDS)}")


def open_event_store(cfg: Any) -> EventStore | EtcdEventRecords:
    """Where the registry keeps event records: its own LMDB environment, or with the etcd
    store in etcd, so that every host's registry sees every record."""
    if cfg.store.backend == "etcd":
        from ecsm_actors.store.etcd_event_records import EtcdEventRecords

        return EtcdEventRecords.from_config(cfg)
    return EventStore.from_config(cfg)
