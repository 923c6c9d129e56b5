"""ECSMHpa validation and status validation, each rule with its field path."""

from __future__ import annotations

from typing import Any

import pytest

from ecsm_actors.api import prepare, prepare_status
from ecsm_actors.errors import Invalid


def hpa(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"scaleTargetRef": {"kind": "ECSMService", "name": "app"},
                            "minReplicas": 1, "maxReplicas": 5}
    body.update(spec)
    return {"apiVersion": "ecsm.sh/v1", "kind": "ECSMHpa", "metadata": {"name": "app"},
            "spec": body}


def cpu(value: Any, name: str = "cpu") -> list[dict[str, Any]]:
    return [{"type": "Resource", "resource": {
        "name": name, "target": {"type": "Utilization", "averageUtilization": value}}}]


def rules(**kw: Any) -> dict[str, Any]:
    return {"scaleUp": kw}


def causes(fn: Any, *args: Any) -> dict[str, str]:
    with pytest.raises(Invalid) as info:
        fn(*args)
    return {c.field: c.message for c in info.value.causes}


SPEC_CASES = [
    ({"minReplicas": 0}, "spec.minReplicas", "greater than or equal to 1"),
    ({"maxReplicas": 0}, "spec.maxReplicas", "greater than or equal to 1"),
    ({"maxReplicas": None}, "spec.maxReplicas", "required"),
    ({"minReplicas": 6}, "spec.minReplicas", "less than or equal to maxReplicas (5)"),
    ({"scaleTargetRef": {"kind": "Deployment", "name": "app"}}, "spec.scaleTargetRef.kind",
     '"ECSMService"'),
    ({"scaleTargetRef": {"kind": "ECSMService"}}, "spec.scaleTargetRef.name", "required"),
    ({"scaleTargetRef": {"name": "App"}}, "spec.scaleTargetRef.name", "DNS-1123"),
    ({"scaleTargetRef": {"name": "app", "apiVersion": "apps/v1"}},
     "spec.scaleTargetRef.apiVersion", "ecsm.sh/v1"),
    ({"metrics": cpu(0)}, "spec.metrics[0].resource.target.averageUtilization",
     "greater than or equal to 1"),
    ({"metrics": cpu(101, "memory")}, "spec.metrics[0].resource.target.averageUtilization",
     "between 1 and 100 for memory"),
    ({"metrics": cpu(50, "gpu")}, "spec.metrics[0].resource.name", '"cpu"'),
    ({"metrics": cpu(50) + cpu(60)}, "spec.metrics[1].resource.name", "duplicate"),
    ({"metrics": []}, "spec.metrics", "at least 1"),
    ({"metrics": [{"type": "Pods", "resource": cpu(5)[0]["resource"]}]}, "spec.metrics[0].type",
     '"Resource"'),
    ({"metrics": [{"resource": {"name": "cpu", "target": {"type": "AverageValue",
                                                          "averageUtilization": 5}}}]},
     "spec.metrics[0].resource.target.type", '"Utilization"'),
    ({"metrics": [{"resource": {"name": "cpu"}}]}, "spec.metrics[0].resource.target", "required"),
    ({"behavior": rules(policies=[{"type": "Pods", "value": 0, "periodSeconds": 15}])},
     "spec.behavior.scaleUp.policies[0].value", "greater than or equal to 1"),
    ({"behavior": rules(policies=[{"type": "Pods", "value": 1, "periodSeconds": 0}])},
     "spec.behavior.scaleUp.policies[0].periodSeconds", "greater than or equal to 1"),
    ({"behavior": rules(policies=[{"type": "Pods", "value": 1, "periodSeconds": 1801}])},
     "spec.behavior.scaleUp.policies[0].periodSeconds", "less than or equal to 1800"),
    ({"behavior": rules(policies=[{"type": "Nodes", "value": 1, "periodSeconds": 1}])},
     "spec.behavior.scaleUp.policies[0].type", '"Percent"'),
    ({"behavior": rules(policies=[])}, "spec.behavior.scaleUp.policies", "at least one policy"),
    ({"behavior": rules(stabilizationWindowSeconds=3601)},
     "spec.behavior.scaleUp.stabilizationWindowSeconds", "less than or equal to 3600"),
    ({"behavior": rules(stabilizationWindowSeconds=-1)},
     "spec.behavior.scaleUp.stabilizationWindowSeconds", "greater than or equal to 0"),
    ({"behavior": rules(selectPolicy="Avg")}, "spec.behavior.scaleUp.selectPolicy", '"Max"'),
    ({"behavior": {"scaleSideways": {}}}, "spec.behavior.scaleSideways", "unknown field"),
    ({"tolerance": 1.5}, "spec.tolerance", "less than or equal to 1.0"),
    ({"tolerance": -0.1}, "spec.tolerance", "greater than or equal to 0.0"),
    ({"tolerance": "10%"}, "spec.tolerance", "expected number"),
    ({"tolerance": float("nan")}, "spec.tolerance", "finite"),
    ({"paused": "no"}, "spec.paused", "expected boolean"),
    ({"targetCPUUtilizationPercentage": 50}, "spec.targetCPUUtilizationPercentage",
     "unknown field"),
]


