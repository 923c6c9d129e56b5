"""The drill under capacity pressure: the ``capacity-by-priority`` invariant (no service
short while strictly lower priorities hold the room it needs), the other invariants
accepting a service short on purpose, the pressured workload, and reading ECSM's memory."""

from __future__ import annotations

import copy
import dataclasses
import random
from typing import Any

import pytest

from ecsm_actors.drill import invariants as inv
from ecsm_actors.drill.capacity import check_capacity_by_priority, take_capacity
from ecsm_actors.drill.schedule import ActionKind, make_schedule
from ecsm_actors.drill.snapshot import (
    CapacityView,
    EcsmServiceView,
    NodeMemory,
    Snapshot,
    ecsm_name,
    revision_of,
)
from ecsm_actors.drill.workload import (
    PRESSURE_RATIO,
    TOP_PRIORITY,
    ServicePlan,
    demand_mb,
    generate_workload,
    pressure_node_memory,
    template,
    with_pressure,
)
from ecsm_actors.ecsm.simulator.app import Simulator
from ecsm_actors.ecsm.simulator.state import State
from tests.ecsm_sim import in_process_clientset

MIB = 1 << 20
NODES = ("node-1", "node-2")


def plan(name: str, priority: int, *, replicas: int = 1, static: bool = False,
         nodes: tuple[str, ...] = NODES, memory_mb: int = 256,
         depends_on: tuple[str, ...] = ()) -> ServicePlan:
    return ServicePlan(name=name, static=static, replicas=replicas, nodes=nodes,
                       image="app@1.0#sylixos", priority=priority, memory_mb=memory_mb,
                       depends_on=depends_on)


