"""Drift checked in bulk: one sweep over every ECSM service instead of one re-check each.

Runs in the service-controller process, on a runtime worker (the runtime's sweep key,
:mod:`ecsm_actors.runtime.sweep`), every ``service.drift_interval``. ECSM has no watch,
so drift (deleted, rescaled or stopped behind our back, crashed containers, dead nodes)
is found by looking: a settled pass records what it saw (:func:`fingerprint`, through
:meth:`DriftSweep.settled`) and is not requeued; the sweep lists every ECSM service page
by page (plus the node list, plus the containers of the few services whose settled
state includes them — ``Load`` services), groups the owned rows by object key
(:func:`~.naming.parse_any`), and enqueues only the keys of the informer's cache whose
state now differs from what their settled pass saw (:func:`diff`, pure). Detection takes
at most ``drift_interval`` plus one sweep; the repair is the ordinary reconcile.

Keys that are not settled (rolling out, waiting for room or for a dependency, failing)
have no record here and keep their own requeue pace — except the keys waiting out an ECSM
failure (``stranded``, from the reconciler): a sweep that listed ECSM successfully is
proof that ECSM answers again, so it enqueues them at once instead of leaving them to a
backoff grown during the outage (at most once per sweep, so never a storm). A record
holds nothing the next pass could not rebuild: a restarted controller reconciles every
key once at start and records them again. A listing whose pages disagree may enqueue a
key for nothing (the reconcile then lists it certainly and finds nothing to do); it never
hides a change it saw. A failing sweep raises: the runtime retries it with backoff and
reports it once.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ecsm_actors.controllers.service import observe
from ecsm_actors.controllers.service.model import ContainerView, RevisionView
from ecsm_actors.controllers.service.naming import parse_any
from ecsm_actors.ecsm.resources import paging
from ecsm_actors.ecsm.resources.paging import DEFAULT_PAGE_SIZE
from ecsm_actors.ecsm.types import Page

#: One ECSM service as the sweep compares it: id, revision, factor, nodes, online, policy.
Row = tuple[str, str, int, tuple[str, ...], int, str]
#: One container: service id, name, node, status, refused.
Container = tuple[str, str, str, str, bool]
#: Distinct node sets and tuples shared across records before the table starts afresh.
MAX_SHAPES = 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class Observed:
    """What a settled pass of one key saw, in the terms a sweep can see again. One per
    settled key for as long as the process lives: kept compact (slots, a sorted tuple of
    rows; :class:`DriftSweep` shares the node sets equal across records)."""

    #: Sorted, without repeats.
    rows: tuple[Row, ...]
    #: The nodes that matter to this key (its pool or list, and where it runs) → down?
    nodes: frozenset[tuple[str, bool]]
    #: Every node ECSM knew, when the placement was "every node" (an empty pool).
    every_node: frozenset[str] | None = None
    #: The containers, when the settled pass listed them (``Load`` services).
    containers: frozenset[Container] | None = None


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """ECSM as one sweep listed it."""

    #: Object key → its owned rows (keys without any row are absent).
    rows: Mapping[str, Sequence[RevisionView]]
    names: frozenset[str]
    down: frozenset[str]
    #: Service id → its containers (only the services whose record includes them).
    containers: Mapping[str, Sequence[ContainerView]]


def _row(v: RevisionView) -> Row:
    return (v.service_id, v.revision, v.factor, tuple(sorted(v.node_names)), v.online,
            sys.intern(str(v.policy)))


def _rows(views: Iterable[RevisionView]) -> tuple[Row, ...]:
    return tuple(sorted({_row(v) for v in views}))


def _containers(views: Iterable[RevisionView],
                listed: Mapping[str, Sequence[ContainerView]] | None = None
                ) -> frozenset[Container]:
    out = set()
    for v in views:
        for c in (listed.get(v.service_id, ()) if listed is not None else v.containers or ()):
            out.add((v.service_id, c.name, c.node_name, c.status, c.refused))
    return frozenset(out)


def fingerprint(views: Sequence[RevisionView], wanted_nodes: Iterable[str],
                down: frozenset[str], every_node: Iterable[str] | None) -> Observed:
    """The record of a settled pass: its views (with containers when it listed them),
    the nodes it placed on, the down ones, and every node when the pool was empty."""
    relevant = set(wanted_nodes)
    for v in views:
        relevant.update(v.node_names)
        relevant.update(c.node_name for c in v.containers or ())
    listed = any(v.containers is not None for v in views)
    return Observed(rows=_rows(views),
                    nodes=frozenset((n, n in down) for n in relevant),
                    every_node=frozenset(every_node) if every_node is not None else None,
                    containers=_containers(views) if listed else None)


def still(record: Observed, views: Sequence[RevisionView], snap: Snapshot) -> bool:
    """Whether ECSM, as ``snap`` shows it, still matches ``record`` for one key."""
    if _rows(views) != record.rows:
        return False
    if any((n in snap.down) != was for n, was in record.nodes):
        return False
    if record.every_node is not None and record.every_node != snap.names:
        return False
    return record.containers is None or _containers(views, snap.containers) \
        == record.containers


def diff(records: Mapping[str, Observed], keys: Iterable[str], snap: Snapshot) -> list[str]:
    """The keys of the informer's cache (``keys``) whose settled record no longer matches
    ECSM; keys without a record are not the sweep's (they keep their own pace)."""
    return [key for key in keys
            if (record := records.get(key)) is not None
            and not still(record, snap.rows.get(key, ()), snap)]


