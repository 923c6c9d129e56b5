"""Schema of ECSMHpa: defaults and validation of ``spec`` and ``status``.

Owns the rules of an ECSMHpa and its defaults, those of Kubernetes' autoscaling/v2:
minReplicas ``1``, metrics ``[cpu Utilization 80]``, paused ``false``, tolerance absent
(the controller's default applies), behavior.scaleUp = stabilization 0, policies
Pods 4/15s + Percent 100/15s, select Max; behavior.scaleDown = stabilization unset (the controller's
default, 300 s),
Percent 100/15s, select Max. ``behavior.scaleUp/scaleDown.tolerance`` absent (then
``spec.tolerance``, then the controller's). Runs in every process (the registry on every
write). Every field has an upper bound (:mod:`ecsm_actors.api.limits`; min/maxReplicas
follow ``api.max_replicas``).
"""

from __future__ import annotations

from typing import Any

from ecsm_actors.api.enums import (
    MetricSourceType,
    MetricTargetType,
    PolicyType,
    ResourceName,
    SelectPolicy,
)
from ecsm_actors.api import limits as L
from ecsm_actors.api.kinds import API_VERSION
from ecsm_actors.api.limits import bounded
from ecsm_actors.api.meta import CONDITIONS, TIMESTAMP
from ecsm_actors.api.names import dns_label
from ecsm_actors.api.scalars import Bool, Enum, Float, Int, Number, Str
from ecsm_actors.api.schema import MISSING, ListOf, Obj, Prop, Walk, join

DEFAULT_METRICS: list[dict[str, Any]] = [
    {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
    }
]
DEFAULT_SCALE_UP: dict[str, Any] = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
# scaleDown's window is left unset when the user gives none: the controller then applies
# cfg.hpa.downscale_stabilization (300 s by default, as in Kubernetes).
DEFAULT_SCALE_DOWN: dict[str, Any] = {
    "stabilizationWindowSeconds": None,
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


def _check_metric(out: dict[str, Any], path: str, w: Walk) -> None:
    resource = out.get("resource", {})
    value = resource.get("target", {}).get("averageUtilization")
    if resource.get("name") == ResourceName.MEMORY and value is not None and value > 100:
        w.error(
            join(path, "resource.target.averageUtilization"),
            f"must be between 1 and 100 for memory, got {value}",
        )


def _check_rules(out: dict[str, Any], path: str, w: Walk) -> None:
    if out.get("selectPolicy") == SelectPolicy.DISABLED or w.failed(join(path, "policies")):
        return
    if not out.get("policies"):
        w.error(join(path, "policies"), "must have at least one policy (or selectPolicy Disabled)")


def _check_spec(out: dict[str, Any], path: str, w: Walk) -> None:
    low, high = out.get("minReplicas"), out.get("maxReplicas")
    if low is not None and high is not None and low > high:
        w.error(join(path, "minReplicas"), f"must be less than or equal to maxReplicas ({high})")


def _replicas() -> Int:
    return bounded(Int(minimum=1), "maximum", lambda lim: lim.max_replicas)


POLICY = Obj(
    {
        "type": Prop(node=Enum(PolicyType), required=True),
        "value": Prop(node=Int(minimum=1, maximum=L.MAX_POLICY_VALUE), required=True),
        "periodSeconds": Prop(node=Int(minimum=1, maximum=1800), required=True),
    }
)


def _rules(defaults: dict[str, Any]) -> Obj:
    return Obj(
        {
            "stabilizationWindowSeconds": Prop(
                node=Int(minimum=0, maximum=3600),
                default=(MISSING if defaults["stabilizationWindowSeconds"] is None
                         else defaults["stabilizationWindowSeconds"]),
            ),
            "selectPolicy": Prop(node=Enum(SelectPolicy), default=defaults["selectPolicy"]),
            "policies": Prop(node=ListOf(POLICY, max_items=L.MAX_POLICIES),
                             default=defaults["policies"]),
            # Kubernetes' per-direction tolerance; absent: spec.tolerance, then hpa.tolerance.
            "tolerance": Prop(node=Float(minimum=0.0, maximum=1.0)),
        },
        post=_check_rules,
    )


METRIC = Obj(
    {
        "type": Prop(node=Enum(MetricSourceType), default=MetricSourceType.RESOURCE.value),
        "resource": Prop(
            node=Obj(
                {
                    "name": Prop(node=Enum(ResourceName), required=True),
                    "target": Prop(
                        node=Obj(
                            {
                                "type": Prop(
                                    node=Enum(MetricTargetType),
                                    default=MetricTargetType.UTILIZATION.value,
                                ),
                                "averageUtilization": Prop(
                                    node=Int(minimum=1, maximum=L.MAX_CPU_UTILIZATION),
                                    required=True,
                                ),
                            }
                        ),
                        required=True,
                    ),
                }
            ),
            required=True,
        ),
    },
    post=_check_metric,
)

SPEC = Obj(
    {
        "scaleTargetRef": Prop(
            node=Obj(
                {
                    "apiVersion": Prop(node=Enum([API_VERSION])),
                    "kind": Prop(node=Enum(["ECSMService"]), default="ECSMService"),
                    "name": Prop(node=Str(check=dns_label), required=True),
                }
            ),
            required=True,
        ),
        "minReplicas": Prop(node=_replicas(), default=1),
        "maxReplicas": Prop(node=_replicas(), required=True),
        "metrics": Prop(
            node=ListOf(
                METRIC,
                min_items=1,
                unique_by=lambda m: m.get("resource", {}).get("name"),
                unique_field="resource.name",
            ),
            default=DEFAULT_METRICS,
        ),
        "behavior": Prop(
            node=Obj(
                {
                    "scaleUp": Prop(node=_rules(DEFAULT_SCALE_UP), default={}),
                    "scaleDown": Prop(node=_rules(DEFAULT_SCALE_DOWN), default={}),
                }
            ),
            default={},
        ),
        "tolerance": Prop(node=Float(minimum=0.0, maximum=1.0)),
        "paused": Prop(node=Bool(), default=False),
    },
    post=_check_spec,
)

_COUNT = Int(minimum=0)

METRIC_STATUS = Obj(
    {
        "type": Prop(node=Enum(MetricSourceType), default=MetricSourceType.RESOURCE.value),
        "resource": Prop(
            node=Obj(
                {
                    "name": Prop(node=Enum(ResourceName), required=True),
                    "current": Prop(
                        node=Obj(
                            {
                                "averageUtilization": Prop(node=Number(minimum=0)),
                                "averageValue": Prop(node=Number(minimum=0)),
                            }
                        ),
                        required=True,
                    ),
                }
            ),
            required=True,
        ),
    }
)

STATUS = Obj(
    {
        "currentReplicas": Prop(node=_COUNT, default=0),
        "desiredReplicas": Prop(node=_COUNT, default=0),
        "observedGeneration": Prop(node=_COUNT, default=0),
        "currentMetrics": Prop(node=ListOf(METRIC_STATUS)),
        "lastScaleTime": Prop(node=TIMESTAMP),
        "conditions": Prop(node=CONDITIONS),
        "recommendations": Prop(
            node=ListOf(
                Obj(
                    {
                        "timestamp": Prop(node=TIMESTAMP, required=True),
                        "replicas": Prop(node=_COUNT, required=True),
                    }
                )
            )
        ),
        "scaleEvents": Prop(
            node=ListOf(
                Obj(
                    {
                        "timestamp": Prop(node=TIMESTAMP, required=True),
                        "replicaChange": Prop(node=Int(), required=True),
                        "reason": Prop(node=Str()),
                    }
                )
            )
        ),
    }
)
