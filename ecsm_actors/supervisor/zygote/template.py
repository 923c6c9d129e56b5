"""The zygote's first incarnation forked from the supervisor itself, which shares its code.

Runs in the supervisor process, once, at its start, before it creates a ZeroMQ context or
a thread. A zygote started as a fresh interpreter imports everything the children need
into pages of its own, beside the supervisor's own copy of the common part (ZeroMQ,
msgpack, the configuration, logging...): two images. Instead the supervisor imports the
zygote's modules itself (:func:`~.server.preload`), collects and freezes its heap, and
forks: the zygote, the supervisor and every child forked later share one image,
copy-on-write. The forked process becomes exactly the zygote ``python -m ecsm_actors
zygote MODULE...`` would be: its end of the socket pair, stdin from /dev/null, stdout and
stderr to its log, every other fd closed (the supervisor's instance lock among them),
SIGINT ignored, SIGTERM ends it, the supervisor's environment for children, the parent-
death signal armed; then it says ``ready`` and serves orders (:func:`~.server.serve`).

Only the first incarnation is made so: later the supervisor has threads and a ZeroMQ
context, which a fork must not inherit, so a zygote restarted after its death is a fresh
interpreter (the same process, its own image). Nothing is forked when the supervisor
already has a thread, or when the zygote's argv is not ``<this python> -m ecsm_actors
zygote MODULE...``: the tree then starts it as a fresh interpreter, as before.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import socket
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

from ecsm_actors import lifecycle
from ecsm_actors.supervisor.zygote import child, orders, server

logger = logging.getLogger(__name__)

_ZYGOTE_ARGV = ("-m", "ecsm_actors", "zygote")


def modules_of(argv: Sequence[str]) -> list[str] | None:
    """The modules a zygote started with ``argv`` preloads; None when it is not a zygote
    of this interpreter (a custom table's): then it is not forked from the supervisor."""
    if len(argv) < 4 or argv[0] != sys.executable or tuple(argv[1:4]) != _ZYGOTE_ARGV:
        return None
    return list(argv[4:])


def single_threaded() -> bool:
    """No thread but this one, C threads included (ZeroMQ's I/O threads)."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def prefork(modules: list[str], *, fd: int, env: Mapping[str, str], log: Path) -> int:
    """Import ``modules`` here, freeze, and fork the zygote with ``fd`` (its end of the
    socket pair) and ``env``, its stdout and stderr appended to ``log``; its pid. Raises
    what importing a module raises (ImportError...), OSError when the fork fails."""
    with lifecycle.gc_paused():
        server.preload(modules)
    gc.collect()
    gc.freeze()
    handlers = {s: signal.getsignal(s) for s in signal.valid_signals()
                if s not in (signal.SIGKILL, signal.SIGSTOP)}
    out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # nothing buffered may be written twice
        pid = os.fork()
        if pid == 0:
            _become_zygote(fd, out, env, modules, handlers)  # never returns
    finally:
        os.close(out)
    return pid


def _become_zygote(fd: int, out: int, env: Mapping[str, str], modules: list[str],
                   handlers: child.Handlers) -> None:
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, server._stop)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.closerange(3, fd)
        os.closerange(fd + 1, child._max_fd())
        child._replace_environ(env)
        sys.argv = [sys.argv[0], "zygote", *modules]
        _rewrite_procfs(argv=(*_ZYGOTE_ARGV, *modules), env=env,
                        first=(lifecycle.PARENT_PID_ENV, "ECSM_ACTORS_RUN_DIR"))
        lifecycle.die_with_parent()
        sock = socket.socket(fileno=fd)
        print(f"zygote pid {os.getpid()}: ready, forked from the supervisor "
              f"({len(sys.modules)} modules)", file=sys.stderr, flush=True)
        sock.send(orders.ready_message(os.getpid()))
        code = server.serve(sock, handlers)
    except BaseException:  # noqa: BLE001 - the forked zygote's process boundary
        try:
            traceback.print_exc()
        finally:
            code = 1
    finally:
        os._exit(code)


def _rewrite_procfs(*, argv: Sequence[str], env: Mapping[str, str],
                    first: Sequence[str]) -> None:
    """Make ``/proc/self/cmdline`` and ``/proc/self/environ`` (hence ``ps`` and the
    supervisor's orphan check, :func:`~..rundir.clean_stale`) say zygote, not supervisor:
    both show the memory the kernel filled at the supervisor's ``exec``, which this process
    inherited. Rewritten in place, each within its original length: the interpreter as
    the supervisor was called, then whole arguments as many as fit; the variables
    ``first`` before the others. Best effort."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        arg_start, arg_end, env_start, env_end = (int(x) for x in fields[45:49])
        with open("/proc/self/cmdline", "rb") as f:
            interpreter = f.read().split(b"\0", 1)[0]
        _fill(arg_start, arg_end, [interpreter, *(a.encode() for a in argv)])
        ordered = [*(k for k in first if k in env), *(k for k in env if k not in first)]
        _fill(env_start, env_end, [f"{k}={env[k]}".encode() for k in ordered])
    except (OSError, ValueError, IndexError):
        pass


def _fill(start: int, end: int, words: list[bytes]) -> None:
    """Write NUL-terminated ``words`` over [start, end), as many whole ones as fit."""
    size = end - start
    out = b""
    for word in words:
        if len(out) + len(word) + 1 > size:
            break
        out += word + b"\0"
    if size > 0 and out:
        ctypes.memmove(start, out.ljust(size, b"\0"), size)
