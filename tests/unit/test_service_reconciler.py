"""The service Reconciler against the in-process simulator and a fake registry.

No sockets, no processes, no sleep: see :mod:`tests.unit.service_world`.
"""

from __future__ import annotations

import pytest

from ecsm_actors.api import template_hash
from ecsm_actors.controllers.service import history
from ecsm_actors.controllers.service.controller import FINALIZER
from ecsm_actors.errors import TerminalError
from ecsm_actors.runtime import Result
from tests.unit.service_world import World, esvc


def revision(world: World, name: str) -> str:
    return template_hash(world.get(name)["spec"]["template"])


def test_a_new_service_gets_its_finalizer_then_its_revision_on_ecsm_then_a_status():
    w = World()
    w.apply(esvc("web", replicas=2, pool=["node-1", "node-2"]))
    w.reconcile("web")
    obj = w.get("web")
    rev = revision(w, "web")
    assert obj["metadata"]["finalizers"] == [FINALIZER]
    assert history.records(obj["metadata"]["annotations"])[rev].number == 1
    assert w.ecsm_services() == {f"default.web.{rev}": (2, ["node-1", "node-2"], 0)}
    assert w.condition("web", "Available")["status"] == "False"
    w.settle("web")
    status = w.get("web")["status"]
    assert (status["replicas"], status["readyReplicas"], status["updatedReplicas"],
            status["availableReplicas"]) == (2, 2, 2, 2)
    assert status["currentRevision"] == rev
    assert status["observedGeneration"] == w.get("web")["metadata"]["generation"]
    assert status["underlyingServiceIDs"] == [next(iter(w.state.services))]
    assert w.condition("web", "Available")["status"] == "True"
    assert w.condition("web", "Progressing")["reason"] == "NewRevisionAvailable"
    assert w.condition("web", "Degraded")["status"] == "False"


def test_the_create_body_overlays_the_spec_on_the_image_config():
    w = World()
    w.apply(esvc("web", replicas=1, env=[{"name": "MODE", "value": "fast"}],
                 resources={"limits": {"memory": "64Mi"}}))
    w.reconcile("web")
    svc = next(iter(w.state.services.values()))
    assert svc.image["ref"] == "app@1.0#sylixos"
    config = svc.image["config"]
    assert "MODE=fast" in config["process"]["env"] and "APP_NAME=app" in config["process"]["env"]
    assert config["sylixos"]["resources"]["memory"]["memoryLimitMB"] == 64
    assert config["hostname"] == "web"


def test_a_settled_service_costs_one_ecsm_call_and_no_registry_write_per_pass():
    w = World()
    w.apply(esvc("web", replicas=3))
    w.settle("web")
    calls, writes, rv = len(w.transport.calls), w.registry.status_writes, w.registry.rv
    result = w.reconcile("web")
    assert result == Result()  # settled: no requeue, the drift sweep watches it
    assert w.transport.calls[calls:] == ["GET /api/v1/service"]
    assert (w.registry.status_writes, w.registry.rv) == (writes, rv)


def test_scaling_changes_the_factor_of_the_current_revision_in_place():
    w = World()
    w.apply(esvc("web", replicas=2))
    w.settle("web")
    ids = set(w.state.services)
    for replicas in (5, 1):
        w.apply(esvc("web", replicas=replicas))
        w.settle("web")
        assert set(w.state.services) == ids
        assert [f for f, _, _ in w.ecsm_services().values()] == [replicas]
        assert w.get("web")["status"]["readyReplicas"] == replicas


def test_a_static_node_list_change_moves_instances_without_a_new_revision():
    w = World()
    w.apply(esvc("web", nodes=["node-1", "node-2"]))
    w.settle("web")
    w.apply(esvc("web", nodes=["node-2", "node-3"]))
    w.settle("web")
    [(factor, nodes, running)] = w.ecsm_services().values()
    assert (factor, nodes, running) == (2, ["node-2", "node-3"], 2)


def test_a_rollout_keeps_surge_and_unavailable_and_keeps_history():
    w = World()
    rollout = {"maxSurge": 1, "maxUnavailable": 1, "revisionHistoryLimit": 1}
    w.apply(esvc("web", replicas=4, rollout=rollout))
    w.settle("web")
    old_rev = revision(w, "web")
    w.apply(esvc("web", image="app@1.1", replicas=4, rollout=rollout))
    new_rev = revision(w, "web")
    for _ in range(60):
        result = w.reconcile("web")
        total, running = w.totals("default.web.")
        assert total <= 5 and running >= 3
        if w.at_rest(result):
            break
        w.advance(result.requeue_after or 0.5)
        total, running = w.totals("default.web.")
        assert total <= 5 and running >= 3
    services = w.ecsm_services()
    assert services[f"default.web.{new_rev}"][0] == 4
    assert services[f"default.web.{old_rev}"][0] == 0
    status = w.get("web")["status"]
    assert status["currentRevision"] == new_rev and status["updatedReplicas"] == 4
    assert len(status["underlyingServiceIDs"]) == 2
    # a third template: the oldest revision goes beyond the history limit of 1
    w.apply(esvc("web", image="app@2.0", replicas=4, rollout=rollout))
    w.settle("web")
    assert f"default.web.{old_rev}" not in w.ecsm_services()
    assert len(w.ecsm_services()) == 2


