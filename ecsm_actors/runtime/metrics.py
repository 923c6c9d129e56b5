"""Counters of one controller process: reconciles, errors, requeues, terminal failures and
a reconcile latency histogram with fixed buckets.

Runs in controller processes; updated by worker threads, read by the liveness reporter
(``stats`` in every report, shown by ``ecsm-operator stats``). Thread-safe.
"""

from __future__ import annotations

import bisect
import threading
import time
from typing import Any

#: Upper bounds of the latency buckets, seconds (Prometheus-style cumulative ``le``).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)


class LatencyHistogram:
    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self._counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self._sum += seconds

    def to_dict(self) -> dict[str, Any]:
        cumulative, total = [], 0
        for c in self._counts:
            total += c
            cumulative.append(total)
        return {"le": [*self.buckets, "+Inf"], "counts": cumulative, "sum": round(self._sum, 6),
                "count": total}


class ControllerMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters = {"reconciles": 0, "errors": 0, "requeues": 0, "terminal": 0,
                         "not_found": 0, "failure_conditions": 0}
        self.latency = LatencyHistogram()
        self.last_completed = 0.0  # wall time of the last finished reconcile

    def observe(self, seconds: float, **increments: int) -> None:
        with self._lock:
            self.counters["reconciles"] += 1
            for name, n in increments.items():
                self.counters[name] += n
            self.latency.observe(seconds)
            self.last_completed = time.time()

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {**self.counters, "latency_seconds": self.latency.to_dict(),
                    "last_completed": self.last_completed}