@dataclass(frozen=True, slots=True)
class _Listed:
    """One ECSM service row as a sweep keeps it: its id (the listing's key), the object
    key that owns it (None: not ours) and its revision views. A row decoded from the wire
    (with its whole raw dict) is several times larger: each page is reduced to these as it
    arrives, so a sweep of a thousand services never holds a thousand wire rows at once
    (the heap they would grow stays grown, fragmented by what outlives the sweep)."""

    id: str
    key: str | None
    views: tuple[RevisionView, ...]


def _listed_id(listed: _Listed) -> str:
    return listed.id


def _listed_page(page: Page[Any]) -> Page[_Listed]:
    items: list[_Listed] = []
    for row in page.items:
        owned = parse_any(row.name)
        if owned is None:
            items.append(_Listed(row.id, None, ()))
        else:
            items.append(_Listed(row.id, f"{owned.namespace}/{owned.name}", tuple(
                observe.revisions([row], owned.namespace, owned.name))))
    return Page(total=page.total, page_num=page.page_num, page_size=page.page_size,
                items=tuple(items))


class DriftSweep:
    """The records of settled keys and the sweep over them (see the module doc).
    Thread-safe: workers record while another worker sweeps."""

    def __init__(self, clientset: Any, nodes: observe.NodeStates, *, interval: float,
                 page_size: int = DEFAULT_PAGE_SIZE,
                 stranded: Callable[[], Iterable[str]] = tuple) -> None:
        self._ecsm = clientset
        #: The keys whose last pass failed on ECSM (retried once ECSM answers a sweep).
        self._stranded = stranded
        self._nodes = nodes
        #: How often the runtime runs :meth:`sweep` (``service.drift_interval``).
        self.interval = interval
        self._page_size = page_size
        self._lock = threading.Lock()
        self._records: dict[str, Observed] = {}
        #: One instance of each node set and node tuple the records hold (most keys of a
        #: cluster name the same few): see :meth:`_shared`.
        self._shapes: dict[Any, Any] = {}

    def settled(self, key: str, record: Observed) -> None:
        with self._lock:
            self._records[key] = self._shared(record)

    def _shared(self, record: Observed) -> Observed:
        """``record`` holding the instances of its node sets and node tuples that other
        records hold already (equal values, one copy; under the lock)."""
        if len(self._shapes) > MAX_SHAPES:
            self._shapes.clear()  # shapes of gone records: the next records share anew
        shape = self._shapes.setdefault
        rows = tuple((*r[:3], shape(r[3], r[3]), *r[4:]) for r in record.rows)
        every = record.every_node
        return replace(record, rows=rows, nodes=shape(record.nodes, record.nodes),
                       every_node=every if every is None else shape(every, every))

    def forget(self, key: str) -> None:
        with self._lock:
            self._records.pop(key, None)

    def records(self) -> dict[str, Observed]:
        with self._lock:
            return dict(self._records)

    def sweep(self, keys: Sequence[str], enqueue: Callable[[str], None]) -> int:
        """List ECSM, enqueue the keys that drifted and the stranded ones (ECSM answered);
        returns how many. ECSM errors raise."""
        wanted = set(keys)
        with self._lock:
            for gone in [k for k in self._records if k not in wanted]:
                del self._records[gone]
            records = dict(self._records)
        stranded = [k for k in self._stranded() if k in wanted]
        if not records and not stranded:
            return 0
        snap = self.snapshot(records)
        drifted = diff(records, keys, snap)
        for key in drifted:
            self.forget(key)  # its reconcile records it again once settled
            enqueue(key)
        for key in stranded:
            enqueue(key)
        return len(drifted) + len(stranded)

    def snapshot(self, records: Mapping[str, Observed]) -> Snapshot:
        """ECSM now: every service (paged), the nodes, and the containers of the
        services whose record includes them."""
        listing = paging.collect(
            lambda num, size: _listed_page(self._ecsm.services.list(num, size)),
            self._page_size, key=_listed_id)
        rows: dict[str, list[RevisionView]] = {}
        for listed in listing.items:
            if listed.key is not None:
                rows.setdefault(listed.key, []).extend(listed.views)
        names, down = self._nodes.get(0.0)
        ids = [v.service_id for key, record in records.items()
               if record.containers is not None for v in rows.get(key, ())]
        containers: dict[str, list[ContainerView]] = {}
        for start in range(0, len(ids), self._page_size):
            batch = ids[start:start + self._page_size]
            for view in observe.attach(
                    [RevisionView(revision="", service_id=i, factor=0, node_names=(),
                                  online=0) for i in batch],
                    self._ecsm.containers.list_all_by_service(
                        batch, page_size=self._page_size)):
                containers[view.service_id] = list(view.containers or ())
        return Snapshot(rows=rows, names=frozenset(names), down=down, containers=containers)
