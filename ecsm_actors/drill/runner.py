"""``ecsm-operator drill``: run a whole system through a seeded fault campaign and judge it.

Runs in the drill process (the ``ecsm-operator`` CLI). Phases:

1. start a complete instance in a temporary run dir (:class:`~.system.DrillSystem`);
2. apply the generated workload and wait (bounded) for it to converge;
3. play the timeline for ``duration``: desired-state changes through the writer, faults
   through the injector, recoveries timed by the monitor, a progress line;
4. stop injecting: heal every open fault, zero the loads, flush the writer;
5. wait (bounded) for quiescence, take a final snapshot, check every invariant;
6. stop the instance and check that no process of it survived.

The verdict is :attr:`Report.ok`: every invariant holds. The run dir is removed after a
passing drill and kept (its path printed) after a failing one, for its logs.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from ecsm_actors.config import load_config
from ecsm_actors.drill import invariants
from ecsm_actors.drill.capacity import take_capacity
from ecsm_actors.drill.changes import apply_change
from ecsm_actors.drill.context import CanaryPool, DrillContext
from ecsm_actors.drill.etcd import DrillEtcd
from ecsm_actors.drill.faults import FaultInjector
from ecsm_actors.drill.invariants import CheckResult
from ecsm_actors.drill.ledger import Ledger
from ecsm_actors.drill.monitor import Monitor
from ecsm_actors.drill.recovery import RecoveryTracker
from ecsm_actors.drill.report import Report
from ecsm_actors.drill.schedule import CHANGE_KINDS, Schedule, make_schedule
from ecsm_actors.drill.snapshot import Snapshot, take
from ecsm_actors.drill.system import NO_PRESSURE_NODE_MEMORY, DrillSystem
from ecsm_actors.drill.workload import demand_mb, pressure_node_memory
from ecsm_actors.drill.writer import DesiredStateWriter, Write
from ecsm_actors.errors import EcsmActorsError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DrillOptions:
    seed: int
    duration: float = 300.0
    services: int = 200
    run_dir: str | None = None
    keep: bool = False
    #: Bounds of the two waits for convergence; None = sized from ``services``.
    settle_timeout: float | None = None
    quiesce_timeout: float | None = None
    #: Capacity pressure: memory limits and priority classes, nodes too small for all
    #: (``node_memory`` bytes each; None = sized from the workload), and the invariant
    #: ``capacity-by-priority``.
    pressure: bool = False
    node_memory: int | None = None
    #: "etcd": two hosts on a 3-member etcd cluster (see :func:`_etcd_hosts`), and the
    #: faults of that topology in the mix.
    store: str = "lmdb"


#: Election settings of the drilled hosts with ``--store etcd``: short, so a killed
#: leader's lease expires within the drill's timings.
DRILL_ELECTION = {"ECSM_ACTORS_CONTROLLER_LEASE_DURATION": "2",
                  "ECSM_ACTORS_CONTROLLER_RENEW_DEADLINE": "1.5",
                  "ECSM_ACTORS_CONTROLLER_RETRY_PERIOD": "0.5"}
DRILL_PREFIX = "/drill/"


def _etcd_hosts(run_dir: Path, etcd: DrillEtcd, node_memory: int) -> dict[str, DrillSystem]:
    """Host ``a`` in ``run_dir`` (with the ECSM simulator, which the drill reads and
    faults) and host ``b`` in ``run_dir/b`` reconciling against ``a``'s simulator, both on
    the store under :data:`DRILL_PREFIX`."""
    endpoints = ", ".join(f'"{url}"' for url in etcd.endpoints)
    store = (f'[store]\nbackend = "etcd"\netcd_endpoints = [{endpoints}]\n'
             f'etcd_prefix = "{DRILL_PREFIX}"\netcd_dial_timeout = 0.5\n'
             f'etcd_request_timeout = 2.0\n')
    a = DrillSystem(run_dir, node_memory=node_memory, extra_conf=store,
                    extra_env=DRILL_ELECTION)
    b = DrillSystem(run_dir / "b", node_memory=node_memory, simulate=False,
                    extra_conf=store + f'\n[ecsm]\nhost = "127.0.0.1"\nport = {a.port}\n',
                    extra_env=DRILL_ELECTION)
    return {"a": a, "b": b}


class Progress:
    """One rewritten line on a TTY; a plain line every ``every`` seconds otherwise."""

    def __init__(self, out: TextIO, tty: bool, every: float = 5.0) -> None:
        self.out, self.tty, self.every = out, tty, every
        self._last = 0.0

    def __call__(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            if force or now - self._last >= 0.2:
                self._last = now
                self.out.write("\r\033[K" + text)
                self.out.flush()
        elif force or now - self._last >= self.every:
            self._last = now
            self.out.write(text + "\n")
            self.out.flush()

    def line(self, text: str) -> None:
        if self.tty:
            self.out.write("\r\033[K")
        self.out.write(text + "\n")
        self.out.flush()


def run_drill(opts: DrillOptions, out: TextIO, *, tty: bool = False) -> Report:
    progress = Progress(out, tty)
    schedule = make_schedule(opts.seed, opts.duration, opts.services, pressure=opts.pressure,
                             store=opts.store)
    node_memory = NO_PRESSURE_NODE_MEMORY
    if opts.pressure:
        node_memory = opts.node_memory or pressure_node_memory(schedule.workload)
    run_dir = Path(opts.run_dir) if opts.run_dir else Path(
        tempfile.mkdtemp(prefix="ea-drill-", dir="/tmp"))
    started = datetime.now(UTC).isoformat(timespec="seconds")
    progress.line(f"drill: seed {opts.seed}, {opts.services} services, {opts.duration:g}s, "
                  f"{len(schedule.faults())} faults and {len(schedule.changes())} changes "
                  f"scheduled; run dir {run_dir}")
    if opts.pressure:
        progress.line(f"drill: capacity pressure: {node_memory >> 20} MiB per node for "
                      f"{demand_mb(schedule.workload)} MiB of instances")
    begin = time.monotonic()
    etcd: DrillEtcd | None = None
    if opts.store == "etcd":
        etcd = DrillEtcd(run_dir / "etcd")
        hosts = _etcd_hosts(run_dir, etcd, node_memory)
        progress.line(f"drill: two hosts ({run_dir}, {hosts['b'].run_dir}) on a 3-member "
                      f"etcd cluster ({', '.join(etcd.endpoints)})")
    else:
        hosts = {"a": DrillSystem(run_dir, node_memory=node_memory)}
    state = _State()
    try:
        _drive(hosts, etcd, schedule, opts, progress, state)
    except (EcsmActorsError, OSError) as e:
        state.aborted = str(e)
        progress.line(f"drill: aborted: {e}")
    finally:
        state.shutdown()
        progress.line("drill: stopping the system")
        survivors: dict[int, float] = {}
        for host in reversed(list(hosts.values())):
            survivors.update(host.stop())
        state.results.append(invariants.check_no_leftover_processes(
            [r for host in hosts.values() for r in host.records.values()], survivors))
        if survivors:
            for host in hosts.values():
                host.kill_everything()
        if etcd is not None:
            etcd.stop()
    report = Report(
        seed=opts.seed, duration=opts.duration, services=opts.services, run_dir=str(run_dir),
        started_at=started, faults=tuple(state.tracker.records()), changes=state.changes,
        writes_acknowledged=state.ledger.acknowledged,
        writes_in_doubt=sum(1 for e in state.ledger.entries() if e.pending is not None),
        writes_abandoned=len(state.writer.abandoned) if state.writer else 0,
        initial_convergence=state.initial, quiesced=state.quiesced,
        time_to_quiescence=state.quiescence, quiescence_blocker=state.blocker,
        invariants=tuple(state.results), notes=tuple(state.notes),
        elapsed=time.monotonic() - begin, aborted=state.aborted)
    if report.ok and not opts.keep and not opts.run_dir:
        shutil.rmtree(run_dir, ignore_errors=True)
    return report


class _State:
    """What the phases accumulate for the report (and what must be shut down)."""

    def __init__(self) -> None:
        self.ledger = Ledger()
        self.tracker = RecoveryTracker()
        self.writer: DesiredStateWriter | None = None
        self.monitor: Monitor | None = None
        self.changes: Counter[str] = Counter()
        self.results: list[CheckResult] = []
        self.notes: list[str] = []
        self.initial: float | None = None
        self.quiesced = False
        self.quiescence: float | None = None
        self.blocker = ""
        self.aborted = ""

    def shutdown(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
        if self.writer is not None:
            self.writer.stop()
        self.tracker.expire(time.monotonic())


def _drive(hosts: dict[str, DrillSystem], etcd: DrillEtcd | None, schedule: Schedule,
           opts: DrillOptions, progress: Progress, state: _State) -> None:
    from ecsm_actors.ecsm.clientset import Clientset
    from ecsm_actors.ecsm.simulator.admin import SimulatorAdmin
    from ecsm_actors.registry.client import RegistryClient

    system = hosts["a"]
    if etcd is not None:
        progress.line("drill: starting the etcd cluster")
        etcd.start()
    progress.line("drill: starting supervisor, registry, controllers and simulator")
    for host in hosts.values():
        host.start()
    cfg = load_config(system.conf_path, environ={})   # now with the simulator's address

    def registry() -> RegistryClient:
        return RegistryClient(cfg.registry_local_endpoint, timeout=2.0, deadline=4.0)

    def ecsm() -> Clientset:
        return Clientset.from_url(cfg.ecsm_url, connect_timeout=2.0, read_timeout=10.0)

    state.writer = DesiredStateWriter(registry(), state.ledger).start()
    workload = schedule.workload
    ctx = DrillContext(system=system, registry=registry(), ecsm=ecsm(),
                       admin=SimulatorAdmin(cfg.ecsm_url, timeout=3.0), writer=state.writer,
                       ledger=state.ledger, tracker=state.tracker, workload=workload,
                       canaries=CanaryPool([c.name for c in workload.canaries]),
                       pressure=opts.pressure, hosts=hosts, etcd=etcd, prefix=DRILL_PREFIX)
    state.monitor = Monitor(registry=registry(), admin=SimulatorAdmin(cfg.ecsm_url, timeout=3.0),
                            ps=system.ps, tracker=state.tracker, loads=ctx.loads).start()
    ctx.monitor = state.monitor

    # -- workload ----------------------------------------------------------------------
    for manifest in workload.manifests():
        meta = manifest["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        state.writer.submit(Write(op="create", kind=manifest["kind"], key=key,
                                  manifest=manifest, label="create",
                                  hpa_owned=ctx.hpa_owned(manifest["kind"], key)))
    if not state.writer.wait_idle(60.0):
        state.notes.append("the workload was not fully written within 60s")
    settle = opts.settle_timeout or max(45.0, opts.services * 0.4)
    state.initial, reason, _ = _wait_quiescent(ctx, settle, progress, "converging")
    if state.initial is None:
        state.notes.append(f"the workload did not converge within {settle:g}s before the "
                           f"timeline started ({reason})")
    progress.line(f"drill: workload of {len(workload.services)} services applied, converged "
                  f"in {_fmt(state.initial)}")

    # -- timeline ----------------------------------------------------------------------
    injector = FaultInjector(ctx)
    ctx.t0 = time.monotonic()
    faults = 0
    for action in schedule.actions:
        _wait_until(ctx.t0 + action.at,
                    functools.partial(_tick, ctx, schedule, progress, faults))
        if action.kind in CHANGE_KINDS:
            apply_change(ctx, action)
            state.changes[str(action.kind)] += 1
        else:
            injector.inject(action)
            faults = injector.injected
    _wait_until(ctx.t0 + schedule.duration, lambda: _tick(ctx, schedule, progress, faults))
    progress.line(f"drill: timeline done: {injector.injected} faults injected, "
                  f"{len(injector.skipped)} skipped, {sum(state.changes.values())} changes")
    state.notes += [f"skipped {s}" for s in injector.skipped]

    # -- stop injecting, quiesce, judge -----------------------------------------------
    state.notes += injector.heal_all()
    ctx.loads.zero_all()
    if not state.writer.wait_idle(60.0):
        state.notes.append(f"{state.writer.pending()} writes still pending after 60s")
    state.notes += [f"write abandoned: {w}" for w in state.writer.abandoned]
    quiesce = opts.quiesce_timeout or max(60.0, opts.services * 0.5)
    state.quiescence, state.blocker, snap = _wait_quiescent(ctx, quiesce, progress, "quiescing")
    state.quiesced = state.quiescence is not None
    progress.line("drill: " + (f"quiescent after {_fmt(state.quiescence)}" if state.quiesced
                               else f"NOT quiescent after {quiesce:g}s: {state.blocker}"))
    if snap is None:
        snap = _snapshot(ctx, attempts=10)
    if snap is None:
        state.notes.append("no final snapshot could be taken")
        snap = Snapshot()
    state.results.append(invariants.check_acknowledged_writes(
        state.ledger.entries(), snap, workload.hpa_target_keys))
    state.results += invariants.convergence_checks(snap)
    state.tracker.expire(time.monotonic())


def _tick(ctx: DrillContext, schedule: Schedule, progress: Progress, faults: int) -> None:
    status = ctx.monitor.status if ctx.monitor is not None else None
    lag = "?" if status is None or status.lag is None else f"{status.lag}/{status.services}"
    progress(f"[{ctx.offset():6.1f}s/{schedule.duration:g}s] faults {faults} lag {lag} "
             f"probes {ctx.tracker.active()} writes pending {ctx.writer.pending()}")


def _wait_until(deadline: float, tick: Callable[[], None]) -> None:
    while True:
        now = time.monotonic()
        if now >= deadline:
            return
        tick()
        time.sleep(min(0.05, deadline - now))


def _snapshot(ctx: DrillContext, attempts: int = 1) -> Snapshot | None:
    for i in range(attempts):
        try:
            snap = take(ctx.registry, ctx.ecsm.services, time.monotonic())
            if ctx.pressure:
                snap = dataclasses.replace(snap, capacity=take_capacity(ctx.ecsm, snap.ecsm))
            return snap
        except EcsmActorsError as e:
            logger.info("snapshot failed: %s", e)
            if i + 1 < attempts:
                time.sleep(0.5)
    return None


def _wait_quiescent(ctx: DrillContext, timeout: float, progress: Progress,
                    what: str) -> tuple[float | None, str, Snapshot | None]:
    """Seconds until two consecutive snapshots a second apart are quiescent, with the
    last of them (the one to judge: taking another could catch an HPA mid-scale); None,
    the last reason and the last snapshot when ``timeout`` passes first."""
    start = time.monotonic()
    reason, streak_since = "no snapshot yet", None
    last: Snapshot | None = None
    while time.monotonic() - start < timeout:
        snap = _snapshot(ctx)
        if snap is None:
            reason, streak_since = "registry or ECSM unreachable", None
        else:
            last = snap
            ok, why = invariants.quiescent(snap)
            if ok:
                reason = "converged; confirming"
                if streak_since is None:
                    streak_since = time.monotonic()
                elif time.monotonic() - streak_since >= 1.0:
                    return streak_since - start, "", snap
            else:
                reason, streak_since = why, None
        progress(f"drill: {what} for {time.monotonic() - start:5.1f}s "
                 f"(lag {invariants.lag(snap) if snap else '?'}): {reason[:100]}")
        time.sleep(0.5)
    return None, reason, last


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}s"
