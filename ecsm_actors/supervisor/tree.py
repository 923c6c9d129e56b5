"""The supervision tree: every child's machine, process and probe, and the operator's verbs.

Runs in the supervisor process, driven by the event loop (:mod:`.loop`), single-threaded:
the loop calls ``on_exit`` / ``on_liveness`` / ``on_probe`` / ``tick`` and the control
verbs; this module performs the actions the machines decide (spawn, signal).

Ordering: a child starts for the first time once every child it ``depends_on`` has settled
(is ready, or failed once, or is held by the operator) — so the start order is
simulator → registry → controllers, without waiting forever on a broken dependency.
Afterwards children are independent (one-for-one): a controller death never touches the
registry, and controllers keep running while the registry restarts. Shutdown stops a
child only once every child depending on it has stopped (controllers, then registry,
then simulator), each with TERM then KILL after its grace.

With a zygote in the table (readiness ``zygote``), every child whose argv the zygote can
run is forked from it while it is ready; otherwise (zygote down, restarting, refusing, or
silent for :data:`~.zygote.link.FORK_TIMEOUT` — then it is killed and restarted) the child
starts as a fresh interpreter, as without a zygote.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from ecsm_actors.config import Config, child_environment
from ecsm_actors.errors import BadRequest, NotFound
from ecsm_actors.lifecycle import PARENT_PID_ENV
from ecsm_actors.protocol import Liveness
from ecsm_actors.runtime.events import NO_RECORDER, EventRecorder, NoRecorder, object_ref
from ecsm_actors.supervisor import process, procfs
from ecsm_actors.supervisor.machine import ALIVE, Action, ChildMachine, ChildState, Spawn
from ecsm_actors.supervisor.probes import Prober, ProbeResult
from ecsm_actors.supervisor.rundir import HeldChildren
from ecsm_actors.supervisor.spec import ChildSpec, ReadinessKind
from ecsm_actors.supervisor.zygote import template
from ecsm_actors.supervisor.zygote.link import ZygoteLink, ZygoteUnavailable

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
_SETTLED = frozenset({ChildState.RUNNING, ChildState.BACKOFF, ChildState.HOLD_DOWN,
                      ChildState.EXITED, ChildState.STOPPED})
_DROPPED_ENV = ("ECSM_ACTORS_CONF", "ECSM_ACTORS_REGISTRY")


@dataclass
class Child:
    spec: ChildSpec
    machine: ChildMachine
    process: process.ChildProcess | None = None
    pin_args: tuple[str, ...] = ()
    cpu: float | None = None
    rss: int | None = None
    first_start_pending: bool = True


class Tree:
    """All children of one supervisor."""

    def __init__(self, cfg: Config, specs: list[ChildSpec], *, held: HeldChildren,
                 prober: Prober, clock: Clock = time.monotonic,
                 on_ready: Callable[[str], None] | None = None,
                 on_process: Callable[[process.ChildProcess | None, int], None] | None = None,
                 zygote: ZygoteLink | None = None) -> None:
        self.cfg = cfg
        #: The link to the zygote child (named ``zygote.name``), when the table has one.
        self.zygote = zygote
        self.children = {s.name: Child(s, ChildMachine(s, clock=clock)) for s in specs}
        self.order = [s.name for s in specs]
        self._held = held
        self._prober = prober
        self._clock = clock
        self._on_ready = on_ready or (lambda name: None)
        #: Tells the loop a pidfd appeared (process) or went away (None, fd).
        self._on_process = on_process or (lambda proc, fd: None)
        self.exports: dict[str, str] = {}
        #: The zygote forked from this process (:meth:`prefork_zygote`), until its start.
        self._preforked: int | None = None
        self.shutting_down = False
        #: Events about the children (``ecsm-cli get events``): kills and unexpected
        #: exits with their cause. The loop sets a registry recorder; none by default.
        self.recorder: EventRecorder | NoRecorder = NO_RECORDER
        self.started_at = clock()
        for name in held.load() & set(self.children):
            child = self.children[name]
            child.machine.held = True
            child.machine.reason = "stopped by the operator"
            child.first_start_pending = False

    # -- environment ---------------------------------------------------------------

    def environment(self, spec: ChildSpec) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
        env.update(child_environment(self.cfg))
        env["ECSM_ACTORS_RUN_DIR"] = str(self.cfg.run_dir)
        env[PARENT_PID_ENV] = str(os.getpid())
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(self.exports)
        env.update(dict(spec.env))
        return env

    def prefork_zygote(self) -> None:
        """Fork the zygote's first incarnation from this process, which then shares its
        code with the zygote and every child (see :mod:`.zygote.template`); its first
        start takes it. Call before any thread or ZeroMQ context exists; does nothing
        when one does, when the zygote is held, or is not the built-in one."""
        zygote = self.zygote
        holder = self.children.get(zygote.name) if zygote is not None else None
        if zygote is None or holder is None or holder.machine.held:
            return
        modules = template.modules_of(holder.spec.argv)
        if modules is None or not template.single_threaded():
            return
        fd, extra = zygote.open()
        try:
            self._preforked = template.prefork(
                modules, fd=fd, env={**self.environment(holder.spec), **extra},
                log=process.log_path(self.cfg.log_dir, holder.spec.name))
        except Exception as e:  # noqa: BLE001 - the children's code, imported here: any
            # failure of it leaves the zygote to a fresh interpreter (which reports it)
            logger.warning("%s: not forked from the supervisor (%s): it starts as a fresh "
                           "interpreter", holder.spec.name, e)
            zygote.lost()

    # -- performing actions ----------------------------------------------------------

    def perform(self, child: Child, actions: list[Action]) -> None:
        pending = list(actions)
        while pending:
            action = pending.pop(0)
            if isinstance(action, Spawn):
                if self.shutting_down:
                    child.machine.abandon()
                    continue
                pending.extend(self._spawn(child))
            else:
                proc = child.process
                if proc is not None:
                    logger.info("%s: sending %s to pid %d%s", child.spec.name,
                                _signame(action.signum), proc.pid,
                                f" ({action.reason})" if action.reason else "")
                    if action.signum == signal.SIGKILL and action.reason:
                        self.recorder.warning(object_ref(CHILD_KIND, "", child.spec.name),
                                              "Killing", f"{_signame(action.signum)} to pid "
                                              f"{proc.pid}: {action.reason}")
                    proc.send_signal(action.signum)

    def _spawn(self, child: Child) -> list[Action]:
        spec = child.spec
        argv = (*spec.argv, *child.pin_args)
        try:
            proc = self._fork(child, argv) or self._start_interpreter(child, argv)
        except OSError as e:
            logger.error("%s: cannot start %s: %s", spec.name, argv[0], e)
            if self.zygote is not None and spec.name == self.zygote.name:
                self.zygote.started(None)
            return child.machine.spawn_failed(f"cannot start: {e}")
        child.process = proc
        child.cpu = None
        child.rss = None
        child.machine.spawned(proc.pid)
        self._on_process(proc, proc.pidfd)
        logger.info("%s: started pid %d%s", spec.name, proc.pid, "" if not proc.forked else
                    " (forked from the supervisor)" if self._is_zygote(spec) else
                    " (forked by the zygote)")
        if spec.readiness.kind == ReadinessKind.SPAWNED:
            self._became_ready(child)
        elif self.zygote is not None and spec.name == self.zygote.name:
            self.zygote.started(proc.pid)
            self._prober.start(spec.name, proc.pid, spec.readiness,
                               check=self.zygote.ready_check())
        elif self._prober.needs_thread(spec.readiness):
            self._prober.start(spec.name, proc.pid, spec.readiness)
        return []

    def _fork(self, child: Child, argv: tuple[str, ...]) -> process.ChildProcess | None:
        """``child`` forked by the zygote; None when it cannot be (see the module doc)."""
        zygote = self.zygote
        if zygote is None or child.spec.name == zygote.name or not zygote.can_fork(argv):
            return None
        try:
            return process.fork(zygote, child.spec.name, argv, self.environment(child.spec),
                                log_dir=self.cfg.log_dir, pid_dir=self.cfg.pid_dir,
                                log_limit=int(self.cfg.supervisor.log_max_bytes))
        except ZygoteUnavailable as e:
            logger.warning("%s: not forked (%s): starting a fresh interpreter",
                           child.spec.name, e)
            holder = self.children.get(zygote.name)
            if not zygote.ready and holder is not None:
                self.perform(holder, holder.machine.kill(f"zygote unusable: {e}"))
            return None

    def _start_interpreter(self, child: Child, argv: tuple[str, ...]) -> process.ChildProcess:
        spec = child.spec
        env = self.environment(spec)
        pass_fds: tuple[int, ...] = ()
        if self.zygote is not None and spec.name == self.zygote.name:
            if self._preforked is not None:
                pid, self._preforked = self._preforked, None
                return process.adopt(spec.name, pid, pid_dir=self.cfg.pid_dir)
            fd, extra = self.zygote.open()
            env.update(extra)
            pass_fds = (fd,)
        return process.spawn(spec.name, argv, env, log_dir=self.cfg.log_dir,
                             pid_dir=self.cfg.pid_dir, pass_fds=pass_fds,
                             log_limit=int(self.cfg.supervisor.log_max_bytes))

    def _is_zygote(self, spec: ChildSpec) -> bool:
        return self.zygote is not None and spec.name == self.zygote.name

    def _became_ready(self, child: Child) -> None:
        if child.machine.ready():
            started = child.machine.started_at or self._clock()
            logger.info("%s: ready (pid %s, %.0f ms after start)", child.spec.name,
                        child.machine.pid, (self._clock() - started) * 1000)
            self._on_ready(child.spec.name)

    # -- events from the loop ----------------------------------------------------------

    def on_exit(self, child: Child) -> None:
        """The pidfd of ``child``'s process became readable: reap and decide."""
        proc = child.process
        if proc is None:
            return
        fd = proc.pidfd
        status = proc.reap()
        self._on_process(None, fd)
        child.process = None
        self._prober.cancel(child.spec.name)
        if self.zygote is not None and child.spec.name == self.zygote.name:
            self.zygote.lost()
            self.sweep_strays()
        was = child.machine.state
        level = logging.INFO if was == ChildState.STOPPING else logging.WARNING
        logger.log(level, "%s: pid %d exited with %s (was %s)", child.spec.name, proc.pid,
                   status, was)
        self.perform(child, child.machine.exited(status))
        self._log_state(child)
        if was != ChildState.STOPPING and not self.shutting_down:
            m = child.machine
            self.recorder.warning(object_ref(CHILD_KIND, "", child.spec.name),
                                  "HoldDown" if m.state == ChildState.HOLD_DOWN
                                  else "Restarting" if m.state != ChildState.EXITED
                                  else "Exited",
                                  f"pid {proc.pid} exited with {status}"
                                  f"{f': {m.reason}' if m.reason else ''}; now {m.state}")

    def on_liveness(self, report: Liveness) -> None:
        child = self.children.get(report.name)
        if child is None or child.machine.pid != report.pid:
            return  # unknown, or a previous incarnation's report still in the socket
        child.machine.observe(report)
        readiness = child.spec.readiness
        if (child.machine.state == ChildState.STARTING
                and readiness.kind == ReadinessKind.LIVENESS
                and (not readiness.stat or report.stats.get(readiness.stat))):
            self._became_ready(child)

    def on_probe(self, result: ProbeResult) -> None:
        child = self.children.get(result.name)
        if child is None or child.machine.pid != result.pid:
            return
        self.exports.update(result.exports)
        child.pin_args = result.pin_args or child.pin_args
        if (self.zygote is not None and result.name == self.zygote.name
                and child.process is not None):
            self.zygote.ready = True
        self._became_ready(child)

    def tick(self) -> None:
        """Run what is due: timers and watchdog verdicts, first starts, shutdown steps."""
        for name in self.order:
            child = self.children[name]
            before = child.machine.state
            self.perform(child, child.machine.tick())
            if child.machine.state != before:
                self._log_state(child)
        if self.shutting_down:
            self._advance_shutdown()
        else:
            self._start_pending()

    def next_deadline(self) -> float | None:
        deadlines = [d for c in self.children.values()
                     if (d := c.machine.next_deadline()) is not None]
        return min(deadlines) if deadlines else None

    def sweep_strays(self) -> None:
        """With a zygote the supervisor adopts orphans: reap or kill those that are not ours."""
        if self.zygote is not None:
            process.sweep_strays({c.process.pid for c in self.children.values()
                                  if c.process is not None})

    def sample_memory(self) -> None:
        """Feed each live child's RSS (and CPU time, for stats) to its watchdog, and keep
        its log file bounded while it runs (and sweep adopted strays)."""
        self.sweep_strays()
        for name, child in self.children.items():
            pid = child.machine.pid
            if pid is None or child.process is None:
                continue
            process.rotate_running_log(process.log_path(self.cfg.log_dir, name),
                                       int(self.cfg.supervisor.log_max_bytes))
            usage = procfs.usage(pid)  # not reaped yet: the pid is still this child's
            if usage is None:
                continue
            child.cpu = usage.cpu
            child.rss = usage.rss
            # File-backed pages (the LMDB map, shared libraries) are reclaimable by the
            # kernel: the limit applies to the anonymous part of the RSS.
            child.machine.watchdog.observe_rss(usage.rss - usage.shared)

    def _start_pending(self) -> None:
        for name in self.order:
            child = self.children[name]
            if not child.first_start_pending:
                continue
            if all(self._settled(dep) for dep in child.spec.depends_on):
                child.first_start_pending = False
                self.perform(child, child.machine.start())

    def _settled(self, name: str) -> bool:
        dep = self.children.get(name)
        return dep is None or (not dep.first_start_pending and dep.machine.state in _SETTLED)

    # -- shutdown ------------------------------------------------------------------

    def begin_shutdown(self) -> None:
        if not self.shutting_down:
            logger.info("stopping every child (dependents first)")
            self.shutting_down = True
        self._advance_shutdown()

    def _advance_shutdown(self) -> None:
        for name in reversed(self.order):
            child = self.children[name]
            child.first_start_pending = False
            state = child.machine.state
            if state in (ChildState.STOPPED, ChildState.EXITED, ChildState.STOPPING):
                continue
            dependents_alive = any(
                name in other.spec.depends_on and other.machine.state in ALIVE
                for other in self.children.values())
            if state in (ChildState.BACKOFF, ChildState.HOLD_DOWN) or not dependents_alive:
                self.perform(child, child.machine.stop())

    def all_down(self) -> bool:
        return all(c.process is None and c.machine.state not in ALIVE
                   for c in self.children.values())

    def kill_everything(self) -> None:
        """Second interrupt: SIGKILL every live child now."""
        for child in self.children.values():
            if child.process is not None:
                child.process.send_signal(signal.SIGKILL)

    # -- operator verbs --------------------------------------------------------------

    def child(self, name: str) -> Child:
        try:
            return self.children[name]
        except KeyError:
            names = ", ".join(self.order)
            raise NotFound(f"no child named {name!r} (children: {names})") from None

    def kill(self, name: str, signum: int) -> None:
        child = self.child(name)
        if child.process is None:
            raise BadRequest(f"{name} is not running ({child.machine.state})")
        logger.warning("%s: operator sends %s to pid %d", name, _signame(signum),
                       child.process.pid)
        child.process.send_signal(signum)

    def restart(self, name: str) -> None:
        child = self.child(name)
        self._refuse_while_shutting_down()
        child.first_start_pending = False
        logger.info("%s: restart requested by the operator", name)
        self.perform(child, child.machine.restart())
        self._persist_held()

    def stop(self, name: str) -> None:
        child = self.child(name)
        child.first_start_pending = False
        logger.info("%s: stop requested by the operator", name)
        self.perform(child, child.machine.stop(hold=True))
        self._persist_held()

    def start(self, name: str) -> None:
        child = self.child(name)
        self._refuse_while_shutting_down()
        child.first_start_pending = False
        logger.info("%s: start requested by the operator", name)
        self.perform(child, child.machine.start())
        self._persist_held()

    def _refuse_while_shutting_down(self) -> None:
        if self.shutting_down:
            raise BadRequest("the supervisor is shutting down")

    def _persist_held(self) -> None:
        self._held.save({n for n, c in self.children.items() if c.machine.held})

    def _log_state(self, child: Child) -> None:
        m = child.machine
        if m.state in (ChildState.BACKOFF, ChildState.HOLD_DOWN, ChildState.EXITED):
            retry = m.timer_remaining()
            logger.warning("%s: %s%s: %s", child.spec.name, m.state,
                           f" (retry in {retry:.2f}s)" if retry is not None else "", m.reason)


#: The ``involvedObject.kind`` of a supervisor child's events.
CHILD_KIND = "Child"


def _signame(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)
