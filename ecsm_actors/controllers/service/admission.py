"""Admission: a revision scales up only into room that ECSM reports; preemption makes room.

Runs inside the service-controller process, called by the Reconciler on a worker thread.
One :class:`Admission` is shared by the workers; a decision (read the room, decide, assume
the placements) is taken under the lock of :class:`~.capacity.Rooms`, so two workers never
both take the same room.

Every scale-up the planner proposes (create, scale, rollout surge, an HPA's new replica
count — the HPA writes the spec —, drift repair) is cut to what fits on the eligible nodes
(:func:`~.capacity.place`). What does not fit is a *claim*: while it waits, room that
it could use is kept from services of lower priority (the queue's order in Kubernetes).
With ``preemptionPolicy: PreemptLowerPriority`` a short service then looks for victims
(:func:`~.preemption.select_victims`) among what ECSM reports on the nodes (containers and
their memory limits) and the registry (priorities, dependsOn).

**The record.** A victim is told in its own status: ``status.preemptions`` holds one entry
per preemptor (how many instances, which nodes for a Static victim, when, why). The entry
is written before anything is scaled down, and the victim's effective size is always its
spec minus its entries (:func:`held_down`), so a controller killed at any line finds the
record and neither loses it nor evicts twice: the victim's own pass (or the preemptor's)
scales it down to that size, idempotently, and instances an entry already takes are never
chosen again. The victim's spec is untouched.

**Restoration.** While a victim holds entries, each of its passes checks whether its
instances fit again — after the room still owed to every preemptor that is short (read
from the registry and ECSM, so it holds across a restart) and to waiting services of
higher priority — and gives back what fits, highest priority first: entries of preemptors
that are gone, then the others. An entry shrinks only in the registry first; the scale-up
follows through the normal admission. What still does not fit is looked for like any
pending instance (PreemptLowerPriority): among services of strictly lower priority than
the victim, never one of its preemptors nor their dependencies, so a chain of
preemptions only goes down in priority and never turns back.

**Static rollouts.** A Static revision's new instance may go to any listed node the
revision does not use yet: when the node the planner picked first has no room, another
listed one with room is taken instead (a rollout then moves node by node into the room
the old revision frees).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ecsm_actors.api.quantity import to_mib
from ecsm_actors.controllers.service import mapping
from ecsm_actors.controllers.service.actuator import rejected
from ecsm_actors.controllers.service.capacity import (
    Demand,
    NodeRoom,
    Rooms,
    memory_of,
    place,
    reserve,
)
from ecsm_actors.controllers.service.model import (
    Action,
    Create,
    Desired,
    Plan,
    Policy,
    Restart,
    RevisionView,
    Scale,
)
from ecsm_actors.controllers.service.naming import split_key
from ecsm_actors.controllers.service.preemption import (
    Eviction,
    Holding,
    dependencies_of,
    select_victims,
)
from ecsm_actors.errors import EcsmApiError

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
_REVISION_CHARS = frozenset("0123456789abcdef")


# -- records (pure) ---------------------------------------------------------------------


def records_of(obj: Obj) -> list[Obj]:
    """The preemptions a service suffers now (``status.preemptions``)."""
    return [dict(r) for r in (obj.get("status") or {}).get("preemptions") or ()
            if isinstance(r, dict)]


def held_down(desired: Desired, records: Sequence[Obj]) -> Desired:
    """``desired`` minus what its preemption records take away (the spec is untouched)."""
    if not records:
        return desired
    if desired.policy is Policy.STATIC:
        removed = {str(n) for r in records for n in r.get("nodes") or ()}
        return replace(desired, nodes=tuple(n for n in desired.nodes if n not in removed))
    taken = sum(int(r.get("instances") or 0) for r in records)
    return replace(desired, replicas=max(0, desired.replicas - taken))


def add_record(records: Sequence[Obj], *, preemptor: str, priority: int, instances: int,
               nodes: Sequence[str], now: str, reason: str) -> list[Obj]:
    """``records`` with ``instances`` (and ``nodes``) more taken by ``preemptor``."""
    out = [dict(r) for r in records]
    for r in out:
        if r.get("preemptor") == preemptor:
            r["instances"] = int(r.get("instances") or 0) + instances
            merged = sorted({*(r.get("nodes") or ()), *nodes})
            if merged:
                r["nodes"] = merged
            r["priority"], r["time"], r["reason"] = priority, now, reason
            return out
    entry: Obj = {"preemptor": preemptor, "priority": priority, "instances": instances,
                  "time": now, "reason": reason}
    if nodes:
        entry["nodes"] = sorted(set(nodes))
    out.append(entry)
    return out


def give_back(records: Sequence[Obj], count: int, nodes: Sequence[str],
              gone: set[str]) -> list[Obj]:
    """``records`` with ``count`` instances (Static: ``nodes``) given back: entries of
    preemptors that are ``gone`` first, then of the lowest-priority preemptor."""
    order = sorted(records, key=lambda r: (r.get("preemptor") not in gone,
                                           int(r.get("priority") or 0)))
    freed = set(nodes)
    out = []
    for r in order:
        r = dict(r)
        if r.get("nodes"):
            kept = [n for n in r["nodes"] if n not in freed]
            freed -= set(r["nodes"])
            r["nodes"], r["instances"] = kept, len(kept)
            if not kept:
                r.pop("nodes")
        else:
            k = min(count, int(r.get("instances") or 0))
            r["instances"] = int(r.get("instances") or 0) - k
            count -= k
        if r["instances"] > 0:
            out.append(r)
    return sorted(out, key=lambda r: str(r.get("preemptor")))


def owner_of(ecsm_name: str) -> str | None:
    """``namespace/name`` of an ECSM service this controller names, else None."""
    parts = ecsm_name.split(".")
    if len(parts) != 3 or len(parts[2]) != 10 or not set(parts[2]) <= _REVISION_CHARS:
        return None
    return f"{parts[0]}/{parts[1]}"


def spec_target(spec: Obj) -> tuple[Policy, int, tuple[str, ...]]:
    strategy = spec.get("deploymentStrategy") or {}
    policy = Policy(mapping.policy_of(spec))
    if policy is Policy.STATIC:
        nodes = tuple(str(n) for n in strategy.get("nodes") or ())
        return policy, len(nodes), nodes
    return policy, int(strategy.get("replicas") or 0), tuple(
        str(n) for n in strategy.get("nodePool") or ())


Increase = tuple[int, Create | Scale | Restart, tuple[str, ...], int]


def increases(plan_: Plan, views: Sequence[RevisionView], policy: Policy) -> list[Increase]:
    """The plan's scale-ups: (index, action, new Static nodes, new Dynamic instances).
    Starting a container ECSM refused for lack of room is one too."""
    by_id = {v.service_id: v for v in views}
    refused = {(v.revision, c.name): (v, c) for v in views for c in v.containers or ()
               if c.refused}
    out: list[Increase] = []
    for i, a in enumerate(plan_.actions):
        if isinstance(a, Restart):
            if (a.revision, a.container_name) in refused:
                v, c = refused[(a.revision, a.container_name)]
                static = v.policy == Policy.STATIC
                out.append((i, a, (c.node_name,) if static else (), 0 if static else 1))
        elif isinstance(a, Create):
            if policy is Policy.STATIC:
                out.append((i, a, a.node_names, 0))
            elif a.factor > 0:
                out.append((i, a, (), a.factor))
        elif isinstance(a, Scale) and a.service_id in by_id:
            old = by_id[a.service_id]
            if a.policy == Policy.STATIC:
                new = tuple(n for n in a.node_names if n not in old.node_names)
                if new:
                    out.append((i, a, new, 0))
            elif a.factor > old.factor:
                out.append((i, a, (), a.factor - old.factor))
    return out


# -- the shared admission ------------------------------------------------------------------


@dataclass
class Claim:
    """A service waiting for room: room its demand could use now is kept from services of
    lower priority until ``expires``."""

    priority: int
    demand: Demand
    expires: float


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The outcome of one admission: the plan to apply, what was held back and why."""

    plan: Plan
    #: Instances (Dynamic) / nodes (Static) of the plan held back for lack of room.
    short: int = 0
    message: str = ""
    placements: tuple[str, ...] = ()
    memory: int = 0
    #: What was held back, as a demand (for preemption), or None.
    missing: Demand | None = None


