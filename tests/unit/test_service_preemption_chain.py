"""A victim short of its instances preempts strictly lower priorities to get them back,
never its preemptor nor an equal; a rollout that cannot surge uses maxUnavailable."""

from __future__ import annotations

import pytest

from ecsm_actors.controllers.service.controller import ServiceReconciler
from tests.unit.service_world import World
from tests.unit.test_service_preemption import (
    NODES,
    cond,
    factor,
    passes,
    pressed_world,
    running,
    svc,
)


def restart(w: World) -> None:
    """A new controller process: the in-memory claims are gone, the records stay."""
    w.reconciler = ServiceReconciler(w.cfg, w.ecsm, wall_clock=w.clock, monotonic=w.clock)


def victim_of_crit() -> World:
    """Six slots of 512 MiB: mid (priority 5) gave one instance to crit (1000), then crit
    shrank and, across a controller restart, low (priority 1) took the freed room."""
    w = pressed_world()
    w.apply(svc("mid", 5))
    w.apply(svc("crit", 1000, replicas=2))
    w.settle("mid", "crit")
    w.apply(svc("crit", 1000, replicas=4))
    passes(w, "crit", "mid")
    assert running(w, "crit") == 4 and factor(w, "mid") == 2
    w.apply(svc("crit", 1000, replicas=3))
    passes(w, "crit", count=2)
    restart(w)
    w.apply(svc("low", 1, replicas=1))
    passes(w, "low", count=2)
    assert running(w, "low") == 1 and factor(w, "mid") == 2
    return w


def test_a_victim_preempts_a_lower_priority_holding_its_room_to_get_it_back() -> None:
    w = victim_of_crit()
    passes(w, "mid", "low", "crit")
    assert running(w, "mid") == 3 and running(w, "crit") == 3 and factor(w, "low") == 0
    assert cond(w, "mid", "Preempted")[:2] == ("False", "Restored")
    status, reason, message = cond(w, "low", "Preempted")
    assert (status, reason) == ("True", "PreemptedByHigherPriority")
    assert "1 instance(s) held for default/mid (priority 5)" in message
    given = w.get("mid")["status"]["preemptionsGiven"]
    assert [(g["victim"], g["instances"]) for g in given] == [("default/low", 1)]


def test_a_victim_never_takes_back_from_its_preemptor_nor_from_an_equal() -> None:
    w = victim_of_crit()
    w.apply(svc("low", 5, replicas=1))  # low rises to mid's level: nothing below mid
    passes(w, "mid", "low", "crit")
    assert factor(w, "mid") == 2 and running(w, "low") == 1 and running(w, "crit") == 3
    assert cond(w, "mid", "Preempted")[0] == "True"
    assert cond(w, "low", "Preempted") is None
    assert "preemptionsGiven" not in w.get("mid")["status"]


def test_a_preemptor_lowered_below_its_victim_is_still_never_preempted_by_it() -> None:
    w = victim_of_crit()
    w.apply(svc("low", 5, replicas=1))  # an equal: not a candidate
    w.apply(svc("crit", 1, replicas=3))  # now below mid, holding mid's room
    passes(w, "mid", "low", "crit")
    assert running(w, "crit") == 3 and cond(w, "crit", "Preempted") is None
    assert factor(w, "mid") == 2 and cond(w, "mid", "Preempted")[0] == "True"


# -- a rollout on full nodes -------------------------------------------------------------

ROLLOUT = {"maxSurge": 1, "maxUnavailable": 1}


def revisions(w: World, name: str) -> tuple[int, list[int]]:
    """The current revision's factor on ECSM, and the old revisions' factors."""
    current = w.get(name)["status"]["currentRevision"]
    mine = {n: v[0] for n, v in w.ecsm_services().items() if n.startswith(f"default.{name}.")}
    return (sum(f for n, f in mine.items() if current in n),
            sorted(f for n, f in mine.items() if current not in n))


