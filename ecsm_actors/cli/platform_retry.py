"""How ``ecsm-cli``'s platform verbs ride out a bad link to ECSM: reads are retried, actions
are not.

Runs in the ecsm-cli process. The ECSM client never retries (:mod:`ecsm_actors.ecsm.rest`:
in the controllers the workqueue does); for a command typed at the console this module is
that one retry mechanism, as a :class:`~ecsm_actors.ecsm.rest.Transport` around the real
one:

* a ``GET`` (every list page, every describe) that fails to reach ECSM (timeout, reset,
  no route; not a refused connection: then nothing listens, the link is fine) or gets
  HTTP 500/502/503/504 is sent again after a backoff with jitter, each attempt's
  timeouts cut to the time left, until the command's deadline (``--request-timeout``, else
  ``registry.request_deadline``); then the last failure is raised, saying how many
  attempts were made in how long;
* any other method (a container action) is sent exactly once: a blind retry could do it
  twice. :func:`action_outcome` turns its failure into one line saying whether it was
  sent, and the command that shows what happened.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from ecsm_actors.ecsm.rest import Transport
from ecsm_actors.errors import EcsmUnavailable

#: First backoff and its cap, seconds (doubling, then 50–100 % jitter).
BACKOFF_BASE = 0.2
BACKOFF_CAP = 2.0
#: HTTP statuses of a failing, overloaded or proxied server: a GET may be sent again.
RETRY_STATUSES = frozenset({500, 502, 503, 504})
#: The cause of a connection refused: ECSM's host answered that nothing listens.
REFUSED = "connection refused"
#: Causes (see :mod:`ecsm_actors.ecsm.plainhttp`) meaning nothing reached ECSM.
NOT_SENT = ("connection refused", "timeout (connect timed out)", "cannot connect")


class RetryingReads:
    """A transport sending GETs again within a deadline (see module docstring)."""

    def __init__(self, inner: Transport, deadline: float, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[], float] = random.random) -> None:
        self.inner = inner
        self.deadline = deadline
        self.clock = clock
        self.sleep = sleep
        self.jitter = jitter
        self._until = clock() + deadline
        self.attempts = 0

    def send(self, method: str, url: str, body: bytes | None,
             timeout: tuple[float | None, float | None]) -> tuple[int, bytes]:
        if method != "GET":
            return self.inner.send(method, url, body, timeout)
        start = self.clock()
        attempt = 0
        while True:
            attempt += 1
            self.attempts += 1
            left = max(0.05, self._until - self.clock())
            cut = (_cut(timeout[0], left), _cut(timeout[1], left))
            failure: EcsmUnavailable | None = None
            try:
                status, content = self.inner.send(method, url, body, cut)
            except EcsmUnavailable as e:
                if e.cause.startswith(REFUSED):
                    raise  # nothing listens there: no link trouble, and waiting won't help
                failure = e
            else:
                if status not in RETRY_STATUSES:
                    return status, content
                last = (status, content)
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
            delay *= 0.5 + self.jitter() / 2
            if self.clock() + delay >= self._until:
                if failure is None:
                    return last  # the rest layer turns it into its error
                raise EcsmUnavailable(failure.url, f"{failure.cause} ({_tries(attempt)} in "
                                      f"{self.clock() - start:.0f} s)") from failure
            self.sleep(delay)

    def close(self) -> None:
        self.inner.close()


def _cut(value: float | None, left: float) -> float:
    return left if value is None else min(value, left)


def _tries(n: int) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


def was_sent(error: EcsmUnavailable) -> bool:
    """Whether the request may have reached ECSM (False: it certainly did not)."""
    return not error.cause.startswith(NOT_SENT)


def action_outcome(error: EcsmUnavailable, action: str, name: str) -> EcsmUnavailable:
    """The one line for a container action that failed to get an answer: not sent (do it
    again), or sent with an unknown outcome (and how to see it)."""
    if not was_sent(error):
        return EcsmUnavailable(error.url, f"{error.cause}; the {action} of container {name} "
                               f"was not sent")
    return EcsmUnavailable(error.url, f"{error.cause}; the {action} of container {name} was "
                           f"sent but its outcome is unknown: check with ecsm-cli get "
                           f"containers --key {name}")
