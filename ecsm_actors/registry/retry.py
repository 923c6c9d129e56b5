"""The arithmetic of the registry client's retries: round-trip estimate, backoff, request ids.

Runs inside :class:`~ecsm_actors.registry.client.RegistryClient` (any process that talks
to the registry); pure, no sockets, no clock of its own (times are passed in), so it is
tested with a fake clock.

* :class:`RttEstimator` — RFC 6298: a smoothed round trip (SRTT) and its variation
  (RTTVAR) give the retransmission timeout ``RTO = SRTT + 4·RTTVAR``, kept between a
  floor and a cap (the client's per-attempt timeout), and every attempt that times out
  doubles it until the next sample (Karn's backoff), so a link slower than the estimate
  is never given up on for good. Before any sample the RTO is the cap, not the RFC's 1 s
  (which follows a measured SYN exchange): a fresh client — every CLI command is one,
  often talking to a local link agent whose handshake says nothing of the link behind
  it — must not cut a 1–2 s round trip short, since a retry that comes too early costs
  the link another round trip and the registry another execution.
* :class:`Backoff` — the pause before a retry: exponential with full jitter
  (``uniform(0, min(cap, base·2^(n-1)))``), so clients that failed together do not come
  back together.
* :func:`new_request_id` — the idempotency key of a write (``requestId`` on the wire):
  96 random bits drawn once per process (again after a fork) and a counter, e.g.
  ``q3Jx0c2B9vDkT1aM.1f``; unique across processes and restarts without coordination.
"""

from __future__ import annotations

import base64
import itertools
import os
import random
import secrets
import threading
from dataclasses import dataclass

#: The RTO never goes below this, seconds: a local registry that stopped answering is
#: asked again after this long, not after a whole timeout.
RTO_FLOOR = 0.2
_ALPHA = 1 / 8
_BETA = 1 / 4
_K = 4
_MAX_DOUBLINGS = 8


class RttEstimator:
    """Smoothed round trip and retransmission timeout of one client (RFC 6298).

    ``cap`` bounds the RTO (the client's per-attempt ``timeout``). Not thread-safe: the
    client updates it under its lock."""

    def __init__(self, *, cap: float, floor: float = RTO_FLOOR,
                 initial: float | None = None) -> None:
        self.cap = cap
        self.floor = min(floor, cap)
        self.initial = cap if initial is None else initial
        self.srtt: float | None = None
        self.rttvar = 0.0
        self._doublings = 0

    def observe(self, rtt: float) -> None:
        """A measured round trip (seconds) of an answered attempt; ends any backoff."""
        if rtt < 0.0:
            rtt = 0.0
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = (1 - _BETA) * self.rttvar + _BETA * abs(self.srtt - rtt)
            self.srtt = (1 - _ALPHA) * self.srtt + _ALPHA * rtt
        self._doublings = 0

    def timed_out(self) -> None:
        """An attempt got no answer within :meth:`rto`: the next one waits twice as long."""
        self._doublings = min(self._doublings + 1, _MAX_DOUBLINGS)

    def rto(self) -> float:
        """How long the next attempt waits for its answer, seconds."""
        base = self.initial if self.srtt is None else self.srtt + _K * self.rttvar
        if base < self.floor:  # comparisons, not min/max/**: read before every attempt
            base = self.floor
        if self._doublings:
            base *= 2 ** self._doublings
        return base if base < self.cap else self.cap


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Pause before retry number ``n`` (1 for the first retry): full jitter."""

    base: float = 0.05
    cap: float = 2.0

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(max(retry - 1, 0), 30)))
        return (rng or _rng).uniform(0.0, ceiling)


_rng = random.Random()
_id_lock = threading.Lock()
_id_prefix = ""
_id_pid = -1
_id_counter = itertools.count(1)


def _forget_request_ids() -> None:
    """In a forked child: draw a prefix of its own at its first id."""
    global _id_pid
    _id_pid = -1


os.register_at_fork(after_in_child=_forget_request_ids)


def new_request_id() -> str:
    """A fresh idempotency key: 16 characters of process-wide randomness (96 bits), a dot,
    a hexadecimal counter. At most 64 characters of ``[A-Za-z0-9._-]``."""
    global _id_prefix, _id_pid, _id_counter
    if _id_pid < 0:  # first call, or a forked child: never share the parent's prefix
        with _id_lock:
            if _id_pid < 0:
                _id_prefix = base64.urlsafe_b64encode(secrets.token_bytes(12)).decode("ascii")
                _id_counter = itertools.count(1)
                _id_pid = os.getpid()
    return f"{_id_prefix}.{next(_id_counter):x}"
