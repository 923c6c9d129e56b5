"""The HPA reconciler against a fake registry and a fake ECSM: what it reads and writes.

No sockets, no processes, no sleep; the wall clock is a number the test moves.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ecsm_actors import api
from ecsm_actors.config import load_config
from ecsm_actors.controllers.hpa import build
from ecsm_actors.controllers.hpa.controller import HpaReconciler
from ecsm_actors.errors import Conflict, EcsmUnavailable, NotFound

NOW = 1_700_000_000.0


class FakeRegistry:
    """Objects by (kind, namespace, name) with resourceVersion OCC, like the registry."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.rv = 0
        self.before_update: list[Any] = []  # callables run before the next update(s)
        self.updates = 0
        self.status_writes = 0

    def _key(self, obj: dict[str, Any]) -> tuple[str, str, str]:
        meta = obj["metadata"]
        return obj["kind"], meta.get("namespace", "default"), meta["name"]

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj = api.prepare(copy.deepcopy(obj))
        self.rv += 1
        obj["metadata"]["resourceVersion"] = self.rv
        obj["metadata"].setdefault("generation", 1)
        self.objects[self._key(obj)] = obj
        return copy.deepcopy(obj)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        try:
            return copy.deepcopy(self.objects[(kind, namespace, name)])
        except KeyError:
            raise NotFound(f"{kind} {namespace}/{name} not found") from None

    def _check(self, obj: dict[str, Any]) -> dict[str, Any]:
        stored = self.objects.get(self._key(obj))
        if stored is None:
            raise NotFound("gone")
        if obj["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]:
            raise Conflict("stale resourceVersion")
        return stored

    def update(self, obj: dict[str, Any]) -> dict[str, Any]:
        if self.before_update:
            self.before_update.pop(0)(self)
        stored = self._check(obj)
        self.updates += 1
        new = {**copy.deepcopy(obj), "status": stored.get("status", {})}
        return self.put(new)

    def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        stored = self._check(obj)
        self.status_writes += 1
        status = api.prepare_status(obj["kind"], copy.deepcopy(obj["status"]))
        return self.put({**stored, "status": status})


class FakeContext:
    def __init__(self, registry: FakeRegistry) -> None:
        self.registry = registry
        self.kind = "ECSMHpa"

    def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.registry.update_status(obj)


class FakeContainers:
    def __init__(self) -> None:
        self.by_service: dict[str, list[dict[str, Any]]] = {}
        self.down = False
        self.calls = 0

    def set(self, service_id: str, cpu: list[float], status: str = "running",
            uptime: int = 3600) -> None:
        """Containers running for ``uptime`` seconds (past the CPU initialization period
        by default)."""
        self.by_service[service_id] = [
            {"name": f"{service_id}-{i}", "status": status, "uptime": uptime,
             "cpuUsage": {"total": c, "cores": [c]}, "memoryUsage": 64 << 20,
             "memoryLimit": 512 << 20} for i, c in enumerate(cpu)]

    def list_all_by_service(self, service_ids: list[str]) -> list[dict[str, Any]]:
        self.calls += 1
        if self.down:
            raise EcsmUnavailable("http://127.0.0.1:1", "connection refused")
        return [c for sid in service_ids for c in self.by_service.get(sid, [])]


def service(name: str = "web", replicas: int = 2, strategy: str = "Dynamic",
            ids: tuple[str, ...] = ("svc-1",)) -> dict[str, Any]:
    ds: dict[str, Any] = {"type": strategy}
    if strategy == "Dynamic":
        ds.update(replicas=replicas, nodePool=["node-1"])
    else:
        ds["nodes"] = ["node-1"]
    return {"apiVersion": "ecsm.sh/v1", "kind": "ECSMService",
            "metadata": {"name": name},
            "spec": {"deploymentStrategy": ds, "template": {"image": "web@1.0#sylixos"}},
            "status": {"underlyingServiceIDs": list(ids)}}


def hpa(**spec: Any) -> dict[str, Any]:
    body = {"scaleTargetRef": {"kind": "ECSMService", "name": "web"}, "minReplicas": 1,
            "maxReplicas": 10, "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
            **spec}
    return {"apiVersion": "ecsm.sh/v1", "kind": "ECSMHpa", "metadata": {"name": "web"},
            "spec": body}


class Harness:
    def __init__(self) -> None:
        self.cfg = load_config(environ={})
        self.registry = FakeRegistry()
        self.ctx = FakeContext(self.registry)
        self.containers = FakeContainers()
        self.now = NOW
        self.reconciler = self.new_reconciler()

    def new_reconciler(self) -> HpaReconciler:
        return HpaReconciler(self.cfg, containers=lambda: self.containers,
                             wall_clock=lambda: self.now)

    def sync(self) -> Any:
        return self.reconciler.reconcile(self.ctx, "default/web")  # type: ignore[arg-type]

    def target(self) -> dict[str, Any]:
        return self.registry.get("ECSMService", "default", "web")

    def status(self) -> dict[str, Any]:
        return self.registry.get("ECSMHpa", "default", "web")["status"]

    def condition(self, type_: str) -> tuple[str, str]:
        c = next(c for c in self.status()["conditions"] if c["type"] == type_)
        return c["status"], c["reason"]


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_build_names_the_controller_and_its_kind() -> None:
    spec = build(load_config(environ={}))
    assert (spec.name, spec.kind) == ("hpa-controller", "ECSMHpa")


def test_a_loaded_target_is_scaled_through_its_spec_and_the_status_says_why(h: Harness) -> None:
    h.registry.put(service(replicas=2))
    h.registry.put(hpa())
    h.containers.set("svc-1", [100, 100])
    result = h.sync()
    assert result.requeue_after == h.cfg.hpa.sync_period
    assert h.target()["spec"]["deploymentStrategy"]["replicas"] == 4
    status = h.status()
    assert (status["currentReplicas"], status["desiredReplicas"]) == (2, 4)
    assert status["currentMetrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageUtilization": 100.0}}}]
    assert status["lastScaleTime"].endswith("Z")
    assert status["scaleEvents"][0]["replicaChange"] == 2
    assert "above target" in status["scaleEvents"][0]["reason"]
    assert h.condition("AbleToScale") == ("True", "SucceededRescale")
    assert h.condition("ScalingActive") == ("True", "ValidMetricFound")


