"""The supervisor's files in the run directory: instance lock, pidfiles, held children.

Runs in the supervisor process (and :func:`running_supervisor` in the CLI).

* ``<pid dir>/supervisor.pid`` is both the pidfile and the single-instance lock: the
  daemon holds an exclusive ``fcntl.flock`` on it for its whole life. A pidfile nobody
  holds the lock on is stale, whatever pid it names.
* ``<pid dir>/<child>.pid`` exist while a child runs. At start, with the lock held, a
  stale child pidfile whose process is still alive *and* belongs to this run dir (its
  environment says so) is an orphan of a dead supervisor: it is killed.
* ``<run dir>/supervisor-held.json`` lists the children the operator stopped; they stay
  stopped across supervisor restarts until ``start NAME``. Written atomically.

Invariants: nothing here deletes a file another live supervisor owns (the lock is taken
first); every write is atomic (temp file + rename).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import time
from pathlib import Path

from ecsm_actors.config import Config
from ecsm_actors.errors import ControlError
from ecsm_actors.files import replace_atomically
from ecsm_actors.lifecycle import PARENT_PID_ENV
from ecsm_actors.supervisor import procfs

logger = logging.getLogger(__name__)

SUPERVISOR_PIDFILE = "supervisor.pid"
HELD_FILE = "supervisor-held.json"


def pidfile(cfg: Config) -> Path:
    return cfg.pid_dir / SUPERVISOR_PIDFILE


class InstanceLock:
    """The pidfile, locked for the daemon's lifetime."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write our pid; ControlError if another supervisor holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ControlError(f"a supervisor (pid {other}) is already running in "
                               f"{self.path.parent.parent}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None


def running_supervisor(cfg: Config) -> int | None:
    """Pid of the supervisor holding this run dir's lock, or None when none runs."""
    path = pidfile(cfg)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def clean_stale(cfg: Config, lock: InstanceLock) -> None:
    """Remove what a dead supervisor left: orphans, child pidfiles, sockets, address file.
    Call with ``lock`` held."""
    for path in cfg.pid_dir.glob("*.pid"):
        if path == lock.path:
            continue
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid and _is_orphan_of(cfg, pid):
            logger.warning("killing orphan %s (pid %d) of a previous supervisor", path.stem, pid)
            _kill_and_wait(pid)
        path.unlink(missing_ok=True)
    for endpoint in (cfg.control_endpoint, cfg.heartbeat_endpoint):
        if endpoint.startswith("ipc://"):
            Path(endpoint[len("ipc://"):]).unlink(missing_ok=True)
    address = cfg.ecsm_address_file
    try:
        owner = int(json.loads(address.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        owner = 0
    if address.exists() and not (owner and _alive(owner)):
        address.unlink(missing_ok=True)  # its simulator is gone: the address is a lie


def _alive(pid: int) -> bool:
    return procfs.alive(pid)


def _is_orphan_of(cfg: Config, pid: int) -> bool:
    """Is ``pid`` a live child started by a supervisor of this run dir?"""
    env = procfs.environ(pid) if procfs.alive(pid) else None
    if env is None:
        return False
    run_dir = env.get("ECSM_ACTORS_RUN_DIR", "")
    return PARENT_PID_ENV in env and bool(run_dir) and (
        os.path.realpath(run_dir) == os.path.realpath(cfg.run_dir))


def _kill_and_wait(pid: int, timeout: float = 3.0) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not procfs.alive(pid):
            return  # gone, or dead and its parent (init) reaps it
        time.sleep(0.01)  # start-up only: an orphan dies within milliseconds of SIGKILL


class HeldChildren:
    """Children stopped by the operator, persisted so they stay stopped."""

    def __init__(self, cfg: Config) -> None:
        self.path = cfg.run_dir / HELD_FILE

    def load(self) -> set[str]:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as e:
            logger.warning("ignoring unreadable %s: %s", self.path, e)
            return set()
        names = doc.get("stopped") if isinstance(doc, dict) else None
        return {str(n) for n in names} if isinstance(names, list) else set()

    def save(self, names: set[str]) -> None:
        replace_atomically(self.path, json.dumps({"stopped": sorted(names)}).encode())
