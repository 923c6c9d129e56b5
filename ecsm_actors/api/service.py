"""Typed view of ECSMService: frozen dataclasses over the prepared wire dict.

Owns :class:`ECSMService`, its spec (strategy, rollout, …) and status (snake_case
attributes, camelCase wire); the template's parts live in ``api.template``. Runs in
controllers and the CLI to read specs and build statuses. Invariants: ``from_dict`` runs
``prepare`` (and ``prepare_status``) first, so a view is always defaulted and valid;
``ECSMService.from_dict(d).to_dict() == prepare(d)`` (with a prepared status).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from ecsm_actors.api.enums import StrategyType, UpgradeType
from ecsm_actors.api.kinds import API_VERSION
from ecsm_actors.api.meta import Condition, ObjectMeta, find_condition
from ecsm_actors.api.service_schema import PreemptionPolicy as PreemptionPolicy
from ecsm_actors.api.template import Template
from ecsm_actors.api.toplevel import TopLevelObject
from ecsm_actors.api.wire import WireObject, wire

KIND = "ECSMService"


#: Condition types of the capacity admission (besides Available/Progressing/Degraded).
PREEMPTED = "Preempted"  # True while some instances are held down for a preemptor
REPLICA_FAILURE = "ReplicaFailure"  # True while instances are not placed for lack of room


@dataclass(frozen=True, kw_only=True)
class DeploymentStrategy(WireObject):
    type: StrategyType
    nodes: tuple[str, ...] = wire(omit_empty=True, default=())  # Static
    node_pool: tuple[str, ...] = wire(omit_empty=True, default=())  # Dynamic
    replicas: int | None = None  # Dynamic only (defaulted to 1)

    @property
    def desired_replicas(self) -> int:
        """``replicas`` for Dynamic, one per listed node for Static."""
        if self.type is StrategyType.STATIC:
            return len(self.nodes)
        return self.replicas or 0

    @property
    def candidate_nodes(self) -> tuple[str, ...]:
        """The node names ECSM may place instances on (``node.names`` on the wire)."""
        return self.nodes if self.type is StrategyType.STATIC else self.node_pool


@dataclass(frozen=True, kw_only=True)
class UpgradeStrategy(WireObject):
    type: UpgradeType = UpgradeType.NEVER


def resolve_int_or_percent(value: int | str, total: int, *, round_up: bool) -> int:
    """An absolute count from ``3`` or ``"25%"`` of ``total`` (Kubernetes rounding:
    maxSurge rounds up, maxUnavailable rounds down)."""
    if isinstance(value, int):
        return value
    scaled = int(value.rstrip("%")) * total / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


@dataclass(frozen=True, kw_only=True)
class Rollout(WireObject):
    max_surge: int | str = 1
    max_unavailable: int | str = 0
    revision_history_limit: int = 2

    def bounds(self, replicas: int) -> tuple[int, int]:
        """``(max_surge, max_unavailable)`` as counts for ``replicas``; like Kubernetes,
        if both resolve to 0, max_unavailable becomes 1 so a rollout can progress."""
        surge = resolve_int_or_percent(self.max_surge, replicas, round_up=True)
        unavailable = resolve_int_or_percent(self.max_unavailable, replicas, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        return surge, unavailable


@dataclass(frozen=True, kw_only=True)
class ServiceSpec(WireObject):
    deployment_strategy: DeploymentStrategy
    upgrade_strategy: UpgradeStrategy = wire(default_factory=UpgradeStrategy)
    template: Template
    rollout: Rollout = wire(default_factory=Rollout)
    depends_on: tuple[str, ...] = ()
    priority: int = 0
    preemption_policy: PreemptionPolicy = PreemptionPolicy.PREEMPT_LOWER_PRIORITY


@dataclass(frozen=True, kw_only=True)
class Preemption(WireObject):
    """A preemption suffered, kept in the victim's status while it holds: the victim runs
    ``instances`` fewer than its spec (Static: without ``nodes``) until room comes back.
    This record is the source of truth a restarted controller carries on from."""

    preemptor: str  # namespace/name
    priority: int
    instances: int
    nodes: tuple[str, ...] = wire(omit_empty=True, default=())
    time: str | None = None
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class PreemptionGiven(WireObject):
    """A preemption this service caused (informational, the last few kept)."""

    victim: str  # namespace/name
    priority: int
    instances: int
    time: str | None = None
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class ServiceStatus(WireObject):
    replicas: int = 0
    ready_replicas: int = 0
    updated_replicas: int = 0
    available_replicas: int = 0
    observed_generation: int = 0
    underlying_service_ids: tuple[str, ...] = wire(
        name="underlyingServiceIDs", omit_empty=True, default=()
    )
    current_revision: str | None = None
    conditions: tuple[Condition, ...] = wire(omit_empty=True, default=())
    preemptions: tuple[Preemption, ...] = wire(omit_empty=True, default=())
    preemptions_given: tuple[PreemptionGiven, ...] = wire(omit_empty=True, default=())

    def condition(self, type_: str) -> Condition | None:
        return find_condition(self.conditions, type_)


@dataclass(frozen=True, kw_only=True)
class ECSMService(TopLevelObject):
    KIND: ClassVar[str] = KIND

    api_version: str = API_VERSION
    kind: str = KIND
    metadata: ObjectMeta
    spec: ServiceSpec
    status: ServiceStatus | None = None

    @property
    def desired_replicas(self) -> int:
        return self.spec.deployment_strategy.desired_replicas

    @property
    def revision(self) -> str:
        return self.spec.template.revision