def test_undo_scales_the_kept_revision_back_up_and_renumbers_it():
    w = World()
    w.apply(esvc("web", replicas=2))
    w.settle("web")
    first = revision(w, "web")
    w.apply(esvc("web", image="app@1.1", replicas=2))
    w.settle("web")
    kept_ids = set(w.state.services)
    prev = history.previous(w.get("web")["metadata"]["annotations"], revision(w, "web"))
    assert prev is not None and prev.revision == first
    w.apply({**esvc("web", replicas=2), "spec": {**w.get("web")["spec"],
                                                  "template": prev.template}})
    w.settle("web")
    assert set(w.state.services) == kept_ids  # nothing new was created
    assert w.ecsm_services()[f"default.web.{first}"][0] == 2
    records = history.records(w.get("web")["metadata"]["annotations"])
    assert records[first].number == 3


def test_deletion_removes_every_revision_then_the_finalizer():
    w = World()
    w.apply(esvc("web", replicas=2))
    w.settle("web")
    w.apply(esvc("web", image="app@1.1", replicas=2))
    w.settle("web")
    assert len(w.state.services) == 2
    w.registry.delete("ECSMService", "default", "web")
    w.reconcile("web")
    assert w.state.services == {}
    with pytest.raises(Exception, match="not found"):
        w.get("web")


def test_an_ecsm_name_exists_answer_adopts_the_service_instead_of_duplicating_it():
    w = World()
    w.apply(esvc("web", replicas=1))
    w.reconcile("web")  # created; now pretend the next controller's list missed it
    original = w.reconciler._list
    w.reconciler._list = lambda ns, n: []
    w.reconcile("web")
    w.reconciler._list = original
    w.settle("web")
    assert len(w.state.services) == 1


def test_a_service_waits_for_its_dependencies_to_be_available():
    w = World()
    w.apply(esvc("web", replicas=1, depends_on=["db"]))
    w.reconcile("web")
    assert w.state.services == {}
    assert w.condition("web", "Progressing")["reason"] == "WaitingForDependencies"
    assert "db: not found" in w.condition("web", "Progressing")["message"]
    w.apply(esvc("db", image="db@1.0", replicas=1))
    w.reconcile("db")
    w.reconcile("web")
    assert [s.name.split(".")[1] for s in w.state.services.values()] == ["db"]
    w.settle("db", "web")
    assert w.condition("web", "Available")["status"] == "True"


def test_a_dependency_cycle_is_reported_on_each_member_and_heals_when_broken():
    w = World()
    w.apply(esvc("a", replicas=1, depends_on=["b"]))
    w.apply(esvc("b", replicas=1, depends_on=["a"]))
    for name in ("a", "b"):
        result = w.reconcile(name)
        assert result.requeue_after == w.cfg.service.drift_interval
        assert w.condition(name, "Degraded")["reason"] == "DependencyCycle"
    assert w.state.services == {}
    w.apply(esvc("b", replicas=1))
    w.settle("a", "b")
    assert len(w.state.services) == 2
    assert w.condition("a", "Degraded")["status"] == "False"


@pytest.mark.parametrize(("spec", "needle"), [
    (esvc("web", image="nosuch@1.0", replicas=1), "nosuch@1.0"),
    (esvc("web", nodes=["node-9"]), "node-9"),
])
def test_an_ecsm_validation_error_is_terminal_with_ecsms_message(spec, needle):
    w = World()
    w.apply(spec)
    with pytest.raises(TerminalError, match=needle) as e:
        w.reconcile("web")
    assert e.value.reason == "EcsmRejected"


def test_ecsm_unavailable_requeues_and_after_the_threshold_says_so_then_recovers():
    w = World(overrides={"service.unavailable_threshold": 2})
    w.apply(esvc("web", replicas=1))
    w.settle("web")
    w.admin("POST", "faults", {"partition": True})
    assert w.reconcile("web").requeue is True
    assert w.condition("web", "Degraded")["status"] == "False"
    assert w.reconcile("web").requeue is True
    assert w.condition("web", "Degraded")["reason"] == "EcsmUnavailable"
    w.admin("DELETE", "faults")
    w.settle("web")
    assert w.condition("web", "Degraded")["status"] == "False"


