"""Defaulting and validation entry points (placeholder: the full schema is being written).

TEMPORARY minimal implementation so other layers can run; replaced by the full schema.
"""

from __future__ import annotations

from typing import Any

from ecsm_actors.api.kinds import API_VERSION, KINDS
from ecsm_actors.errors import Cause, Invalid


def prepare(obj: dict[str, Any]) -> dict[str, Any]:
    causes = []
    if obj.get("apiVersion") != API_VERSION:
        causes.append(Cause(field="apiVersion", message=f"expected {API_VERSION}"))
    if obj.get("kind") not in KINDS:
        causes.append(Cause(field="kind", message="expected ECSMService or ECSMHpa"))
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        causes.append(Cause(field="metadata.name", message="required"))
    if causes:
        raise Invalid("object is invalid", causes)
    out = dict(obj)
    out["metadata"] = {"namespace": "default", **meta}
    out.setdefault("spec", {})
    return out


def prepare_status(kind: str, status: dict[str, Any]) -> dict[str, Any]:
    return dict(status)
