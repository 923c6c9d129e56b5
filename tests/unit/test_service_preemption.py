"""Victim selection as Kubernetes' preemption does it, and restoration order."""

from __future__ import annotations

from ecsm_actors.controllers.service.capacity import MIB, Demand, NodeRoom
from ecsm_actors.controllers.service.preemption import (
    Holding,
    Waiting,
    dependencies_of,
    restoration_order,
    restoration_order as order,
    select_victims,
)

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
