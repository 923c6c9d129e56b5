"""Victim selection as Kubernetes' preemption does it, and restoration order."""

from __future__ import annotations

import pytest

from ecsm_actors.cli import desired_views
from ecsm_actors.controllers.service.capacity import MIB, Demand, NodeRoom
from ecsm_actors.controllers.service.controller import ServiceReconciler
from ecsm_actors.controllers.service.preemption import (
    Holding,
    Waiting,
    dependencies_of,
    restoration_order,
    restoration_order as order,
    select_victims,
)
from ecsm_actors.errors import NotFound
from tests.unit.service_world import World, esvc

NODES = ("node-1", "node-2", "node-3")


def full(*names: str, free: int = 0) -> dict[str, NodeRoom]:
    return {n: NodeRoom(name=n, total=1024 * MIB, free=free * MIB) for n in names}


def hold(owner: str, priority: int, node: str, count: int = 1, mib: int = 256) -> Holding:
    return Holding(owner=f"default/{owner}", priority=priority, node=node,
                   memory=mib * MIB, count=count)


def demand(count: int, mib: int = 256, nodes: tuple[str, ...] = NODES) -> Demand:
    return Demand(memory=mib * MIB, nodes=nodes, count=count)


def victims(selection) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {e.owner.split("/")[1]: e.instances for e in selection.evictions}


def test_the_lowest_priority_instances_go_first() -> None:
    holdings = [hold("mid", 50, "node-1", 4), hold("low", 10, "node-2", 4),
                hold("lower", 5, "node-3", 4)]
    got = select_victims(demand(1), full(*NODES), holdings, owner="default/p", priority=100)
    assert victims(got) == {"lower": 1}
    assert got.placements == ("node-3",)


def test_the_fewest_instances_are_removed_for_the_same_priority() -> None:
    # node-1 needs two small victims for one big instance, node-2 needs one big one
    holdings = [hold("a", 10, "node-1", 4, mib=256), hold("b", 10, "node-2", 2, mib=512)]
    got = select_victims(demand(1, mib=512, nodes=("node-1", "node-2")),
                         full("node-1", "node-2"), holdings, owner="default/p", priority=100)
    assert victims(got) == {"b": 1}


def test_only_what_is_missing_is_taken_and_higher_ones_are_reprieved() -> None:
    # 256 MiB free already: one 256 MiB victim makes room for 512 MiB
    holdings = [hold("low", 1, "node-1", 1, mib=256), hold("mid", 20, "node-1", 2, mib=256)]
    got = select_victims(demand(1, mib=512, nodes=("node-1",)), full("node-1", free=256),
                         holdings, owner="default/p", priority=100)
    assert victims(got) == {"low": 1}


def test_equal_and_higher_priorities_are_never_victims() -> None:
    holdings = [hold("peer", 100, "node-1", 4), hold("boss", 500, "node-2", 4)]
    got = select_victims(demand(2, nodes=("node-1", "node-2")), full("node-1", "node-2"),
                         holdings, owner="default/p", priority=100)
    assert got.evictions == () and got.placements == ()


def test_dependencies_are_protected_transitively() -> None:
    deps = {"p": ["web"], "web": ["db"], "db": []}
    protected = {f"default/{d}" for d in dependencies_of("p", lambda n: deps.get(n, []))}
    assert protected == {"default/web", "default/db"}
    holdings = [hold("db", 1, "node-1", 4), hold("web", 2, "node-1", 4),
                hold("batch", 50, "node-1", 4)]
    got = select_victims(demand(1, nodes=("node-1",)), full("node-1"), holdings,
                         owner="default/p", priority=100, protected=protected)
    assert victims(got) == {"batch": 1}


def test_its_own_instances_are_never_victims() -> None:
    got = select_victims(demand(1, nodes=("node-1",)), full("node-1"),
                         [hold("p", 1, "node-1", 4)], owner="default/p", priority=100)
    assert got.evictions == ()


def test_several_instances_spread_victims_by_cost_and_count_them_once() -> None:
    holdings = [hold("low", 1, n, 4) for n in NODES]
    got = select_victims(demand(3), full(*NODES), holdings, owner="default/p", priority=1000)
    assert victims(got) == {"low": 3}
    assert sorted(got.placements) == sorted(NODES) or len(got.placements) == 3


def test_static_demand_preempts_on_each_listed_node_it_can() -> None:
    holdings = [hold("low", 1, "node-1"), hold("peer", 9, "node-2")]
    got = select_victims(Demand.on_nodes(256 * MIB, ["node-1", "node-2"]),
                         full("node-1", "node-2"), holdings, owner="default/p", priority=9)
    assert victims(got) == {"low": 1}
    assert got.placements == ("node-1",)
    assert got.evictions[0].nodes == ("node-1",)


