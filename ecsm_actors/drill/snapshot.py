"""What the drill observes at one instant: registry objects, ECSM services, processes.

Runs in the drill process. The data types are pure (the invariant checkers take them as
input, unit tests build them by hand); :func:`take` is the one impure function, reading
the registry (one LIST per kind) then ECSM (one paged list of services).

Naming contract shared with the service controller: the ECSM service of revision ``rev``
of ECSMService ``namespace/name`` is called ``{namespace}.{name}.{rev}``, where ``rev`` is
``api.template_hash(spec.template)`` (10 hex chars). :func:`parse_ecsm_name` recognises
such names; any other ECSM service is not ours.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ecsm_actors.api import template_hash

_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_OURS = re.compile(rf"^(?P<ns>{_LABEL})\.(?P<name>{_LABEL})\.(?P<rev>[0-9a-f]{{10}})$")


@dataclass(frozen=True, kw_only=True)
class OwnerRef:
    namespace: str
    name: str
    revision: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_ecsm_name(name: str) -> OwnerRef | None:
    """``default.web.0123456789`` → OwnerRef; a name that is not ours → None."""
    m = _OURS.match(name)
    if m is None:
        return None
    return OwnerRef(namespace=m["ns"], name=m["name"], revision=m["rev"])


def ecsm_name(namespace: str, name: str, revision: str) -> str:
    return f"{namespace}.{name}.{revision}"


def revision_of(obj: Mapping[str, Any]) -> str:
    return template_hash((obj.get("spec") or {}).get("template") or {})


def desired_replicas(obj: Mapping[str, Any]) -> int:
    strategy = (obj.get("spec") or {}).get("deploymentStrategy") or {}
    if strategy.get("type") == "Static":
        return len(strategy.get("nodes") or [])
    return int(strategy.get("replicas") or 0)


@dataclass(frozen=True, kw_only=True)
class EcsmServiceView:
    """The fields of an ECSM service row the invariants look at."""

    id: str
    name: str
    factor: int
    policy: str = ""
    nodes: tuple[str, ...] = ()
    instance_online: int = 0
    image: str = ""           # "name@tag" from imageList[0]

    @classmethod
    def from_wire(cls, row: Mapping[str, Any]) -> EcsmServiceView:
        images = row.get("imageList") or []
        image = f"{images[0].get('name')}@{images[0].get('tag')}" if images else ""
        return cls(
            id=str(row.get("id", "")),
            name=str(row.get("name", "")),
            factor=int(row.get("factor") or 0),
            policy=str(row.get("policy") or ""),
            nodes=tuple(sorted(str(n.get("nodeName", "")) for n in row.get("nodeList") or [])),
            instance_online=int(row.get("instanceOnline") or 0),
            image=image,
        )


@dataclass(frozen=True, kw_only=True)
class NodeMemory:
    """One ECSM node's container memory (``node/status``), bytes."""

    name: str
    total: int
    free: int
    online: bool = True


@dataclass(frozen=True, kw_only=True)
class CapacityView:
    """Memory as ECSM reports it (read only under capacity pressure)."""

    nodes: tuple[NodeMemory, ...] = ()
    #: ECSM service name → node name → bytes its deployed containers hold there.
    held: dict[str, dict[str, int]] = field(default_factory=dict)
    #: ECSM service name → bytes one of its containers reserves (its ``memoryLimit``).
    instance_memory: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """Registry objects by ``(kind, "namespace/name")`` and every ECSM service (and,
    under capacity pressure, node memory and what each ECSM service holds where)."""

    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    ecsm: tuple[EcsmServiceView, ...] = ()
    taken_at: float = 0.0
    capacity: CapacityView | None = None

    def of_kind(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        return sorted((key, obj) for (k, key), obj in self.objects.items() if k == kind)

    def ecsm_by_owner(self) -> dict[str, list[EcsmServiceView]]:
        """Our ECSM services grouped by owner key ``namespace/name``."""
        out: dict[str, list[EcsmServiceView]] = {}
        for svc in self.ecsm:
            ref = parse_ecsm_name(svc.name)
            if ref is not None:
                out.setdefault(ref.key, []).append(svc)
        return out


@dataclass(frozen=True, kw_only=True)
class ProcessRecord:
    """A process the drill saw belonging to the system (pid reuse is told apart by
    ``create_time``)."""

    pid: int
    create_time: float
    name: str = ""


class _Registry(Protocol):
    def list(self, kind: str, namespace: str | None = None) -> Any: ...


class _Services(Protocol):
    def list_all(self, *, page_size: int = ...) -> list[Any]: ...


def take(registry: _Registry, services: _Services, now: float) -> Snapshot:
    """Read both sides. Raises whatever the clients raise (the caller retries).

    ECSM is read in big pages: a list spread over pages while services come and go could
    show one twice or miss one, which would read as a duplicate or a missing service.
    """
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for kind in ("ECSMService", "ECSMHpa"):
        for obj in registry.list(kind).items:
            meta = obj.get("metadata") or {}
            objects[(kind, f"{meta.get('namespace', 'default')}/{meta.get('name')}")] = obj
    rows = services.list_all(page_size=1000)
    views = tuple(EcsmServiceView.from_wire(getattr(r, "raw", r)) for r in rows)
    return Snapshot(objects=objects, ecsm=views, taken_at=now)
