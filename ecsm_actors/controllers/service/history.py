"""Revision history kept on the ECSMService itself: one annotation per template revision.

Runs inside the service-controller process (which records revisions) and ``ecsm-cli
rollout`` (which reads them for ``history`` and ``undo``).

``metadata.annotations["ecsm.sh/revision-<hash>"]`` holds the compact JSON
``{"revision": N, "template": {...}}``: ``N`` orders revisions like a Deployment's
``deployment.kubernetes.io/revision`` (the current one always has the highest number, so
an undo renumbers the template it returns to), and ``template`` is what ``undo`` applies.
ECSM keeps the running revisions; the annotations keep the templates — a Static revision
scaled to zero is deleted from ECSM but can still be rolled back to.

Invariants: the current revision is always recorded; at most ``history_limit`` other
revisions are kept (newest numbers first) plus any that still exist on ECSM.

Secrets: a recorded template never holds a password. Its ``vsoa.password`` is stored as
``<redacted>`` (:data:`ecsm_actors.api.secrets.REDACTED`): the marker says the revision
had one, nothing (no digest either) says which — a digest of a guessable password would
be a way to guess it. Records written by an older version with the password in clear are
rewritten redacted by the controller's next pass (:func:`updated_annotations`), and every
output redacts them meanwhile (:func:`redacted_annotations`). A ``vsoa.passwordFile`` is
recorded as its path.

``undo`` restores the recorded template and **keeps the password the object has now**
(:func:`restore`), as a Kubernetes rollback restores a pod template but not the Secrets it
refers to: a password rotated since is not undone. When the revision used another
password, the result is therefore a new revision (its template, today's password), and
``ecsm-cli rollout undo`` says so. An undo is refused, with one line asking to re-apply the
password, when the revision had a password and the object has none now (or has a
``passwordFile`` instead), and when the revision differs from the current template only by
its password (or, for ``passwordFile``, only by the file's content): there is nothing the
recorded template could restore.

The revision hash of a template with ``vsoa.passwordFile`` covers the file's content, which
only the controller reads: outside it the current revision is the newest record of the
current template (:func:`current_revision`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ecsm_actors.api import template_hash
from ecsm_actors.api.secrets import (
    has_clear_secret,
    password_file_of,
    password_of,
    redact_template,
)
from ecsm_actors.errors import Invalid

PREFIX = "ecsm.sh/revision-"


@dataclass(frozen=True, kw_only=True)
class RevisionRecord:
    revision: str
    number: int
    template: dict[str, Any]


def annotation_key(revision: str) -> str:
    return PREFIX + revision


def records(annotations: Mapping[str, str] | None) -> dict[str, RevisionRecord]:
    """Revision hash → record; unreadable annotations are skipped."""
    out: dict[str, RevisionRecord] = {}
    for key, value in (annotations or {}).items():
        if not key.startswith(PREFIX):
            continue
        try:
            doc = json.loads(value)
            out[key[len(PREFIX):]] = RevisionRecord(revision=key[len(PREFIX):],
                                                    number=int(doc["revision"]),
                                                    template=dict(doc["template"]))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def encode(number: int, template: Mapping[str, Any]) -> str:
    """The annotation value of a revision: its number and its template, password redacted."""
    return json.dumps({"revision": number, "template": redact_template(template)},
                      sort_keys=True, separators=(",", ":"))


def _redacted_value(value: str) -> str:
    """An annotation value with a clear password rewritten redacted (else unchanged)."""
    try:
        doc = json.loads(value)
        template = doc["template"]
        if not isinstance(template, dict) or not has_clear_secret(template):
            return value
        return encode(int(doc["revision"]), template)
    except (ValueError, KeyError, TypeError):
        return value


def redacted_annotations(annotations: Mapping[str, str] | None) -> dict[str, str]:
    """``annotations`` as an output may show them: revision records redacted."""
    return {k: _redacted_value(v) if k.startswith(PREFIX) and isinstance(v, str) else v
            for k, v in (annotations or {}).items()}


def updated_annotations(annotations: Mapping[str, str] | None, *, current: str,
                        template: Mapping[str, Any], history_limit: int,
                        on_ecsm: Collection[str]) -> dict[str, str] | None:
    """The annotations with ``current`` recorded as the newest revision and old ones
    pruned, or None when nothing changes."""
    before = dict(annotations or {})
    known = records(before)
    after = {k: v for k, v in before.items() if not k.startswith(PREFIX)}
    top = max((r.number for r in known.values()), default=0)
    mine = known.get(current)
    newest = mine is not None and mine.number == top and \
        sum(1 for r in known.values() if r.number == top) == 1
    if newest:
        after[annotation_key(current)] = before[annotation_key(current)]
    else:  # first seen, or returned to by an undo: it becomes the newest revision
        after[annotation_key(current)] = encode(top + 1, template)
    olds = sorted((r for r in known.values() if r.revision != current),
                  key=lambda r: r.number, reverse=True)
    for i, rec in enumerate(olds):
        if i < history_limit or rec.revision in on_ecsm:
            after[annotation_key(rec.revision)] = before[annotation_key(rec.revision)]
    for key, value in after.items():  # records of an older version, password in clear
        if key.startswith(PREFIX):
            after[key] = _redacted_value(value)
    return None if after == before else after


def previous(annotations: Mapping[str, str] | None,
             current: str | None) -> RevisionRecord | None:
    """The newest recorded revision other than ``current`` (what ``undo`` returns to)."""
    olds = [r for r in records(annotations).values() if r.revision != current]
    return max(olds, key=lambda r: r.number, default=None)


def current_revision(obj: Mapping[str, Any]) -> str | None:
    """The revision of the object's current template as the service controller names it;
    None when it cannot be known here yet (a ``passwordFile`` template the controller has
    not recorded). Raises ``Invalid`` for an invalid template."""
    meta = obj.get("metadata") or {}
    template = (obj.get("spec") or {}).get("template") or {}
    if password_file_of(template) is None:
        return template_hash(template, name=meta.get("name"))
    same = [r for r in records(meta.get("annotations")).values() if r.template == template]
    return max(same, key=lambda r: r.number).revision if same else None


def restore(record: RevisionRecord, current: Mapping[str, Any]) -> dict[str, Any] | None:
    """The template ``undo`` writes to return to ``record``: its recorded template with the
    password ``current`` has now; None when the revision had a password and ``current``
    has none to give it."""
    template = dict(record.template)
    vsoa = template.get("vsoa")
    if not isinstance(vsoa, dict) or vsoa.get("password") in (None, ""):
        return template
    password = password_of(current)
    if password is None:
        return None
    template["vsoa"] = {**vsoa, "password": password}
    return template


def same_revision(record: RevisionRecord, restored: Mapping[str, Any], name: str) -> bool | None:
    """Whether ``restored`` (from :func:`restore`) is exactly ``record``'s revision again;
    None when that cannot be known here (``passwordFile``)."""
    if password_file_of(restored) is not None:
        return None
    try:
        return template_hash(restored, name=name) == record.revision
    except Invalid:
        return False

