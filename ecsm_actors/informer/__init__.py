"""The informer: keeps a controller's view of one kind in step with the registry.

Runs in its own thread inside a controller process. It subscribes to the registry's event
stream BEFORE it lists, keeps only ``key → resourceVersion`` for its kind (no object cache:
workers read objects fresh), and calls handlers that only enqueue keys. Its lists (the
first one, relists, resyncs) are versions-only LISTs: no object is sent or decoded.

Invariants:

* ``seq`` is the registry's global ``resourceVersion`` and every event carries its link in
  the event chain (``prev``, ``index``, ``last``: :class:`~ecsm_actors.protocol.ChainMark`),
  so the informer subscribes to every kind and advances its watermark on all of them; an
  event of another kind is otherwise ignored.
* Never blind. A broken chain (an event whose ``prev`` is past the watermark, a revision
  left unfinished, a heartbeat ahead of the watermark) → replay with
  ``WATCH_SINCE(watermark)``, which must continue the chain too; ``Expired`` → relist.
  A replay moves the watermark to the version its reply is complete up to (with etcd,
  revisions of other keys lie between events). No event and no heartbeat within
  ``controller.watch_deadline`` → reconnect the subscriber and replay. A new store
  ``epoch`` in an event, heartbeat or reply → relist from scratch (every listed key is
  re-announced, vanished keys get ``on_delete``). A registry that is down → retried with
  capped exponential backoff until it answers, without restarting the process. Each
  recovery is logged once at WARNING with its cause.
* The periodic resync (``controller.resync_period``) lists, catches the watermark up to
  the list's ``resourceVersion`` exactly, compares versions only and counts differences
  as drift (an event lost that gap detection missed: logged at ERROR). Then every key is
  announced with :meth:`EventHandler.on_resync` (low priority in the workqueue).
"""

from __future__ import annotations

from ecsm_actors.informer.sources import (
    EventHandler,
    EventSource,
    ListLike,
    RegistryReader,
    VersionsLike,
    WatchLike,
    object_key_of,
    resource_version_of,
)
from ecsm_actors.informer.sync import Informer

__all__ = [
    "EventHandler",
    "EventSource",
    "Informer",
    "ListLike",
    "RegistryReader",
    "VersionsLike",
    "WatchLike",
    "object_key_of",
    "resource_version_of",
]
