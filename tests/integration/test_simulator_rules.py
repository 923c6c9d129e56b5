"""The simulator's rules (ecsm-api.md §11) over HTTP: every derived view agrees with the
containers after creates, scales, actions, crashes and node outages; the usage model;
state that survives a restart with ``--state``."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.ecsm.clientset import Clientset
from tests.ecsm_sim import RunningSimulator, running_simulator, start_simulator
from tests.helpers import Processes, wait_until


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator("--nodes", "3", "--start-delay", "0.2") as s:
        yield s


@pytest.fixture
def cs(sim: RunningSimulator) -> Iterator[Clientset]:
    client = sim.clientset()
    yield client
    for row in client.services.list_all():
        client.services.delete(row.id)
    for node in ("node-1", "node-2", "node-3"):
        sim.admin.node_up(node)
    client.close()


def body(name: str, *, nodes: list[str] | None = None, factor: int = 1,
         policy: str = "dynamic", ref: str = "app@1.0#sylixos", action: str = "run",
         service_id: str | None = None) -> dict[str, Any]:
    doc = {"name": name, "image": {"ref": ref, "action": action, "config": None},
           "node": {"names": nodes}, "factor": factor, "policy": policy}
    return doc | ({"id": service_id} if service_id else {})


def assert_views_agree(cs: Clientset) -> None:
    """Services, containers, nodes, node views and metrics all tell the same story."""
    rows = cs.services.list_all()
    containers = cs.containers.list_all_by_service([r.id for r in rows]) if rows else []
    running = [c for c in containers if c.status == "running"]
    for row in rows:
        mine = [c for c in containers if c.service_id == row.id]
        detail = cs.services.get(row.id)
        assert row.instance_online == detail.instance_online == \
            sum(c.status == "running" for c in mine)
        assert detail.instance_active == len(mine)
        assert sorted(row.container_status_group) == sorted(c.status for c in mine)
    for node in cs.nodes.list_all():
        on_node = [c for c in containers if c.node_id == node.id]
        up = sum(c.status == "running" for c in on_node)
        assert (node.container_ecsm_total, node.container_ecsm_running) == (len(on_node), up)
        metrics = cs.nodes.metrics(node.id)[0]
        assert (metrics.running, metrics.stop) == (up, len(on_node) - up)
        assert len(cs.nodes.node_view(node.id).children) == len(on_node)
    assert sum(n.container_ecsm_running for n in cs.nodes.list_all()) == len(running)


def online(cs: Clientset, sid: str, n: int) -> None:
    wait_until(lambda: cs.services.get(sid).instance_online == n, 5, what=f"{n} online")


def test_containers_start_after_the_start_delay(cs: Clientset) -> None:
    sid = cs.services.create(body("lazy", factor=2))["id"]
    assert cs.services.get(sid).instance_online == 0
    assert {c.status for c in cs.containers.list_all_by_service([sid])} == {"created"}
    assert_views_agree(cs)
    online(cs, sid, 2)
    assert_views_agree(cs)


def test_dynamic_containers_spread_over_the_named_nodes(cs: Clientset) -> None:
    sid = cs.services.create(body("spread", nodes=["node-1", "node-2"], factor=4))["id"]
    nodes = Counter(c.node_name for c in cs.containers.list_all_by_service([sid]))
    assert nodes == {"node-1": 2, "node-2": 2}
    static = cs.services.create(body("pinned", nodes=["node-3", "node-1"], factor=7,
                                     policy="static"))["id"]
    assert sorted(c.node_name for c in cs.containers.list_all_by_service([static])) == \
        ["node-1", "node-3"]
    assert cs.services.get(static).factor == 2
    assert_views_agree(cs)


def test_scaling_adds_and_removes_containers(cs: Clientset) -> None:
    sid = cs.services.create(body("scale", factor=2))["id"]
    online(cs, sid, 2)
    before = {c.id for c in cs.containers.list_all_by_service([sid])}
    cs.services.update(sid, body("scale", factor=5, service_id=sid))
    after = {c.id for c in cs.containers.list_all_by_service([sid])}
    assert len(after) == 5 and before <= after
    online(cs, sid, 5)
    assert_views_agree(cs)
    cs.services.update(sid, body("scale", factor=1, service_id=sid))
    assert cs.services.get(sid).instance_active == 1
    assert_views_agree(cs)


def test_an_image_change_replaces_every_container(cs: Clientset) -> None:
    sid = cs.services.create(body("roll", factor=2))["id"]
    old = {c.id for c in cs.containers.list_all_by_service([sid])}
    cs.services.update(sid, body("roll", factor=2, ref="app@1.1#sylixos", service_id=sid))
    new = cs.containers.list_all_by_service([sid])
    assert old.isdisjoint(c.id for c in new) and {c.image_version for c in new} == {"1.1"}


def test_load_leaves_containers_stopped(cs: Clientset) -> None:
    sid = cs.services.create(body("loaded", factor=2, action="load"))["id"]
    assert {c.status for c in cs.containers.list_all_by_service([sid])} == {"stop"}
    assert cs.services.get(sid).instance_online == 0
    assert_views_agree(cs)


def test_actions_move_every_derived_count(cs: Clientset) -> None:
    sid = cs.services.create(body("act", factor=3))["id"]
    online(cs, sid, 3)
    names = [c.name for c in cs.containers.list_all_by_service([sid])]
    cs.containers.action_by_name(names[0], "stop")
    cs.containers.action_by_name(names[1], "pause")
    assert cs.services.get(sid).instance_online == 1
    assert_views_agree(cs)
    cs.containers.action_by_service(sid, "start")
    cs.containers.action_by_name(names[1], "unpause")
    assert cs.services.get(sid).instance_online == 3
    assert_views_agree(cs)


def test_a_crashed_container_is_exited_and_reported(sim: RunningSimulator,
                                                    cs: Clientset) -> None:
    sid = cs.services.create(body("crashy", factor=2))["id"]
    online(cs, sid, 2)
    name = cs.containers.list_all_by_service([sid])[0].name
    sim.admin.crash_container(name, "segfault")
    crashed = cs.containers.get_by_name(name, [sid])
    assert (crashed.status, crashed.failed_message) == ("exited", "segfault")
    row = cs.services.list_all(name="crashy")[0]
    assert [e.message for e in row.error_instance] == ["segfault"]
    assert not cs.services.get(sid).healthy
    assert_views_agree(cs)


def test_a_node_outage_stops_its_containers_until_the_operator_acts(
        sim: RunningSimulator, cs: Clientset) -> None:
    sid = cs.services.create(body("outage", nodes=["node-1", "node-2"], factor=2))["id"]
    online(cs, sid, 2)
    sim.admin.node_down("node-1")
    assert cs.nodes.get_by_name("node-1").id in {
        n.id for n in cs.nodes.list_all() if n.status == "offline"}
    statuses = {c.node_name: c.status for c in cs.containers.list_all_by_service([sid])}
    assert statuses == {"node-1": "stop", "node-2": "running"}
    assert_views_agree(cs)
    cs.services.update(sid, body("outage", nodes=["node-1", "node-2"], factor=2,
                                 service_id=sid))
    assert {c.node_name for c in cs.containers.list_all_by_service([sid])} == {"node-2"}
    online(cs, sid, 2)
    assert_views_agree(cs)


def test_a_node_coming_back_restarts_what_its_outage_stopped(sim: RunningSimulator,
                                                             cs: Clientset) -> None:
    sid = cs.services.create(body("back", nodes=["node-3"], policy="static"))["id"]
    online(cs, sid, 1)
    sim.admin.node_down("node-3")
    assert cs.services.get(sid).instance_online == 0
    sim.admin.node_up("node-3")
    online(cs, sid, 1)


def test_a_container_deleted_behind_the_operators_back_disappears(sim: RunningSimulator,
                                                                  cs: Clientset) -> None:
    sid = cs.services.create(body("ghost", factor=2))["id"]
    name = cs.containers.list_all_by_service([sid])[0].name
    sim.admin.delete_container(name)
    assert cs.services.get(sid).instance_active == 1
    assert_views_agree(cs)


def test_usage_follows_the_load_divided_by_running_instances(sim: RunningSimulator,
                                                             cs: Clientset) -> None:
    sid = cs.services.create(body("busy", factor=4))["id"]
    online(cs, sid, 4)
    sim.admin.set_load(sid, cpu=200.0, memory=400 << 20)
    for c in cs.containers.list_all_by_service([sid]):
        assert 50 * 0.97 <= c.cpu_usage.total <= 50 * 1.03
        assert 100 * 0.97 <= c.memory_usage / (1 << 20) <= 100 * 1.03
        assert c.memory_limit == 256 << 20
    cs.containers.action_by_name(cs.containers.list_all_by_service([sid])[0].name, "stop")
    usage = sorted(c.cpu_usage.total for c in cs.containers.list_all_by_service([sid]))
    assert usage[0] == 0.0 and all(200 / 3 * 0.97 <= u <= 200 / 3 * 1.03 for u in usage[1:])


def test_state_survives_a_restart_with_a_state_file(processes: Processes,
                                                     run_dir: Path) -> None:
    state = f"--state={run_dir / 'ecsm-state.json'}"
    sim = start_simulator(processes, state, "--start-delay", "0")
    cs = sim.clientset()
    sid = cs.services.create(body("keep", factor=2))["id"]
    sim.admin.node_down("node-2")
    before = sorted((c.id, c.task_id, c.name, c.node_name)
                    for c in cs.containers.list_all_by_service([sid]))
    sim.proc.send_signal(signal.SIGTERM)
    assert sim.proc.wait(timeout=10) == 0
    assert not (run_dir / "ecsm-simulator.json").exists()
    again = start_simulator(processes, state, "--start-delay", "0")
    assert again.port != 0
    cs2 = again.clientset()
    assert cs2.services.get(sid).name == "keep"
    assert sorted((c.id, c.task_id, c.name, c.node_name)
                  for c in cs2.containers.list_all_by_service([sid])) == before
    assert "node-2" in {n.name for n in cs2.nodes.list_all() if n.status == "offline"}
    cs.close()
    cs2.close()


def test_a_corrupt_state_file_is_refused_and_left_alone(processes: Processes,
                                                        run_dir: Path) -> None:
    path = run_dir / "ecsm-state.json"
    path.write_text("{not json")
    proc = processes.spawn("simulator", f"--state={path}")
    assert proc.wait(timeout=15) == 1
    assert path.read_text() == "{not json"
    assert "not valid JSON" in processes.logs()
