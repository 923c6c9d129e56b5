"""The staging of writes against etcd: what a group of writes reads, and what it puts.

Runs in the registry process, for :class:`~ecsm_actors.store.etcd_store.EtcdStore`. A
group of writes is applied in three steps: every key it touches is read in ONE read-only
txn (:class:`View`, at one revision), each write is staged in order over that view with
the rules of :mod:`.semantics` — never by rules of its own — and what they changed is put
in ONE txn that compares the ``mod_revision`` of every key read (a key absent: 0). The
txn's revision ``R`` is only known once it committed, so a staged object carries
:data:`PENDING` as its resourceVersion and its outcome is finished with ``R`` afterwards
(:func:`finish`); the request window's records are put with :data:`PENDING` and read back
with the record key's own ``mod_revision`` (the same ``R``, see :func:`resolve_record`).

An atomic BATCH stages its writes in a child view that is dropped when any is refused.
The writes of one group share the revision ``R``: groups are formed so that no key is
written twice in one, except by the writes of one BATCH (which then share ``R``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ecsm_actors.errors import RegistryError
from ecsm_actors.etcd.client import KeyValue
from ecsm_actors.protocol import ApplyAction, Op, pack
from ecsm_actors.store import etcd_layout, replay, semantics
from ecsm_actors.store.records import Outcome, Staged, StagedBatch, unpack_stored
from ecsm_actors.store.semantics import Change, Target

#: The resourceVersion of a staged object (and in a staged record) until its txn commits.
PENDING = -1


@dataclass(frozen=True, kw_only=True)
class Applied:
    """A write staged over the view, to be finished with the revision of its txn (or one
    that changed nothing of an object staged earlier in the group)."""

    op: Op
    target: Target
    change: Change
    obj: dict[str, Any]
    action: ApplyAction | None


@dataclass(frozen=True, kw_only=True)
class AppliedBatch:
    """A BATCH staged over the view: the per-write results, some of them :class:`Applied`."""

    ops: tuple[Op, ...]
    results: tuple[Outcome | RegistryError | Applied, ...]


Result = Outcome | RegistryError | Applied | AppliedBatch


def finish(result: Result, revision: int) -> Outcome | RegistryError:
    """The outcome of a staged result once its txn committed at ``revision``."""
    if isinstance(result, Applied):
        obj = {**result.obj, "metadata": {**result.obj["metadata"],
                                          "resourceVersion": revision}}
        return replay.outcome(result.op, result.target, result.change, obj, pack(obj),
                              result.action, ())
    if isinstance(result, AppliedBatch):
        return replay.batch_outcome(result.ops, [finish(r, revision) for r in result.results],
                                    revision)
    return result


def record_of(result: Result) -> dict[str, Any]:
    """The request window's record of a staged result (its versions :data:`PENDING`)."""
    if isinstance(result, Applied):
        obj = {**result.obj, "metadata": {**result.obj["metadata"],
                                          "resourceVersion": PENDING}}
        record = replay.outcome(result.op, result.target, result.change, obj, b"",
                                result.action, ()).record
        assert record is not None
        return record
    if isinstance(result, AppliedBatch):
        subs = [record_of(r) if not isinstance(r, RegistryError)
                else {"op": str(op), "error": r.to_wire()}
                for op, r in zip(result.ops, result.results, strict=True)]
        return {"op": str(Op.BATCH), "rv": PENDING, "results": subs}
    if isinstance(result, RegistryError):
        return {"error": result.to_wire()}
    assert result.record is not None
    return result.record


def resolve_record(record: dict[str, Any], revision: int) -> dict[str, Any]:
    """``record`` with its :data:`PENDING` versions replaced by ``revision`` (the
    revision of the txn that wrote it)."""
    out = dict(record)
    if out.get("rv") == PENDING:
        out["rv"] = revision
    if isinstance(out.get("results"), list):
        out["results"] = [resolve_record(r, revision) if isinstance(r, dict) else r
                          for r in out["results"]]
    return out


@dataclass(kw_only=True)
class View:
    """The keys a group read (``reads``: etcd key → its KeyValue, None when absent) and
    the objects its writes staged over them (``staged``: etcd key → object, or None when
    removed). A child view (an atomic BATCH) stages over its parent's."""

    prefix: bytes
    reads: dict[bytes, KeyValue | None]
    staged: dict[bytes, dict[str, Any] | None] = field(default_factory=dict)
    parent: View | None = None
    #: The request window's records to put: etcd key → value.
    records: dict[bytes, bytes] = field(default_factory=dict)

    def child(self) -> View:
        return View(prefix=self.prefix, reads=self.reads, parent=self)

    def merge(self) -> None:
        """Keep what this child view staged (its BATCH succeeded)."""
        assert self.parent is not None
        self.parent.staged.update(self.staged)

    def _staged(self, key: bytes) -> tuple[bool, dict[str, Any] | None]:
        view: View | None = self
        while view is not None:
            if key in view.staged:
                return True, view.staged[key]
            view = view.parent
        return False, None

    def current(self, key: bytes) -> tuple[dict[str, Any] | None, bytes | None]:
        """The object at ``key`` as this group sees it, and its encoding."""
        found, obj = self._staged(key)
        if found:
            return obj, (pack(obj) if obj is not None else None)
        kv = self.reads.get(key)
        if kv is None:
            return None, None
        frame = etcd_layout.object_frame(kv.value, kv.mod_revision)
        return unpack_stored(frame), frame

    def apply(self, s: Staged, now: float) -> Outcome | Applied:
        """Stage one write (raises its refusal)."""
        key = etcd_layout.object_key(self.prefix, s.target.store_key)
        current, frame = self.current(key)
        change, action = semantics.change_for(s, current, now)
        if change.type is None:
            assert current is not None and frame is not None
            if current["metadata"]["resourceVersion"] == PENDING:  # staged in this group
                return Applied(op=s.op, target=s.target, change=change, obj=current,
                               action=action)
            return replay.outcome(s.op, s.target, change, current, frame, action, ())
        obj = {**change.object, "metadata": {**change.object["metadata"],
                                             "resourceVersion": PENDING}}
        self.staged[key] = None if change.remove else obj
        return Applied(op=s.op, target=s.target, change=change, obj=obj, action=action)

    def run(self, s: Staged | StagedBatch | RegistryError, now: float) -> Result:
        """Stage one write or BATCH; a refusal is returned, not raised."""
        if isinstance(s, RegistryError):
            return s
        if isinstance(s, StagedBatch):
            target = self.child() if s.atomic else self
            results: list[Result] = [target.run(w, now) for w in s.writes]
            if s.atomic:
                if any(isinstance(r, RegistryError) for r in results):
                    refused = replay.aborted([finish(r, PENDING) for r in results])
                    return AppliedBatch(ops=s.ops, results=tuple(refused))
                target.merge()
            return AppliedBatch(ops=s.ops, results=tuple(results))  # type: ignore[arg-type]
        try:
            return self.apply(s, now)
        except RegistryError as e:
            return e.with_traceback(None)

    def puts(self) -> dict[bytes, dict[str, Any] | None]:
        """Every object key this group changed, and its new object (None: deleted)."""
        assert self.parent is None
        return dict(self.staged)


def keys_of(prefix: bytes, s: Staged | StagedBatch | RegistryError) -> list[bytes]:
    """The etcd keys of the objects a staged write or BATCH touches."""
    if isinstance(s, Staged):
        return [etcd_layout.object_key(prefix, s.target.store_key)]
    if isinstance(s, StagedBatch):
        return [k for w in s.writes for k in keys_of(prefix, w)]
    return []
