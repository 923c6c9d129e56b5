"""Liveness reports as the supervisor accepts them: decoded, then checked for sense.

Runs in the supervisor process, on its event loop. :func:`accept` turns one frame of the
liveness socket into a :class:`~ecsm_actors.protocol.Liveness`, or raises ``BadRequest``
saying why it was dropped — never anything else. Beyond the protocol's type checks, a
report must make sense before it may touch a child's watchdog or show in ``stats``:

* a positive pid (a report naming another pid than the child's current one is then
  ignored by the tree, as is one naming an unknown child);
* finite numbers: a NaN or infinite ``ts``, age or completion time is refused (an
  infinite ``oldestInflightAge`` would have the watchdog kill a healthy child, a NaN
  would print as invalid JSON in ``stats -o json``);
* ages, times and the queue depth within :data:`MAX_SECONDS` / :data:`MAX_QUEUE`;
* ``stats`` nested at most :data:`MAX_STATS_DEPTH` levels, with finite numbers only, in a
  frame of at most :data:`MAX_REPORT_BYTES` (real reports are a few hundred bytes).

Anyone who can write to the socket (mode 0600: the operator's own user) can still send a
well-formed report in a child's name; the watchdog then believes it until the next real
one, as it would a buggy child.
"""

from __future__ import annotations

import math
from typing import Any

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest, describe_input
from ecsm_actors.protocol import Liveness, describe_error

#: Largest liveness frame accepted, bytes.
MAX_REPORT_BYTES = 64 << 10
#: Deepest nesting of a report's ``stats`` (the controllers' is 3 levels).
MAX_STATS_DEPTH = 16
#: Largest age or wall-clock time a report may carry, seconds (about 317 years).
MAX_SECONDS = 1e10
#: Largest queue depth a report may carry.
MAX_QUEUE = 1 << 40
#: Largest pid (Linux's PID_MAX_LIMIT).
MAX_PID = 1 << 22


def accept(frame: bytes) -> Liveness:
    """The report in ``frame``; BadRequest (and nothing else) when it must be dropped."""
    try:
        report = protocol.decode_liveness(frame, MAX_REPORT_BYTES)
    except BadRequest:
        raise
    except Exception as e:  # noqa: BLE001 - a decoder failure on peer input is a bad report
        raise BadRequest(f"malformed liveness report: {describe_error(e)}") from e
    _check(report)
    return report


def _check(report: Liveness) -> None:
    name = report.name
    if not name or len(name) > 256 or not name.isprintable():
        raise BadRequest(f"liveness report: bad child name {describe_input(name)}")
    where = f"liveness report of {name!r}"
    if not 0 < report.pid <= MAX_PID:
        raise BadRequest(f"{where}: pid {describe_input(report.pid)} out of range")
    if not 0 <= report.queue_depth <= MAX_QUEUE:
        raise BadRequest(f"{where}: queueDepth {describe_input(report.queue_depth)} "
                         f"out of range")
    for field, value in (("ts", report.ts), ("oldestInflightAge", report.oldest_inflight_age),
                         ("lastCompleted", report.last_completed)):
        if not (math.isfinite(value) and 0 <= value <= MAX_SECONDS):
            raise BadRequest(f"{where}: {field} {describe_input(value)} is not a time "
                             f"within 0..{MAX_SECONDS:g} s")
    _check_stats(where, report.stats)


def _check_stats(where: str, stats: dict[str, Any]) -> None:
    """Walk ``stats`` level by level, without recursion (the frame is bounded, so the
    walk is too)."""
    level: list[Any] = [stats]
    depth = 1
    while level:
        if depth > MAX_STATS_DEPTH:
            raise BadRequest(f"{where}: stats nested more than {MAX_STATS_DEPTH} levels")
        below: list[Any] = []
        for container in level:
            for value in container.values() if isinstance(container, dict) else container:
                if isinstance(value, dict | list):
                    below.append(value)
                elif isinstance(value, float) and not math.isfinite(value):
                    raise BadRequest(f"{where}: stats hold a non-finite number")
        level = below
        depth += 1
