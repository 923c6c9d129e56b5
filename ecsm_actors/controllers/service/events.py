"""What the service controller tells ``ecsm-cli get events`` about an ECSMService.

Runs in the service-controller process, called by the reconciler at the two places that
act: :func:`for_actions` with the plan it applied (rollout started or rolled back, created,
scaled up/down, an old revision deleted, drift repaired and what was found), and
:func:`for_status` with the status it is about to write (rollout complete, dependency
wait, a Degraded condition raised or cleared, preemptions given, suffered and restored).
Pure apart from the recorder, which never blocks nor raises; events are never read back
by a controller (DESIGN §11).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ecsm_actors.controllers.service import history
from ecsm_actors.controllers.service.model import (
    Create,
    Delete,
    Desired,
    Plan,
    Restart,
    RevisionView,
    Scale,
)
from ecsm_actors.runtime.events import involved_of, object_ref, recorder_of

__all__ = ["for_actions", "for_status", "involved_of", "object_ref", "recorder_of"]

Obj = dict[str, Any]
KIND = "ECSMService"


def _conditions(status: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type")): c for c in (status or {}).get("conditions") or ()
            if isinstance(c, Mapping)}


def _settled_before(obj: Obj) -> bool:
    """The object was complete at its current generation before this pass: an action
    now repairs drift, not a change of the spec."""
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    progressing = _conditions(status).get("Progressing") or {}
    return (status.get("observedGeneration") == generation
            and progressing.get("reason") == "NewRevisionAvailable")


def for_actions(recorder: Any, obj: Obj, views: Sequence[RevisionView], desired: Desired,
                result: Plan, *, annotations: Mapping[str, str] | None = None) -> None:
    """Events for the actions of the plan just applied; ``annotations``: the object's
    before this pass recorded its revision (an undo renumbers the revision it returns
    to as the newest)."""
    if not result.actions:
        return
    ref = involved_of(obj)
    by_revision = {v.revision: v for v in views}
    drift = _settled_before(obj)
    numbers = {r: rec.number for r, rec in history.records(annotations).items()}
    top = max(numbers.values(), default=0)
    for action in result.actions:
        if isinstance(action, Create):
            others = sorted(r for r in by_revision if r != action.revision)
            if drift:
                recorder.warning(ref, "DriftRepaired", f"found no ECSM service of revision "
                                 f"{action.revision}: created it again with {action.factor} "
                                 "replica(s)")
            elif others and numbers.get(action.revision, top) < top:
                recorder.normal(ref, "RollbackStarted", f"rolling back to revision "
                                f"{action.revision} from {', '.join(others)}")
            elif others:
                recorder.normal(ref, "RolloutStarted", f"rolling out revision "
                                f"{action.revision} (replacing {', '.join(others)})")
            else:
                recorder.normal(ref, "Created", f"created revision {action.revision} with "
                                f"{action.factor} replica(s)")
        elif isinstance(action, Scale):
            view = by_revision.get(action.revision)
            old = view.factor if view is not None else 0
            if drift and action.revision == desired.revision:
                recorder.warning(ref, "DriftRepaired", f"found revision {action.revision} "
                                 f"at {old} replica(s), want {action.factor}: scaled it back")
            elif action.factor > old:
                recorder.normal(ref, "ScaledUp", f"scaled revision {action.revision} from "
                                f"{old} to {action.factor}")
            elif action.factor < old:
                recorder.normal(ref, "ScaledDown", f"scaled revision {action.revision} from "
                                f"{old} to {action.factor}")
        elif isinstance(action, Delete):
            recorder.normal(ref, "RevisionDeleted", f"deleted ECSM service "
                            f"{action.service_id} of revision {action.revision}")
        elif isinstance(action, Restart):
            found = _container_status(by_revision.get(action.revision), action.container_name)
            recorder.warning(ref, "DriftRepaired", f"found container {action.container_name} "
                             f"{found}: {action.action}")


def _container_status(view: RevisionView | None, name: str) -> str:
    for c in (view.containers or ()) if view is not None else ():
        if c.name == name:
            return f"{c.status} on node {c.node_name}"
    return "not running"


def for_status(recorder: Any, obj: Obj, new: Mapping[str, Any]) -> None:
    """Events for what changes between the object's status and ``new``."""
    ref = involved_of(obj)
    old = obj.get("status") or {}
    before, after = _conditions(old), _conditions(new)
    progressing, was = after.get("Progressing") or {}, before.get("Progressing") or {}
    reason = progressing.get("reason")
    if reason != was.get("reason"):
        if reason == "NewRevisionAvailable":
            recorder.normal(ref, "RolloutComplete", f"revision {new.get('currentRevision')} "
                            f"available: {new.get('readyReplicas', 0)}/"
                            f"{new.get('replicas', 0)} ready")
        elif reason == "WaitingForDependencies":
            recorder.normal(ref, "DependencyWait", str(progressing.get("message", "")))
    degraded, was_degraded = after.get("Degraded") or {}, before.get("Degraded") or {}
    if degraded.get("status") == "True" and (was_degraded.get("status") != "True"
                                            or was_degraded.get("reason")
                                            != degraded.get("reason")):
        recorder.warning(ref, str(degraded.get("reason") or "Degraded"),
                         str(degraded.get("message", "")))
    elif was_degraded.get("status") == "True" and degraded.get("status") != "True":
        recorder.normal(ref, "Recovered", f"no longer degraded "
                        f"({was_degraded.get('reason')})")
    _preemptions(recorder, obj, ref, old, new)


def _preemptions(recorder: Any, obj: Obj, ref: dict[str, str], old: Mapping[str, Any],
                 new: Mapping[str, Any]) -> None:
    meta = obj.get("metadata") or {}
    key = f"{meta.get('namespace')}/{meta.get('name')}"
    seen = {(g.get("victim"), g.get("time")) for g in old.get("preemptionsGiven") or ()
            if isinstance(g, Mapping)}
    for given in new.get("preemptionsGiven") or ():
        if not isinstance(given, Mapping) or (given.get("victim"), given.get("time")) in seen:
            continue
        victim = str(given.get("victim", ""))
        instances, reason = given.get("instances"), given.get("reason", "")
        recorder.normal(ref, "Preempting", f"took {instances} instance(s) from {victim}: "
                        f"{reason}")
        namespace, _, name = victim.partition("/")
        if name:
            recorder.warning(object_ref(KIND, namespace, name), "Preempted",
                             f"{instances} instance(s) preempted by {key}: {reason}")
    held = {(r.get("preemptor"), r.get("time")) for r in new.get("preemptions") or ()
            if isinstance(r, Mapping)}
    for record in old.get("preemptions") or ():
        if isinstance(record, Mapping) and (record.get("preemptor"),
                                            record.get("time")) not in held:
            recorder.normal(ref, "Restored", f"{record.get('instances')} instance(s) "
                            f"preempted by {record.get('preemptor')} restored")