def rolled_on_full_nodes(*, max_unavailable: int, static: bool = False) -> World:
    """Six slots of 512 MiB held by two services of priority 0; ``roll`` gets a new image."""
    w = pressed_world()
    rollout = {**ROLLOUT, "maxUnavailable": max_unavailable}

    def roll(image: str) -> dict:
        obj = svc("roll", 0, image=image, rollout=rollout)
        if static:
            obj["spec"]["deploymentStrategy"] = {"type": "Static", "nodes": list(NODES)}
        return obj

    w.apply(roll("app@1.0"))
    w.apply(svc("other", 0))
    w.settle("roll", "other")
    w.apply(roll("app@1.1"))
    passes(w, "roll", "other", count=12)
    return w


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_a_rollout_that_cannot_surge_uses_max_unavailable_and_finishes(static: bool) -> None:
    w = rolled_on_full_nodes(max_unavailable=1, static=static)
    new, olds = revisions(w, "roll")
    assert new == 3 and set(olds) <= {0}
    assert running(w, "roll") == 3 and running(w, "other") == 3
    assert cond(w, "roll", "Available")[0] == "True"
    assert (cond(w, "roll", "ReplicaFailure") or ("False",))[0] == "False"


def test_a_rollout_without_max_unavailable_waits_for_room_and_says_so() -> None:
    w = rolled_on_full_nodes(max_unavailable=0)
    assert running(w, "roll") == 3 and running(w, "other") == 3
    new, olds = revisions(w, "roll")
    assert new == 0 and olds == [3]
    status, reason, _ = cond(w, "roll", "ReplicaFailure")
    assert (status, reason) == ("True", "InsufficientMemory")


# -- which instances a Dynamic victim loses ------------------------------------------------


def sized(name: str, priority: int, mib: int, *, replicas: int = 1,
          nodes: tuple[str, ...] = ()) -> dict:
    obj = svc(name, priority, replicas=replicas)
    obj["spec"]["template"]["resources"] = {"limits": {"memory": f"{mib}Mi"}}
    if nodes:
        obj["spec"]["deploymentStrategy"] = {"type": "Static", "nodes": list(nodes)}
    return obj


def test_a_dynamic_victim_loses_its_instances_on_the_node_the_preemptor_needs() -> None:
    w = pressed_world()
    w.apply(sized("spread", 0, 256, replicas=5))  # 2 on node-1, 2 on node-2, 1 on node-3
    w.settle("spread")
    w.apply(sized("pinned", 50, 512, nodes=("node-1", "node-2")))
    w.settle("pinned")
    w.apply(sized("crit", 1000, 512, nodes=("node-2",)))  # room only where spread is
    passes(w, "crit", "spread", "pinned")
    assert running(w, "crit") == 1 and running(w, "pinned") == 2
    given = w.get("crit")["status"]["preemptionsGiven"]
    assert [(g["victim"], g["instances"]) for g in given] == [("default/spread", 2)]
    (spread,) = [v for n, v in w.ecsm_services().items() if n.startswith("default.spread.")]
    assert "node-2" not in spread[1]  # node-3 had room: it went back there
    assert running(w, "spread") == 5


def test_a_static_service_moved_to_a_full_node_stays_where_it_runs_until_there_is_room() -> None:
    w = pressed_world()
    w.apply(sized("moved", 0, 512, nodes=("node-1",)))
    w.apply(sized("peer", 0, 512, nodes=("node-3",)))
    w.apply(sized("peer2", 0, 512, nodes=("node-3",)))
    w.settle("moved", "peer", "peer2")
    w.apply(sized("moved", 0, 512, nodes=("node-3",)))  # no room there, nobody below it
    passes(w, "moved", "peer", "peer2")
    (moved,) = [v for n, v in w.ecsm_services().items() if n.startswith("default.moved.")]
    assert moved[1] == ["node-1"] and running(w, "moved") == 1
    assert cond(w, "moved", "ReplicaFailure")[:2] == ("True", "InsufficientMemory")
    w.registry.delete("ECSMService", "default", "peer2")
    passes(w, "peer2", "moved", "peer")
    (moved,) = [v for n, v in w.ecsm_services().items() if n.startswith("default.moved.")]
    assert moved[1] == ["node-3"] and running(w, "moved") == 1
