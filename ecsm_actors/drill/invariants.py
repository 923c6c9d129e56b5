"""The drill's invariants: pure checks over a :class:`~.snapshot.Snapshot` and the ledger.

Runs in the drill process; no I/O. Each checker returns a :class:`CheckResult` listing
every violation it found (empty = the invariant holds):

* ``acknowledged-writes`` — every write the registry acknowledged is what it stores now
  (a write still in doubt may have landed or not; either is accepted);
* ``ecsm-matches-spec`` — each ECSMService has exactly one ECSM service for its current
  revision, with the desired factor, node list and image, and its old revisions are
  scaled to zero and within the history limit;
* ``no-orphans`` — every ECSM service whose name says it is ours has an owner, and no
  name appears twice on ECSM;
* ``status-matches-reality`` — status.observedGeneration == metadata.generation,
  replicas/readyReplicas/updatedReplicas agree with ECSM, the current revision and
  service ids are the live ones, condition Available is True;
* ``hpa-within-bounds`` — every HPA target's replicas lie in [minReplicas, maxReplicas];
* ``no-leftover-processes`` — no process recorded during the drill survives its stop;
* ``capacity-by-priority`` (under capacity pressure, :mod:`.capacity`) — no service is
  short of instances while strictly lower priorities hold the memory it needs.

A service short for lack of room (condition ``Preempted`` or ``ReplicaFailure`` True) may
run below its spec on ECSM (or have no ECSM service yet, or keep an old revision while
its rollout waits for room once its maxUnavailable budget is spent) and need not be
Available; the capacity invariant judges it.

:func:`quiescent` is the convergence test the drill waits for before judging.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from ecsm_actors.controllers.service.rollout import resolve
from ecsm_actors.drill.capacity import capacity_held, check_capacity_by_priority
from ecsm_actors.drill.ledger import Expectation, LedgerEntry, drill_annotations
from ecsm_actors.drill.snapshot import (
    EcsmServiceView,
    ProcessRecord,
    Snapshot,
    desired_replicas,
    ecsm_name,
    revision_of,
)
from ecsm_actors.drill.verdict import CheckResult
from ecsm_actors.drill.verdict import result as _result
from ecsm_actors.errors import TerminalError

__all__ = ["CheckResult", "check_acknowledged_writes", "check_capacity_by_priority",
           "check_ecsm_matches_spec", "check_hpa_bounds", "check_no_leftover_processes",
           "check_no_orphans", "check_statuses", "contains", "convergence_checks", "lag",
           "quiescent"]

_DEFAULT_HISTORY = 10


# -- acknowledged writes ---------------------------------------------------------------


def contains(expected: Any, observed: Any) -> bool:
    """``observed`` has every field of ``expected`` with the same value (maps recurse)."""
    if isinstance(expected, Mapping):
        return isinstance(observed, Mapping) and all(
            k in observed and contains(v, observed[k]) for k, v in expected.items())
    return bool(expected == observed)


def _satisfies(exp: Expectation, obj: dict[str, Any] | None, hpa_owned: bool) -> bool:
    if not exp.present:
        return obj is None
    if obj is None:
        return False
    spec = dict(obj.get("spec") or {})
    if hpa_owned and obj.get("kind") == "ECSMService":
        strategy = dict(spec.get("deploymentStrategy") or {})
        strategy.pop("replicas", None)
        spec["deploymentStrategy"] = strategy
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    if exp.exact:
        return (spec == exp.spec and generation >= exp.generation
                and drill_annotations(obj) == exp.annotations)
    return contains(exp.spec or {}, spec) and contains(exp.annotations, drill_annotations(obj))


def check_acknowledged_writes(entries: Iterable[LedgerEntry], snap: Snapshot,
                              hpa_targets: Iterable[str] = ()) -> CheckResult:
    """``hpa_targets``: keys of ECSMServices whose replicas their HPA owns."""
    owned = set(hpa_targets)
    violations, checked = [], 0
    for entry in entries:
        checked += 1
        obj = snap.objects.get((entry.kind, entry.key))
        hpa_owned = entry.kind == "ECSMService" and entry.key in owned
        if any(_satisfies(e, obj, hpa_owned) for e in entry.acceptable()):
            continue
        wanted = " or ".join(e.describe() for e in entry.acceptable())
        if obj is None:
            seen = "absent"
        elif (obj.get("metadata") or {}).get("deletionTimestamp"):
            seen = "still terminating"
        else:
            gen = (obj.get("metadata") or {}).get("generation")
            seen = f"present with another spec/annotations (generation {gen})"
        violations.append(f"{entry.kind} {entry.key}: acknowledged {wanted}, registry has "
                          f"it {seen}")
    return _result("acknowledged-writes", violations, checked)


# -- ECSM against spec -----------------------------------------------------------------


def _image_matches(template_image: str, ecsm_image: str) -> bool:
    return not ecsm_image or template_image.split("#", 1)[0] == ecsm_image


def _node_violation(obj: dict[str, Any], svc: EcsmServiceView) -> str | None:
    strategy = (obj.get("spec") or {}).get("deploymentStrategy") or {}
    if strategy.get("type") == "Static":
        want = tuple(sorted(strategy.get("nodes") or []))
        held_off = capacity_held(obj) and set(svc.nodes) < set(want)
        if svc.nodes != want and not held_off:
            return f"nodes {list(svc.nodes)} != spec nodes {list(want)}"
    else:
        pool = set(strategy.get("nodePool") or [])
        if pool and not set(svc.nodes) <= pool:
            return f"nodes {list(svc.nodes)} outside nodePool {sorted(pool)}"
    return None


def check_ecsm_matches_spec(snap: Snapshot) -> CheckResult:
    by_owner = snap.ecsm_by_owner()
    violations, checked = [], 0
    for key, obj in snap.of_kind("ECSMService"):
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            continue
        checked += 1
        namespace, name = key.split("/", 1)
        revision = revision_of(obj)
        current_name = ecsm_name(namespace, name, revision)
        mine = by_owner.get(key, [])
        current = [s for s in mine if s.name == current_name]
        old = [s for s in mine if s.name != current_name]
        spec = obj.get("spec") or {}
        if not current:
            if not capacity_held(obj):  # held at 0 instances for lack of room: no service
                violations.append(f"{key}: no ECSM service {current_name} for revision "
                                  f"{revision}")
        elif len(current) > 1:
            violations.append(f"{key}: {len(current)} ECSM services named {current_name} "
                              f"(ids {[s.id for s in current]})")
        else:
            svc, want = current[0], desired_replicas(obj)
            if svc.factor != want and not (svc.factor < want and capacity_held(obj)):
                violations.append(f"{key}: ECSM {current_name} factor {svc.factor} != "
                                  f"desired {want}")
            bad_nodes = _node_violation(obj, svc)
            if bad_nodes:
                violations.append(f"{key}: ECSM {current_name} {bad_nodes}")
            image = str((spec.get("template") or {}).get("image", ""))
            if not _image_matches(image, svc.image):
                violations.append(f"{key}: ECSM {current_name} runs {svc.image}, template "
                                  f"says {image}")
        for svc in old:
            if svc.factor > 0 and not _rollout_waits_for_room(obj, mine):
                violations.append(f"{key}: stale revision {svc.name} still at factor "
                                  f"{svc.factor}")
        limit = (spec.get("rollout") or {}).get("revisionHistoryLimit", _DEFAULT_HISTORY)
        if len(old) > int(limit):
            violations.append(f"{key}: {len(old)} old revisions kept, history limit {limit}")
    return _result("ecsm-matches-spec", violations, checked)


def _rollout_waits_for_room(obj: dict[str, Any], mine: list[EcsmServiceView]) -> bool:
    """An old revision may keep instances only while the rollout is held for lack of room
    (:func:`capacity_held`) AND has spent its maxUnavailable budget: a rollout that cannot
    surge scales the old revision down first, as a Deployment does, so one still at its
    full size with budget left is stuck, not waiting."""
    if not capacity_held(obj):
        return False
    spec = obj.get("spec") or {}
    want = desired_replicas(obj)
    try:
        budget = resolve(spec.get("rollout"), want).max_unavailable
    except TerminalError:
        return True  # the controller refuses the spec; other checks say so
    taken = sum(int(r.get("instances") or 0)
                for r in (obj.get("status") or {}).get("preemptions") or ()
                if isinstance(r, dict))
    return sum(s.factor for s in mine) <= max(0, want - taken) - budget


def check_no_orphans(snap: Snapshot) -> CheckResult:
    live = {key for key, _ in snap.of_kind("ECSMService")}
    violations = [f"ECSM service {s.name} (id {s.id}) has no ECSMService {owner}"
                  for owner, rows in sorted(snap.ecsm_by_owner().items()) if owner not in live
                  for s in rows]
    names = Counter(s.name for s in snap.ecsm)
    violations += [f"ECSM service name {n} appears {c} times" for n, c in sorted(names.items())
                   if c > 1]
    return _result("no-orphans", violations, len(snap.ecsm))


# -- status ----------------------------------------------------------------------------


def _condition(obj: dict[str, Any], type_: str) -> str | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return str(c.get("status"))
    return None


def check_statuses(snap: Snapshot) -> CheckResult:
    by_owner = snap.ecsm_by_owner()
    violations, checked = [], 0
    for key, obj in snap.of_kind("ECSMService"):
        meta, status = obj.get("metadata") or {}, obj.get("status") or {}
        if meta.get("deletionTimestamp"):
            continue
        checked += 1
        generation, observed = meta.get("generation"), status.get("observedGeneration")
        if observed != generation:
            violations.append(f"{key}: status.observedGeneration {observed} != generation "
                              f"{generation}")
        mine = by_owner.get(key, [])
        namespace, name = key.split("/", 1)
        revision = revision_of(obj)
        current = [s for s in mine if s.name == ecsm_name(namespace, name, revision)]
        # Held short for lack of room: replicas are what ECSM runs, not the spec.
        want = sum(s.factor for s in mine) if capacity_held(obj) else desired_replicas(obj)
        online = sum(s.instance_online for s in mine)
        checks = [("replicas", want), ("readyReplicas", online)]
        if current and "updatedReplicas" in status:
            checks.append(("updatedReplicas", current[0].factor))
        for field_name, expected in checks:
            if int(status.get(field_name) or 0) != expected:
                violations.append(f"{key}: status.{field_name} {status.get(field_name)} != "
                                  f"{expected} on ECSM")
        rev = str(status.get("currentRevision") or "")
        if not rev.endswith(revision):
            violations.append(f"{key}: status.currentRevision {rev!r} is not {revision}")
        ids = set(status.get("underlyingServiceIDs") or [])
        real = {s.id for s in mine}
        if current and current[0].id not in ids:
            violations.append(f"{key}: status.underlyingServiceIDs lacks {current[0].id}")
        if ids - real:
            violations.append(f"{key}: status.underlyingServiceIDs names gone services "
                              f"{sorted(ids - real)}")
        if _condition(obj, "Available") != "True" and not capacity_held(obj):
            violations.append(f"{key}: condition Available is {_condition(obj, 'Available')}")
    return _result("status-matches-reality", violations, checked)


# -- HPA -------------------------------------------------------------------------------


def check_hpa_bounds(snap: Snapshot) -> CheckResult:
    violations, checked = [], 0
    for key, hpa in snap.of_kind("ECSMHpa"):
        spec = hpa.get("spec") or {}
        if spec.get("paused"):
            continue
        namespace = key.split("/", 1)[0]
        target_name = (spec.get("scaleTargetRef") or {}).get("name")
        target = snap.objects.get(("ECSMService", f"{namespace}/{target_name}"))
        if target is None:
            continue
        checked += 1
        low, high = int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 0)
        replicas = desired_replicas(target)
        if not low <= replicas <= high:
            violations.append(f"{key}: target {target_name} has {replicas} replicas, outside "
                              f"[{low}, {high}]")
        desired = (hpa.get("status") or {}).get("desiredReplicas")
        if desired is not None and not low <= int(desired) <= high:
            violations.append(f"{key}: status.desiredReplicas {desired} outside [{low}, {high}]")
    return _result("hpa-within-bounds", violations, checked)


# -- processes -------------------------------------------------------------------------


def check_no_leftover_processes(recorded: Iterable[ProcessRecord],
                                running: Mapping[int, float]) -> CheckResult:
    """``running``: pid → create_time of the processes alive after the stop (the recorded
    pids and anything still in the system's process group)."""
    records = list(recorded)
    known = {(r.pid, round(r.create_time, 2)) for r in records}
    violations = [f"{r.name or 'process'} pid {r.pid} still running" for r in records
                  if r.pid in running and round(running[r.pid], 2) == round(r.create_time, 2)]
    violations += [f"unrecorded process pid {pid} still running in the system's group"
                   for pid, ctime in sorted(running.items()) if (pid, round(ctime, 2)) not in known]
    return _result("no-leftover-processes", violations, len(records))


# -- together --------------------------------------------------------------------------


def convergence_checks(snap: Snapshot) -> list[CheckResult]:
    """The checks of a converged system (with the capacity one when memory was read)."""
    checks = [check_ecsm_matches_spec(snap), check_no_orphans(snap), check_statuses(snap),
              check_hpa_bounds(snap)]
    if snap.capacity is not None:
        checks.append(check_capacity_by_priority(snap))
    return checks


def quiescent(snap: Snapshot) -> tuple[bool, str]:
    """Converged: nothing terminating, and every convergence check passes. Returns the
    first reason when not."""
    for key, obj in snap.of_kind("ECSMService") + snap.of_kind("ECSMHpa"):
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            return False, f"{key} is still terminating"
    for result in convergence_checks(snap):
        if not result.ok:
            return False, f"{result.name}: {result.violations[0]}" + (
                f" (+{len(result.violations) - 1} more)" if len(result.violations) > 1 else "")
    return True, ""


def lag(snap: Snapshot) -> int:
    """ECSMServices whose latest spec is not observed yet or that are not Available."""
    return sum(1 for _, obj in snap.of_kind("ECSMService")
               if (obj.get("status") or {}).get("observedGeneration")
               != (obj.get("metadata") or {}).get("generation")
               or _condition(obj, "Available") != "True")
