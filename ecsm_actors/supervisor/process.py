"""Child processes as the supervisor sees them: spawn, pidfd, signal, reap, pidfile, log.

Runs in the supervisor process. A child is either a fresh interpreter started with
``subprocess.Popen`` (:func:`spawn`: close_fds, stdin from /dev/null, stdout+stderr
appended to ``<log dir>/<name>.log``) or forked by the zygote (:func:`fork`: the same log
file, opened here and handed over; the child is adopted by the supervisor, a child
subreaper, before the zygote answers). Either way it is the supervisor's own child, in the
supervisor's process group so that killing the group kills everything. Its death is
noticed through a pidfd (``os.pidfd_open``) that the event loop polls; the pidfd only
becomes readable once the process is a zombie, so reaping after it (``Popen.wait`` or
``waitpid`` of that pid) never blocks and never races. Children's pidfiles live in the
pid dir while they run.

Invariants: one :class:`ChildProcess` per incarnation; :meth:`ChildProcess.reap` is called
exactly once, after the pidfd became readable, and closes the pidfd.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ecsm_actors.supervisor.states import ExitStatus
from ecsm_actors.supervisor.zygote.link import ZygoteLink

logger = logging.getLogger(__name__)

#: A child's log is rotated (to ``.1``) once it is larger than this (the default of
#: ``supervisor.log_max_bytes``): at the child's next start, and while it runs at every
#: memory sample (see :func:`rotate_running_log`).
LOG_ROTATE_BYTES = 16 << 20


class ChildProcess:
    """One running incarnation of a child."""

    def __init__(self, name: str, pid: int, pidfile: Path,
                 popen: subprocess.Popen[bytes] | None = None) -> None:
        self.name = name
        self.popen = popen
        self.pid = pid
        self.pidfile = pidfile
        self.pidfd = os.pidfd_open(pid)
        self.returncode: int | None = None

    @property
    def forked(self) -> bool:
        """Forked by the zygote (else a fresh interpreter)."""
        return self.popen is None

    def send_signal(self, signum: int) -> None:
        """Signal the process if it has not been reaped yet (a zombie ignores it)."""
        if self.returncode is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def reap(self) -> ExitStatus:
        """Collect the exit status (the pidfd said it ended) and release the pidfd."""
        if self.popen is not None:
            returncode = self.popen.wait()
        else:
            returncode = self._wait_adopted()
        self.returncode = returncode
        os.close(self.pidfd)
        self.pidfd = -1
        try:
            self.pidfile.unlink()
        except FileNotFoundError:
            pass
        return ExitStatus.from_returncode(returncode)

    def _wait_adopted(self) -> int:
        """``waitpid`` of a forked child. One killed right after the fork may still be the
        zygote's intermediate process's child (ECHILD): it is ours within milliseconds,
        once that process has exited; past :data:`ADOPTION_TIMEOUT` it is reported lost."""
        deadline = time.monotonic() + ADOPTION_TIMEOUT
        while True:
            try:
                _, status = os.waitpid(self.pid, 0)
                return os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                if time.monotonic() > deadline:
                    logger.error("%s: pid %d ended but was never adopted", self.name, self.pid)
                    return -signal.SIGKILL
                time.sleep(0.001)


#: Longest wait for a forked child that died before its adoption to become ours.
ADOPTION_TIMEOUT = 2.0


def children_of_this_process() -> set[int]:
    """Pids of every child of this process, adopted orphans included (from /proc)."""
    pids: set[int] = set()
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return pids
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.update(int(p) for p in f.read().split())
        except (OSError, ValueError):
            continue
    return pids


def sweep_strays(known: set[int]) -> list[int]:
    """Reap or kill children that are no child's incarnation (an order the zygote answered
    too late, an intermediate orphaned by a zygote killed mid-fork): a supervisor that
    adopts orphans must not keep zombies nor unsupervised processes. Returns their pids."""
    strays = sorted(children_of_this_process() - known)
    for pid in strays:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if not done:
                logger.warning("killing pid %d: a child of no supervised child", pid)
                os.kill(pid, signal.SIGKILL)
        except (ChildProcessError, ProcessLookupError):
            continue
    return strays


def log_path(log_dir: Path, name: str) -> Path:
    return log_dir / f"{name}.log"


def pidfile_path(pid_dir: Path, name: str) -> Path:
    return pid_dir / f"{name}.pid"


def spawn(name: str, argv: Sequence[str], env: Mapping[str, str], *, log_dir: Path,
          pid_dir: Path, log_limit: int = LOG_ROTATE_BYTES,
          pass_fds: Sequence[int] = ()) -> ChildProcess:
    """Start ``argv`` with ``env``; raises OSError when the process cannot be created."""
    log = log_path(log_dir, name)
    _rotate(log, log_limit)
    with open(log, "ab", buffering=0) as out:
        popen = subprocess.Popen(
            list(argv), env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, close_fds=True, pass_fds=tuple(pass_fds),
        )
    pidfile = pidfile_path(pid_dir, name)
    try:
        pidfile.write_text(f"{popen.pid}\n")
        return ChildProcess(name, popen.pid, pidfile, popen)
    except OSError:
        popen.kill()
        popen.wait()
        raise


def fork(zygote: ZygoteLink, name: str, argv: Sequence[str], env: Mapping[str, str], *,
         log_dir: Path, pid_dir: Path, log_limit: int = LOG_ROTATE_BYTES) -> ChildProcess:
    """Have the zygote fork ``argv`` with ``env``; raises ZygoteUnavailable when it cannot
    (start a fresh interpreter then), OSError when the child cannot be tracked."""
    log = log_path(log_dir, name)
    _rotate(log, log_limit)
    with open(log, "ab", buffering=0) as out:
        pid = zygote.fork(argv, env, out.fileno())
    return adopt(name, pid, pid_dir=pid_dir)


def adopt(name: str, pid: int, *, pid_dir: Path) -> ChildProcess:
    """Track ``pid``, a child forked for this process (by the zygote, or by this process
    itself: the zygote's first incarnation, see :mod:`.zygote.template`); killed and
    reaped when its pidfile cannot be written."""
    pidfile = pidfile_path(pid_dir, name)
    try:
        pidfile.write_text(f"{pid}\n")
        return ChildProcess(name, pid, pidfile)
    except OSError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
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
