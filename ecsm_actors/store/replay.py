"""BATCH results and replayed outcomes: the replies the store builds beyond one write's.

Runs in the registry process, inside the store's write transaction.
:func:`batch_outcome` folds the per-write results of a BATCH into its reply
(``{resourceVersion, results: [{ok, result | error}...]}``, encoded without re-encoding
the objects) and its window record; :func:`aborted` turns the successes of a failed atomic
BATCH into ``Aborted``; :func:`rebuild` makes the reply of a recorded outcome again
(see :mod:`.window` for the records and ``lmdb_store``'s docstring for where a replayed
object comes from).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lmdb
import msgpack

from ecsm_actors import api
from ecsm_actors.errors import Aborted, RegistryError, registry_error_from_wire
from ecsm_actors.protocol import Op, encode_array, pack, pack_map, peek_resource_version
from ecsm_actors.store.records import Outcome, StoredEvent, unpack_stored

#: Failing writes an ``Aborted`` message names at most.
NAMED_FAILURES = 5


def batch_outcome(ops: Sequence[Op], results: Sequence[Outcome | RegistryError],
                  rv: int) -> Outcome:
    """The reply of a BATCH whose writes gave ``results``; ``rv``: the version after it."""
    items: list[bytes] = []
    values: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    events: list[StoredEvent] = []
    for op, r in zip(ops, results, strict=True):
        if isinstance(r, RegistryError):
            wire = r.to_wire()
            items.append(pack({"ok": False, "error": wire}))
            values.append({"ok": False, "error": wire})
            records.append({"op": str(op), "error": wire})
        else:
            items.append(pack_map({"ok": True}, {"result": r.encoded}))
            values.append({"ok": True, "result": r.result})
            records.append(r.record or {})
            events.extend(r.events)
    return Outcome(result={"resourceVersion": rv, "results": values},
                   encoded=pack_map({"resourceVersion": rv},
                                    {"results": encode_array(len(items), b"".join(items))}),
                   events=tuple(events),
                   record={"op": str(Op.BATCH), "rv": rv, "results": records})


def aborted(results: Sequence[Outcome | RegistryError]) -> list[Outcome | RegistryError]:
    """The results of an atomic BATCH that failed: refusals kept, the rest Aborted."""
    refused = [(i, r.code) for i, r in enumerate(results) if isinstance(r, RegistryError)]
    named = ", ".join(f"writes[{i}] ({code})" for i, code in refused[:NAMED_FAILURES])
    more = (f" and {len(refused) - NAMED_FAILURES} more"
            if len(refused) > NAMED_FAILURES else "")
    return [r if isinstance(r, RegistryError)
            else Aborted(f"not applied: the atomic BATCH failed at {named}{more}")
            for r in results]


def rebuild(txn: lmdb.Transaction, record: dict[str, Any], events: Any,
            objects: Any) -> Outcome | RegistryError:
    """The result a window record stands for (``events``/``objects``: the store's
    sub-databases), without events to publish."""
    if "error" in record:
        return registry_error_from_wire(record["error"])
    if record.get("op") == Op.BATCH:
        subs = record.get("results") or []
        return batch_outcome([Op(r.get("op")) for r in subs],
                             [rebuild(txn, r, events, objects) for r in subs],
                             int(record.get("rv", 0)))
    op, key, rv = Op(record["op"]), str(record["key"]), int(record["rv"])
    if record.get("gone") and op is Op.DELETE:
        return Outcome(result=None, encoded=msgpack.packb(None), record=record)
    frame = object_at(txn, key, rv, events, objects)
    if op is Op.APPLY:
        action = str(record.get("action"))
        return Outcome(result={"object": unpack_stored(frame), "action": action},
                       encoded=pack_map({"action": action}, {"object": frame}), record=record)
    return Outcome(result=unpack_stored(frame), encoded=frame, record=record)


def object_at(txn: lmdb.Transaction, key: str, rv: int, events: Any, objects: Any) -> bytes:
    """The object of store key ``key`` as it was at ``rv``, encoded: the object of the
    event of that version while the log holds it, else the current object when it still
    has that version, else only its identity (apiVersion, kind, namespace, name, rv)."""
    body = txn.get(rv.to_bytes(8, "big"), db=events)
    if body is not None:
        frame = _object_of_event(bytes(body))
        if frame is not None:
            return frame
    raw = txn.get(key.encode(), db=objects)
    if raw is not None and peek_resource_version(raw) == rv:
        return bytes(raw)
    kind, namespace, name = key.split("/", 2)
    return pack({"apiVersion": api.API_VERSION, "kind": kind,
                 "metadata": {"namespace": namespace, "name": name, "resourceVersion": rv}})


def _object_of_event(body: bytes) -> bytes | None:
    """The ``object`` of a stored event body, sliced out as it is encoded (never decoded)."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(body)
    try:
        for _ in range(unpacker.read_map_header()):
            if unpacker.unpack() == "object":
                start = unpacker.tell()
                unpacker.skip()
                frame = body[start:unpacker.tell()]
                return frame if frame[:1] != b"\xc0" else None  # nil: no object
            unpacker.skip()
    except (ValueError, msgpack.OutOfData, msgpack.UnpackException):
        return None
    return None
