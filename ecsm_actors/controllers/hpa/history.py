"""The HPA's memory, kept in the ECSMHpa status so a restarted controller honours it.

Runs in the hpa-controller process. Pure.

* ``status.recommendations`` — ``[{timestamp, replicas}]``: the unstabilized proposals of
  recent syncs, the input of the stabilization windows.
* ``status.scaleEvents`` — ``[{timestamp, replicaChange, reason}]``: recent changes of
  the target's replicas (+ up, - down) with the reason of the decision; the input of the
  rate policies (Pods / Percent per period) and the "last scaling decisions" of
  ``ecsm-cli describe hpa``.

Timestamps are RFC 3339 UTC strings with milliseconds (wall clock: they must survive a
restart). Both lists are bounded: a recommendation is dropped as soon as no future window
can need it (exact compaction, see :func:`compact_recommendations`) and a scale event
once it is older than the longest policy period and not among the last
:data:`KEEP_LAST_EVENTS` (kept for people to read). Garbage entries (a hand-edited status)
are skipped, never fatal; a timestamp in the future (the clock stepped back) is read as
"now", so a clock step can stretch a window by at most its own length.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard


@dataclass(frozen=True, kw_only=True)
class Recommendation:
    timestamp: float
    replicas: int


KEEP_LAST_EVENTS = 5


@dataclass(frozen=True, kw_only=True)
class ScaleEvent:
    timestamp: float
    change: int
    reason: str = ""


def format_time(epoch: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2025-01-02T03:04:05.678Z``."""
    text = datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def parse_time(text: Any) -> float | None:
    """Epoch seconds of an RFC 3339 string; None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def load_recommendations(raw: Any, *, now: float) -> list[Recommendation]:
    out = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, dict):
            continue
        ts = parse_time(item.get("timestamp"))
        replicas = item.get("replicas")
        if ts is None or not _is_count(replicas):
            continue
        out.append(Recommendation(timestamp=min(ts, now), replicas=replicas))
    out.sort(key=lambda r: r.timestamp)
    return out


def load_scale_events(raw: Any, *, now: float) -> list[ScaleEvent]:
    out = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, dict):
            continue
        ts = parse_time(item.get("timestamp"))
        change = item.get("replicaChange")
        if ts is None or not isinstance(change, int) or isinstance(change, bool):
            continue
        reason = item.get("reason")
        out.append(ScaleEvent(timestamp=min(ts, now), change=change,
                              reason=reason if isinstance(reason, str) else ""))
    out.sort(key=lambda e: e.timestamp)
    return out


def dump_recommendations(recs: Iterable[Recommendation]) -> list[dict[str, Any]]:
    return [{"timestamp": format_time(r.timestamp), "replicas": r.replicas} for r in recs]


def dump_scale_events(events: Iterable[ScaleEvent]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in events:
        item: dict[str, Any] = {"timestamp": format_time(e.timestamp), "replicaChange": e.change}
        if e.reason:
            item["reason"] = e.reason
        out.append(item)
    return out


def compact_recommendations(
    recs: Sequence[Recommendation], *, now: float, up_window: float, down_window: float
) -> list[Recommendation]:
    """Keep only the recommendations a future stabilization can still use.

    Scale-down stabilization takes the maximum over the last ``down_window`` seconds,
    scale-up the minimum over ``up_window``. An entry is useless once it left both
    windows, and also when a newer entry dominates it (a newer one at least as high for
    the maximum, at least as low for the minimum): the newer one stays in every future
    window at least as long. What remains is one staircase per direction.
    """
    kept: list[Recommendation] = []
    newer_max: int | None = None
    newer_min: int | None = None
    for r in sorted(recs, key=lambda r: r.timestamp, reverse=True):
        in_down = r.timestamp > now - down_window
        in_up = r.timestamp > now - up_window
        needed_down = in_down and (newer_max is None or r.replicas > newer_max)
        needed_up = in_up and (newer_min is None or r.replicas < newer_min)
        if needed_down or needed_up:
            kept.append(r)
        newer_max = r.replicas if newer_max is None else max(newer_max, r.replicas)
        newer_min = r.replicas if newer_min is None else min(newer_min, r.replicas)
    kept.reverse()
    return kept


def prune_scale_events(
    events: Sequence[ScaleEvent], *, now: float, longest_period: float
) -> list[ScaleEvent]:
    """Drop the events no rate policy looks at any more, except the last few."""
    keep_from = len(events) - KEEP_LAST_EVENTS
    return [e for i, e in enumerate(events)
            if e.timestamp > now - longest_period or i >= keep_from]


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
