"""Fault injection: turns a fault :class:`~.schedule.Action` into signals and admin calls.

Runs in the drill's main thread. Processes are signalled by the pid the supervisor's
``ps`` reports (never by name); ECSM faults go through the simulator's admin API; a write
burst pauses a controller (SIGSTOP) while the writer floods the registry with more events
than the controller's subscription can buffer, then resumes it. Each injected fault
registers a recovery probe (see :mod:`.recovery`); a fault that cannot be injected at that
moment (its victim does not exist yet, ECSM is unreachable) is recorded as skipped.

With ``--store etcd`` (two hosts, :attr:`DrillContext.hosts`): the leading host is killed
whole and restarted, etcd members are killed by pid and started again; a host kill is
timed by a poller thread of its own (kill → the other host holds the victim's leases in
etcd, every 20 ms), recorded through :meth:`RecoveryTracker.measured`.

:meth:`FaultInjector.heal_all` ends every open window (SIGCONT, faults reset, nodes up) and
keeps trying until it succeeded: the drill never judges a system it left broken.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from ecsm_actors.drill.context import DrillContext
from ecsm_actors.drill.recovery import (
    Observation,
    Probe,
    canary_reconciled,
    child_healthy,
    child_replaced,
    ecsm_service_whole,
    ecsm_services_whole,
)
from ecsm_actors.drill.schedule import CONTROLLERS, Action, ActionKind
from ecsm_actors.drill.snapshot import EcsmServiceView, ProcessRecord, ecsm_name, revision_of
from ecsm_actors.drill.workload import ANNOTATION_PREFIX, CANARY_PREFIX, NAMESPACE, NODES
from ecsm_actors.drill.writer import Write
from ecsm_actors.errors import ControlError, EcsmActorsError, EcsmUnavailable, NotFound

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 60.0
#: Children without which the service controller repairs nothing: frozen, they block
#: the recovery of the faults injected before (see :mod:`.recovery`).
REPAIR_PATH = ("registry", "service-controller", "simulator")
_REPAIRS = frozenset({"canary", "ecsm"})
#: How long a fault waits for a restarting simulator's admin API, seconds.
ADMIN_PATIENCE = 10.0
_BURST_KEY = ANNOTATION_PREFIX + "burst"


class Skipped(Exception):
    """The fault could not be injected now (the reason is the message)."""


class FaultInjector:
    def __init__(self, ctx: DrillContext) -> None:
        self.ctx = ctx
        self.frozen: dict[str, ProcessRecord] = {}
        self.nodes_down: set[str] = set()
        self.ecsm_faulty = False
        self.injected = 0
        self.skipped: list[str] = []
        self._burst_counter = 0
        self.hosts_down: set[str] = set()
        self.quorum_lost: Action | None = None
        self.members_down: set[int] = set()

    # -- dispatch --------------------------------------------------------------------

    def inject(self, action: Action) -> None:
        handler = {
            ActionKind.KILL: self._kill, ActionKind.FREEZE: self._freeze,
            ActionKind.THAW: self._thaw, ActionKind.ECSM_LATENCY: self._ecsm_window,
            ActionKind.ECSM_ERRORS: self._ecsm_window,
            ActionKind.ECSM_PARTITION: self._ecsm_window, ActionKind.ECSM_HEAL: self._ecsm_heal,
            ActionKind.NODE_DOWN: self._node_down, ActionKind.NODE_UP: self._node_up,
            ActionKind.CONTAINER_CRASH: self._container_crash,
            ActionKind.ECSM_SERVICE_DELETE: self._ecsm_service_delete,
            ActionKind.WRITE_BURST: self._write_burst,
            ActionKind.HOST_KILL: self._host_kill, ActionKind.HOST_RESTART: self._host_restart,
            ActionKind.ETCD_MEMBER_KILL: self._member_kill,
            ActionKind.ETCD_MEMBER_START: self._member_start,
            ActionKind.QUORUM_LOSS: self._quorum_loss, ActionKind.QUORUM_BACK: self._quorum_back,
        }[action.kind]
        try:
            handler(action)
            if action.is_fault:
                self.injected += 1
        except (Skipped, EcsmActorsError) as e:
            logger.info("fault %s skipped: %s", action.label, e)
            self.skipped.append(f"{action.label} at {action.at:.1f}s: {e}")

    def _probe(self, action: Action, check: Any, measured_by: str, *, window: str = "",
               needs_ecsm: bool = False, detail: str = "", on_done: list[Any] | None = None,
               measure_now: bool = False, nodes: tuple[str, ...] = ()) -> None:
        now = time.monotonic()
        callbacks = list(on_done or [])
        self.ctx.tracker.add(Probe(
            label=action.label, at=action.at, injected=now, check=check,
            measured_by=measured_by, deadline=now + PROBE_TIMEOUT, window=window,
            measure_from=now if measure_now else None, needs_ecsm=needs_ecsm, detail=detail,
            on_done=(lambda: [cb() for cb in callbacks]) if callbacks else None,
            nodes=frozenset(nodes)))

    def _canary_or(self, action: Action, fallback: Any, fallback_by: str, **kw: Any) -> None:
        """Probe through a canary change made now; ``fallback`` when none is free."""
        on_done: list[Any] = []
        got = self.ctx.canary_change(on_done)
        if got is None:
            if fallback is None:
                self.ctx.tracker.note(action.label, action.at, "no canary free to time it")
                return
            self._probe(action, fallback, fallback_by, **kw)
            return
        key, generation = got
        self._probe(action, canary_reconciled(key, generation), "canary",
                    detail=f"canary {key}", on_done=on_done, **kw)

    def _admin(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A simulator admin call, retried while the simulator restarts (it may have just
        been killed, or frozen and killed by the watchdog)."""
        deadline = time.monotonic() + ADMIN_PATIENCE
        while True:
            try:
                if method == "reality":
                    return reality(self.ctx.admin)
                return getattr(self.ctx.admin, method)(*args, **kwargs)
            except EcsmUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    # -- processes -------------------------------------------------------------------

    def _pid_of(self, name: str) -> ProcessRecord:
        try:
            row = self.ctx.system.child(name)
        except ControlError as e:
            raise Skipped(f"supervisor did not answer ps: {e}") from e
        pid = row.get("pid") if row else None
        if not isinstance(pid, int) or pid <= 0:
            raise Skipped(f"{name} is not running ({row.get('state') if row else 'absent'})")
        record = self.ctx.system.record_of(pid)
        if record is None:
            raise Skipped(f"{name} pid {pid} vanished")
        return record

    def _signal(self, record: ProcessRecord, sig: int) -> None:
        if not self.ctx.system.same_process(record):
            raise Skipped(f"pid {record.pid} is no longer {record.name}")
        try:
            os.kill(record.pid, sig)
        except ProcessLookupError as e:
            raise Skipped(f"pid {record.pid} exited") from e

    def _kill(self, action: Action) -> None:
        record = self._pid_of(action.target)
        self._signal(record, signal.SIGKILL)
        ps_check = child_healthy(action.target, record.pid, need_new_pid=True)
        if action.target == "hpa-controller":
            self._probe(action, ps_check, "ps")
        else:
            self._canary_or(action, ps_check, "ps")

    def _freeze(self, action: Action) -> None:
        record = self._pid_of(action.target)
        self._signal(record, signal.SIGSTOP)
        if action.target in REPAIR_PATH:
            self.ctx.tracker.block("freeze", _REPAIRS, time.monotonic(),
                                   over=child_replaced(action.target, record.pid))
        self.frozen[action.target] = record
        ps_check = child_healthy(action.target, None, need_new_pid=False)
        if action.target == "hpa-controller":
            self._probe(action, ps_check, "ps", window="freeze")
        else:
            self._canary_or(action, ps_check, "ps", window="freeze")

    def _thaw(self, action: Action) -> None:
        record = self.frozen.pop(action.target, None)
        self.ctx.tracker.end_window("freeze", time.monotonic())
        if record is not None and self.ctx.system.same_process(record):
            os.kill(record.pid, signal.SIGCONT)

    # -- ECSM ------------------------------------------------------------------------

    def _ecsm_window(self, action: Action) -> None:
        p = action.p
        if action.kind is ActionKind.ECSM_LATENCY:
            self._admin("faults", latency=p["latency"])
        elif action.kind is ActionKind.ECSM_ERRORS:
            self._admin("faults", error_rate=p["error_rate"], error_kind="http5xx")
        else:
            self._admin("faults", partition=True)
        self.ecsm_faulty = True
        self.ctx.tracker.block("ecsm", _REPAIRS, time.monotonic())
        self._canary_or(action, None, "", window="ecsm")

    def _ecsm_heal(self, action: Action) -> None:
        self.ctx.tracker.end_window("ecsm", time.monotonic())
        self._admin("reset_faults")
        self.ecsm_faulty = False

    def _node_down(self, action: Action) -> None:
        rows = self._our_rows()
        self._admin("node_down", action.target)
        self.nodes_down.add(action.target)
        # the instances there of the services damaged before cannot come back meanwhile
        self.ctx.tracker.block("node", frozenset({"ecsm"}), time.monotonic(),
                               node=action.target)
        hit = [r for r in rows if action.target in r.nodes and r.factor > 0]
        if not hit:
            self.ctx.tracker.note(action.label, action.at, "no service had instances there")
            return
        self._probe(action, ecsm_services_whole(tuple(r.name for r in hit)), "ecsm",
                    window="node", needs_ecsm=True, detail=f"{len(hit)} services on "
                    f"{action.target}", nodes=tuple(n for r in hit for n in r.nodes))

    def _node_up(self, action: Action) -> None:
        self.ctx.tracker.end_window("node", time.monotonic())
        self._admin("node_up", action.target)
        self.nodes_down.discard(action.target)

    def _our_rows(self) -> list[EcsmServiceView]:
        return self._admin("reality")[0]

    def _victim(self, action: Action) -> tuple[EcsmServiceView, str, list[dict[str, Any]]]:
        """The current ECSM service of the target (or, if it has none with a running
        instance, of the first other service that has one), its owner key and its
        containers. Read through the admin API: ECSM faults do not blind the drill."""
        rows, containers = self._admin("reality")
        by_name = {r.name: r for r in rows if r.instance_online > 0}
        names = [action.target] + [n for n in sorted(self.ctx.workload.by_name)
                                   if n != action.target]
        for name in names:
            if self.ctx.workload.by_name[name].canary:
                continue
            try:
                obj = self.ctx.registry.get("ECSMService", NAMESPACE, name)
            except NotFound:
                continue
            row = by_name.get(ecsm_name(NAMESPACE, name, revision_of(obj)))
            if row is not None:
                mine = [c for c in containers if c.get("serviceId") == row.id]
                return row, f"{NAMESPACE}/{name}", mine
        raise Skipped("no ECSM service with running instances")

    def _container_crash(self, action: Action) -> None:
        row, key, containers = self._victim(action)
        running = sorted(str(c.get("name")) for c in containers if c.get("status") == "running")
        if not running:
            raise Skipped(f"{row.name} has no running container")
        self._admin("crash_container", running[0])
        self._probe(action, _while_current(key, row.name, ecsm_service_whole(row.name)), "ecsm",
                    needs_ecsm=True, detail=f"container {running[0]} of {row.name}",
                    nodes=row.nodes)

    def _ecsm_service_delete(self, action: Action) -> None:
        row, key, _ = self._victim(action)
        deadline = time.monotonic() + ADMIN_PATIENCE
        while True:     # through ECSM's real API, which a restarting simulator may refuse
            try:
                self.ctx.ecsm.services.delete(row.id)
                break
            except EcsmActorsError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self._probe(action, _while_current(key, row.name, ecsm_service_whole(row.name, row.id)),
                    "ecsm", needs_ecsm=True, detail=f"ECSM service {row.name} (id {row.id})",
                    nodes=row.nodes)

    # -- write burst -----------------------------------------------------------------

    def _write_burst(self, action: Action) -> None:
        record = self._pid_of(action.target)
        kind = "ECSMHpa" if action.target == "hpa-controller" else "ECSMService"
        keys = burst_keys(self.ctx.registry_keys(kind))
        if not keys:
            raise Skipped(f"no {kind} to write to")
        self._signal(record, signal.SIGSTOP)
        self.frozen[action.target] = record
        if action.target in REPAIR_PATH:  # open now: probes may be judged meanwhile
            self.ctx.tracker.block("burst", _REPAIRS, time.monotonic())
        try:
            writes = int(action.p["writes"])
            for i in range(writes):
                self._burst_counter += 1
                value = str(self._burst_counter)

                def mutate(obj: dict[str, Any], value: str = value) -> None:
                    obj["metadata"].setdefault("annotations", {})[_BURST_KEY] = value

                self.ctx.writer.submit(Write(
                    op="modify", kind=kind, key=keys[i % len(keys)], mutate=mutate,
                    hpa_owned=self.ctx.hpa_owned(kind, keys[i % len(keys)]), label="burst"))
            deadline = time.monotonic() + max(float(action.p["seconds"]), 0.5)
            while self.ctx.writer.pending() and time.monotonic() < deadline + 3.0:
                time.sleep(0.05)
        finally:
            self.frozen.pop(action.target, None)
            if self.ctx.system.same_process(record):
                os.kill(record.pid, signal.SIGCONT)
            self.ctx.tracker.end_window("burst", time.monotonic())
        check = child_healthy(action.target, None, need_new_pid=False)
        if action.target == "hpa-controller":
            self._probe(action, check, "ps", measure_now=True)
        else:
            self._canary_or(action, check, "ps", measure_now=True)

    # -- two hosts on etcd (--store etcd) ----------------------------------------------

    def _leases(self) -> dict[str, str]:
        from ecsm_actors.drill.etcd import lease_hosts

        with self.ctx.etcd.client() as client:
            return lease_hosts(client, self.ctx.prefix,
                               {name: h.run_dir for name, h in self.ctx.hosts.items()})

    def _host_kill(self, action: Action) -> None:
        """``kill -9`` of the host leading the service controller, its whole tree; the
        probe: the other host holds every lease the victim held (read from etcd)."""
        held = self._leases()
        victim = held.get("service-controller") or next(iter(held.values()), None)
        if victim is None or not self.ctx.hosts[victim].alive():
            raise Skipped(f"no live host leads a controller ({held})")
        kinds = sorted(k for k, h in held.items() if h == victim)
        self.ctx.hosts[victim].kill_host()
        self.hosts_down.add(victim)
        if victim == "a":   # the drill's registry and the simulator went with it
            self.ctx.tracker.block("host", frozenset({"canary", "ps", "ecsm"}),
                                   time.monotonic())

        def failed_over() -> bool:
            now = self._leases()
            return bool(kinds) and all(now.get(k) not in (None, victim) for k in kinds)

        self._time_until(action, failed_over, "etcd", f"host {victim} ({', '.join(kinds)}) "
                         "-> the other host leading", time.monotonic())

    def _time_until(self, action: Action, done: Any, measured_by: str, detail: str,
                    since: float, every: float = 0.02) -> None:
        """Time ``since`` → ``done()`` true, polled every ``every`` s in a thread of its own
        (the monitor's ticks are too coarse for a failover, and blind while the drill's
        registry is the host killed); recorded as the fault's recovery."""
        def poll() -> None:
            while time.monotonic() - since < PROBE_TIMEOUT:
                try:
                    if done():
                        self.ctx.tracker.measured(action.label, action.at,
                                                  time.monotonic() - since, measured_by, detail)
                        return
                except EcsmActorsError:
                    pass
                time.sleep(every)
            self.ctx.tracker.measured(action.label, action.at, None, measured_by,
                                      f"{detail}: not observed within {PROBE_TIMEOUT:g}s")

        threading.Thread(target=poll, name="drill-fault-timer", daemon=True).start()

    def _every_kind_led(self) -> bool:
        """Each controller kind has exactly one leader among the live hosts (their ps)."""
        leaders: dict[str, int] = {}
        for host in self.ctx.hosts.values():
            if not host.alive():
                continue
            try:
                rows = host.ps()
            except ControlError:
                continue
            for row in rows:
                if row.get("role") == "leader":
                    leaders[str(row.get("name"))] = leaders.get(str(row.get("name")), 0) + 1
        return all(leaders.get(c) == 1 for c in CONTROLLERS)

    def _host_restart(self, action: Action) -> None:
        for name in sorted(self.hosts_down):
            self.ctx.hosts[name].start()
            self.hosts_down.discard(name)
        self.ctx.tracker.end_window("host", time.monotonic())

    def _member_kill(self, action: Action) -> None:
        self.ctx.etcd.kill(int(action.target))
        self.members_down.add(int(action.target))
        if not self._canary_now(action):       # a change reconciled meanwhile
            self._time_until(action, self._every_kind_led, "ps", "every controller kind "
                             "led (no canary free)", time.monotonic(), every=0.1)

    def _member_start(self, action: Action) -> None:
        self.ctx.etcd.start_member(int(action.target))
        self.members_down.discard(int(action.target))

    def _quorum_loss(self, action: Action) -> None:
        for member in action.target.split(","):
            self.ctx.etcd.kill(int(member))
            self.members_down.add(int(member))
        self.ctx.tracker.block("quorum", frozenset({"canary", "ps", "ecsm"}), time.monotonic())
        self.quorum_lost = None if self._canary_now(action, window="quorum") else action

    def _quorum_back(self, action: Action) -> None:
        for member in action.target.split(","):
            self.ctx.etcd.start_member(int(member))
            self.members_down.discard(int(member))
        now = time.monotonic()
        self.ctx.tracker.end_window("quorum", now)
        if self.quorum_lost is not None:   # no canary was free: time the leaders' return
            self._time_until(self.quorum_lost, self._every_kind_led, "ps", "quorum back -> "
                             "every controller kind led again (no canary free)", now,
                             every=0.1)
        self.quorum_lost = None

    def _canary_now(self, action: Action, window: str = "") -> bool:
        """A canary probe of ``action`` (measured from ``window``'s end, if given); False
        when no canary is free."""
        on_done: list[Any] = []
        got = self.ctx.canary_change(on_done)
        if got is None:
            return False
        key, generation = got
        self._probe(action, canary_reconciled(key, generation), "canary",
                    detail=f"canary {key}", on_done=on_done, window=window)
        return True

    # -- the end ---------------------------------------------------------------------

    def heal_all(self, timeout: float = 60.0) -> list[str]:
        """End every open fault; retried until done or ``timeout``. Returns problems."""
        deadline = time.monotonic() + timeout
        problems: list[str] = []
        now = time.monotonic()
        for window in ("freeze", "ecsm", "node"):
            self.ctx.tracker.end_window(window, now)
        for name, record in list(self.frozen.items()):
            if self.ctx.system.same_process(record):
                os.kill(record.pid, signal.SIGCONT)
            self.frozen.pop(name, None)
        for window in ("host", "quorum"):
            self.ctx.tracker.end_window(window, now)
        for member in sorted(self.members_down):
            self.ctx.etcd.start_member(member)
        self.members_down.clear()
        if self.ctx.etcd is not None:
            self.ctx.etcd.wait_healthy(timeout)
        for host in sorted(self.hosts_down):
            self.ctx.hosts[host].start()
        self.hosts_down.clear()
        while time.monotonic() < deadline:
            try:
                self._admin("reset_faults")
                for node in NODES:
                    self._admin("node_up", node)
                self.nodes_down.clear()
                self.ecsm_faulty = False
                return problems
            except EcsmActorsError as e:
                problems = [f"could not heal ECSM faults yet: {e}"]
                time.sleep(0.5)
        return problems


def burst_keys(keys: list[str]) -> list[str]:
    """The keys a write burst writes to: every one but the canaries (their writes time
    recoveries; queued behind a burst's, they would time the drill's own backlog)."""
    return sorted(k for k in keys if not k.split("/", 1)[-1].startswith(CANARY_PREFIX))


def reality(admin: Any) -> tuple[list[EcsmServiceView], list[dict[str, Any]]]:
    """ECSM services and containers as the simulator holds them (its admin API is never
    subject to injected faults)."""
    state = admin.state()
    rows = [EcsmServiceView.from_wire(s) for s in state.get("services") or []]
    return rows, list(state.get("containers") or [])


def _while_current(key: str, ecsm_service: str, inner: Any) -> Any:
    """``inner``, unless the owner's current revision moved away from ``ecsm_service`` or
    the owner was deleted (then the probe is moot)."""

    def check(obs: Observation) -> bool | None:
        if obs.services is not None:
            obj = obs.services.get(key)
            if obj is None:
                return None
            namespace, name = key.split("/", 1)
            if ecsm_name(namespace, name, revision_of(obj)) != ecsm_service:
                return None
        return inner(obs)

    return check
