"""The write-ahead log's ``fdatasync``: tickets, and one sync a turn made by its wait.

Runs only in the registry process, under the store (:class:`~.checkpoint.Checkpoints`
owns one). The loop writes a record, its pages handed to the disk at once
(``sync_file_range``, :meth:`.wal.WriteAheadLog.write`), and asks for its sync
(:meth:`LogSync.request`: a ticket, 1, 2, …); it commits in LMDB and makes its replies
while that write-back runs, then waits (:meth:`LogSync.wait`): one ``fdatasync`` on the
loop's thread covers every record written before it (group commit), finding their data
written or under way and adding the inode when its times moved and the disk's cache flush.

This replaced an asynchronous ``fdatasync`` (Linux AIO, its completions on an eventfd),
which ran in the kernel's worker of the loop's own core and so began only once the loop
waited: record written -> durable p50 0.199-0.272 against 0.235-0.294 ms in the registry
(README, "The log's sync made by the turn's wait").

Invariants: :attr:`LogSync.synced` only grows and never passes a ticket whose record was
written after the ``fdatasync`` that made it durable began; once a sync has failed
(:attr:`LogSync.error`, set by the store too when a record could not be written),
:attr:`LogSync.synced` never moves again (an ``fdatasync`` after an EIO may succeed with
pages lost) and every wait raises: the store stops (:class:`~.wal.WalFailed`).
"""

from __future__ import annotations

import os


class LogSync:
    """The syncs of the log file ``fd`` (see the module docstring)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        #: The latest ticket asked for (a record written, its sync asked).
        self.requested = 0
        #: Every ticket up to this one is durable.
        self.synced = 0
        #: Why a sync failed, or the log could not be written (then nothing more is synced).
        self.error: OSError | None = None

    def request(self) -> int:
        """A record was just written: its ticket, durable once :meth:`wait` for it returns."""
        self.requested += 1
        return self.requested

    def wait(self, ticket: int) -> None:
        """Return once ``ticket`` is durable (one ``fdatasync`` covers every record written
        so far); raise the sync's OSError when it, or an earlier one, failed."""
        if self.error is not None:
            raise self.error
        if self.synced >= ticket:
            return
        covered = self.requested
        try:
            os.fdatasync(self._fd)
        except OSError as e:
            self.error = e
            raise
        self.synced = covered