@pytest.mark.parametrize(("patch", "field", "fragment"), SPEC_CASES,
                         ids=[f"{c[1]}:{c[2]}"[:70] for c in SPEC_CASES])
def test_an_invalid_hpa_is_refused_with_the_path_of_the_field(
    patch: dict[str, Any], field: str, fragment: str
) -> None:
    found = causes(prepare, hpa(**patch))
    assert field in found, found
    assert fragment in found[field]


def test_disabling_a_direction_needs_no_policies() -> None:
    out = prepare(hpa(behavior={"scaleDown": {"selectPolicy": "Disabled", "policies": []}}))
    assert out["spec"]["behavior"]["scaleDown"]["selectPolicy"] == "Disabled"


def test_a_full_hpa_status_is_accepted() -> None:
    status = {
        "currentReplicas": 2, "desiredReplicas": 3, "observedGeneration": 4,
        "currentMetrics": [{"type": "Resource", "resource": {
            "name": "cpu", "current": {"averageUtilization": 72.5}}}],
        "lastScaleTime": "2026-11-26T08:51:49Z",
        "conditions": [{"type": "AbleToScale", "status": "True", "reason": "SucceededRescale",
                        "message": "", "lastTransitionTime": "2026-11-26T08:51:49Z"}],
        "recommendations": [{"timestamp": "2026-11-26T08:51:49Z", "replicas": 3}],
        "scaleEvents": [{"timestamp": "2026-11-26T08:51:49Z", "replicaChange": 1,
                         "reason": "cpu above target"}],
    }
    assert prepare_status("ECSMHpa", status) == status


STATUS_CASES = [
    ("ECSMService", {"readyReplicas": -1}, "status.readyReplicas", "greater than or equal to 0"),
    ("ECSMService", {"replicas": "2"}, "status.replicas", "expected integer"),
    ("ECSMService", {"underlyingServiceIDs": ["a", "a"]}, "status.underlyingServiceIDs[1]",
     "duplicate"),
    ("ECSMService", {"underlyingServiceID": "a"}, "status.underlyingServiceID", "unknown field"),
    ("ECSMService", {"conditions": [{"type": "Available", "status": True}]},
     "status.conditions[0].status", '"True"'),
    ("ECSMService", {"conditions": [{"type": "Available", "status": "True"},
                                    {"type": "Available", "status": "False"}]},
     "status.conditions[1].type", "duplicate"),
    ("ECSMService", {"conditions": [{"status": "True"}]}, "status.conditions[0].type", "required"),
    ("ECSMService", {"conditions": [{"type": "A", "status": "True",
                                     "lastTransitionTime": "now"}]},
     "status.conditions[0].lastTransitionTime", "RFC 3339"),
    ("ECSMHpa", {"recommendations": [{"timestamp": "2026-11-26T08:51:49Z"}]},
     "status.recommendations[0].replicas", "required"),
    ("ECSMHpa", {"scaleEvents": [{"timestamp": "2026-11-26", "replicaChange": 1}]},
     "status.scaleEvents[0].timestamp", "RFC 3339"),
    ("ECSMHpa", {"currentMetrics": [{"resource": {"name": "cpu",
                                                  "current": {"averageUtilization": -1}}}]},
     "status.currentMetrics[0].resource.current.averageUtilization", "greater than or equal"),
    ("ECSMHpa", {"lastScaleTime": 5}, "status.lastScaleTime", "expected string"),
]


@pytest.mark.parametrize(("kind", "status", "field", "fragment"), STATUS_CASES,
                         ids=[c[2] for c in STATUS_CASES])
def test_an_invalid_status_is_refused_with_the_path_of_the_field(
    kind: str, status: dict[str, Any], field: str, fragment: str
) -> None:
    found = causes(prepare_status, kind, status)
    assert field in found, found
    assert fragment in found[field]


def test_prepare_status_refuses_an_unknown_kind_and_a_non_map() -> None:
    assert "kind" in causes(prepare_status, "Pod", {})
    assert causes(prepare_status, "ECSMHpa", []) == {"status": "expected map, got list"}
