"""The registry's store: LMDB objects, the global resourceVersion and the event log.

Runs only in the registry process. :mod:`.semantics` holds the pure rules of each write
(generation, OCC, finalizers, apply); :mod:`.records` the write path's values and its
validation step; :mod:`.lmdb_store` the storage and the group commit; :mod:`.window` the
request window (requestId → recorded outcome, exactly once); :mod:`.replay` BATCH replies
and replayed outcomes; :mod:`.paging` LIST pages; :mod:`.residency` keeps the process's
resident set small. See DESIGN §4.
"""

from __future__ import annotations

from ecsm_actors.store.lmdb_store import Store
from ecsm_actors.store.records import WRITE_OPS, Outcome, RawList, StoredEvent, Write

__all__ = ["WRITE_OPS", "Outcome", "RawList", "Store", "StoredEvent", "Write"]
