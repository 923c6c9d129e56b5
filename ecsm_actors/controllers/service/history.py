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
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

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
    return json.dumps({"revision": number, "template": template}, sort_keys=True,
                      separators=(",", ":"))


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
    return None if after == before else after


def previous(annotations: Mapping[str, str] | None, current: str) -> RevisionRecord | None:
    """The newest recorded revision other than ``current`` (what ``undo`` returns to)."""
    olds = [r for r in records(annotations).values() if r.revision != current]
    return max(olds, key=lambda r: r.number, default=None)
