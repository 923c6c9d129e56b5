"""ECSMService validation: every rule is reported with the path of the offending field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ecsm_actors.api import prepare
from ecsm_actors.errors import Invalid

DELETE = object()


def service(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "deploymentStrategy": {"type": "Dynamic", "replicas": 2, "nodePool": ["node-1", "node-2"]},
        "template": {"image": "app@1.0#sylixos"},
    }
    body.update(spec)
    return {"apiVersion": "ecsm.sh/v1", "kind": "ECSMService",
            "metadata": {"name": "app"}, "spec": body}


def patched(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    if value is DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return out


def causes(obj: Any) -> dict[str, str]:
    with pytest.raises(Invalid) as info:
        prepare(obj)
    return {c.field: c.message for c in info.value.causes}


STATIC = {"type": "Static", "nodes": ["node-1"]}

CASES = [
    # (patch path, value, field reported, message fragment)
    ("metadata.name", "Web_1", "metadata.name", "DNS-1123 label"),
    ("metadata.name", "a" * 64, "metadata.name", "no more than 63"),
    ("metadata.name", "-web", "metadata.name", "DNS-1123"),
    ("metadata.name", "web.svc", "metadata.name", "DNS-1123"),
    ("metadata.name", DELETE, "metadata.name", "required"),
    ("metadata.namespace", "Prod", "metadata.namespace", "DNS-1123"),
    ("metadata.labels", {"app": 3}, "metadata.labels[app]", "expected string"),
    ("metadata.labels", {"bad key!": "x"}, "metadata.labels[bad key!]", "name part"),
    ("metadata.annotations", ["x"], "metadata.annotations", "expected map"),
    ("metadata.finalizers", ["ecsm.sh/cleanup", 7], "metadata.finalizers[1]", "expected string"),
    ("metadata.resourceVersion", "12", "metadata.resourceVersion", "expected integer"),
    ("metadata.generation", True, "metadata.generation", "expected integer"),
    ("metadata.creationTimestamp", "yesterday", "metadata.creationTimestamp", "RFC 3339"),
    ("apiVersion", "v1", "apiVersion", "supported values"),
    ("spec.deploymentStrategy", {"type": "Static"}, "spec.deploymentStrategy.nodes", "required"),
    ("spec.deploymentStrategy", {"type": "Static", "nodes": []},
     "spec.deploymentStrategy.nodes", "required"),
    ("spec.deploymentStrategy", {"type": "Static", "nodes": ["node-1", "node-1"]},
     "spec.deploymentStrategy.nodes[1]", "duplicate"),
    ("spec.deploymentStrategy", {"type": "Static", "nodes": ["n"], "replicas": 2},
     "spec.deploymentStrategy.replicas", "forbidden"),
    ("spec.deploymentStrategy", {"type": "Static", "nodes": ["n"], "nodePool": ["m"]},
     "spec.deploymentStrategy.nodePool", "forbidden"),
    ("spec.deploymentStrategy", {"type": "Dynamic", "replicas": 1},
     "spec.deploymentStrategy.nodePool", "required"),
    ("spec.deploymentStrategy.replicas", -1, "spec.deploymentStrategy.replicas",
     "greater than or equal to 0"),
    ("spec.deploymentStrategy.replicas", "2", "spec.deploymentStrategy.replicas",
     "expected integer"),
    ("spec.deploymentStrategy.nodePool", ["node-1", ""], "spec.deploymentStrategy.nodePool[1]",
     "empty"),
    ("spec.deploymentStrategy.nodes", ["node-3"], "spec.deploymentStrategy.nodes", "forbidden"),
    ("spec.deploymentStrategy.type", "Daemon", "spec.deploymentStrategy.type", '"Static"'),
    ("spec.deploymentStrategy", DELETE, "spec.deploymentStrategy", "required"),
    ("spec.upgradeStrategy.type", "Sometimes", "spec.upgradeStrategy.type", "supported values"),
    ("spec.template.image", "app:1.0", "spec.template.image", "name@tag"),
    ("spec.template.image", "app@1.0#", "spec.template.image", "name@tag#os"),
    ("spec.template.image", "app@", "spec.template.image", "name@tag"),
    ("spec.template.image", DELETE, "spec.template.image", "required"),
    ("spec.template.imagePullPolicy", "Sometimes", "spec.template.imagePullPolicy", "IfNotPresent"),
    ("spec.template.prepull", "yes", "spec.template.prepull", "expected boolean"),
    ("spec.template.hostname", "", "spec.template.hostname", "empty"),
    ("spec.template.command", "run", "spec.template.command", "expected list"),
    ("spec.template.env", [{"name": "", "value": "x"}], "spec.template.env[0].name", "empty"),
    ("spec.template.env", [{"name": "A=B"}], "spec.template.env[0].name", "'='"),
    ("spec.template.env", [{"name": "A"}, {"name": "A", "value": "2"}],
     "spec.template.env[1].name", "duplicate"),
    ("spec.template.env", [{"value": "x"}], "spec.template.env[0].name", "required"),
    ("spec.template.resources.limits.memory", "lots", "spec.template.resources.limits.memory",
     "quantity"),
    ("spec.template.resources.limits.memory", -5, "spec.template.resources.limits.memory",
     "negative"),
    ("spec.template.resources.limits.memory", 512, "spec.template.resources.limits.memory",
     "at least 1Mi"),
    ("spec.template.resources.limits.disk", "1.5Xi", "spec.template.resources.limits.disk",
     "quantity"),
    ("spec.template.resources.limits.cpu", "1", "spec.template.resources.limits.cpu",
     "unknown field"),
    ("spec.template.volumeMounts", [{"name": "d", "hostPath": "data", "containerPath": "/d"}],
     "spec.template.volumeMounts[0].hostPath", "absolute"),
    ("spec.template.volumeMounts", [{"name": "d", "hostPath": "/data", "containerPath": "d"}],
     "spec.template.volumeMounts[0].containerPath", "absolute"),
    ("spec.template.volumeMounts",
     [{"name": "a", "hostPath": "/a", "containerPath": "/d"},
      {"name": "b", "hostPath": "/b", "containerPath": "/d"}],
     "spec.template.volumeMounts[1].containerPath", "duplicate"),
    ("spec.template.vsoa.port", 70000, "spec.template.vsoa.port", "less than or equal to 65535"),
    ("spec.template.vsoa.port", -1, "spec.template.vsoa.port", "greater than or equal to 0"),
    ("spec.template.vsoa.healthCheck", {"periodSeconds": 0},
     "spec.template.vsoa.healthCheck.periodSeconds", "greater than or equal to 1"),
    ("spec.template.platformSpecific.action", "Start",
     "spec.template.platformSpecific.action", '"Run"'),
    ("spec.template.platformSpecific.root", {"readOnly": True},
     "spec.template.platformSpecific.root.path", "required"),
    ("spec.template.platformSpecific.platform", {"os": "linux"},
     "spec.template.platformSpecific.platform.os", "contradicts"),
    ("spec.template.platformSpecific.sylixos", {"cpu": {"highestPrio": 255, "lowestPrio": 200}},
     "spec.template.platformSpecific.sylixos.cpu.highestPrio", "lower number"),
    ("spec.template.platformSpecific.sylixos", {"cpu": {"lowestPrio": 256}},
     "spec.template.platformSpecific.sylixos.cpu.lowestPrio", "less than or equal to 255"),
    ("spec.template.platformSpecific.sylixos", {"devices": [{"path": "dev/x"}]},
     "spec.template.platformSpecific.sylixos.devices[0].path", "absolute"),
    ("spec.template.platformSpecific.sylixos", {"network": {"ftpd": "on"}},
     "spec.template.platformSpecific.sylixos.network.ftpd", "expected boolean"),
    ("spec.template.platformSpecific.sylixos", {"memory": {"kheapLimit": -1}},
     "spec.template.platformSpecific.sylixos.memory.kheapLimit", "greater than or equal to 0"),
    ("spec.rollout.maxSurge", "25", "spec.rollout.maxSurge", "percentage"),
    ("spec.rollout.maxSurge", -1, "spec.rollout.maxSurge", "greater than or equal to 0"),
    ("spec.rollout.maxUnavailable", "150%", "spec.rollout.maxUnavailable", "100%"),
    ("spec.rollout", {"maxSurge": 0, "maxUnavailable": "0%"}, "spec.rollout.maxUnavailable",
     "may not be 0 when maxSurge is 0"),
    ("spec.rollout.revisionHistoryLimit", -1, "spec.rollout.revisionHistoryLimit",
     "greater than or equal to 0"),
    ("spec.dependsOn", ["app"], "spec.dependsOn[0]", "itself"),
    ("spec.dependsOn", ["db", "Db"], "spec.dependsOn[1]", "DNS-1123"),
    ("spec.dependsOn", ["db", "db"], "spec.dependsOn[1]", "duplicate"),
    ("spec.dependsOn", "db", "spec.dependsOn", "expected list"),
    ("spec.priority", 1.5, "spec.priority", "expected integer"),
    ("spec.priority", 10**9 + 1, "spec.priority", "less than or equal to 1000000000"),
    ("spec.template", DELETE, "spec.template", "required"),
    ("spec", DELETE, "spec", "required"),
    ("status", "Ready", "status", "expected map"),
]


@pytest.mark.parametrize(("path", "value", "field", "fragment"), CASES,
                         ids=[f"{c[0]}={c[1]!r}"[:60] for c in CASES])
def test_an_invalid_service_is_refused_with_the_path_of_the_field(
    path: str, value: Any, field: str, fragment: str
) -> None:
    found = causes(patched(service(), path, value))
    assert field in found, found
    assert fragment in found[field]


def test_unknown_fields_are_refused_with_their_path_at_every_depth() -> None:
    obj = service()
    obj["spec"]["replicas"] = 3
    obj["spec"]["template"]["imagePullPolicyy"] = "Always"
    obj["spec"]["template"]["env"] = [{"name": "A", "valu": "1"}]
    obj["metadata"]["ownerReferences"] = []
    obj["extra"] = 1
    found = causes(obj)
    assert set(found) == {
        "spec.replicas",
        "spec.template.imagePullPolicyy",
        "spec.template.env[0].valu",
        "metadata.ownerReferences",
        "extra",
    }
    assert found["spec.template.imagePullPolicyy"] == (
        'unknown field "imagePullPolicyy" (did you mean "imagePullPolicy"?)'
    )


def test_all_causes_of_one_object_are_reported_together() -> None:
    obj = patched(service(), "spec.template.image", "nope")
    obj = patched(obj, "spec.template.vsoa.port", 99999)
    obj = patched(obj, "metadata.namespace", "NS")
    with pytest.raises(Invalid) as info:
        prepare(obj)
    assert [c.field for c in info.value.causes] == [
        "metadata.namespace", "spec.template.image", "spec.template.vsoa.port"
    ]
    assert str(info.value).startswith('ECSMService "NS/app" is invalid: ')


def test_a_type_error_is_reported_once_not_also_as_missing() -> None:
    obj = patched(service(), "spec.deploymentStrategy", {"type": "Static", "nodes": "node-1"})
    assert causes(obj) == {"spec.deploymentStrategy.nodes": "expected list, got string \"node-1\""}


def test_a_static_service_with_nodes_is_valid() -> None:
    assert prepare(patched(service(), "spec.deploymentStrategy", STATIC))


def test_an_unknown_kind_and_a_non_map_are_refused() -> None:
    assert "kind" in causes({**service(), "kind": "Deployment"})
    assert causes(["not", "a", "map"]) == {"": "expected map, got list"}


def test_prepare_never_mutates_its_input() -> None:
    obj = service()
    before = copy.deepcopy(obj)
    prepare(obj)
    assert obj == before
