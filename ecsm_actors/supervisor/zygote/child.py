"""A child forked by the zygote, from the fork until it is the process it was asked to be.

Runs in the forked child only (the zygote's grandchild), and never returns into the
zygote's code: :func:`become` and :func:`wait_for_order` end with ``os._exit``. A child
is forked for one order (:func:`become`), or in advance as the zygote's spare
(:func:`wait_for_order`: steps 1-3 and part of 4 are done before any order, while it
waits; an order then only costs the steps that depend on it). Steps, in order:

1. note the intermediate process (:func:`~ecsm_actors.lifecycle.adopted_from`): the
   child is the supervisor's own child (the supervisor is a child subreaper) only once
   it has exited, and ``die_with_parent`` (in the process main, as for a fresh
   interpreter) waits for that before it arms ``PR_SET_PDEATHSIG``, which would
   otherwise fire at the intermediate's exit. The child does not wait here: a main that
   arms it after its setup (the controllers') overlaps the intermediate's exit (a
   millisecond or two, longer on a loaded machine) with its start;
2. signals: the mask emptied and every handler back to what the zygote's interpreter had
   at its start (a fresh interpreter's);
3. fds: stdin from /dev/null, stdout and stderr to the log the supervisor opened, every
   other inherited fd closed (the Python objects over the zygote's own fds are detached
   first, so none can close a number the child reuses);
4. logging handlers removed, ``random`` reseeded (``os.register_at_fork`` hooks of other
   modules have run already), ``os.environ`` made the order's, ``sys.argv`` set;
5. run ``python -m MODULE`` / ``python SCRIPT`` with :mod:`runpy`, as the interpreter
   does (``-m ecsm_actors``, the zygote's own main module, by calling its ``main``), and
   exit as it would: ``SystemExit`` code, a traceback and 1 on an uncaught
   exception, ``atexit`` handlers and stdio flushed first.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import runpy
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Mapping

from ecsm_actors import lifecycle
from ecsm_actors.supervisor.zygote import orders
from ecsm_actors.supervisor.zygote.orders import Order

#: Signal handlers as ``signal.getsignal`` gave them at the zygote's start.
Handlers = Mapping[int, object]


def become(order: Order, *, log_fd: int, intermediate: int, handlers: Handlers,
           detach: tuple[socket.socket, ...]) -> None:
    """Turn this freshly forked process into ``order.argv``; never returns."""
    code = 1
    try:
        _prepare(intermediate=intermediate, handlers=handlers, detach=detach, keep=log_fd)
        code = _take(order, log_fd)
    except SystemExit as e:
        code = exit_code(e.code)
    except BaseException:  # noqa: BLE001 - the forked child's process boundary
        code = _uncaught()
    finally:
        _exit(code)


def wait_for_order(orders_sock: socket.socket, *, intermediate: int, handlers: Handlers,
                   detach: tuple[socket.socket, ...]) -> None:
    """Be the zygote's spare: prepare, then wait on ``orders_sock`` for one order (the
    zygote's datagram, the log fd with it) and become it; never returns. Without an order
    (the zygote gone, or the spare discarded: the socket closes) it exits 0 quietly."""
    code = 0
    try:
        try:
            _prepare(intermediate=intermediate, handlers=handlers, detach=detach,
                     keep=orders_sock.fileno())
            data, fds, flags, _ = socket.recv_fds(orders_sock, orders.MAX_MESSAGE, 1)
            if not data or len(fds) != 1 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                os._exit(0)  # the zygote is gone, or discarded this spare
            orders_sock.close()
            order = orders.decode_order(data)
        except BaseException:  # noqa: BLE001 - no order taken: nothing to run, nor report
            os._exit(0)
        code = _take(order, fds[0])
    except SystemExit as e:
        code = exit_code(e.code)
    except BaseException:  # noqa: BLE001 - the forked child's process boundary
        code = _uncaught()
    finally:
        _exit(code)


def _prepare(*, intermediate: int, handlers: Handlers, detach: tuple[socket.socket, ...],
             keep: int) -> None:
    """What does not depend on the order: steps 1-3 (stdout and stderr left as they are)
    and the order-free part of 4; every fd from 3 on is closed but ``keep`` (the log, or
    the spare's socket to the zygote)."""
    lifecycle.adopted_from(intermediate)
    _reset_signals(handlers)
    for sock in detach:
        sock.detach()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    if keep >= 3:
        os.closerange(3, keep)
    os.closerange(max(3, keep + 1), _max_fd())
    _reset_logging()
    random.seed()


def _take(order: Order, log_fd: int) -> int:
    """The order's part: stdout and stderr to its log, its environment, its main run."""
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    if log_fd > 2:
        os.close(log_fd)
    _replace_environ(order.env)
    return _run(order.argv)


def _uncaught() -> int:
    """Print the traceback of the exception being handled; the status it gives (1)."""
    try:
        traceback.print_exc()
    except BaseException:  # noqa: BLE001 - exiting with 1 anyway
        pass
    return 1


def exit_code(code: object) -> int:
    """The status ``sys.exit(code)`` gives a process (a message is printed, status 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except (OSError, ValueError):
        pass
    return 1


def _reset_signals(handlers: Handlers) -> None:
    for signum, handler in handlers.items():
        if handler is None:
            continue  # set outside Python: nothing to restore
        try:
            signal.signal(signum, handler)  # type: ignore[arg-type]
        except (OSError, ValueError, TypeError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _max_fd() -> int:
    try:
        return max(256, os.sysconf("SC_OPEN_MAX"))
    except (OSError, ValueError):
        return 65536


def _reset_logging() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)


def _replace_environ(env: Mapping[str, str]) -> None:
    """``os.environ`` becomes ``env``, changing only what differs (the zygote's own is
    nearly the same; clearing and refilling it cost half a millisecond)."""
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _run(argv: tuple[str, ...]) -> int:
    if argv[1] == "-m":
        main = _zygote_main(argv[2])
        if main is not None:
            sys.argv = [sys.modules["__main__"].__file__ or argv[2], *argv[3:]]
            return exit_code(main(list(argv[3:])))
        sys.argv = [argv[2], *argv[3:]]  # runpy replaces argv[0] with the module's file
        runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
    else:
        script = os.path.abspath(argv[1])
        sys.argv = [argv[1], *argv[2:]]
        sys.path[0] = os.path.dirname(script)
        runpy.run_path(script, run_name="__main__")
    return 0


def _zygote_main(module: str) -> Callable[[list[str]], object] | None:
    """The ``main`` of ``python -m module`` when that is what the zygote itself runs
    (``python -m ecsm_actors zygote``): its main module, already executed, whose body ends
    in ``sys.exit(main())`` (every process of the project starts that way). Calling it is
    what running the module again would do, without runpy finding, reading and executing
    it again (0.7 ms, and 0.9 MiB of the zygote's pages copied into the child)."""
    own = sys.modules.get("__main__")
    spec = getattr(own, "__spec__", None)
    if spec is None or spec.name not in (module, f"{module}.__main__"):
        return None
    main = getattr(own, "main", None)
    return main if callable(main) else None


def _exit(code: int) -> None:
    try:
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except BaseException:  # noqa: BLE001 - exiting anyway, with the status decided
        pass
    os._exit(code)
