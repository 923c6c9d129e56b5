"""The replica calculator: one metric's proposal, as Kubernetes computes it.

Runs in the hpa-controller process. Pure.

For a utilization target ``T`` and the instances of the target:

1. Instances are split into *ready with a metric*, *ready but missing the metric*
   (absent or stale figure) and *not ready* (container not ``running``). Instances the
   target's spec asks for but ECSM does not list yet count as not ready, like a Pending
   Pod.
2. ``ratio = average utilization of the ready-with-metric instances / T``. Without a
   single such instance the metric is invalid: no proposal.
3. With nothing missing and nothing unready on a scale-up: inside the tolerances
   (``1 - scaleDown.tolerance <= ratio <= 1 + scaleUp.tolerance``) the proposal is the
   current count; otherwise
   ``ceil(ratio × ready-with-metric count)`` (= ``ceil(current × actual / target)`` when
   every instance reports).
4. Otherwise the average is recomputed conservatively: missing instances count as
   ``max(100, T)`` % on a scale-down and 0 % on a scale-up; not-ready instances count
   as 0 % on a scale-up (and are ignored on a scale-down). If the new ratio falls inside
   the tolerance or reverses the direction, the proposal is the current count; so is it
   when the new count would move against the direction of the ratio.

The reported utilization is the raw average of the ready instances with a metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ecsm_actors.controllers.hpa.samples import InstanceSample
from ecsm_actors.controllers.hpa.spec import MetricTarget, ResourceName, Tolerances

# Float noise must not add a replica (ceil(3.0000000000000004) is 3 here).
_EPSILON = 1e-9


@dataclass(frozen=True, kw_only=True)
class MetricProposal:
    """The outcome for one metric. ``replicas`` is None when the metric is invalid."""

    metric: MetricTarget
    replicas: int | None
    utilization: float | None
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


def propose(
    metric: MetricTarget,
    *,
    current: int,
    samples: Sequence[InstanceSample],
    tolerances: Tolerances,
    now: float,
    max_age: float,
) -> MetricProposal:
    """The replica count this metric asks for (see the module docstring)."""
    target = metric.average_utilization
    values: list[float] = []
    missing = 0
    unready = max(0, current - len(samples))
    for s in samples:
        if not s.ready:
            unready += 1
            continue
        value = s.utilization(metric.resource, now=now, max_age=max_age)
        if value is None:
            missing += 1
        else:
            values.append(value)
    counts = {"ready": len(values), "missing": missing, "unready": unready}
    if not values:
        why = ("the target has no instances" if not samples else
               f"no {metric.resource} metrics from the target's instances "
               f"({missing} without metrics, {unready} not ready)")
        return MetricProposal(metric=metric, replicas=None, utilization=None, reason=why,
                              **counts)

    average = sum(values) / len(values)
    ratio = average / target
    scale_up_with_unready = unready > 0 and ratio > 1.0

    def result(replicas: int, reason: str) -> MetricProposal:
        return MetricProposal(metric=metric, replicas=replicas, utilization=average,
                              reason=reason, **counts)

    if not scale_up_with_unready and missing == 0:
        if tolerances.within(ratio):
            return result(current, f"ratio {ratio:.2f} within tolerance {tolerances}")
        return result(_ceil(ratio * len(values)), f"ratio {ratio:.2f}")

    adjusted = list(values)
    if missing:
        if ratio < 1.0:
            adjusted += [max(100.0, target)] * missing
        elif ratio > 1.0:
            adjusted += [0.0] * missing
    if scale_up_with_unready:
        adjusted += [0.0] * unready
    new_ratio = (sum(adjusted) / len(adjusted)) / target
    note = f"ratio {ratio:.2f}, {new_ratio:.2f} counting {missing} missing and " \
           f"{unready if scale_up_with_unready else 0} unready conservatively"
    if (tolerances.within(new_ratio) or (ratio < 1.0 < new_ratio)
            or (ratio > 1.0 > new_ratio)):
        return result(current, f"{note}: within tolerance or direction reversed")
    replicas = _ceil(new_ratio * len(adjusted))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return result(current, f"{note}: the count would move against the metric")
    return result(replicas, note)


def _ceil(x: float) -> int:
    return max(0, math.ceil(x - _EPSILON))
