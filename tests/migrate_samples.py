"""A store whose objects carry every piece of metadata a migration must keep: labels,
annotations, finalizers, a generation past 1, a status, a deletionTimestamp (an object
held by its finalizer), two kinds and two namespaces. For the tests of
``ecsm-operator store migrate`` and :meth:`Store.restore`."""

from __future__ import annotations

from typing import Any

from ecsm_actors.api import KINDS
from ecsm_actors.protocol import Op
from ecsm_actors.store import Store
from tests.registry_samples import hpa, service, with_changes


def populate(store: Store) -> None:
    store.write(Op.CREATE, object=service("web", labels={"tier": "front"},
                                          annotations={"team": "ground"}))
    web = store.get("ECSMService", "default", "web")
    web = store.write(Op.UPDATE, object=with_changes(web, spec__deploymentStrategy__replicas=3))
    store.write(Op.UPDATE_STATUS, object=with_changes(web, status={
        "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
        "observedGeneration": 2}))
    store.write(Op.CREATE, object=service("db", namespace="prod",
                                          finalizers=["ecsm.sh/service-cleanup"]))
    store.write(Op.DELETE, kind="ECSMService", namespace="prod", name="db")
    store.write(Op.CREATE, object=hpa("web"))


def every_object(store: Store) -> dict[str, dict[str, Any]]:
    """``kind/namespace/name`` → object, of every kind."""
    out: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        for obj in store.list_objects(kind)[0]:
            meta = obj["metadata"]
            out[f"{kind}/{meta['namespace']}/{meta['name']}"] = obj
    return out


def without_version(objects: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The objects with ``metadata.resourceVersion`` left out (a migration gives it anew)."""
    return {key: {**obj, "metadata": {k: v for k, v in obj["metadata"].items()
                                      if k != "resourceVersion"}}
            for key, obj in objects.items()}