def test_down_and_unreported_nodes_are_not_preempted_for_dynamic_demand() -> None:
    r = full("node-1")
    r["node-1"] = NodeRoom(name="node-1", total=1024 * MIB, free=0, up=False)
    got = select_victims(demand(1, nodes=("node-1", "node-9")), r, [hold("low", 1, "node-1")],
                         owner="default/p", priority=100)
    assert got.evictions == ()


def test_victims_are_restored_highest_priority_first_then_oldest() -> None:
    waiting = [Waiting(owner="a", priority=1, since="2026-01-01T00:00:03Z"),
               Waiting(owner="b", priority=7, since="2026-01-01T00:00:05Z"),
               Waiting(owner="c", priority=7, since="2026-01-01T00:00:01Z")]
    assert [w.owner for w in restoration_order(waiting)] == ["c", "b", "a"]
    assert order([]) == []


# -- the controller over the in-process simulator and registry ---------------------------

GIB = 1 << 30


def pressed_world(node_gib: int = 1) -> World:
    """Three nodes of ``node_gib`` GiB of container memory."""
    w = World(nodes=3)
    for n in NODES:
        w.admin("POST", f"nodes/{n}/memory", {"bytes": node_gib * GIB})
    return w


def svc(name: str, priority: int, replicas: int = 3, image: str = "app@1.0",
        **spec: object) -> dict:
    obj = esvc(name, image=image, replicas=replicas,
               resources={"limits": {"memory": "512Mi"}})
    obj["spec"].update(priority=priority, **spec)
    return obj


def passes(w: World, *names: str, count: int = 8) -> None:
    """Reconcile every name, ``count`` rounds, time moving past the start delay."""
    for _ in range(count):
        for n in names:
            try:
                w.reconcile(n)
            except NotFound:
                pass
        w.advance(1.1)


def factor(w: World, name: str) -> int:
    return sum(f for n, (f, _, _) in w.ecsm_services().items() if n.startswith(f"default.{name}."))


def running(w: World, name: str) -> int:
    return w.totals(f"default.{name}.")[1]


def cond(w: World, name: str, type_: str) -> tuple[str, str, str] | None:
    c = w.condition(name, type_)
    return (c["status"], c["reason"], c["message"]) if c else None


def filled() -> World:
    w = pressed_world()
    w.apply(svc("low", 1))
    w.apply(svc("mid", 5))
    w.settle("low", "mid")
    assert running(w, "low") == running(w, "mid") == 3
    return w


def test_a_higher_priority_service_preempts_the_lowest_and_becomes_available() -> None:
    w = filled()
    w.apply(svc("crit", 1000))
    passes(w, "crit", "low", "mid")
    assert running(w, "crit") == 3
    assert cond(w, "crit", "Available")[0] == "True"
    assert factor(w, "low") == 0 and running(w, "mid") == 3
    status, reason, message = cond(w, "low", "Preempted")
    assert (status, reason) == ("True", "PreemptedByHigherPriority")
    assert "3 instance(s) held for default/crit (priority 1000)" in message
    assert w.get("low")["spec"]["deploymentStrategy"]["replicas"] == 3  # spec untouched
    assert cond(w, "low", "Available")[:2] == ("False", "Preempted")
    given = w.get("crit")["status"]["preemptionsGiven"]
    assert [(g["victim"], g["instances"]) for g in given] == [("default/low", 3)]


def test_victims_come_back_to_their_spec_when_the_preemptor_is_deleted() -> None:
    w = filled()
    w.apply(svc("crit", 1000))
    passes(w, "crit", "low", "mid")
    w.registry.delete("ECSMService", "default", "crit")
    passes(w, "crit", "low", "mid")
    assert running(w, "low") == 3 and running(w, "mid") == 3
    assert cond(w, "low", "Preempted")[:2] == ("False", "Restored")
    assert "preemptions" not in w.get("low")["status"]


def test_never_waits_with_a_reason_and_takes_nothing() -> None:
    w = filled()
    w.apply(svc("patient", 1000, preemptionPolicy="Never"))
    passes(w, "patient", "low", "mid")
    assert factor(w, "patient") == 0 and running(w, "low") == 3 and running(w, "mid") == 3
    status, reason, message = cond(w, "patient", "ReplicaFailure")
    assert (status, reason) == ("True", "InsufficientMemory")
    assert "3 instance(s) of 512 MiB do not fit" in message and "Never" in message
    assert cond(w, "low", "Preempted") is None


