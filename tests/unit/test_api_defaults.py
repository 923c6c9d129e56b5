"""Defaulting of ECSMService and ECSMHpa, and the determinism of prepare()."""

from __future__ import annotations

import copy
from typing import Any

from ecsm_actors.api import prepare, prepare_status


def service(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "deploymentStrategy": {"type": "Dynamic", "nodePool": ["node-1"]},
        "template": {"image": "app@1.0"},
    }
    body.update(spec)
    return {"apiVersion": "ecsm.sh/v1", "kind": "ECSMService",
            "metadata": {"name": "app"}, "spec": body}


def hpa(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"scaleTargetRef": {"name": "app"}, "maxReplicas": 5}
    body.update(spec)
    return {"apiVersion": "ecsm.sh/v1", "kind": "ECSMHpa", "metadata": {"name": "app"},
            "spec": body}


def test_a_minimal_service_gets_every_documented_default() -> None:
    out = prepare(service())
    assert out["metadata"] == {"name": "app", "namespace": "default"}
    spec = out["spec"]
    assert spec["deploymentStrategy"] == {"type": "Dynamic", "nodePool": ["node-1"], "replicas": 1}
    assert spec["upgradeStrategy"] == {"type": "Never"}
    assert spec["template"] == {
        "image": "app@1.0",
        "imagePullPolicy": "IfNotPresent",
        "prepull": False,
        "hostname": "app",
        "platformSpecific": {"action": "Run"},
    }
    assert spec["rollout"] == {"maxSurge": 1, "maxUnavailable": 0, "revisionHistoryLimit": 2}
    assert spec["dependsOn"] == []
    assert spec["priority"] == 0
    assert "status" not in out


def test_explicit_values_win_over_defaults() -> None:
    template = {"image": "app@1.0", "hostname": "box", "imagePullPolicy": "Always",
                "platformSpecific": {"action": "Load"}}
    out = prepare(service(template=template, rollout={"maxSurge": "25%", "maxUnavailable": "10%"},
                          priority=-3))
    assert out["spec"]["template"]["hostname"] == "box"
    assert out["spec"]["template"]["imagePullPolicy"] == "Always"
    assert out["spec"]["template"]["platformSpecific"] == {"action": "Load"}
    assert out["spec"]["rollout"] == {"maxSurge": "25%", "maxUnavailable": "10%",
                                      "revisionHistoryLimit": 2}
    assert out["spec"]["priority"] == -3


def test_empty_and_null_optional_fields_are_dropped_so_they_equal_absent_ones() -> None:
    noisy = service()
    noisy["spec"]["template"].update(
        command=[], env=None, volumeMounts=[], resources={"limits": {}}, vsoa={}
    )
    noisy["metadata"].update(labels={}, finalizers=[], annotations=None)
    assert prepare(noisy) == prepare(service())


def test_a_plain_integer_quantity_is_kept_as_a_string() -> None:
    out = prepare(service(template={"image": "a@1", "resources": {"limits": {"memory": 1 << 20}}}))
    assert out["spec"]["template"]["resources"] == {"limits": {"memory": "1048576"}}


def test_server_owned_metadata_and_status_pass_through_untouched() -> None:
    obj = service()
    obj["metadata"].update(uid="3f2a", resourceVersion=41, generation=3,
                           creationTimestamp="2026-11-26T08:51:49Z",
                           deletionTimestamp="2026-11-26T09:00:00Z",
                           finalizers=["ecsm.sh/service-controller"])
    obj["status"] = {"anything": ["the", "registry", "decides"]}
    out = prepare(obj)
    assert out["metadata"] == {"namespace": "default", **obj["metadata"]}
    assert out["status"] == obj["status"] and out["status"] is not obj["status"]


def test_preparing_twice_or_reordered_gives_the_identical_dict() -> None:
    first = prepare(service(dependsOn=["db"]))
    assert prepare(first) == first
    shuffled = copy.deepcopy(service(dependsOn=["db"]))
    shuffled["spec"] = dict(reversed(list(shuffled["spec"].items())))
    again = prepare(shuffled)
    assert again == first
    assert list(again["spec"]) == list(first["spec"])  # key order too (msgpack is ordered)


def test_a_minimal_hpa_gets_the_kubernetes_defaults() -> None:
    spec = prepare(hpa())["spec"]
    assert spec["scaleTargetRef"] == {"kind": "ECSMService", "name": "app"}
    assert spec["minReplicas"] == 1
    assert spec["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    assert spec["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15}]},
        "scaleDown": {"selectPolicy": "Max", "policies": [  # window unset: controller default
            {"type": "Percent", "value": 100, "periodSeconds": 15}]},
    }
    assert spec["paused"] is False
    assert "tolerance" not in spec


def test_hpa_behavior_defaults_fill_only_what_is_missing() -> None:
    spec = prepare(hpa(behavior={"scaleDown": {"stabilizationWindowSeconds": 60}},
                       tolerance=0))["spec"]
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 60
    assert spec["behavior"]["scaleDown"]["policies"] == [
        {"type": "Percent", "value": 100, "periodSeconds": 15}]
    assert spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert spec["tolerance"] == 0.0 and isinstance(spec["tolerance"], float)


def test_a_metric_without_types_defaults_to_resource_utilization() -> None:
    spec = prepare(hpa(metrics=[{"resource": {"name": "memory",
                                              "target": {"averageUtilization": 70}}}]))["spec"]
    assert spec["metrics"] == [{"type": "Resource", "resource": {
        "name": "memory", "target": {"type": "Utilization", "averageUtilization": 70}}}]


def test_status_counters_default_to_zero_and_empty_lists_are_dropped() -> None:
    assert prepare_status("ECSMService", {"underlyingServiceIDs": [], "conditions": []}) == {
        "replicas": 0, "readyReplicas": 0, "updatedReplicas": 0, "availableReplicas": 0,
        "observedGeneration": 0,
    }
    assert prepare_status("ECSMHpa", {}) == {
        "currentReplicas": 0, "desiredReplicas": 0, "observedGeneration": 0,
    }
