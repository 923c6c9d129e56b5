"""Capacity arithmetic of the service controller's admission: where new instances fit,
what they reserve, and the shared figures that never give one room to two workers."""

from __future__ import annotations

from dataclasses import dataclass

from ecsm_actors.api.quantity import to_mib
from ecsm_actors.controllers.service.admission import Admission
from ecsm_actors.controllers.service.capacity import (
    DEFAULT_RESERVATION,
    MIB,
    Demand,
    NodeRoom,
    Rooms,
    memory_of,
    place,
    reserve,
)
from ecsm_actors.controllers.service.model import (
    ContainerView,
    Desired,
    Plan,
    Policy,
    RevisionView,
)
from ecsm_actors.controllers.service.plan import plan


def rooms(**free_mib: int) -> dict[str, NodeRoom]:
    return {n.replace("_", "-"): NodeRoom(name=n.replace("_", "-"), total=1024 * MIB,
                                          free=f * MIB)
            for n, f in free_mib.items()}


def test_dynamic_instances_fit_by_whole_slots_spreading_over_the_freest_nodes() -> None:
    r = rooms(node_1=600, node_2=300, node_3=1000)
    got = place(r, Demand(memory=256 * MIB, nodes=("node-1", "node-2", "node-3"), count=5))
    assert sorted(got) == ["node-1", "node-1", "node-3", "node-3", "node-3"]
    assert got[0] == "node-3"
    assert len(place(r, Demand(memory=256 * MIB, nodes=("node-1", "node-2", "node-3"),
                               count=9))) == 6  # 2 + 1 + 3 whole slots


def test_dynamic_demand_is_cut_to_what_fits_and_skips_down_nodes() -> None:
    r = rooms(node_1=300, node_2=1000)
    r["node-2"] = NodeRoom(name="node-2", total=1024 * MIB, free=1000 * MIB, up=False)
    assert place(r, Demand(memory=256 * MIB, nodes=("node-1", "node-2"), count=3)) == (
        "node-1",)


def test_static_instances_fit_only_on_listed_nodes_with_room() -> None:
    r = rooms(node_1=100, node_2=512, node_3=600)
    assert place(r, Demand.on_nodes(512 * MIB, ["node-1", "node-2", "node-3"])) == (
        "node-2", "node-3")


def test_a_node_without_figures_is_not_limited() -> None:
    r = {"node-1": NodeRoom(name="node-1", total=0, free=0)}
    assert place(r, Demand(memory=512 * MIB, nodes=("node-1",), count=3)) == ("node-1",) * 3


def test_reserve_takes_and_gives_back_room_per_placement() -> None:
    r = rooms(node_1=1000)
    taken = reserve(r, ["node-1", "node-1"], 256 * MIB)
    assert taken["node-1"].free == 488 * MIB
    assert reserve(taken, ["node-1"], 256 * MIB, release=True)["node-1"].free == 744 * MIB


def test_an_instance_reserves_its_template_limit_else_its_image_limit_else_the_default() -> None:
    limits = {"resources": {"limits": {"memory": "300Mi"}}}
    image = {"sylixos": {"resources": {"memory": {"memoryLimitMB": 128}}}}
    assert memory_of(limits, image, to_mib) == 300 * MIB
    assert memory_of({}, image, to_mib) == 128 * MIB
    assert memory_of({}, {"sylixos": {"resources": None}}, to_mib) == DEFAULT_RESERVATION


