"""API objects of group ``ecsm.sh/v1``: ECSMService and ECSMHpa.

Owns the types (dataclasses, camelCase on the wire), defaulting and validation. Runs in
every process; the registry calls :func:`prepare` on every write, so a bad object is
refused with field-level causes and never stored.

Contract used by the rest of the project (stable names):

* ``API_VERSION = "ecsm.sh/v1"``; ``KINDS``: kind name → :class:`KindInfo` (plural,
  short names, namespaced).
* ``resolve_kind(word) -> str``: ``esvc``/``ecsmservice``/``ecsmservices``/``ECSMService``
  → ``"ECSMService"``; ``hpa``/``ecsmhpa``/``ecsmhpas`` → ``"ECSMHpa"``; unknown → Invalid.
* ``prepare(obj: dict) -> dict``: checks apiVersion/kind, applies defaults (metadata and
  spec), validates with field paths (unknown fields rejected with their path) and returns
  the normalised wire dict. Raises :class:`ecsm_actors.errors.Invalid` with causes.
  Server-owned metadata (uid, resourceVersion, generation, creationTimestamp,
  deletionTimestamp) is passed through untouched; the store owns it.
* ``prepare_spec(obj: dict) -> dict``: ``prepare`` of what a write of spec and metadata
  keeps (``status`` and server-owned metadata left out, unchecked), the object not copied.
* ``prepare_status(kind: str, status: dict) -> dict``: validates a status block.
* ``configure_limits(cfg.api)``: the configurable upper bounds (replicas, nodes, memory,
  disk) of :mod:`.limits`; the registry applies them at start.
* ``template_hash(template: dict, *, name=None) -> str``: stable 10-hex-char revision of a
  service template (canonical JSON of the defaulted template).
* typed views: ``ECSMService.from_dict(d)`` / ``.to_dict()``, ``ECSMHpa`` likewise.
* quantities: ``parse_quantity``, ``to_bytes``, ``to_mib``; timestamps:
  ``format_timestamp``, ``parse_timestamp``, ``now_timestamp``; conditions:
  ``Condition``, ``set_condition``, ``find_condition``.

Module map: schema (the strict walker), echo (bounded, escaped quotes of input), limits
(upper bounds), names (name/timestamp syntax), quantity, image,
enums, meta (metadata, conditions), wire (typed view ⇄ dict), service_schema/hpa_schema
(rules and defaults), validation (prepare), revision (template_hash), service/hpa (views).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecsm_actors.lazy import lazy_exports

if TYPE_CHECKING:
    from ecsm_actors.api.enums import (
        ConditionStatus,
        ImageAction,
        MetricSourceType,
        MetricTargetType,
        PolicyType,
        PullPolicy,
        ResourceName,
        SelectPolicy,
        StrategyType,
        UpgradeType,
    )
    from ecsm_actors.api.hpa import ECSMHpa, HpaSpec, HpaStatus
    from ecsm_actors.api.image import ImageRef, parse_image
    from ecsm_actors.api.kinds import API_VERSION, KINDS, KindInfo, resolve_kind
    from ecsm_actors.api.limits import configure_limits
    from ecsm_actors.api.meta import Condition, ObjectMeta, find_condition, set_condition
    from ecsm_actors.api.names import format_timestamp, now_timestamp, parse_timestamp
    from ecsm_actors.api.quantity import parse_quantity, to_bytes, to_mib
    from ecsm_actors.api.revision import template_hash
    from ecsm_actors.api.service import ECSMService, ServiceSpec, ServiceStatus, Template
    from ecsm_actors.api.validation import prepare, prepare_spec, prepare_status

# The names below are imported on first use (PEP 562), so a process pays only for the
# parts it touches: the service controller needs template_hash, not validation or the
# HPA types (every dataclass costs about a millisecond to create at import).
_EXPORTS = {
    "ConditionStatus": "enums",
    "ImageAction": "enums",
    "MetricSourceType": "enums",
    "MetricTargetType": "enums",
    "PolicyType": "enums",
    "PullPolicy": "enums",
    "ResourceName": "enums",
    "SelectPolicy": "enums",
    "StrategyType": "enums",
    "UpgradeType": "enums",
    "ECSMHpa": "hpa",
    "HpaSpec": "hpa",
    "HpaStatus": "hpa",
    "ImageRef": "image",
    "parse_image": "image",
    "API_VERSION": "kinds",
    "KINDS": "kinds",
    "KindInfo": "kinds",
    "resolve_kind": "kinds",
    "Condition": "meta",
    "ObjectMeta": "meta",
    "find_condition": "meta",
    "set_condition": "meta",
    "format_timestamp": "names",
    "now_timestamp": "names",
    "parse_timestamp": "names",
    "parse_quantity": "quantity",
    "to_bytes": "quantity",
    "to_mib": "quantity",
    "template_hash": "revision",
    "ECSMService": "service",
    "ServiceSpec": "service",
    "ServiceStatus": "service",
    "Template": "service",
    "prepare": "validation",
    "prepare_spec": "validation",
    "prepare_status": "validation",
    "configure_limits": "limits",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = [
    "API_VERSION",
    "KINDS",
    "KindInfo",
    "resolve_kind",
    "prepare",
    "prepare_spec",
    "prepare_status",
    "configure_limits",
    "template_hash",
    "ECSMService",
    "ServiceSpec",
    "ServiceStatus",
    "Template",
    "ECSMHpa",
    "HpaSpec",
    "HpaStatus",
    "ObjectMeta",
    "Condition",
    "ConditionStatus",
    "find_condition",
    "set_condition",
    "ImageRef",
    "parse_image",
    "parse_quantity",
    "to_bytes",
    "to_mib",
    "format_timestamp",
    "parse_timestamp",
    "now_timestamp",
    "StrategyType",
    "UpgradeType",
    "PullPolicy",
    "ImageAction",
    "MetricSourceType",
    "MetricTargetType",
    "ResourceName",
    "SelectPolicy",
    "PolicyType",
]