def test_equal_priority_is_never_preempted() -> None:
    w = filled()
    w.apply(svc("peer", 5, replicas=1))
    w.apply(svc("low", 5))  # low rises to mid's level: nothing below the peer
    passes(w, "peer", "low", "mid")
    assert factor(w, "peer") == 0 and running(w, "low") == running(w, "mid") == 3
    assert "no instances of lower priority" in cond(w, "peer", "ReplicaFailure")[2]


def test_a_dependency_of_the_preemptor_is_never_a_victim() -> None:
    w = filled()
    w.apply(svc("crit", 1000, replicas=2, dependsOn=["low"]))
    passes(w, "crit", "low", "mid")
    assert running(w, "crit") == 2 and running(w, "low") == 3
    assert factor(w, "mid") == 1
    assert "held for default/crit" in cond(w, "mid", "Preempted")[2]


def test_a_partial_fit_takes_only_the_missing_instances() -> None:
    w = pressed_world()
    w.apply(svc("low", 1, replicas=5))  # one slot of 512 MiB left
    w.settle("low")
    w.apply(svc("crit", 1000, replicas=2))
    passes(w, "crit", "low")
    assert running(w, "crit") == 2 and factor(w, "low") == 4


def test_victims_are_restored_highest_priority_first() -> None:
    w = filled()
    w.apply(svc("crit", 1000, replicas=6))
    passes(w, "crit", "low", "mid")
    assert factor(w, "low") == factor(w, "mid") == 0 and running(w, "crit") == 6
    w.apply(svc("crit", 1000, replicas=3))
    passes(w, "crit", "low", "mid")  # low is looked at first in every round
    assert running(w, "mid") == 3 and factor(w, "low") == 0
    assert cond(w, "mid", "Preempted")[:2] == ("False", "Restored")
    assert cond(w, "low", "Preempted")[0] == "True"


def test_a_restored_victim_does_not_preempt_its_preemptor_back() -> None:
    w = filled()
    w.apply(svc("crit", 1000))
    passes(w, "crit", "low", "mid")
    w.apply(svc("low", 1, replicas=4))  # wants even more: there is nobody below it
    passes(w, "low", "crit", "mid")
    assert running(w, "crit") == 3 and factor(w, "low") == 0


def test_a_crash_between_the_record_and_the_scale_down_evicts_nothing_twice() -> None:
    w = filled()
    w.apply(svc("crit", 1000, replicas=1))
    real = w.transport.send
    puts = []

    def crash_on_victim_scale(method, url, body, timeout):  # type: ignore[no-untyped-def]
        if method == "PUT" and url.endswith("/service") and b"default.low." in (body or b""):
            puts.append(url)
            raise RuntimeError("controller killed")
        return real(method, url, body, timeout)

    w.transport.send = crash_on_victim_scale  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        w.reconcile("crit")
    assert puts and w.get("low")["status"]["preemptions"][0]["instances"] == 1
    w.transport.send = real  # type: ignore[method-assign]
    restarted = ServiceReconciler(w.cfg, w.ecsm, wall_clock=w.clock, monotonic=w.clock)
    w.reconciler = restarted
    passes(w, "crit", "low", "mid")
    assert running(w, "crit") == 1
    assert factor(w, "low") == 2 and factor(w, "mid") == 3
    assert w.get("low")["status"]["preemptions"][0]["instances"] == 1


def test_get_wide_shows_priority_and_describe_shows_preemptions_both_ways() -> None:
    w = filled()
    w.apply(svc("crit", 1000))
    passes(w, "crit", "low", "mid")
    cols, rows = desired_views.table("ECSMService", [w.get("crit"), w.get("low")], wide=True,
                                     all_namespaces=False, now=w.now)
    assert [dict(zip(cols, r, strict=True))["PRIORITY"] for r in rows] == [1000, 1]
    victim = desired_views.describe_service(w.get("low"), now=w.now + 120)
    suffered = victim.split("Preemptions suffered:")[1].splitlines()
    assert suffered[1].split()[:2] == ["SINCE", "PREEMPTOR"]
    assert " ago)" in suffered[2] and "default/crit   1000" in suffered[2]
    assert "preempted by default/crit (priority 1000)" in suffered[2]
    assert "Preemptions given:     <none>" in victim
    preemptor = desired_views.describe_service(w.get("crit"), now=w.now + 120)
    given = preemptor.split("Preemptions given:")[1].splitlines()
    assert "default/low" in given[2] and " ago)" in given[2]
    assert "Preemptions suffered:  <none>" in preemptor
    assert "  Preemption policy:    PreemptLowerPriority" in preemptor.splitlines()


