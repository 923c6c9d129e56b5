"""Capacity arithmetic: node memory room, what a revision's new instances need, where they fit.

Runs inside the service-controller process. :func:`place` and :func:`reserve` are pure;
:class:`Rooms` is the process-wide cache of ECSM's node figures (``node/status``
``memoryTotal``/``memoryFree``: the memory containers may reserve and what their memory
limits leave) that every worker's admission reads under one lock.

The model is the platform's (DESIGN §11): an instance reserves its service's memory limit
on the node it is deployed on; it fits while the node's reservations stay within its
total. A node whose total is 0 (ECSM reports no figure) is not limited: admission never
holds a service back on a guess. A Dynamic revision's new instances may go to any node of
its pool that is up; a Static revision's new instances go one to each newly listed node.

Invariants of :class:`Rooms`: a decision's placements are *assumed* (subtracted from the
cached figures) from the moment it is taken until a refresh that started after the ECSM
write carrying it finished, so two workers never both take the same room, and a refresh
never counts an applied placement twice.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

MIB = 1 << 20
#: What an instance reserves when neither its template nor its image sets a memory limit
#: (the platform's documented default).
DEFAULT_RESERVATION = 512 * MIB


@dataclass(frozen=True, kw_only=True)
class NodeRoom:
    """One node's figures: ``total`` bytes containers may reserve, ``free`` still free."""

    name: str
    total: int
    free: int
    up: bool = True

    @property
    def limited(self) -> bool:
        """False when ECSM reports no figure: nothing is refused on this node."""
        return self.total > 0

    def slots(self, memory: int) -> int:
        """Instances of ``memory`` bytes that fit here now (a large number when unlimited)."""
        if not self.limited:
            return 1 << 30
        return max(0, self.free) // max(memory, 1)


@dataclass(frozen=True, kw_only=True)
class Demand:
    """New instances of one revision. Dynamic: ``count`` anywhere on ``nodes`` that is up.
    Static: one on each of ``nodes`` (``count`` is ``len(nodes)``)."""

    memory: int
    nodes: tuple[str, ...]
    count: int
    static: bool = False

    @classmethod
    def on_nodes(cls, memory: int, nodes: Sequence[str]) -> Demand:
        return cls(memory=memory, nodes=tuple(nodes), count=len(nodes), static=True)


def place(rooms: Mapping[str, NodeRoom], demand: Demand) -> tuple[str, ...]:
    """Where the demanded instances go now: at most ``demand.count`` node names (Dynamic:
    the node with the most free room first, spreading; Static: the listed nodes with
    room, in order). A node ECSM does not report is not limited (ECSM judges it)."""
    if demand.count <= 0:
        return ()
    if demand.static:
        return tuple(n for n in demand.nodes
                     if n not in rooms or rooms[n].slots(demand.memory) >= 1)
    free = {n: rooms[n] for n in demand.nodes if n in rooms and rooms[n].up}
    unknown = [n for n in demand.nodes if n not in rooms]
    out: list[str] = []
    left = {n: r.free for n, r in free.items()}
    for _ in range(demand.count):
        candidates = [n for n, r in free.items()
                      if not r.limited or left[n] >= demand.memory]
        if not candidates:
            if unknown:
                out.append(unknown[len(out) % len(unknown)])
                continue
            break
        best = max(candidates, key=lambda n: (not free[n].limited, left[n],
                                              -demand.nodes.index(n)))
        left[best] -= demand.memory
        out.append(best)
    return tuple(out)


def reserve(rooms: Mapping[str, NodeRoom], placements: Iterable[str],
            memory: int, *, release: bool = False) -> dict[str, NodeRoom]:
    """``rooms`` with ``memory`` taken (or given back) once per placement."""
    out = dict(rooms)
    sign = 1 if release else -1
    for n in placements:
        if n in out and out[n].limited:
            out[n] = replace(out[n], free=out[n].free + sign * memory)
    return out


def memory_of(template: Mapping[str, Any], image_config: Mapping[str, Any] | None,
              to_mib: Callable[[Any], int]) -> int:
    """Bytes one instance reserves: the template's ``resources.limits.memory``, else the
    image config's ``sylixos.resources.memory.memoryLimitMB``, else the default."""
    limit = ((template.get("resources") or {}).get("limits") or {}).get("memory")
    if limit is not None:
        return max(1, to_mib(limit)) * MIB
    resources = ((image_config or {}).get("sylixos") or {}).get("resources") or {}
    mb = (resources.get("memory") or {}).get("memoryLimitMB") if isinstance(
        resources, dict) else None
    if isinstance(mb, int) and not isinstance(mb, bool) and mb > 0:
        return mb * MIB
    return DEFAULT_RESERVATION


@dataclass
class _Assumed:
    placements: tuple[str, ...]
    memory: int
    applied_at: float | None = None


@dataclass
class Rooms:
    """The node figures shared by the workers, refreshed from ``fetch`` when older than
    ``max_age``, minus the placements assumed since (see the module docstring).

    ``fetch`` returns objects with ``name``, ``memory_total``, ``memory_free`` and
    ``online`` (``Clientset.nodes.capacities().values()``)."""

    fetch: Callable[[], Iterable[Any]]
    max_age: float
    clock: Callable[[], float] = time.monotonic
    #: Held around one admission decision (read, decide, assume).
    lock: threading.RLock = field(default_factory=threading.RLock)
    _rooms: dict[str, NodeRoom] = field(default_factory=dict)
    _ids: dict[str, str] = field(default_factory=dict)
    _at: float | None = None
    _assumed: dict[int, _Assumed] = field(default_factory=dict)
    _tokens: itertools.count[int] = field(default_factory=itertools.count)

    def get(self) -> dict[str, NodeRoom]:
        """Node name → room now (cached figures minus assumed placements)."""
        with self.lock:
            now = self.clock()
            if self._at is None or now - self._at > self.max_age:
                self._refresh(now)
            rooms = dict(self._rooms)
            for a in self._assumed.values():
                rooms = reserve(rooms, a.placements, a.memory)
            return rooms

    def node_ids(self) -> dict[str, str]:
        with self.lock:
            if self._at is None:
                self.get()
            return dict(self._ids)

    def _refresh(self, started: float) -> None:
        rooms: dict[str, NodeRoom] = {}
        ids: dict[str, str] = {}
        for n in self.fetch():
            rooms[n.name] = NodeRoom(name=n.name, total=int(n.memory_total),
                                     free=int(n.memory_free), up=bool(n.online))
            ids[n.name] = str(getattr(n, "id", n.name))
        self._rooms, self._ids, self._at = rooms, ids, started
        # the refresh saw every placement applied before it started
        self._assumed = {t: a for t, a in self._assumed.items()
                         if a.applied_at is None or a.applied_at >= started}

    def invalidate(self) -> None:
        """Refetch at the next read (after an eviction: room came back)."""
        with self.lock:
            self._at = None

    def assume(self, placements: Sequence[str], memory: int) -> int:
        """Take the room of ``placements`` until a later refresh shows them; a token for
        :meth:`applied` / :meth:`forget`."""
        with self.lock:
            token = next(self._tokens)
            self._assumed[token] = _Assumed(placements=tuple(placements), memory=memory)
            return token

    def applied(self, token: int) -> None:
        with self.lock:
            if token in self._assumed:
                self._assumed[token].applied_at = self.clock()

    def forget(self, token: int) -> None:
        with self.lock:
            self._assumed.pop(token, None)
