"""The drill's schedule: a seeded workload and a timeline of desired-state changes and faults.

Pure (runs in the drill process, touches nothing): :func:`make_schedule` turns
``(seed, duration, services)`` into a :class:`Schedule` — the workload
(:mod:`.workload`) and a time-ordered tuple of :class:`Action`. Everything is drawn from
one ``random.Random(seed)``, so the same seed gives the same schedule, action for action.

Invariants of a timeline:

* every window fault is closed by its heal action inside the duration (``freeze`` →
  ``thaw``, ``ecsm-*`` → ``ecsm-heal``, ``node-down`` → ``node-up``);
* at most one ECSM fault window, one node down and one frozen process at a time (the
  simulator's fault settings are one set; two nodes down could leave no room to heal);
* the first faults cycle through every fault kind (shuffled), so even a short drill
  exercises each kind once;
* desired-state changes respect the workload: protected services (chains, HPA targets,
  canaries) are never deleted, HPA targets are never scaled by hand (their HPA owns
  replicas), a re-created service was deleted before.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ecsm_actors.drill.workload import (
    IMAGES,
    NODES,
    Workload,
    generate_workload,
    with_pressure,
)

CHILDREN = ("simulator", "registry", "service-controller", "hpa-controller")
CONTROLLERS = ("service-controller", "hpa-controller")


class ActionKind(StrEnum):
    # desired state (writes to the registry; each acknowledged one goes into the ledger)
    SCALE = "scale"
    ROLLOUT = "rollout"
    DELETE = "delete"
    RECREATE = "recreate"
    LOAD = "load"
    HPA_BOUNDS = "hpa-bounds"
    # faults
    KILL = "kill"                          # SIGKILL a child
    FREEZE = "freeze"                      # SIGSTOP a child (window)
    ECSM_LATENCY = "ecsm-latency"          # window
    ECSM_ERRORS = "ecsm-errors"            # 5xx, window
    ECSM_PARTITION = "ecsm-partition"      # window
    NODE_DOWN = "node-down"                # window
    CONTAINER_CRASH = "container-crash"
    ECSM_SERVICE_DELETE = "ecsm-service-delete"   # behind the operator's back
    WRITE_BURST = "write-burst"            # a controller frozen while writes overflow its buffer
    # faults of a two-host topology on etcd (``drill --store etcd`` only)
    HOST_KILL = "host-kill"                # kill -9 of the leading host's whole tree
    ETCD_MEMBER_KILL = "etcd-member-kill"  # one member of three (window)
    QUORUM_LOSS = "quorum-loss"            # two members of three (window)
    # ends of windows
    THAW = "thaw"
    ECSM_HEAL = "ecsm-heal"
    NODE_UP = "node-up"
    HOST_RESTART = "host-restart"
    ETCD_MEMBER_START = "etcd-member-start"
    QUORUM_BACK = "quorum-back"


CHANGE_KINDS = frozenset({ActionKind.SCALE, ActionKind.ROLLOUT, ActionKind.DELETE,
                          ActionKind.RECREATE, ActionKind.LOAD, ActionKind.HPA_BOUNDS})
FAULT_KINDS = (ActionKind.KILL, ActionKind.FREEZE, ActionKind.ECSM_LATENCY,
               ActionKind.ECSM_ERRORS, ActionKind.ECSM_PARTITION, ActionKind.NODE_DOWN,
               ActionKind.CONTAINER_CRASH, ActionKind.ECSM_SERVICE_DELETE,
               ActionKind.WRITE_BURST)
#: The faults ``--store etcd`` adds (never drawn for LMDB: its schedules stay as they were).
ETCD_FAULT_KINDS = (ActionKind.HOST_KILL, ActionKind.ETCD_MEMBER_KILL, ActionKind.QUORUM_LOSS)
HEAL_KINDS = frozenset({ActionKind.THAW, ActionKind.ECSM_HEAL, ActionKind.NODE_UP,
                        ActionKind.HOST_RESTART, ActionKind.ETCD_MEMBER_START,
                        ActionKind.QUORUM_BACK})
_ECSM_WINDOWS = (ActionKind.ECSM_LATENCY, ActionKind.ECSM_ERRORS, ActionKind.ECSM_PARTITION)


@dataclass(frozen=True, kw_only=True)
class Action:
    """One step of the timeline, ``at`` seconds after the timeline starts.

    ``target`` is a service name, a child name or a node name; ``params`` holds the rest
    as sorted ``(key, value)`` pairs so an action is hashable and compares by value.
    """

    at: float
    kind: ActionKind
    target: str = ""
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def p(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def is_fault(self) -> bool:
        return self.kind in FAULT_KINDS or self.kind in ETCD_FAULT_KINDS

    @property
    def label(self) -> str:
        """The kind a report groups by: ``kill:registry``, ``freeze:hpa-controller``, …"""
        if self.kind in (ActionKind.KILL, ActionKind.FREEZE):
            return f"{self.kind}:{self.target}"
        return str(self.kind)

    def to_dict(self) -> dict[str, Any]:
        return {"at": round(self.at, 3), "kind": str(self.kind), "target": self.target,
                **self.p}


def action(at: float, kind: ActionKind, target: str = "", **params: Any) -> Action:
    return Action(at=round(at, 3), kind=kind, target=target,
                  params=tuple(sorted(params.items())))


@dataclass(frozen=True, kw_only=True)
class Profile:
    """Rates and sizes of a drill (defaults suit both the 45 s test and a 5 min run)."""

    #: Mean seconds between desired-state changes.
    change_interval: float = 1.0
    #: Mean seconds between faults.
    fault_interval: float = 3.0
    #: Nothing is injected during the last this-many seconds (windows close before).
    cooldown: float = 3.0
    #: Window faults last between these many seconds.
    window: tuple[float, float] = (1.0, 5.0)
    #: A frozen process stays stopped between these many seconds (past the supervisor's
    #: heartbeat deadline the watchdog kills it: both paths get exercised).
    freeze: tuple[float, float] = (0.5, 8.0)
    #: Writes in one burst (more than the registry PUB high-water mark of the drill).
    burst_writes: int = 1500
    #: CPU load range (percent of one instance) set on HPA targets.
    load: tuple[int, int] = (0, 250)
    #: ``--store etcd``: mean seconds between its faults (one at a time), how long a
    #: killed host stays down (past its lease, so the other host takes over), a killed
    #: member, and a lost quorum.
    etcd_fault_interval: float = 8.0
    host_down: tuple[float, float] = (4.0, 6.0)
    member_down: tuple[float, float] = (2.0, 5.0)
    quorum_down: tuple[float, float] = (1.0, 3.0)


@dataclass(frozen=True, kw_only=True)
class Schedule:
    seed: int
    duration: float
    workload: Workload
    actions: tuple[Action, ...]
    profile: Profile = field(default_factory=Profile)

    def faults(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.is_fault)

    def changes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.kind in CHANGE_KINDS)


def make_schedule(seed: int, duration: float, services: int,
                  profile: Profile | None = None, *, pressure: bool = False,
                  store: str = "lmdb") -> Schedule:
    """The whole drill for ``seed``: workload first, then the timeline, from one stream
    (``pressure`` adds memory limits and priority classes without moving either;
    ``store="etcd"`` adds the two-host faults, drawn from a stream of their own, so the
    rest of the schedule is the LMDB drill's for that seed)."""
    profile = profile or Profile()
    rng = random.Random(seed)
    workload = generate_workload(rng, services)
    actions = _faults(rng, duration, profile, workload) + _changes(rng, duration, profile,
                                                                   workload)
    if store == "etcd":
        actions += _etcd_faults(random.Random(f"etcd-{seed}"), duration, profile)
    actions.sort(key=lambda a: (a.at, a.kind in CHANGE_KINDS, str(a.kind), a.target))
    if pressure:
        workload = with_pressure(workload, seed)
    return Schedule(seed=seed, duration=duration, workload=workload, actions=tuple(actions),
                    profile=profile)


# -- faults ----------------------------------------------------------------------------


def _faults(rng: random.Random, duration: float, profile: Profile,
            workload: Workload) -> list[Action]:
    out: list[Action] = []
    last = duration - profile.cooldown
    busy_until = {"ecsm": 0.0, "node": 0.0, "freeze": 0.0}
    victims = [s.name for s in workload.services if not s.canary]
    cycle = list(FAULT_KINDS)
    rng.shuffle(cycle)
    t = rng.uniform(0.5, profile.fault_interval)
    while t < last:
        if cycle:
            # The next kind of the cycle whose resource is free now (a busy one waits).
            kind = next((k for k in cycle if _available(k, t, busy_until) is k),
                        ActionKind.KILL)
            if kind in cycle:
                cycle.remove(kind)
        else:
            kind = _available(rng.choice(FAULT_KINDS), t, busy_until)
        room = last - t
        if kind is ActionKind.KILL:
            out.append(action(t, kind, rng.choice(CHILDREN)))
        elif kind is ActionKind.FREEZE:
            length = min(rng.uniform(*profile.freeze), room)
            child = rng.choice(CHILDREN)
            out += [action(t, kind, child, seconds=round(length, 3)),
                    action(t + length, ActionKind.THAW, child)]
            busy_until["freeze"] = t + length
        elif kind in _ECSM_WINDOWS:
            length = min(rng.uniform(*profile.window), room)
            params: dict[str, Any] = {"seconds": round(length, 3)}
            if kind is ActionKind.ECSM_LATENCY:
                params["latency"] = round(rng.uniform(0.2, 2.0), 3)
            elif kind is ActionKind.ECSM_ERRORS:
                params["error_rate"] = round(rng.uniform(0.2, 0.8), 3)
            out += [action(t, kind, **params), action(t + length, ActionKind.ECSM_HEAL)]
            busy_until["ecsm"] = t + length
        elif kind is ActionKind.NODE_DOWN:
            length = min(rng.uniform(*profile.window), room)
            node = rng.choice(NODES)
            out += [action(t, kind, node, seconds=round(length, 3)),
                    action(t + length, ActionKind.NODE_UP, node)]
            busy_until["node"] = t + length
        elif kind in (ActionKind.CONTAINER_CRASH, ActionKind.ECSM_SERVICE_DELETE):
            out.append(action(t, kind, rng.choice(victims)))
        elif kind is ActionKind.WRITE_BURST:
            # The paused controller cannot drain its socket: the PUB queue overflows.
            pause = round(min(rng.uniform(1.0, 3.0), room), 3)
            out.append(action(t, kind, rng.choice(CONTROLLERS),
                              writes=profile.burst_writes, seconds=pause))
            busy_until["freeze"] = t + pause
        step = rng.expovariate(1.0 / profile.fault_interval)
        if cycle:   # keep the first round dense enough to fit into a short drill
            step = min(step, max(0.2, (last - 0.5) / (len(FAULT_KINDS) + 1)))
        t += step
    return out


def _etcd_faults(rng: random.Random, duration: float, profile: Profile) -> list[Action]:
    """One two-host fault at a time, the first three one of each kind (shuffled): the
    leading host killed then restarted, one etcd member killed then started, two members
    killed (quorum lost) then started. Members are named by index (``0``..``2``)."""
    out: list[Action] = []
    last = duration - profile.cooldown
    cycle = list(ETCD_FAULT_KINDS)
    rng.shuffle(cycle)
    t = rng.uniform(1.0, profile.etcd_fault_interval / 2)
    while t < last:
        kind = cycle.pop(0) if cycle else rng.choice(ETCD_FAULT_KINDS)
        room = last - t
        if kind is ActionKind.HOST_KILL:
            length = min(rng.uniform(*profile.host_down), room)
            out += [action(t, kind, seconds=round(length, 3)),
                    action(t + length, ActionKind.HOST_RESTART)]
        elif kind is ActionKind.ETCD_MEMBER_KILL:
            length = min(rng.uniform(*profile.member_down), room)
            member = str(rng.randrange(3))
            out += [action(t, kind, member, seconds=round(length, 3)),
                    action(t + length, ActionKind.ETCD_MEMBER_START, member)]
        else:
            length = min(rng.uniform(*profile.quorum_down), room)
            members = ",".join(sorted(rng.sample("012", 2)))
            out += [action(t, kind, members, seconds=round(length, 3)),
                    action(t + length, ActionKind.QUORUM_BACK, members)]
        step = max(length + 2.0, rng.expovariate(1.0 / profile.etcd_fault_interval))
        if cycle:
            step = min(step, max(length + 2.0, (last - t) / (len(cycle) + 1)))
        t += step
    return out


def _available(kind: ActionKind, t: float, busy_until: dict[str, float]) -> ActionKind:
    """``kind`` unless its resource is busy at ``t``; then an instantaneous fault."""
    # Deleting an ECSM service goes through ECSM's own API: not inside an ECSM window.
    resource = {ActionKind.FREEZE: "freeze", ActionKind.WRITE_BURST: "freeze",
                ActionKind.NODE_DOWN: "node", ActionKind.ECSM_SERVICE_DELETE: "ecsm"}.get(
        kind, "ecsm" if kind in _ECSM_WINDOWS else None)
    if resource is None or busy_until[resource] <= t:
        return kind
    return ActionKind.KILL


# -- desired-state changes -------------------------------------------------------------


@dataclass
class _Live:
    """What the timeline has done to one service so far (generation-time state only)."""

    exists: bool = True
    image: str = ""
    revision: int = 0
    replicas: int = 0
    nodes: tuple[str, ...] = ()
    hpa_bounds: tuple[int, int] = (0, 0)
    deleted_at: float = -1.0


def _changes(rng: random.Random, duration: float, profile: Profile,
             workload: Workload) -> list[Action]:
    live = {s.name: _Live(image=s.image, replicas=s.replicas, nodes=s.nodes,
                          hpa_bounds=(s.hpa.min_replicas, s.hpa.max_replicas) if s.hpa
                          else (0, 0))
            for s in workload.services if not s.canary}
    plans = workload.by_name
    out: list[Action] = []
    last = duration - profile.cooldown
    t = rng.uniform(0.1, profile.change_interval)
    while t < last:
        existing = sorted(n for n, s in live.items() if s.exists)
        gone = sorted(n for n, s in live.items() if not s.exists and t - s.deleted_at >= 5.0)
        scalable = [n for n in existing if plans[n].hpa is None]
        deletable = [n for n in existing if not plans[n].protected]
        hpas = [n for n in existing if plans[n].hpa is not None]
        menu = [(ActionKind.SCALE, scalable, 30), (ActionKind.ROLLOUT, existing, 25),
                (ActionKind.LOAD, hpas, 15), (ActionKind.HPA_BOUNDS, hpas, 5),
                (ActionKind.DELETE, deletable, 12), (ActionKind.RECREATE, gone, 13)]
        menu = [(k, names, w) for k, names, w in menu if names]
        if menu:
            kind, names, _ = rng.choices(menu, weights=[w for *_, w in menu])[0]
            out.append(_change(rng, t, kind, rng.choice(names), live, workload, profile))
        t += rng.expovariate(1.0 / profile.change_interval)
    return out


def _change(rng: random.Random, t: float, kind: ActionKind, name: str, live: dict[str, _Live],
            workload: Workload, profile: Profile) -> Action:
    state, plan = live[name], workload.by_name[name]
    if kind is ActionKind.SCALE:
        if plan.static:
            nodes = state.nodes
            while nodes == state.nodes:
                nodes = tuple(sorted(rng.sample(NODES, rng.randint(1, len(NODES)))))
            state.nodes = nodes
            return action(t, kind, name, nodes=nodes)
        replicas = rng.choice([r for r in (1, 2, 3) if r != state.replicas])
        state.replicas = replicas
        return action(t, kind, name, replicas=replicas)
    if kind is ActionKind.ROLLOUT:
        state.revision += 1
        if rng.random() < 0.6:
            state.image = rng.choice([i for i in IMAGES if i != state.image])
        return action(t, kind, name, image=state.image, revision=state.revision)
    if kind is ActionKind.DELETE:
        state.exists, state.deleted_at = False, t
        return action(t, kind, name)
    if kind is ActionKind.RECREATE:
        state.exists = True
        state.revision, state.image = 0, plan.image
        state.replicas, state.nodes = plan.replicas, plan.nodes
        return action(t, kind, name)
    if kind is ActionKind.LOAD:
        return action(t, kind, name, cpu=rng.randint(*profile.load))
    # HPA_BOUNDS
    low = rng.randint(1, 2)
    high = low + rng.randint(0, 3)
    state.hpa_bounds = (low, high)
    return action(t, kind, name, min_replicas=low, max_replicas=high)
