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
* ``prepare_status(kind: str, status: dict) -> dict``: validates a status block.
* ``template_hash(template: dict) -> str``: stable 10-hex-char revision of a service
  template (canonical JSON of the defaulted template).
* typed views: ``ECSMService.from_dict(d)`` / ``.to_dict()``, ``ECSMHpa`` likewise.
"""

from __future__ import annotations

from ecsm_actors.api.kinds import API_VERSION, KINDS, KindInfo, resolve_kind
from ecsm_actors.api.validation import prepare, prepare_status
from ecsm_actors.api.revision import template_hash

__all__ = [
    "API_VERSION",
    "KINDS",
    "KindInfo",
    "resolve_kind",
    "prepare",
    "prepare_status",
    "template_hash",
]
