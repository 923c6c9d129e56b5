"""An in-process world for the service controller's unit tests: no sockets, no sleeps.

* ECSM is the real simulator application (:class:`Simulator`) driven in-process through a
  :class:`Transport`, on a fake clock: containers turn ``running`` when the test advances
  time past the start delay.
* The registry is a fake that applies the real write semantics
  (:mod:`ecsm_actors.store.semantics`: defaulting, validation, OCC, generation,
  finalizers), without LMDB or ZeroMQ.
* ``World.settle(key)`` runs reconcile passes, advancing fake time by each
  ``requeue_after``, until the controller says it is settled (no requeue) or only
  waiting for room (the drift pace); ``World.sweep()`` runs the drift sweep once and
  returns the keys it enqueued.
"""

from __future__ import annotations

import copy
import json
from typing import Any, cast

import pytest

from ecsm_actors.api import prepare
from ecsm_actors.config import Config, load_config
from ecsm_actors.controllers.service.controller import ServiceReconciler
from ecsm_actors.ecsm.clientset import Clientset
from ecsm_actors.ecsm.rest import RestClient
from ecsm_actors.ecsm.simulator.app import Simulator
from ecsm_actors.ecsm.simulator.state import State
from ecsm_actors.errors import EcsmUnavailable, Invalid, NotFound
from ecsm_actors.runtime import ReconcileContext, Result
from ecsm_actors.store import semantics

BASE = "http://sim.invalid"


class InProcessTransport:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.calls: list[str] = []

    def send(self, method: str, url: str, body: bytes | None,
             timeout: tuple[float | None, float | None]) -> tuple[int, bytes]:
        target = url[len(BASE):]
        self.calls.append(f"{method} {target.partition('?')[0]}")
        reply = self.sim.handle(method, target, body or b"")
        if reply is None:
            raise EcsmUnavailable(url, "connection closed without an answer")
        return reply

    def close(self) -> None:
        pass


