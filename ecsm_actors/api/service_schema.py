"""Schema of ECSMService: defaults and validation of ``spec`` and ``status``.

Owns the rules an ECSMService must satisfy (field paths as in ``spec.deploymentStrategy.
replicas``) and its defaults: upgradeStrategy.type ``Never``, imagePullPolicy
``IfNotPresent``, prepull ``false``, hostname = metadata.name, platformSpecific.action
``Run``, Dynamic replicas ``1``, rollout maxSurge ``1`` / maxUnavailable ``0`` /
revisionHistoryLimit ``2``, dependsOn ``[]``, priority ``0``, preemptionPolicy
``PreemptLowerPriority``. Runs in every process (the
registry on every write). The walk context carries ``name`` (metadata.name) for the
hostname default and the dependsOn self-reference check. Every field has an upper bound
(:mod:`ecsm_actors.api.limits`: replicas, nodes, memory and disk configurable).
``vsoa.password`` is a :class:`~ecsm_actors.api.secrets.Secret` (never quoted in a cause)
and excludes ``vsoa.passwordFile`` (an absolute path the service controller reads).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from ecsm_actors.api.enums import ImageAction, PullPolicy, StrategyType, UpgradeType
from ecsm_actors.api import limits as L
from ecsm_actors.api.image import image_check, parse_image
from ecsm_actors.api.limits import bounded
from ecsm_actors.api.meta import CONDITIONS
from ecsm_actors.api.names import absolute_path, dns_label, inline_check
from ecsm_actors.api.scalars import Bool, Enum, Int, IntOrPercent, Quantity, Str
from ecsm_actors.api.schema import ListOf, Obj, Prop, Walk, join
from ecsm_actors.api.secrets import Secret


class PreemptionPolicy(StrEnum):
    """``spec.preemptionPolicy``, as Kubernetes' PriorityClass field."""

    PREEMPT_LOWER_PRIORITY = "PreemptLowerPriority"  # may scale strictly lower ones down
    NEVER = "Never"  # waits for room instead


#: What a rule reads in place of an absent map (never written).
_NO_MAP: dict[str, Any] = {}


# Read once: an enum member read off its class costs about 0.1 µs (Python 3.11).
_STATIC, _DYNAMIC = StrategyType.STATIC.value, StrategyType.DYNAMIC.value


def _check_strategy(out: dict[str, Any], path: str, w: Walk) -> None:
    kind = out.get("type")
    if kind == _STATIC:
        if "nodes" not in out and not w.failed(join(path, "nodes")):
            w.error(join(path, "nodes"), "required for type Static (one instance per node)")
        if "nodePool" in out:
            w.error(join(path, "nodePool"), "forbidden for type Static (use nodes)")
        if "replicas" in out:
            w.error(
                join(path, "replicas"),
                "forbidden for type Static (one instance per listed node); use type Dynamic",
            )
    elif kind == _DYNAMIC:
        if "nodePool" not in out and not w.failed(join(path, "nodePool")):
            w.error(join(path, "nodePool"), "required for type Dynamic (candidate nodes)")
        if "nodes" in out:
            w.error(join(path, "nodes"), "forbidden for type Dynamic (use nodePool)")
        if "replicas" not in out and not w.failed(join(path, "replicas")):
            out["replicas"] = 1


def _check_cpu(out: dict[str, Any], path: str, w: Walk) -> None:
    high, low = out.get("highestPrio"), out.get("lowestPrio")
    if high is not None and low is not None and high > low:
        w.error(
            join(path, "highestPrio"),
            f"must not be numerically greater than lowestPrio ({low}); "
            "on SylixOS a lower number is a higher priority",
        )


def _check_template(out: dict[str, Any], path: str, w: Walk) -> None:
    image = out.get("image")
    platform = out.get("platformSpecific", _NO_MAP).get("platform", _NO_MAP)
    if image is None or "os" not in platform:
        return
    image_os = parse_image(image).os
    if image_os is not None and image_os != platform["os"]:
        w.error(
            join(path, "platformSpecific.platform.os"),
            f'"{platform["os"]}" contradicts the os "{image_os}" of image "{image}"',
        )


def _check_rollout(out: dict[str, Any], path: str, w: Walk) -> None:
    surge, unavailable = out.get("maxSurge"), out.get("maxUnavailable")
    if (surge == 0 or surge == "0%") and (unavailable == 0 or unavailable == "0%"):
        w.error(join(path, "maxUnavailable"), "may not be 0 when maxSurge is 0")


def _check_spec(out: dict[str, Any], path: str, w: Walk) -> None:
    depends_on = out.get("dependsOn")
    if not depends_on:
        return
    name = w.context.get("name")
    for i, dep in enumerate(depends_on):
        if dep == name:
            w.error(f"{join(path, 'dependsOn')}[{i}]", "a service may not depend on itself")