class World:
    """Registry objects, ECSM rows and node memory, built by hand."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.rows: list[EcsmServiceView] = []
        self.held: dict[str, dict[str, int]] = {}
        self.free = dict.fromkeys(NODES, 0)
        self.offline: set[str] = set()

    def add(self, p: ServicePlan, *, online: int, held: dict[str, int],
            conditions: tuple[str, ...] = (), never: bool = False) -> World:
        obj = p.manifest()
        obj["metadata"]["generation"] = 1
        if never:
            obj["spec"]["preemptionPolicy"] = "Never"
        want = len(p.nodes) if p.static else p.replicas
        obj["status"] = {
            "observedGeneration": 1, "replicas": online if conditions else want,
            "readyReplicas": online,
            "updatedReplicas": online, "currentRevision": revision_of(obj),
            "underlyingServiceIDs": [f"id-{p.name}"],
            "conditions": [{"type": "Available", "status": "True" if online >= want
                            else "False"}] + [{"type": c, "status": "True"}
                                              for c in conditions]}
        name = ecsm_name("default", p.name, revision_of(obj))
        self.objects[("ECSMService", p.key)] = obj
        self.rows.append(EcsmServiceView(
            id=f"id-{p.name}", name=name, factor=online if conditions else want,
            policy="static" if p.static else "dynamic", nodes=tuple(sorted(p.nodes)),
            instance_online=online, image="app@1.0"))
        self.held[name] = {n: size * MIB for n, size in held.items()}
        return self

    def snap(self) -> Snapshot:
        nodes = tuple(NodeMemory(name=n, total=1024 * MIB, free=self.free[n] * MIB,
                                 online=n not in self.offline) for n in NODES)
        return Snapshot(objects=copy.deepcopy(self.objects), ecsm=tuple(self.rows),
                        capacity=CapacityView(nodes=nodes, held=self.held))


def violations(w: World) -> tuple[str, ...]:
    return check_capacity_by_priority(w.snap()).violations


def test_services_that_run_in_full_hold_the_invariant() -> None:
    w = World().add(plan("low", 0), online=1, held={"node-1": 256}) \
        .add(plan("high", 100), online=1, held={"node-2": 256})
    result = check_capacity_by_priority(w.snap())
    assert result.ok and result.checked == 2


def test_a_short_service_while_a_lower_priority_holds_its_room_is_caught() -> None:
    w = World().add(plan("low", 0, replicas=4), online=4, held={"node-1": 512, "node-2": 512}) \
        .add(plan("high", 100, memory_mb=512), online=0, held={},
             conditions=("ReplicaFailure",))
    (violation,) = violations(w)
    assert violation == ("default/high (priority 100) runs 0/1, an instance needs 512 MiB; "
                         "node node-1 has 0 MiB free and lower priorities hold default/low "
                         "(priority 0) 512 MiB")


def test_equal_or_higher_priorities_holding_the_room_are_no_violation() -> None:
    w = World().add(plan("peer", 100, replicas=2), online=2, held={"node-1": 256,
                                                                  "node-2": 256}) \
        .add(plan("boss", 500, replicas=2), online=2, held={"node-1": 768, "node-2": 768}) \
        .add(plan("short", 100), online=0, held={}, conditions=("ReplicaFailure",))
    assert violations(w) == ()


def test_a_dependency_of_the_short_service_is_never_counted_as_room() -> None:
    w = World().add(plan("base", 0, static=True, nodes=("node-1",)), online=1,
                    held={"node-1": 1024}) \
        .add(plan("mid", 50, static=True, nodes=("node-2",), depends_on=("base",)),
             online=1, held={"node-2": 1024}) \
        .add(plan("top", 100, depends_on=("mid",)), online=0, held={},
             conditions=("ReplicaFailure",))
    assert violations(w) == ()


def test_preemption_policy_never_waits_for_free_room_only() -> None:
    w = World().add(plan("low", 0, replicas=2), online=2, held={"node-1": 1024,
                                                                "node-2": 1024})
    w.add(plan("polite", 100), online=0, held={}, conditions=("ReplicaFailure",), never=True)
    assert violations(w) == ()
    w.free["node-2"] = 300
    (violation,) = violations(w)
    assert violation.endswith("node node-2 has 300 MiB free")


def test_free_room_alone_while_a_service_is_short_is_caught() -> None:
    w = World().add(plan("idle", 0), online=0, held={})
    w.free["node-1"] = 256
    (violation,) = violations(w)
    assert violation == ("default/idle (priority 0) runs 0/1, an instance needs 256 MiB; "
                         "node node-1 has 0 MiB free".replace("0 MiB free", "256 MiB free"))


def test_a_static_service_is_judged_on_its_nodes_without_an_instance() -> None:
    low = plan("low", 0, static=True, nodes=("node-1",), memory_mb=1024)
    pinned = plan("pinned", 100, static=True, nodes=("node-1", "node-2"), memory_mb=512)
    w = World().add(low, online=1, held={"node-1": 1024}) \
        .add(pinned, online=1, held={"node-2": 512}, conditions=("ReplicaFailure",))
    assert [v.split(";")[1] for v in violations(w)] == [
        " node node-1 has 0 MiB free and lower priorities hold default/low (priority 0) "
        "1024 MiB"]
    # pinned runs on node-1 and misses node-2, where no lower priority holds anything
    w2 = World().add(low, online=1, held={"node-1": 512}) \
        .add(pinned, online=1, held={"node-1": 512}, conditions=("ReplicaFailure",))
    assert violations(w2) == ()


def test_an_offline_node_or_too_little_room_is_no_violation() -> None:
    w = World().add(plan("low", 0, memory_mb=128), online=1, held={"node-1": 128}) \
        .add(plan("big", 100, memory_mb=512, nodes=("node-1",)), online=0, held={},
             conditions=("ReplicaFailure",))
    w.free["node-1"] = 256
    assert violations(w) == ()  # 256 free + 128 evictable < 512
    w.free["node-1"] = 400
    assert len(violations(w)) == 1
    w.offline.add("node-1")
    assert violations(w) == ()


def test_a_service_short_on_purpose_passes_the_spec_and_status_checks_only_below_its_spec(
) -> None:
    w = World().add(plan("victim", 0, replicas=3), online=1, held={"node-1": 256},
                    conditions=("Preempted",))
    assert inv.check_ecsm_matches_spec(w.snap()).ok
    assert inv.check_statuses(w.snap()).ok
    plain = World().add(plan("victim", 0, replicas=3), online=1, held={"node-1": 256},
                        conditions=("Preempted",))
    obj = plain.objects[("ECSMService", "default/victim")]
    obj["status"]["conditions"] = [c for c in obj["status"]["conditions"]
                                   if c["type"] != "Preempted"]
    assert "factor 1 != desired 3" in inv.check_ecsm_matches_spec(plain.snap()).violations[0]
    assert not inv.check_statuses(plain.snap()).ok
    over = World().add(plan("victim", 0, replicas=3), online=1, held={},
                       conditions=("Preempted",))
    over.rows[0] = dataclasses.replace(over.rows[0], factor=4)
    assert not inv.check_ecsm_matches_spec(over.snap()).ok


def test_quiescence_waits_for_the_capacity_invariant_when_memory_was_read() -> None:
    w = World().add(plan("low", 0, replicas=4), online=4, held={"node-1": 512,
                                                                "node-2": 512}) \
        .add(plan("high", 100, memory_mb=512), online=0, held={},
             conditions=("ReplicaFailure",))
    ok, why = inv.quiescent(w.snap())
    assert not ok and why.startswith("capacity-by-priority: default/high")
    without = dataclasses.replace(w.snap(), capacity=None)
    assert [r.name for r in inv.convergence_checks(without)] == [
        "ecsm-matches-spec", "no-orphans", "status-matches-reality", "hpa-within-bounds"]
    assert inv.quiescent(without) == (True, "")


# -- the pressured workload ------------------------------------------------------------


def test_pressure_adds_limits_and_priority_classes_without_moving_the_schedule() -> None:
    plain, pressed = make_schedule(7, 60, 30), make_schedule(7, 60, 30, pressure=True)
    assert plain.actions == pressed.actions
    assert [s.name for s in plain.workload.services] == [
        s.name for s in pressed.workload.services]
    for s in pressed.workload.services:
        assert s.memory_mb in (128, 256, 512)
        limits = s.manifest()["spec"]["template"]["resources"]["limits"]
        assert limits == {"memory": f"{s.memory_mb}Mi"}
        if s.canary or s.chain:
            assert (s.priority, s.memory_mb) == (TOP_PRIORITY, 128)
    assert len({s.priority for s in pressed.workload.services}) >= 3
    assert "resources" not in plain.workload.services[0].manifest()["spec"]["template"]


def test_a_rollout_keeps_the_memory_limit() -> None:
    assert template("app@1.1#sylixos", 3, 256)["resources"] == {
        "limits": {"memory": "256Mi"}}
    assert any(a.kind is ActionKind.ROLLOUT for a in make_schedule(7, 60, 30).actions)


def test_the_nodes_hold_a_fixed_share_of_what_the_workload_needs() -> None:
    workload = with_pressure(generate_workload(random.Random(3), 40), 3)
    per_node = pressure_node_memory(workload, nodes=3)
    assert per_node % (64 * MIB) == 0
    assert 3 * per_node <= demand_mb(workload) * PRESSURE_RATIO * MIB
    assert 3 * per_node > demand_mb(workload) * PRESSURE_RATIO * MIB - 3 * 64 * MIB


# -- reading ECSM ----------------------------------------------------------------------


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("count", [1, 60])
def test_capacity_is_read_from_ecsm_per_service_and_node(count: int) -> None:
    clock = Clock()
    app = Simulator(State.seeded(1, start_delay=0.0, clock=clock, node_memory=1 << 30))
    cs = in_process_clientset(app)[0]
    ids = {}
    for i in range(count):
        name = f"default.s{i}.0123456789"
        ids[name] = cs.services.create({
            "name": name, "image": {"ref": "web@1.0#sylixos", "action": "run",
                                    "config": None},
            "node": {"names": None}, "factor": 1, "policy": "dynamic"})["id"]
    clock.now += 1
    rows = [EcsmServiceView(id=sid, name=name, factor=1) for name, sid in ids.items()]
    cap = take_capacity(cs, rows)
    fitted = min(count, 8)  # web@1.0 reserves 128 MiB: 8 fit in 1 GiB
    assert cap.nodes == (NodeMemory(name="node-1", total=1 << 30,
                                    free=(1024 - 128 * fitted) * MIB, online=True),)
    assert sum(len(v) for v in cap.held.values()) == fitted
    assert set(cap.instance_memory.values()) == {128 * MIB}
    assert len(cap.instance_memory) == count


def test_a_service_held_at_zero_for_lack_of_room_may_have_no_ecsm_service_yet() -> None:
    w = World().add(plan("waiting", 0), online=0, held={}, conditions=("ReplicaFailure",))
    w.rows.clear()
    assert inv.check_ecsm_matches_spec(w.snap()).ok
    obj = w.objects[("ECSMService", "default/waiting")]
    obj["status"]["conditions"] = [{"type": "Available", "status": "False"}]
    assert "no ECSM service default.waiting." in inv.check_ecsm_matches_spec(
        w.snap()).violations[0]


def test_a_static_service_held_off_some_of_its_nodes_may_list_fewer_on_ecsm() -> None:
    pinned = plan("pinned", 0, static=True, nodes=("node-1", "node-2"))
    w = World().add(pinned, online=1, held={"node-1": 256}, conditions=("Preempted",))
    w.rows[0] = dataclasses.replace(w.rows[0], nodes=("node-1",))
    assert inv.check_ecsm_matches_spec(w.snap()).ok
    w.rows[0] = dataclasses.replace(w.rows[0], nodes=("node-1", "node-3"))
    assert not inv.check_ecsm_matches_spec(w.snap()).ok
    plain = World().add(pinned, online=1, held={"node-1": 256})
    plain.rows[0] = dataclasses.replace(plain.rows[0], nodes=("node-1",), factor=2)
    assert "nodes ['node-1'] != spec nodes" in inv.check_ecsm_matches_spec(
        plain.snap()).violations[0]


def test_a_service_held_short_reports_the_replicas_ecsm_runs() -> None:
    w = World().add(plan("victim", 0, replicas=3), online=1, held={"node-1": 256},
                    conditions=("Preempted",))
    obj = w.objects[("ECSMService", "default/victim")]
    obj["status"]["replicas"] = 1
    assert inv.check_statuses(w.snap()).ok
    obj["status"]["replicas"] = 3
    assert "status.replicas 3 != 1 on ECSM" in inv.check_statuses(w.snap()).violations[0]


def test_a_rollout_waiting_for_room_may_keep_its_old_revision() -> None:
    w = World().add(plan("rolling", 0, replicas=2), online=2, held={"node-1": 512},
                    conditions=("ReplicaFailure",))
    stale = dataclasses.replace(w.rows[0], id="id-old", name="default.rolling.0123456789",
                                factor=1)
    w.rows[0] = dataclasses.replace(w.rows[0], factor=1)
    w.rows.append(stale)
    assert inv.check_ecsm_matches_spec(w.snap()).ok
    obj = w.objects[("ECSMService", "default/rolling")]
    obj["status"]["conditions"] = [{"type": "Available", "status": "True"}]
    assert "default/rolling: stale revision default.rolling.0123456789 still at factor 1" \
        in inv.check_ecsm_matches_spec(w.snap()).violations
