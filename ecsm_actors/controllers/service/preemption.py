"""Victim selection and restoration order, as Kubernetes' preemption does it; pure.

Runs inside the service-controller process; no I/O, no clock (unit-tested with tables).

:func:`select_victims` finds room for the instances a service could not place: only
instances of services of **strictly lower** priority on the eligible nodes are candidates,
never one of the preemptor's own, never one of its dependencies (``dependsOn``,
transitively: :func:`dependencies_of`). For each instance to place, every eligible node is
tried like ``selectVictimsOnNode``: remove the candidates there lowest priority first
until the instance fits, then reprieve the removed ones highest priority first while it
still fits; the node chosen is the one whose victims have the lowest highest priority,
then the fewest instances removed (``pickOneNodeForPreemption``), then the node order.
Equal priorities never preempt each other, so two services cannot take turns; a victim
that preempts to get its instances back never takes them from its preemptor (whose
priority is higher; the caller protects it even when priorities change since).

:func:`restoration_order` is the order victims get their instances back: highest
priority first, then the oldest preemption.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ecsm_actors.controllers.service.capacity import Demand, NodeRoom


@dataclass(frozen=True, kw_only=True)
class Holding:
    """Instances of one service (``owner``: ``namespace/name``) on one node."""

    owner: str
    priority: int
    node: str
    memory: int
    count: int


@dataclass(frozen=True, kw_only=True)
class Eviction:
    """What one victim gives up: ``instances`` in all, on ``nodes`` (one entry each)."""

    owner: str
    priority: int
    instances: int
    nodes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Selection:
    """The victims, and where the preemptor's instances go once they are gone."""

    evictions: tuple[Eviction, ...]
    placements: tuple[str, ...]

    @property
    def instances(self) -> int:
        return sum(e.instances for e in self.evictions)


@dataclass(frozen=True)
class _Instance:
    priority: int
    owner: str
    memory: int


def dependencies_of(name: str, get_deps: Callable[[str], Iterable[str]],
                    limit: int = 512) -> frozenset[str]:
    """Every service ``name`` depends on, transitively (names in its namespace)."""
    seen: set[str] = set()
    stack = list(get_deps(name))
    while stack and len(seen) < limit:
        dep = stack.pop()
        if dep in seen or dep == name:
            continue
        seen.add(dep)
        stack.extend(get_deps(dep))
    return frozenset(seen)


def _victims_on_node(free: int, memory: int,
                     candidates: Sequence[_Instance]) -> tuple[list[_Instance], int] | None:
    """The minimal victims on one node for one instance (None: impossible there)."""
    need = memory - free
    if need <= 0:
        return [], 0
    chosen: list[_Instance] = []
    freed = 0
    for c in sorted(candidates, key=lambda c: (c.priority, -c.memory)):
        if freed >= need:
            break
        chosen.append(c)
        freed += c.memory
    if freed < need:
        return None
    for c in sorted(chosen, key=lambda c: (-c.priority, c.memory)):  # reprieve
        if freed - c.memory >= need:
            chosen.remove(c)
            freed -= c.memory
    return chosen, freed


def select_victims(demand: Demand, rooms: Mapping[str, NodeRoom],
                   holdings: Iterable[Holding], *, owner: str, priority: int,
                   protected: Iterable[str] = ()) -> Selection:
    """Victims to place as many of ``demand``'s instances as possible (see the module
    docstring); ``rooms`` are the figures once what already fits was assumed. A node
    ECSM reports no figure for, or that is down (Dynamic), is not considered."""
    keep = set(protected) | {owner}
    pool: dict[str, list[_Instance]] = defaultdict(list)
    for h in holdings:
        if h.priority < priority and h.owner not in keep and h.count > 0:
            pool[h.node].extend(_Instance(h.priority, h.owner, h.memory)
                                for _ in range(h.count))
    free = {n: r.free for n, r in rooms.items() if r.limited}
    targets: list[tuple[str, ...]]
    if demand.static:
        targets = [(n,) for n in demand.nodes]
    else:
        eligible = tuple(n for n in demand.nodes if n in free and rooms[n].up)
        targets = [eligible] * demand.count
    taken: dict[str, list[tuple[str, _Instance]]] = defaultdict(list)
    placements: list[str] = []
    for nodes in targets:
        best: tuple[tuple[int, int, int], str, list[_Instance], int] | None = None
        for i, node in enumerate(nodes):
            if node not in free:
                continue
            found = _victims_on_node(free[node], demand.memory, pool[node])
            if found is None:
                continue
            victims, freed = found
            cost = (max((v.priority for v in victims), default=-(1 << 62)), len(victims), i)
            if best is None or cost < best[0]:
                best = (cost, node, victims, freed)
        if best is None:
            continue
        _, node, victims, freed = best
        for v in victims:
            pool[node].remove(v)
            taken[v.owner].append((node, v))
        free[node] += freed - demand.memory
        placements.append(node)
    evictions = tuple(
        Eviction(owner=o, priority=items[0][1].priority, instances=len(items),
                 nodes=tuple(sorted(n for n, _ in items)))
        for o, items in sorted(taken.items(), key=lambda kv: (kv[1][0][1].priority, kv[0])))
    return Selection(evictions=evictions, placements=tuple(placements))


@dataclass(frozen=True, kw_only=True)
class Waiting:
    """A service waiting for room: its priority and when it was preempted (a timestamp
    string sorts in time order)."""

    owner: str
    priority: int
    since: str = ""


def restoration_order(waiting: Iterable[Waiting]) -> list[Waiting]:
    """Highest priority first, then the oldest preemption, then the name."""
    return sorted(waiting, key=lambda w: (-w.priority, w.since, w.owner))
