"""Secrets in ECSMService objects: the field that holds one, the placeholder shown instead,
and the schema node that never quotes one.

Owns :data:`REDACTED` (``<redacted>``, what every output shows in place of a secret),
:class:`Secret` (the schema node of a secret string) and pure helpers over a
``spec.template`` wire dict: :func:`password_of`, :func:`password_file_of`,
:func:`redact_template`, :func:`has_clear_secret`, :func:`keep_stored` (the placeholder
left in an edited template → the stored value) and :func:`scrub` (a password taken out of
a message). Runs in every process: the registry
validates with :class:`Secret`, the service controller redacts the templates it keeps in
annotations, ``ecsm-cli`` redacts what it prints.

One field is secret: ``spec.template.vsoa.password``. ``vsoa.passwordFile`` names a file
that only the service controller reads (:mod:`ecsm_actors.controllers.service.secret_file`);
the path is no secret and is shown as it is.

Invariants: a :class:`Secret` never puts the value it walks into a message (a wrong type
says ``got integer <redacted>``), and it refuses the placeholder itself, so a redacted
``ecsm-cli get -o yaml`` applied back cannot set a password to ``<redacted>``; no helper
mutates its input; a template without a password comes back equal to its input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ecsm_actors.api.scalars import Str
from ecsm_actors.api.schema import INVALID, Walk

#: Shown in place of a secret value; refused as a value.
REDACTED = "<redacted>"

PLACEHOLDER_MESSAGE = (f'"{REDACTED}" is what ecsm-cli shows in place of a password, not a '
                       f"password: give the real one (ecsm-cli get -o yaml --show-secrets "
                       f"shows the stored one)")


def _kind(value: Any) -> str:
    """The type of a value in the words of :func:`ecsm_actors.api.echo.describe`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


class Secret(Str):
    """A string that is a secret: checked like :class:`Str`, never quoted in a cause."""

    def wrong_type(self, value: Any, path: str, w: Walk) -> Any:
        w.error(path, f"expected {self.expected}, got {_kind(value)} {REDACTED}")
        return INVALID

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        out = super().walk(value, path, w)
        if out == REDACTED:
            w.error(path, PLACEHOLDER_MESSAGE)
            return INVALID
        return out


def _vsoa(template: Mapping[str, Any] | None) -> Mapping[str, Any]:
    vsoa = template.get("vsoa") if isinstance(template, Mapping) else None
    return vsoa if isinstance(vsoa, Mapping) else {}


def password_of(template: Mapping[str, Any] | None) -> str | None:
    """The inline VSOA password of a template (None when it has none or an empty one)."""
    value = _vsoa(template).get("password")
    return value if isinstance(value, str) and value else None


def password_file_of(template: Mapping[str, Any] | None) -> str | None:
    """The path of the template's ``vsoa.passwordFile`` (None when it has none)."""
    value = _vsoa(template).get("passwordFile")
    return value if isinstance(value, str) and value else None


def has_clear_secret(template: Mapping[str, Any] | None) -> bool:
    """True when the template holds a password that is not the placeholder."""
    value = _vsoa(template).get("password")
    return value not in (None, "", REDACTED)


def redact_template(template: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``template`` with its VSOA password (if any) replaced by :data:`REDACTED`."""
    out = dict(template)
    vsoa = _vsoa(template)
    if vsoa.get("password") not in (None, ""):
        out["vsoa"] = {**vsoa, "password": REDACTED}
    return out


def keep_stored(edited: Mapping[str, Any], stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """``edited`` with a password left as :data:`REDACTED` replaced by the one of ``stored``
    (an edit that did not touch the password keeps it). Without a stored password the
    placeholder stays, and validation refuses it with :data:`PLACEHOLDER_MESSAGE`."""
    out = dict(edited)
    vsoa = _vsoa(edited)
    kept = password_of(stored)
    if vsoa.get("password") == REDACTED and kept is not None:
        out["vsoa"] = {**vsoa, "password": kept}
    return out


def scrub(text: str, password: object) -> str:
    """``text`` (e.g. ECSM's answer to a request that carried ``password``) with the
    password replaced by :data:`REDACTED`."""
    if isinstance(password, str) and password:
        return text.replace(password, REDACTED)
    return text
