"""The contract between the controller runtime and a controller: Result, Reconciler,
ReconcileContext, ControllerSpec.

Runs in controller processes. A reconciler is called by one worker thread at a time per
key (the workqueue guarantees it), reads the object fresh through ``ctx.registry`` and
returns a :class:`Result`. It writes status only through :meth:`ReconcileContext.update_status`,
so that the runtime can ignore the echo of that write on the event stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ecsm_actors.config import Config
from ecsm_actors.informer import object_key_of, resource_version_of
from ecsm_actors.runtime.events import NO_RECORDER, NoRecorder

if TYPE_CHECKING:
    from ecsm_actors.runtime.echo import EchoFilter
    from ecsm_actors.runtime.events import EventRecorder
    from ecsm_actors.workqueue import WorkQueue


@dataclass(frozen=True, kw_only=True)
class Result:
    """What a reconcile asks for next: nothing (done), a retry with backoff
    (``requeue=True``), or another look after ``requeue_after`` seconds."""

    requeue: bool = False
    requeue_after: float | None = None


class ReconcileContext:
    """What a reconciler gets besides the key: this worker's registry client, the kind,
    the configuration, and the status writer that suppresses its own echo."""

    def __init__(self, *, registry: Any, kind: str, config: Config, echo: EchoFilter,
                 queue: WorkQueue, worker: int = 0, recorder: EventRecorder | None = None
                 ) -> None:
        self.registry = registry
        self.kind = kind
        self.config = config
        self.worker = worker
        #: Where the reconciler says what it did (``recorder.normal(involved_of(obj),
        #: reason, message)``): never blocks, never raises.
        self.recorder: EventRecorder | NoRecorder = recorder or NO_RECORDER
        self._echo = echo
        self._queue = queue

    def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        """``UPDATE_STATUS`` through the runtime: the event carrying the resourceVersion
        this write produced does not enqueue the key again. Raises what the registry
        raises (Conflict on a stale ``metadata.resourceVersion``, NotFound, ...)."""
        if obj.get("kind", self.kind) != self.kind:
            return self.registry.update_status(obj)
        key = object_key_of(obj)
        self._echo.begin(key)
        written: int | None = None
        try:
            result: dict[str, Any] = self.registry.update_status(obj)
            written = resource_version_of(result)
            return result
        finally:
            if self._echo.end(key, written):
                self._queue.add(key)


class Reconciler(Protocol):
    def reconcile(self, ctx: ReconcileContext, key: str) -> Result:
        """Make reality match the object ``key`` (``namespace/name``) of ``ctx.kind``."""
        ...


@dataclass(frozen=True, kw_only=True)
class ControllerSpec:
    """What ``controllers.<name>:build(cfg)`` returns."""

    name: str
    kind: str
    reconciler: Reconciler
    workers: int = 2
    #: A periodic check over every key at once (drift found in bulk), run by a worker
    #: every ``sweep.interval`` seconds; None: no sweep.
    sweep: Sweep | None = None


class Sweep(Protocol):
    """A periodic pass over the whole cache (see :mod:`ecsm_actors.runtime.sweep`)."""

    #: Seconds between two sweeps that succeeded.
    interval: float

    def sweep(self, keys: Sequence[str], enqueue: Callable[[str], None]) -> int:
        """Look at the world once, ``enqueue`` the keys of ``keys`` (the informer's cache)
        that need a reconcile, return how many; raise when the world could not be seen."""
        ...
