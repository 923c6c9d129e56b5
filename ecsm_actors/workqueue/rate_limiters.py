"""Rate limiters of the workqueue, as in client-go's ``default_rate_limiters.go``.

Runs inside every controller process; the workqueue calls a limiter under its own lock
when a key is added rate-limited (a failed or ``requeue=True`` reconcile).

* :class:`ItemExponentialBackoff` — per key: ``base * 2**failures`` with jitter, capped.
* :class:`BucketRateLimiter` — a token bucket shared by every key: however many keys fail
  at once, their retries reach the peer at a bounded rate.
* :class:`MaxOfRateLimiter` — the longest delay of several limiters.
* :func:`controller_rate_limiter` — client-go's ``DefaultControllerRateLimiter``: the
  larger of a key's exponential backoff and its reservation in the shared bucket.

Unlike client-go, a reservation still in the future is given back when its key is
forgotten (the key succeeded another way, e.g. re-enqueued once its peer answered again):
a retry that will not happen must not push every later retry back. After a mass failure
that healed, the bucket's debt is then only what the keys still failing hold, not the
whole outage's.
"""

from __future__ import annotations

import random
import threading
from typing import Any, Protocol

from ecsm_actors.clock import Clock, RealClock


class RateLimiter(Protocol):
    """How long a key waits before its next retry (client-go ``RateLimiter``)."""

    def when(self, key: str) -> float:
        """The delay of the next retry of ``key``; counts one more failure."""
        ...

    def forget(self, key: str) -> None:
        """``key`` succeeded: start its backoff over."""
        ...

    def num_requeues(self, key: str) -> int:
        ...


class ItemExponentialBackoff:
    """Per-key exponential backoff: ``base * 2**failures`` scaled by ``1 ± jitter``, capped.

    The first failure of a key waits about ``base``; :meth:`forget` starts it over. Not
    thread-safe on its own: :class:`WorkQueue` calls it under its lock.
    """

    def __init__(self, base: float, cap: float, jitter: float = 0.0,
                 rng: random.Random | None = None) -> None:
        if base < 0 or cap < base or not 0 <= jitter <= 1:
            raise ValueError("need 0 <= base <= cap and 0 <= jitter <= 1")
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._failures: dict[str, int] = {}

    def when(self, key: str) -> float:
        """The delay of the next retry of ``key``; counts one more failure."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = min(self.cap, self.base * 2.0 ** min(n, 64))
        if self.jitter:
            delay *= self._rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)
        return min(self.cap, delay)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)


class BucketRateLimiter:
    """A token bucket shared by every key (client-go ``BucketRateLimiter`` over
    ``golang.org/x/time/rate``): ``qps`` tokens a second, at most ``burst`` saved up.

    Each :meth:`when` reserves one token, whatever the key: while tokens are left the
    delay is 0, then reservations queue up behind each other, ``1 / qps`` seconds apart
    (the bucket goes into debt). :meth:`forget` gives back the key's reservations that
    are not due yet (``Reservation.Cancel`` of ``x/time/rate``; client-go never cancels):
    the retry they were for will not happen, and the retries that do happen still come
    at most ``burst`` at once and ``qps`` a second after that. The
    bucket starts full. ``qps <= 0`` disables it (every delay 0). Thread-safe (its own
    lock: :meth:`stats` is read by the liveness thread).
    """

    def __init__(self, qps: float, burst: int, *, clock: Clock | None = None) -> None:
        if burst < 1 and qps > 0:
            raise ValueError("burst must be at least 1")
        self.qps = qps
        self.burst = burst
        self._clock: Clock = clock or RealClock()
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._last = self._clock.now()
        self._reservations = 0
        self._delayed = 0
        #: key → due times of its reservations that were delayed (given back by forget)
        self._pending: dict[str, list[float]] = {}

    def _tokens_at(self, now: float) -> float:
        elapsed = max(0.0, now - self._last)
        return min(float(self.burst), self._tokens + elapsed * self.qps)

    def when(self, key: str) -> float:
        if self.qps <= 0:
            return 0.0
        with self._lock:
            now = self._clock.now()
            self._tokens = self._tokens_at(now) - 1.0
            self._last = max(self._last, now)
            self._reservations += 1
            if self._tokens >= 0:
                return 0.0
            self._delayed += 1
            delay = -self._tokens / self.qps
            # only the key's reservations still ahead are kept: a key failing for ever
            # holds a few entries, not one per retry
            self._pending[key] = [d for d in self._pending.get(key, ()) if d > now] \
                + [now + delay]
            return delay

    def forget(self, key: str) -> None:
        """Give back the key's reservations not due yet (one already due stays spent)."""
        with self._lock:
            dues = self._pending.pop(key, None)
            if not dues:
                return
            now = self._clock.now()
            unused = sum(1 for due in dues if due > now)
            if unused:
                self._tokens = min(float(self.burst), self._tokens_at(now) + unused)
                self._last = max(self._last, now)

    def num_requeues(self, key: str) -> int:
        return 0

    def stats(self) -> dict[str, Any]:
        """For ``ecsm-operator stats``: the bucket now. ``tokens`` below 0 is the debt of
        reservations queued ahead; ``wait`` is the delay a retry reserved now would get."""
        with self._lock:
            tokens = self._tokens_at(self._clock.now()) if self.qps > 0 else float(self.burst)
            reservations, delayed = self._reservations, self._delayed
        wait = max(0.0, (1.0 - tokens) / self.qps) if self.qps > 0 else 0.0
        return {"qps": self.qps, "burst": self.burst, "tokens": round(tokens, 2),
                "wait": round(wait, 3), "reservations": reservations, "delayed": delayed}


class MaxOfRateLimiter:
    """The longest delay of several limiters (client-go ``MaxOfRateLimiter``). Every
    limiter is asked on every :meth:`when` (so the bucket always reserves a token)."""

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("at least one rate limiter")
        self.limiters = limiters

    def when(self, key: str) -> float:
        return max([limiter.when(key) for limiter in self.limiters])

    def forget(self, key: str) -> None:
        for limiter in self.limiters:
            limiter.forget(key)

    def num_requeues(self, key: str) -> int:
        return max(limiter.num_requeues(key) for limiter in self.limiters)


def controller_rate_limiter(*, base: float, cap: float, jitter: float, qps: float,
                            burst: int, clock: Clock | None = None,
                            rng: random.Random | None = None
                            ) -> tuple[MaxOfRateLimiter, BucketRateLimiter]:
    """client-go's ``DefaultControllerRateLimiter`` with our settings: a retry waits the
    larger of the key's exponential backoff and its reservation in a bucket shared by all
    keys. Returns the limiter and its bucket (whose :meth:`~BucketRateLimiter.stats` the
    runtime reports)."""
    bucket = BucketRateLimiter(qps, burst, clock=clock)
    return MaxOfRateLimiter(ItemExponentialBackoff(base, cap, jitter, rng), bucket), bucket
