"""Revision annotations, dependency walks and the rollout-status lines: pure helpers of
the service controller and ``ecsm-cli rollout``."""

from __future__ import annotations

import pytest

from ecsm_actors.cli.rollout import rollout_state
from ecsm_actors.controllers.service import dependencies, history


def annotated(*revisions: tuple[str, int], other: bool = True) -> dict[str, str]:
    out = {history.annotation_key(r): history.encode(n, {"image": f"app@{n}"})
           for r, n in revisions}
    if other:
        out["team"] = "ops"
    return out


def test_a_first_revision_is_recorded_as_number_one_and_other_annotations_are_kept():
    out = history.updated_annotations({"team": "ops"}, current="a" * 10,
                                      template={"image": "app@1"}, history_limit=2, on_ecsm=())
    assert out is not None and out["team"] == "ops"
    assert history.records(out)["a" * 10].number == 1


def test_an_already_newest_revision_changes_nothing():
    before = annotated(("a" * 10, 1), ("b" * 10, 2))
    assert history.updated_annotations(before, current="b" * 10, template={},
                                       history_limit=2, on_ecsm=()) is None


def test_returning_to_an_old_revision_makes_it_the_newest():
    before = annotated(("a" * 10, 1), ("b" * 10, 2))
    out = history.updated_annotations(before, current="a" * 10, template={"image": "app@1"},
                                      history_limit=2, on_ecsm=())
    assert {r.revision: r.number for r in history.records(out).values()} == {
        "a" * 10: 3, "b" * 10: 2}
    assert history.previous(out, "a" * 10).revision == "b" * 10


def test_history_beyond_the_limit_is_pruned_unless_still_on_ecsm():
    before = annotated(("a" * 10, 1), ("b" * 10, 2), ("c" * 10, 3), ("d" * 10, 4))
    out = history.updated_annotations(before, current="d" * 10, template={},
                                      history_limit=1, on_ecsm={"a" * 10})
    assert sorted(history.records(out)) == ["a" * 10, "c" * 10, "d" * 10]


def test_unreadable_annotations_are_ignored_when_reading():
    assert history.records({history.PREFIX + "x": "{not json", "y": "1"}) == {}


def graph(**deps: list[str]) -> dependencies.Getter:
    objs = {n: {"spec": {"dependsOn": d}} for n, d in deps.items()}
    return lambda name: objs.get(name)


@pytest.mark.parametrize(("deps", "cycle"), [
    ({"a": ["b"], "b": ["a"]}, ("a", "b", "a")),
    ({"a": ["b"], "b": ["c"], "c": ["a"]}, ("a", "b", "c", "a")),
    ({"a": ["b", "c"], "b": ["c"], "c": []}, ()),          # a diamond is no cycle
    ({"a": ["b"], "b": ["c"], "c": ["b"]}, ()),            # a cycle a is not part of
    ({"a": ["missing"]}, ()),
])
def test_a_cycle_is_found_only_through_the_service_itself(deps, cycle):
    assert dependencies.find_cycle("a", deps["a"], graph(**deps)) == cycle


def test_a_dependency_counts_only_when_available_and_not_deleting():
    ok = {"status": {"conditions": [{"type": "Available", "status": "True"}]}}
    assert dependencies.is_available(ok)
    assert not dependencies.is_available({**ok, "metadata": {"deletionTimestamp": "x"}})
    assert not dependencies.is_available({"status": {"conditions": [
        {"type": "Available", "status": "False"}]}})


def obj(generation=2, observed=2, replicas=3, updated=3, available=3, total=3,
        progressing=("True", "NewRevisionAvailable")):
    return {"metadata": {"name": "web", "generation": generation},
            "spec": {"deploymentStrategy": {"type": "Dynamic", "replicas": replicas}},
            "status": {"observedGeneration": observed, "replicas": total,
                       "updatedReplicas": updated, "availableReplicas": available,
                       "conditions": [{"type": "Progressing", "status": progressing[0],
                                       "reason": progressing[1], "message": "m"}]}}


@pytest.mark.parametrize(("state", "done", "needle"), [
    (obj(observed=1), False, "to be observed"),
    (obj(progressing=("False", "WaitingForDependencies")), False, "WaitingForDependencies"),
    (obj(updated=1, total=4), False, "1 out of 3 new replicas"),
    (obj(total=4), False, "1 old replicas are pending termination"),
    (obj(available=2), False, "2 of 3 updated replicas are available"),
    (obj(), True, "successfully rolled out"),
])
def test_rollout_status_says_what_it_waits_for(state, done, needle):
    got_done, line = rollout_state(state)
    assert got_done is done and needle in line
