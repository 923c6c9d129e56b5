"""An informer's first LIST sent ahead of it: while a controller process builds its
reconciler, controller and liveness reporter, its first versions-only LIST is already on
its way to the registry, served, and answered.

Runs in a controller process, in a thread of its own (:class:`FirstList`), started by the
process main as soon as the configuration is loaded; the informer, once started, takes
what it made (:meth:`FirstList.take`) instead of making it again. A restart is ready only
once its informer synced: the registry's turn and the round trip of that LIST, spent
waiting before, now overlap with the process's own start.

Invariants (the informer's, unchanged):

* The subscriber is connected before the LIST is sent, exactly as the informer does it
  itself; the informer then delivers the list and links the event stream to it from the
  list's ``resourceVersion`` (a gap found later is replayed, as always).
* Whatever the LIST raised is raised in the informer's thread, from its first step, as if
  the informer had sent it: a registry that is down is retried with its backoff; any
  other error ends the informer's thread as it would have.
* Nothing is left open: sockets not taken by an informer are closed by :meth:`close`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ecsm_actors.informer.sources import EventSource, RegistryReader, VersionsLike


@dataclass(frozen=True)
class Listed:
    """What the first LIST made: the subscriber and registry client it used, and its
    reply (None when it raised ``error``)."""

    subscriber: EventSource | None
    registry: RegistryReader | None
    result: VersionsLike | None
    error: BaseException | None


class FirstList:
    """The versions-only LIST of ``kind``, sent from its own thread (see the module doc)."""

    def __init__(self, kind: str, *, registry_factory: Callable[[], RegistryReader],
                 subscriber_factory: Callable[[], EventSource]) -> None:
        self.kind = kind
        self._registry_factory = registry_factory
        self._subscriber_factory = subscriber_factory
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._listed: Listed | None = None
        self._taken = False
        self._thread = threading.Thread(target=self._run, name=f"first-list-{kind}",
                                        daemon=True)

    def start(self) -> FirstList:
        self._thread.start()
        return self

    @property
    def done(self) -> bool:
        """Whether the LIST was answered or failed."""
        return self._done.is_set()

    def _run(self) -> None:
        subscriber: EventSource | None = None
        registry: RegistryReader | None = None
        try:
            subscriber = self._subscriber_factory()
            registry = self._registry_factory()
            listed = Listed(subscriber, registry, registry.list_versions(self.kind), None)
        except BaseException as e:  # noqa: BLE001 - raised again in the informer's thread
            listed = Listed(subscriber, registry, None, e)
        with self._lock:
            self._listed = listed
            abandoned = self._taken  # closed meanwhile: nobody will take it
        self._done.set()
        if abandoned:
            _close(listed)

    def take(self, timeout: float | None = None) -> Listed | None:
        """What the LIST made, once it is answered (or failed), for the one informer that
        takes it; None when it is not done within ``timeout``, or was taken or closed."""
        self._done.wait(timeout)
        with self._lock:
            if self._taken or self._listed is None:
                return None
            self._taken = True
            return self._listed

    def close(self) -> None:
        """Close what was made and not taken (now, or when the LIST ends)."""
        with self._lock:
            listed = None if self._taken else self._listed
            self._taken = True
        if listed is not None:
            _close(listed)


def _close(listed: Listed) -> None:
    for part in (listed.registry, listed.subscriber):
        if part is not None:
            part.close()
