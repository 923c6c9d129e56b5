"""A fixed-bucket histogram kept as counts only: cheap enough for every request.

Runs wherever a process counts something for ``ecsm-operator metrics`` (the registry's
batch sizes; the controllers keep their own reconcile latency histogram in
:mod:`ecsm_actors.runtime.metrics`, of the same shape). :meth:`Histogram.observe` is one
bisect and two additions; :meth:`Histogram.to_dict` gives the shape the supervisor's
exposition turns into a Prometheus histogram: ``le`` (upper bounds, then ``"+Inf"``),
cumulative ``counts``, ``sum`` and ``count``. Not locked: the owner observes from one
thread; a reader in another thread may see a sum one observation ahead of the counts.
"""

from __future__ import annotations

import bisect
from typing import Any

#: Upper bounds for sizes (writes per commit, items per batch).
SIZE_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)


class Histogram:
    def __init__(self, buckets: tuple[float, ...] = SIZE_BUCKETS) -> None:
        self.buckets = buckets
        self._counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self._sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self.buckets, value)] += 1
        self._sum += value

    def to_dict(self) -> dict[str, Any]:
        cumulative, total = [], 0
        for c in list(self._counts):
            total += c
            cumulative.append(total)
        return {"le": [*self.buckets, "+Inf"], "counts": cumulative, "sum": self._sum,
                "count": total}
