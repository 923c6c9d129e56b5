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

Between orders the zygote keeps a spare (:class:`Spare`): a child forked in advance the
same way, its intermediate process still alive (waiting as ``/bin/sh``, not as a copy of
the zygote's interpreter), prepared and waiting for an order. An
order the spare takes costs no fork: it gets the order and the log fd, the intermediate
exits, the supervisor adopts the spare, and the zygote replies with its pid at once. A
new spare is forked once no order came for :data:`SPARE_DELAY`.

The zygote exits when the supervisor closes the socket (or dies: ``PR_SET_PDEATHSIG``),
and on SIGTERM, with status 0 (it holds nothing to clean up). It ignores SIGINT (a Ctrl-C
reaches the whole process group; the supervisor stops its children itself). What it
never does: create a ZeroMQ context, open LMDB, start a thread, read the configuration.
"""

from __future__ import annotations

import gc
import importlib
import os
import select
import signal
import socket
import sys
import time
from types import FrameType

from ecsm_actors import lifecycle
from ecsm_actors.supervisor.zygote import child, orders

#: Quiet time after the last order (or the zygote's ready) before a spare is forked.
SPARE_DELAY = 0.1
#: After a spare could not be forked, the next try waits this long.
SPARE_RETRY = 1.0
#: Longest wait for the intermediate to name the spare it forked.
SPARE_TIMEOUT = 1.0
#: The word that lets a spare's intermediate exit, leaving the spare to the supervisor.
_GO = b"g"
#: What a spare's intermediate process waits as (see :func:`_wait_as_shell`).
_SHELL = "/bin/sh"
_WAITER = 'read -r word; [ "$word" = g ] || kill -9 "$1" 2>/dev/null'


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
    """Answer fork orders until the supervisor closes its end; between orders, keep a
    spare forked in advance (see :class:`Spare`)."""
    spare: Spare | None = None
    spare_at = time.monotonic() + SPARE_DELAY
    while True:
        if spare is None and not _readable(sock, spare_at - time.monotonic()):
            spare = Spare.fork(sock, handlers)
            if spare is None:
                spare_at = time.monotonic() + SPARE_RETRY
            continue
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
            pid = None
            if spare is not None:
                used, spare = spare, None
                intermediate = used.intermediate
                try:
                    pid = used.take(data, fds[0])
                except OSError:  # the spare is gone: its intermediate reaps it and exits
                    os.waitpid(intermediate, 0)
                    intermediate = None
            if pid is None:
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
            spare_at = time.monotonic() + SPARE_DELAY


def _readable(sock: socket.socket, timeout: float) -> bool:
    """Whether an order (or the supervisor's close) waits on ``sock`` within ``timeout``."""
    readable, _, _ = select.select([sock], [], [], max(0.0, timeout))
    return bool(readable)


class Spare:
    """A child forked in advance, waiting for an order: an order it takes costs no fork.

    Forked as every child is, twice, but the intermediate process stays until the spare
    is used: the spare is still no child of the supervisor (whose stray sweep would kill
    it), and its exit status could not reach the supervisor. The spare prepares what
    does not depend on an order (signals, fds, logging, seeds: :func:`.child.wait_for_order`)
    and waits on its socket. :meth:`take` sends it the order with the log fd and tells
    the intermediate to exit without it, so the supervisor adopts the spare as it adopts
    any forked child. A closed socket ends both: the intermediate kills and reaps the
    spare and exits, the spare exits (the zygote discarded it, or died). Each spare is
    forked :data:`SPARE_DELAY` after the last order, so its forks take no CPU from the
    child starting meanwhile; an order that finds no spare forks as before.
    """

    def __init__(self, pid: int, intermediate: int, orders_sock: socket.socket,
                 control: socket.socket) -> None:
        self.pid = pid
        self.intermediate = intermediate
        self._orders = orders_sock
        self._control = control

    @classmethod
    def fork(cls, sock: socket.socket, handlers: child.Handlers) -> Spare | None:
        """A new spare; None when it cannot be forked now (the intermediate reaped)."""
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # nothing buffered may be written twice
        try:
            orders_ours, orders_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            control, control_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            intermediate = os.fork()
        except OSError as e:
            print(f"zygote: cannot fork a spare: {e}", file=sys.stderr)
            return None
        if intermediate == 0:
            try:
                orders_ours.close()
                control.close()
                me = os.getpid()
                pid = os.fork()
                if pid == 0:
                    control_theirs.close()
                    child.wait_for_order(orders_theirs, intermediate=me, handlers=handlers,
                                         detach=(sock,))
                orders_theirs.close()
                control_theirs.send(pid.to_bytes(4, "little"))
                _wait_as_shell(control_theirs, pid)  # returns only when it cannot
                if control_theirs.recv(1) != _GO:  # discarded, or the zygote is gone
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
            finally:
                os._exit(0)
        orders_theirs.close()
        control_theirs.close()
        control.settimeout(SPARE_TIMEOUT)
        try:
            data = control.recv(4)
        except OSError:
            data = b""
        if len(data) != 4:
            orders_ours.close()
            control.close()  # a late spare sees its socket closed and exits
            try:
                os.kill(intermediate, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(intermediate, 0)
            print("zygote: the intermediate process died before naming the spare",
                  file=sys.stderr)
            return None
        control.settimeout(None)
        return cls(int.from_bytes(data, "little"), intermediate, orders_ours, control)

    def take(self, data: bytes, log_fd: int) -> int:
        """Hand the spare an order (``data``, its log fd) and let it go; its pid. OSError
        when the spare is gone (it is discarded: reap the intermediate)."""
        try:
            socket.send_fds(self._orders, [data], [log_fd])
        except OSError:
            self._close()
            raise
        try:
            self._control.send(_GO)
        except OSError:
            pass  # the intermediate is gone already: the spare is adopted all the same
        self._close()
        return self.pid

    def _close(self) -> None:
        self._orders.close()
        self._control.close()


def _wait_as_shell(control: socket.socket, spare: int) -> None:
    """Wait for the word on ``control`` as a shell instead of this copy of the zygote's
    interpreter: the intermediate process waits as long as its spare, and a forked copy
    of the zygote holds a share of every page it still shares with it (a 4-5 MiB share of
    the sum of PSS, and 0.8 MiB of its own) where ``sh`` holds 0.2 MiB. The shell reads
    the word from its stdin (``control``), then the end of it (the zygote closes its end
    after the word, or dies); a word that is not :data:`_GO` kills the spare. Its pid is
    this process's, so nothing changes for the spare nor the zygote (a spare killed so
    is then reaped by the supervisor, which adopts it when the shell exits). Returns only
    when the shell cannot be run: then this process waits itself."""
    try:
        fd = control.fileno()
        os.dup2(fd, 0)  # inheritable; every other fd but stdout and stderr closes
        os.closerange(3, fd)
        os.closerange(fd + 1, child._max_fd())  # control itself closes on exec
        os.execv(_SHELL, [_SHELL, "-c", _WAITER, "zygote-spare-waiter", str(spare)])
    except OSError:
        return


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
