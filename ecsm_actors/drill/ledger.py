"""The ledger of acknowledged registry writes: what the drill was told is stored.

Runs in the drill process (pure data, no I/O). For every object key the drill writes,
the ledger keeps the *acknowledged* state (from the registry's reply: the stored spec, its
generation and the drill's annotations, or "deleted") and, while a write is in flight or
its outcome is unknown (a timeout: it may or may not have been committed), the state
that write would produce. At the end either state is an acceptable outcome for that key;
anything else is a lost (or invented) write.

Invariants: writes to one key are serialised by the drill (one in flight at a time), so
an entry holds at most one pending state; an acknowledgement always clears it.
Fields owned by someone else are left out of the comparison: the replicas of an HPA
target belong to its HPA (see :func:`comparable_spec`).
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any

from ecsm_actors.drill.workload import ANNOTATION_PREFIX


@dataclass(frozen=True, kw_only=True)
class Expectation:
    """One acceptable final state of a key."""

    present: bool
    spec: dict[str, Any] | None = None
    generation: int = 0
    annotations: dict[str, str] = field(default_factory=dict)
    #: True when built from a registry reply (exact); False for an intended, undefaulted
    #: write whose fields must merely be contained in what is stored.
    exact: bool = True

    def describe(self) -> str:
        if not self.present:
            return "deleted"
        return f"generation>={self.generation}" if self.exact else "the intended write"


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    kind: str
    key: str
    acked: Expectation | None
    pending: Expectation | None = None

    def acceptable(self) -> tuple[Expectation, ...]:
        """The acknowledged state (absent if nothing was acknowledged yet) and, while a
        write's outcome is unknown, the state it would produce."""
        before = self.acked if self.acked is not None else DELETED
        return (before,) if self.pending is None else (before, self.pending)


def comparable_spec(kind: str, spec: dict[str, Any] | None, *, hpa_owned: bool) -> dict | None:
    """``spec`` without the fields another writer owns (an HPA target's replicas)."""
    if spec is None:
        return None
    out = copy.deepcopy(spec)
    if kind == "ECSMService" and hpa_owned:
        out.get("deploymentStrategy", {}).pop("replicas", None)
    return out


def drill_annotations(obj: dict[str, Any]) -> dict[str, str]:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return {k: v for k, v in annotations.items() if k.startswith(ANNOTATION_PREFIX)}


def expectation_from_object(obj: dict[str, Any], *, hpa_owned: bool) -> Expectation:
    """What the registry acknowledged: the stored object it sent back."""
    meta = obj.get("metadata") or {}
    return Expectation(
        present=True,
        spec=comparable_spec(str(obj.get("kind")), obj.get("spec"), hpa_owned=hpa_owned),
        generation=int(meta.get("generation") or 0),
        annotations=drill_annotations(obj),
        exact=True,
    )


def expectation_from_intent(obj: dict[str, Any], *, hpa_owned: bool) -> Expectation:
    """What a write about to be sent would store (its fields, before defaulting)."""
    return Expectation(
        present=True,
        spec=comparable_spec(str(obj.get("kind")), obj.get("spec"), hpa_owned=hpa_owned),
        annotations=drill_annotations(obj),
        exact=False,
    )


DELETED = Expectation(present=False)


class Ledger:
    """Thread-safe map ``(kind, key) → LedgerEntry``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], LedgerEntry] = {}
        self.acknowledged = 0

    def intend(self, kind: str, key: str, expectation: Expectation) -> None:
        """A write is about to be sent: until acknowledged, its outcome is unknown."""
        with self._lock:
            old = self._entries.get((kind, key))
            self._entries[(kind, key)] = LedgerEntry(
                kind=kind, key=key, acked=old.acked if old else None, pending=expectation)

    def acknowledge(self, kind: str, key: str, expectation: Expectation) -> None:
        with self._lock:
            self._entries[(kind, key)] = LedgerEntry(kind=kind, key=key, acked=expectation)
            self.acknowledged += 1

    def refused(self, kind: str, key: str) -> None:
        """The registry refused the pending write (e.g. Invalid): nothing changed."""
        with self._lock:
            old = self._entries.get((kind, key))
            if old is None or old.acked is None:
                self._entries.pop((kind, key), None)
            else:
                self._entries[(kind, key)] = LedgerEntry(kind=kind, key=key, acked=old.acked)

    def entries(self) -> list[LedgerEntry]:
        with self._lock:
            return list(self._entries.values())

    def get(self, kind: str, key: str) -> LedgerEntry | None:
        with self._lock:
            return self._entries.get((kind, key))
