"""The work queue itself: client-go semantics, plus event-before-resync priority.

Runs inside every controller process, shared by the informer thread (producer) and the
worker threads (consumers). Invariants, as in client-go's ``workqueue``:

* A key is never handed to two workers at once (``processing`` set).
* A key added while it is processing is not handed out again until :meth:`WorkQueue.done`;
  then it runs exactly once more (``dirty`` set).
* Duplicates collapse while waiting: N adds of a waiting key → one get.
* :meth:`WorkQueue.add_after` parks a key in a delay heap; a second delayed add of the same
  key keeps the earlier deadline. :meth:`WorkQueue.add_rate_limited` delays a key by what
  its rate limiter (:mod:`.rate_limiters`) says; :meth:`WorkQueue.forget` resets the
  key's backoff and cancels its retry still waiting (the key succeeded meanwhile, added
  another way: that retry would only be one reconcile too many, and its place in the
  shared retry budget is given back). A plain :meth:`WorkQueue.add` is never throttled.
* Two FIFO levels: keys added by events are served before keys that only came from a
  periodic resync; a waiting resync key is promoted when an event adds it.
* :meth:`WorkQueue.shut_down`: waiting and delayed keys are dropped (a successor relists
  them), so ``len`` is 0 from then on; every ``get`` returns ``shutdown`` and adds are
  ignored. :meth:`WorkQueue.shut_down_with_drain` also waits, up to a grace period, for
  the keys in flight to be ``done``; as in client-go, a plain :meth:`WorkQueue.shut_down`
  called meanwhile (from another thread) cuts that wait short.

No timer thread and no polling: delayed keys become ready lazily inside ``get``/``len``,
and a blocked ``get`` sleeps on a condition variable exactly until the next deadline,
through the injectable :class:`~ecsm_actors.clock.Clock`.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import deque
from collections.abc import Iterable
from enum import IntEnum

from ecsm_actors.clock import Clock, RealClock
from ecsm_actors.workqueue.rate_limiters import ItemExponentialBackoff, RateLimiter


class Priority(IntEnum):
    """Served in ascending order."""

    EVENT = 0
    RESYNC = 1


class WorkQueue:
    """A rate-limiting, delaying, deduplicating work queue of string keys."""

    def __init__(self, *, clock: Clock | None = None,
                 rate_limiter: RateLimiter | None = None) -> None:
        self._clock: Clock = clock or RealClock()
        self._rate_limiter: RateLimiter = rate_limiter or ItemExponentialBackoff(0.005, 1000.0)
        lock = threading.RLock()  # re-entrant: FakeClock callbacks run inside waits
        self._ready = threading.Condition(lock)
        self._drained = threading.Condition(lock)
        self._tokens = itertools.count()
        # dirty: key → (priority, token) of its one valid entry in a FIFO level. Stale
        # entries (promoted keys) stay in the deques and are skipped when popped.
        self._dirty: dict[str, tuple[Priority, int]] = {}
        self._levels: dict[Priority, deque[tuple[str, int]]] = {p: deque() for p in Priority}
        self._waiting = 0  # dirty keys not processing: what get() can hand out now
        self._processing: dict[str, float] = {}  # key → when it was handed out
        self._delayed: list[tuple[float, int, str]] = []
        self._ready_at: dict[str, float] = {}  # key → its one valid deadline in _delayed
        self._retry_at: dict[str, float] = {}  # key → the deadline add_rate_limited set
        self._shutting_down = False
        self._drain = False  # a shut_down_with_drain is waiting (a shut_down clears it)

    # -- adding -------------------------------------------------------------------------

    def add(self, key: str, *, resync: bool = False) -> None:
        """Mark ``key`` as needing processing (``resync=True``: low priority)."""
        with self._ready:
            self._add_locked(key, Priority.RESYNC if resync else Priority.EVENT)

    def add_all(self, keys: Iterable[str]) -> None:
        """:meth:`add` of every key (event priority) under one lock, the waiting getters
        woken once (an informer's first list: thousands of keys)."""
        with self._ready:
            if not self._dirty and not self._processing and not self._shutting_down:
                added = self._add_all_to_empty(keys)
            else:
                added = sum(self._add_locked(key, Priority.EVENT, notify=False)
                            for key in keys)
            if added:
                self._ready.notify(added)

    def _add_all_to_empty(self, keys: Iterable[str]) -> int:
        """:meth:`add_all` into a queue with no key waiting or processing, in bulk (no
        call per key: a restarted controller's first list of 1,000 keys): what
        :meth:`_add_locked` would do for each, in order; the number added."""
        unique = list(dict.fromkeys(keys))
        n = len(unique)
        first = next(self._tokens)
        self._tokens = itertools.count(first + n)
        tokens = range(first, first + n)
        self._dirty = dict(zip(unique, zip(itertools.repeat(Priority.EVENT, n), tokens,
                                           strict=True), strict=True))
        self._levels[Priority.EVENT].extend(zip(unique, tokens, strict=True))
        self._waiting += n
        return n

    def _add_locked(self, key: str, priority: Priority, *, notify: bool = True) -> bool:
        """Whether ``key`` became waiting (a getter was notified, unless ``notify`` is
        False)."""
        if self._shutting_down:
            return False
        current = self._dirty.get(key)
        if current is not None:
            if priority < current[0]:  # an event promotes a waiting resync key
                token = next(self._tokens)
                self._dirty[key] = (priority, token)
                if key not in self._processing:
                    self._levels[priority].append((key, token))
            return False
        token = next(self._tokens)
        self._dirty[key] = (priority, token)
        if key in self._processing:
            return False  # re-queued by done()
        self._levels[priority].append((key, token))
        self._waiting += 1
        if notify:
            self._ready.notify()
        return True

    def add_after(self, key: str, delay: float) -> None:
        """Add ``key`` once ``delay`` seconds have passed; an earlier deadline wins."""
        with self._ready:
            self._add_after_locked(key, delay)

    def _add_after_locked(self, key: str, delay: float) -> float | None:
        """The deadline set for ``key``, or None (added at once, kept an earlier one, or
        shut down)."""
        if self._shutting_down:
            return None
        if delay <= 0:
            self._add_locked(key, Priority.EVENT)
            return None
        at = self._clock.now() + delay
        current = self._ready_at.get(key)
        if current is not None and current <= at:
            return None
        self._ready_at[key] = at
        heapq.heappush(self._delayed, (at, next(self._tokens), key))
        if self._delayed[0][2] == key:
            self._ready.notify_all()  # blocked getters recompute their wake-up time
        return at

    def add_rate_limited(self, key: str) -> None:
        """Add ``key`` after its rate limiter's delay, and count one more failure."""
        with self._ready:
            at = self._add_after_locked(key, self._rate_limiter.when(key))
            if at is not None:
                self._retry_at[key] = at

    def forget(self, key: str) -> None:
        """Reset the backoff of ``key`` and cancel its retry still waiting (call it when
        processing succeeded)."""
        with self._ready:
            at = self._retry_at.pop(key, None)
            if at is not None and self._ready_at.get(key) == at:
                del self._ready_at[key]  # its heap entry is now stale: skipped when due
            self._rate_limiter.forget(key)

    def num_requeues(self, key: str) -> int:
        with self._ready:
            return self._rate_limiter.num_requeues(key)

    # -- consuming ----------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> tuple[str | None, bool]:
        """Block until a key is ready: ``(key, False)``; ``(None, True)`` once shut down;
        ``(None, False)`` when ``timeout`` seconds passed first. The caller must call
        :meth:`done` with the key."""
        with self._ready:
            deadline = None if timeout is None else self._clock.now() + timeout
            while True:
                if self._shutting_down:
                    return None, True
                now = self._clock.now()
                self._promote_due(now)
                key = self._pop_locked()
                if key is not None:
                    self._processing[key] = now
                    return key, False
                wait = self._delayed[0][0] - now if self._delayed else None
                if deadline is not None:
                    remaining = deadline - now
                    if remaining <= 0:
                        return None, False
                    wait = remaining if wait is None else min(wait, remaining)
                self._clock.wait(self._ready, wait)

    def _pop_locked(self) -> str | None:
        for priority, level in self._levels.items():
            while level:
                key, token = level.popleft()
                if self._dirty.get(key) == (priority, token):
                    del self._dirty[key]
                    self._waiting -= 1
                    return key
        return None

    def _promote_due(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            at, _, key = heapq.heappop(self._delayed)
            if self._ready_at.get(key) == at:
                del self._ready_at[key]
                self._retry_at.pop(key, None)
                self._add_locked(key, Priority.EVENT)

    def done(self, key: str) -> None:
        """Processing of ``key`` finished; if it was added meanwhile, it is queued again."""
        with self._ready:
            if self._processing.pop(key, None) is None:
                return  # not handed out (or done twice): nothing to re-queue
            entry = self._dirty.get(key)
            if entry is not None and not self._shutting_down:
                self._levels[entry[0]].append((key, entry[1]))
                self._waiting += 1
                self._ready.notify()
            if not self._processing:
                self._drained.notify_all()

    # -- introspection ------------------------------------------------------------------

    def __len__(self) -> int:
        """Keys ready to be handed out now (not counting delayed or in-flight keys)."""
        with self._ready:
            self._promote_due(self._clock.now())
            return self._waiting

    def delayed_len(self) -> int:
        with self._ready:
            return len(self._ready_at)

    def processing_len(self) -> int:
        with self._ready:
            return len(self._processing)

    def oldest_processing_age(self) -> float:
        """Seconds since the oldest in-flight key was handed out (0 when idle)."""
        with self._ready:
            if not self._processing:
                return 0.0
            return max(0.0, self._clock.now() - min(self._processing.values()))

    def shutting_down(self) -> bool:
        with self._ready:
            return self._shutting_down

    # -- shutdown -----------------------------------------------------------------------

    def shut_down(self) -> None:
        """Stop handing out keys, drop the waiting and delayed ones, ignore new adds; in-flight
        keys may still be done. Cuts short a :meth:`shut_down_with_drain` in progress."""
        with self._ready:
            self._drain = False
            self._shut_down_locked()

    def _shut_down_locked(self) -> None:
        self._shutting_down = True
        self._dirty.clear()
        for level in self._levels.values():
            level.clear()
        self._waiting = 0
        self._delayed.clear()
        self._ready_at.clear()
        self._retry_at.clear()
        self._ready.notify_all()
        self._drained.notify_all()

    def shut_down_with_drain(self, grace: float) -> bool:
        """Shut down, then wait up to ``grace`` seconds for in-flight keys to be done, or
        until a plain :meth:`shut_down` ends the wait. Return whether everything in flight
        finished."""
        with self._ready:
            self._drain = True
            self._shut_down_locked()
            deadline = self._clock.now() + grace
            while self._processing and self._drain:
                remaining = deadline - self._clock.now()
                if remaining <= 0:
                    break
                self._clock.wait(self._drained, remaining)
            self._drain = False
            return not self._processing
