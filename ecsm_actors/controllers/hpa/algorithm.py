"""One HPA decision: metrics → proposal → stabilization → rate limits → replica count.

Runs in the hpa-controller process. PURE: no I/O; the clock (``now``, epoch seconds), the
target's replica count (read from the target's *spec*, never its status), the instance
samples and the history kept in the HPA status are all passed in. The same inputs always
give the same :class:`Decision`.

Order, as in the Kubernetes HPA controller:

1. ``paused`` → freeze: no proposal, no history change, condition ScalingActive=False
   (ScalingPaused).
2. An HPA seen for the first time (no recommendation in its status) gets its history
   seeded with the target's current count, now (Kubernetes' first-sight
   ``recommendations[key] = {currentReplicas, now}``): a new HPA cannot scale down before
   its scale-down stabilization window has passed.
3. The target at 0 replicas with minReplicas > 0 → scaling disabled (ScalingDisabled).
4. The target outside [minReplicas, maxReplicas] → brought to the nearest bound at once.
5. Otherwise each metric proposes a count (:mod:`.replicas`); the largest wins. No valid
   metric → no scaling (ScalingActive=False, FailedGetResourceMetric, with the reason).
   Some invalid metrics and the valid ones want a scale-down → no scaling either (a
   missing metric never causes a scale-down). Every reason and the ScalingActive message
   give each metric's figure with its inputs (``cpu: 72%/50% (3 counted, 1 missing, 0
   unready)``), so ``describe hpa`` shows the arithmetic of each decision.
6. The proposal is recorded in the recommendation history, stabilized, then bounded by
   the rate policies and min/maxReplicas (:mod:`.behavior`). A change of count records
   a scale event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from ecsm_actors.controllers.hpa.behavior import Outcome, limit_rate, stabilize
from ecsm_actors.controllers.hpa.history import (
    Recommendation,
    ScaleEvent,
    compact_recommendations,
    prune_scale_events,
)
from ecsm_actors.controllers.hpa.replicas import MetricProposal, propose
from ecsm_actors.controllers.hpa.samples import CpuStartup, InstanceSample
from ecsm_actors.controllers.hpa.spec import HpaSpec


class ConditionType(StrEnum):
    ABLE_TO_SCALE = "AbleToScale"
    SCALING_ACTIVE = "ScalingActive"
    SCALING_LIMITED = "ScalingLimited"


class DecisionCode(StrEnum):
    SCALE_UP = "ScaleUp"
    SCALE_DOWN = "ScaleDown"
    NO_CHANGE = "NoChange"
    NO_METRICS = "NoMetrics"
    PAUSED = "Paused"
    DISABLED = "ScalingDisabled"
    UNABLE = "UnableToScale"


@dataclass(frozen=True, kw_only=True)
class Condition:
    type: ConditionType
    status: bool
    reason: str
    message: str


@dataclass(frozen=True, kw_only=True)
class Decision:
    """What to do and why. ``conditions`` lists only the conditions this decision sets."""

    code: DecisionCode
    current_replicas: int
    desired_replicas: int
    reason: str
    proposals: tuple[MetricProposal, ...] = ()
    conditions: tuple[Condition, ...] = ()
    recommendations: tuple[Recommendation, ...] = ()
    scale_events: tuple[ScaleEvent, ...] = ()
    metric_replicas: int | None = None
    scaled_at: float | None = None

    @property
    def rescale(self) -> bool:
        return self.desired_replicas != self.current_replicas


@dataclass(frozen=True, kw_only=True)
class History:
    """What the previous syncs left in the HPA status."""

    recommendations: tuple[Recommendation, ...] = ()
    scale_events: tuple[ScaleEvent, ...] = ()


def decide(
    spec: HpaSpec,
    *,
    current: int,
    samples: Sequence[InstanceSample],
    history: History,
    now: float,
    metric_max_age: float,
    cpu_startup: CpuStartup = CpuStartup(),
) -> Decision:
    """The decision for one sync (see the module docstring for the order)."""
    recs, events = history.recommendations, history.scale_events
    if spec.paused:
        return Decision(
            code=DecisionCode.PAUSED, current_replicas=current, desired_replicas=current,
            reason=f"spec.paused is true: scaling is frozen at {current} replicas",
            conditions=(_cond(ConditionType.SCALING_ACTIVE, False, "ScalingPaused",
                              "spec.paused is true: the HPA neither reads metrics nor "
                              "scales the target"),),
            recommendations=recs, scale_events=events)
    if not recs:
        recs = (Recommendation(timestamp=now, replicas=current),)

    proposals = tuple(
        propose(m, current=current, samples=samples, tolerances=spec.tolerances, now=now,
                max_age=metric_max_age, cpu_startup=cpu_startup)
        for m in spec.metrics)

    def finish(desired: int, code: DecisionCode, reason: str, conditions: list[Condition],
               new_recs: Sequence[Recommendation], metric_replicas: int | None = None
               ) -> Decision:
        new_events = list(events)
        scaled_at = None
        if desired != current:
            new_events.append(ScaleEvent(timestamp=now, change=desired - current,
                                         reason=f"{current} -> {desired}: {reason}"))
            scaled_at = now
            conditions = [c for c in conditions if c.type is not ConditionType.ABLE_TO_SCALE]
            conditions.append(_cond(ConditionType.ABLE_TO_SCALE, True, "SucceededRescale",
                                    f"the HPA controller was able to update the target "
                                    f"scale to {desired}"))
        longest = max(spec.scale_up.longest_period, spec.scale_down.longest_period)
        return Decision(
            code=code, current_replicas=current, desired_replicas=desired, reason=reason,
            proposals=proposals, conditions=tuple(conditions),
            recommendations=tuple(new_recs),
            scale_events=tuple(prune_scale_events(new_events, now=now,
                                                  longest_period=longest)),
            metric_replicas=metric_replicas, scaled_at=scaled_at)

    if current == 0 and spec.min_replicas != 0:
        return finish(0, DecisionCode.DISABLED,
                      "the target has 0 replicas: autoscaling is disabled",
                      [_cond(ConditionType.SCALING_ACTIVE, False, "ScalingDisabled",
                             "scaling is disabled since the replica count of the target "
                             "is zero")], recs)
    if current > spec.max_replicas:
        return finish(spec.max_replicas, DecisionCode.SCALE_DOWN,
                      "Current number of replicas above Spec.MaxReplicas",
                      [_cond(ConditionType.SCALING_LIMITED, True, "TooManyReplicas",
                             "the desired replica count is more than the maximum replica "
                             "count")], recs)
    if current < spec.min_replicas:
        return finish(spec.min_replicas, DecisionCode.SCALE_UP,
                      "Current number of replicas below Spec.MinReplicas",
                      [_cond(ConditionType.SCALING_LIMITED, True, "TooFewReplicas",
                             "the desired replica count is less than the minimum replica "
                             "count")], recs)

    valid = [p for p in proposals if p.valid]
    invalid = [p for p in proposals if not p.valid]
    if not valid:
        why = "; ".join(f"{p.metric.resource}: {p.reason}" for p in invalid)
        return finish(current, DecisionCode.NO_METRICS, f"no metrics: {why}",
                      [_cond(ConditionType.SCALING_ACTIVE, False, "FailedGetResourceMetric",
                             f"the HPA was unable to compute the replica count: {why}")],
                      recs)
    winner = max(valid, key=lambda p: p.replicas or 0)
    metric_replicas = winner.replicas or 0
    if invalid and metric_replicas < current:
        why = "; ".join(f"{p.metric.resource}: {p.reason}" for p in invalid)
        return finish(current, DecisionCode.NO_METRICS,
                      f"scale-down skipped, {len(invalid)} of {len(proposals)} metrics "
                      f"invalid: {why}",
                      [_cond(ConditionType.SCALING_ACTIVE, False, "FailedGetResourceMetric",
                             f"invalid metrics ({len(invalid)} invalid out of "
                             f"{len(proposals)}), first error is: {why}")], recs)

    inputs = "; ".join(_metric_text(p) for p in valid)
    conditions = [_cond(ConditionType.SCALING_ACTIVE, True, "ValidMetricFound",
                        f"the HPA was able to successfully calculate a replica count from "
                        f"{winner.label} ({inputs})")]
    stab = stabilize(recs, desired=metric_replicas, current=current,
                     scale_up=spec.scale_up, scale_down=spec.scale_down, now=now)
    if stab.replicas != metric_replicas:
        conditions.append(_cond(ConditionType.ABLE_TO_SCALE, True, stab.reason, stab.message))
    else:
        conditions.append(_cond(ConditionType.ABLE_TO_SCALE, True, "ReadyForNewScale",
                                "recommended size matches current size"))
    rate = limit_rate(desired=stab.replicas, current=current, min_replicas=spec.min_replicas,
                      max_replicas=spec.max_replicas, events=events, scale_up=spec.scale_up,
                      scale_down=spec.scale_down, now=now)
    conditions.append(_cond(ConditionType.SCALING_LIMITED, rate.replicas != stab.replicas,
                            rate.reason, rate.message))
    new_recs = compact_recommendations(
        [*recs, Recommendation(timestamp=now, replicas=metric_replicas)], now=now,
        up_window=spec.scale_up.stabilization_window_seconds,
        down_window=spec.scale_down.stabilization_window_seconds)

    desired = rate.replicas
    metric_text = ", ".join(_metric_text(p) for p in proposals)
    if desired > current:
        code, reason = DecisionCode.SCALE_UP, f"{winner.label} above target ({metric_text})"
    elif desired < current:
        code, reason = DecisionCode.SCALE_DOWN, f"All metrics below target ({metric_text})"
    else:
        code = DecisionCode.NO_CHANGE
        reason = f"{metric_text}: {_why_no_change(winner, metric_replicas, stab, rate)}"
    if desired != metric_replicas and desired != current:
        held_by = rate.reason if rate.replicas != stab.replicas else stab.reason
        reason += f"; proposal {metric_replicas} held to {desired} by {held_by}"
    return finish(desired, code, reason, conditions, new_recs, metric_replicas)


def unable(*, current: int, reason: str, message: str, history: History) -> Decision:
    """The target cannot be scaled (absent, Static, ...): AbleToScale=False, no change."""
    return Decision(code=DecisionCode.UNABLE, current_replicas=current,
                    desired_replicas=current, reason=message,
                    conditions=(_cond(ConditionType.ABLE_TO_SCALE, False, reason, message),),
                    recommendations=history.recommendations,
                    scale_events=history.scale_events)


def _why_no_change(winner: MetricProposal, metric_replicas: int, stab: Outcome,
                   rate: Outcome) -> str:
    if rate.replicas != stab.replicas:
        return f"proposal {metric_replicas} held by {rate.reason}: {rate.message}"
    if stab.replicas != metric_replicas:
        return f"proposal {metric_replicas} held by {stab.reason}: {stab.message}"
    return winner.reason or "at target"


def _metric_text(p: MetricProposal) -> str:
    """``cpu: 72%/50% (3 counted, 1 missing, 0 unready)``: the figure and its inputs."""
    current = "<unknown>" if p.utilization is None else f"{p.utilization}%"
    return (f"{p.metric.resource}: {current}/{p.metric.average_utilization:g}% "
            f"({p.inputs})")


def _cond(type_: ConditionType, status: bool, reason: str, message: str) -> Condition:
    return Condition(type=type_, status=status, reason=reason, message=message)
