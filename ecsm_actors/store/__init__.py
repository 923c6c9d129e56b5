"""The registry's store: LMDB objects, the global resourceVersion and the event log.

Runs only in the registry process. :mod:`.semantics` holds the pure rules of each write
(generation, OCC, finalizers, apply); :mod:`.lmdb_store` holds the storage and the group
commit. See DESIGN §4.
"""

from __future__ import annotations

from ecsm_actors.store.lmdb_store import (
    WRITE_OPS,
    Outcome,
    RawList,
    Store,
    StoredEvent,
    Write,
)

__all__ = ["WRITE_OPS", "Outcome", "RawList", "Store", "StoredEvent", "Write"]
