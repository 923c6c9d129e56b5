"""Object metadata and status conditions, common to every kind.

Owns the ``metadata`` schema (defaulting ``namespace`` to ``default``), the condition
schema, their typed views :class:`ObjectMeta` and :class:`Condition`, and
:func:`set_condition` (Kubernetes ``meta.SetStatusCondition`` semantics). Runs in every
process. Invariants: server-owned metadata (``uid``, ``resourceVersion``, ``generation``,
``creationTimestamp``, ``deletionTimestamp``) is type-checked but passed through untouched
— the store owns it; a condition's ``lastTransitionTime`` changes only when its status does;
labels, annotations and finalizers are bounded in number (:mod:`ecsm_actors.api.limits`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from ecsm_actors.api import limits as L
from ecsm_actors.api.enums import ConditionStatus
from ecsm_actors.api.names import dns_label, label_value, qualified_name, timestamp_check
from ecsm_actors.api.scalars import Enum, Int, Str
from ecsm_actors.api.schema import ListOf, MapOf, Obj, Prop
from ecsm_actors.api.wire import WireObject, wire

DEFAULT_NAMESPACE = "default"

#: Fields of ``metadata`` written by the registry, never by users.
SERVER_OWNED = ("uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp")

TIMESTAMP = Str(check=timestamp_check)

METADATA = Obj(
    {
        "name": Prop(node=Str(check=dns_label), required=True),
        "namespace": Prop(node=Str(check=dns_label), default=DEFAULT_NAMESPACE),
        "uid": Prop(node=Str(nonempty=True)),
        "resourceVersion": Prop(node=Int(minimum=0)),
        "generation": Prop(node=Int(minimum=0)),
        "creationTimestamp": Prop(node=TIMESTAMP),
        "deletionTimestamp": Prop(node=TIMESTAMP),
        "labels": Prop(node=MapOf(Str(check=label_value), key_check=qualified_name,
                                  max_items=L.MAX_LABELS)),
        "annotations": Prop(node=MapOf(Str(), key_check=qualified_name,
                                       max_items=L.MAX_ANNOTATIONS)),
        "finalizers": Prop(node=ListOf(Str(check=qualified_name), unique=True,
                                       max_items=L.MAX_FINALIZERS)),
    }
)

CONDITION = Obj(
    {
        "type": Prop(node=Str(nonempty=True), required=True),
        "status": Prop(node=Enum(ConditionStatus), required=True),
        "reason": Prop(node=Str(), default=""),
        "message": Prop(node=Str(), default=""),
        "lastTransitionTime": Prop(node=TIMESTAMP),
    }
)

CONDITIONS = ListOf(CONDITION, unique_key="type")


@dataclass(frozen=True, kw_only=True)
class ObjectMeta(WireObject):
    name: str
    namespace: str = DEFAULT_NAMESPACE
    uid: str | None = None
    resource_version: int | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: Mapping[str, str] = wire(omit_empty=True, default_factory=dict)
    annotations: Mapping[str, str] = wire(omit_empty=True, default_factory=dict)
    finalizers: tuple[str, ...] = wire(omit_empty=True, default=())

    @property
    def key(self) -> str:
        """The workqueue / registry key ``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @property
    def deleting(self) -> bool:
        return self.deletion_timestamp is not None


@dataclass(frozen=True, kw_only=True)
class Condition(WireObject):
    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None

    @property
    def is_true(self) -> bool:
        return self.status is ConditionStatus.TRUE


def find_condition(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def set_condition(
    conditions: Iterable[Condition], new: Condition, *, now: str
) -> tuple[Condition, ...]:
    """``conditions`` with ``new`` set: its ``lastTransitionTime`` is ``now`` when the
    status changes (or the condition is new) and is kept otherwise. Order is stable."""
    out: list[Condition] = []
    found = False
    for c in conditions:
        if c.type != new.type:
            out.append(c)
            continue
        found = True
        moved = c.status != new.status or c.last_transition_time is None
        out.append(replace(new, last_transition_time=now if moved else c.last_transition_time))
    if not found:
        out.append(replace(new, last_transition_time=now))
    return tuple(out)