class FakeRegistry:
    """Registry semantics in a dict."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.objects: dict[bytes, dict[str, Any]] = {}
        self.rv = 0
        self.status_writes = 0

    def _commit(self, target: semantics.Target, change: semantics.Change) -> dict[str, Any]:
        if change.type is None:
            return copy.deepcopy(change.object)
        self.rv += 1
        obj = copy.deepcopy(change.object)
        obj["metadata"]["resourceVersion"] = self.rv
        if change.remove:
            self.objects.pop(target.store_key, None)
        else:
            self.objects[target.store_key] = obj
        return copy.deepcopy(obj)

    def _current(self, target: semantics.Target) -> dict[str, Any] | None:
        return self.objects.get(target.store_key)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self.objects.get(f"{kind}/{namespace}/{name}".encode())
        if obj is None:
            raise NotFound(f"{kind} {namespace}/{name} not found")
        return copy.deepcopy(obj)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        prepared = semantics.prepare_object(obj)
        target = semantics.target_of(prepared)
        return self._commit(target, semantics.create(target, self._current(target), prepared,
                                                     self.clock()))

    def update(self, obj: dict[str, Any]) -> dict[str, Any]:
        prepared = semantics.prepare_object(obj)
        target = semantics.target_of(prepared)
        return self._commit(target, semantics.update(target, self._current(target), prepared,
                                                     semantics.requested_version(obj)))

    def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        target = semantics.target_of(obj)
        status = semantics.prepare_status(target.kind, obj)
        self.status_writes += 1
        return self._commit(target, semantics.update_status(
            target, self._current(target), status, semantics.requested_version(obj)))

    def list(self, kind: str, namespace: str | None = None) -> Any:
        prefix = f"{kind}/{namespace}/" if namespace else f"{kind}/"
        items = [copy.deepcopy(o) for k, o in sorted(self.objects.items())
                 if k.decode().startswith(prefix)]
        return type("ListResult", (), {"items": items, "resource_version": self.rv})()

    def delete(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        target = semantics.Target(kind=kind, namespace=namespace, name=name)
        out = self._commit(target, semantics.delete(target, self._current(target), None,
                                                    self.clock()))
        return None if target.store_key not in self.objects else out


class FakeContext:
    def __init__(self, registry: FakeRegistry, config: Config) -> None:
        self.registry = registry
        self.kind = "ECSMService"
        self.config = config

    def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.registry.update_status(obj)


def esvc(name: str, *, image: str = "app@1.0", replicas: int | None = 2,
         nodes: list[str] | None = None, pool: list[str] | None = None,
         depends_on: list[str] | None = None, rollout: dict[str, Any] | None = None,
         **template: Any) -> dict[str, Any]:
    if nodes is not None:
        strategy: dict[str, Any] = {"type": "Static", "nodes": nodes}
    else:
        strategy = {"type": "Dynamic", "nodePool": pool or ["node-1", "node-2", "node-3"],
                    "replicas": replicas}
    spec: dict[str, Any] = {"deploymentStrategy": strategy,
                            "template": {"image": image, **template}}
    if depends_on:
        spec["dependsOn"] = depends_on
    if rollout:
        spec["rollout"] = rollout
    return {"apiVersion": "ecsm.sh/v1", "kind": "ECSMService",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


class World:
    def __init__(self, *, nodes: int = 3, start_delay: float = 1.0,
                 overrides: dict[str, Any] | None = None) -> None:
        self.now = 1_800_000_000.0
        self.state = State.seeded(nodes, start_delay=start_delay, clock=self.clock)
        self.sim = Simulator(self.state, sleep=lambda _: None)
        self.transport = InProcessTransport(self.sim)
        self.ecsm = Clientset(RestClient(BASE, transport=self.transport))
        self.registry = FakeRegistry(self.clock)
        settings = {"service.drift_interval": 10.0, "service.poll_interval": 0.5,
                    "service.node_refresh_interval": 0.0, "run.dir": "/nonexistent-ea"}
        settings.update(overrides or {})
        self.cfg = load_config(environ={}, overrides=settings)
        self.reconciler = ServiceReconciler(self.cfg, self.ecsm, wall_clock=self.clock,
                                            monotonic=self.clock)
        self.ctx = FakeContext(self.registry, self.cfg)

    def clock(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    # -- registry ------------------------------------------------------------------------

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        try:
            current = self.registry.get("ECSMService", meta.get("namespace", "default"),
                                        meta["name"])
        except NotFound:
            return self.registry.create(obj)
        merged = {**obj, "metadata": {**current["metadata"], **meta,
                                      "resourceVersion": current["metadata"]["resourceVersion"]}}
        return self.registry.update(merged)

    def get(self, name: str) -> dict[str, Any]:
        return self.registry.get("ECSMService", "default", name)

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        for c in (self.get(name).get("status") or {}).get("conditions") or []:
            if c["type"] == type_:
                return dict(c)
        return None

    # -- controller ----------------------------------------------------------------------

    def reconcile(self, name: str) -> Result:
        # FakeContext provides the part of ReconcileContext the reconciler uses.
        return self.reconciler.reconcile(cast(ReconcileContext, self.ctx), f"default/{name}")

    def at_rest(self, result: Result) -> bool:
        """Settled (watched by the sweep, no requeue) or waiting at the drift pace."""
        return result.requeue_after == self.cfg.service.drift_interval or (
            result.requeue_after is None and not result.requeue)

    def settle(self, *names: str, max_passes: int = 60) -> int:
        """Reconcile until every name's pass is at rest (:meth:`at_rest`); returns passes."""
        for i in range(max_passes):
            results = [self.reconcile(n) for n in names]
            if all(self.at_rest(r) for r in results):
                return i + 1
            self.advance(min((r.requeue_after or 0.5) for r in results))
        raise AssertionError(f"not settled after {max_passes} passes: {self.ecsm_services()}")

    def sweep(self) -> list[str]:
        """One drift sweep over every object of the registry: the keys it enqueued."""
        keys = [k.decode().split("/", 1)[1] for k in self.registry.objects]
        enqueued: list[str] = []
        self.reconciler.drift.sweep(keys, enqueued.append)
        return enqueued

    # -- ECSM ------------------------------------------------------------------------------

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        raw = b"" if body is None else json.dumps(body).encode()
        reply = self.sim.handle(method, f"/_sim/{path}", raw)
        assert reply is not None and reply[0] == 200, reply
        return json.loads(reply[1])["data"]

    def ecsm_services(self) -> dict[str, Any]:
        """ECSM service name → (factor, sorted node names, running count)."""
        out = {}
        for svc in self.state.services.values():
            cs = self.state.containers_of(svc.id)
            running = sum(1 for c in cs if c.status(self.now) == "running")
            out[svc.name] = (svc.factor, sorted(self.state.nodes[c.node_id].name for c in cs),
                             running)
        return out

    def totals(self, prefix: str) -> tuple[int, int]:
        """(containers, running) over every ECSM service whose name starts with prefix."""
        total = running = 0
        for svc in self.state.services.values():
            if svc.name.startswith(prefix):
                for c in self.state.containers_of(svc.id):
                    total += 1
                    running += c.status(self.now) == "running"
        return total, running


#: A VSOA password the secret tests look for in every output.
PASSWORD = "Tr0ub4dor&3-vsoa"


def causes(obj: dict) -> list[str]:
    """The causes ``prepare`` refuses ``obj`` with, as ``field: message`` lines."""
    with pytest.raises(Invalid) as info:
        prepare(obj)
    return [f"{c.field}: {c.message}" for c in info.value.causes]


def vsoa_service(**vsoa: object) -> dict:
    """An ECSMService ``web`` of one replica with ``vsoa`` set."""
    return esvc("web", replicas=1, vsoa=vsoa)


def ecsm_vsoa(w: World) -> list[dict]:
    """The ``vsoa`` block of every service ECSM holds."""
    return [svc.image.get("vsoa") for svc in w.state.services.values()]
