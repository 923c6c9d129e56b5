"""The service controller's events: which reason and message each action of a plan and
each status change gives (what ``ecsm-cli get events`` shows)."""

from __future__ import annotations

import json
from typing import Any

from ecsm_actors.controllers.service import events, history
from ecsm_actors.controllers.service.model import (
    Create,
    Desired,
    Plan,
    Policy,
    RevisionView,
    Scale,
    Summary,
)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, str]] = []

    def normal(self, involved: dict[str, str], reason: str, message: str) -> None:
        self.seen.append(("Normal", involved["name"], reason, message))

    def warning(self, involved: dict[str, str], reason: str, message: str) -> None:
        self.seen.append(("Warning", involved["name"], reason, message))


SUMMARY = Summary(desired=3, replicas=3, ready=3, updated=3, available=3, min_available=2,
                  service_ids=("1",), rolling=False, complete=True)


def obj(status: dict[str, Any] | None = None, generation: int = 1,
        annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"kind": "ECSMService",
            "metadata": {"namespace": "default", "name": "web", "uid": "u-1",
                         "generation": generation, "annotations": annotations or {}},
            "status": status or {}}


def desired(revision: str = "r2", replicas: int = 3) -> Desired:
    return Desired(revision=revision, policy=Policy.DYNAMIC, replicas=replicas,
                   nodes=("node-1",), max_surge=1, max_unavailable=0, history_limit=10)


def view(revision: str, factor: int) -> RevisionView:
    return RevisionView(revision=revision, service_id=f"id-{revision}", factor=factor,
                        node_names=("node-1",), online=factor)


SETTLED = {"observedGeneration": 1, "conditions": [
    {"type": "Progressing", "status": "True", "reason": "NewRevisionAvailable"}]}


def test_a_service_scaled_behind_our_back_is_a_drift_repaired_with_what_was_found() -> None:
    rec = Recorder()
    plan = Plan(actions=(Scale(revision="r2", service_id="id-r2", factor=3,
                               node_names=("node-1",), policy="dynamic"),), summary=SUMMARY)
    events.for_actions(rec, obj(SETTLED), [view("r2", 1)], desired(), plan)
    assert rec.seen == [("Warning", "web", "DriftRepaired",
                         "found revision r2 at 1 replica(s), want 3: scaled it back")]


def test_a_spec_change_of_replicas_is_a_scale_up() -> None:
    rec = Recorder()
    plan = Plan(actions=(Scale(revision="r2", service_id="id-r2", factor=5,
                               node_names=("node-1",), policy="dynamic"),), summary=SUMMARY)
    events.for_actions(rec, obj(SETTLED, generation=2), [view("r2", 3)], desired(), plan)
    assert rec.seen == [("Normal", "web", "ScaledUp", "scaled revision r2 from 3 to 5")]


def test_creating_an_older_revision_again_is_a_rollback() -> None:
    rec = Recorder()
    notes = {history.annotation_key(r): json.dumps({"revision": n, "template": {}})
             for r, n in (("r1", 1), ("r2", 2))}
    plan = Plan(actions=(Create(revision="r1", factor=1, node_names=("node-1",)),),
                summary=SUMMARY)
    events.for_actions(rec, obj(generation=3), [view("r2", 3)], desired("r1"), plan,
                       annotations=notes)
    assert rec.seen == [("Normal", "web", "RollbackStarted",
                         "rolling back to revision r1 from r2")]


def test_status_changes_give_rollout_complete_degraded_and_recovered() -> None:
    rec = Recorder()
    rolling = {"conditions": [{"type": "Progressing", "status": "True",
                               "reason": "RollingUpdate"}]}
    done = {"currentRevision": "r2", "readyReplicas": 3, "replicas": 3,
            "conditions": [{"type": "Progressing", "status": "True",
                            "reason": "NewRevisionAvailable"},
                           {"type": "Degraded", "status": "True", "reason": "NodeDown",
                            "message": "node-2 is down"}]}
    events.for_status(rec, obj(rolling), done)
    healed = {**done, "conditions": [done["conditions"][0],
                                     {"type": "Degraded", "status": "False",
                                      "reason": "AsExpected"}]}
    events.for_status(rec, obj(done), healed)
    assert rec.seen == [
        ("Normal", "web", "RolloutComplete", "revision r2 available: 3/3 ready"),
        ("Warning", "web", "NodeDown", "node-2 is down"),
        ("Normal", "web", "Recovered", "no longer degraded (NodeDown)")]


def test_a_preemption_is_told_on_both_sides_and_its_end_on_the_victim() -> None:
    rec = Recorder()
    given = {"victim": "default/batch", "instances": 2, "time": "t1",
             "reason": "priority 100 needs 2 instances"}
    events.for_status(rec, obj({}), {"preemptionsGiven": [given]})
    record = {"preemptor": "default/web", "instances": 2, "time": "t1"}
    events.for_status(rec, obj({"preemptions": [record]}), {"preemptions": []})
    assert rec.seen == [
        ("Normal", "web", "Preempting",
         "took 2 instance(s) from default/batch: priority 100 needs 2 instances"),
        ("Warning", "batch", "Preempted",
         "2 instance(s) preempted by default/web: priority 100 needs 2 instances"),
        ("Normal", "web", "Restored", "2 instance(s) preempted by default/web restored")]
