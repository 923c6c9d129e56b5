"""The ECSMHpa spec as the HPA algorithm sees it: parsed from the wire dict, defaults applied.

Runs in the hpa-controller process (and in unit tests). Pure: no I/O, no clock.

The registry has already defaulted and validated the object (``api.prepare``); this
module still applies the Kubernetes defaults itself so that the algorithm never depends
on what another layer filled in, and refuses a spec it cannot act on with
:class:`~ecsm_actors.errors.TerminalError` (reason ``InvalidSpec``) instead of guessing.

Defaults are those of ``autoscaling/v2``:

* no ``metrics`` → one CPU utilization target of 80 %;
* ``behavior.scaleUp``: window 0 s, policies Percent 100 / 15 s and Pods 4 / 15 s, Max;
* ``behavior.scaleDown``: window ``cfg.hpa.downscale_stabilization`` (300 s), policy
  Percent 100 / 15 s, Max;
* ``tolerance``: ``cfg.hpa.tolerance`` (0.1); ``behavior.scaleUp.tolerance`` /
  ``behavior.scaleDown.tolerance`` (Kubernetes' per-direction tolerance) fall back to
  ``spec.tolerance`` and then to it. A usage ratio ``r`` is within the tolerances when
  ``1 - scaleDown.tolerance <= r <= 1 + scaleUp.tolerance``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypeGuard

from ecsm_actors.errors import TerminalError

DEFAULT_CPU_UTILIZATION = 80
DEFAULT_TOLERANCE = 0.1
# Float noise must not push a ratio sitting exactly on a tolerance (55/50 =
# 1.1000000000000001) outside it.
_EPSILON = 1e-9


class ResourceName(StrEnum):
    CPU = "cpu"
    MEMORY = "memory"


class PolicyType(StrEnum):
    PODS = "Pods"
    PERCENT = "Percent"


class SelectPolicy(StrEnum):
    MAX = "Max"
    MIN = "Min"
    DISABLED = "Disabled"


@dataclass(frozen=True, kw_only=True)
class ScalingPolicy:
    """At most ``value`` Pods (or ``value`` percent) of change per ``period_seconds``."""

    type: PolicyType
    value: int
    period_seconds: float


@dataclass(frozen=True, kw_only=True)
class ScalingRules:
    """How one direction (up or down) may move (Kubernetes ``HPAScalingRules``)."""

    stabilization_window_seconds: float
    select_policy: SelectPolicy
    policies: tuple[ScalingPolicy, ...]
    #: Resolved: the rule's own, else ``spec.tolerance``, else ``hpa.tolerance``.
    tolerance: float = DEFAULT_TOLERANCE

    @property
    def longest_period(self) -> float:
        return max((p.period_seconds for p in self.policies), default=0.0)


@dataclass(frozen=True, kw_only=True)
class Tolerances:
    """How far a usage ratio may sit from 1.0, per direction, before a metric proposes a
    change (Kubernetes ``Tolerances.isWithin``)."""

    scale_up: float
    scale_down: float

    def within(self, ratio: float) -> bool:
        return (1.0 - self.scale_down - _EPSILON <= ratio
                <= 1.0 + self.scale_up + _EPSILON)

    def __str__(self) -> str:
        if self.scale_up == self.scale_down:
            return f"{self.scale_up:g}"
        return f"-{self.scale_down:g}/+{self.scale_up:g}"


@dataclass(frozen=True, kw_only=True)
class MetricTarget:
    """A Resource metric with a Utilization target: average utilization in percent."""

    resource: ResourceName
    average_utilization: float


@dataclass(frozen=True, kw_only=True)
class HpaSpec:
    target_kind: str
    target_name: str
    min_replicas: int
    max_replicas: int
    metrics: tuple[MetricTarget, ...]
    scale_up: ScalingRules
    scale_down: ScalingRules
    tolerance: float
    paused: bool

    @property
    def tolerances(self) -> Tolerances:
        return Tolerances(scale_up=self.scale_up.tolerance,
                          scale_down=self.scale_down.tolerance)


def default_scale_up() -> ScalingRules:
    return ScalingRules(
        stabilization_window_seconds=0.0,
        select_policy=SelectPolicy.MAX,
        policies=(
            ScalingPolicy(type=PolicyType.PERCENT, value=100, period_seconds=15.0),
            ScalingPolicy(type=PolicyType.PODS, value=4, period_seconds=15.0),
        ),
    )


def default_scale_down(window: float) -> ScalingRules:
    return ScalingRules(
        stabilization_window_seconds=window,
        select_policy=SelectPolicy.MAX,
        policies=(ScalingPolicy(type=PolicyType.PERCENT, value=100, period_seconds=15.0),),
    )


def parse_spec(spec: Any, *, default_tolerance: float, downscale_stabilization: float) -> HpaSpec:
    """Build an :class:`HpaSpec` from ``obj["spec"]``; raise TerminalError if unusable."""
    if not isinstance(spec, dict):
        raise _invalid("spec", "expected a mapping")
    ref = _mapping(spec, "scaleTargetRef")
    name = ref.get("name")
    if not isinstance(name, str) or not name:
        raise _invalid("spec.scaleTargetRef.name", "required")
    kind = ref.get("kind", "ECSMService")
    if kind != "ECSMService":
        raise _invalid("spec.scaleTargetRef.kind", f"cannot scale a {kind!r}, only ECSMService")
    max_replicas = _int(spec, "maxReplicas", None)
    min_replicas = _int(spec, "minReplicas", 1)
    if max_replicas < 1:
        raise _invalid("spec.maxReplicas", "must be at least 1")
    if min_replicas < 0 or min_replicas > max_replicas:
        raise _invalid("spec.minReplicas", f"must be between 0 and maxReplicas ({max_replicas})")
    tolerance = spec.get("tolerance")
    if tolerance is None:
        tolerance = default_tolerance
    if not _is_number(tolerance) or tolerance < 0:
        raise _invalid("spec.tolerance", "must be a number >= 0")
    behavior = spec.get("behavior") or {}
    if not isinstance(behavior, dict):
        raise _invalid("spec.behavior", "expected a mapping")
    return HpaSpec(
        target_kind=kind,
        target_name=name,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        metrics=_metrics(spec.get("metrics")),
        scale_up=_rules(behavior.get("scaleUp"), "spec.behavior.scaleUp", default_scale_up(),
                        float(tolerance)),
        scale_down=_rules(behavior.get("scaleDown"), "spec.behavior.scaleDown",
                          default_scale_down(downscale_stabilization), float(tolerance)),
        tolerance=float(tolerance),
        paused=bool(spec.get("paused", False)),
    )


def _metrics(raw: Any) -> tuple[MetricTarget, ...]:
    if not raw:
        return (MetricTarget(resource=ResourceName.CPU,
                             average_utilization=DEFAULT_CPU_UTILIZATION),)
    if not isinstance(raw, list):
        raise _invalid("spec.metrics", "expected a list")
    out = []
    for i, m in enumerate(raw):
        path = f"spec.metrics[{i}]"
        if not isinstance(m, dict) or m.get("type", "Resource") != "Resource":
            raise _invalid(f"{path}.type", "only Resource metrics are supported")
        res = _mapping(m, "resource", path)
        try:
            resource = ResourceName(res.get("name", ""))
        except ValueError as e:
            raise _invalid(f"{path}.resource.name", "expected cpu or memory") from e
        target = _mapping(res, "target", f"{path}.resource")
        if target.get("type", "Utilization") != "Utilization":
            raise _invalid(f"{path}.resource.target.type", "only Utilization is supported")
        value = target.get("averageUtilization")
        if not _is_number(value) or value <= 0:
            raise _invalid(f"{path}.resource.target.averageUtilization", "must be > 0")
        out.append(MetricTarget(resource=resource, average_utilization=float(value)))
    return tuple(out)


def _rules(raw: Any, path: str, default: ScalingRules, tolerance: float) -> ScalingRules:
    if raw is None:
        return replace(default, tolerance=tolerance)
    if not isinstance(raw, dict):
        raise _invalid(path, "expected a mapping")
    own = raw.get("tolerance")
    if own is not None:
        if not _is_number(own) or own < 0:
            raise _invalid(f"{path}.tolerance", "must be a number >= 0")
        tolerance = float(own)
    window = raw.get("stabilizationWindowSeconds")
    if window is None:
        window = default.stabilization_window_seconds
    if not _is_number(window) or window < 0:
        raise _invalid(f"{path}.stabilizationWindowSeconds", "must be a number >= 0")
    try:
        select = SelectPolicy(raw.get("selectPolicy") or SelectPolicy.MAX)
    except ValueError as e:
        raise _invalid(f"{path}.selectPolicy", "expected Max, Min or Disabled") from e
    policies = default.policies
    if raw.get("policies"):
        if not isinstance(raw["policies"], list):
            raise _invalid(f"{path}.policies", "expected a list")
        policies = tuple(_policy(p, f"{path}.policies[{i}]")
                         for i, p in enumerate(raw["policies"]))
    return ScalingRules(stabilization_window_seconds=float(window), select_policy=select,
                        policies=policies, tolerance=tolerance)


def _policy(raw: Any, path: str) -> ScalingPolicy:
    if not isinstance(raw, dict):
        raise _invalid(path, "expected a mapping")
    try:
        ptype = PolicyType(raw.get("type", ""))
    except ValueError as e:
        raise _invalid(f"{path}.type", "expected Pods or Percent") from e
    value = raw.get("value")
    period = raw.get("periodSeconds")
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise _invalid(f"{path}.value", "must be an integer > 0")
    if not _is_number(period) or period <= 0:
        raise _invalid(f"{path}.periodSeconds", "must be > 0")
    return ScalingPolicy(type=ptype, value=value, period_seconds=float(period))


def _mapping(parent: dict[str, Any], key: str, path: str = "spec") -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise _invalid(f"{path}.{key}", "required mapping")
    return value


def _int(parent: dict[str, Any], key: str, default: int | None) -> int:
    value = parent.get(key, default)
    if value is None:
        raise _invalid(f"spec.{key}", "required")
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(f"spec.{key}", "must be an integer")
    return value


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _invalid(path: str, message: str) -> TerminalError:
    return TerminalError(f"{path}: {message}", reason="InvalidSpec")
