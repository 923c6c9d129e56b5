"""The simulator's capacity model: each node has memory for containers, each container
reserves its service's memory limit, an instance that fits nowhere is refused with a
reason, and nothing refused is placed again until someone asks (in-process, fake clock)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.config import load_config
from ecsm_actors.ecsm.clientset import Clientset
from ecsm_actors.ecsm.simulator.app import Simulator
from ecsm_actors.ecsm.simulator.state import State
from ecsm_actors.supervisor.children import builtin_children
from tests.ecsm_sim import in_process_clientset

MIB = 1 << 20
GIB = 1 << 30


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class World:
    def __init__(self, nodes: int = 2, node_memory: int = GIB,
                 default_memory_limit: int = 512 * MIB) -> None:
        self.clock = Clock()
        self.state = State.seeded(nodes, start_delay=1.0, clock=self.clock,
                                  node_memory=node_memory,
                                  default_memory_limit=default_memory_limit)
        self.app = Simulator(self.state)
        self.cs: Clientset = in_process_clientset(self.app)[0]

    def service(self, name: str, *, memory_mb: int | None = 256, factor: int = 1,
                nodes: list[str] | None = None, policy: str = "dynamic",
                ref: str = "app@1.0#sylixos") -> str:
        config: Any = None
        if memory_mb is not None:
            config = {"sylixos": {"resources": {"cpu": None, "disk": None,
                                                "kernelObject": None,
                                                "memory": {"memoryLimitMB": memory_mb}}}}
        return str(self.cs.services.create({
            "name": name, "image": {"ref": ref, "action": "run", "config": config},
            "node": {"names": nodes}, "factor": factor, "policy": policy})["id"])

    def scale(self, service_id: str, factor: int) -> None:
        detail = self.cs.services.get(service_id)
        assert detail.image is not None
        self.cs.services.update(service_id, {
            "id": service_id, "name": detail.name,
            "image": detail.raw["image"], "node": detail.raw["node"], "factor": factor,
            "policy": detail.policy})

    def settle(self) -> None:
        self.clock.now += 2

    def free(self) -> dict[str, int]:
        nodes = self.cs.nodes.list_all()
        return {self.node_name(s.id): s.memory_free
                for s in self.cs.nodes.list_status([n.id for n in nodes])}

    def node_name(self, node_id: str) -> str:
        return self.state.nodes[node_id].name

    def containers(self, service_id: str) -> list[Any]:
        return self.cs.containers.list_all_by_service([service_id])

    def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        raw = b"" if body is None else json.dumps(body).encode()
        reply = self.app.handle(method, "/_sim/" + path, raw)
        assert reply is not None
        return reply[0], json.loads(reply[1])


def test_node_status_reports_the_node_memory_and_what_the_placed_containers_leave_free(
) -> None:
    w = World()
    w.service("a", factor=3, memory_mb=256)
    w.settle()
    nodes = w.cs.nodes.list_all()
    statuses = {w.node_name(s.id): s for s in w.cs.nodes.list_status([n.id for n in nodes])}
    assert {s.memory_total for s in statuses.values()} == {GIB}
    assert sorted(s.memory_allocated for s in statuses.values()) == [256 * MIB, 512 * MIB]
    assert sum(s.memory_free for s in statuses.values()) == 2 * GIB - 768 * MIB
    caps = w.cs.nodes.capacities()
    assert {n: c.memory_free for n, c in caps.items()} == w.free()
    for node in nodes:
        ram = w.cs.nodes.metrics(node.id)[0].ram
        assert ram.size == statuses[node.name].memory_allocated
        assert float(ram.percent) == pytest.approx(100 * ram.size / GIB, abs=0.05)


def test_an_instance_that_fits_on_no_node_is_refused_with_its_reason() -> None:
    w = World()
    sid = w.service("big", factor=5, memory_mb=512)  # room for 4 on two 1 GiB nodes
    w.settle()
    detail = w.cs.services.get(sid)
    assert (detail.factor, detail.instance_online, detail.healthy) == (5, 4, False)
    refused = [c for c in w.containers(sid) if c.deploy_status == "failed"]
    assert len(refused) == 1
    assert refused[0].status == "exited"
    assert refused[0].failed_message is not None
    assert "insufficient memory: needs 512 MiB" in refused[0].failed_message
    assert "0 MiB free of 1024 MiB" in refused[0].failed_message
    row = w.cs.services.list_all()[0]
    assert [e.container_id for e in row.error_instance] == [refused[0].id]
    assert row.error_instance[0].message == refused[0].failed_message
    assert w.free() == {"node-1": 0, "node-2": 0}


def test_a_static_instance_is_refused_when_its_own_node_is_full_even_if_another_has_room(
) -> None:
    w = World()
    w.service("filler", factor=1, memory_mb=1024, nodes=["node-1"], policy="static")
    sid = w.service("pinned", memory_mb=128, nodes=["node-1"], policy="static")
    w.settle()
    (c,) = w.containers(sid)
    assert (c.node_name, c.deploy_status, c.status) == ("node-1", "failed", "exited")
    assert w.free() == {"node-1": 0, "node-2": GIB}


def test_room_coming_back_places_nothing_by_itself_a_start_places_the_refused_instance(
) -> None:
    w = World(nodes=1)
    filler = w.service("filler", memory_mb=768)
    sid = w.service("waiting", memory_mb=512)
    w.settle()
    (c,) = w.containers(sid)
    tx = w.cs.containers.action_by_name(c.name, "start")
    assert tx.status == "failure"
    assert "insufficient memory" in tx.data["message"]
    w.cs.services.delete(filler)
    w.settle()
    assert w.containers(sid)[0].deploy_status == "failed"
    assert w.free() == {"node-1": GIB}
    assert w.cs.containers.action_by_name(c.name, "start").status == "success"
    assert w.free() == {"node-1": 512 * MIB}
    w.settle()
    (started,) = w.containers(sid)
    assert (started.name, started.status, started.deploy_status) == (c.name, "running",
                                                                     "success")
    assert started.failed_message is None


def test_an_update_places_refused_dynamic_instances_on_any_pool_node_with_room() -> None:
    w = World()
    left = w.service("left", memory_mb=1024, nodes=["node-1"], policy="static")
    right = w.service("right", memory_mb=1024, nodes=["node-2"], policy="static")
    sid = w.service("mover", memory_mb=512, factor=2)
    w.settle()
    assert w.cs.services.get(sid).instance_online == 0
    w.cs.services.delete(right)
    w.settle()
    assert w.cs.services.get(sid).instance_online == 0  # nothing retried by itself
    w.scale(sid, 2)  # an update asks again
    w.settle()
    placed = w.containers(sid)
    assert [(c.node_name, c.status) for c in placed] == [("node-2", "running")] * 2
    assert w.free() == {"node-1": 0, "node-2": 0}
    assert left


def test_scaling_down_removes_refused_instances_first() -> None:
    w = World(nodes=1)
    sid = w.service("many", memory_mb=512, factor=3)
    w.settle()
    assert w.cs.services.get(sid).instance_online == 2
    w.scale(sid, 2)
    w.settle()
    assert [c.deploy_status for c in w.containers(sid)] == ["success", "success"]
    assert w.cs.services.get(sid).healthy


def test_stopped_and_crashed_containers_keep_their_reservation() -> None:
    w = World(nodes=1)
    sid = w.service("a", memory_mb=512, factor=2)
    w.settle()
    first, second = w.containers(sid)
    w.cs.containers.action_by_name(first.name, "stop")
    assert w.admin("POST", f"containers/{second.name}/crash")[0] == 200
    assert w.free() == {"node-1": 0}
    late = w.service("late", memory_mb=128)
    assert w.containers(late)[0].deploy_status == "failed"


def test_a_service_whose_config_and_image_set_no_limit_reserves_the_default() -> None:
    w = World(nodes=1, default_memory_limit=300 * MIB)
    sid = w.service("tool", memory_mb=None, ref="busybox@1.36#linux")  # no sylixos section
    w.settle()
    assert w.containers(sid)[0].memory_limit == 300 * MIB
    assert w.free() == {"node-1": GIB - 300 * MIB}
    image_default = w.service("app", memory_mb=None)  # app@1.0's built-in config: 256 MiB
    assert w.containers(image_default)[0].memory_limit == 256 * MIB


def test_the_admin_api_sets_a_node_memory_without_evicting_or_placing_anything() -> None:
    w = World(nodes=1)
    sid = w.service("a", memory_mb=512, factor=3)
    w.settle()
    code, doc = w.admin("POST", "nodes/node-1/memory", {"bytes": 512 * MIB})
    assert code == 200
    assert (doc["data"]["memoryTotal"], doc["data"]["memoryFree"]) == (512 * MIB, 0)
    assert w.cs.services.get(sid).instance_online == 2  # nothing running is evicted
    w.admin("POST", "nodes/node-1/memory", {"bytes": 2 * GIB})
    assert w.free() == {"node-1": GIB}
    assert w.cs.services.get(sid).instance_online == 2  # nothing refused is placed
    _, state = w.admin("GET", "state")
    assert state["data"]["nodes"][0]["memory"] == {
        "memoryTotal": 2 * GIB, "memoryAllocated": GIB, "memoryFree": GIB}


@pytest.mark.parametrize(("body", "says"), [
    ({"bytes": -1}, "bytes: expected a number within 0..1.1259e+15, got integer -1"),
    ({"bytes": "1Gi"}, "bytes: expected a number, got string \"1Gi\""),
    ({"bytes": 1.5}, "bytes: expected a whole number"),
    ({"bytes": float("nan")}, "bytes: expected a finite number"),
    ({"bytes": 1 << 51}, "bytes: expected a number within"),
    ({}, "bytes: required"),
    ({"byte": 1}, 'memory: unknown keys string "byte" (known: bytes)'),
    ([1], "memory: expected a JSON object"),
])
def test_the_admin_api_refuses_a_bad_node_memory_with_one_line_and_changes_nothing(
        body: Any, says: str) -> None:
    w = World(nodes=1)
    code, doc = w.admin("POST", "nodes/node-1/memory", body)
    assert code == 400
    assert says in doc["fieldErrors"] and "\n" not in doc["fieldErrors"]
    assert w.free() == {"node-1": GIB}


def test_an_unknown_node_is_a_404() -> None:
    code, _ = World().admin("POST", "nodes/node-9/memory", {"bytes": GIB})
    assert code == 404


def test_a_restored_state_keeps_node_memory_and_refusals() -> None:
    w = World(nodes=1)
    w.admin("POST", "nodes/node-1/memory", {"bytes": 768 * MIB})
    sid = w.service("a", memory_mb=512, factor=2)
    restored = State.restore(json.loads(json.dumps(w.state.snapshot())), clock=w.clock)
    assert restored.nodes[next(iter(restored.nodes))].memory_bytes == 768 * MIB
    assert sorted(c.refused for c in restored.containers_of(sid)) == [False, True]


def test_the_supervisor_starts_the_simulator_with_the_configured_node_memory(
        tmp_path: Path) -> None:
    cfg = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(tmp_path),
                               "ECSM_ACTORS_SIMULATOR_NODE_MEMORY": "1Gi"})
    (simulator,) = [s for s in builtin_children(cfg, simulate=True) if s.name == "simulator"]
    assert simulator.argv[-3:] == ("simulator", "--node-memory", str(GIB))
    assert load_config(environ={}).simulator.node_memory == 4 * GIB