def test_current_replicas_come_from_the_target_spec_not_its_status(h: Harness) -> None:
    svc = service(replicas=3)
    svc["status"]["replicas"] = 9
    h.registry.put(svc)
    h.registry.put(hpa())
    h.containers.set("svc-1", [50, 50, 50])
    h.sync()
    assert h.status()["currentReplicas"] == 3
    assert h.target()["spec"]["deploymentStrategy"]["replicas"] == 3


def test_a_conflicting_user_edit_is_kept_and_only_replicas_are_reapplied(h: Harness) -> None:
    h.registry.put(service(replicas=2))
    h.registry.put(hpa())
    h.containers.set("svc-1", [100, 100])

    def user_edits_the_image(reg: FakeRegistry) -> None:
        svc = reg.get("ECSMService", "default", "web")
        svc["spec"]["template"]["image"] = "web@2.0#sylixos"
        reg.put(svc)

    h.registry.before_update.append(user_edits_the_image)
    h.sync()
    spec = h.target()["spec"]
    assert spec["deploymentStrategy"]["replicas"] == 4
    assert spec["template"]["image"] == "web@2.0#sylixos"


def test_a_target_that_keeps_conflicting_is_retried_by_the_workqueue(h: Harness) -> None:
    h.registry.put(service(replicas=2))
    h.registry.put(hpa())
    h.containers.set("svc-1", [100, 100])
    h.registry.before_update.extend(
        [lambda reg: reg.put(reg.get("ECSMService", "default", "web"))] * 10)
    with pytest.raises(Conflict):
        h.sync()


def test_an_absent_target_is_reported_as_failed_get_scale(h: Harness) -> None:
    h.registry.put(hpa())
    h.sync()
    assert h.condition("AbleToScale") == ("False", "FailedGetScale")
    assert h.containers.calls == 0


def test_a_static_target_is_not_scaled(h: Harness) -> None:
    h.registry.put(service(strategy="Static"))
    h.registry.put(hpa())
    h.sync()
    assert h.condition("AbleToScale") == ("False", "StaticStrategy")
    assert h.registry.updates == 0


def test_a_target_without_ecsm_services_yet_has_no_metrics(h: Harness) -> None:
    h.registry.put(service(ids=()))
    h.registry.put(hpa())
    h.sync()
    assert h.condition("ScalingActive") == ("False", "FailedGetResourceMetric")
    assert h.registry.updates == 0


def test_ecsm_unavailable_is_raised_for_the_runtime_backoff(h: Harness) -> None:
    h.registry.put(service())
    h.registry.put(hpa())
    h.containers.down = True
    with pytest.raises(EcsmUnavailable):
        h.sync()


def test_a_paused_hpa_neither_reads_ecsm_nor_scales(h: Harness) -> None:
    h.registry.put(service(replicas=2))
    h.registry.put(hpa(paused=True))
    h.containers.set("svc-1", [500, 500])
    h.sync()
    assert h.registry.updates == 0 and h.containers.calls == 0
    assert h.condition("ScalingActive") == ("False", "ScalingPaused")


def test_an_unchanged_status_is_not_written_again(h: Harness) -> None:
    h.registry.put(service(replicas=2))
    h.registry.put(hpa(paused=True))
    h.sync()
    writes = h.registry.status_writes
    h.now += 15
    h.sync()
    assert h.registry.status_writes == writes


def test_a_restarted_controller_honours_the_stabilization_window(h: Harness) -> None:
    h.registry.put(service(replicas=2))
    h.registry.put(hpa(behavior={"scaleDown": {"stabilizationWindowSeconds": 60}}))
    h.containers.set("svc-1", [100, 100])
    h.sync()  # → 4
    h.containers.set("svc-1", [5] * 4)
    h.now += 10
    h.reconciler = h.new_reconciler()  # a new process: nothing in memory
    h.sync()
    assert h.target()["spec"]["deploymentStrategy"]["replicas"] == 4
    assert h.condition("AbleToScale") == ("True", "ScaleDownStabilized")
    h.now += 51
    h.reconciler = h.new_reconciler()
    h.sync()
    assert h.target()["spec"]["deploymentStrategy"]["replicas"] == 1


def test_a_new_hpa_does_not_scale_its_target_down_before_the_window(h: Harness) -> None:
    h.registry.put(service(replicas=4))
    h.registry.put(hpa())  # the default 300 s scale-down window
    h.containers.set("svc-1", [5] * 4)
    h.sync()
    assert h.target()["spec"]["deploymentStrategy"]["replicas"] == 4
    assert h.condition("AbleToScale") == ("True", "ScaleDownStabilized")
    assert h.status()["recommendations"][0]["replicas"] == 4
    h.now += 301
    h.sync()
    assert h.target()["spec"]["deploymentStrategy"]["replicas"] == 1


def test_a_gone_hpa_is_done(h: Harness) -> None:
    assert h.sync().requeue_after is None
