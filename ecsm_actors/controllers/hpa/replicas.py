"""The replica calculator: one metric's proposal, as Kubernetes computes it
(``replica_calculator.go``: ``GetResourceReplicas``, ``groupPods``,
``GetResourceUtilizationRatio``), with limits where Kubernetes has requests.

Runs in the hpa-controller process. Pure.

For a utilization target ``T`` and the instances of the target:

1. Instances are split into *counted* (ready, with a metric), *missing* (ready, the figure
   absent, garbage or stale) and *unready* (container not ``running``, like a Pending
   Pod; for CPU also a running instance still starting, see
   :meth:`~.samples.InstanceSample.cpu_ready` — memory samples of running instances are
   always used). Instances the target's spec asks for but ECSM does not list yet count
   as unready too.
2. The utilization is Σ usage / Σ limit × 100 over the counted instances, rounded down
   to a whole percent before anything else (Kubernetes: ``int32(metricsTotal * 100 /
   requestsTotal)``), in integer units: memory in bytes over ``memoryLimit``; CPU in
   hundredths of a percent over one core per instance (ECSM sets no CPU limit, so every
   instance weighs the same). ``ratio = utilization / T``. No counted instance → the
   metric is invalid: no proposal.
3. With nothing missing and nothing unready on a scale-up: inside the tolerances
   (``1 - scaleDown.tolerance <= ratio <= 1 + scaleUp.tolerance``) the proposal is the
   current count; otherwise ``ceil(ratio × counted)``.
4. Otherwise the utilization is recomputed conservatively, each instance still weighed by
   its limit: a missing instance uses ``max(100, T)`` % of its limit on a scale-down and
   0 on a scale-up; unready instances use 0 on a scale-up (and are left out on a
   scale-down). An instance whose limit ECSM does not report weighs the mean limit of
   the target's instances. If the new ratio falls inside the tolerances or reverses the
   direction, the proposal is the current count; so is it when ``ceil(new ratio ×
   instances used)`` would move against the direction of the ratio.

The reported utilization is the one of step 2 (counted instances only), as in Kubernetes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ecsm_actors.controllers.hpa.samples import CpuStartup, InstanceSample
from ecsm_actors.controllers.hpa.spec import MetricTarget, ResourceName, Tolerances

# Float noise must not add a replica (ceil(3.0000000000000004) is 3 here).
_EPSILON = 1e-9


@dataclass(frozen=True, kw_only=True)
class MetricProposal:
    """The outcome for one metric. ``replicas`` is None when the metric is invalid;
    ``ready`` counts the instances whose figures made the utilization."""

    metric: MetricTarget
    replicas: int | None
    utilization: int | None
    ready: int = 0
    missing: int = 0
    unready: int = 0
    reason: str = ""

    @property
    def valid(self) -> bool:
        return self.replicas is not None

    @property
    def label(self) -> str:
        if self.metric.resource is ResourceName.MEMORY:
            return "memory resource utilization (percentage of limit)"
        return "cpu resource utilization (percentage)"

    @property
    def inputs(self) -> str:
        """The instances behind the figure, for people: ``3 counted, 1 missing, 0 unready``."""
        return f"{self.ready} counted, {self.missing} missing, {self.unready} unready"


def propose(
    metric: MetricTarget,
    *,
    current: int,
    samples: Sequence[InstanceSample],
    tolerances: Tolerances,
    now: float,
    max_age: float,
    cpu_startup: CpuStartup = CpuStartup(),
) -> MetricProposal:
    """The replica count this metric asks for (see the module docstring)."""
    resource = metric.resource
    target = metric.average_utilization
    counted: list[tuple[int, int]] = []  # (usage, limit)
    missing: list[int | None] = []  # limits
    unready: list[int | None] = [None] * max(0, current - len(samples))
    for s in samples:
        if not s.ready:
            unready.append(s.limit(resource))
            continue
        figures = s.usage(resource, now=now, max_age=max_age)
        if figures is None:
            missing.append(s.limit(resource))
        elif resource is ResourceName.CPU and not s.cpu_ready(now, cpu_startup):
            unready.append(figures[1])
        else:
            counted.append(figures)
    counts = {"ready": len(counted), "missing": len(missing), "unready": len(unready)}
    if not counted:
        why = ("the target has no instances" if not samples else
               f"no {resource} metrics from the target's instances "
               f"({len(missing)} without metrics, {len(unready)} not ready or starting)")
        return MetricProposal(metric=metric, replicas=None, utilization=None, reason=why,
                              **counts)

    utilization = _utilization(counted)
    ratio = utilization / target
    scale_up_with_unready = bool(unready) and ratio > 1.0

    def result(replicas: int, reason: str) -> MetricProposal:
        return MetricProposal(metric=metric, replicas=replicas, utilization=utilization,
                              reason=reason, **counts)

    if not scale_up_with_unready and not missing:
        if tolerances.within(ratio):
            return result(current, f"ratio {ratio:.2f} within tolerance {tolerances}")
        return result(_ceil(ratio * len(counted)), f"ratio {ratio:.2f}")

    known = [limit for _, limit in counted]
    known += [limit for limit in (*missing, *unready) if limit is not None]
    mean_limit = sum(known) // len(known)
    adjusted = list(counted)
    if missing:
        limits = [mean_limit if limit is None else limit for limit in missing]
        if ratio < 1.0:
            fallback = max(100.0, target)
            adjusted += [(int(limit * fallback // 100), limit) for limit in limits]
        elif ratio > 1.0:
            adjusted += [(0, limit) for limit in limits]
    if scale_up_with_unready:
        adjusted += [(0, mean_limit if limit is None else limit) for limit in unready]
    new_ratio = _utilization(adjusted) / target
    note = (f"ratio {ratio:.2f}, {new_ratio:.2f} counting {len(missing)} missing and "
            f"{len(unready) if scale_up_with_unready else 0} unready conservatively")
    if (tolerances.within(new_ratio) or (ratio < 1.0 < new_ratio)
            or (ratio > 1.0 > new_ratio)):
        return result(current, f"{note}: within tolerance or direction reversed")
    replicas = _ceil(new_ratio * len(adjusted))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return result(current, f"{note}: the count would move against the metric")
    return result(replicas, note)


def _utilization(figures: Sequence[tuple[int, int]]) -> int:
    """Σ usage × 100 // Σ limit: a whole percent, rounded down as Kubernetes does."""
    return sum(u for u, _ in figures) * 100 // sum(limit for _, limit in figures)


def _ceil(x: float) -> int:
    return max(0, math.ceil(x - _EPSILON))
