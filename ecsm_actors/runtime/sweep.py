"""Running a controller's periodic sweep (:class:`~ecsm_actors.runtime.types.Sweep`) on its
own workqueue: no thread of its own.

Runs in controller processes. The sweep is the reserved workqueue key :data:`SWEEP_KEY`
(no object key can look like it: object keys are ``namespace/name``), put on the queue
by the first worker once the informer has synced, taken by whichever worker is free,
and put back after ``sweep.interval`` seconds. So a sweep never runs twice at once, and
stops with the queue.

A sweep that raises (its peer is down) is retried with an exponential backoff from
``controller.backoff_base``, capped at the sweep's interval, and reported once: one
WARNING when it starts failing, one INFO when it succeeds again, and the state in
``stats()["sweep"]`` (``failing``, ``failures``, ``last_error``) — not a line per key
and not a line per retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ecsm_actors.runtime.types import Sweep
from ecsm_actors.workqueue import WorkQueue

logger = logging.getLogger(__name__)

#: The workqueue key of the sweep.
SWEEP_KEY = "\x00sweep"


class SweepRunner:
    """One sweep run per turn of :data:`SWEEP_KEY`; see the module doc."""

    def __init__(self, name: str, sweep: Sweep, queue: WorkQueue, keys: Callable[[], list[str]],
                 *, backoff_base: float) -> None:
        self._name = name
        self._sweep = sweep
        self._queue = queue
        self._keys = keys
        self._base = max(backoff_base, 0.001)
        self._failures = 0
        self._last_error = ""
        self._counters = {"sweeps": 0, "sweep_failures": 0, "enqueued": 0}
        self._last_duration = 0.0

    def schedule(self, delay: float | None = None) -> None:
        """Put the sweep on the queue after ``delay`` (default: its interval)."""
        self._queue.add_after(SWEEP_KEY, self._sweep.interval if delay is None else delay)

    def run(self) -> None:
        """One sweep, then the next one scheduled (sooner after a failure)."""
        start = time.perf_counter()
        try:
            enqueued = self._sweep.sweep(self._keys(), self._queue.add)
        except Exception as e:  # noqa: BLE001 - a sweep failure is retried, never fatal
            self._failed(e)
            return
        finally:
            self._last_duration = time.perf_counter() - start
        self._counters["sweeps"] += 1
        self._counters["enqueued"] += enqueued
        if self._failures:
            logger.info("%s: sweep succeeded again after %d failures", self._name,
                        self._failures)
        self._failures, self._last_error = 0, ""
        if enqueued:
            logger.info("%s: sweep enqueued %d key(s) that drifted", self._name, enqueued)
        self.schedule()

    def _failed(self, e: Exception) -> None:
        self._failures += 1
        self._counters["sweep_failures"] += 1
        self._last_error = f"{type(e).__name__}: {e}"[:300]
        delay = min(self._sweep.interval, self._base * 2 ** min(self._failures - 1, 30))
        if self._failures == 1:
            logger.warning("%s: sweep failing, retrying with backoff: %s", self._name,
                           self._last_error)
        else:
            logger.debug("%s: sweep failed again (%d): %s; next in %.1fs", self._name,
                         self._failures, self._last_error, delay)
        self.schedule(delay)

    def stats(self) -> dict[str, Any]:
        return {**self._counters, "failing": self._failures > 0, "failures": self._failures,
                "last_error": self._last_error,
                "last_duration_seconds": round(self._last_duration, 6)}
