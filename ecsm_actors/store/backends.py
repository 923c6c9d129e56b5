"""The registry's choice of store backend: ``store.backend`` → an opened store.

Runs in the registry process (and in tools that open a store, such as ``store migrate``).
``lmdb`` (the default: embedded, one computer) opens :class:`~.lmdb_store.Store` on the
run directory's data; ``etcd`` opens :class:`~.etcd_store.EtcdStore` on
``store.etcd_endpoints`` under ``store.etcd_prefix``. Both have the same public methods
and semantics; the etcd client is imported only when it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ecsm_actors.errors import ConfigError
from ecsm_actors.store.lmdb_store import Store

if TYPE_CHECKING:
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
