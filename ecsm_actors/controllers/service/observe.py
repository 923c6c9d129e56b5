"""What ECSM says about one ECSMService: its revisions, their containers, node states.

Runs inside the service-controller process. :func:`revisions` and :func:`attach` are pure
conversions from the ECSM client's typed answers to the planner's views;
:class:`NodeStates` is a small shared cache of node up/down (one ``GET node`` list per
refresh interval for the whole process, not one per reconcile).

Invariants: only rows whose name parses as a revision of the object are returned
(:mod:`.naming`); a node counts as down only when ECSM says so in words (``offline``…),
so an unknown vocabulary never triggers a re-placement.

Duplicates — the rule (deleting a live service on misread evidence is the worst outcome,
so an extra service is deleted only when ECSM has said twice, in two different ways, that
it exists):

1. Rows are judged by ECSM service id. The listing is one row per id (a row seen twice
   with the same id is one service, :mod:`ecsm_actors.ecsm.resources.paging`), and a
   listing whose pages disagree is not used at all (the controller treats it as ECSM
   unavailable: no action, retried with backoff).
2. Two or more *different* ids carrying the same revision name are only *suspected*
   duplicates (:func:`suspects`): the list alone is not enough. Each suspect is fetched by
   id (``GET service/{id}``, :func:`confirm`); this extra call happens only then, so a
   settled pass still costs one ECSM call.
3. A suspect that the GET says does not exist (404) is a phantom row: ignored (WARNING),
   never deleted. An answer that disagrees with the row (another name) is an
   :class:`~ecsm_actors.errors.EcsmDecodeError`: nothing is done this pass.
4. Among the suspects confirmed to exist, the oldest (by the GET's ``createdTime``, then
   id) is kept and the others are returned as extras, to be deleted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ecsm_actors.controllers.service.model import ContainerView, RevisionView
from ecsm_actors.controllers.service.naming import parse_owned, service_name
from ecsm_actors.errors import EcsmDecodeError, EcsmNotFound

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
                ContainerView(name=c.name, node_name=c.node_name, status=str(c.status),
                              refused=str(c.deploy_status) == "failed"))
    return [replace(v, containers=tuple(by_service[v.service_id])) for v in views]


def suspects(views: Sequence[RevisionView]) -> list[RevisionView]:
    """The views whose revision is carried by more than one ECSM service id."""
    ids: dict[str, set[str]] = {}
    for v in views:
        ids.setdefault(v.revision, set()).add(v.service_id)
    return [v for v in views if len(ids[v.revision]) > 1]


@dataclass(frozen=True, kw_only=True)
class Confirmed:
    """The outcome of :func:`confirm`: what the planner sees, and what to do about the rest."""

    #: The views to plan with: the unsuspected ones and, per revision, the kept one.
    views: tuple[RevisionView, ...]
    #: Listed, but ECSM says by id that they do not exist: ignore them.
    phantoms: tuple[RevisionView, ...] = ()
    #: Confirmed duplicates (each exists; an older one of its revision is kept): delete.
    extras: tuple[RevisionView, ...] = ()


def confirm(views: Sequence[RevisionView], get: Callable[[str], Any], namespace: str,
            name: str) -> Confirmed:
    """Apply the duplicate rule of the module doc; ``get`` is ``services.get`` (raises
    EcsmNotFound for an unknown id). Without suspects, no call is made."""
    suspected = suspects(views)
    if not suspected:
        return Confirmed(views=tuple(views))
    phantoms: list[RevisionView] = []
    created: dict[str, tuple[str, str]] = {}
    for v in suspected:
        try:
            detail = get(v.service_id)
        except EcsmNotFound:
            phantoms.append(v)
            continue
        expected = service_name(namespace, name, v.revision)
        if detail.name != expected:
            raise EcsmDecodeError(
                f"ECSM lists service {v.service_id} as {expected} but GET service/"
                f"{v.service_id} names it {detail.name[:80]!r}",
                cause="a list and a get that disagree")
        created[v.service_id] = (str(detail.created_time), v.service_id)
    kept: dict[str, RevisionView] = {}
    extras: list[RevisionView] = []
    for v in sorted((v for v in suspected if v.service_id in created),
                    key=lambda v: created[v.service_id]):
        if v.revision in kept:
            extras.append(v)
        else:
            kept[v.revision] = v
    gone = {v.service_id for v in (*phantoms, *extras)}
    return Confirmed(views=tuple(v for v in views if v.service_id not in gone),
                     phantoms=tuple(phantoms), extras=tuple(extras))


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
