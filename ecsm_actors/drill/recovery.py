"""Recovery probes: how long after a fault the system was observed healthy again.

Runs in the drill process; pure bookkeeping (the monitor thread feeds observations, the
fault injector adds probes). A :class:`Probe` is a predicate over an
:class:`Observation`, armed at the fault (instantaneous faults) or when its window
closes (``measure_from``); the first observation *taken after* that instant on which the
predicate holds gives the recovery time. A predicate may answer ``None``: the probe is
moot (its subject was deleted or superseded by the timeline) and is reported unmeasured.

Probe kinds: ``canary`` (a canary ECSMService changed right at the fault has been
reconciled: observedGeneration caught up and Available — "the controller reconciles
again"), ``ps`` (the supervisor shows the child running again with a fresh heartbeat),
``ecsm`` (the damaged ECSM service is back at its factor).

Faults overlap (windows last up to seconds, faults come every few seconds): a fault that
keeps the operator from repairing anything — ECSM failing or slow, the registry, the
service controller or ECSM frozen, a node down for the ``ecsm`` probes of services on
it — is a *blocker*
(:meth:`RecoveryTracker.block`), and the time other blockers spent inside a fault's
measurement is taken out of that fault's recovery (reported as ``blocked``): the
recovery of a fault is the operator's time to repair it, not the length of the faults
that overlap it. A fault's own window is never inside its measurement (a window probe
starts at its end); a kill is never a blocker (the restart is part of the recovery).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ecsm_actors.drill.report import FaultRecord
from ecsm_actors.drill.snapshot import EcsmServiceView, desired_replicas


@dataclass(frozen=True, kw_only=True)
class Observation:
    at: float                                            # monotonic, when it was requested
    services: dict[str, dict[str, Any]] | None = None    # ECSMService key → object
    ps: list[dict[str, Any]] | None = None
    ecsm: tuple[EcsmServiceView, ...] | None = None

    def ecsm_named(self, name: str) -> EcsmServiceView | None:
        for row in self.ecsm or ():
            if row.name == name:
                return row
        return None


Check = Callable[[Observation], bool | None]


@dataclass(kw_only=True)
class Probe:
    label: str
    at: float                       # timeline offset of the fault, for the report
    injected: float                 # monotonic
    check: Check
    measured_by: str
    deadline: float                 # monotonic; past it the recovery was not observed
    window: str = ""                # resource of a window fault, closed by end_window()
    measure_from: float | None = None
    needs_ecsm: bool = False
    detail: str = ""
    on_done: Callable[[], object] | None = None
    #: The nodes its ECSM services were on (``ecsm`` probes): only these nodes going down
    #: block it.
    nodes: frozenset[str] = frozenset()
    recovery: float | None = None
    done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class Blocker:
    """A later fault during which the probes of ``kinds`` cannot recover (monotonic
    times; ``end`` None while its window is open)."""

    start: float
    end: float | None
    kinds: frozenset[str]
    window: str = ""
    #: Ends it before its window closes (a frozen child the watchdog replaced).
    over: Callable[[Observation], bool] | None = None
    #: A node down: it blocks only the probes with services on that node.
    node: str = ""


def blocked_time(blockers: list[Blocker], p: Probe, until: float) -> float:
    """Seconds of ``[p.measure_from, until]`` covered by blockers of its kind
    (overlapping blockers counted once)."""
    if p.measure_from is None:
        return 0.0
    spans = sorted((max(b.start, p.measure_from), min(until if b.end is None else b.end,
                                                       until))
                   for b in blockers
                   if p.measured_by in b.kinds and (not b.node or b.node in p.nodes))
    total, reach = 0.0, p.measure_from
    for start, end in spans:
        start = max(start, reach)
        if end > start:
            total += end - start
            reach = end
    return total


class RecoveryTracker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._probes: list[Probe] = []
        self._records: list[FaultRecord] = []
        self._blockers: list[Blocker] = []

    def block(self, window: str, kinds: frozenset[str], now: float,
              over: Callable[[Observation], bool] | None = None, node: str = "") -> None:
        """A window fault that blocks the probes of ``kinds`` (with ``node``: only those
        with services there) opened now (:meth:`end_window` closes it, or the first
        observation ``over`` holds on)."""
        with self._lock:
            self._blockers.append(Blocker(start=now, end=None, kinds=kinds, window=window,
                                          over=over, node=node))

    def add(self, probe: Probe) -> None:
        if not probe.window and probe.measure_from is None:
            probe.measure_from = probe.injected
        with self._lock:
            self._probes.append(probe)

    def note(self, label: str, at: float, detail: str) -> None:
        """A fault injected without a probe (nothing to measure it by)."""
        with self._lock:
            self._records.append(FaultRecord(label=label, at=at, measured_by="unmeasured",
                                             detail=detail))

    def measured(self, label: str, at: float, recovery: float | None, measured_by: str,
                 detail: str = "") -> None:
        """A fault timed by its own poller (not by the monitor's observations)."""
        with self._lock:
            self._records.append(FaultRecord(label=label, at=at, recovery=recovery,
                                             measured_by=measured_by, detail=detail))

    def end_window(self, window: str, now: float, extend: float = 60.0) -> None:
        with self._lock:
            for b in self._blockers:
                if b.window == window and b.end is None:
                    b.end = now
            for p in self._probes:
                if p.window == window and p.measure_from is None and not p.done:
                    p.measure_from = now
                    p.deadline = max(p.deadline, now + extend)

    def needs_ecsm(self) -> bool:
        with self._lock:
            return any(p.needs_ecsm and not p.done for p in self._probes)

    def active(self) -> int:
        with self._lock:
            return sum(1 for p in self._probes if not p.done)

    def evaluate(self, obs: Observation) -> None:
        with self._lock:
            probes = [p for p in self._probes if not p.done]
            for b in self._blockers:
                if b.end is None and b.over is not None and b.over(obs):
                    b.end = obs.at
            oldest = min((p.injected for p in probes), default=obs.at)  # ≤ measure_from
            self._blockers = [b for b in self._blockers if b.end is None or b.end > oldest]
            blockers = list(self._blockers)
        for p in probes:
            if p.measure_from is None or obs.at < p.measure_from:
                continue
            if p.needs_ecsm and obs.ecsm is None:
                continue
            try:
                verdict = p.check(obs)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                verdict, p.detail = False, f"{p.detail} (probe error: {e})".strip()
            blocked = blocked_time(blockers, p, obs.at)
            if verdict is None:
                self._finish(p, None, "moot: its subject changed under the timeline")
            elif verdict:
                self._finish(p, max(0.0, obs.at - p.measure_from - blocked), "",
                             blocked=blocked)
            elif obs.at > p.deadline + blocked:
                self._finish(p, None, "not observed before the probe deadline")

    def expire(self, now: float) -> None:
        """Close every probe (the drill is over): open ones count as not observed."""
        with self._lock:
            probes = [p for p in self._probes if not p.done]
        for p in probes:
            self._finish(p, None, "still open when the drill ended")

    def _finish(self, p: Probe, recovery: float | None, why: str, *,
                blocked: float = 0.0) -> None:
        with self._lock:
            if p.done:
                return
            p.done, p.recovery = True, recovery
            detail = "; ".join(x for x in (p.detail, why) if x)
            self._records.append(FaultRecord(label=p.label, at=p.at, recovery=recovery,
                                             measured_by=p.measured_by, detail=detail,
                                             blocked=blocked))
        if p.on_done is not None:
            p.on_done()

    def records(self) -> list[FaultRecord]:
        with self._lock:
            return sorted(self._records, key=lambda r: r.at)


# -- predicates ------------------------------------------------------------------------


def _available(obj: dict[str, Any]) -> bool:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Available":
            return c.get("status") == "True"
    return False


def canary_reconciled(key: str, generation: list[int]) -> Check:
    """The canary's change (its generation, filled in by the write's acknowledgement)
    has been observed and the canary is Available at its new scale."""

    def check(obs: Observation) -> bool | None:
        if not generation or obs.services is None:
            return False
        obj = obs.services.get(key)
        if obj is None:
            return None
        meta, status = obj.get("metadata") or {}, obj.get("status") or {}
        return (int(status.get("observedGeneration") or 0) >= generation[0]
                and status.get("observedGeneration") == meta.get("generation")
                and int(status.get("readyReplicas") or 0) == desired_replicas(obj)
                and _available(obj))

    return check


def child_replaced(name: str, pid: int) -> Callable[[Observation], bool]:
    """The supervisor shows ``name`` under another pid than ``pid`` (e.g. the watchdog
    killed a frozen child and restarted it)."""

    def check(obs: Observation) -> bool:
        return any(row.get("name") == name and isinstance(row.get("pid"), int)
                   and row.get("pid") != pid for row in obs.ps or ())

    return check


def child_healthy(name: str, old_pid: int | None, *, need_new_pid: bool,
                  heartbeat_fresh: float = 2.0) -> Check:
    """The supervisor shows ``name`` RUNNING (with a new pid when it was killed) and, if
    it reports one, a heartbeat younger than ``heartbeat_fresh`` seconds."""

    def check(obs: Observation) -> bool:
        for row in obs.ps or ():
            if row.get("name") != name:
                continue
            if str(row.get("state", "")).upper() != "RUNNING":
                return False
            if need_new_pid and row.get("pid") == old_pid:
                return False
            age = row.get("heartbeatAge", row.get("heartbeat_age"))
            return age is None or float(age) < heartbeat_fresh
        return False

    return check


def ecsm_service_whole(name: str, old_id: str | None = None) -> Check:
    """The ECSM service ``name`` exists, has a positive factor and every instance online.
    ``old_id``: it was deleted, so while absent it is not whole (rather than moot); it is
    whole again under a new id, or under ``old_id`` when a simulator killed right after
    the delete came back from a state file written before it."""

    def check(obs: Observation) -> bool | None:
        row = obs.ecsm_named(name)
        if row is None:
            return False if old_id is not None else None
        return row.factor > 0 and row.instance_online >= row.factor

    return check


def ecsm_services_whole(names: tuple[str, ...]) -> Check:
    """Every still-existing ECSM service among ``names`` is back at its factor."""

    def check(obs: Observation) -> bool | None:
        rows = [r for r in (obs.ecsm_named(n) for n in names) if r is not None]
        if not rows:
            return None
        return all(r.instance_online >= r.factor for r in rows)

    return check
