"""What the HPA knows about each instance of its target: readiness and usage figures.

Runs in the hpa-controller process. Pure: the controller passes in the containers it read
from ECSM (``GET /container/service``) and the time it read them.

An instance is *ready* when its container ``status`` is ``running`` (the only value the
ECSM contract evidences as "up"). A ready instance whose figure is absent, not a number,
not finite, negative, absurd (a CPU above :data:`MAX_CPU_PERCENT`, bytes above
:data:`MAX_BYTES`, a utilization above :data:`MAX_UTILIZATION`) or older than
``metric_max_age`` has a *missing* metric for that resource; the algorithm then treats it
the way Kubernetes treats a Pod without metrics — conservatively, never as a reason to
scale by itself. Utilization is in percent: CPU is ``cpuUsage.total`` as ECSM reports it;
memory is ``memoryUsage / memoryLimit × 100`` (no limit → missing).

For the replica calculator an instance gives its figures as whole numbers, usage and
limit (:meth:`InstanceSample.usage`), so that utilization is Σ usage / Σ limit as in
Kubernetes: memory in bytes over ``memoryLimit``; CPU in hundredths of a percent over
:data:`CPU_LIMIT` (one core: ECSM sets no CPU limit, a CPU target is a percentage of one
core, so every instance weighs the same).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ecsm_actors.controllers.hpa.spec import ResourceName

READY_STATUS = "running"
#: CPU figures above this (percent; 100 per core) are not believed: 10,000 cores.
MAX_CPU_PERCENT = 1e6
#: Memory figures above this (bytes) are not believed: 8 EiB.
MAX_BYTES = float(1 << 63)
#: A utilization above this (percent) is not believed (a limit of a few bytes...).
MAX_UTILIZATION = 1e6
#: The CPU "limit" of every instance: one core, in hundredths of a percent.
CPU_LIMIT = 10_000


@dataclass(frozen=True, kw_only=True)
class InstanceSample:
    """One container of the target as seen at ``timestamp`` (epoch seconds)."""

    name: str
    ready: bool
    cpu_percent: float | None = None
    memory_usage: float | None = None
    memory_limit: float | None = None
    timestamp: float | None = None

    def utilization(self, resource: ResourceName, *, now: float, max_age: float) -> float | None:
        """Utilization in percent, or None when the metric is missing or stale."""
        if self.timestamp is not None and now - self.timestamp > max_age:
            return None
        if resource is ResourceName.CPU:
            return self.cpu_percent
        if self.memory_usage is None or not self.memory_limit:
            return None
        value = 100.0 * self.memory_usage / self.memory_limit
        return value if value <= MAX_UTILIZATION else None

    def limit(self, resource: ResourceName) -> int | None:
        """The weight of this instance: its limit in the units of :meth:`usage`, or None
        when ECSM reports none (memory without a limit)."""
        if resource is ResourceName.CPU:
            return CPU_LIMIT
        if self.memory_limit is None or self.memory_limit < 1:
            return None
        return int(self.memory_limit)

    def usage(self, resource: ResourceName, *, now: float, max_age: float
              ) -> tuple[int, int] | None:
        """``(usage, limit)`` as whole numbers (see the module docstring), or None when the
        metric is missing, stale or unbelievable."""
        if self.utilization(resource, now=now, max_age=max_age) is None:
            return None
        limit = self.limit(resource)
        if limit is None:
            return None
        if resource is ResourceName.CPU:
            assert self.cpu_percent is not None
            return round(self.cpu_percent * 100), limit
        assert self.memory_usage is not None
        return int(self.memory_usage), limit


def samples_from_containers(containers: Iterable[Any], *, timestamp: float) -> list[InstanceSample]:
    """Convert ECSM ContainerInfo objects (typed, or raw wire dicts) into samples."""
    return [_sample(c, timestamp) for c in containers]


def _sample(container: Any, timestamp: float) -> InstanceSample:
    raw = container if isinstance(container, dict) else getattr(container, "raw", None)
    if not isinstance(raw, dict):
        raw = {}
    status = _attr(container, raw, "status", "status")
    cpu = _attr(container, raw, "cpu_usage", "cpuUsage")
    cpu_total = cpu.get("total") if isinstance(cpu, dict) else getattr(cpu, "total", None)
    return InstanceSample(
        name=str(_attr(container, raw, "name", "name") or ""),
        ready=status == READY_STATUS,
        cpu_percent=_number(cpu_total, MAX_CPU_PERCENT),
        memory_usage=_number(_attr(container, raw, "memory_usage", "memoryUsage"), MAX_BYTES),
        memory_limit=_number(_attr(container, raw, "memory_limit", "memoryLimit"), MAX_BYTES),
        timestamp=timestamp,
    )


def _attr(obj: Any, raw: dict[str, Any], attr: str, wire: str) -> Any:
    if wire in raw:
        return raw[wire]
    return getattr(obj, attr, None)


def _number(value: Any, most: float) -> float | None:
    """A believable figure, or None (missing): finite, between 0 and ``most``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value <= most:  # False for NaN too; compared before float(): no overflow
        return None
    return float(value)
