"""What every top-level typed view (ECSMService, ECSMHpa) shares: building it from a
wire dict through ``prepare`` and the metadata shortcuts.

Runs in controllers and the CLI. Invariant: a view built by :meth:`TopLevelObject.from_dict`
is always defaulted and valid, because ``prepare`` (and ``prepare_status``) run first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from ecsm_actors.api.meta import ObjectMeta
from ecsm_actors.api.validation import prepare, prepare_status
from ecsm_actors.api.wire import WireObject
from ecsm_actors.errors import Cause, Invalid


class TopLevelObject(WireObject):
    """Mixin of the kinds' views; subclasses are dataclasses with a ``metadata`` field."""

    KIND: ClassVar[str]
    metadata: ObjectMeta

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Prepare (default + validate) ``data`` and build the view. Raises ``Invalid``."""
        kind = cls.KIND
        if not isinstance(data, Mapping) or data.get("kind") != kind:
            raise Invalid(f"not an {kind}", [Cause(field="kind", message=f"expected {kind}")])
        obj = prepare(data)
        if "status" in obj:
            obj["status"] = prepare_status(kind, obj["status"])
        return cls.from_wire(obj)

    def to_dict(self) -> dict[str, Any]:
        return self.to_wire()

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def key(self) -> str:
        return self.metadata.key
