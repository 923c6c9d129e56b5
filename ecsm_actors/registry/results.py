"""The typed results of :class:`~ecsm_actors.registry.client.RegistryClient`'s operations.

Plain frozen dataclasses built from a reply's ``result`` (wire names in camelCase become
snake_case); no I/O. Imported by every process that talks to the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ecsm_actors.errors import Internal, RegistryError, describe_input, registry_error_from_wire
from ecsm_actors.protocol import ApplyAction, Event


@dataclass(frozen=True, kw_only=True)
class ListResult:
    """One LIST answer. With paging (``limit``), ``continue_token`` is the token of the
    next page ("" on the last) and ``remaining`` the objects left after this page when
    it was read (best effort; None when the registry did not say)."""

    items: list[dict[str, Any]]
    resource_version: int
    epoch: str
    continue_token: str = ""
    remaining: int | None = None


@dataclass(frozen=True, kw_only=True)
class VersionList:
    """``(namespace/name, resourceVersion)`` of every listed object (a versions-only
    LIST: what an informer keeps), read at ``resource_version``."""

    versions: list[tuple[str, int]]
    resource_version: int
    epoch: str


@dataclass(frozen=True, kw_only=True)
class ApplyResult:
    object: dict[str, Any]
    action: ApplyAction


@dataclass(frozen=True, kw_only=True)
class WatchResult:
    """Events after the asked version, in order. ``resource_version``: the events are
    complete up to it — the registry's current version, or, when the reply was cut at a
    page (10,000 events), the last event's; ask again from there."""

    events: list[Event]
    resource_version: int
    epoch: str


@dataclass(frozen=True, kw_only=True)
class BatchItem:
    """The outcome of one write of a BATCH: ``ok`` with ``result`` as the single op
    answers it (the object; for APPLY ``{object, action}``; for DELETE the object or
    None), or ``error``, the typed error (``Aborted`` in an atomic batch that failed
    elsewhere)."""

    ok: bool
    result: Any = None
    error: RegistryError | None = None


@dataclass(frozen=True, kw_only=True)
class BatchResult:
    """A BATCH answer: one item per write, in order; ``replayed`` when it is the recorded
    outcome of an earlier attempt with the same request id."""

    results: list[BatchItem]
    resource_version: int
    replayed: bool = False


def batch_result(result: Any, count: int, *, replayed: bool) -> BatchResult:
    """The :class:`BatchResult` of a BATCH reply's ``result`` for ``count`` writes; a
    result of another shape is ``Internal`` (undecodable reply)."""
    outcomes = result.get("results") if isinstance(result, dict) else None
    if not isinstance(outcomes, list) or len(outcomes) != count:
        raise Internal(f"undecodable reply from the registry: BATCH of {count} writes "
                       f"answered with {describe_input(outcomes)}")
    items = []
    for outcome in outcomes:
        if isinstance(outcome, dict) and outcome.get("ok") is True:
            items.append(BatchItem(ok=True, result=outcome.get("result")))
            continue
        error = outcome.get("error") if isinstance(outcome, dict) else None
        raised = registry_error_from_wire(error if isinstance(error, dict) else {})
        raised.replayed = replayed
        items.append(BatchItem(ok=False, error=raised))
    rv = result.get("resourceVersion")
    return BatchResult(results=items, replayed=replayed,
                       resource_version=rv if isinstance(rv, int) else 0)