@dataclass
class Admission:
    clientset: Any
    max_age: float
    claim_ttl: float
    clock: Callable[[], float] = time.monotonic
    rooms: Rooms = field(init=False)
    _claims: dict[str, Claim] = field(default_factory=dict)
    _image_memory: dict[str, Obj | None] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.rooms = Rooms(fetch=lambda: self.clientset.nodes.capacities().values(),
                           max_age=self.max_age, clock=self.clock)

    # -- inputs --------------------------------------------------------------------------

    def memory(self, template: Obj) -> int:
        """Bytes one instance of ``template`` reserves (the image config fetched once)."""
        limit = ((template.get("resources") or {}).get("limits") or {}).get("memory")
        config = None
        if limit is None:
            ref = mapping.image_ref(template)
            with self._lock:
                known = ref in self._image_memory
                config = self._image_memory.get(ref)
            if not known:
                try:
                    config = self.clientset.images.config(ref)
                except EcsmApiError as e:
                    if e.is_client_error:
                        raise rejected(f"image {ref}", e) from e
                    raise
                with self._lock:
                    self._image_memory[ref] = config
        return memory_of(template, config, to_mib)

    # -- claims --------------------------------------------------------------------------

    def claim(self, key: str, priority: int, demand: Demand | None) -> None:
        with self.rooms.lock:
            if demand is None or demand.count <= 0:
                self._claims.pop(key, None)
            else:
                self._claims[key] = Claim(priority=priority, demand=demand,
                                          expires=self.clock() + self.claim_ttl)

    def room_for(self, key: str, priority: int,
                 owed: Iterable[tuple[int, Demand]] = ()) -> dict[str, NodeRoom]:
        """The room ``key`` may use: the figures minus what waiting services of higher
        priority (and ``owed`` demands) could use now. Call under ``rooms.lock``."""
        rooms = self.rooms.get()
        now = self.clock()
        waiting = [(c.priority, c.demand) for k, c in self._claims.items()
                   if k != key and c.expires > now and c.priority > priority]
        for _, demand in sorted([*waiting, *owed], key=lambda pd: -pd[0]):
            rooms = reserve(rooms, place(rooms, demand), demand.memory)
        for k in [k for k, c in self._claims.items() if c.expires <= now]:
            del self._claims[k]
        return rooms

    # -- admission -----------------------------------------------------------------------

    def admit(self, key: str, priority: int, plan_: Plan, views: Sequence[RevisionView],
              memory: int, policy: Policy, pool: tuple[str, ...]) -> Decision:
        """The plan cut to the room there is (under ``rooms.lock``), its placements
        assumed by the caller. ``pool`` is the Dynamic placement."""
        ups = increases(plan_, views, policy)
        if not ups:
            self.claim(key, priority, None)
            return Decision(plan=plan_)
        rooms = self.room_for(key, priority)
        actions: list[Action | None] = list(plan_.actions)
        placements: list[str] = []
        short = 0
        missing: Demand | None = None
        for i, action, new_nodes, new_count in ups:
            if new_nodes:
                demand = Demand.on_nodes(memory, new_nodes)
            else:
                demand = Demand(memory=memory, nodes=pool or getattr(action, "node_names", ()),
                                count=new_count)
            fit = place(rooms, demand)
            if demand.static and len(fit) < demand.count and isinstance(action, Create | Scale):
                # a Static rollout moving node by node: another listed node with room
                # does as well as the one the planner picked first
                spare = tuple(n for n in pool if n not in action.node_names
                              and n in rooms and rooms[n].up)
                fit += place(rooms, Demand.on_nodes(memory, spare))[:demand.count - len(fit)]
            rooms = reserve(rooms, fit, memory)
            placements.extend(fit)
            if len(fit) == demand.count:
                if demand.static and isinstance(action, Create | Scale):
                    actions[i] = _on_nodes(action, new_nodes, fit)
                continue
            lacking = demand.count - len(fit)
            short += lacking
            if demand.static:
                missing = Demand.on_nodes(memory, [
                    *(missing.nodes if missing is not None and missing.static else ()),
                    *[n for n in demand.nodes if n not in fit][:lacking]])
            else:
                missing = Demand(memory=memory, nodes=demand.nodes, count=lacking + (
                    missing.count if missing is not None and not missing.static else 0))
            if isinstance(action, Restart):
                actions[i] = None  # stays refused until there is room
            elif demand.static:
                cut = _on_nodes(action, new_nodes, fit)
                # a revision ECSM runs is not left without a node (ECSM refuses it): it
                # stays where it runs until there is room where it goes
                actions[i] = None if isinstance(cut, Scale) and not cut.node_names else cut
            else:
                actions[i] = replace(action, factor=action.factor - lacking)
        if short:
            by_id = {v.service_id: v for v in views}
            actions = [a for a in actions if a is not None and not _no_op(a, by_id)]
        self.claim(key, priority, missing)
        return Decision(plan=replace(plan_, actions=tuple(a for a in actions if a is not None)),
                        short=short,
                        placements=tuple(placements), memory=memory, missing=missing)

    # -- preemption ----------------------------------------------------------------------

    def choose_victims(self, key: str, priority: int, missing: Demand,
                       services: Sequence[Obj], rooms: Mapping[str, NodeRoom],
                       containers: Iterable[Any], exclude: Iterable[str] = ()) -> Choice:
        """Victims for ``missing`` among ``services`` (every ECSMService, from the
        registry) and ``containers`` (ECSM's, on every node), never a dependency of
        ``key``, never one of ``exclude`` (a restoring victim's preemptors) nor their
        dependencies: the room a preemption gave is not taken back down the chain.
        Instances a record already takes but ECSM still shows are never chosen again:
        their room counts as coming back (their owners are in ``Choice.unfinished``: their
        scale-down is redone)."""
        by_key = {_key(o): o for o in services}

        def depends_on(namespace: str) -> Callable[[str], Iterable[str]]:
            return lambda n: (((by_key.get(f"{namespace}/{n}") or {}).get("spec") or {})
                              .get("dependsOn") or ())

        protected: set[str] = set(exclude)
        for who in {key, *exclude}:
            namespace, name = split_key(who)
            protected |= {f"{namespace}/{d}"
                          for d in dependencies_of(name, depends_on(namespace))}
        holdings: dict[tuple[str, str], list[int]] = {}
        on_ecsm: dict[str, int] = {}
        for c in containers:
            if str(getattr(c, "deploy_status", "")) == "failed":
                continue
            owner = owner_of(str(c.service_name))
            if owner is None or owner not in by_key:
                continue
            holdings.setdefault((owner, str(c.node_name)), []).append(int(c.memory_limit))
            on_ecsm[owner] = on_ecsm.get(owner, 0) + 1
        pending = {k: _pending(by_key[k], n) for k, n in on_ecsm.items()}
        recorded = {k: {str(n) for r in records_of(o) for n in r.get("nodes") or ()}
                    for k, o in by_key.items()}
        out: list[Holding] = []
        coming: dict[str, int] = {}
        unfinished: set[str] = set()
        for (owner, node), mems in sorted(holdings.items()):
            skip = len(mems) if node in recorded.get(owner, ()) else min(
                pending.get(owner, 0), len(mems))
            if node not in recorded.get(owner, ()):
                pending[owner] = pending.get(owner, 0) - skip
            if skip:
                coming[node] = coming.get(node, 0) + sum(mems[:skip])
                unfinished.add(owner)
            count = len(mems) - skip
            if count > 0:
                out.append(Holding(owner=owner, node=node, count=count, memory=max(mems),
                                   priority=_priority(by_key[owner])))
        soon = {n: replace(r, free=r.free + coming.get(n, 0)) if r.limited else r
                for n, r in rooms.items()}
        selection = select_victims(missing, soon, out, owner=key, priority=priority,
                                   protected=protected)
        return Choice(evictions=selection.evictions, unfinished=frozenset(unfinished))


