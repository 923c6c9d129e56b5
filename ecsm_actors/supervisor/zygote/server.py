"""``python -m ecsm_actors zygote [MODULE...]``: the zygote process main.

Runs as a child of the supervisor, started as a fresh interpreter with its end of a
socket pair (fd in ``ECSM_ACTORS_ZYGOTE_FD``). It imports ``MODULE...`` (what the children
it will fork need: the registry, the controllers, the simulator), collects and freezes its
heap (``gc.freeze``: the children never scan nor dirty those pages for the cyclic GC),
says ``ready`` and then serves fork orders one at a time, single-threaded.

A fork order is served by forking twice: the intermediate process forks the child, writes
its pid on a pipe and exits; the zygote replies with the pid at once, then reaps the
intermediate. The child, orphaned, is adopted by the supervisor (a child subreaper), which
reaps it like any other child (a child killed before its adoption is reaped once the
intermediate is gone: see :meth:`~..process.ChildProcess.reap`). So killing the zygote
leaves its children running, and the exit status of a child reaches the supervisor once,
by ``waitpid``, never through the zygote.

The zygote exits when the supervisor closes the socket (or dies: ``PR_SET_PDEATHSIG``),
and on SIGTERM, with status 0 (it holds nothing to clean up). It ignores SIGINT (a Ctrl-C
reaches the whole process group; the supervisor stops its children itself). What it
never does: create a ZeroMQ context, open LMDB, start a thread, read the configuration.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import socket
import sys
from types import FrameType

from ecsm_actors import lifecycle
from ecsm_actors.supervisor.zygote import child, orders


def preload(modules: list[str]) -> None:
    """Import ``modules`` (ImportError: the zygote cannot serve and exits), then compute
    once for every child what depends on the code alone: the table of configuration keys
    (evaluated from the settings' annotations: 2 ms of each child's start otherwise). No
    configuration is read."""
    for name in modules:
        importlib.import_module(name)
    config = sys.modules.get("ecsm_actors.config")
    if config is not None:
        config.keys()


def main(argv: list[str] | None = None) -> int:
    lifecycle.die_with_parent()
    modules = list(sys.argv[1:] if argv is None else argv)
    handlers = {s: signal.getsignal(s) for s in signal.valid_signals()
                if s not in (signal.SIGKILL, signal.SIGSTOP)}
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    try:
        fd = int(os.environ[orders.FD_ENV])
        sock = socket.socket(fileno=fd)
    except (KeyError, ValueError, OSError) as e:
        print(f"error: zygote: no socket to the supervisor ({orders.FD_ENV}): {e}",
              file=sys.stderr)
        return 2
    with lifecycle.gc_paused():
        preload(modules)
    gc.collect()
    gc.freeze()
    print(f"zygote pid {os.getpid()}: ready ({len(sys.modules)} modules)", file=sys.stderr)
    sock.send(orders.ready_message(os.getpid()))
    return serve(sock, handlers)


def _stop(signum: int, frame: FrameType | None) -> None:
    os._exit(0)


def serve(sock: socket.socket, handlers: child.Handlers) -> int:
    """Answer fork orders until the supervisor closes its end."""
    while True:
        try:
            data, fds, flags, _ = socket.recv_fds(sock, orders.MAX_MESSAGE, 1)
        except ConnectionError:
            return 0
        if not data and not fds:
            return 0  # the supervisor closed its end
        intermediate = None
        try:
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != 1:
                raise ValueError("malformed order (truncated, or not exactly one fd)")
            order = orders.decode_order(data)
            pid, intermediate = fork(order, fds[0], sock, handlers)
            reply = orders.encode_reply(pid=pid)
        except (ValueError, OSError) as e:
            reply = orders.encode_reply(error=str(e))
        finally:
            for fd in fds:
                os.close(fd)
        try:
            sock.send(reply)
        except ConnectionError:
            return 0
        finally:
            if intermediate is not None:
                os.waitpid(intermediate, 0)  # after the reply: its exit takes milliseconds


def fork(order: orders.Order, log_fd: int, sock: socket.socket,
         handlers: child.Handlers) -> tuple[int, int]:
    """Fork ``order`` as an orphan (see the module doc): (its pid, the intermediate's pid,
    to be reaped)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # nothing buffered may be written twice
    read_end, write_end = os.pipe()
    intermediate = os.fork()
    if intermediate == 0:
        try:
            os.close(read_end)
            me = os.getpid()
            pid = os.fork()
            if pid == 0:
                child.become(order, log_fd=log_fd, intermediate=me, handlers=handlers,
                             detach=(sock,))
            os.write(write_end, pid.to_bytes(4, "little"))
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        data = b""
        while len(data) < 4:
            chunk = os.read(read_end, 4 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read_end)
    if len(data) != 4:
        os.waitpid(intermediate, 0)
        raise OSError("the intermediate process died before naming the child")
    return int.from_bytes(data, "little"), intermediate
