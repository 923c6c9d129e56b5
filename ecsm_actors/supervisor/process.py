"""Child processes as the supervisor sees them: spawn, pidfd, signal, reap, pidfile, log.

Runs in the supervisor process. A child is a fresh interpreter started with
``subprocess.Popen`` (close_fds, stdin from /dev/null, stdout+stderr appended to
``<log dir>/<name>.log``), in the supervisor's process group so that killing the group
kills everything. Its death is noticed through a pidfd (``os.pidfd_open``) that the event
loop polls; the pidfd only becomes readable once the process is a zombie, so reaping
after it never blocks and never races. Children's pidfiles live in the pid dir while
they run.

Invariants: one :class:`ChildProcess` per incarnation; :meth:`ChildProcess.reap` is called
exactly once, after the pidfd became readable, and closes the pidfd.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ecsm_actors.supervisor.states import ExitStatus

logger = logging.getLogger(__name__)

#: A child's log is rotated (to ``.1``) once it is larger than this (the default of
#: ``supervisor.log_max_bytes``): at the child's next start, and while it runs at every
#: memory sample (see :func:`rotate_running_log`).
LOG_ROTATE_BYTES = 16 << 20


class ChildProcess:
    """One running incarnation of a child."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], pidfile: Path) -> None:
        self.name = name
        self.popen = popen
        self.pid = popen.pid
        self.pidfile = pidfile
        self.pidfd = os.pidfd_open(popen.pid)

    def send_signal(self, signum: int) -> None:
        """Signal the process if it has not been reaped yet (a zombie ignores it)."""
        if self.popen.returncode is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def reap(self) -> ExitStatus:
        """Collect the exit status (the pidfd said it ended) and release the pidfd."""
        returncode = self.popen.wait()
        os.close(self.pidfd)
        self.pidfd = -1
        try:
            self.pidfile.unlink()
        except FileNotFoundError:
            pass
        return ExitStatus.from_returncode(returncode)


def log_path(log_dir: Path, name: str) -> Path:
    return log_dir / f"{name}.log"


def pidfile_path(pid_dir: Path, name: str) -> Path:
    return pid_dir / f"{name}.pid"


def spawn(name: str, argv: Sequence[str], env: Mapping[str, str], *, log_dir: Path,
          pid_dir: Path, log_limit: int = LOG_ROTATE_BYTES) -> ChildProcess:
    """Start ``argv`` with ``env``; raises OSError when the process cannot be created."""
    log = log_path(log_dir, name)
    _rotate(log, log_limit)
    with open(log, "ab", buffering=0) as out:
        popen = subprocess.Popen(
            list(argv), env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, close_fds=True,
        )
    pidfile = pidfile_path(pid_dir, name)
    try:
        pidfile.write_text(f"{popen.pid}\n")
        return ChildProcess(name, popen, pidfile)
    except OSError:
        popen.kill()
        popen.wait()
        raise


def _rotate(log: Path, limit: int) -> None:
    try:
        if log.stat().st_size > limit:
            os.replace(log, log.with_name(log.name + ".1"))
    except FileNotFoundError:
        pass


def rotate_running_log(log: Path, limit: int = LOG_ROTATE_BYTES) -> bool:
    """Copy-and-truncate the log of a running child once it passes ``limit``.

    The child holds the file open (O_APPEND, inherited), so it cannot be renamed away:
    its content goes to ``.1`` and the file is truncated; the child's next write lands at
    the new end. Lines written between the copy and the truncation are lost — the price
    of rotating without the child's help, as logrotate's ``copytruncate`` pays it.
    """
    try:
        if log.stat().st_size <= limit:
            return False
        shutil.copyfile(log, log.with_name(log.name + ".1"))
        os.truncate(log, 0)
    except FileNotFoundError:
        return False
    except OSError as e:
        logger.warning("cannot rotate %s: %s", log, e)
        return False
    return True
