"""The supervisor's side of the zygote: socket pair, readiness, fork orders.

Runs in the supervisor process. The event loop's thread sends orders (:meth:`ZygoteLink.fork`
blocks for the zygote's reply: a fork takes about a millisecond); a probe thread waits for
the zygote's ``ready`` (:meth:`ZygoteLink.ready_check`) before any order is sent, so the
two never read the socket at the same time.

A forked child is adopted by the supervisor only if the supervisor is a child subreaper
(:func:`become_subreaper`, Linux ``PR_SET_CHILD_SUBREAPER``); without it there is no zygote.
Any failure of an order (no zygote, no answer within :data:`FORK_TIMEOUT`, an error
reply) raises :class:`ZygoteUnavailable`: the caller starts a fresh interpreter instead.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import socket
from collections.abc import Callable, Mapping, Sequence

from ecsm_actors.errors import EcsmActorsError
from ecsm_actors.supervisor.probes import ProbeResult
from ecsm_actors.supervisor.zygote import orders

logger = logging.getLogger(__name__)

#: Longest wait for the zygote's answer to an order (the event loop waits meanwhile).
FORK_TIMEOUT = 1.0
_PR_SET_CHILD_SUBREAPER = 36


class ZygoteUnavailable(EcsmActorsError):
    """The zygote cannot fork this child now: start a fresh interpreter."""


def become_subreaper() -> bool:
    """Make orphaned descendants this process's children; False when the kernel says no."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            logger.warning("prctl(PR_SET_CHILD_SUBREAPER): %s", os.strerror(ctypes.get_errno()))
            return False
    except (OSError, AttributeError) as e:
        logger.warning("prctl(PR_SET_CHILD_SUBREAPER) unavailable: %s", e)
        return False
    return True


class ZygoteLink:
    """The socket pair to one zygote incarnation at a time."""

    def __init__(self, name: str, *, timeout: float = FORK_TIMEOUT) -> None:
        self.name = name
        self.timeout = timeout
        #: True once the current incarnation said ready, until it is lost.
        self.ready = False
        self.pid: int | None = None
        self._sock: socket.socket | None = None
        self._theirs: socket.socket | None = None

    def open(self) -> tuple[int, dict[str, str]]:
        """A fresh pair for the next incarnation: (the fd to pass it, its environment)."""
        self.lost()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock, self._theirs = ours, theirs
        return theirs.fileno(), {orders.FD_ENV: str(theirs.fileno())}

    def started(self, pid: int | None) -> None:
        """The zygote was spawned as ``pid`` (None: it could not be): drop our copy of its end."""
        if self._theirs is not None:
            self._theirs.close()
            self._theirs = None
        self.pid = pid

    def lost(self) -> None:
        """The incarnation is gone (or never answered): forget it."""
        self.ready = False
        self.pid = None
        for sock in (self._sock, self._theirs):
            if sock is not None:
                sock.close()
        self._sock = self._theirs = None

    def ready_check(self) -> Callable[[int], ProbeResult | None]:
        """A probe check (see :mod:`..probes`): the zygote ``pid`` said ready."""
        sock = self._sock

        def check(pid: int) -> ProbeResult | None:
            if sock is None or sock.fileno() < 0:
                raise OSError("the zygote's socket is closed")
            readable, _, _ = select.select([sock], [], [], 0.05)
            if not readable:
                return None
            data = sock.recv(orders.MAX_MESSAGE)
            if not data:
                raise OSError("the zygote closed its socket")
            if not orders.is_ready_message(data, pid):
                raise ValueError(f"unexpected message from the zygote: {data[:80]!r}")
            return ProbeResult(name=self.name, pid=pid)

        return check

    def can_fork(self, argv: Sequence[str]) -> bool:
        return self.ready and orders.forkable(argv)

    def fork(self, argv: Sequence[str], env: Mapping[str, str], log_fd: int) -> int:
        """Have the zygote fork ``argv``; the child's pid (already our child)."""
        sock = self._sock
        if not self.ready or sock is None:
            raise ZygoteUnavailable("the zygote is not ready")
        sock.settimeout(self.timeout)
        try:
            socket.send_fds(sock, [orders.encode_order(argv, env)], [log_fd])
            data = sock.recv(orders.MAX_MESSAGE)
        except TimeoutError as e:
            self.lost()  # a late answer must never be read as the next order's
            raise ZygoteUnavailable(f"no answer within {self.timeout:g}s") from e
        except OSError as e:
            self.lost()
            raise ZygoteUnavailable(f"the zygote is gone: {e}") from e
        if not data:
            self.lost()
            raise ZygoteUnavailable("the zygote closed its socket")
        try:
            return orders.decode_reply(data)
        except ValueError as e:
            raise ZygoteUnavailable(f"the zygote refused: {e}") from e
