"""Counting and rate-limited logging of what peers got wrong (or what broke serving them).

Runs in the registry and the supervisor, on their serving loops (single-threaded). A peer
that keeps sending garbage to a socket must not fill the log: the first
:data:`LOGGED_FAILURES` failures of each kind are logged, then one in :data:`LOG_EVERY`,
each line with the running count. The counts live in a mapping the caller may own (the
registry's liveness stats; the supervisor shows its own in ``ecsm-operator status``).

Kinds used: ``badRequests`` (requests refused as malformed), ``internalErrors`` (serving
failed unexpectedly: logged with its traceback), ``badReports`` (liveness reports dropped).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping

from ecsm_actors.errors import RegistryError
from ecsm_actors.protocol import describe_error

#: Failures of one kind logged in full; after them, one in LOG_EVERY.
LOGGED_FAILURES = 10
LOG_EVERY = 1000


class FailureLog:
    """Failure counts by kind, and the rate-limited log lines about them."""

    def __init__(self, logger: logging.Logger,
                 counts: MutableMapping[str, int] | None = None) -> None:
        self._logger = logger
        self.counts: MutableMapping[str, int] = {} if counts is None else counts

    def record(self, kind: str, what: str, error: BaseException) -> bool:
        """Count one failure; log it when due (a WARNING for a peer's mistake, an ERROR
        with the traceback for anything else). Returns whether it was logged."""
        count = self.counts[kind] = self.counts.get(kind, 0) + 1
        if count > LOGGED_FAILURES and count % LOG_EVERY:
            return False
        if isinstance(error, RegistryError):
            self._logger.warning("%s (%d so far): %s", what, count, error)
        else:
            self._logger.error("%s (%d so far): %s", what, count, describe_error(error),
                               exc_info=error)
        return True

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)