@dataclass
class Cap:
    name: str
    memory_total: int
    memory_free: int
    online: bool = True
    id: str = ""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_assumed_placements_hold_until_a_refresh_after_they_were_applied() -> None:
    clock, ecsm_free = Clock(), [1024 * MIB]
    shared = Rooms(fetch=lambda: [Cap("node-1", 1024 * MIB, ecsm_free[0])], max_age=1.0,
                   clock=clock)
    assert shared.get()["node-1"].free == 1024 * MIB
    token = shared.assume(["node-1"], 512 * MIB)
    assert shared.get()["node-1"].free == 512 * MIB  # a second worker sees it taken
    clock.now = 2.0
    assert shared.get()["node-1"].free == 512 * MIB  # in flight: still assumed
    clock.now = 2.5
    ecsm_free[0] = 512 * MIB
    shared.applied(token)
    assert shared.get()["node-1"].free == 512 * MIB  # not refreshed since: still assumed
    clock.now = 4.0
    assert shared.get()["node-1"].free == 512 * MIB  # the refresh shows it, once


def test_a_forgotten_assumption_gives_its_room_back() -> None:
    shared = Rooms(fetch=lambda: [Cap("node-1", 1024 * MIB, 1024 * MIB)], max_age=10.0,
                   clock=Clock())
    token = shared.assume(["node-1"], 1024 * MIB)
    assert shared.get()["node-1"].free == 0
    shared.forget(token)
    assert shared.get()["node-1"].free == 1024 * MIB


class FakeNodes:
    def __init__(self, caps: list[Cap]) -> None:
        self.caps = caps

    def capacities(self) -> dict[str, Cap]:
        return {c.name: c for c in self.caps}


class FakeClientset:
    def __init__(self, caps: list[Cap]) -> None:
        self.nodes = FakeNodes(caps)


def refused_world(free_mib: int) -> tuple[Admission, Plan, list[RevisionView]]:
    views = [RevisionView(revision="r1", service_id="s1", factor=2, node_names=("node-1",),
                          online=1, containers=(
                              ContainerView(name="c1", node_name="node-1", status="running"),
                              ContainerView(name="c2", node_name="node-1", status="exited",
                                            refused=True)))]
    proposed = plan(Desired(revision="r1", policy=Policy.DYNAMIC, replicas=2,
                            nodes=("node-1",), max_surge=1, max_unavailable=0,
                            history_limit=2), views)
    assert [type(a).__name__ for a in proposed.actions] == ["Restart"]
    admission = Admission(FakeClientset([Cap("node-1", 1024 * MIB, free_mib * MIB)]),
                          max_age=10.0, claim_ttl=5.0, clock=Clock())
    return admission, proposed, views


def test_a_container_ecsm_refused_is_started_again_only_into_room() -> None:
    admission, proposed, views = refused_world(free_mib=100)
    decision = admission.admit("default/a", 0, proposed, views, 512 * MIB, Policy.DYNAMIC,
                               ("node-1",))
    assert decision.plan.actions == () and decision.short == 1
    assert decision.missing is not None and decision.missing.count == 1
    admission, proposed, views = refused_world(free_mib=512)
    decision = admission.admit("default/a", 0, proposed, views, 512 * MIB, Policy.DYNAMIC,
                               ("node-1",))
    assert decision.plan.actions == proposed.actions and decision.placements == ("node-1",)


def test_room_a_waiting_higher_priority_service_could_use_is_kept_from_lower_ones() -> None:
    admission, proposed, views = refused_world(free_mib=512)
    admission.claim("default/boss", 100, Demand(memory=512 * MIB, nodes=("node-1",), count=1))
    decision = admission.admit("default/a", 0, proposed, views, 512 * MIB, Policy.DYNAMIC,
                               ("node-1",))
    assert decision.plan.actions == () and decision.short == 1
    admission.claim("default/boss", 100, None)  # satisfied, or gone
    decision = admission.admit("default/a", 0, proposed, views, 512 * MIB, Policy.DYNAMIC,
                               ("node-1",))
    assert decision.short == 0


def test_the_controller_names_the_capacity_conditions_as_the_api_does() -> None:
    from ecsm_actors.api import service as api_service
    from ecsm_actors.controllers.service import status

    assert (status.PREEMPTED, status.REPLICA_FAILURE) == (api_service.PREEMPTED,
                                                          api_service.REPLICA_FAILURE)
