"""The ECSMService status block: counts, revision, ids and the three conditions.

Runs inside the service-controller process; pure (the timestamp is passed in).

Conditions (Kubernetes Deployment vocabulary):

* ``Available`` — True when ``availableReplicas ≥ max(desired − maxUnavailable,
  min(1, desired))``: at least one instance serves whenever any is wanted;
* ``Progressing`` — True while converging (``RollingUpdate``, ``Scaling``) and when done
  (``NewRevisionAvailable``); False with ``WaitingForDependencies`` or ``DependencyCycle``
  while the service is held back;
* ``Degraded`` — True with ``NodeDown``, ``EcsmUnavailable``, ``DependencyCycle`` (or a
  terminal reason the runtime records); False/``AsExpected`` otherwise.

Invariants: a condition whose status does not change keeps its ``lastTransitionTime``;
conditions of other types (written by someone else) are kept; a status equal to the
current one is not written (the caller compares with :func:`same`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ecsm_actors.controllers.service.model import Summary

AVAILABLE, PROGRESSING, DEGRADED = "Available", "Progressing", "Degraded"
#: True while some instances are held down for a preemptor / not placed for lack of room
#: (the api's ``PREEMPTED`` and ``REPLICA_FAILURE``; not imported from it: the controller
#: process does not load the validation code).
PREEMPTED, REPLICA_FAILURE = "Preempted", "ReplicaFailure"


@dataclass(frozen=True, kw_only=True)
class ConditionValue:
    status: str
    reason: str
    message: str = ""


def merge_conditions(old: list[dict[str, Any]] | None, new: dict[str, ConditionValue],
                     now: str) -> list[dict[str, Any]]:
    """``old`` with the conditions of ``new`` set; order stable, times kept when the
    status is unchanged."""
    out: list[dict[str, Any]] = []
    done: set[str] = set()
    for c in old or ():
        if not isinstance(c, dict):
            continue
        type_ = c.get("type")
        if type_ not in new:
            out.append(c)
            continue
        out.append(_condition(type_, new[type_], c, now))
        done.add(str(type_))
    for type_, value in new.items():
        if type_ not in done:
            out.append(_condition(type_, value, None, now))
    return out


def _condition(type_: Any, value: ConditionValue, old: dict[str, Any] | None,
               now: str) -> dict[str, Any]:
    kept = old is not None and old.get("status") == value.status and old.get(
        "lastTransitionTime")
    return {"type": type_, "status": value.status, "reason": value.reason,
            "message": value.message,
            "lastTransitionTime": old["lastTransitionTime"] if kept and old else now}


def conditions_for(summary: Summary, *, revision: str, waiting: tuple[str, ...] = (),
                   cycle: tuple[str, ...] = (),
                   degraded: ConditionValue | None = None) -> dict[str, ConditionValue]:
    """The three conditions for what was observed."""
    ok = summary.available >= summary.min_available
    available = ConditionValue(
        status="True" if ok else "False",
        reason="MinimumReplicasAvailable" if ok else "MinimumReplicasUnavailable",
        message=f"{summary.available} of {summary.desired} instances available "
                f"(at least {summary.min_available} required)")
    if cycle:
        progressing = ConditionValue(status="False", reason="DependencyCycle",
                                     message="dependency cycle: " + " -> ".join(cycle))
    elif waiting:
        progressing = ConditionValue(status="False", reason="WaitingForDependencies",
                                     message="waiting for " + "; ".join(waiting))
    elif summary.complete:
        progressing = ConditionValue(status="True", reason="NewRevisionAvailable",
                                     message=f"revision {revision} is available")
    elif summary.rolling:
        progressing = ConditionValue(
            status="True", reason="RollingUpdate",
            message=f"revision {revision}: {summary.updated} of {summary.desired} "
                    f"updated, {summary.ready} ready")
    else:
        progressing = ConditionValue(
            status="True", reason="Scaling",
            message=f"revision {revision}: {summary.ready} of {summary.desired} ready")
    if degraded is None and cycle:
        degraded = ConditionValue(status="True", reason="DependencyCycle",
                                  message="dependency cycle: " + " -> ".join(cycle))
    if degraded is None and summary.down_nodes:
        degraded = ConditionValue(status="True", reason="NodeDown",
                                  message="node(s) down: " + ", ".join(summary.down_nodes))
    if degraded is None:
        degraded = ConditionValue(status="False", reason="AsExpected")
    return {AVAILABLE: available, PROGRESSING: progressing, DEGRADED: degraded}


def build(old: dict[str, Any] | None, *, generation: int, revision: str, summary: Summary,
          conditions: dict[str, ConditionValue], now: str) -> dict[str, Any]:
    """The whole status block to write."""
    old = old or {}
    out: dict[str, Any] = {k: v for k, v in old.items()
                           if k not in ("replicas", "readyReplicas", "updatedReplicas",
                                        "availableReplicas", "observedGeneration",
                                        "underlyingServiceIDs", "currentRevision",
                                        "conditions")}
    out.update({
        "replicas": summary.replicas,
        "readyReplicas": summary.ready,
        "updatedReplicas": summary.updated,
        "availableReplicas": summary.available,
        "observedGeneration": generation,
        "currentRevision": revision,
        "conditions": merge_conditions(old.get("conditions"), conditions, now),
    })
    if summary.service_ids:
        out["underlyingServiceIDs"] = list(dict.fromkeys(summary.service_ids))
    return out


def same(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    return (a or {}) == (b or {})


def with_condition(old: dict[str, Any] | None, type_: str, value: ConditionValue,
                   now: str) -> dict[str, Any]:
    """``old`` with one condition set (used when nothing else could be observed)."""
    out = dict(old or {})
    out["conditions"] = merge_conditions(out.get("conditions"), {type_: value}, now)
    return out
