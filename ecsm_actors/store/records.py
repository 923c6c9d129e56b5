r"""The values that travel through the store's write path, and the validation step.

Runs in the registry process. A :class:`Write` (op + decoded request fields) is first
:func:`stage`\ d — defaulted and validated with :mod:`ecsm_actors.api`, outside any
transaction, since validation is the costliest part of a write — then applied inside the
group-commit transaction, giving an :class:`Outcome` (the reply, already encoded) and the
:class:`StoredEvent`\ s to publish once the transaction is durable. A BATCH is staged as
a :class:`StagedBatch` of its writes, each staged alone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack

from ecsm_actors.errors import Invalid, RegistryError
from ecsm_actors import protocol
from ecsm_actors.protocol import Event, Op
from ecsm_actors.store import semantics
from ecsm_actors.store.semantics import Target

#: The ops the store applies in its write transaction: the write ops and BATCH.
WRITE_OPS = protocol.WRITE_OPS | {Op.BATCH}


def unpack_stored(raw: bytes | memoryview) -> Any:
    return msgpack.unpackb(raw, raw=False)


class Write(NamedTuple):
    """One write request: its op and its decoded fields (as in :class:`protocol.Request`;
    ``requestId`` among them when given; a BATCH's ``writes`` as protocol Requests). A
    named tuple, not a frozen dataclass: made for every write, in half the time."""

    op: Op
    fields: dict[str, Any]


@dataclass(frozen=True, kw_only=True, init=False)
class StoredEvent:
    """A committed event as its wire frames (the body is the bytes kept in the log)."""

    topic: bytes
    body: bytes

    def __init__(self, *, topic: bytes, body: bytes) -> None:
        # Its fields set in its __dict__ at once (the frozen dataclass's own __init__
        # sets them a field at a time through object.__setattr__): one a write.
        fields = self.__dict__
        fields["topic"], fields["body"] = topic, body

    @functools.cached_property
    def event(self) -> Event:
        """The decoded event (the registry itself only forwards the frames)."""
        return Event.from_wire(unpack_stored(self.body))


@dataclass(frozen=True, kw_only=True, init=False)
class Outcome:
    """A write that succeeded: the reply payload (also msgpack-encoded, as it was stored)
    and the events to publish after commit. ``record`` is what the request window keeps
    of it (see :mod:`.window`); ``replayed``: a recorded outcome answered again, nothing
    applied (and no events)."""

    result: Any
    encoded: bytes
    events: tuple[StoredEvent, ...] = ()
    record: dict[str, Any] | None = None
    replayed: bool = False

    def __init__(self, *, result: Any, encoded: bytes, events: tuple[StoredEvent, ...] = (),
                 record: dict[str, Any] | None = None, replayed: bool = False) -> None:
        # As StoredEvent's: one a write, its five fields set at once.
        fields = self.__dict__
        fields["result"], fields["encoded"], fields["events"] = result, encoded, events
        fields["record"], fields["replayed"] = record, replayed


@dataclass(frozen=True, kw_only=True)
class RawList:
    """``count`` msgpack documents concatenated in ``data``, read at ``resource_version``
    (the LMDB store's LIST: a bytearray, the reply's head in front, filled in place)."""

    count: int
    data: bytes | bytearray
    resource_version: int

    def decode(self) -> list[Any]:
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(self.data)
        return list(unpacker)


class Staged(NamedTuple):
    """A write validated outside the transaction, ready to be applied (a named tuple, not
    a frozen dataclass: made for every write, in half the time)."""

    op: Op
    target: Target
    wanted: int | None = None
    prepared: dict[str, Any] | None = None
    status: dict[str, Any] | None = None
    keep_absent: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True)
class StagedBatch:
    """A BATCH whose writes are staged (each a :class:`Staged` or its refusal)."""

    ops: tuple[Op, ...]
    writes: tuple[Staged | RegistryError, ...]
    atomic: bool = False


# Enum members read once: a member read off its class costs about 0.1 µs (Python 3.11).
_BATCH, _DELETE, _UPDATE_STATUS, _APPLY = Op.BATCH, Op.DELETE, Op.UPDATE_STATUS, Op.APPLY


def stage(write: Write) -> Staged | StagedBatch | RegistryError:
    """Validate a write outside the transaction; a refusal is returned, not raised."""
    op, f = write.op, write.fields
    if op is _BATCH:
        writes = f["writes"]
        return StagedBatch(ops=tuple(w.op for w in writes), atomic=bool(f.get("atomic")),
                           writes=tuple(_stage_one(Write(op=w.op, fields=w.fields))
                                        for w in writes))
    return _stage_one(write)


def _stage_one(write: Write) -> Staged | RegistryError:
    op, f = write.op, write.fields
    try:
        if op is _DELETE:
            kind = f.get("kind")
            if kind not in semantics.api.KINDS:
                raise Invalid(f"unknown kind {kind!r}")
            target = Target(kind=kind, namespace=f["namespace"], name=f["name"])
            return Staged(op=op, target=target, wanted=f.get("resourceVersion"))
        obj = f["object"]
        if op is _UPDATE_STATUS:
            target = semantics.target_of(obj)
            return Staged(op=op, target=target, wanted=semantics.requested_version(obj),
                          status=semantics.prepare_status(target.kind, obj))
        wanted = semantics.requested_version(obj)
        prepared = semantics.prepare_object(obj)
        keep: frozenset[str] = frozenset()
        if op is _APPLY:
            raw_meta = obj.get("metadata") or {}
            keep = frozenset(k for k in semantics.USER_METADATA if k not in raw_meta)
        meta = prepared["metadata"]  # validated: kind, name and namespace are there
        target = Target(kind=prepared["kind"], namespace=meta["namespace"], name=meta["name"])
        return Staged(op=op, target=target, wanted=wanted, prepared=prepared,
                      keep_absent=keep)
    except RegistryError as e:
        # Kept as a value, a refusal drops its traceback: its frames hold the request, and
        # the caller's list holding the refusal, in a cycle only the cyclic GC would free.
        return e.with_traceback(None)
