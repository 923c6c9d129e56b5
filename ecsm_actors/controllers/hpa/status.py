"""The ECSMHpa status block the HPA controller writes, built from a :class:`Decision`.

Runs in the hpa-controller process. Pure: ``now`` is passed in.

Fields written (wire names, all in ``status``; ``ecsm-cli get/describe hpa`` read them):

* ``currentReplicas`` — the target's ``spec.deploymentStrategy.replicas`` when decided;
* ``desiredReplicas`` — the count the HPA wants (written to the target when different);
* ``observedGeneration`` — the HPA ``metadata.generation`` the decision used;
* ``currentMetrics`` — ``[{type: Resource, resource: {name, current:
  {averageUtilization}}}]``, a whole percent (Σ usage / Σ limit, rounded down as
  Kubernetes does), one per metric that has a value;
* ``lastScaleTime`` — RFC 3339, the last time the target's replicas were changed;
* ``conditions`` — ``AbleToScale``, ``ScalingActive``, ``ScalingLimited`` with reason
  and message; ``lastTransitionTime`` moves only when a condition's status flips;
  conditions of other types (the runtime's ``Degraded``) are kept as they are;
* ``recommendations`` / ``scaleEvents`` — the history (:mod:`.history`); each scale
  event's ``reason`` is the decision that caused it ("last scaling decisions").
"""

from __future__ import annotations

from typing import Any

from ecsm_actors.controllers.hpa.algorithm import Condition, Decision, History
from ecsm_actors.controllers.hpa.history import (
    dump_recommendations,
    dump_scale_events,
    format_time,
    load_recommendations,
    load_scale_events,
)

#: Conditions longer than this are cut (a status is read on a terminal).
MAX_MESSAGE = 1000


def history_of(status: Any, *, now: float) -> History:
    """The history a previous sync left in ``status`` (garbage tolerated)."""
    if not isinstance(status, dict):
        return History()
    return History(
        recommendations=tuple(load_recommendations(status.get("recommendations"), now=now)),
        scale_events=tuple(load_scale_events(status.get("scaleEvents"), now=now)),
    )


def build_status(previous: Any, decision: Decision, *, generation: int, now: float
                 ) -> dict[str, Any]:
    """The new status block: ``previous`` with everything the decision decides replaced."""
    prev = previous if isinstance(previous, dict) else {}
    status: dict[str, Any] = {
        "currentReplicas": decision.current_replicas,
        "desiredReplicas": decision.desired_replicas,
        "observedGeneration": generation,
    }
    metrics = [_metric_status(p.metric.resource, p.utilization)
               for p in decision.proposals if p.utilization is not None]
    if metrics:
        status["currentMetrics"] = metrics
    last_scale = format_time(decision.scaled_at) if decision.scaled_at is not None \
        else prev.get("lastScaleTime")
    if last_scale:
        status["lastScaleTime"] = last_scale
    conditions = merge_conditions(prev.get("conditions"), decision.conditions, now=now)
    if conditions:
        status["conditions"] = conditions
    recs = dump_recommendations(decision.recommendations)
    if recs:
        status["recommendations"] = recs
    events = dump_scale_events(decision.scale_events)
    if events:
        status["scaleEvents"] = events
    return status


def merge_conditions(previous: Any, updates: tuple[Condition, ...], *, now: float
                     ) -> list[dict[str, Any]]:
    """Kubernetes SetStatusCondition for each update, in a stable type order."""
    out: list[dict[str, Any]] = [dict(c) for c in previous or () if isinstance(c, dict)]
    for cond in updates:
        status = "True" if cond.status else "False"
        new = {"type": str(cond.type), "status": status, "reason": cond.reason,
               "message": cond.message[:MAX_MESSAGE]}
        for i, old in enumerate(out):
            if old.get("type") == new["type"]:
                unchanged = old.get("status") == status and old.get("lastTransitionTime")
                new["lastTransitionTime"] = old["lastTransitionTime"] if unchanged \
                    else format_time(now)
                out[i] = new
                break
        else:
            new["lastTransitionTime"] = format_time(now)
            out.append(new)
    return out


def _metric_status(resource: str, utilization: int) -> dict[str, Any]:
    return {"type": "Resource", "resource": {
        "name": str(resource), "current": {"averageUtilization": utilization}}}
