"""Typed view of ECSMHpa: frozen dataclasses over the prepared wire dict.

Owns :class:`ECSMHpa` and its parts (snake_case attributes, camelCase wire). Runs in the
HPA controller and the CLI. Invariants: ``from_dict`` runs ``prepare`` (and
``prepare_status``) first, so a view is always defaulted and valid;
``ECSMHpa.from_dict(d).to_dict() == prepare(d)`` (with a prepared status).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ecsm_actors.api.enums import (
    MetricSourceType,
    MetricTargetType,
    PolicyType,
    ResourceName,
    SelectPolicy,
)
from ecsm_actors.api.hpa_schema import DEFAULT_METRICS, DEFAULT_SCALE_DOWN, DEFAULT_SCALE_UP
from ecsm_actors.api.kinds import API_VERSION
from ecsm_actors.api.meta import Condition, ObjectMeta, find_condition
from ecsm_actors.api.toplevel import TopLevelObject
from ecsm_actors.api.wire import WireObject, wire

KIND = "ECSMHpa"


@dataclass(frozen=True, kw_only=True)
class ScaleTargetRef(WireObject):
    api_version: str | None = None
    kind: str = "ECSMService"
    name: str


@dataclass(frozen=True, kw_only=True)
class MetricTarget(WireObject):
    type: MetricTargetType = MetricTargetType.UTILIZATION
    average_utilization: int  # percent


@dataclass(frozen=True, kw_only=True)
class ResourceMetricSource(WireObject):
    name: ResourceName
    target: MetricTarget


@dataclass(frozen=True, kw_only=True)
class MetricSpec(WireObject):
    type: MetricSourceType = MetricSourceType.RESOURCE
    resource: ResourceMetricSource


@dataclass(frozen=True, kw_only=True)
class ScalingPolicy(WireObject):
    type: PolicyType
    value: int
    period_seconds: int


@dataclass(frozen=True, kw_only=True)
class ScalingRules(WireObject):
    stabilization_window_seconds: int | None = None
    select_policy: SelectPolicy = SelectPolicy.MAX
    policies: tuple[ScalingPolicy, ...] = ()
    tolerance: float | None = None  # None: spec.tolerance, then the controller's default


def _scale_up() -> ScalingRules:
    return ScalingRules.from_wire(DEFAULT_SCALE_UP)


def _scale_down() -> ScalingRules:
    return ScalingRules.from_wire(DEFAULT_SCALE_DOWN)


def _metrics() -> tuple[MetricSpec, ...]:
    return tuple(MetricSpec.from_wire(m) for m in DEFAULT_METRICS)


@dataclass(frozen=True, kw_only=True)
class Behavior(WireObject):
    scale_up: ScalingRules = wire(default_factory=_scale_up)
    scale_down: ScalingRules = wire(default_factory=_scale_down)


@dataclass(frozen=True, kw_only=True)
class HpaSpec(WireObject):
    scale_target_ref: ScaleTargetRef
    min_replicas: int = 1
    max_replicas: int
    metrics: tuple[MetricSpec, ...] = wire(default_factory=_metrics)
    behavior: Behavior = wire(default_factory=Behavior)
    tolerance: float | None = None  # None: the controller's default
    paused: bool = False

    def target_utilization(self, resource: ResourceName | str) -> int | None:
        """The target averageUtilization (percent) for ``cpu``/``memory``, if any."""
        for m in self.metrics:
            if m.resource.name == resource:
                return m.resource.target.average_utilization
        return None


@dataclass(frozen=True, kw_only=True)
class MetricValueStatus(WireObject):
    average_utilization: int | float | None = None  # percent
    average_value: int | float | None = None  # bytes (memory) or percent of a cpu


@dataclass(frozen=True, kw_only=True)
class ResourceMetricStatus(WireObject):
    name: ResourceName
    current: MetricValueStatus


@dataclass(frozen=True, kw_only=True)
class MetricStatus(WireObject):
    type: MetricSourceType = MetricSourceType.RESOURCE
    resource: ResourceMetricStatus


@dataclass(frozen=True, kw_only=True)
class Recommendation(WireObject):
    """One desired-replicas recommendation; the history feeds the stabilization window."""

    timestamp: str
    replicas: int


@dataclass(frozen=True, kw_only=True)
class ScaleEvent(WireObject):
    """One scale action; the history feeds the scaling policies' periods."""

    timestamp: str
    replica_change: int  # + for up, - for down
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class HpaStatus(WireObject):
    current_replicas: int = 0
    desired_replicas: int = 0
    observed_generation: int = 0
    current_metrics: tuple[MetricStatus, ...] = wire(omit_empty=True, default=())
    last_scale_time: str | None = None
    conditions: tuple[Condition, ...] = wire(omit_empty=True, default=())
    recommendations: tuple[Recommendation, ...] = wire(omit_empty=True, default=())
    scale_events: tuple[ScaleEvent, ...] = wire(omit_empty=True, default=())

    def condition(self, type_: str) -> Condition | None:
        return find_condition(self.conditions, type_)


@dataclass(frozen=True, kw_only=True)
class ECSMHpa(TopLevelObject):
    KIND: ClassVar[str] = KIND

    api_version: str = API_VERSION
    kind: str = KIND
    metadata: ObjectMeta
    spec: HpaSpec
    status: HpaStatus | None = None

    @property
    def target_key(self) -> str:
        """Registry key ``namespace/name`` of the scaled ECSMService (same namespace)."""
        return f"{self.metadata.namespace}/{self.spec.scale_target_ref.name}"
