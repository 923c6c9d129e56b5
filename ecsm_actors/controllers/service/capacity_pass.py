"""One reconcile pass's capacity work: restore, admit, preempt, then act; status to write.

A victim short of its instances preempts strictly lower priorities to get them back (never
its preemptors). A rollout whose surge finds no room spends its maxUnavailable budget
instead: the old revision scales down first and the new one scales up into the room it
frees, as a Deployment makes progress when it cannot surge.

Runs inside the service-controller process, on a worker thread, for a pass whose plan
scales something up or whose service holds preemption records (every other pass skips
it: a settled service costs nothing more). The decisions are taken under the shared
admission lock (:class:`~.admission.Admission`); the ECSM writes of this service's own
plan happen after it, covered by the assumed placements.

Order of writes, so that a controller killed at any line loses nothing and evicts nothing
twice (see :mod:`.admission`): a victim's record is written in the registry before the
victim is scaled down on ECSM; a restored victim's record shrinks in the registry before
it scales up; the preemptor scales up only into room ECSM reports free.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ecsm_actors.controllers.service import admission as adm
from ecsm_actors.controllers.service.actuator import Actuator
from ecsm_actors.controllers.service.capacity import MIB, Demand, NodeRoom, place, reserve
from ecsm_actors.controllers.service.model import (
    Delete,
    Desired,
    Plan,
    Policy,
    RevisionView,
    Scale,
)
from ecsm_actors.controllers.service.naming import service_name, split_key
from ecsm_actors.controllers.service.plan import placement, plan
from ecsm_actors.controllers.service.status import (
    AVAILABLE,
    PREEMPTED,
    REPLICA_FAILURE,
    ConditionValue,
)
from ecsm_actors.errors import Conflict, NotFound

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
#: Preemptions given kept in the preemptor's status (newest last).
GIVEN_KEPT = 10
CONFLICT_ATTEMPTS = 5


@dataclass
class Outcome:
    """What the pass decided: the plan applied, and the status parts to write."""

    plan: Plan
    #: The object as last written (a restoration writes its records first).
    obj: Obj
    records: list[Obj]
    conditions: dict[str, ConditionValue] = field(default_factory=dict)
    given: list[Obj] = field(default_factory=list)
    #: Something is held back or restored: not settled.
    waiting: bool = False
    #: Only waiting for room nobody is making (no record to restore, no victim scaled
    #: down): the next look can wait for the drift interval.
    stalled: bool = False


class CapacityPass:
    def __init__(self, admission: adm.Admission, clientset: Any, actuator: Actuator,
                 list_owned: Callable[[str, str], list[RevisionView]],
                 now: Callable[[], str]) -> None:
        self._admission = admission
        self._ecsm = clientset
        self._actuator = actuator
        self._list_owned = list_owned
        self._now = now

    def needed(self, obj: Obj, desired: Desired, views: Sequence[RevisionView],
               down: frozenset[str]) -> bool:
        if adm.records_of(obj):
            return True
        return bool(adm.increases(plan(desired, views, down), views, desired.policy))

    def run(self, ctx: Any, key: str, obj: Obj, desired: Desired,
            views: Sequence[RevisionView], down: frozenset[str],
            apply: Callable[[Plan], None]) -> Outcome:
        spec = obj.get("spec") or {}
        priority = int(spec.get("priority") or 0)
        may_preempt = spec.get("preemptionPolicy", "PreemptLowerPriority") != "Never"
        memory = self._admission.memory(spec.get("template") or {})
        records = adm.records_of(obj)
        owed, gone = self._owed(ctx, records) if records else ([], set())
        evictions: tuple[adm.Eviction, ...] = ()
        changed = False
        given = list((obj.get("status") or {}).get("preemptionsGiven") or ())
        preemptors = {str(r.get("preemptor")) for r in records}
        with self._admission.rooms.lock:
            if records:
                obj, records, rest, rooms = self._restore(
                    ctx, key, obj, desired, views, down, priority, memory, records, owed,
                    gone)
                if rest.count > 0 and may_preempt:
                    # a victim short of its instances preempts like any pending service:
                    # strictly lower priorities only, never one of its preemptors
                    taken, changed = self._preempt(
                        ctx, key, priority, memory, rest, rooms, exclude=preemptors)
                    if changed:
                        self._admission.rooms.invalidate()
                        obj, records, _, _ = self._restore(
                            ctx, key, obj, desired, views, down, priority, memory, records,
                            owed, gone)
                        evictions = taken
                        given = self._given(given, key, priority, memory, rest, taken)
            if not records:
                self._admission.claim(f"{key}#restore", priority, None)
            held = adm.held_down(desired, records)
            proposed = plan(held, views, down)
            pool = placement(held, down)
            decision = self._admission.admit(key, priority, proposed, views, memory,
                                             held.policy, pool)
            missing = decision.missing
            if missing is not None and may_preempt:
                token = self._admission.rooms.assume(decision.placements, memory)
                try:
                    rooms = self._admission.room_for(key, priority)
                finally:
                    self._admission.rooms.forget(token)
                taken, admitted = self._preempt(ctx, key, priority, memory, missing, rooms)
                if admitted:
                    self._admission.rooms.invalidate()
                    decision = self._admission.admit(key, priority, proposed, views,
                                                     memory, held.policy, pool)
                    given = self._given(given, key, priority, memory, missing, taken)
                evictions, changed = evictions + taken, changed or admitted
            if decision.short and held.max_unavailable > 0 and not adm.increases(
                    decision.plan, views, held.policy):
                fallback = self._without_surge(key, priority, decision, held, views, down,
                                               memory, pool)
                # the old revision gave room: look again at the poll pace, not the drift's
                changed = changed or fallback is not decision
                decision = fallback
            token = self._admission.rooms.assume(decision.placements, memory)
        try:
            apply(decision.plan)
        except BaseException:
            self._admission.rooms.forget(token)
            raise
        self._admission.rooms.applied(token)
        conds = conditions(obj, decision.short, records, may_preempt, evictions, memory)
        if records:
            conds.update(_available_against_spec(desired, decision.plan))
        return Outcome(plan=decision.plan, obj=obj, records=records, conditions=conds,
                       given=given, waiting=bool(decision.short or records),
                       stalled=bool(decision.short and not records and not changed))

    # -- rollout without room to surge ----------------------------------------------------

    def _without_surge(self, key: str, priority: int, decision: adm.Decision,
                       held: Desired, views: Sequence[RevisionView], down: frozenset[str],
                       memory: int, pool: tuple[str, ...]) -> adm.Decision:
        """A rollout that cannot surge spends its maxUnavailable budget instead, as a
        Deployment does: old revisions scale down first, and the new one scales up into
        the room they free on a later pass (its claim keeps that room from lower
        priorities meanwhile). ``decision`` when there is nothing to scale down."""
        fallback = plan(replace(held, max_surge=0), views, down)
        by_id = {v.service_id: v for v in views}
        shrinks = [a for a in fallback.actions
                   if isinstance(a, Scale | Delete) and a.revision != held.revision
                   and a.service_id in by_id and (isinstance(a, Delete) or a.factor
                                                  < by_id[a.service_id].factor)
                   and by_id[a.service_id].factor > 0]
        if not shrinks:
            return decision
        logger.info("key=%s no room to surge: scaling the old revision down first", key)
        second = self._admission.admit(key, priority, fallback, views, memory,
                                       held.policy, pool)
        self._admission.claim(key, priority, decision.missing)  # the new one still waits
        return replace(second, short=decision.short, missing=decision.missing)

    # -- restoration ----------------------------------------------------------------------

    def _owed(self, ctx: Any, records: Sequence[Obj]) -> tuple[list[tuple[int, Demand]],
                                                               set[str]]:
        """Room still owed to each recorded preemptor that is short; the gone ones."""
        owed: list[tuple[int, Demand]] = []
        gone: set[str] = set()
        for r in records:
            pkey = str(r.get("preemptor"))
            namespace, name = split_key(pkey)
            try:
                p = ctx.registry.get(ctx.kind, namespace, name)
            except NotFound:
                gone.add(pkey)
                continue
            if (p.get("metadata") or {}).get("deletionTimestamp"):
                gone.add(pkey)
                continue
            pspec = p.get("spec") or {}
            policy, target, nodes = adm.spec_target(pspec)
            target_held = target - sum(int(x.get("instances") or 0)
                                       for x in adm.records_of(p))
            owned = self._list_owned(namespace, name)
            have = sum(v.factor for v in owned)
            if policy is Policy.STATIC:
                placed = {n for v in owned for n in v.node_names}
                missing_nodes = [n for n in nodes if n not in placed]
                if missing_nodes:
                    owed.append((int(pspec.get("priority") or 0), Demand.on_nodes(
                        self._admission.memory(pspec.get("template") or {}),
                        missing_nodes)))
            elif target_held > have:
                pool = nodes or tuple(self._admission.rooms.get())
                owed.append((int(pspec.get("priority") or 0), Demand(
                    memory=self._admission.memory(pspec.get("template") or {}),
                    nodes=pool, count=target_held - have)))
        return owed, gone

    def _restore(self, ctx: Any, key: str, obj: Obj, desired: Desired,
                 views: Sequence[RevisionView], down: frozenset[str], priority: int,
                 memory: int, records: list[Obj], owed: list[tuple[int, Demand]],
                 gone: set[str]) -> tuple[Obj, list[Obj], Demand, dict[str, NodeRoom]]:
        """Give back what fits (records shrink in the registry first); the object and
        records as written, what still does not fit, and the room left once it is placed
        (room owed to preemptors and higher waiting services excluded)."""
        rooms = self._admission.room_for(key, priority, owed)
        if desired.policy is Policy.STATIC:
            held_nodes = sorted({str(n) for r in records for n in r.get("nodes") or ()
                                 if n in desired.nodes})
            demand = Demand.on_nodes(memory, held_nodes)
        else:
            taken = sum(int(r.get("instances") or 0) for r in records)
            # instances already given back but not on ECSM yet (a pass cut short) come
            # first: their room is not free to give back twice
            given_back = max(0, adm.held_down(desired, records).replicas
                             - sum(v.factor for v in views))
            pool = placement(desired, down)
            rooms = reserve(rooms, place(rooms, Demand(memory=memory, nodes=pool,
                                                       count=given_back)), memory)
            demand = Demand(memory=memory, nodes=pool, count=min(taken, desired.replicas))
        fit = place(rooms, demand)
        # what stays held waits in line: room it could use is kept from lower priorities
        rest = replace(demand, count=demand.count - len(fit),
                       nodes=tuple(n for n in demand.nodes if n not in fit)
                       if demand.static else demand.nodes)
        self._admission.claim(f"{key}#restore", priority, rest)
        left = reserve(rooms, fit, memory)
        stale = [r for r in records if (desired.policy is Policy.STATIC) != bool(
            r.get("nodes"))]
        if not fit and not stale and demand.count > 0:
            return obj, records, rest, left
        new = adm.give_back([r for r in records if r not in stale], len(fit), fit, gone)
        if demand.count == 0:
            new = []
        logger.info("key=%s restoring %d instance(s) held for %s", key, len(fit),
                    ", ".join(sorted({str(r.get("preemptor")) for r in records})))
        status = dict(obj.get("status") or {})
        if new:
            status["preemptions"] = new
        else:
            status.pop("preemptions", None)
        written = ctx.update_status({**obj, "status": status})  # Conflict: retried
        return written, new, rest if new else replace(rest, count=0), left

    # -- preemption -----------------------------------------------------------------------

    def _preempt(self, ctx: Any, key: str, priority: int, memory: int, missing: Demand,
                 rooms: Mapping[str, NodeRoom], exclude: Iterable[str] = (),
                 ) -> tuple[tuple[adm.Eviction, ...], bool]:
        """Victims for ``missing`` (``rooms``: what is left for it) chosen, recorded and
        scaled down, never one of ``exclude``; and whether room may have come back
        (victims scaled down, this pass's or a recorded one's)."""
        services = list(ctx.registry.list(ctx.kind).items)
        ids = self._admission.rooms.node_ids()
        eligible = [ids[n] for n in missing.nodes if n in ids]  # victims are only there
        containers = self._ecsm.containers.list_all_by_node(eligible) if eligible else []
        choice = self._admission.choose_victims(key, priority, missing, services, rooms,
                                                containers, exclude=exclude)
        evictions = choice.evictions
        by_key = {adm._key(o): o for o in services}
        for owner in sorted(choice.unfinished - {e.owner for e in evictions}):
            # recorded, not yet scaled down on ECSM (a pass cut short): finish it
            logger.info("key=%s finishing the recorded scale-down of %s", key, owner)
            self._shrink(by_key[owner], owner)
        placed: dict[str, Counter[str]] = {}
        for c in containers:
            if str(getattr(c, "deploy_status", "")) != "failed":
                placed.setdefault(str(c.service_name), Counter())[str(c.node_name)] += 1
        for e in evictions:
            reason = adm.preemption_reason(key, priority, memory, missing)
            logger.info("key=%s preempting %d instance(s) of %s (priority %d) on %s", key,
                        e.instances, e.owner, e.priority, ",".join(e.nodes))
            victim = self._record(ctx, by_key[e.owner], key, priority, e, reason)
            self._shrink(victim, e.owner, e.nodes, placed)
        return evictions, bool(evictions or choice.unfinished)

    def _given(self, given: list[Obj], key: str, priority: int, memory: int,
               missing: Demand, evictions: Sequence[adm.Eviction]) -> list[Obj]:
        """``status.preemptionsGiven`` with ``evictions`` added (the newest kept)."""
        reason = adm.preemption_reason(key, priority, memory, missing)
        return (given + [{"victim": e.owner, "priority": e.priority,
                          "instances": e.instances, "time": self._now(), "reason": reason}
                         for e in evictions])[-GIVEN_KEPT:]

    def _record(self, ctx: Any, victim: Obj, key: str, priority: int, e: adm.Eviction,
                reason: str) -> Obj:
        """Write the record in the victim's status (re-read on Conflict)."""
        namespace, name = split_key(e.owner)
        static = adm.spec_target(victim.get("spec") or {})[0] is Policy.STATIC
        for attempt in range(CONFLICT_ATTEMPTS):
            if attempt:
                victim = ctx.registry.get(ctx.kind, namespace, name)
            status = dict(victim.get("status") or {})
            status["preemptions"] = adm.add_record(
                adm.records_of(victim), preemptor=key, priority=priority,
                instances=e.instances, nodes=e.nodes if static else (), now=self._now(),
                reason=reason)
            try:
                # the registry client itself: the victim's key must see its own event
                return dict(ctx.registry.update_status({**victim, "status": status}))
            except Conflict:
                continue
        raise Conflict(f"ECSMService {e.owner}: the preemption record kept conflicting")

    def _shrink(self, victim: Obj, owner: str, on: Sequence[str] = (),
                placed: Mapping[str, Counter[str]] | None = None) -> None:
        """Scale the victim down on ECSM to its spec minus its records (idempotent: the
        victim's own pass does the same). A Dynamic victim's instances chosen on
        ``on`` (one node per instance; ``placed``: ECSM service name → instances per node) are the ones that
        go: ECSM picks which instances a smaller factor removes, so a revision whose
        every instance on such a node goes leaves that node's name out until its own
        pass puts the pool back."""
        namespace, name = split_key(owner)
        records = adm.records_of(victim)
        policy, target, nodes = adm.spec_target(victim.get("spec") or {})
        views = self._list_owned(namespace, name)
        if policy is Policy.STATIC:
            removed = {str(n) for r in records for n in r.get("nodes") or ()}
            for v in views:
                keep = tuple(n for n in v.node_names if n not in removed)
                if keep == v.node_names:
                    continue
                action: Scale | Delete = Delete(revision=v.revision, service_id=v.service_id) \
                    if not keep else Scale(revision=v.revision, service_id=v.service_id,
                                           factor=len(keep), node_names=keep,
                                           policy=v.policy)
                self._actuator.apply(namespace, name, victim.get("spec") or {}, [action])
            return
        allowed = max(0, target - sum(int(r.get("instances") or 0) for r in records))
        excess = sum(v.factor for v in views) - allowed
        chosen = Counter(on)
        on_nodes = {v.revision: (placed or {}).get(service_name(namespace, name, v.revision),
                                                   Counter()) for v in views}
        # revisions with chosen instances first, so that those are the ones removed
        for v in sorted(views, key=lambda v: (-sum(min(on_nodes[v.revision][n], k)
                                                   for n, k in chosen.items()),
                                              -v.factor, v.created)):
            if excess <= 0:
                break
            k = min(excess, v.factor)
            excess -= k
            here, off, gone = on_nodes[v.revision], set(), 0
            for n in sorted(chosen):  # nodes whose every instance of v goes, within k
                if 0 < here[n] <= chosen[n] and gone + here[n] <= k:
                    off.add(n)
                    gone += here[n]
            keep = tuple(n for n in v.node_names if n not in off)
            if k == v.factor or not keep:
                keep = v.node_names
            for n in off:
                chosen[n] -= here[n]
            self._actuator.scale(owner, Scale(revision=v.revision, service_id=v.service_id,
                                                factor=v.factor - k,
                                                node_names=keep, policy=v.policy))



