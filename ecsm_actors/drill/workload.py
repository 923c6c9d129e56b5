"""The drill's workload: ECSMServices and ECSMHpas generated from a seed.

Pure (runs in the drill process, touches nothing): ``generate_workload(rng, services)``
draws services of both deployment strategies over the simulator's seeded nodes and
images, ``dependsOn`` chains, HPAs on some Dynamic services, and a few *canaries* — small
services the drill changes on purpose to time how long the system takes to reconcile
again after a fault. The same random stream gives the same workload.

Invariants: names are DNS-1123 labels; ``dependsOn`` only points backwards along a chain
(never a cycle); chain members and HPA targets are *protected* (the timeline never
deletes them, so a dependent can always become Available); canaries are never touched by
the random timeline.

Capacity pressure (:func:`with_pressure`, ``drill --pressure``): every service gets a
memory limit (``resources.limits.memory``) and a priority class, drawn from a stream of
their own so the seed's workload and timeline stay the same; canaries and chain members
are in the top class with the smallest limit (never preempted: a dependency held down
would hold its dependents, a canary times recoveries), the others share three lower
classes. :func:`pressure_node_memory` sizes the nodes so that the initial workload needs
more memory than the nodes have (``PRESSURE_RATIO`` of it fits): the lowest priorities
must give way.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

from ecsm_actors.api import API_VERSION

NAMESPACE = "default"
NODES = ("node-1", "node-2", "node-3")
IMAGES = ("app@1.0#sylixos", "app@1.1#sylixos", "app@2.0#sylixos", "web@1.0#sylixos",
          "db@1.0#sylixos")
#: Label put on every object the drill creates.
MANAGED_BY = {"app.kubernetes.io/managed-by": "ecsm-drill"}
#: Annotations owned by the drill (the write burst touches these; the ledger checks them).
ANNOTATION_PREFIX = "drill.ecsm.sh/"
#: Env var bumped by template changes that keep the image.
REVISION_ENV = "DRILL_REVISION"
CANARY_PREFIX = "drill-canary-"
#: Under pressure: memory limits (MiB) and priority classes drawn for ordinary services;
#: canaries and chain members get the top class and the smallest limit.
PRESSURE_MEMORY_MB = (128, 256, 512)
PRESSURE_PRIORITIES = (0, 10, 100)
TOP_PRIORITY = 1000
#: Under pressure the nodes hold this share of the initial workload's memory.
PRESSURE_RATIO = 0.75
MIB = 1 << 20


@dataclass(frozen=True, kw_only=True)
class ServicePlan:
    """One ECSMService of the workload and the facts the timeline needs about it."""

    name: str
    static: bool
    replicas: int                      # Dynamic only
    nodes: tuple[str, ...]             # Static: the nodes; Dynamic: the node pool
    image: str
    depends_on: tuple[str, ...] = ()
    hpa: HpaPlan | None = None
    priority: int = 0
    max_unavailable: int = 0
    canary: bool = False
    #: Member of a dependsOn chain (as a dependency, a dependent, or both).
    chain: bool = False
    #: ``resources.limits.memory`` in MiB (0: none, the image's limit applies).
    memory_mb: int = 0

    @property
    def key(self) -> str:
        return f"{NAMESPACE}/{self.name}"

    @property
    def protected(self) -> bool:
        """Never deleted by the timeline (a dependency, a dependent, an HPA target, a canary)."""
        return self.chain or self.hpa is not None or self.canary

    def manifest(self, *, image: str | None = None, revision: int = 0,
                 replicas: int | None = None, nodes: tuple[str, ...] | None = None) -> dict:
        """The ECSMService wire object, optionally with another template or scale."""
        chosen = tuple(nodes if nodes is not None else self.nodes)
        if self.static:
            strategy: dict[str, Any] = {"type": "Static", "nodes": list(chosen)}
        else:
            strategy = {"type": "Dynamic", "nodePool": list(chosen),
                        "replicas": self.replicas if replicas is None else replicas}
        spec: dict[str, Any] = {
            "deploymentStrategy": strategy,
            "upgradeStrategy": {"type": "Never"},
            "template": template(image or self.image, revision, self.memory_mb),
            "rollout": {"maxSurge": 1, "maxUnavailable": self.max_unavailable,
                        "revisionHistoryLimit": 2},
            "priority": self.priority,
        }
        if self.depends_on:
            spec["dependsOn"] = list(self.depends_on)
        return {
            "apiVersion": API_VERSION,
            "kind": "ECSMService",
            "metadata": {"name": self.name, "namespace": NAMESPACE, "labels": dict(MANAGED_BY)},
            "spec": spec,
        }


@dataclass(frozen=True, kw_only=True)
class HpaPlan:
    min_replicas: int
    max_replicas: int
    cpu_target: int                    # averageUtilization, percent

    def manifest(self, target: str, *, min_replicas: int | None = None,
                 max_replicas: int | None = None) -> dict:
        return {
            "apiVersion": API_VERSION,
            "kind": "ECSMHpa",
            "metadata": {"name": target, "namespace": NAMESPACE, "labels": dict(MANAGED_BY)},
            "spec": {
                "scaleTargetRef": {"kind": "ECSMService", "name": target},
                "minReplicas": self.min_replicas if min_replicas is None else min_replicas,
                "maxReplicas": self.max_replicas if max_replicas is None else max_replicas,
                "metrics": [{"type": "Resource", "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": self.cpu_target}}}],
                # Short windows: the drill must be able to reach quiescence quickly.
                "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0},
                             "scaleDown": {"stabilizationWindowSeconds": 3}},
            },
        }


def template(image: str, revision: int, memory_mb: int = 0) -> dict:
    out: dict[str, Any] = {"image": image,
                           "env": [{"name": REVISION_ENV, "value": str(revision)}]}
    if memory_mb:
        out["resources"] = {"limits": {"memory": f"{memory_mb}Mi"}}
    return out


@dataclass(frozen=True, kw_only=True)
class Workload:
    services: tuple[ServicePlan, ...]
    by_name: dict[str, ServicePlan] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.by_name.update({s.name: s for s in self.services})

    @property
    def canaries(self) -> tuple[ServicePlan, ...]:
        return tuple(s for s in self.services if s.canary)

    @property
    def hpa_targets(self) -> tuple[ServicePlan, ...]:
        return tuple(s for s in self.services if s.hpa is not None)

    @property
    def hpa_target_keys(self) -> frozenset[str]:
        return frozenset(s.key for s in self.services if s.hpa is not None)

    def manifests(self) -> list[dict]:
        """Every object to create, dependencies before dependents, HPAs after targets."""
        out = [s.manifest() for s in self.services]
        out += [s.hpa.manifest(s.name) for s in self.services if s.hpa is not None]
        return copy.deepcopy(out)


def _node_subset(rng: random.Random, least: int = 1) -> tuple[str, ...]:
    size = rng.randint(least, len(NODES))
    return tuple(sorted(rng.sample(NODES, size)))


def generate_workload(rng: random.Random, services: int, *, canaries: int | None = None,
                      static_fraction: float = 0.4, hpa_fraction: float = 0.15,
                      chain_fraction: float = 0.15) -> Workload:
    """``services`` random ECSMServices plus ``canaries`` canary services (by default
    3, and one more per 50 services: each times one fault at a time, until it has
    recovered, and the faults of a dense few seconds overlap — with 5 for 200 services,
    a fault now and then found none free and went unmeasured)."""
    if canaries is None:
        canaries = 3 + services // 50
    plans: list[ServicePlan] = []
    chain_budget = int(services * chain_fraction)
    i = 0
    while len(plans) < services:
        room = services - len(plans)
        if chain_budget >= 2 and room >= 2:
            length = min(rng.randint(2, 3), chain_budget, room)
            chain_budget -= length
            previous: str | None = None
            for _ in range(length):
                i += 1
                plan = _service(rng, f"svc-{i:04d}", allow_hpa=False,
                                static_fraction=static_fraction, hpa_fraction=0.0)
                plan = dataclasses.replace(
                    plan, chain=True, depends_on=(previous,) if previous else ())
                plans.append(plan)
                previous = plan.name
            continue
        i += 1
        plans.append(_service(rng, f"svc-{i:04d}", allow_hpa=True,
                              static_fraction=static_fraction, hpa_fraction=hpa_fraction))
    if not any(p.hpa for p in plans):
        # Every drill exercises the HPA controller: give one Dynamic service an HPA.
        eligible = [i for i, p in enumerate(plans) if not p.static and not p.chain]
        if eligible:
            i = rng.choice(eligible)
            hpa = HpaPlan(min_replicas=1, max_replicas=3, cpu_target=60)
            plans[i] = dataclasses.replace(plans[i], hpa=hpa, replicas=1)
    for c in range(canaries):
        plans.append(ServicePlan(name=f"{CANARY_PREFIX}{c}", static=False, replicas=1,
                                 nodes=NODES, image=IMAGES[0], canary=True))
    return Workload(services=tuple(plans))


def _service(rng: random.Random, name: str, *, allow_hpa: bool, static_fraction: float,
             hpa_fraction: float) -> ServicePlan:
    static = rng.random() < static_fraction
    image = rng.choice(IMAGES)
    priority = rng.randint(0, 10)
    max_unavailable = rng.choice((0, 1))
    if static:
        return ServicePlan(name=name, static=True, replicas=0, nodes=_node_subset(rng),
                           image=image, priority=priority, max_unavailable=max_unavailable)
    pool = _node_subset(rng, least=2)
    hpa = None
    if allow_hpa and rng.random() < hpa_fraction:
        low = rng.randint(1, 2)
        hpa = HpaPlan(min_replicas=low, max_replicas=low + rng.randint(1, 3),
                      cpu_target=rng.choice((50, 60, 70)))
    replicas = hpa.min_replicas if hpa else rng.randint(1, 3)
    return ServicePlan(name=name, static=False, replicas=replicas, nodes=pool, image=image,
                       hpa=hpa, priority=priority, max_unavailable=max_unavailable)


def with_pressure(workload: Workload, seed: int) -> Workload:
    """The same services with memory limits and priority classes for capacity pressure
    (drawn from their own stream: the seed's workload and timeline do not move)."""
    rng = random.Random(f"{seed}:pressure")
    out = []
    for s in workload.services:
        memory, priority = rng.choice(PRESSURE_MEMORY_MB), rng.choice(PRESSURE_PRIORITIES)
        if s.canary or s.chain:
            memory, priority = min(PRESSURE_MEMORY_MB), TOP_PRIORITY
        out.append(dataclasses.replace(s, memory_mb=memory, priority=priority))
    return Workload(services=tuple(out))


def demand_mb(workload: Workload) -> int:
    """MiB the workload's instances reserve as first applied (HPA targets at their min)."""
    return sum(s.memory_mb * (len(s.nodes) if s.static else s.replicas)
               for s in workload.services)


def pressure_node_memory(workload: Workload, nodes: int = len(NODES),
                         ratio: float = PRESSURE_RATIO) -> int:
    """Bytes per node such that ``ratio`` of the workload's memory fits on ``nodes``
    (rounded down to 64 MiB, never below one instance of the largest limit)."""
    per_node = int(demand_mb(workload) * ratio / max(nodes, 1)) // 64 * 64
    largest = max((s.memory_mb for s in workload.services), default=0)
    return max(per_node, largest) * MIB
