"""The write-ahead log's ``fdatasync``: tickets, group commit, made by the turn's wait
(deferred, the store's way) or asynchronous.

Runs only in the registry process, under the store (:class:`~.checkpoint.Checkpoints`
owns one).

Deferred (``LogSync(fd, deferred=True)``, the store's): the loop writes a record, its
pages handed to the disk at once (``sync_file_range``, :meth:`.wal.WriteAheadLog.write`),
commits in LMDB and makes its replies while that write-back runs, then waits: the wait
makes one ``fdatasync`` on the loop's thread, which finds the data written or under way
and adds the inode when its times moved (once per clock tick: the filesystem here has no
journal) and the disk's cache flush. Asynchronous, its ``fdatasync`` ran in the kernel's
worker of the loop's own core, which waited for that core: the loop, until it waited
(traced at 500 creates/s: the worker began after the loop waited for 1,548 syncs of
1,584, p50 68 µs after the submission), and every step of the sync after it took the
worker's wake-up again. In the registry, each write's way alternating at random between
the two (three runs, 3,000 writes, load 1.8-2.1): record written -> durable p50
0.199-0.210 against 0.235-0.263 ms.

Asynchronous (``deferred=False``; no caller since the loop's pipelined sync was removed).
The loop writes a record (``pwrite``, no sync) and asks for its sync
(:meth:`LogSync.request`: a ticket, 1, 2, …), submitted to the kernel as an asynchronous
``fdatasync`` (Linux AIO, ``IOCB_CMD_FDSYNC``: the kernel syncs in a worker of its own, no
thread of ours, no GIL to hand over), while the loop commits in LMDB and prepares the
replies and events, or serves the next requests. Its completion counts one on
:attr:`LogSync.ready`, an eventfd the loop polls beside its sockets when it holds replies
(pipelined); :meth:`LogSync.check` then collects it (:meth:`LogSync.wait` collects without
it). One sync is in flight at a
time and covers every record written before it was submitted: the tickets asked for
meanwhile are all covered by the next one, submitted when it completes (group commit
across turns of the loop). A Python thread measured no better than the sync inline: the
thread needs the GIL to begin and to end the sync, and the loop holds it while it works
(in-process, 50 µs of work overlapped: thread p50 228, inline 185-209, AIO 172 µs, the
process's CPU 140 / 101-105 / 54-56 µs).

Where the kernel has no asynchronous ``fdatasync`` (not Linux, no AIO context to be had,
or after a fork: the context is the parent's), a request syncs at once on the caller's
thread, as before.

System calls per sync: the submission (``io_submit``; a fork is noticed by a hook, not by
a ``getpid`` each time); :meth:`LogSync.wait` is one ``io_getevents`` that blocks until a
completion (it leaves the eventfd as it is: its count may then name completions already
collected, which a poller of :attr:`LogSync.ready` takes for one wake with nothing to
collect); :meth:`LogSync.check`, after a poll found the eventfd readable, reads it and
collects without blocking.

Invariants: :attr:`synced` only grows and never passes a ticket whose record was written
before the ``fdatasync`` that covered it was submitted, nor a sync submitted before that
one and not yet collected (an EIO is reported to one of the syncs running on a file,
not to all: syncs completed out of order count only once the earlier ones did); once a
sync has failed (:attr:`error`), :attr:`synced` never moves again (an ``fdatasync``
after an EIO may succeed with pages lost): the store stops (:class:`~.wal.WalFailed`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import sys
from collections import deque

# x86-64 and arm64 (generic) numbers of the AIO system calls.
_SYSCALLS = {"x86_64": (206, 207, 208, 209), "aarch64": (0, 1, 4, 2)}
_IOCB_CMD_FDSYNC = 3
_IOCB_FLAG_RESFD = 1
#: Syncs in flight at most: each covers the records written before it was submitted, so
#: a record written while others sync gets its own at once rather than after them.
IN_FLIGHT = 8
#: A completion's data: its ticket, shifted, and the file description it ran on.
_SLOT_BITS, _SLOT_MASK = 4, 15

#: Forks of this process seen (:func:`os.register_at_fork`): an AIO context belongs to the
#: process that set it up, which a child tells by this count (no ``getpid`` each sync).
_forks = 0


def _forked() -> None:
    global _forks
    _forks += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


class _Iocb(ctypes.Structure):
    """struct iocb (little-endian layout)."""

    _fields_ = [("data", ctypes.c_uint64), ("key", ctypes.c_uint32),
                ("rw_flags", ctypes.c_int32), ("opcode", ctypes.c_uint16),
                ("reqprio", ctypes.c_int16), ("fildes", ctypes.c_uint32),
                ("buf", ctypes.c_uint64), ("nbytes", ctypes.c_uint64),
                ("offset", ctypes.c_int64), ("reserved2", ctypes.c_uint64),
                ("flags", ctypes.c_uint32), ("resfd", ctypes.c_uint32)]


class _Event(ctypes.Structure):
    """struct io_event."""

    _fields_ = [("data", ctypes.c_uint64), ("obj", ctypes.c_uint64),
                ("res", ctypes.c_int64), ("res2", ctypes.c_int64)]


class _Aio:
    """One AIO context that syncs one file, its completions counted on an eventfd.

    Each sync in flight runs on a file description of its own (the file opened again,
    :data:`IN_FLIGHT` times, before any record): Linux reports a writeback error once per
    open file description, to whichever ``fdatasync`` on it looks first, so two syncs on
    one description could leave the EIO to the one collected later; on descriptions of
    their own, every sync running when the error is recorded reports it."""

    def __init__(self, fd: int, ready: int) -> None:
        machine = os.uname().machine
        if sys.platform != "linux" or sys.byteorder != "little" or machine not in _SYSCALLS:
            raise OSError(errno.ENOSYS, "no Linux AIO here")
        self._setup, self._destroy, self._getevents, self._submit = _SYSCALLS[machine]
        self._call = ctypes.CDLL(None, use_errno=True).syscall
        self._call.restype = ctypes.c_long
        self._ctx = ctypes.c_ulong(0)
        if self._call(self._setup, IN_FLIGHT, ctypes.byref(self._ctx)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self._forks = _forks
        self._files: list[int] = []
        try:
            for _ in range(IN_FLIGHT):
                self._files.append(os.open(f"/proc/self/fd/{fd}", os.O_RDWR | os.O_CLOEXEC))
        except OSError:
            self.close()
            raise
        self._free = list(range(IN_FLIGHT))  # the descriptions no sync in flight uses
        # The kernel copies the iocb at submission: one serves every sync in flight.
        self._iocb = _Iocb(opcode=_IOCB_CMD_FDSYNC, fildes=fd, flags=_IOCB_FLAG_RESFD,
                           resfd=ready)
        self._iocbs = (ctypes.POINTER(_Iocb) * 1)(ctypes.pointer(self._iocb))
        self._events = (_Event * IN_FLIGHT)()

    def submit(self, ticket: int) -> bool | None:
        """Submit the file's ``fdatasync`` for ``ticket``; None when the kernel cannot
        now (EAGAIN), False when it never will (a forked child, an unsupported file):
        then sync inline."""
        if self._forks != _forks:
            return False
        if not self._free:
            return None
        slot = self._free.pop()
        self._iocb.fildes = self._files[slot]
        self._iocb.data = ticket << _SLOT_BITS | slot
        if self._call(self._submit, self._ctx, 1, self._iocbs) == 1:
            return True
        err = ctypes.get_errno()
        self._free.append(slot)
        if err == errno.EAGAIN:
            return None
        if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF):
            return False
        raise OSError(err, os.strerror(err))

    def completed(self, wait: bool = False) -> list[tuple[int, int]]:
        """The syncs done since the last call: (ticket, 0 or -errno) each; ``wait``:
        block until there is one (none when a signal came first). The GIL is let go
        meanwhile (a ctypes call)."""
        n = self._call(self._getevents, self._ctx, 1 if wait else 0, IN_FLIGHT, self._events,
                       None)
        if n < 0:
            err = ctypes.get_errno()
            if err == errno.EINTR:
                return []
            raise OSError(err, os.strerror(err))
        done = []
        for e in self._events[:n]:
            self._free.append(e.data & _SLOT_MASK)
            done.append((e.data >> _SLOT_BITS, e.res))
        return done

    def close(self) -> None:
        if self._forks == _forks:  # waits for the syncs in flight, if any
            self._call(self._destroy, self._ctx)
        for fd in self._files:
            os.close(fd)
        self._files = []


class LogSync:
    """The syncs of the log file ``fd`` (see the module docstring). ``deferred``: the
    caller waits (:meth:`wait`) for the records of each turn before anything of them
    leaves, and polls no :attr:`ready`: a record's sync is made by that wait, inline on
    its thread, not submitted when the record is written (no AIO context)."""

    def __init__(self, fd: int, *, deferred: bool = False) -> None:
        self._fd = fd
        self.deferred = deferred
        #: The latest ticket asked for (a record written, its sync asked).
        self.requested = 0
        #: Every ticket up to this one is durable.
        self.synced = 0
        #: The latest ticket a sync was submitted for, and how many are in flight.
        self._submitted = 0
        self._in_flight = 0
        #: The tickets of the syncs in flight, in the order submitted, and those of them
        #: done: :attr:`synced` moves only past a prefix of this order (see _collect).
        self._flying: deque[int] = deque()
        self._landed: set[int] = set()
        #: Why a sync failed (then nothing more is synced).
        self.error: OSError | None = None
        #: Counts one per sync completed: the pipelined loop polls it, :meth:`check` reads it.
        self.ready = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._waiter = select.poll()
        self._waiter.register(self.ready, select.POLLIN)
        self._aio: _Aio | None = None
        if not deferred:
            try:
                self._aio = _Aio(fd, self.ready)
            except OSError:
                pass

    @property
    def pending(self) -> bool:
        """Is a record written whose sync is not done?"""
        return self.synced != self.requested

    def request(self) -> int:
        """A record was just written: its ticket, durable once :attr:`synced` reaches it
        (at once when no asynchronous sync can be had; ``deferred``: once waited for)."""
        ticket = self.requested = self.requested + 1
        if self._in_flight < IN_FLIGHT and not self.deferred:
            self._start()
        return ticket

    def _start(self) -> None:
        """Submit a sync covering every ticket asked for until now (or sync inline)."""
        ticket = self.requested
        if self.error is not None:
            return
        try:
            if self._aio is not None:
                submitted = self._aio.submit(ticket)
                if submitted:
                    self._submitted = ticket
                    self._in_flight += 1
                    self._flying.append(ticket)
                    return
                if submitted is False:  # never again: every sync inline from now on
                    self._aio.close()  # the context let go (none after a fork)
                    self._aio, self._in_flight = None, 0
                    self._flying.clear()
                    self._landed.clear()
            os.fdatasync(self._fd)
        except OSError as e:
            self.error = e
            return
        self._submitted = self.synced = ticket

    def check(self) -> int:
        """Collect the completed syncs (after :attr:`ready` was found readable, or any
        time) and submit one for the records written meanwhile when none could be;
        return :attr:`synced`. Raises the sync's OSError when one failed."""
        try:
            os.eventfd_read(self.ready)
        except BlockingIOError:
            pass
        self._collect(False)
        if self.deferred and self._submitted != self.requested:
            self._start()  # no sync was submitted: make it now
        if self.error is not None:
            raise self.error
        return self.synced

    def _collect(self, wait: bool) -> bool:
        """Take the completed syncs (``wait``: at least one, blocking) and submit one for
        the records written meanwhile when none could be; whether any was taken."""
        aio = self._aio
        if not self._in_flight or aio is None:
            return False
        try:
            done = aio.completed(wait)
        except OSError as e:
            self.error, done = e, []
        for ticket, res in done:
            self._in_flight -= 1
            if res < 0:
                self.error = OSError(-res, os.strerror(-res))
            else:
                self._landed.add(ticket)
        # In submission order only: a writeback error is reported to one of the
        # ``fdatasync`` calls running on the file, so a later sync may succeed while an
        # earlier one, not yet collected, got the EIO.
        flying, landed = self._flying, self._landed
        while flying and flying[0] in landed:
            ticket = flying.popleft()
            landed.discard(ticket)
            if self.error is None and ticket > self.synced:
                self.synced = ticket
        if self._submitted != self.requested and self._in_flight < IN_FLIGHT:
            self._start()
        return bool(done)

    def wait(self, ticket: int) -> None:
        """Return once ``ticket`` is durable; raise the sync's OSError when it failed."""
        while True:
            if self.error is not None:
                raise self.error
            if self.synced >= ticket:
                return
            if self._submitted < ticket and self._in_flight < IN_FLIGHT:
                self._start()  # nothing in flight covers it: submit one
            elif not self._in_flight:  # (never: what was submitted is synced or in flight)
                self._start()
            elif not self._collect(True) and self.error is None:
                # A signal came first (io_getevents refused: raised above, next round):
                # wait on the eventfd.
                try:
                    os.eventfd_read(self.ready)
                except BlockingIOError:
                    self._waiter.poll()

    def drain(self) -> None:
        """Wait for every ticket asked for (raise when a sync failed)."""
        self.wait(self.requested)

    def close(self) -> None:
        """Let the syncs in flight complete, then let go of the context and the eventfd."""
        if self._aio is not None:
            self._aio.close()
            self._aio = None
        os.close(self.ready)
