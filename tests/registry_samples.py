"""Valid API objects for registry, store and CLI tests (the api validates every write)."""

from __future__ import annotations

import copy
from typing import Any


def service(name: str = "web", namespace: str | None = None, replicas: int = 2,
            image: str = "app@1.0#sylixos", **metadata: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **metadata}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "ecsm.sh/v1",
        "kind": "ECSMService",
        "metadata": meta,
        "spec": {
            "deploymentStrategy": {"type": "Dynamic", "replicas": replicas,
                                   "nodePool": ["node-1", "node-2"]},
            "template": {"image": image},
        },
    }


def hpa(name: str = "web", target: str = "web", max_replicas: int = 5) -> dict[str, Any]:
    return {
        "apiVersion": "ecsm.sh/v1",
        "kind": "ECSMHpa",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"kind": "ECSMService", "name": target},
            "minReplicas": 1,
            "maxReplicas": max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}],
        },
    }


def with_changes(obj: dict[str, Any], **paths: Any) -> dict[str, Any]:
    """A deep copy of ``obj`` with dotted paths (``spec__template__image``) replaced."""
    out = copy.deepcopy(obj)
    for dotted, value in paths.items():
        node = out
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out
