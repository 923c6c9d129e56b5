"""Rate-limited warnings: one WARNING per cause, then at most one per interval with a count.

Runs in controller processes, shared by the worker threads (thread-safe). A peer that
keeps sending the same garbage (an undecodable ECSM answer, an inconsistent list) would
otherwise write the same warning on every retry of every key; here the first occurrence
of a cause is a WARNING, later ones within ``interval`` go to DEBUG, and the next WARNING
after the interval says how many were held back. The outcome of every reconcile is still
logged, only its level changes.

Invariants: a cause is a short stable text (``EcsmDecodeError.cause``: no ids, no
excerpts); at most ``max_causes`` causes are remembered (the oldest is forgotten first),
so a peer cannot grow this table without bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

#: Seconds between two WARNINGs of the same cause.
DEFAULT_INTERVAL = 60.0
MAX_CAUSES = 256


class WarningLimiter:
    """Decides, per cause, whether the next occurrence is worth a WARNING."""

    def __init__(self, interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic,
                 max_causes: int = MAX_CAUSES) -> None:
        self.interval = interval
        self._clock = clock
        self._max = max_causes
        self._lock = threading.Lock()
        #: cause → (time of its last WARNING, occurrences held back since then)
        self._causes: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def admit(self, cause: str) -> int | None:
        """None: stay quiet this time; else the occurrences held back since the last
        WARNING of this cause (0 the first time)."""
        now = self._clock()
        with self._lock:
            last = self._causes.get(cause)
            if last is not None and now - last[0] < self.interval:
                self._causes[cause] = (last[0], last[1] + 1)
                return None
            self._causes[cause] = (now, 0)
            self._causes.move_to_end(cause)
            while len(self._causes) > self._max:
                self._causes.popitem(last=False)
            return last[1] if last is not None else 0

    def warn(self, logger: logging.Logger, cause: str, msg: str, *args: Any) -> bool:
        """``logger.warning(msg, *args)`` if :meth:`admit` lets it through (with the count
        held back appended), else ``logger.debug``. Returns whether it was a WARNING."""
        held = self.admit(cause)
        if held is None:
            logger.debug(msg, *args)
            return False
        if held:
            logger.warning(msg + " (and %d more like it since the last such warning)",
                           *args, held)
        else:
            logger.warning(msg, *args)
        return True