def _hostname_default(w: Walk) -> str | None:
    name = w.context.get("name")
    return name if isinstance(name, str) and dns_label(name) is None else None


def _str_list(*, check: Any = None, max_items: int | None = None,
              max_len: int = L.MAX_WORD) -> ListOf:
    return ListOf(Str(nonempty=True, check=check, max_len=max_len), unique=True,
                  max_items=max_items)


def _nodes() -> ListOf:
    return bounded(_str_list(), "max_items", lambda lim: lim.max_nodes)


def _replicas(*, minimum: int) -> Int:
    return bounded(Int(minimum=minimum), "maximum", lambda lim: lim.max_replicas)


def _surge() -> IntOrPercent:
    """maxSurge/maxUnavailable: more than every replica (100%) has no further effect."""
    return bounded(IntOrPercent(max_percent=100), "max_int", lambda lim: lim.max_replicas)


def _path() -> Str:
    return Str(check=absolute_path, max_len=L.MAX_PATH)


def _word() -> Str:
    return Str(nonempty=True, max_len=L.MAX_WORD)


@inline_check("'=' in {v}")
def _env_name(value: str) -> str | None:
    return "must not contain '='" if "=" in value else None


ENV_VAR = Obj(
    {
        "name": Prop(node=Str(nonempty=True, check=_env_name, max_len=L.MAX_ENV_NAME),
                     required=True),
        "value": Prop(node=Str(max_len=L.MAX_ENV_VALUE), default=""),
    }
)

VOLUME_MOUNT = Obj(
    {
        "name": Prop(node=_word(), required=True),
        "hostPath": Prop(node=_path(), required=True),
        "containerPath": Prop(node=_path(), required=True),
        "readOnly": Prop(node=Bool(), default=False),
    }
)


def _check_vsoa(out: dict[str, Any], path: str, w: Walk) -> None:
    if "password" in out and "passwordFile" in out:
        w.error(join(path, "passwordFile"), "may not be set together with password "
                "(give the password inline or in a file, not both)")


VSOA = Obj(
    {
        "password": Prop(node=Secret(max_len=L.MAX_PASSWORD)),
        "passwordFile": Prop(node=_path()),
        "port": Prop(node=Int(minimum=0, maximum=65535)),
        "healthCheck": Prop(
            node=Obj(
                {
                    "timeoutSeconds": Prop(node=Int(minimum=1, maximum=L.MAX_PROBE_TIMEOUT)),
                    "failureThreshold": Prop(
                        node=Int(minimum=1, maximum=L.MAX_PROBE_FAILURES)),
                    "initialDelaySeconds": Prop(
                        node=Int(minimum=0, maximum=L.MAX_PROBE_SECONDS)),
                    "periodSeconds": Prop(node=Int(minimum=1, maximum=L.MAX_PROBE_SECONDS)),
                }
            )
        ),
    },
    post=_check_vsoa,
)

SYLIXOS = Obj(
    {
        "devices": Prop(
            node=ListOf(
                Obj(
                    {
                        "path": Prop(node=_path(), required=True),
                        "access": Prop(node=_word()),
                    }
                ),
                unique_key="path",
                max_items=L.MAX_DEVICES,
            )
        ),
        "network": Prop(node=Obj({"ftpd": Prop(node=Bool()), "telnetd": Prop(node=Bool())})),
        "cpu": Prop(
            node=Obj(
                {
                    "highestPrio": Prop(node=Int(minimum=0, maximum=255)),
                    "lowestPrio": Prop(node=Int(minimum=0, maximum=255)),
                },
                post=_check_cpu,
            )
        ),
        "memory": Prop(node=Obj({"kheapLimit": Prop(node=bounded(
            Int(minimum=0), "maximum", lambda lim: lim.max_memory))})),
    }
)

PLATFORM_SPECIFIC = Obj(
    {
        "action": Prop(node=Enum(ImageAction), default=ImageAction.RUN.value),
        "root": Prop(
            node=Obj(
                {
                    "path": Prop(node=_path(), required=True),
                    "readOnly": Prop(node=Bool(), default=False),
                }
            )
        ),
        "platform": Prop(
            node=Obj({"os": Prop(node=_word()), "arch": Prop(node=_word())})
        ),
        "sylixos": Prop(node=SYLIXOS),
    }
)

