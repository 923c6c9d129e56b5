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

from collections.abc import Callable, Sequence
from typing import Any

import lmdb
import msgpack

from ecsm_actors import api
from ecsm_actors.errors import Aborted, BadRequest, RegistryError, registry_error_from_wire
from ecsm_actors.protocol import (
    ApplyAction,
    Op,
    encode_array,
    pack,
    pack_map,
    peek_resource_version,
)
from ecsm_actors.store.records import Outcome, Staged, StagedBatch, StoredEvent, unpack_stored
from ecsm_actors.store.semantics import Change, Target

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


def outcome(op: Op, target: Target, change: Change, obj: dict[str, Any], frame: bytes,
            action: ApplyAction | None, events: tuple[StoredEvent, ...]) -> Outcome:
    """The outcome of one applied write: ``obj`` (encoded: ``frame``) as it now is, the
    reply for ``op`` and the request window's record of it."""
    record: dict[str, Any] = {"op": str(op), "key": target.store_key.decode(),
                              "rv": obj["metadata"]["resourceVersion"]}
    if op is Op.APPLY:
        record["action"] = str(action)
        return Outcome(result={"object": obj, "action": str(action)},
                       encoded=pack_map({"action": str(action)}, {"object": frame}),
                       events=events, record=record)
    if op is Op.DELETE and change.remove:
        record["gone"] = True
        return Outcome(result=None, encoded=msgpack.packb(None), events=events,
                       record=record)
    return Outcome(result=obj, encoded=frame, events=events, record=record)


def reused_id(request_id: str, op: Op, s: Staged | StagedBatch | RegistryError,
              recorded: dict[str, Any]) -> BadRequest | None:
    """BadRequest when ``request_id`` was recorded for another op or another object (a
    client reusing ids); None when the record is this request's."""
    key = s.target.store_key.decode() if isinstance(s, Staged) else None
    if recorded.get("op") != op or (key and recorded.get("key", key) != key):
        return BadRequest(f"requestId {request_id} was already used for another request "
                          f"({recorded.get('op')} {recorded.get('key', '')}".rstrip()
                          + "); use a new id for a new request")
    return None


def replayed(recorded: dict[str, Any], result: Outcome | RegistryError) -> Outcome | RegistryError:
    """``result``, rebuilt from ``recorded``, marked replayed."""
    if isinstance(result, RegistryError):
        result.replayed = True
        return result
    return Outcome(result=result.result, encoded=result.encoded, record=recorded,
                   replayed=True)


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
    """The result a window record stands for (``events``/``objects``: the LMDB store's
    sub-databases), without events to publish."""
    return rebuild_with(record, lambda key, rv: object_at(txn, key, rv, events, objects))


def rebuild_with(record: dict[str, Any],
                 frame_at: Callable[[str, int], bytes]) -> Outcome | RegistryError:
    """The result a window record stands for, ``frame_at(store key, rv)`` giving the
    object as it was at ``rv`` (encoded), without events to publish."""
    if "error" in record:
        return registry_error_from_wire(record["error"])
    if record.get("op") == Op.BATCH:
        subs = record.get("results") or []
        return batch_outcome([Op(r.get("op")) for r in subs],
                             [rebuild_with(r, frame_at) for r in subs],
                             int(record.get("rv", 0)))
    op, key, rv = Op(record["op"]), str(record["key"]), int(record["rv"])
    if record.get("gone") and op is Op.DELETE:
        return Outcome(result=None, encoded=msgpack.packb(None), record=record)
    frame = frame_at(key, rv)
    if op is Op.APPLY:
        action = str(record.get("action"))
        return Outcome(result={"object": unpack_stored(frame), "action": action},
                       encoded=pack_map({"action": action}, {"object": frame}), record=record)
    return Outcome(result=unpack_stored(frame), encoded=frame, record=record)


def object_at(txn: lmdb.Transaction, key: str, rv: int, events: Any, objects: Any) -> bytes:
    """The object of store key ``key`` as it was at ``rv``, encoded: the object of the
    event of that version while the log holds it, else the current object when it still
    has that version, else only its identity (:func:`identity_frame`)."""
    body = txn.get(rv.to_bytes(8, "big"), db=events)
    if body is not None:
        frame = _object_of_event(bytes(body))
        if frame is not None:
            return frame
    raw = txn.get(key.encode(), db=objects)
    if raw is not None and peek_resource_version(raw) == rv:
        return bytes(raw)
    return identity_frame(key, rv)


def identity_frame(key: str, rv: int) -> bytes:
    """What a replay answers when the object at ``rv`` is no longer kept: apiVersion,
    kind and metadata ``{namespace, name, resourceVersion}`` of store key ``key``."""
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
