"""``spec.behavior``: stabilization windows and rate policies, as Kubernetes applies them.

Runs in the hpa-controller process. Pure: ``now`` is passed in (epoch seconds).

Stabilization (against flapping): the recommendation actually used is the current count
brought inside ``[min of the proposals of the last scaleUp window, max of the proposals of
the last scaleDown window]`` — the proposal being made now included. With the defaults
(0 s up, 300 s down) scale-ups are immediate and a scale-down waits until every proposal
of the last five minutes agrees with it.

Rate (against overshoot): each policy bounds the change relative to the replica count at
the start of its period (current count minus what the recorded scale events changed
during the period). ``Pods``: ± value; ``Percent``: × (1 ± value/100), rounded up when
growing and down when shrinking. ``selectPolicy Max`` takes the policy allowing the
largest change, ``Min`` the smallest, ``Disabled`` forbids the direction. Then
min/maxReplicas bound the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ecsm_actors.controllers.hpa.history import Recommendation, ScaleEvent
from ecsm_actors.controllers.hpa.spec import PolicyType, ScalingRules, SelectPolicy


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """A replica count and the Kubernetes reason/message explaining it."""

    replicas: int
    reason: str
    message: str


def stabilize(
    recommendations: Sequence[Recommendation],
    *,
    desired: int,
    current: int,
    scale_up: ScalingRules,
    scale_down: ScalingRules,
    now: float,
) -> Outcome:
    """The stabilized recommendation (``desired`` is the proposal made now)."""
    up_cutoff = now - scale_up.stabilization_window_seconds
    down_cutoff = now - scale_down.stabilization_window_seconds
    up_limit = desired
    down_limit = desired
    for rec in recommendations:
        if rec.timestamp > up_cutoff:
            up_limit = min(up_limit, rec.replicas)
        if rec.timestamp > down_cutoff:
            down_limit = max(down_limit, rec.replicas)
    replicas = min(max(current, up_limit), down_limit)
    if desired >= current:
        return Outcome(replicas=replicas, reason="ScaleUpStabilized",
                       message="recent recommendations were lower than current one, "
                               "applying the lowest recent recommendation")
    return Outcome(replicas=replicas, reason="ScaleDownStabilized",
                   message="recent recommendations were higher than current one, "
                           "applying the highest recent recommendation")


def limit_rate(
    *,
    desired: int,
    current: int,
    min_replicas: int,
    max_replicas: int,
    events: Sequence[ScaleEvent],
    scale_up: ScalingRules,
    scale_down: ScalingRules,
    now: float,
) -> Outcome:
    """Bound ``desired`` by the rate policies and by min/maxReplicas."""
    if desired > current:
        limit = max(scale_up_limit(current, events, scale_up, now), current)
        if max_replicas > limit:
            allowed = limit
            out = Outcome(replicas=limit, reason="ScaleUpLimit",
                          message="the desired replica count is increasing faster than "
                                  "the maximum scale rate")
        else:
            allowed = max_replicas
            out = Outcome(replicas=max_replicas, reason="TooManyReplicas",
                          message="the desired replica count is more than the maximum "
                                  "replica count")
        if desired > allowed:
            return out
    elif desired < current:
        limit = min(scale_down_limit(current, events, scale_down, now), current)
        if min_replicas < limit:
            allowed = limit
            out = Outcome(replicas=limit, reason="ScaleDownLimit",
                          message="the desired replica count is decreasing faster than "
                                  "the maximum scale rate")
        else:
            allowed = min_replicas
            out = Outcome(replicas=min_replicas, reason="TooFewReplicas",
                          message="the desired replica count is less than the minimum "
                                  "replica count")
        if desired < allowed:
            return out
    return Outcome(replicas=desired, reason="DesiredWithinRange",
                   message="the desired count is within the acceptable range")


def scale_up_limit(current: int, events: Sequence[ScaleEvent], rules: ScalingRules,
                   now: float) -> int:
    """The highest count the scaleUp policies allow now."""
    if rules.select_policy is SelectPolicy.DISABLED or not rules.policies:
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(current, events, policy.period_seconds, now)
        if policy.type is PolicyType.PODS:
            proposals.append(start + policy.value)
        else:
            proposals.append(math.ceil(start * (1 + policy.value / 100) - 1e-9))
    return min(proposals) if rules.select_policy is SelectPolicy.MIN else max(proposals)


def scale_down_limit(current: int, events: Sequence[ScaleEvent], rules: ScalingRules,
                     now: float) -> int:
    """The lowest count the scaleDown policies allow now."""
    if rules.select_policy is SelectPolicy.DISABLED or not rules.policies:
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(current, events, policy.period_seconds, now)
        if policy.type is PolicyType.PODS:
            proposals.append(start - policy.value)
        else:
            proposals.append(int(start * (1 - policy.value / 100) + 1e-9))
    return max(proposals) if rules.select_policy is SelectPolicy.MIN else min(proposals)


def _period_start(current: int, events: Sequence[ScaleEvent], period: float,
                  now: float) -> int:
    added = sum(e.change for e in events if e.timestamp > now - period and e.change > 0)
    removed = -sum(e.change for e in events if e.timestamp > now - period and e.change < 0)
    return current - added + removed
