"""The watchdog: is a live child healthy? Alive-but-stuck is a failure, not only death.

Runs in the supervisor process; pure logic over an injected clock (the supervisor feeds it
liveness reports and RSS samples, and asks for a verdict when its deadline comes).

A child is judged unhealthy when, per its :class:`~.spec.ChildSpec`:

* its last liveness report (or its start, before the first one) is older than
  ``heartbeat_deadline`` — this also catches a SIGSTOPped child: its reports stop;
* the oldest reconcile it has in flight, as last reported, is older than
  ``reconcile_deadline``;
* its anonymous RSS (RSS less file-backed pages such as the LMDB map, which the kernel
  can reclaim), as last sampled, is above ``memory_limit``.

A limit of 0 disables that check. Reports of another pid (a previous incarnation) are
ignored by the caller before they get here.
"""

from __future__ import annotations

from collections.abc import Callable

from ecsm_actors.protocol import Liveness
from ecsm_actors.supervisor.spec import ChildSpec

Clock = Callable[[], float]

_MIB = 1 << 20


class Watchdog:
    """Liveness bookkeeping of one child incarnation and the verdict on it."""

    def __init__(self, spec: ChildSpec, clock: Clock) -> None:
        self.spec = spec
        self._clock = clock
        self.started_at = clock()
        self.last_seen: float | None = None
        self.report: Liveness | None = None
        self.rss: int | None = None

    def reset(self) -> None:
        """A new incarnation starts now: forget everything about the previous one."""
        self.started_at = self._clock()
        self.last_seen = None
        self.report = None
        self.rss = None

    def observe(self, report: Liveness) -> None:
        self.last_seen = self._clock()
        self.report = report

    def observe_rss(self, rss: int) -> None:
        self.rss = rss

    def heartbeat_age(self) -> float | None:
        """Seconds since the last report; None before the first one."""
        return None if self.last_seen is None else self._clock() - self.last_seen

    def _heartbeat_base(self) -> float:
        return self.last_seen if self.last_seen is not None else self.started_at

    def next_deadline(self) -> float | None:
        """When the heartbeat check must run next (None if heartbeats are not watched)."""
        if not self.spec.heartbeat_deadline:
            return None
        return self._heartbeat_base() + self.spec.heartbeat_deadline

    def verdict(self) -> str | None:
        """Why the child must be killed, or None while it is healthy."""
        now = self._clock()
        deadline = self.spec.heartbeat_deadline
        if deadline and now - self._heartbeat_base() >= deadline:
            what = "no liveness report since start" if self.last_seen is None else (
                "no liveness report")
            return f"{what} for {now - self._heartbeat_base():.1f}s (deadline {deadline:g}s)"
        limit = self.spec.reconcile_deadline
        if limit and self.report is not None and self.report.oldest_inflight_age > limit:
            return (f"reconcile in flight for {self.report.oldest_inflight_age:.1f}s "
                    f"(limit {limit:g}s)")
        memory = self.spec.memory_limit
        if memory and self.rss is not None and self.rss > memory:
            return (f"RSS (anonymous) {self.rss / _MIB:.1f} MiB above the limit of "
                    f"{memory / _MIB:.1f} MiB")
        return None
