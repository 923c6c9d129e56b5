"""The planner's vocabulary: what was observed, what is desired, the actions, the summary.

Runs inside the service-controller process. Frozen value types only, no logic beyond
derived counts; :mod:`.plan` turns ``Desired`` + ``RevisionView``s into a ``Plan``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

#: Container statuses that are on their way to ``running``: leave them alone.
SETTLING = frozenset({"created", "creating", "starting", "pending", "restarting", "deploying"})
RUNNING = "running"
PAUSED = "paused"


class Policy(StrEnum):
    STATIC = "static"
    DYNAMIC = "dynamic"


@dataclass(frozen=True, kw_only=True, slots=True)
class ContainerView:
    """One observed container of a revision."""

    name: str
    node_name: str
    status: str
    #: ECSM refused to deploy it (no room): it holds nothing, and starting it again is a
    #: scale-up that goes through admission.
    refused: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class RevisionView:
    """One observed ECSM service of this object (one template revision)."""

    revision: str
    service_id: str
    factor: int
    node_names: tuple[str, ...]
    online: int
    policy: str = Policy.DYNAMIC
    created: str = ""
    #: None when the containers were not listed this pass.
    containers: tuple[ContainerView, ...] | None = None

    @property
    def instances(self) -> int:
        """Instances that exist or are asked for (what counts against maxSurge)."""
        return max(self.factor, len(self.containers)) if self.containers is not None \
            else self.factor

    @property
    def ready(self) -> int:
        return min(self.online, self.factor) if self.factor else 0

    def statuses_by_node(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for c in self.containers or ():
            out.setdefault(c.node_name, []).append(c.status)
        return out


@dataclass(frozen=True, kw_only=True)
class Desired:
    """What the spec asks for, resolved."""

    revision: str
    policy: Policy
    replicas: int
    #: Static: the placement. Dynamic: the candidate pool (every known node when empty).
    nodes: tuple[str, ...]
    max_surge: int
    max_unavailable: int
    history_limit: int
    #: ``platformSpecific.action == Load``: instances exist but are not started.
    load: bool = False


@dataclass(frozen=True, kw_only=True)
class Create:
    revision: str
    factor: int
    node_names: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Scale:
    revision: str
    service_id: str
    factor: int
    node_names: tuple[str, ...]
    policy: str


@dataclass(frozen=True, kw_only=True)
class Delete:
    revision: str
    service_id: str


@dataclass(frozen=True, kw_only=True)
class Restart:
    revision: str
    container_name: str
    action: str


Action = Create | Scale | Delete | Restart


@dataclass(frozen=True, kw_only=True)
class Summary:
    """The observation condensed into what the status reports."""

    desired: int
    replicas: int
    ready: int
    updated: int
    available: int
    min_available: int
    service_ids: tuple[str, ...]
    rolling: bool
    complete: bool
    down_nodes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Plan:
    actions: tuple[Action, ...]
    summary: Summary
    notes: tuple[str, ...] = field(default=())

    @property
    def idle(self) -> bool:
        return not self.actions
