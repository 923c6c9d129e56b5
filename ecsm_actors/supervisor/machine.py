"""The restart state machine of one child (supervisord's states, Erlang's policies).

Runs in the supervisor process. Pure logic: time comes from an injected clock, randomness
from an injected ``rng``, and every side effect is returned as an action (:class:`Spawn`,
:class:`Signal`) that the event loop performs; the loop reports back what happened
(:meth:`ChildMachine.spawned`, :meth:`~ChildMachine.ready`, :meth:`~ChildMachine.exited`).

States::

    STOPPED ──start──▶ STARTING ──ready──▶ RUNNING
       ▲                  │  exit             │ exit (unexpected)
       │                  ▼                   ▼
       │              BACKOFF ◀── quick failure ── restart policy says restart
       │              HOLD-DOWN ◀─ flapping: flap_restarts restarts within flap_window
       │              EXITED   ◀── policy says no restart / gave up after max_hold_downs
       └── exit ── STOPPING ◀──stop── STARTING | RUNNING

Rules:

* A run that reached RUNNING and lasted ``startsecs`` is healthy: the backoff resets and
  the child is restarted at once. Otherwise the start failed: the n-th failure in a row
  waits ``min(cap, base·2^(n-1))`` scaled by a jitter factor in ``[1 - jitter, 1]``.
* Every automatic restart is recorded; a restart due while ``flap_restarts`` restarts
  already happened within ``flap_window`` becomes a HOLD-DOWN of ``hold_down`` seconds,
  after which the child is tried again — forever, unless ``max_hold_downs`` > 0.
* The watchdog (:mod:`.watchdog`) is consulted on every :meth:`~ChildMachine.tick` while
  the child is alive; an unhealthy child is killed with SIGKILL and restarted.
* An operator stop holds the child (``held``): nothing restarts it but a start.
"""

from __future__ import annotations

import random
import signal
from collections import deque
from collections.abc import Callable

from ecsm_actors.protocol import Liveness
from ecsm_actors.supervisor.spec import ChildSpec, RestartPolicy
from ecsm_actors.supervisor.states import (
    ALIVE,
    Action,
    ChildState,
    ExitStatus,
    Signal,
    Spawn,
)
from ecsm_actors.supervisor.watchdog import Watchdog

__all__ = ["ALIVE", "Action", "ChildMachine", "ChildState", "ExitStatus", "Signal", "Spawn"]

Clock = Callable[[], float]

#: Shortest wait before restarting after a failed start, seconds.
MIN_FAILURE_DELAY = 0.01


