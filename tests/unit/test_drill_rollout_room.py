"""The drill under capacity pressure checks that rollouts finish: an old revision may keep
instances only while the rollout is held for lack of room with its maxUnavailable spent."""

from __future__ import annotations

import dataclasses

import pytest

from ecsm_actors.drill import invariants as inv
from tests.unit.test_drill_capacity import World, plan

STALE = "default/rolling: stale revision default.rolling.0123456789 still at factor"


def rolling(*, max_unavailable: int, new: int, old: int) -> World:
    """``rolling`` (3 replicas, ReplicaFailure True) with ``new`` instances of its current
    revision and ``old`` of an older one on ECSM."""
    w = World().add(plan("rolling", 0, replicas=3), online=new, held={"node-1": 512},
                    conditions=("ReplicaFailure",))
    obj = w.objects[("ECSMService", "default/rolling")]
    obj["spec"]["rollout"] = {"maxSurge": 1, "maxUnavailable": max_unavailable}
    w.rows[0] = dataclasses.replace(w.rows[0], factor=new)
    w.rows.append(dataclasses.replace(w.rows[0], id="id-old",
                                      name="default.rolling.0123456789", factor=old))
    return w


@pytest.mark.parametrize(("max_unavailable", "new", "old"), [(0, 1, 2), (1, 1, 1)],
                         ids=["no-budget", "budget-spent"])
def test_a_rollout_held_for_room_with_no_budget_left_may_keep_its_old_revision(
        max_unavailable: int, new: int, old: int) -> None:
    w = rolling(max_unavailable=max_unavailable, new=new, old=old)
    assert inv.check_ecsm_matches_spec(w.snap()).ok


def test_a_rollout_with_max_unavailable_left_is_stuck_not_waiting() -> None:
    w = rolling(max_unavailable=1, new=1, old=2)
    violations = inv.check_ecsm_matches_spec(w.snap()).violations
    assert f"{STALE} 2" in violations


def test_a_preempted_service_spends_its_budget_against_what_it_may_run() -> None:
    w = rolling(max_unavailable=1, new=1, old=1)
    obj = w.objects[("ECSMService", "default/rolling")]
    obj["status"]["preemptions"] = [{"preemptor": "default/crit", "priority": 1000,
                                     "instances": 1}]
    assert f"{STALE} 1" in inv.check_ecsm_matches_spec(w.snap()).violations
    w.rows[0] = dataclasses.replace(w.rows[0], factor=0)  # the old one gave its room
    assert inv.check_ecsm_matches_spec(w.snap()).ok