@dataclass(frozen=True, kw_only=True)
class Choice:
    evictions: tuple[Eviction, ...]
    #: Victims whose recorded scale-down ECSM does not show yet.
    unfinished: frozenset[str] = frozenset()

def _on_nodes(action: Create | Scale, new_nodes: Sequence[str],
              fit: Sequence[str]) -> Create | Scale:
    """A Static ``action`` whose ``new_nodes`` are replaced by the ones that ``fit``."""
    keep = [n for n in action.node_names if n not in new_nodes or n in fit]
    keep += [n for n in fit if n not in keep]
    return replace(action, node_names=tuple(keep), factor=len(keep))


def _no_op(a: Any, by_id: Mapping[str, RevisionView]) -> bool:
    """A create of nothing, or a scale left with nothing to change once cut."""
    if isinstance(a, Create):
        return a.factor <= 0 or not a.node_names
    if isinstance(a, Scale) and a.service_id in by_id:
        old = by_id[a.service_id]
        return (a.factor == old.factor and set(a.node_names) == set(old.node_names)
                and a.policy == old.policy)
    return False


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name')}"


def _priority(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("priority") or 0)


def _pending(obj: Obj, on_ecsm: int) -> int:
    """Instances a Dynamic victim's records take that ECSM still shows."""
    records = [r for r in records_of(obj) if not r.get("nodes")]
    taken = sum(int(r.get("instances") or 0) for r in records)
    if not taken:
        return 0
    _, target, _ = spec_target(obj.get("spec") or {})
    return max(0, min(taken, on_ecsm - max(0, target - taken)))


def preemption_reason(key: str, priority: int, memory: int, missing: Demand) -> str:
    what = (f"{missing.count} instance(s)" if not missing.static
            else f"an instance on {', '.join(missing.nodes)}")
    return (f"preempted by {key} (priority {priority}): it needed room for {what} of "
            f"{memory >> 20} MiB")
