"""Time, injectable: the real monotonic clock and a fake one for unit tests.

Runs in every controller process (workqueue, informer, runtime). Code that waits for time
to pass never calls ``time.sleep`` or ``Condition.wait`` directly: it asks its
:class:`Clock`, so unit tests substitute :class:`FakeClock` and run without sleeping.

Invariants: ``now()`` never goes backwards. :meth:`Clock.wait` is called with the
condition's lock held and returns with it held, after a notification or the timeout
(spurious returns are allowed: callers re-check their predicate).

:class:`FakeClock` is single-threaded by design: a wait advances fake time instead of
blocking, firing callbacks scheduled with :meth:`FakeClock.call_later` on the way (a
test uses them to play "another thread calls done() two seconds later"). A wait with no
timeout and nothing scheduled would block forever, so it raises instead of hanging.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def wait(self, cond: threading.Condition, timeout: float | None) -> None:
        """Wait on ``cond`` (lock held) for a notification or ``timeout`` seconds."""
        ...

    def sleep(self, stop: threading.Event, seconds: float) -> bool:
        """Wait ``seconds`` or until ``stop`` is set; return whether it is set."""
        ...


class RealClock:
    """``time.monotonic`` and real blocking waits."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, cond: threading.Condition, timeout: float | None) -> None:
        cond.wait(timeout)

    def sleep(self, stop: threading.Event, seconds: float) -> bool:
        return stop.wait(max(0.0, seconds))


class FakeClock:
    """Deterministic time for unit tests: waits advance it instead of blocking."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._seq = itertools.count()
        self._scheduled: list[tuple[float, int, Callable[[], None]]] = []

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` when fake time reaches ``now + delay`` (during a wait or advance)."""
        heapq.heappush(self._scheduled, (self._now + delay, next(self._seq), fn))

    def advance(self, seconds: float) -> None:
        """Move time forward, running every callback that falls due on the way."""
        target = self._now + seconds
        while self._scheduled and self._scheduled[0][0] <= target:
            when, _, fn = heapq.heappop(self._scheduled)
            self._now = max(self._now, when)
            fn()
        self._now = max(self._now, target)

    def wait(self, cond: threading.Condition, timeout: float | None) -> None:
        if self._scheduled and (timeout is None or self._scheduled[0][0] <= self._now + timeout):
            # Something "happens" before the timeout: wake up as if notified.
            self.advance(self._scheduled[0][0] - self._now)
            return
        if timeout is None:
            raise RuntimeError("FakeClock.wait without timeout and nothing scheduled: "
                               "this would block forever")
        self.advance(timeout)

    def sleep(self, stop: threading.Event, seconds: float) -> bool:
        if not stop.is_set():
            self.advance(max(0.0, seconds))
        return stop.is_set()
