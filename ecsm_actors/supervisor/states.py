"""The vocabulary of the restart machine: child states, exit statuses, actions.

Pure data, shared by the machine (:mod:`.machine`, which decides), the tree and the
process layer (which act and report back). Runs in the supervisor process.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from enum import StrEnum


class ChildState(StrEnum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    HOLD_DOWN = "HOLD-DOWN"
    STOPPING = "STOPPING"
    EXITED = "EXITED"


ALIVE = frozenset({ChildState.STARTING, ChildState.RUNNING, ChildState.STOPPING})


@dataclass(frozen=True, kw_only=True)
class ExitStatus:
    """How a process ended: an exit code or the signal that killed it."""

    code: int | None = None
    signal: int | None = None

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitStatus:
        """From ``Popen.returncode`` (negative = killed by that signal)."""
        if returncode < 0:
            return cls(signal=-returncode)
        return cls(code=returncode)

    @property
    def normal(self) -> bool:
        return self.code == 0

    def __str__(self) -> str:
        if self.signal is not None:
            try:
                return signal.Signals(self.signal).name
            except ValueError:
                return f"signal {self.signal}"
        return str(self.code)


@dataclass(frozen=True, kw_only=True)
class Spawn:
    """Start a new incarnation of the child; report back with spawned() or spawn_failed()."""


@dataclass(frozen=True, kw_only=True)
class Signal:
    """Send ``signum`` to the child's current process."""

    signum: int
    reason: str = ""


Action = Spawn | Signal
