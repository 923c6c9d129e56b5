"""The supervisor's event loop: one ``zmq.Poller`` over every source of work.

Runs in the supervisor process, main thread. Sources:

* the control socket (REP, ``cfg.control_endpoint``): every message received is
  answered exactly once (:func:`.control.handle_message`), or the REP socket would take
  no further request;
* the liveness socket (PULL, ``cfg.heartbeat_endpoint``) children PUSH reports to; a
  report that does not make sense is dropped (:mod:`.reports`), at most
  :data:`REPORTS_PER_TURN` are read per turn so a flood cannot starve the control socket,
* one pidfd per live child (readable once it died: death is noticed in about a
  millisecond, never by polling ``psutil.wait_procs``),
* the probe pipe (readiness probe results) and the signal pipe (``signal.set_wakeup_fd``).

The poll timeout is the time to the next timer (restart backoff, hold-down, stop grace,
readiness timeout, heartbeat deadline, memory sample); with nothing due the loop sleeps in
the kernel — idle means idle. SIGTERM/SIGINT (or the ``shutdown`` op) stop every child in
reverse dependency order, then the loop returns; a second signal SIGKILLs them all.

Both sockets are created in the run dir (0700) with mode 0600 (bound under a 0177 umask,
then chmod, so they are never reachable by others even for an instant); a message larger
than :data:`MAX_MESSAGE` drops its connection instead of being buffered.

This loop is the supervisor's process boundary: its body is wrapped in the one catch-all
of the process, so a bug in handling one event is logged and the children stay supervised.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import zmq

from ecsm_actors.config import Config
from ecsm_actors.errors import BadRequest, ConfigError, ControlError
from ecsm_actors.failures import FailureLog
from ecsm_actors.runtime.events import EventRecorder
from ecsm_actors.supervisor import control, reports
from ecsm_actors.supervisor.event_sender import sender_factory
from ecsm_actors.supervisor.machine import ChildState
from ecsm_actors.supervisor.probes import Prober
from ecsm_actors.supervisor.process import ChildProcess
from ecsm_actors.supervisor.rundir import HeldChildren
from ecsm_actors.supervisor.spec import ChildSpec, ReadinessKind
from ecsm_actors.supervisor.tree import Child, Tree
from ecsm_actors.supervisor.views import child_row, child_stats
from ecsm_actors.supervisor.zygote.link import ZygoteLink, become_subreaper

logger = logging.getLogger(__name__)

#: The loop gives up (exit 70, so systemd restarts it) after this many failing iterations
#: in a row: a persistent bug must not turn into a busy loop.
MAX_CONSECUTIVE_FAILURES = 100
#: Largest message either socket takes (zmq's MAXMSGSIZE): a larger one drops its
#: connection, unanswered. Below it, an oversized request still gets its BadRequest
#: (the decoders' limit is 1 MiB).
MAX_MESSAGE = 4 << 20
#: Liveness reports read per turn of the loop, at most.
REPORTS_PER_TURN = 256


class Supervisor:
    """Owns the sockets, the poller and the tree; answers the control socket."""

    def __init__(self, cfg: Config, specs: list[ChildSpec], *,
                 on_registry_ready: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self._clock = clock
        self._on_registry_ready = on_registry_ready
        self._prober = Prober()
        zygotes = [s.name for s in specs if s.readiness.kind == ReadinessKind.ZYGOTE]
        if len(zygotes) > 1:
            raise ConfigError(f"child table: more than one zygote ({', '.join(zygotes)})")
        self.tree = Tree(cfg, specs, held=HeldChildren(cfg), prober=self._prober, clock=clock,
                         on_ready=self._child_ready, on_process=self._track_process,
                         zygote=ZygoteLink(zygotes[0]) if zygotes else None)
        # Its flusher thread starts with the first event (a child's kill or exit); it
        # sends through a raw socket, not the registry client (see .event_sender).
        self.tree.recorder = EventRecorder("supervisor", sender_factory(cfg))
        self._poller = zmq.Poller()
        self._pidfds: dict[int, Child] = {}
        self._signals: list[int] = []
        self._started = clock()
        self.failures = FailureLog(logger)
        #: ``supervisor.metrics_endpoint``'s server (:mod:`.metrics_http`), when set.
        self.metrics_server: Any = None

    # -- loop ------------------------------------------------------------------------

    def run(self) -> int:
        if self.tree.zygote is not None and not become_subreaper():
            raise ConfigError("a zygote needs a supervisor that adopts orphans, which this "
                              "kernel refuses: set supervisor.zygote = false")
        self.tree.prefork_zygote()  # before any thread or ZeroMQ context (see the method)
        context: zmq.Context[Any] = zmq.Context()
        control_sock = context.socket(zmq.REP)
        beats = context.socket(zmq.PULL)
        sig_read, sig_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_handlers = self._install_signals(sig_write)
        try:
            for sock in (control_sock, beats):
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
            _bind(control_sock, self.cfg.control_endpoint, private=True)
            _bind(beats, self.cfg.heartbeat_endpoint, private=True)
            for source in (sig_read, self._prober.fd, control_sock, beats):
                self._poller.register(source, zmq.POLLIN)
            if self.cfg.supervisor.metrics_endpoint:
                from ecsm_actors.supervisor.metrics_http import MetricsServer  # only then
                self.metrics_server = MetricsServer(
                    self.cfg.supervisor.metrics_endpoint,
                    allow_remote=self.cfg.supervisor.metrics_allow_remote).start()
                self._poller.register(self.metrics_server.fd, zmq.POLLIN)
            logger.info("supervisor pid %d: %d children, control %s", os.getpid(),
                        len(self.tree.children), self.cfg.control_endpoint)
            return self._loop(control_sock, beats, sig_read)
        finally:
            signal.set_wakeup_fd(-1)
            for signum, handler in old_handlers.items():
                signal.signal(signum, handler)
            os.close(sig_read)
            os.close(sig_write)
            if self.metrics_server is not None:
                self.metrics_server.close()
            control_sock.close(linger=0)
            beats.close(linger=0)
            context.term()
            self._prober.close()
            self.tree.recorder.close()
            if self.tree.zygote is not None:
                self.tree.zygote.lost()
            for endpoint in (self.cfg.control_endpoint, self.cfg.heartbeat_endpoint):
                if endpoint.startswith("ipc://"):
                    Path(endpoint[len("ipc://"):]).unlink(missing_ok=True)
            logger.info("supervisor stopped")

    def _loop(self, control_sock: zmq.Socket[Any], beats: zmq.Socket[Any],
              sig_read: int) -> int:
        memory_interval = self.cfg.supervisor.memory_interval or None
        next_memory = self._clock() + memory_interval if memory_interval else None
        failures = 0
        self.tree.tick()
        while not (self.tree.shutting_down and self.tree.all_down()):
            deadline = self.tree.next_deadline()
            if next_memory is not None and any(c.process for c in self.tree.children.values()):
                deadline = next_memory if deadline is None else min(deadline, next_memory)
            timeout = None if deadline is None else max(
                0, math.ceil((deadline - self._clock()) * 1000))
            events = dict(self._poller.poll(timeout))
            try:
                if sig_read in events:
                    self._handle_signals(sig_read)
                for fd, child in list(self._pidfds.items()):
                    if fd in events:
                        self.tree.on_exit(child)
                if self._prober.fd in events:
                    for result in self._prober.drain():
                        self.tree.on_probe(result)
                if beats in events:
                    self._receive_reports(beats)
                if control_sock in events:
                    self._answer(control_sock)
                if self.metrics_server is not None and self.metrics_server.fd in events:
                    self.metrics_server.answer(self.stats(None), self.status())
                if next_memory is not None and self._clock() >= next_memory:
                    self.tree.sample_memory()
                    next_memory = self._clock() + (memory_interval or 0)
                self.tree.tick()
                failures = 0
            except Exception:  # noqa: BLE001 - the supervisor's one catch-all (see module doc)
                failures += 1
                logger.exception("supervisor: unexpected error (%d in a row)", failures)
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    self.tree.kill_everything()
                    return 70
        return 0

    # -- sources ---------------------------------------------------------------------

    def _install_signals(self, wakeup_fd: int) -> dict[int, Any]:
        old: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            old[signum] = signal.signal(signum, self._on_signal)
        signal.set_wakeup_fd(wakeup_fd, warn_on_full_buffer=False)
        return old

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)  # handled in the loop, woken by the wakeup fd

    def _handle_signals(self, sig_read: int) -> None:
        try:
            while os.read(sig_read, 512):
                pass
        except BlockingIOError:
            pass
        signals, self._signals = self._signals, []
        for signum in signals:
            if signum == signal.SIGHUP:
                logger.info("SIGHUP ignored (the configuration is read at start)")
            elif self.tree.shutting_down:
                logger.warning("second %s: killing every child now", signal.Signals(signum).name)
                self.tree.kill_everything()
            else:
                logger.info("%s received: shutting down", signal.Signals(signum).name)
                self.tree.begin_shutdown()

    def _track_process(self, proc: ChildProcess | None, fd: int) -> None:
        if proc is not None:
            self._pidfds[fd] = self.tree.children[proc.name]
            self._poller.register(fd, zmq.POLLIN)
        else:
            self._pidfds.pop(fd, None)
            self._poller.unregister(fd)

    def _receive_reports(self, beats: zmq.Socket[Any]) -> None:
        for _ in range(REPORTS_PER_TURN):
            try:
                frame, frames = _recv_message(beats)
            except zmq.Again:
                return
            try:
                if frames != 1:
                    raise BadRequest(f"a liveness report is one frame, got {frames}")
                report = reports.accept(frame)
            except BadRequest as e:
                self.failures.record("badReports", "dropping a liveness report", e)
                continue
            self.tree.on_liveness(report)

    def _answer(self, control_sock: zmq.Socket[Any]) -> None:
        while True:
            try:
                frame, frames = _recv_message(control_sock)
            except zmq.Again:
                return
            reply = control.handle_message(frame, frames, self, failures=self.failures)
            try:
                control_sock.send(reply)
            except zmq.ZMQError as e:  # the peer is gone: REP drops the reply itself
                logger.warning("cannot answer a control request: %s", e)

    def _child_ready(self, name: str) -> None:
        child = self.tree.children[name]
        if (child.spec.readiness.kind == ReadinessKind.REGISTRY_PING
                and self._on_registry_ready is not None):
            callback, self._on_registry_ready = self._on_registry_ready, None
            threading.Thread(target=callback, name="apply", daemon=True).start()

    # -- control verbs (control.Controlled) --------------------------------------------

    def ps(self) -> list[dict[str, Any]]:
        return [child_row(self.tree.children[n], self._clock) for n in self.tree.order]

    def kill_child(self, name: str, signum: int) -> dict[str, Any]:
        self.tree.kill(name, signum)
        return child_row(self.tree.child(name), self._clock)

    def restart_child(self, name: str) -> dict[str, Any]:
        self.tree.restart(name)
        return child_row(self.tree.child(name), self._clock)

    def stop_child(self, name: str) -> dict[str, Any]:
        self.tree.stop(name)
        return child_row(self.tree.child(name), self._clock)

    def start_child(self, name: str) -> dict[str, Any]:
        self.tree.start(name)
        return child_row(self.tree.child(name), self._clock)

    def stats(self, name: str | None) -> dict[str, Any]:
        names = [name] if name is not None else self.tree.order
        self.tree.sample_memory()  # fresh RSS and CPU for the operator
        return {n: child_stats(self.tree.child(n)) for n in names}

    def status(self) -> dict[str, Any]:
        children = self.tree.children.values()
        failed = [{"name": c.spec.name, "state": str(c.machine.state),
                   "reason": c.machine.reason}
                  for c in children
                  if c.machine.state in (ChildState.HOLD_DOWN, ChildState.EXITED)]
        return {
            "pid": os.getpid(),
            "runDir": str(self.cfg.run_dir),
            "uptime": self._clock() - self._started,
            "shuttingDown": self.tree.shutting_down,
            "ready": all(c.machine.state == ChildState.RUNNING or c.machine.held
                         for c in children),
            "failed": failed,
            "refused": self.failures.snapshot(),
            "children": self.ps(),
        }

    def shutdown(self) -> dict[str, Any]:
        logger.info("shutdown requested through the control socket")
        self.tree.begin_shutdown()
        return {"stopping": True, "pid": os.getpid()}


def _recv_message(sock: zmq.Socket[Any]) -> tuple[bytes, int]:
    """The first frame of the next message and its number of frames, the others read
    and dropped (zmq delivers a message whole, so they are there already); zmq.Again
    when no message is waiting."""
    first = sock.recv(zmq.NOBLOCK)
    frames = 1
    while sock.getsockopt(zmq.RCVMORE):
        sock.recv(zmq.NOBLOCK)
        frames += 1
    return first, frames


def _bind(sock: zmq.Socket[Any], endpoint: str, *, private: bool) -> None:
    """Bind ``endpoint``; a private ipc socket is created 0600 (under a umask that leaves
    no window where another user could connect), then chmod to say so explicitly."""
    ipc = private and endpoint.startswith("ipc://")
    old_umask = os.umask(0o177) if ipc else None
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as e:
        raise ControlError(f"cannot bind {endpoint}: {e}") from e
    finally:
        if old_umask is not None:
            os.umask(old_umask)
    if ipc:
        os.chmod(endpoint[len("ipc://"):], 0o600)
