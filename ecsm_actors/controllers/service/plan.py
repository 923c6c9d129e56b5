"""The pure planner: observed ECSM services of one ECSMService → the actions to take next.

Runs inside the service-controller process. No I/O, no clock: the same inputs always give
the same plan, so every rule is unit-tested with tables.

One ECSM service per template revision. Kubernetes Deployment semantics, with a revision
playing the ReplicaSet and ``instanceOnline`` playing "available pods":

* steady state (no old revision holds an instance): the current revision is created or
  updated to the desired factor / node list / policy;
* rollout: ONE direction per pass, like the Deployment controller — first scale the
  current revision up while ``instances ≤ desired + maxSurge``; when nothing could be
  scaled up, scale old revisions down (their unhealthy instances first) while
  ``online ≥ desired − maxUnavailable`` stays true even if every removed instance was
  online. The caller re-observes before the next pass, so the bounds hold at every
  instant ECSM applies our writes synchronously;
* old revisions at factor 0 are kept as history up to ``history_limit`` (newest first)
  and deleted beyond it; a Static revision cannot exist without a node (ECSM refuses
  it), so it is deleted when its last instance goes (its template stays in the object's
  revision annotations, see :mod:`.history`);
* Static: the node list is the placement (one instance per listed node); its rollout
  moves node by node. Dynamic: ``node.names`` is the pool minus down nodes (when any
  remains), so ECSM re-places instances away from a dead node;
* a container neither running nor settling, on a live node, of a ``run`` revision, is
  restarted through a container action.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ecsm_actors.controllers.service.model import (
    PAUSED,
    RUNNING,
    SETTLING,
    Action,
    ContainerView,
    Create,
    Delete,
    Desired,
    Plan,
    Policy,
    Restart,
    RevisionView,
    Scale,
    Summary,
)

__all__ = ["Action", "ContainerView", "Create", "Delete", "Desired", "Plan", "Policy",
           "Restart", "RevisionView", "Scale", "Summary", "needs_containers", "placement",
           "plan"]


def needs_containers(desired: Desired, observed: Sequence[RevisionView]) -> bool:
    """Whether this pass must list containers: something is unhealthy, loading, or rolling."""
    if desired.load:
        return True
    for rev in observed:
        if rev.online < rev.factor:
            return True
        if rev.revision != desired.revision and rev.factor > 0:
            return True
    return False


def placement(desired: Desired, down: frozenset[str]) -> tuple[str, ...]:
    """The ``node.names`` a revision should carry now (Dynamic skips down nodes if it can)."""
    if desired.policy is Policy.STATIC:
        return desired.nodes
    up = tuple(n for n in desired.nodes if n not in down)
    return up or desired.nodes


def plan(desired: Desired, observed: Sequence[RevisionView],
         down: Iterable[str] = ()) -> Plan:
    """The actions of this pass and the summary of what was observed."""
    down_set = frozenset(down)
    current = next((r for r in observed if r.revision == desired.revision), None)
    olds = sorted((r for r in observed if r.revision != desired.revision),
                  key=lambda r: (r.created, r.revision))  # oldest first
    live_olds = [r for r in olds if r.factor > 0]
    target = _target_count(desired)
    names = placement(desired, down_set)

    actions: list[Action] = list(_restarts(desired, observed, down_set))
    if not live_olds:
        actions.extend(_steady(desired, current, target, names))
    else:
        actions.extend(_rolling_step(desired, current, olds, target, names, down_set))
        if desired.policy is Policy.DYNAMIC:
            actions.extend(_replace_olds(live_olds, names, actions))
    actions.extend(_prune_history(desired, olds))
    return Plan(actions=tuple(actions),
                summary=_summarize(desired, current, olds, target, down_set))


def _target_count(desired: Desired) -> int:
    return len(desired.nodes) if desired.policy is Policy.STATIC else desired.replicas


def _restarts(desired: Desired, observed: Sequence[RevisionView],
              down: frozenset[str]) -> Iterable[Restart]:
    if desired.load:
        return
    for rev in observed:
        for c in rev.containers or ():
            if c.status == RUNNING or c.status in SETTLING or c.node_name in down:
                continue
            yield Restart(revision=rev.revision, container_name=c.name,
                          action="unpause" if c.status == PAUSED else "start")


def _steady(desired: Desired, current: RevisionView | None, target: int,
            names: tuple[str, ...]) -> list[Action]:
    if current is None:
        return [Create(revision=desired.revision, factor=target, node_names=names)] \
            if target > 0 else []
    factor = len(names) if desired.policy is Policy.STATIC else target
    if (current.factor != factor or current.policy != desired.policy
            or set(current.node_names) != set(names)):
        return [Scale(revision=current.revision, service_id=current.service_id,
                      factor=factor, node_names=names, policy=desired.policy)]
    return []


def _rolling_step(desired: Desired, current: RevisionView | None, olds: list[RevisionView],
                  target: int, names: tuple[str, ...], down: frozenset[str]) -> list[Action]:
    everyone = ([current] if current else []) + olds
    total = sum(r.instances for r in everyone)
    new_factor = current.factor if current else 0
    max_total = target + desired.max_surge

    # 1. the new revision: scale up within surge (or down to the target)
    wanted_new = new_factor
    if new_factor > target:
        wanted_new = target
    elif new_factor < target and total < max_total:
        wanted_new = new_factor + min(max_total - total, target - new_factor)
    if wanted_new != new_factor or (current is not None and current.policy != desired.policy):
        return [_resize(desired, current, wanted_new, names, olds)]

    # 2. old revisions: scale down, never below min available
    min_available = target - desired.max_unavailable
    new_unavailable = max(0, new_factor - (_ready(desired, current) if current else 0))
    budget = total - min_available - new_unavailable
    if budget <= 0:
        return []
    cuts: dict[str, int] = {}
    for rev in olds:  # unhealthy instances first: removing them costs no availability
        if budget <= 0:
            break
        unhealthy = max(0, rev.factor - _ready(desired, rev))
        k = min(unhealthy, budget)
        if k > 0:
            cuts[rev.revision] = k
            budget -= k
    available = sum(_ready(desired, r) for r in everyone)
    healthy_budget = min(budget, available - min_available)
    for rev in olds:
        if healthy_budget <= 0:
            break
        left = rev.factor - cuts.get(rev.revision, 0)
        k = min(left, healthy_budget)
        if k > 0:
            cuts[rev.revision] = cuts.get(rev.revision, 0) + k
            healthy_budget -= k
    actions: list[Action] = []
    for rev in olds:
        k = cuts.get(rev.revision, 0)
        if k <= 0:
            continue
        remaining = rev.factor - k
        if remaining == 0 and (desired.history_limit == 0 or rev.policy == Policy.STATIC):
            actions.append(Delete(revision=rev.revision, service_id=rev.service_id))
        else:
            actions.append(_shrink_old(desired, rev, remaining, current, down))
    return actions


def _resize(desired: Desired, current: RevisionView | None, count: int,
            names: tuple[str, ...], olds: list[RevisionView]) -> Action:
    if desired.policy is Policy.STATIC:
        keep = [n for n in (current.node_names if current else ()) if n in desired.nodes]
        held = {n for r in olds for n in r.node_names}
        # new instances go first where an old one still runs (the node keeps serving)
        order = sorted((n for n in desired.nodes if n not in keep),
                       key=lambda n: (n not in held, desired.nodes.index(n)))
        chosen = tuple((keep + order)[:count])
        nodes: tuple[str, ...] = chosen
        factor = len(chosen)
    else:
        nodes, factor = names, count
    if current is None:
        return Create(revision=desired.revision, factor=factor, node_names=nodes)
    return Scale(revision=current.revision, service_id=current.service_id, factor=factor,
                 node_names=nodes, policy=desired.policy)


def _shrink_old(desired: Desired, rev: RevisionView, remaining: int,
                current: RevisionView | None, down: frozenset[str]) -> Scale:
    if rev.policy != Policy.STATIC:
        names = rev.node_names
        return Scale(revision=rev.revision, service_id=rev.service_id, factor=remaining,
                     node_names=names, policy=rev.policy)
    statuses = rev.statuses_by_node()
    new_running = set()
    if current is not None:
        new_running = {n for n, s in current.statuses_by_node().items() if RUNNING in s}

    def cost(node: str) -> tuple[int, ...]:
        # cheapest to remove first: not serving (costs no availability), then not wanted,
        # down, already replaced by the new revision, last in the spec's order
        serving = rev.containers is None or RUNNING in statuses.get(node, ())
        return (serving, node in desired.nodes, node not in down, node not in new_running,
                -rev.node_names.index(node))

    by_cost = sorted(rev.node_names, key=cost)
    removed = set(by_cost[: len(rev.node_names) - remaining])
    kept = tuple(n for n in rev.node_names if n not in removed)
    return Scale(revision=rev.revision, service_id=rev.service_id, factor=len(kept),
                 node_names=kept, policy=rev.policy)


def _replace_olds(live_olds: list[RevisionView], names: tuple[str, ...],
                  planned: list[Action]) -> list[Action]:
    """Dynamic old revisions still holding instances follow the live pool too."""
    touched = {a.revision for a in planned if isinstance(a, Scale | Delete)}
    out: list[Action] = []
    for rev in live_olds:
        if rev.revision in touched or rev.policy != Policy.DYNAMIC:
            continue
        if set(rev.node_names) != set(names):
            out.append(Scale(revision=rev.revision, service_id=rev.service_id,
                             factor=rev.factor, node_names=names, policy=rev.policy))
    return out


def _prune_history(desired: Desired, olds: list[RevisionView]) -> list[Action]:
    idle = [r for r in olds if r.factor == 0]
    idle.sort(key=lambda r: (r.created, r.revision), reverse=True)  # newest first
    return [Delete(revision=r.revision, service_id=r.service_id)
            for r in idle[desired.history_limit:]]


def _summarize(desired: Desired, current: RevisionView | None, olds: list[RevisionView],
               target: int, down: frozenset[str]) -> Summary:
    everyone = ([current] if current else []) + olds
    ready = sum(_ready(desired, r) for r in everyone)
    updated = current.factor if current else 0
    current_ready = _ready(desired, current) if current else 0
    rolling = any(r.factor > 0 for r in olds)
    ids = tuple(r.service_id for r in ([current] if current else [])) + tuple(
        r.service_id for r in reversed(olds))
    if desired.policy is Policy.STATIC:
        unavoidable = tuple(n for n in desired.nodes if n in down)
    else:
        pool_up = [n for n in desired.nodes if n not in down]
        unavoidable = () if pool_up else tuple(n for n in desired.nodes if n in down)
    complete = (not rolling and current is not None and updated == target
                and current_ready >= target) or (target == 0 and not rolling)
    return Summary(
        desired=target,
        replicas=sum(r.factor for r in everyone),
        ready=ready,
        updated=updated,
        available=ready,
        min_available=max(target - desired.max_unavailable, min(1, target)),
        service_ids=ids,
        rolling=rolling,
        complete=complete,
        down_nodes=unavoidable,
    )


def _ready(desired: Desired, rev: RevisionView) -> int:
    if desired.load and rev.containers is not None:
        return min(len(rev.containers), rev.factor)
    return rev.ready
