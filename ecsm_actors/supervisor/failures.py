"""Counting and rate-limited logging of what peers got wrong (or what broke serving them).

Runs in the supervisor process, on its event loop (single-threaded). A peer that keeps
sending garbage to the control or liveness socket must not fill the log: the first
:data:`LOGGED_FAILURES` failures of each kind are logged, then one in :data:`LOG_EVERY`,
each line with the running count. The counts are shown by ``ecsm-operator status``.

Kinds used: ``badRequests`` (control requests refused as malformed), ``internalErrors``
(a control verb failed unexpectedly: logged with its traceback), ``badReports`` (liveness
reports dropped).
"""

from __future__ import annotations

import logging
from collections import Counter

from ecsm_actors.errors import RegistryError
from ecsm_actors.protocol import describe_error

#: Failures of one kind logged in full; after them, one in LOG_EVERY.
LOGGED_FAILURES = 10
LOG_EVERY = 1000


class FailureLog:
    """Failure counts by kind, and the rate-limited log lines about them."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self.counts: Counter[str] = Counter()

    def record(self, kind: str, what: str, error: BaseException) -> bool:
        """Count one failure; log it when due (a WARNING for a peer's mistake, an ERROR
        with the traceback for anything else). Returns whether it was logged."""
        self.counts[kind] += 1
        count = self.counts[kind]
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
