"""Secrets in what ``ecsm-cli`` prints: every VSOA password shown as ``<redacted>``.

Runs in the CLI process only; pure functions of wire dicts. Owns :func:`redact` (an object
as ``get -o yaml|json``, ``watch -o yaml|json``, ``describe`` and the ``edit`` buffer show
it: ``spec.template.vsoa.password`` and the templates kept in the revision annotations)
and :func:`keep_stored` (what ``edit`` writes back: a password left as ``<redacted>`` is
the stored one). ``get -o yaml|json --show-secrets`` is the one way to print a password.
Objects of any kind go through; only those with a template holding a password change.
"""

from __future__ import annotations

from typing import Any

from ecsm_actors.api import secrets
from ecsm_actors.controllers.service import history

Obj = dict[str, Any]


def redact(obj: Obj) -> Obj:
    """``obj`` with every secret replaced by ``<redacted>`` (``obj`` is not modified)."""
    if not isinstance(obj, dict):
        return obj
    out = dict(obj)
    spec = obj.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("template"), dict):
        out["spec"] = {**spec, "template": secrets.redact_template(spec["template"])}
    meta = obj.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        out["metadata"] = {**meta,
                           "annotations": history.redacted_annotations(meta["annotations"])}
    return out


def keep_stored(edited: Obj, stored: Obj) -> Obj:
    """``edited`` (an object as the user saved it from a redacted view) with a password
    left as ``<redacted>`` replaced by the one ``stored`` has."""
    spec = edited.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("template"), dict):
        return edited
    stored_template = (stored.get("spec") or {}).get("template")
    template = secrets.keep_stored(spec["template"], stored_template)
    return {**edited, "spec": {**spec, "template": template}}
