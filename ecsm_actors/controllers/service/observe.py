"""What ECSM says about one ECSMService: its revisions, their containers, node states.

Runs inside the service-controller process. :func:`revisions` and :func:`attach` are pure
conversions from the ECSM client's typed answers to the planner's views;
:class:`NodeStates` is a small shared cache of node up/down (one ``GET node`` list per
refresh interval for the whole process, not one per reconcile).

Invariants: only rows whose name parses as a revision of the object are returned
(:mod:`.naming`); a node counts as down only when ECSM says so in words (``offline``…),
so an unknown vocabulary never triggers a re-placement.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from ecsm_actors.controllers.service.model import ContainerView, RevisionView
from ecsm_actors.controllers.service.naming import parse_owned

#: Node statuses that mean "cannot run containers now".
DOWN_STATUSES = frozenset({"offline", "down", "unreachable", "notready", "not_ready", "error",
                           "disconnected"})


def revisions(rows: Iterable[Any], namespace: str, name: str) -> list[RevisionView]:
    """Owned ECSM service rows (``ServiceRow``) → revision views (containers not listed)."""
    out = []
    for row in rows:
        owned = parse_owned(row.name, namespace, name)
        if owned is None:
            continue
        out.append(RevisionView(
            revision=owned.revision, service_id=row.id, factor=int(row.factor),
            node_names=tuple(n.node_name for n in row.node_list),
            online=int(row.instance_online), policy=str(row.policy),
            created=str(row.created_time)))
    return out


def attach(views: Sequence[RevisionView], containers: Iterable[Any]) -> list[RevisionView]:
    """The views with their containers (``ContainerInfo``) attached, by service id."""
    by_service: dict[str, list[ContainerView]] = {v.service_id: [] for v in views}
    for c in containers:
        if c.service_id in by_service:
            by_service[c.service_id].append(
                ContainerView(name=c.name, node_name=c.node_name, status=str(c.status)))
    return [replace(v, containers=tuple(by_service[v.service_id])) for v in views]


def duplicates(views: Sequence[RevisionView]) -> list[RevisionView]:
    """Extra ECSM services carrying the same revision name (keep the oldest of each)."""
    seen: dict[str, RevisionView] = {}
    extra = []
    for v in sorted(views, key=lambda v: (v.created, v.service_id)):
        if v.revision in seen:
            extra.append(v)
        else:
            seen[v.revision] = v
    return extra


class NodeStates:
    """Node name → down?, refreshed from ``nodes.list_all()`` when older than asked."""

    def __init__(self, fetch: Callable[[], Iterable[Any]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._names: tuple[str, ...] = ()
        self._down: frozenset[str] = frozenset()
        self._at: float | None = None

    def get(self, max_age: float) -> tuple[tuple[str, ...], frozenset[str]]:
        """(every node name, the down ones), at most ``max_age`` seconds old."""
        with self._lock:
            now = self._clock()
            if self._at is None or now - self._at > max_age:
                nodes = list(self._fetch())
                self._names = tuple(n.name for n in nodes)
                self._down = frozenset(n.name for n in nodes
                                       if str(n.status).strip().lower() in DOWN_STATUSES)
                self._at = now
            return self._names, self._down