TEMPLATE = Obj(
    {
        "image": Prop(node=Str(check=image_check, max_len=L.MAX_IMAGE), required=True),
        "imagePullPolicy": Prop(node=Enum(PullPolicy), default=PullPolicy.IF_NOT_PRESENT.value),
        "prepull": Prop(node=Bool(), default=False),
        "hostname": Prop(node=Str(nonempty=True, max_len=L.MAX_HOSTNAME),
                         default=_hostname_default),
        "command": Prop(node=ListOf(Str(max_len=L.MAX_ARG), max_items=L.MAX_COMMAND_ARGS)),
        "env": Prop(node=ListOf(ENV_VAR, unique_key="name",
                                max_items=L.MAX_ENV)),
        "resources": Prop(
            node=Obj(
                {
                    "limits": Prop(
                        node=Obj({
                            "memory": Prop(node=bounded(
                                Quantity(), "maximum", lambda lim: lim.max_memory)),
                            "disk": Prop(node=bounded(
                                Quantity(), "maximum", lambda lim: lim.max_disk)),
                        })
                    )
                }
            )
        ),
        "volumeMounts": Prop(
            node=ListOf(
                VOLUME_MOUNT,
                unique_key="containerPath",
                max_items=L.MAX_VOLUMES,
            )
        ),
        "vsoa": Prop(node=VSOA),
        "platformSpecific": Prop(node=PLATFORM_SPECIFIC, default={}),
    },
    post=_check_template,
)

DEPLOYMENT_STRATEGY = Obj(
    {
        "type": Prop(node=Enum(StrategyType), required=True),
        "nodes": Prop(node=_nodes()),
        "nodePool": Prop(node=_nodes()),
        "replicas": Prop(node=_replicas(minimum=0)),
    },
    post=_check_strategy,
)

SPEC = Obj(
    {
        "deploymentStrategy": Prop(node=DEPLOYMENT_STRATEGY, required=True),
        "upgradeStrategy": Prop(
            node=Obj({"type": Prop(node=Enum(UpgradeType), default=UpgradeType.NEVER.value)}),
            default={},
        ),
        "template": Prop(node=TEMPLATE, required=True),
        "rollout": Prop(
            node=Obj(
                {
                    "maxSurge": Prop(node=_surge(), default=1),
                    "maxUnavailable": Prop(node=_surge(), default=0),
                    "revisionHistoryLimit": Prop(
                        node=Int(minimum=0, maximum=L.MAX_REVISION_HISTORY), default=2),
                },
                post=_check_rollout,
            ),
            default={},
        ),
        "dependsOn": Prop(node=_str_list(check=dns_label, max_items=L.MAX_DEPENDS_ON),
                          default=[]),
        "priority": Prop(node=Int(minimum=-L.MAX_PRIORITY, maximum=L.MAX_PRIORITY), default=0),
        "preemptionPolicy": Prop(node=Enum(PreemptionPolicy),
                                 default=PreemptionPolicy.PREEMPT_LOWER_PRIORITY.value),
    },
    post=_check_spec,
)

_COUNT = Int(minimum=0)
_PRIORITY = Int(minimum=-L.MAX_PRIORITY, maximum=L.MAX_PRIORITY)
#: Preemption records kept in a status (suffered: one per preemptor; given: the last few).
MAX_PREEMPTIONS = 64

PREEMPTION = Obj(
    {
        "preemptor": Prop(node=Str(nonempty=True, max_len=L.MAX_WORD), required=True),
        "priority": Prop(node=_PRIORITY, required=True),
        "instances": Prop(node=_COUNT, required=True),
        "nodes": Prop(node=ListOf(Str(nonempty=True, max_len=L.MAX_WORD), unique=True)),
        "time": Prop(node=Str()),
        "reason": Prop(node=Str(max_len=1024), default=""),
    }
)

PREEMPTION_GIVEN = Obj(
    {
        "victim": Prop(node=Str(nonempty=True, max_len=L.MAX_WORD), required=True),
        "priority": Prop(node=_PRIORITY, required=True),
        "instances": Prop(node=_COUNT, required=True),
        "time": Prop(node=Str()),
        "reason": Prop(node=Str(max_len=1024), default=""),
    }
)

STATUS = Obj(
    {
        "replicas": Prop(node=_COUNT, default=0),
        "readyReplicas": Prop(node=_COUNT, default=0),
        "updatedReplicas": Prop(node=_COUNT, default=0),
        "availableReplicas": Prop(node=_COUNT, default=0),
        "observedGeneration": Prop(node=_COUNT, default=0),
        "underlyingServiceIDs": Prop(node=ListOf(Str(nonempty=True), unique=True)),
        "currentRevision": Prop(node=Str(nonempty=True)),
        "conditions": Prop(node=CONDITIONS),
        "preemptions": Prop(node=ListOf(PREEMPTION, unique_key="preemptor",
                                        max_items=MAX_PREEMPTIONS)),
        "preemptionsGiven": Prop(node=ListOf(PREEMPTION_GIVEN, max_items=MAX_PREEMPTIONS)),
    }
)