def conditions(obj: Obj, short: int, records: Sequence[Obj], may_preempt: bool = True,
               evictions: Sequence[adm.Eviction] = (),
               memory: int = 0) -> dict[str, ConditionValue]:
    """``ReplicaFailure`` (True while instances do not fit; False once they do, if it was
    ever set) and ``Preempted`` (True while records hold; False/Restored after)."""
    present = {c.get("type") for c in (obj.get("status") or {}).get("conditions") or ()
               if isinstance(c, dict)}
    out: dict[str, ConditionValue] = {}
    if short:
        why = ("preemptionPolicy is Never: waiting for room" if not may_preempt else
               f"preempting {sum(e.instances for e in evictions)} instance(s) of "
               + ", ".join(e.owner for e in evictions) if evictions else
               "no instances of lower priority to preempt: waiting for room")
        out[REPLICA_FAILURE] = ConditionValue(
            status="True", reason="InsufficientMemory",
            message=f"{short} instance(s) of {memory // MIB} MiB do not fit "
                    f"on the eligible nodes; {why}")
    elif REPLICA_FAILURE in present:
        out[REPLICA_FAILURE] = ConditionValue(status="False", reason="AsExpected")
    if records:
        out[PREEMPTED] = ConditionValue(
            status="True", reason="PreemptedByHigherPriority",
            message="; ".join(f"{r.get('instances')} instance(s) held for "
                              f"{r.get('preemptor')} (priority {r.get('priority')}) "
                              f"since {r.get('time')}" for r in records))
    elif PREEMPTED in present:
        out[PREEMPTED] = ConditionValue(status="False", reason="Restored",
                                        message="every preempted instance is back")
    return out


def _available_against_spec(desired: Desired, plan_: Plan) -> dict[str, ConditionValue]:
    """A preempted service is judged against its spec, not its held-down size: fewer
    instances than the spec's minimum is not Available (dependents wait)."""
    target = len(desired.nodes) if desired.policy is Policy.STATIC else desired.replicas
    need = max(target - desired.max_unavailable, min(1, target))
    have = plan_.summary.available
    if have >= need:
        return {}
    return {AVAILABLE: ConditionValue(
        status="False", reason="Preempted",
        message=f"{have} of {target} instances available (at least {need} required); "
                f"the others are held for a service of higher priority")}

