"""Reads of the etcd store that survive a lost quorum, and fast refusals of its writes.

Runs in the registry process, for :class:`~ecsm_actors.store.etcd_store.EtcdStore`.
A read is linearizable; when etcd cannot answer it (no leader, quorum lost) it is served
by a serializable read of the member that answers — its local state, which may lag — and
:attr:`Quorum.stale` says so until the registry takes it (the reply is marked
``stale: true``). Once a read or write met a lost quorum the store is *degraded*: reads go
serializable at once and writes are refused ``Unavailable`` at once, instead of waiting
out a request timeout each in the registry's only thread, until a member reports a leader
again (its status needs no quorum; asked at most every :data:`PROBE_EVERY` seconds).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ecsm_actors.errors import RegistryError, Unavailable
from ecsm_actors.etcd.client import EtcdClient, RangeResult

logger = logging.getLogger(__name__)

#: Seconds between two checks of a member's leader while degraded.
PROBE_EVERY = 0.5


class Quorum:
    """The store's reads and its view of etcd's quorum and revision."""

    def __init__(self, client: EtcdClient, monotonic: Callable[[], float]) -> None:
        self.client = client
        self._monotonic = monotonic
        #: A read since the registry last asked was served from one member's state.
        self.stale = False
        #: etcd's revision, the highest seen.
        self.revision = 0
        self.stats = {"staleReads": 0}
        self._degraded = False
        self._probed = 0.0

    def seen(self, revision: int) -> None:
        self.revision = max(self.revision, revision)

    def range(self, key: bytes, range_end: bytes | None = None,
              **options: Any) -> tuple[RangeResult, bool]:
        """A linearizable range, or while quorum is lost a serializable one: (the result,
        whether it may be stale)."""
        try:
            self.check()
            result, stale = self.client.range(key, range_end, **options), False
        except Unavailable as e:
            self._degraded = True
            result, stale = self.client.range(key, range_end, serializable=True,
                                              **options), True
            self.stats["staleReads"] += 1
            if self.stats["staleReads"] % 100 == 1:
                logger.warning("etcd store: serving reads from one member's state, maybe "
                               "stale: %s", e.message)
        self.stale = self.stale or stale
        self.seen(result.revision)
        return result, stale

    def check(self) -> None:
        """Raise Unavailable at once while degraded and no member reports a leader."""
        if self._degraded and not self._leader_back():
            raise Unavailable(f"etcd store unavailable ({self.client.endpoint}): quorum lost "
                              "(no leader)")
        self._degraded = False

    def lost(self) -> None:
        """A request met a lost quorum: degraded from now on."""
        self._degraded = True

    def _leader_back(self) -> bool:
        now = self._monotonic()
        if now - self._probed < PROBE_EVERY:
            return False
        self._probed = now
        try:
            return bool(self.client.status()["leader"])
        except RegistryError:
            return False
