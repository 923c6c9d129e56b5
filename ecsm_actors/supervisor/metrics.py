"""Every counter and histogram of the operator's processes in the Prometheus text format.

Runs in the supervisor process (the optional ``supervisor.metrics_endpoint``, see
:mod:`.metrics_http`) and in ``ecsm-operator metrics`` (which reads the same snapshot
through the control socket). The source is what the supervisor already holds: each
child's latest liveness report (its ``stats``), its RSS, CPU time and restarts by cause,
and the supervisor's own refusal counters (``status``). Nothing is kept here: a scrape
renders the snapshot it is given, so a child that restarted shows its counters from zero
(Prometheus' ``rate`` handles counter resets).

Families (label ``child`` on every per-child family)::

    ecsm_actors_child_up                       1 when running and ready
    ecsm_actors_child_restarts_total           by cause (exit, memory, heartbeat, stuck,
                                               readiness, killed, requested)
    ecsm_actors_child_rss_bytes / _anonymous_rss_bytes, ecsm_actors_child_cpu_seconds_total
    ecsm_actors_child_queue_depth, ecsm_actors_child_oldest_inflight_age_seconds
    ecsm_actors_registry_*                     the registry's stats (requests, commits,
                                               writes, replays, bad requests, batch sizes)
    ecsm_actors_controller_*                   a controller's stats (reconciles, errors,
                                               reconcile latency, queue, retry budget,
                                               informer events, replays, relists...)
    ecsm_actors_process_*                      any other child's stats
    ecsm_actors_supervisor_refused_total       by kind (bad reports, bad requests...)

A stats value becomes a counter when its name is one of :data:`COUNTERS` (or starts with
one of :data:`COUNTER_PREFIXES`), a histogram
when it has the shape of :meth:`ecsm_actors.runtime.metrics.LatencyHistogram.to_dict`
(``le``, cumulative ``counts``, ``sum``, ``count``), a gauge otherwise (booleans as 0/1;
strings are left out). Importing this module imports ``prometheus_client`` (about 12 MB
of RSS): only the supervisor's endpoint and the CLI command import it, never a controller
or the zygote.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "COUNTERS", "render"]

PREFIX = "ecsm_actors"
#: Stats names (any nesting level, after snake_casing) that only ever grow.
COUNTERS = frozenset({
    # registry
    "requests", "writes", "commits", "replays", "bad_requests", "internal_errors",
    "remote_admitted", "remote_refused", "remote_forbidden", "remote_dropped",
    "remote_rebinds", "events_dropped", "events_replayed",
    # controllers and their informers
    "reconciles", "errors", "requeues", "terminal", "not_found", "failure_conditions",
    "events", "relists", "reconnects", "resyncs", "drift", "outages", "dropped",
    "replayed", "reservations", "transitions",
    # Event records: the registry's store, a controller's recorder
    "recorded", "evicted", "expired", "refused", "aggregated", "sent",
})
#: Stats names starting with this are counters too (``droppedFull``, ``droppedUnsent``...).
COUNTER_PREFIXES = ("dropped_",)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def render(stats: dict[str, Any], status: dict[str, Any] | None = None) -> bytes:
    """The exposition text of ``stats`` (the ``stats`` control op's answer: child name →
    entry) and ``status`` (the ``status`` op's: its ``refused`` counts)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(list(families(stats, status or {}))))
    return generate_latest(registry)


class _Snapshot:
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> list[Metric]:
        return self._metrics


def families(stats: dict[str, Any], status: dict[str, Any]) -> Iterator[Metric]:
    up = GaugeMetricFamily(f"{PREFIX}_child_up", "1 when the child runs and is ready.",
                           labels=["child"])
    restarts = CounterMetricFamily(f"{PREFIX}_child_restarts",
                                   "Restarts of the child by cause.",
                                   labels=["child", "reason"])
    rss = GaugeMetricFamily(f"{PREFIX}_child_rss_bytes", "Resident set size.",
                            labels=["child"])
    anon = GaugeMetricFamily(f"{PREFIX}_child_anonymous_rss_bytes",
                             "Anonymous RSS (what the memory watchdog compares).",
                             labels=["child"])
    cpu = CounterMetricFamily(f"{PREFIX}_child_cpu_seconds", "CPU time used.",
                              labels=["child"])
    queue = GaugeMetricFamily(f"{PREFIX}_child_queue_depth",
                              "Queue depth in the latest liveness report.", labels=["child"])
    oldest = GaugeMetricFamily(f"{PREFIX}_child_oldest_inflight_age_seconds",
                               "Age of the oldest work in flight.", labels=["child"])
    collected: dict[str, Metric] = {}
    for name, entry in sorted(stats.items()):
        if not isinstance(entry, dict):
            continue
        up.add_metric([name], 1.0 if entry.get("state") == "RUNNING" else 0.0)
        causes = entry.get("restartCauses") or {}
        for cause, n in sorted(causes.items()):
            restarts.add_metric([name, str(cause)], float(n))
        if not causes:
            restarts.add_metric([name, "exit"], 0.0)
        for family, key in ((rss, "rss"), (anon, "anonymousRss"), (cpu, "cpuSeconds")):
            if _number(entry.get(key)):
                family.add_metric([name], float(entry[key]))
        liveness = entry.get("liveness")
        if not isinstance(liveness, dict):
            continue
        queue.add_metric([name], float(liveness.get("queueDepth") or 0))
        oldest.add_metric([name], float(liveness.get("oldestInflightAge") or 0.0))
        child_stats = liveness.get("stats")
        if isinstance(child_stats, dict):
            _collect(collected, _role(name, child_stats), name, (), child_stats)
    yield from (up, restarts, rss, anon, cpu, queue, oldest)
    yield from collected.values()
    refused = CounterMetricFamily(f"{PREFIX}_supervisor_refused",
                                  "Reports and control requests the supervisor refused.",
                                  labels=["kind"])
    for kind, n in sorted((status.get("refused") or {}).items()):
        if _number(n):
            refused.add_metric([_snake(str(kind))], float(n))
    yield refused


def _role(name: str, stats: dict[str, Any]) -> str:
    if name == "registry":
        return "registry"
    return "controller" if "reconciles" in stats else "process"


def _collect(out: dict[str, Metric], role: str, child: str, path: tuple[str, ...],
             node: dict[str, Any]) -> None:
    for key, value in node.items():
        here = (*path, _snake(str(key)))
        metric = f"{PREFIX}_{role}_{'_'.join(here)}"
        if isinstance(value, dict) and _is_histogram(value):
            family = out.get(metric)
            if family is None:
                family = out[metric] = HistogramMetricFamily(
                    metric, f"{' '.join(here)} ({role} stats).", labels=["child"])
            if isinstance(family, HistogramMetricFamily):
                buckets = [(_le(le), float(c)) for le, c in zip(value["le"], value["counts"],
                                                                strict=False)]
                family.add_metric([child], buckets, float(value["sum"]))
        elif isinstance(value, dict):
            _collect(out, role, child, here, value)
        elif isinstance(value, bool) or _number(value):
            counter = (here[-1] in COUNTERS or here[-1].startswith(COUNTER_PREFIXES)) \
                and not isinstance(value, bool)
            family = out.get(metric)
            if family is None:
                kind = CounterMetricFamily if counter else GaugeMetricFamily
                family = out[metric] = kind(metric, f"{' '.join(here)} ({role} stats).",
                                            labels=["child"])
            family.add_metric([child], float(value))


def _is_histogram(value: dict[str, Any]) -> bool:
    le, counts = value.get("le"), value.get("counts")
    return (isinstance(le, list) and isinstance(counts, list) and len(le) == len(counts)
            and _number(value.get("sum")))


def _le(bound: Any) -> str:
    if isinstance(bound, str):
        return bound  # "+Inf"
    return repr(float(bound))


def _snake(key: str) -> str:
    return _INVALID.sub("_", _CAMEL.sub("_", key)).lower().strip("_") or "value"


def _number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))
