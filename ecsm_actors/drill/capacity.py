"""The drill under capacity pressure: reading ECSM's memory, and the priority invariant.

Runs in the drill process. :func:`take_capacity` is the impure part (one ``GET node`` +
``node/status``, and the containers of every ECSM service in batches);
:func:`check_capacity_by_priority` is pure, over a :class:`~.snapshot.Snapshot`:

* ``capacity-by-priority`` — at quiescence no ECSMService is short of instances (fewer
  online on ECSM than its spec asks) while, on a node it may use (Static: a listed node
  without its instance; Dynamic: a live node of its pool, all nodes for an empty pool),
  the free memory plus what *strictly lower-priority* services hold there would fit one
  more of its instances — unless it opted out of preemption (``preemptionPolicy:
  Never``: then only free memory counts) or those services are its dependencies
  (``dependsOn``, transitively: never evicted for it). Free room alone that would fit an
  instance of a short service is a violation too (nothing should wait while room is
  free). Memory held by services the drill does not own, or by terminating objects, is
  not counted as evictable.

:func:`capacity_held` tells the other invariants that a service is short on purpose: its
condition ``Preempted`` or ``ReplicaFailure`` is True (its ECSM factor may then be below
its spec, and it need not be Available).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ecsm_actors.drill.snapshot import (
    CapacityView,
    EcsmServiceView,
    NodeMemory,
    Snapshot,
    desired_replicas,
    parse_ecsm_name,
)
from ecsm_actors.drill.verdict import CheckResult, result

NAME = "capacity-by-priority"
MIB = 1 << 20
#: Service ids per ``container/service`` request (a query string stays a few KB).
BATCH = 50


def capacity_held(obj: Mapping[str, Any]) -> bool:
    """The service is short for lack of room: ``Preempted`` or ``ReplicaFailure`` True."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Preempted", "ReplicaFailure") and c.get("status") == "True":
            return True
    return False


def take_capacity(ecsm: Any, services: Iterable[EcsmServiceView]) -> CapacityView:
    """Node memory and what each ECSM service holds per node, as ECSM reports them.
    ``ecsm`` is a Clientset; raises whatever it raises (the caller retries)."""
    from ecsm_actors.ecsm.types.nodes import memory_held

    rows = list(services)
    caps = ecsm.nodes.capacities()
    nodes = tuple(NodeMemory(name=name, total=c.memory_total, free=c.memory_free,
                             online=c.online) for name, c in sorted(caps.items()))
    names = {s.id: s.name for s in rows}
    containers: list[Any] = []
    ids = sorted(names)
    for i in range(0, len(ids), BATCH):
        containers += ecsm.containers.list_all_by_service(ids[i:i + BATCH], page_size=1000)
    held = {names[sid]: per_node for sid, per_node in memory_held(containers).items()
            if sid in names}
    instance = {names[c.service_id]: int(c.memory_limit) for c in containers
                if c.service_id in names and c.memory_limit > 0}
    return CapacityView(nodes=nodes, held=held, instance_memory=instance)


def spec_memory(obj: Mapping[str, Any]) -> int:
    """Bytes of ``spec.template.resources.limits.memory`` (rounded up to whole MiB, as
    ECSM's ``memoryLimitMB``), 0 when unset or unreadable."""
    from ecsm_actors.api.quantity import to_mib

    limits = (((obj.get("spec") or {}).get("template") or {}).get("resources") or {}) \
        .get("limits") or {}
    value = limits.get("memory") if isinstance(limits, Mapping) else None
    if value is None:
        return 0
    try:
        return int(to_mib(value)) * MIB
    except Exception:  # noqa: BLE001 - a spec the registry accepted; unreadable = unknown
        return 0


def _dependencies(key: str, objects: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Keys ``key`` depends on, transitively (same namespace, as ``dependsOn`` means)."""
    namespace = key.split("/", 1)[0]
    seen: set[str] = set()
    todo = [key]
    while todo:
        obj = objects.get(todo.pop())
        for name in (obj or {}).get("spec", {}).get("dependsOn") or []:
            dep = f"{namespace}/{name}"
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def _candidates(obj: Mapping[str, Any], mine: Mapping[str, int],
                nodes: Mapping[str, NodeMemory]) -> list[str]:
    strategy = (obj.get("spec") or {}).get("deploymentStrategy") or {}
    if strategy.get("type") == "Static":
        return [n for n in strategy.get("nodes") or [] if not mine.get(n)]
    return list(strategy.get("nodePool") or []) or sorted(nodes)


def check_capacity_by_priority(snap: Snapshot) -> CheckResult:
    cap = snap.capacity
    if cap is None:
        return result(NAME, [], 0)
    objects = {key: obj for key, obj in snap.of_kind("ECSMService")
               if not (obj.get("metadata") or {}).get("deletionTimestamp")}
    held: dict[str, dict[str, int]] = {}      # owner key → node → bytes
    instance: dict[str, int] = {}             # owner key → bytes per instance on ECSM
    for ecsm_service, per_node in cap.held.items():
        ref = parse_ecsm_name(ecsm_service)
        if ref is not None:
            mine = held.setdefault(ref.key, {})
            for node_name, size in per_node.items():
                mine[node_name] = mine.get(node_name, 0) + size
    for ecsm_service, size in cap.instance_memory.items():
        ref = parse_ecsm_name(ecsm_service)
        if ref is not None:
            instance.setdefault(ref.key, size)
    online: dict[str, int] = {}
    for key, rows in snap.ecsm_by_owner().items():
        online[key] = sum(r.instance_online for r in rows)
    nodes = {n.name: n for n in cap.nodes}
    priority = {k: int((o.get("spec") or {}).get("priority") or 0) for k, o in objects.items()}
    violations: list[str] = []
    for key, obj in objects.items():
        want = desired_replicas(obj)
        if online.get(key, 0) >= want:
            continue
        need = spec_memory(obj) or instance.get(key, 0)
        if need <= 0:
            continue
        spec = obj.get("spec") or {}
        never = spec.get("preemptionPolicy") == "Never"
        protected = _dependencies(key, objects) | {key}
        for name in _candidates(obj, held.get(key, {}), nodes):
            node = nodes.get(name)
            if node is None or not node.online:
                continue
            lower = {} if never else {
                other: per_node[name] for other, per_node in held.items()
                if other in objects and other not in protected and per_node.get(name)
                and priority[other] < priority[key]}
            if node.free + sum(lower.values()) < need:
                continue
            head = (f"{key} (priority {priority[key]}) runs {online.get(key, 0)}/{want}, "
                    f"an instance needs {need // MIB} MiB; node {name} has "
                    f"{node.free // MIB} MiB free")
            if node.free >= need:
                violations.append(head)
            else:
                who = ", ".join(f"{o} (priority {priority[o]}) {size // MIB} MiB"
                                for o, size in sorted(lower.items()))
                violations.append(f"{head} and lower priorities hold {who}")
            break
    return result(NAME, violations, len(objects))
