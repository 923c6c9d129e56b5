"""What the HPA knows about each instance of its target: readiness and usage figures.

Runs in the hpa-controller process. Pure: the controller passes in the containers it read
from ECSM (``GET /container/service``) and the time it read them.

An instance is *ready* when its container ``status`` is ``running`` (the only value the
ECSM contract evidences as "up"). A ready instance whose figure is absent, not a number,
or older than ``metric_max_age`` has a *missing* metric for that resource; the algorithm
then treats it the way Kubernetes treats a Pod without metrics. Utilization is in
percent: CPU is ``cpuUsage.total`` as ECSM reports it; memory is
``memoryUsage / memoryLimit × 100`` (no limit → missing).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ecsm_actors.controllers.hpa.spec import ResourceName

READY_STATUS = "running"


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
        return 100.0 * self.memory_usage / self.memory_limit


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
        cpu_percent=_number(cpu_total),
        memory_usage=_number(_attr(container, raw, "memory_usage", "memoryUsage")),
        memory_limit=_number(_attr(container, raw, "memory_limit", "memoryLimit")),
        timestamp=timestamp,
    )


def _attr(obj: Any, raw: dict[str, Any], attr: str, wire: str) -> Any:
    if wire in raw:
        return raw[wire]
    return getattr(obj, attr, None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or value < 0:
        return None
    return float(value)
