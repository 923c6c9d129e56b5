"""What the operator sees of a child: the ``ps`` row and the ``stats`` entry (wire maps).

Runs in the supervisor process; pure functions over a :class:`~.tree.Child` and the
supervisor's monotonic clock (wall-clock times are derived from it for the wire).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ecsm_actors.runtime.leader import ROLES
from ecsm_actors.supervisor.states import ChildState

if TYPE_CHECKING:
    from ecsm_actors.protocol import Liveness
    from ecsm_actors.supervisor.tree import Child


def role_of(report: Liveness | None) -> str | None:
    """``leader`` or ``standby``: a controller's election role in its latest liveness
    report (``stats.election.role``); None for a child that does not elect."""
    election = report.stats.get("election") if report is not None else None
    role = election.get("role") if isinstance(election, dict) else None
    return role if role in ROLES else None


def child_row(child: Child, clock: Callable[[], float]) -> dict[str, Any]:
    """One ``ps`` row."""
    m = child.machine
    alive = m.pid is not None
    report = m.watchdog.report if alive else None

    def wall(monotonic: float | None) -> float | None:
        return None if monotonic is None else time.time() - (clock() - monotonic)

    return {
        "name": child.spec.name,
        "state": str(m.state),
        "pid": m.pid,
        "uptime": m.uptime(),
        "restarts": m.restarts,
        "lastExit": str(m.last_exit) if m.last_exit is not None else None,
        "heartbeatAge": m.watchdog.heartbeat_age() if alive else None,
        "queue": report.queue_depth if report is not None else None,
        "role": role_of(report),
        "ready": m.state == ChildState.RUNNING,
        # wall-clock times the current incarnation started / became ready (benchmarks)
        "startedAt": wall(m.started_at) if alive else None,
        "readyAt": wall(m.ready_at) if m.state == ChildState.RUNNING else None,
        "held": m.held,
        "retryIn": m.timer_remaining() if m.state in (
            ChildState.BACKOFF, ChildState.HOLD_DOWN) else None,
        "reason": m.reason,
    }


def child_stats(child: Child) -> dict[str, Any]:
    """One ``stats`` entry: the latest liveness report, RSS and CPU time."""
    m = child.machine
    alive = m.pid is not None
    report = m.watchdog.report if alive else None
    return {
        "state": str(m.state),
        "pid": m.pid,
        "rss": child.rss if alive else None,
        "anonymousRss": m.watchdog.rss if alive else None,
        "cpuSeconds": child.cpu if alive else None,
        "restarts": m.restarts,
        "restartCauses": dict(m.restart_causes),
        "liveness": None if report is None else {
            "ts": report.ts,
            "queueDepth": report.queue_depth,
            "oldestInflightAge": report.oldest_inflight_age,
            "lastCompleted": report.last_completed,
            "stats": report.stats,
        },
    }
