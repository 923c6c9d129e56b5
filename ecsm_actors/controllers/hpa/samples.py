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

CPU of starting instances (Kubernetes' ``groupPods``, CPU only): ECSM has no readiness
probe, so a ``running`` container is Ready from its latest start, and the Pod's
``startTime`` is the container's first start. ECSM reports the latest start as
``uptime`` (seconds, read against the time of the answer, so clock skew cancels) or
``startedTime``, and the creation as ``createdTime`` (its distance to ``startedTime``
places it on our clock; absent: the latest start). Within
``hpa.cpu_initialization_period`` of the first start, a CPU sample counts only if it was
taken a full metric window after the latest start — ECSM reports no window, so
``hpa.initial_readiness_delay`` stands for it; later, a running instance's sample always
counts (a restart then, as in Kubernetes, is not start-up any more). An instance without
a start time has unready CPU (Kubernetes: no ``startTime`` → unready). Memory samples of
running instances are always used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ecsm_actors.controllers.hpa.history import parse_time
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
#: An uptime above this (seconds, a century) is not believed.
MAX_UPTIME = 100 * 365 * 86400.0


@dataclass(frozen=True, kw_only=True)
class CpuStartup:
    """Kubernetes' rules for the CPU of starting instances (``hpa.*`` settings)."""

    #: ``--horizontal-pod-autoscaler-cpu-initialization-period``, seconds.
    initialization_period: float = 300.0
    #: ``--horizontal-pod-autoscaler-initial-readiness-delay``, seconds; here also the
    #: metric window a sample must cover after the latest start.
    readiness_delay: float = 30.0


@dataclass(frozen=True, kw_only=True)
class InstanceSample:
    """One container of the target as seen at ``timestamp`` (epoch seconds)."""

    name: str
    ready: bool
    cpu_percent: float | None = None
    memory_usage: float | None = None
    memory_limit: float | None = None
    timestamp: float | None = None
    #: Latest start of the container (epoch seconds, our clock); None: unknown.
    started: float | None = None
    #: First start (creation) of the container; None: the latest start.
    created: float | None = None

    def cpu_ready(self, now: float, rules: CpuStartup) -> bool:
        """Whether this running instance's CPU sample counts (see the module docstring)."""
        if self.started is None:
            return False
        first = self.created if self.created is not None else self.started
        if first + rules.initialization_period > now:
            sampled = self.timestamp if self.timestamp is not None else now
            return sampled >= self.started + rules.readiness_delay
        return True

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
    started, created = _start_times(container, raw, timestamp)
    return InstanceSample(
        name=str(_attr(container, raw, "name", "name") or ""),
        ready=status == READY_STATUS,
        cpu_percent=_number(cpu_total, MAX_CPU_PERCENT),
        memory_usage=_number(_attr(container, raw, "memory_usage", "memoryUsage"), MAX_BYTES),
        memory_limit=_number(_attr(container, raw, "memory_limit", "memoryLimit"), MAX_BYTES),
        timestamp=timestamp,
        started=started,
        created=created,
    )


def _start_times(container: Any, raw: dict[str, Any], timestamp: float
                 ) -> tuple[float | None, float | None]:
    """(latest start, first start) on our clock, from ``uptime``/``startedTime`` and
    ``createdTime`` (ECSM's clock: only their difference is used with ``uptime``)."""
    uptime = _number(_attr(container, raw, "uptime", "uptime"), MAX_UPTIME)
    started_at = parse_time(_attr(container, raw, "started_time", "startedTime"))
    created_at = parse_time(_attr(container, raw, "created_time", "createdTime"))
    if uptime is not None:
        started = timestamp - uptime
    elif started_at is not None:
        started = min(started_at, timestamp)
    else:
        return None, None
    if started_at is not None and created_at is not None and created_at <= started_at:
        return started, started - (started_at - created_at)
    return started, None


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