def test_a_rollout_surge_on_full_nodes_borrows_one_lower_instance_and_gives_it_back() -> None:
    w = filled()
    w.apply(svc("mid", 5, image="app@1.1"))
    low_sizes = []
    for _ in range(12):
        passes(w, "mid", "low", count=1)
        low_sizes.append(factor(w, "low"))
    services = w.ecsm_services()
    current = [n for n in services if n.startswith("default.mid.") and services[n][0] == 3]
    assert len(current) == 1 and services[current[0]][2] == 3
    assert w.get("mid")["status"]["currentRevision"] in current[0]
    assert min(low_sizes) == 2  # one instance gave room for the surge, no more
    assert factor(w, "low") == 3 and running(w, "low") == 3  # and came back after it
    assert cond(w, "low", "Preempted")[:2] == ("False", "Restored")


def test_a_node_going_down_preempts_for_the_critical_one_and_its_return_restores() -> None:
    w = pressed_world()
    w.apply(svc("low", 1))
    w.apply(svc("crit", 1000))
    w.settle("low", "crit")
    w.admin("POST", "nodes/node-3/down")  # two nodes left: room for 4 instances of 6
    passes(w, "crit", "low")
    assert running(w, "crit") == 3 and running(w, "low") == 1
    assert cond(w, "low", "Preempted")[0] == "True"
    w.admin("POST", "nodes/node-3/up")
    passes(w, "crit", "low")
    assert running(w, "crit") == 3 and running(w, "low") == 3
    assert cond(w, "low", "Preempted")[:2] == ("False", "Restored")


def test_a_replica_count_raised_as_the_hpa_does_goes_through_the_same_admission() -> None:
    w = filled()
    w.apply(svc("crit", 1000, replicas=1))
    passes(w, "crit", "low", "mid")
    assert running(w, "crit") == 1 and factor(w, "low") == 2
    hpa_written = w.get("crit")
    hpa_written["spec"]["deploymentStrategy"]["replicas"] = 3  # only this field, as the HPA
    w.registry.update(hpa_written)
    passes(w, "crit", "low", "mid")
    assert running(w, "crit") == 3 and factor(w, "low") == 0 and running(w, "mid") == 3
    assert w.get("low")["status"]["preemptions"][0]["instances"] == 3


def test_a_crash_after_a_restoration_is_recorded_gives_nothing_back_twice() -> None:
    w = filled()
    w.apply(svc("crit", 1000))
    passes(w, "crit", "low", "mid")
    w.apply(svc("crit", 1000, replicas=1))
    passes(w, "crit", count=2)  # room for two instances of low again
    real = w.transport.send

    def crash_on_low_scale_up(method, url, body, timeout):  # type: ignore[no-untyped-def]
        if method == "PUT" and b"default.low." in (body or b""):
            raise RuntimeError("controller killed")
        return real(method, url, body, timeout)

    w.transport.send = crash_on_low_scale_up  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        w.reconcile("low")
    assert w.get("low")["status"]["preemptions"][0]["instances"] == 1  # recorded first
    assert factor(w, "low") == 0
    w.transport.send = real  # type: ignore[method-assign]
    w.reconciler = ServiceReconciler(w.cfg, w.ecsm, wall_clock=w.clock, monotonic=w.clock)
    passes(w, "low", "crit", "mid")
    assert running(w, "low") == 2 and running(w, "crit") == 1 and running(w, "mid") == 3
    assert w.get("low")["status"]["preemptions"][0]["instances"] == 1
    assert cond(w, "low", "Preempted")[0] == "True"
    assert (cond(w, "low", "ReplicaFailure") or ("False",))[0] == "False"


def test_a_static_victim_loses_the_chosen_nodes_and_gets_them_back() -> None:
    w = pressed_world()
    low = svc("low", 1)
    low["spec"]["deploymentStrategy"] = {"type": "Static", "nodes": list(NODES)}
    w.apply(low)
    w.apply(svc("mid", 5))
    w.settle("low", "mid")
    w.apply(svc("crit", 1000, replicas=2))
    passes(w, "crit", "low", "mid")
    assert running(w, "crit") == 2 and running(w, "mid") == 3
    record = w.get("low")["status"]["preemptions"][0]
    (placed,) = [v for n, v in w.ecsm_services().items() if n.startswith("default.low.")]
    assert record["instances"] == 2 and len(record["nodes"]) == 2
    assert placed[1] == sorted(set(NODES) - set(record["nodes"]))
    w.registry.delete("ECSMService", "default", "crit")
    passes(w, "crit", "low", "mid")
    assert running(w, "low") == 3 and "preemptions" not in w.get("low")["status"]