class ChildMachine:
    """The lifecycle of one child. Every method returns the actions the loop must perform."""

    def __init__(self, spec: ChildSpec, *, clock: Clock,
                 rng: Callable[[], float] = random.random) -> None:
        self.spec = spec
        self._clock = clock
        self._rng = rng
        self.watchdog = Watchdog(spec, clock)
        self.state = ChildState.STOPPED
        #: Stopped by the operator: only start() brings it back.
        self.held = False
        self.pid: int | None = None
        self.started_at: float | None = None
        self.ready_at: float | None = None
        #: Restarts after a failure or on request (not the first start).
        self.restarts = 0
        #: Restarts by cause (:func:`restart_cause`), counted when the exit causing one is
        #: seen; ``requested`` for the operator's restarts (``ecsm-operator metrics``).
        self.restart_causes: dict[str, int] = {}
        self.last_exit: ExitStatus | None = None
        #: Why the child is in its current state, for people (empty when unremarkable).
        self.reason = ""
        #: Failed starts in a row (drives the backoff); 0 after a healthy run.
        self.failures = 0
        #: Hold-downs in a row; 0 after a healthy run.
        self.hold_downs = 0
        self._restart_times: deque[float] = deque()
        self._timer: float | None = None
        self._then_start = False
        self._killing = False

    # -- views ---------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.state in ALIVE and self.pid is not None

    def uptime(self) -> float | None:
        if self.state not in ALIVE or self.started_at is None:
            return None
        return self._clock() - self.started_at

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`tick` has something to do (None: nothing scheduled)."""
        deadlines = [self._timer] if self._timer is not None else []
        if self.state in (ChildState.STARTING, ChildState.RUNNING) and not self._killing:
            watch = self.watchdog.next_deadline()
            if watch is not None:
                deadlines.append(watch)
        return min(deadlines) if deadlines else None

    def timer_remaining(self) -> float | None:
        return None if self._timer is None else max(0.0, self._timer - self._clock())

    # -- commands --------------------------------------------------------------------

    def start(self) -> list[Action]:
        """Operator (or first) start: clears the hold and the failure history."""
        self.held = False
        if self.state == ChildState.STOPPING:
            self._then_start = True
            return []
        if self.state in (ChildState.STARTING, ChildState.RUNNING):
            return []
        self.failures = 0
        self.hold_downs = 0
        self._restart_times.clear()
        return self._spawn(reason="")

    def stop(self, *, hold: bool = False) -> list[Action]:
        """Graceful stop: TERM now, KILL after ``stop_grace``. ``hold`` = operator stop."""
        self.held = self.held or hold
        self._then_start = False
        if self.state in (ChildState.STARTING, ChildState.RUNNING):
            self.state = ChildState.STOPPING
            self.reason = "stopped by the operator" if hold else "stopping"
            self._timer = self._clock() + self.spec.stop_grace
            return [Signal(signum=signal.SIGTERM, reason=self.reason)]
        if self.state in (ChildState.BACKOFF, ChildState.HOLD_DOWN, ChildState.EXITED):
            self.state = ChildState.STOPPED
            self._timer = None
            self.reason = "stopped by the operator" if hold else ""
        return []

    def restart(self) -> list[Action]:
        """Stop gracefully if alive, then start again (counts as a restart)."""
        if self.state in (ChildState.STARTING, ChildState.RUNNING):
            actions = self.stop()
            self._then_start = True
            self.reason = "restart requested"
            self._count_cause("requested")
            return actions
        if self.state == ChildState.STOPPING:
            self._then_start = True
            self.held = False
            return []
        if self.state != ChildState.STOPPED or self.started_at is not None:
            self.restarts += 1
        return self.start()

    def abandon(self) -> None:
        """Drop a Spawn that was decided but not performed (the supervisor is stopping)."""
        if self.state == ChildState.STARTING and self.pid is None:
            self.state = ChildState.STOPPED
            self._timer = None

    def kill(self, reason: str) -> list[Action]:
        """Watchdog verdict: SIGKILL now; the exit that follows is a failure → restart."""
        if not self.alive or self._killing:
            return []
        self._killing = True
        self.reason = reason
        return [Signal(signum=signal.SIGKILL, reason=reason)]

    # -- observations --------------------------------------------------------------

    def spawned(self, pid: int) -> None:
        self.pid = pid
        self.started_at = self._clock()
        self.ready_at = None
        self._killing = False
        self.watchdog.reset()
        self._timer = self.started_at + self.spec.ready_timeout if self.spec.ready_timeout \
            else None

    def spawn_failed(self, error: str) -> list[Action]:
        """The process could not even be created: a failed start."""
        self.pid = None
        self.started_at = None
        self.last_exit = ExitStatus(code=127)
        return self._after_exit(ExitStatus(code=127), healthy=False, why=error)

    def ready(self) -> bool:
        """The readiness check passed; True when this moved the child to RUNNING."""
        if self.state != ChildState.STARTING or self.pid is None:
            return False
        self.state = ChildState.RUNNING
        self.ready_at = self._clock()
        self._timer = None
        if not self._killing:
            self.reason = ""
        return True

    def observe(self, report: Liveness) -> None:
        self.watchdog.observe(report)

    def exited(self, status: ExitStatus) -> list[Action]:
        """The current process ended with ``status`` (reaped by the loop)."""
        now = self._clock()
        self.last_exit = status
        healthy = (self.ready_at is not None and self.started_at is not None
                   and now - self.started_at >= self.spec.startsecs)
        was_killed, kill_reason = self._killing, self.reason
        self.pid = None
        self._killing = False
        if self.state == ChildState.STOPPING:
            self._timer = None
            if self._then_start:
                self._then_start = False
                self.restarts += 1
                return self._spawn(reason="")
            self.state = ChildState.STOPPED
            self.reason = "stopped by the operator" if self.held else ""
            return []
        why = kill_reason if was_killed else f"exited with {status}"
        return self._after_exit(status, healthy=healthy, why=why, killed=was_killed)

    def tick(self) -> list[Action]:
        """Run whatever is due now: a scheduled restart, a KILL after the grace, the
        readiness timeout, the watchdog."""
        now = self._clock()
        if self._timer is not None and now >= self._timer:
            self._timer = None
            if self.state in (ChildState.BACKOFF, ChildState.HOLD_DOWN):
                self.restarts += 1
                return self._spawn(reason=self.reason)
            if self.state == ChildState.STOPPING:
                return [Signal(signum=signal.SIGKILL,
                               reason=f"still running {self.spec.stop_grace:g}s after TERM")]
            if self.state == ChildState.STARTING:
                return self.kill(f"not ready {self.spec.ready_timeout:g}s after start")
        if self.state in (ChildState.STARTING, ChildState.RUNNING) and not self._killing:
            verdict = self.watchdog.verdict()
            if verdict is not None:
                return self.kill(verdict)
        return []

    # -- internals -----------------------------------------------------------------

    def _spawn(self, *, reason: str) -> list[Action]:
        self.state = ChildState.STARTING
        self.pid = None
        self.ready_at = None
        self._timer = None
        self.reason = reason
        return [Spawn()]

    def _after_exit(self, status: ExitStatus, *, healthy: bool, why: str,
                    killed: bool = False) -> list[Action]:
        now = self._clock()
        self._timer = None
        policy = self.spec.policy
        if policy == RestartPolicy.TEMPORARY or (
                policy == RestartPolicy.TRANSIENT and status.normal and not killed):
            self.state = ChildState.EXITED
            self.reason = why
            return []
        self._count_cause(restart_cause(why, killed=killed))
        if healthy:
            self.failures = 0
            self.hold_downs = 0
        else:
            self.failures += 1
        while self._restart_times and self._restart_times[0] <= now - self.spec.flap_window:
            self._restart_times.popleft()
        if len(self._restart_times) >= self.spec.flap_restarts:
            return self._hold_down(now, why)
        self._restart_times.append(now)
        delay = self.backoff_delay(self.failures)
        if delay <= 0:
            self.restarts += 1
            return self._spawn(reason=why)
        self.state = ChildState.BACKOFF
        self.reason = why
        self._timer = now + delay
        return []

    def _count_cause(self, cause: str) -> None:
        self.restart_causes[cause] = self.restart_causes.get(cause, 0) + 1

    def _hold_down(self, now: float, why: str) -> list[Action]:
        self._restart_times.clear()
        self.failures = 0  # the try after a hold-down starts the backoff afresh
        limit = self.spec.max_hold_downs
        if limit and self.hold_downs >= limit:
            self.state = ChildState.EXITED
            self.reason = f"gave up after {self.hold_downs} hold-downs ({why})"
            return []
        self.hold_downs += 1
        self.state = ChildState.HOLD_DOWN
        self.reason = (f"flapping: {self.spec.flap_restarts} restarts within "
                       f"{self.spec.flap_window:g}s ({why})")
        self._timer = now + self.spec.hold_down
        return []

    def backoff_delay(self, failures: int) -> float:
        """Delay before the restart after ``failures`` failed starts in a row (0 → now)."""
        if failures <= 0:
            return 0.0
        spec = self.spec
        raw = min(spec.backoff_cap, spec.backoff_base * 2.0 ** min(failures - 1, 62))
        # A failed start always waits a little, so a zero base can never spin the loop.
        return max(MIN_FAILURE_DELAY, raw * (1.0 - spec.backoff_jitter * self._rng()))


def restart_cause(why: str, *, killed: bool) -> str:
    """The cause of a failure as a metric label: ``exit`` (the child ended by itself),
    ``memory``, ``heartbeat``, ``stuck`` (a reconcile past its deadline), ``readiness``
    (the watchdog's and the readiness timeout's verdicts), ``killed`` (anything else)."""
    if not killed:
        return "exit"
    for word, cause in (("RSS", "memory"), ("liveness report", "heartbeat"),
                        ("reconcile in flight", "stuck"), ("not ready", "readiness")):
        if word in why:
            return cause
    return "killed"
