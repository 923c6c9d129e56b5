"""The enumerations of group ``ecsm.sh/v1`` (CRD spellings; ECSM's wire spellings differ).

Owns every closed vocabulary of the API objects. Pure; runs in every process. The schemas
validate against these values and the typed views expose them as ``StrEnum`` members.
"""

from __future__ import annotations

from enum import StrEnum


class StrategyType(StrEnum):
    STATIC = "Static"  # one instance per node listed in ``nodes``
    DYNAMIC = "Dynamic"  # ``replicas`` instances placed on ``nodePool``


class UpgradeType(StrEnum):
    NEVER = "Never"
    LARGER = "Larger"  # upgrade when a higher version of the image appears
    ALWAYS = "Always"  # upgrade on any new image


class PullPolicy(StrEnum):
    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class ImageAction(StrEnum):
    RUN = "Run"  # create and start
    LOAD = "Load"  # create only


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class MetricSourceType(StrEnum):
    RESOURCE = "Resource"


class ResourceName(StrEnum):
    CPU = "cpu"
    MEMORY = "memory"


class MetricTargetType(StrEnum):
    UTILIZATION = "Utilization"


class SelectPolicy(StrEnum):
    MAX = "Max"
    MIN = "Min"
    DISABLED = "Disabled"


class PolicyType(StrEnum):
    PODS = "Pods"
    PERCENT = "Percent"
