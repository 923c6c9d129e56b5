"""Process lifecycle shared by every child: parent-death watch and stop signals.

Runs in every process started by the supervisor. When ``ECSM_ACTORS_PARENT_PID`` is set,
the process asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``) and,
as a fallback for the race where the parent died before that call, checks the parent pid
once right after (and :func:`exit_if_orphaned` again at every liveness report). So a
supervisor killed by ``kill -9`` leaves no orphan behind. A child forked by the zygote is
the child of the zygote's short-lived intermediate process until the supervisor adopts
it (:func:`adopted_from`): :func:`die_with_parent` waits for the adoption first (the
signal would otherwise fire when the intermediate exits), so a process main that calls it
after its setup overlaps that wait with useful work.

:class:`StopFlag` turns SIGTERM/SIGINT into an event the process main loop waits on. A
SIGTERM that comes from the parent's death is different: the whole instance is going
away, nobody waits for a graceful drain (and the registry a drain would wait on is dying
too), so the process exits at once — every process is built to survive ``kill -9``.

:func:`startup` wraps a process's imports and setup: they allocate only long-lived objects
(modules, classes, settings), so the cyclic GC is paused meanwhile (a few percent of a
controller's start) and what they built is then frozen out of every later collection.
:class:`IdleCollector` moves a serving loop's collections to its idle moments.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

logger = logging.getLogger(__name__)

PARENT_PID_ENV = "ECSM_ACTORS_PARENT_PID"
_PR_SET_PDEATHSIG = 1


#: Longest wait for the supervisor's adoption of a child forked by the zygote (the
#: intermediate process exits right after the fork: milliseconds).
ADOPTION_TIMEOUT = 5.0
#: In a child forked by the zygote, until its adoption: the intermediate's pid.
_adopting_parent: int | None = None


def adopted_from(intermediate: int) -> None:
    """This process was forked by ``intermediate``, which exits at once; until then it is
    not the supervisor's child (see :func:`die_with_parent`)."""
    global _adopting_parent
    _adopting_parent = intermediate


def _wait_adopted() -> None:
    global _adopting_parent
    if _adopting_parent is None:
        return
    deadline = time.monotonic() + ADOPTION_TIMEOUT
    while os.getppid() == _adopting_parent and time.monotonic() < deadline:
        time.sleep(0.0001)
    _adopting_parent = None  # adopted, or never will be: exit_if_orphaned decides


def die_with_parent() -> None:
    """Arrange SIGTERM on parent death if we were started by the supervisor."""
    expected = os.environ.get(PARENT_PID_ENV)
    if not expected:
        return
    _wait_adopted()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent watch below still works
        logger.debug("prctl(PR_SET_PDEATHSIG) unavailable")
    exit_if_orphaned()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run a burst of allocations (imports, decoding thousands of objects) without the
    cyclic GC scanning every new container; none of them forms a cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def gc_paused_long_lived() -> Iterator[None]:
    """As :func:`gc_paused`, for a burst whose containers are all reachable from its
    result when it ends (a LIST of 10,000 objects decoded: 100,000 tracked containers):
    they join the oldest generation unscanned, as survivors of the young collections
    would, instead of being scanned as young objects the moment the GC is enabled again
    (45-90 ms, more than a third of the decode; all of them reachable, nothing to find).

    The young generations are collected first (what was young before the burst gets its
    young scan), then the burst's objects are moved by ``gc.freeze()`` and
    ``gc.unfreeze()`` (two list merges); the full collections scan them as any long-lived
    data, and collect them once they are garbage. Nothing is frozen: in a process whose
    heap was frozen at startup (``gc.get_freeze_count() > 0``), the unfreeze would undo
    that freeze, so there, and when the GC is disabled already, this is :func:`gc_paused`
    (the young scan follows)."""
    if not gc.isenabled() or gc.get_freeze_count():
        with gc_paused():
            yield
        return
    gc.collect(1)
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        gc.enable()


@contextmanager
def startup() -> Iterator[None]:
    """Run imports and setup without the cyclic GC, then freeze what they allocated."""
    with gc_paused():
        yield
    gc.freeze()


#: In a process whose collections run at its idle moments (:class:`IdleCollector`), the
#: containers allocated (net) beyond which a young collection runs wherever an allocation
#: falls: in a burst with no idle moment, and the bound on the cyclic garbage it leaves.
BUSY_YOUNG_THRESHOLD = 10_000


class IdleCollector:
    """The cyclic GC's collections of a serving loop moved to its idle moments
    (:meth:`collect`, called between requests), off the requests' way.

    Made once the process's long-lived heap is frozen: the young threshold is raised to
    ``busy``, so the interpreter collects only in a burst that leaves the loop no idle
    moment, and :meth:`collect` runs the collection the interpreter's own thresholds say
    is due (the young generation, the middle one every ``threshold1`` of them, a full one
    every ``threshold2`` of those: a small heap, the rest being frozen). In the registry
    no request leaves cyclic garbage (each kind checked, malformed ones included), so
    the young collections find nothing, and the young count a request adds is the
    allocator's churn, not survivors: each collection scans the few containers alive."""

    def __init__(self, busy: int = BUSY_YOUNG_THRESHOLD) -> None:
        self.thresholds = gc.get_threshold()
        gc.set_threshold(max(busy, self.thresholds[0]), *self.thresholds[1:])

    def collect(self) -> None:
        """Collect now what the interpreter's thresholds say is due, if anything."""
        young, middle, old = gc.get_count()
        t0, t1, t2 = self.thresholds
        if young <= t0 or not gc.isenabled():
            return
        gc.collect(2 if old > t2 else 1 if middle > t1 else 0)

    def close(self) -> None:
        """The interpreter's own thresholds again."""
        gc.set_threshold(*self.thresholds)


def exit_if_orphaned() -> None:
    """Exit at once if the supervisor that started this process is gone."""
    expected = os.environ.get(PARENT_PID_ENV)
    parent = os.getppid()
    if expected and parent != int(expected) and parent != _adopting_parent:
        logger.warning("parent %s is gone; exiting", expected)
        logging.shutdown()
        os._exit(0)


class StopFlag:
    """A threading.Event set by SIGTERM or SIGINT (install from the main thread)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None

    def install(self) -> StopFlag:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        exit_if_orphaned()
        self.signum = signum
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.event.wait(timeout)

    def set(self) -> None:
        self.event.set()