@pytest.mark.parametrize("kind", ["http5xx", "envelope", "malformed"])
def test_ecsm_5xx_and_garbage_are_retried_not_terminal(kind):
    w = World()
    w.apply(esvc("web", replicas=1))
    w.admin("POST", "faults", {"error_rate": 1.0, "error_kind": kind})
    assert w.reconcile("web").requeue is True


# -- drift repair ---------------------------------------------------------------------------

def test_an_ecsm_service_deleted_behind_our_back_is_recreated():
    w = World()
    w.apply(esvc("web", replicas=2))
    w.settle("web")
    [sid] = w.state.services
    w.ecsm.services.delete(sid)
    w.settle("web")
    assert [f for f, _, r in w.ecsm_services().values()] == [2]


def test_a_factor_changed_behind_our_back_is_restored():
    w = World()
    w.apply(esvc("web", replicas=2))
    w.settle("web")
    svc = next(iter(w.state.services.values()))
    detail = w.ecsm.services.get(svc.id)
    w.ecsm.services.update(svc.id, {"id": svc.id, "name": svc.name, "image": detail.raw["image"],
                                    "node": {"names": []}, "factor": 5, "policy": "dynamic"})
    w.settle("web")
    assert [(f, r) for f, _, r in w.ecsm_services().values()] == [(2, 2)]


@pytest.mark.parametrize("fault", ["crash", "stop"])
def test_a_crashed_or_stopped_container_is_started_again(fault):
    w = World()
    w.apply(esvc("web", replicas=2))
    w.settle("web")
    victim = next(iter(w.state.containers.values()))
    if fault == "crash":
        w.admin("POST", f"containers/{victim.name}/crash")
    else:
        w.ecsm.containers.action_by_name(victim.name, "stop")
    w.settle("web")
    assert w.state.containers[victim.id].status(w.now) == "running"
    assert w.get("web")["status"]["readyReplicas"] == 2


def test_a_dynamic_service_is_re_placed_away_from_a_down_node():
    w = World()
    w.apply(esvc("web", replicas=3, pool=["node-1", "node-2", "node-3"]))
    w.settle("web")
    w.admin("POST", "nodes/node-2/down")
    w.settle("web")
    [(factor, nodes, running)] = w.ecsm_services().values()
    assert factor == 3 and running == 3 and "node-2" not in nodes
    assert w.condition("web", "Degraded")["status"] == "False"


def test_a_static_service_reports_a_down_node_and_recovers_with_it():
    w = World()
    w.apply(esvc("web", nodes=["node-1", "node-2"]))
    w.settle("web")
    w.admin("POST", "nodes/node-2/down")
    for _ in range(3):
        w.advance(w.reconcile("web").requeue_after or 0.5)
    degraded = w.condition("web", "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "NodeDown")
    assert "node-2" in degraded["message"]
    w.admin("POST", "nodes/node-2/up")
    w.settle("web")
    assert w.condition("web", "Degraded")["status"] == "False"
    assert w.get("web")["status"]["readyReplicas"] == 2


def test_an_unchanged_condition_keeps_its_transition_time():
    w = World()
    w.apply(esvc("web", replicas=2))
    w.settle("web")
    before = w.condition("web", "Available")
    w.advance(100)
    w.apply(esvc("web", replicas=1))
    w.settle("web")
    after = w.condition("web", "Available")
    assert after["message"] != before["message"]  # rewritten, but not a transition
    assert after["lastTransitionTime"] == before["lastTransitionTime"]


def test_a_static_rollout_replaces_node_by_node_and_drops_the_old_revision():
    w = World(nodes=4)
    nodes = ["node-1", "node-2", "node-3", "node-4"]
    rollout = {"maxSurge": 0, "maxUnavailable": 1}
    w.apply(esvc("web", nodes=nodes, rollout=rollout))
    w.settle("web")
    old = revision(w, "web")
    w.apply(esvc("web", nodes=nodes, image="app@1.1", rollout=rollout))
    new = revision(w, "web")
    for _ in range(60):
        result = w.reconcile("web")
        total, running = w.totals("default.web.")
        assert total <= 4 and running >= 3
        if w.at_rest(result):
            break
        w.advance(result.requeue_after or 0.5)
    assert w.ecsm_services() == {f"default.web.{new}": (4, nodes, 4)}
    # the old template survives in the annotations: undo re-creates it
    assert old in history.records(w.get("web")["metadata"]["annotations"])
