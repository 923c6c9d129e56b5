"""THE wire format of the project: every message between our processes is defined here.

Three channels, all msgpack frames with a protocol version ``v``:

* **Registry REQ/REP** — requests ``{v, id, op, ...fields}`` → replies
  ``{v, id, ok, epoch, result}`` or ``{v, id, ok: false, epoch, error: {code, message,
  causes}}``. Ops: :class:`Op`. ``LIST`` answers ``{resourceVersion, items: [object...]}``,
  or with ``view: "versions"`` (:class:`ListView`) ``{resourceVersion, versions: [[key,
  resourceVersion]...]}``: all an informer needs, a few bytes per object. Error codes are
  the ``code`` of the classes in :mod:`ecsm_actors.errors` (NotFound, AlreadyExists,
  Conflict, Invalid, Expired, BadRequest, StoreFull, Unavailable, Internal, Forbidden,
  Aborted).

  *Exactly once.* Every write op (CREATE, UPDATE, UPDATE_STATUS, APPLY, DELETE) and BATCH
  may carry ``requestId`` (1–64 characters of ``[A-Za-z0-9._:/-]``), the idempotency key a
  client generates once per logical request and reuses on every retry (the envelope's
  ``id`` only matches replies to requests on one socket). The registry records the
  outcome in the transaction of the write and answers a repeated ``requestId`` with the
  recorded outcome, the reply carrying a top-level ``replayed: true`` (success and error
  replies alike: :attr:`Reply.replayed`, ``RegistryError.replayed``).

  *Stale reads*: a read answered while the store's quorum is lost (etcd) comes from one
  member's state, which may lag; its reply carries a top-level ``stale: true``
  (:attr:`Reply.stale`, :func:`mark_stale`).

  *BATCH* ``{writes: [{op, ...that op's fields}...], atomic?: bool, requestId?}``: write
  ops only (no nested BATCH, no ``requestId`` of their own: the BATCH's covers them all),
  at most ``registry.max_batch_writes``. Result ``{resourceVersion, results: [{ok: true,
  result} | {ok: false, error: {code, message, causes}}...]}`` in order. Without
  ``atomic`` each write stands alone; with ``atomic: true`` all or none are applied in
  one transaction: when any fails, none is, the failing ones carry their error and the
  others ``Aborted``.

  *Dry run*: ``dryRun: true`` on a write op or a BATCH (not on a BATCH's writes) asks
  what the write would do: it is defaulted, validated and run in a transaction that is
  aborted, and answered as the write would be (APPLY's created/configured/unchanged
  included); nothing is stored, no event published, no ``requestId`` recorded.

  *LIST paging*: ``limit`` (integer >= 1) and ``continue`` (the opaque token of the
  previous page) ask for one page; the result then adds ``continue`` (a token, ``""`` on
  the last page) and ``remainingItemCount`` (objects after this page when it was read).
  Each page is read at its own resourceVersion (given in the page), not one snapshot of
  the whole list: an object present from the first page to the last appears exactly
  once; one created or deleted meanwhile may or may not appear. Without ``limit``, LIST
  is one snapshot, as always.

  *Event records* (``ecsm-cli get events``, :mod:`ecsm_actors.api.event`):
  ``RECORD_EVENTS {events: [occurrence...]}`` (1 to :data:`MAX_RECORD_EVENTS`) adds the
  occurrences into their aggregated records, answering ``{recorded: n}``; ``LIST_EVENTS
  {namespace?, involvedKind?, involvedName?, since?}`` answers ``{items: [record...]}``,
  least recently seen first. Records live outside the objects' resourceVersion and event
  log, carry no ``requestId`` (a retried occurrence only adds to a count) and are
  published on PUB as ``Event.ADDED`` / ``Event.MODIFIED`` (:func:`encode_event_record`),
  a topic no object kind's subscription matches.
  *Local stream* (``unix://PATH``, :class:`FrameReader`): the same request and reply
  documents, each preceded by its 4-byte big-endian length, one request out at a time per
  connection, replies in order.
* **Registry PUB** — events as two frames ``[topic, body]``; topic ``<Kind>.<TYPE>``
  (e.g. ``ECSMService.MODIFIED``); body ``{v, epoch, seq, prev, index, last, type, kind,
  key, resourceVersion, object}``. ``seq`` equals the event's ``resourceVersion``.

  *The event chain.* ``prev`` is the ``seq`` of the stream's previous revision (the
  stream holds no event between ``prev`` and ``seq``); ``index`` the event's position
  among the events sharing its ``seq`` (etcd applies a BATCH as one revision), ``last``
  whether it is the last of them. With LMDB every mutation is one revision and the
  counter is gap-free: ``prev = seq - 1``, ``index 0``, ``last true``; with etcd the
  revisions of the stream are not contiguous (other keys share the counter), so only the
  chain tells a lost event. Decoders default the three when absent (older registries).
  :class:`ChainMark` holds the rules a subscriber detects a gap by. A heartbeat
  ``[b"HEARTBEAT", {v, epoch, seq}]`` at a fixed period carries the latest ``seq``
  published.
* **Supervisor** — liveness reports PUSHed by every child (:func:`encode_liveness`) and
  the control socket's REQ/REP (:class:`ControlOp`), same request/reply envelope.

Decoding never trusts its input: anything malformed, oversized, nested deeper than
:data:`MAX_DEPTH`, of an unknown version or op, or with fields of the wrong type raises
:class:`~ecsm_actors.errors.BadRequest`, and nothing else. Its message quotes peer input
only through :func:`~ecsm_actors.errors.describe_input` (bounded, escaped, never
recursive), so a hostile frame costs its decode and one short line, never the process.
"""

from __future__ import annotations

import functools
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import repeat
from typing import Any, TypeVar

import msgpack

from ecsm_actors.errors import (
    BadRequest,
    RegistryError,
    clip_text,
    describe_input,
    registry_error_from_wire,
)

T = TypeVar("T")

VERSION = 1
#: Deepest nesting of maps and lists a frame may have (the frame's own map is level 1).
#: Manifests may nest 64 levels (``ecsm-cli``'s limit, and the api's for a ``status`` it
#: passes through); the deepest envelope around an object (a WATCH_SINCE reply) adds 4.
MAX_DEPTH = 100

KINDS = ("ECSMService", "ECSMHpa")
HEARTBEAT_TOPIC = b"HEARTBEAT"


class Op(StrEnum):
    """Registry operations."""

    PING = "PING"
    GET = "GET"
    LIST = "LIST"
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    UPDATE_STATUS = "UPDATE_STATUS"
    APPLY = "APPLY"
    DELETE = "DELETE"
    WATCH_SINCE = "WATCH_SINCE"
    BATCH = "BATCH"
    RECORD_EVENTS = "RECORD_EVENTS"
    LIST_EVENTS = "LIST_EVENTS"


class ListView(StrEnum):
    """What a ``LIST`` returns per object: the whole object, or only ``[key, rv]``."""

    FULL = "full"
    VERSIONS = "versions"


class EventType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


_EVENT_TYPES: dict[str, EventType] = {t.value: t for t in EventType}


class ApplyAction(StrEnum):
    """What an ``APPLY`` did, as ``kubectl apply`` reports it."""

    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"


class ControlOp(StrEnum):
    """Requests to the supervisor's control socket."""

    PS = "ps"
    KILL = "kill"
    RESTART = "restart"
    STOP = "stop"
    START = "start"
    STATS = "stats"
    SHUTDOWN = "shutdown"
    STATUS = "status"


# Fields each registry op requires, with their accepted Python types.
_STR = (str,)
_OPT_STR = (str, type(None))
_OBJ = (dict,)
_INT = (int,)
_OPT_INT = (int, type(None))
OP_FIELDS: dict[Op, dict[str, tuple[type, ...]]] = {
    Op.PING: {},
    Op.GET: {"kind": _STR, "namespace": _STR, "name": _STR},
    Op.LIST: {"kind": _STR, "namespace": _OPT_STR, "view": _OPT_STR},
    Op.CREATE: {"object": _OBJ},
    Op.UPDATE: {"object": _OBJ},
    Op.UPDATE_STATUS: {"object": _OBJ},
    Op.APPLY: {"object": _OBJ},
    Op.DELETE: {"kind": _STR, "namespace": _STR, "name": _STR, "resourceVersion": _OPT_INT},
    Op.WATCH_SINCE: {"resourceVersion": _INT},
    Op.BATCH: {"writes": (list,)},
    Op.RECORD_EVENTS: {"events": (list,)},
    Op.LIST_EVENTS: {"namespace": _OPT_STR, "involvedKind": _OPT_STR,
                     "involvedName": _OPT_STR, "since": (int, float, type(None))},
}
_OPTIONAL = {(Op.LIST, "namespace"), (Op.LIST, "view"), (Op.DELETE, "resourceVersion"),
             (Op.LIST_EVENTS, "namespace"), (Op.LIST_EVENTS, "involvedKind"),
             (Op.LIST_EVENTS, "involvedName"), (Op.LIST_EVENTS, "since")}
#: Occurrences one RECORD_EVENTS may carry.
MAX_RECORD_EVENTS = 1000
#: Topic prefix of the Event records published on PUB (``Event.ADDED``...): no object
#: kind's prefix, so informers subscribed to their kinds never receive them.
EVENT_RECORD_TOPIC = b"Event."
#: The ops that write, each of which may carry a ``requestId``.
WRITE_OPS = frozenset({Op.CREATE, Op.UPDATE, Op.UPDATE_STATUS, Op.APPLY, Op.DELETE})
#: Optional fields that stay out of ``Request.fields`` when absent (added with the
#: exactly-once, batch and paging contract): name → (accepted type, ops).
_EXTRA_FIELDS: dict[str, tuple[type, frozenset[Op]]] = {
    "requestId": (str, WRITE_OPS | {Op.BATCH}),
    "atomic": (bool, frozenset({Op.BATCH})),
    # Server-side dry run: defaulted, validated and answered as the write would be, in a
    # transaction the store aborts (nothing stored, no event, no requestId recorded).
    "dryRun": (bool, WRITE_OPS | {Op.BATCH}),
    "limit": (int, frozenset({Op.LIST})),
    "continue": (str, frozenset({Op.LIST})),
}
#: Longest ``requestId``, characters (of :data:`_REQUEST_ID_CHARS`).
MAX_REQUEST_ID = 64
_REQUEST_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "0123456789._:/-")
#: Writes one BATCH may carry when the caller gives no limit (registry.max_batch_writes).
MAX_BATCH_WRITES = 1000
#: Longest LIST ``continue`` token accepted, characters.
MAX_CONTINUE = 2048
_OPS: dict[str, Op] = {op.value: op for op in Op}  # a dict lookup: Op(x) runs Python code
# ControlOp(x) of an unknown x also formats repr(x) into its ValueError: never of peer input.
_CONTROL_OPS: dict[str, ControlOp] = {op.value: op for op in ControlOp}


def object_key(namespace: str, name: str) -> str:
    """The key of an object inside its kind: ``namespace/name`` (client-go's MetaNamespaceKey)."""
    return f"{namespace}/{name}"


def split_key(key: str) -> tuple[str, str]:
    namespace, _, name = key.partition("/")
    return namespace, name


def event_topic(kind: str, type_: EventType | str) -> bytes:
    return f"{kind}.{type_}".encode()


def kind_topic(kind: str) -> bytes:
    """Subscription prefix for every event of one kind."""
    return f"{kind}.".encode()


# -- framing ---------------------------------------------------------------------------


#: Each thread's kept packer (``packer``): ``msgpack.packb`` makes one a call, with a
#: 256 KiB buffer (a request's encode 8.3 against 4.6 µs with caches cold).
_packers = threading.local()
#: The kept packer's first buffer, bytes; after a frame larger than
#: :data:`_KEPT_PACKER_BYTES`, whose buffer grew to its size, a thread makes another.
_PACKER_BUFFER = 8 << 10
_KEPT_PACKER_BYTES = 64 << 10


def pack(doc: Any) -> bytes:
    """``doc`` (a map, or any value msgpack packs) as msgpack bytes, by this thread's kept
    packer: plain values run no Python code while packed, so no other ``pack`` of the
    thread comes in between."""
    try:
        packer = _packers.packer
    except AttributeError:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True,
                                                  buf_size=_PACKER_BUFFER)
    frame: bytes = packer.pack(doc)
    if len(frame) > _KEPT_PACKER_BYTES:
        del _packers.packer
    return frame


def _packed_keys(*keys: str) -> bytes:
    """Map keys packed back to back: the constant parts of frames packed once."""
    return b"".join(msgpack.packb(k) for k in keys)


# Every map or list starts with one byte of these (fixmap, fixarray, array 16/32, map
# 16/32); all other bytes are deleted by ``bytes.translate`` to count them.
_CONTAINER_HEADS = bytes([*range(0x80, 0xA0), *range(0xDC, 0xE0)])
_NOT_CONTAINER_HEADS = bytes(b for b in range(256) if b not in _CONTAINER_HEADS)


def _check_depth(frame: bytes, doc: Any, limit: int = MAX_DEPTH) -> None:
    """Raise BadRequest when ``doc`` nests maps and lists deeper than ``limit``.

    A chain of n nested containers needs n container header bytes, so a frame with at
    most ``limit`` bytes of those values (every ordinary request: about 1 µs for a 1 KiB
    frame) is shallow enough without a look at ``doc``; any other is walked level by
    level, without recursion, stopping at ``limit``."""
    if len(frame) <= limit or len(frame.translate(None, _NOT_CONTAINER_HEADS)) <= limit:
        return
    if len(frame) >= _BY_PARTS_FROM and _shallow_by_parts(frame, limit):
        return
    if not _nests_within(doc, limit):
        raise BadRequest(f"malformed frame: nested more than {limit} levels deep")


def _nests_within(doc: Any, limit: int) -> bool:
    """Whether the decoded map or list ``doc`` nests at most ``limit`` levels of maps and
    lists, walked level by level without recursion, stopping past ``limit``."""
    level = [doc]
    for _ in range(limit):
        below: list[Any] = []
        for container in level:
            for value in container.values() if type(container) is dict else container:
                if type(value) is dict or type(value) is list:
                    below.append(value)
        if not below:
            return True
        level = below
    return False


#: Frames from this size on are first decoded wrapped (:func:`_unpack_wrapped`), and
#: those it leaves checked part by part (:func:`_shallow_by_parts`) before any walk.
_BY_PARTS_FROM = 64 << 10
#: 1 at the bytes that start a container, 0 elsewhere (``translate`` table).
_HEAD_FLAGS = bytes(1 if b in _CONTAINER_HEADS else 0 for b in range(256))
_CONTAINER_HEAD_SET = frozenset(_CONTAINER_HEADS)
_MAP_HEADS = frozenset([*range(0x80, 0x90), 0xDE, 0xDF])


def _shallow_by_parts(frame: bytes, limit: int) -> bool:
    """True when the container heads of ``frame``'s parts prove that it nests at most
    ``limit`` levels: a part with no more heads than the levels left to it is shallow
    enough without a look inside, any other is split into its own parts (a large frame
    that :func:`_unpack_wrapped` leaves: a map of 10,000 objects is proven so object by
    object in C, each count one ``bytes.count``, instead of a walk through its 300,000
    decoded containers, 75 ms). False when
    undecided — a part at no level left, or three times the frame's bytes split already (a
    deep chain is split once per level) — and the caller walks the decoded document."""
    heads = frame.translate(_HEAD_FLAGS)
    budget = [3 * len(frame)]

    def within(start: int, end: int, room: int) -> bool:
        if frame[start] not in _CONTAINER_HEAD_SET:
            return True  # a scalar: head-like bytes inside it are its payload
        if heads.count(1, start, end) <= room:
            return True
        budget[0] -= end - start
        if room <= 1 or budget[0] < 0:
            return False
        unpacker = msgpack.Unpacker(max_buffer_size=end - start)
        unpacker.feed(memoryview(frame)[start:end])
        parts = (unpacker.read_map_header() * 2 if frame[start] in _MAP_HEADS
                 else unpacker.read_array_header())
        at, below, split = start + unpacker.tell(), room - 1, []
        skip, tell, count = unpacker.skip, unpacker.tell, heads.count
        for _ in range(parts):
            skip()
            after = start + tell()
            # within(at, after, below) inlined for the parts it passes at once
            if frame[at] in _CONTAINER_HEAD_SET and count(1, at, after) > below:
                split.append((at, after))
            at = after
        del unpacker  # its copy of the part: one copy alive at a time, whatever the depth
        return all(within(a, b, below) for a, b in split)

    try:
        return within(0, len(frame), limit)
    except (ValueError, msgpack.OutOfData, msgpack.UnpackException):
        return False


@functools.cache
def _decoder_levels() -> int:
    """The levels of maps and lists msgpack's decoder nests before it raises
    ``StackError`` (its fixed stack: 1,024 in msgpack 1.x), found by trying chains of
    empty lists (two tries when it is 1,024; 0.3 ms, once, at the first large frame);
    0 when it bounds none up to 65,536, or is msgpack's pure-Python fallback: its bound
    is Python's recursion limit, reached sooner or later as the caller's stack is deeper
    or shallower than at this first frame (it would let a deep frame through)."""
    if msgpack.Unpacker.__module__ == "msgpack.fallback":
        return 0

    def decodes(levels: int) -> bool:
        try:
            msgpack.unpackb(b"\x91" * (levels - 1) + b"\x90")
        except msgpack.StackError:
            return False
        return True

    if decodes(1024) and not decodes(1025):
        return 1024
    low, high = 1, 1 << 16  # decodes(low); the answer is below high
    if decodes(high):
        return 0
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if decodes(middle) else (low, middle)
    return low


@functools.cache
def _wrap() -> bytes:
    """The single-element arrays put around a large frame so that msgpack's own stack
    bound (:func:`_decoder_levels`) falls exactly at :data:`MAX_DEPTH` levels of the
    frame (empty when the decoder bounds no depth or too few)."""
    return b"\x91" * max(_decoder_levels() - MAX_DEPTH, 0)


#: Bytes of a large frame handed to the decoder at a time (:class:`_WrappedReader`).
_READ_SIZE = 256 << 10


class _WrappedReader:
    """A large frame read by msgpack's decoder a piece at a time, after ``wrap``: the
    decoder's buffer holds a piece (and the one value in it longer than a piece), never
    a second copy of the whole frame."""

    __slots__ = ("at", "frame", "wrap")

    def __init__(self, wrap: bytes, frame: bytes) -> None:
        self.wrap, self.frame, self.at = wrap, frame, 0

    def read(self, n: int) -> bytes:
        at, skip = self.at, len(self.wrap)
        self.at = at + n
        if at >= skip:
            return self.frame[at - skip:at - skip + n]
        head = self.wrap[at:at + n]
        return head + self.frame[:n - len(head)] if n > len(head) else head


def _unpack_wrapped(frame: bytes) -> dict[str, Any] | None:
    """The map of a large ``frame``, proven to nest at most :data:`MAX_DEPTH` levels by
    its decode alone, or None: then the frame is decoded and checked as any other
    (:func:`_check_depth`), which alone decides the rest — a refusal and its message.

    The frame is decoded inside arrays of one element each (:func:`_wrap`), so that the
    decoder's stack, those levels and :data:`MAX_DEPTH` more, is full exactly when the
    frame nests past :data:`MAX_DEPTH`: the decode raises ``StackError`` at the first
    container too deep. The decoder's length limits are the frame's own (those of a
    decode of the bare frame), and it must end exactly at the frame's end, so whatever
    decodes wrapped decodes alike bare. A LIST reply of 10,000 objects is so checked
    without a count of the container heads of each object (20-25 ms). The decoder reads
    the frame a piece at a time (:class:`_WrappedReader`): the wrap joined to a whole
    copy of the frame cost 10-15 ms more in a client, the fresh pages of that copy and
    of the next reply received after it."""
    wrap = _wrap()
    if not wrap:
        return None
    size, total = len(frame), len(frame) + len(wrap)
    try:
        unpacker = msgpack.Unpacker(_WrappedReader(wrap, frame),
                                    read_size=min(_READ_SIZE, total), max_buffer_size=total,
                                    raw=False, strict_map_key=True, max_str_len=size,
                                    max_bin_len=size, max_array_len=size,
                                    max_map_len=size // 2, max_ext_len=size)
        doc = unpacker.unpack()
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError, msgpack.OutOfData, msgpack.UnpackException):
        return None
    if unpacker.tell() != total:
        return None  # more after the frame's one value: left to the whole decode
    for _ in repeat(None, len(wrap)):
        doc = doc[0]
    return doc if type(doc) is dict else None


def unpack(frame: bytes, max_bytes: int | None = None) -> dict[str, Any]:
    """Decode one frame into a map, or raise BadRequest saying why."""
    if max_bytes is not None and len(frame) > max_bytes:
        raise BadRequest(f"frame of {len(frame)} bytes exceeds the limit of {max_bytes}")
    if not isinstance(frame, bytes):
        frame = bytes(frame)
    size = len(frame)
    doc = _unpack_wrapped(frame) if size >= _BY_PARTS_FROM else None
    if doc is None:
        try:
            doc = msgpack.unpackb(frame, raw=False, strict_map_key=True)
        except msgpack.StackError as e:
            raise BadRequest(f"malformed frame: nested more than {MAX_DEPTH} levels "
                             "deep") from e
        except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
                msgpack.UnpackException) as e:
            raise BadRequest(f"malformed frame: {describe_error(e)}") from e
        if not isinstance(doc, dict):
            raise BadRequest("malformed frame: expected a map")
        # _check_depth's first test inline: it proves every ordinary frame shallow
        if (size > MAX_DEPTH
                and len(frame.translate(None, _NOT_CONTAINER_HEADS)) > MAX_DEPTH):
            _check_depth(frame, doc)
    v = doc.get("v")
    if v != VERSION:
        raise BadRequest(f"unsupported protocol version {describe_input(v)} "
                         f"(this side speaks {VERSION})")
    return doc


def describe_error(error: BaseException) -> str:
    """An exception as one bounded line, whatever its text (``str`` of a third-party
    exception may quote the input that caused it)."""
    try:
        text = str(error)
    except Exception:  # noqa: BLE001 - a broken __str__ still gets a line
        text = ""
    return clip_text(text, 200) if text else type(error).__name__


# -- registry requests and replies -----------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Request:
    id: int | str
    op: Op
    fields: dict[str, Any] = field(default_factory=dict)


def encode_request(op: Op, request_id: int | str, **fields: Any) -> bytes:
    return encode_request_of(op, request_id, fields)


def encode_request_of(op: Op, request_id: int | str, fields: Mapping[str, Any]) -> bytes:
    """:func:`encode_request` of a map of the fields (the client's own: not copied again
    into keyword arguments)."""
    return pack({"v": VERSION, "id": request_id, "op": str(op), **fields})


def decode_request(frame: bytes, max_bytes: int | None = None, *,
                   max_writes: int = MAX_BATCH_WRITES) -> Request:
    """Decode and type-check a registry request. Raises BadRequest.

    ``fields`` holds every field of :data:`OP_FIELDS` (an absent optional one as None)
    and, only when present, ``requestId``, ``atomic``, ``limit`` and ``continue``. A
    BATCH's ``writes`` become a list of :class:`Request` (id: their index), each checked
    as a request of its own, at most ``max_writes`` of them."""
    doc = unpack(frame, max_bytes)
    if len(doc) == 5:
        # The common write, {v, id, op, object, requestId} and no other field: the checks
        # below in fewer steps (in the registry, caches cold: 3.5-4 µs less a write).
        raw_op, obj, rid, request_id = (doc.get("op"), doc.get("object"),
                                        doc.get("requestId"), doc.get("id"))
        if (type(raw_op) is str and type(obj) is dict and type(rid) is str
                and (type(request_id) is int or type(request_id) is str)
                and 0 < len(rid) <= MAX_REQUEST_ID and _REQUEST_ID_CHARS.issuperset(rid)):
            op = _OBJECT_WRITES.get(raw_op)
            if op is not None:
                return _request(request_id, op, {"object": obj, "requestId": rid})
    request_id = doc.get("id")
    if not isinstance(request_id, (int, str)) or isinstance(request_id, bool):
        raise BadRequest("request id must be an integer or a string")
    raw_op = doc.get("op", "")
    op = _OPS.get(raw_op) if isinstance(raw_op, str) else None
    if op is None:
        raise BadRequest(f"unknown op {describe_input(raw_op)}")
    fields = _fields_of(op, doc, op)
    if op is Op.BATCH:
        fields["writes"] = _batch_writes(fields["writes"], max_writes)
    elif op is Op.RECORD_EVENTS and not 1 <= len(fields["events"]) <= MAX_RECORD_EVENTS:
        raise BadRequest(f"RECORD_EVENTS: {len(fields['events'])} events (1 to "
                         f"{MAX_RECORD_EVENTS} per request)")
    return _request(request_id, op, fields)


_new = object.__new__
#: The writes whose request is mostly {v, id, op, object, requestId} (decode_request's
#: fast path), by their wire names.
_OBJECT_WRITES: dict[str, Op] = {op.value: op for op in (
    Op.CREATE, Op.UPDATE, Op.UPDATE_STATUS, Op.APPLY)}


def _request(request_id: int | str, op: Op, fields: dict[str, Any]) -> Request:
    """``Request(id=request_id, op=op, fields=fields)``, the same frozen object, its
    attributes set in its ``__dict__``: the dataclass's ``__init__`` sets each through
    ``object.__setattr__`` (0.9 µs, against 0.3)."""
    request = _new(Request)
    attributes = request.__dict__
    attributes["id"] = request_id
    attributes["op"] = op
    attributes["fields"] = fields
    return request


def _op_of(raw_op: Any, where: str) -> Op:
    op = _OPS.get(raw_op) if isinstance(raw_op, str) else None
    if op is None:
        raise BadRequest(f"{where}unknown op {describe_input(raw_op)}")
    return op


#: Per op, what :func:`_fields_of` checks: its fields of :data:`OP_FIELDS` as (name,
#: accepted types, optional), then the fields of :data:`_EXTRA_FIELDS` it may carry as
#: (name, accepted types, whether a bool is refused), each in the order of those maps.
_OP_SPECS: dict[Op, tuple[tuple[tuple[str, tuple[type, ...], bool], ...],
                          tuple[tuple[str, type, bool], ...]]] = {
    op: (tuple((name, types, (op, name) in _OPTIONAL) for name, types in fields.items()),
         tuple((name, type_, type_ is int) for name, (type_, ops) in _EXTRA_FIELDS.items()
               if op in ops))
    for op, fields in OP_FIELDS.items()}
_ABSENT = object()


def _fields_of(op: Op, doc: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The fields of ``op`` in ``doc``, type-checked; ``where`` names it in an error."""
    fields: dict[str, Any] = {}
    get = doc.get
    required, extras = _OP_SPECS[op]
    for name, types, optional in required:
        value = get(name, _ABSENT)
        if value is _ABSENT:
            if optional:
                fields[name] = None
                continue
            raise BadRequest(f"{where}: missing field {name!r}")
        if not isinstance(value, types) or isinstance(value, bool):
            raise BadRequest(f"{where}: field {name!r} has the wrong type "
                             f"({describe_input(value)})")
        fields[name] = value
    for name, type_, no_bool in extras:
        value = get(name, _ABSENT)
        if value is _ABSENT:
            continue
        if not isinstance(value, type_) or (no_bool and isinstance(value, bool)):
            raise BadRequest(f"{where}: field {name!r} has the wrong type "
                             f"({describe_input(value)})")
        fields[name] = value
    if "requestId" in fields:
        check_request_id(fields["requestId"], where)
    if "limit" in fields and fields["limit"] < 1:
        raise BadRequest(f"{where}: field 'limit' must be at least 1 "
                         f"({describe_input(fields['limit'])})")
    if "continue" in fields and len(fields["continue"]) > MAX_CONTINUE:
        raise BadRequest(f"{where}: field 'continue' is longer than {MAX_CONTINUE} characters")
    return fields


def check_request_id(value: str, where: str = "request") -> None:
    """Raise BadRequest unless ``value`` is 1–64 characters of ``[A-Za-z0-9._:/-]``."""
    if not 1 <= len(value) <= MAX_REQUEST_ID:
        raise BadRequest(f"{where}: field 'requestId' must have 1 to {MAX_REQUEST_ID} "
                         f"characters, got {len(value)}")
    if not _REQUEST_ID_CHARS.issuperset(value):
        raise BadRequest(f"{where}: field 'requestId' may hold only letters, digits and "
                         f"._:/- ({describe_input(value)})")


def _batch_writes(writes: list[Any], max_writes: int) -> list[Request]:
    if not writes:
        raise BadRequest("BATCH: field 'writes' is empty")
    if len(writes) > max_writes:
        raise BadRequest(f"BATCH: {len(writes)} writes, more than the limit of {max_writes} "
                         "(registry.max_batch_writes)")
    decoded = []
    for i, write in enumerate(writes):
        where = f"BATCH: writes[{i}]"
        if not isinstance(write, dict):
            raise BadRequest(f"{where} has the wrong type ({describe_input(write)})")
        op = _op_of(write.get("op", ""), f"{where}: ")
        if op not in WRITE_OPS:
            raise BadRequest(f"{where}: op {op} is not a write (BATCH takes CREATE, UPDATE, "
                             "UPDATE_STATUS, APPLY, DELETE)")
        if "requestId" in write:
            raise BadRequest(f"{where}: a write of a BATCH has no requestId of its own "
                             "(the BATCH's covers all its writes)")
        if "dryRun" in write:
            raise BadRequest(f"{where}: a write of a BATCH has no dryRun of its own "
                             "(the BATCH's covers all its writes)")
        decoded.append(Request(id=i, op=op, fields=_fields_of(op, write, where)))
    return decoded


def request_id_of(frame: bytes) -> int | str | None:
    """Best effort: the id of a request that failed to decode, to echo it in the error."""
    try:
        doc = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception:  # noqa: BLE001 - hostile input; any failure means "no id"
        return None
    if isinstance(doc, dict):
        rid = doc.get("id")
        if isinstance(rid, (int, str)) and not isinstance(rid, bool):
            return rid
    return None


def encode_reply(request_id: int | str | None, epoch: str, result: Any) -> bytes:
    return pack({"v": VERSION, "id": request_id, "ok": True, "epoch": epoch, "result": result})


def encode_error(request_id: int | str | None, epoch: str, error: RegistryError) -> bytes:
    """An error reply; ``replayed: true`` when ``error`` is a recorded outcome replayed."""
    doc = {"v": VERSION, "id": request_id, "ok": False, "epoch": epoch,
           "error": error.to_wire()}
    if error.replayed:
        doc["replayed"] = True
    return pack(doc)


def pack_map(fields: Mapping[str, Any], encoded: Mapping[str, bytes] | None = None) -> bytes:
    """A msgpack map of ``fields`` plus ``encoded`` values that are already msgpack bytes:
    stored objects and events travel without being decoded and re-encoded."""
    encoded = encoded or {}
    packer = msgpack.Packer(use_bin_type=True)
    parts = [packer.pack_map_header(len(fields) + len(encoded))]
    for k, v in fields.items():
        parts += (packer.pack(k), packer.pack(v))
    for k, raw in encoded.items():
        parts += (packer.pack(k), raw)
    return b"".join(parts)


def encode_array(count: int, data: bytes) -> bytes:
    """A msgpack array of ``count`` documents already encoded back to back in ``data``."""
    return msgpack.Packer().pack_array_header(count) + data


def _ending_with(doc: dict[str, Any], encoded: bytes) -> bytes:
    """``doc`` packed, its last value (``None``, packed as the one byte ``0xc0``) replaced
    by ``encoded``, which is already msgpack bytes: as :func:`pack_map`, in one packb."""
    return pack(doc)[:-1] + encoded


def encode_reply_encoded(request_id: int | str | None, epoch: str, result: bytes, *,
                         replayed: bool = False) -> bytes:
    """A success reply whose ``result`` is already msgpack bytes (``replayed: true`` when
    it is a recorded outcome replayed)."""
    return b"".join((_REPLY_HEADS[replayed], pack(request_id),
                     _reply_tail(epoch, replayed), result))


#: A success reply's map header, ``v`` and the key ``id`` (without / with ``replayed``).
_REPLY_HEADS = {replayed: msgpack.Packer().pack_map_header(6 if replayed else 5)
                + _packed_keys("v") + msgpack.packb(VERSION) + _packed_keys("id")
                for replayed in (False, True)}


@functools.lru_cache(maxsize=16)
def _reply_tail(epoch: str, replayed: bool) -> bytes:
    """``ok``, ``epoch`` (and ``replayed``) of a success reply and the key ``result``: the
    same bytes packing the whole map gives, packed once per epoch."""
    tail: dict[str, Any] = {"ok": True, "epoch": epoch}
    if replayed:
        tail["replayed"] = True
    return pack(tail)[1:] + _packed_keys("result")


def encode_reply_with_raw_list(request_id: int | str | None, epoch: str,
                               fields: Mapping[str, Any], list_key: str, count: int,
                               data: bytes) -> bytes:
    """A success reply whose result is ``{**fields, list_key: [...]}``, the list given as
    ``count`` already-encoded msgpack documents concatenated in ``data`` (LIST and
    WATCH_SINCE ship stored objects and events as they are stored)."""
    return b"".join((raw_list_reply_head(request_id, epoch, fields, list_key, count), data))


def raw_list_reply_head(request_id: int | str | None, epoch: str,
                        fields: Mapping[str, Any], list_key: str, count: int) -> bytes:
    """The bytes of :func:`encode_reply_with_raw_list`'s reply before the documents: a
    store joins them with the documents it reads, the reply made in one copy."""
    packer = msgpack.Packer(use_bin_type=True)
    head = pack_map({"v": VERSION, "id": request_id, "ok": True, "epoch": epoch,
                     "result": None})[:-1]  # the map minus the value of "result"
    inner = pack_map({**fields, list_key: None})[:-1]  # likewise minus the list
    return b"".join((head, inner, packer.pack_array_header(count)))


#: What msgpack raises on a malformed frame while an unpacker walks it.
MSGPACK_ERRORS = (ValueError, TypeError, msgpack.OutOfData, msgpack.UnpackException)


def seek_resource_version(frame: bytes | memoryview) -> msgpack.Unpacker | None:
    """An unpacker over an encoded object, stopped right before the value of its
    ``metadata.resourceVersion`` (None when it has none), the rest left undecoded.
    A malformed frame raises one of :data:`MSGPACK_ERRORS`; each caller names it."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(frame)
    for _ in range(unpacker.read_map_header()):
        if unpacker.unpack() != "metadata":
            unpacker.skip()
            continue
        for _ in range(unpacker.read_map_header()):
            if unpacker.unpack() == "resourceVersion":
                return unpacker
            unpacker.skip()
        return None
    return None


def peek_resource_version(frame: bytes | memoryview) -> int:
    """``metadata.resourceVersion`` of an encoded object, read without decoding the rest
    of it (the versions-only LIST serves thousands of objects this way). Raises
    BadRequest when the frame is not an object carrying an integer version."""
    try:
        unpacker = seek_resource_version(frame)
        rv = unpacker.unpack() if unpacker is not None else None
    except MSGPACK_ERRORS as e:
        raise BadRequest(f"malformed object frame: {e}") from e
    if isinstance(rv, int) and not isinstance(rv, bool):
        return rv
    raise BadRequest("object frame without an integer metadata.resourceVersion")


def encode_event_body(epoch: str, type_: EventType | str, kind: str, key: str, seq: int,
                      object_frame: bytes, *, prev: int | None = None, index: int = 0,
                      last: bool = True) -> bytes:
    """The body of an event (see :meth:`Event.to_wire`) around an already-encoded object;
    ``prev`` defaults to ``seq - 1`` (a gap-free counter)."""
    return _ending_with({"v": VERSION, "epoch": epoch, "seq": seq,
                         "prev": seq - 1 if prev is None else prev, "index": index,
                         "last": last, "type": str(type_), "kind": kind, "key": key,
                         "resourceVersion": seq, "object": None},
                        object_frame)


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A success reply; ``replayed``: the recorded outcome of an earlier request with the
    same ``requestId``, not applied again; ``stale``: a read served while the store's
    quorum was lost, from one member's state, which may lag (etcd store)."""

    id: int | str | None
    epoch: str
    result: Any
    replayed: bool = False
    stale: bool = False


def decode_reply(frame: bytes) -> Reply:
    """Decode a reply; an error reply raises the typed RegistryError it carries. A frame
    that is not a reply raises BadRequest (as :func:`unpack_reply`)."""
    return reply_of(unpack_reply(frame))


#: The types of a reply's ``id``: a tuple (``int | str | None`` makes a union each call).
_REPLY_ID_TYPES = (int, str, type(None))


def unpack_reply(frame: bytes) -> dict[str, Any]:
    """The map of a reply frame, its ``id`` and ``epoch`` type-checked. Raises BadRequest
    only when the frame itself is not a reply (an error reply is a well-formed reply)."""
    doc = unpack(frame)
    request_id, epoch = doc.get("id"), doc.get("epoch", "")
    if (not isinstance(request_id, _REPLY_ID_TYPES) or isinstance(request_id, bool)
            or not isinstance(epoch, str)):
        raise BadRequest("malformed reply: id or epoch of the wrong type")
    return doc


def reply_of(doc: dict[str, Any]) -> Reply:
    """The reply in a map from :func:`unpack_reply`; an error reply raises the typed
    RegistryError it carries, with the registry's code and message."""
    replayed = doc.get("replayed") is True
    if doc.get("ok") is not True:
        error = doc.get("error")
        raised = registry_error_from_wire(error if isinstance(error, dict) else {})
        if replayed:
            raised.replayed = True
        raise raised
    return Reply(id=doc.get("id"), epoch=doc.get("epoch", ""), result=doc.get("result"),
                 replayed=replayed, stale=doc.get("stale") is True)


_STALE = msgpack.packb("stale") + msgpack.packb(True)


def mark_stale(frame: bytes) -> bytes:
    """The reply ``frame`` with a top-level ``stale: true`` added (its map header bumped
    and the pair appended, the rest not re-encoded)."""
    if 0x80 <= frame[0] < 0x8F:  # a fixmap of fewer than 15 pairs: every reply
        return bytes((frame[0] + 1,)) + frame[1:] + _STALE
    return pack({**unpack(frame), "stale": True})


# -- events ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EventHead:
    """One committed change without its object: its place in the event chain, what
    changed and where — all an informer reads (:func:`decode_published_head`). ``seq ==
    resource_version``. ``prev``, ``index``, ``last``: its link in the event chain (see
    the module docstring); ``prev`` left out (-1) means ``seq - 1``."""

    epoch: str
    seq: int
    type: EventType
    kind: str
    key: str
    resource_version: int
    prev: int = -1
    index: int = 0
    last: bool = True

    def __post_init__(self) -> None:
        if self.prev < 0:
            object.__setattr__(self, "prev", self.seq - 1)

    @classmethod
    def from_wire(cls, doc: Mapping[str, Any]) -> EventHead:
        """The event head of a decoded body (its ``object`` not looked at). Raises
        BadRequest."""
        head = object.__new__(cls)  # its fields set as __init__ would: 0.2 µs, not 1.2
        head.__dict__.update(_event_fields(doc, with_object=False))
        return head


@dataclass(frozen=True, kw_only=True)
class Event(EventHead):
    """One committed change with its object: ``object`` is the full object (for
    DELETED: its last state)."""

    object: dict[str, Any] | None

    def to_wire(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "epoch": self.epoch,
            "seq": self.seq,
            "prev": self.prev,
            "index": self.index,
            "last": self.last,
            "type": str(self.type),
            "kind": self.kind,
            "key": self.key,
            "resourceVersion": self.resource_version,
            "object": self.object,
        }

    @classmethod
    def from_wire(cls, doc: Mapping[str, Any]) -> Event:
        """The event of a decoded body (see :meth:`to_wire`). Raises BadRequest."""
        event = object.__new__(cls)  # as EventHead.from_wire
        event.__dict__.update(_event_fields(doc, with_object=True))
        return event


def _event_fields(doc: Mapping[str, Any], *, with_object: bool) -> dict[str, Any]:
    """The fields of an event in a decoded body, checked (its object too when
    ``with_object``), every one of them, ``prev`` resolved. Raises BadRequest."""
    if not isinstance(doc, Mapping):
        raise BadRequest(f"malformed event: expected a map, got {describe_input(doc)}")
    type_ = doc.get("type")
    event_type = _EVENT_TYPES.get(type_) if isinstance(type_, str) else None
    if event_type is None:
        raise BadRequest(f"malformed event: unknown type {describe_input(type_)}")
    fields: dict[str, Any] = {}
    if with_object:
        obj = fields["object"] = doc.get("object")
        if obj is not None and not isinstance(obj, dict):
            raise BadRequest(f"malformed event: object is {describe_input(obj)}")
    seq = _typed(doc, "seq", int, "event")
    prev = _typed(doc, "prev", int, "event", seq - 1)
    index = _typed(doc, "index", int, "event", 0)
    last = doc.get("last", True)
    if not 0 <= prev < seq or index < 0 or type(last) is not bool:
        raise BadRequest(f"malformed event: chain link prev {describe_input(prev)}, "
                         f"index {describe_input(index)}, last {describe_input(last)} "
                         f"at seq {seq}")
    fields.update(epoch=_typed(doc, "epoch", str, "event"), seq=seq, prev=prev, index=index,
                  last=last, type=event_type, kind=_typed(doc, "kind", str, "event"),
                  key=_typed(doc, "key", str, "event"),
                  resource_version=_typed(doc, "resourceVersion", int, "event"))
    return fields


def _typed(doc: Mapping[str, Any], name: str, type_: type[T], what: str,
           default: T | None = None) -> T:
    """``doc[name]`` when it is a ``type_`` (a bool is no int; an int is taken for a
    float), else ``default`` when given and the field is absent; otherwise BadRequest."""
    value = doc.get(name, default)
    if value is None:
        raise BadRequest(f"malformed {what}: missing field {name!r}")
    if isinstance(value, type_) and type(value) is not bool:
        return value
    if type_ is float and type(value) is int and value.bit_length() <= 1000:
        return float(value)  # type: ignore[return-value]
    raise BadRequest(f"malformed {what}: field {name!r} is {describe_input(value)}")


@dataclass(frozen=True, kw_only=True)
class Heartbeat:
    epoch: str
    seq: int


class Link(StrEnum):
    """How an event stands to a subscriber's :class:`ChainMark`."""

    #: The next event of the chain: deliver it.
    NEXT = "next"
    #: At or below the mark (a list or replay delivered it already): drop it.
    DUPLICATE = "duplicate"
    #: Events were lost before it: replay from the mark.
    GAP = "gap"


@dataclass(frozen=True)
class ChainMark:
    """Where a subscriber stands in the event chain: everything up to revision ``seq``
    delivered — unless ``finished`` is false, then revision ``seq`` only up to its event
    ``index`` (its ``last`` not seen yet).

    An event ``(seq, index)`` at or below ``(W, i)`` is a duplicate. A gap: an event of
    revision W whose index is not ``i + 1``; or an event past W with ``index != 0``, or
    ``prev > W`` (an event between was lost), or while revision W is unfinished (its last
    event was lost). A heartbeat at a later revision, or at W while W is unfinished, says
    that events were lost too (:meth:`behind`)."""

    seq: int
    index: int = 0
    finished: bool = True
    #: The ``prev`` of revision ``seq`` (where a replay covering it starts).
    prev: int = 0

    @property
    def replay_from(self) -> int:
        """The version to replay after (``WATCH_SINCE``): ``seq``, or for an unfinished
        revision the one before it, its events already delivered then dropped."""
        return self.seq if self.finished else self.prev

    def link(self, event: EventHead) -> Link:
        if event.seq < self.seq or (event.seq == self.seq
                                    and (self.finished or event.index <= self.index)):
            return Link.DUPLICATE
        if event.seq == self.seq:
            return Link.NEXT if event.index == self.index + 1 else Link.GAP
        if event.index != 0 or event.prev > self.seq or not self.finished:
            return Link.GAP
        return Link.NEXT

    def after(self, event: EventHead) -> ChainMark:
        """The mark once ``event`` (a :attr:`Link.NEXT`) is delivered."""
        return ChainMark(event.seq, event.index, event.last, event.prev)

    def complete_to(self, seq: int) -> ChainMark:
        """The mark once everything up to revision ``seq`` is known delivered (a list, or
        a replay complete up to ``seq``); never moves back."""
        if seq > self.seq or (seq == self.seq and not self.finished):
            return ChainMark(seq)
        return self

    def behind(self, seq: int) -> bool:
        """Whether a heartbeat saying ``seq`` was the latest published reveals events
        lost (the heartbeat follows a revision's events on the same socket)."""
        return seq > self.seq or (seq == self.seq and not self.finished)

    def describe_gap(self, event: EventHead) -> str:
        """One line: why ``event`` (a :attr:`Link.GAP`) reveals a loss."""
        return (f"gap in events: got seq {event.seq} (prev {event.prev}, index "
                f"{event.index}) after {self}")

    def __str__(self) -> str:
        if self.finished:
            return str(self.seq)
        return f"{self.seq} (event {self.index} of an unfinished revision)"


def encode_event(event: Event) -> list[bytes]:
    return [event_topic(event.kind, event.type), pack(event.to_wire())]


def encode_heartbeat(epoch: str, seq: int) -> list[bytes]:
    return [HEARTBEAT_TOPIC, pack({"v": VERSION, "epoch": epoch, "seq": seq})]


def encode_event_record(epoch: str, added: bool, record: Mapping[str, Any]) -> list[bytes]:
    """The PUB message of an Event record written (``Event.ADDED`` / ``Event.MODIFIED``);
    body ``{v, epoch, type, kind: "Event", object}``, no ``seq``: records are outside the
    objects' resourceVersion."""
    type_ = EventType.ADDED if added else EventType.MODIFIED
    return [EVENT_RECORD_TOPIC + str(type_).encode(),
            pack({"v": VERSION, "epoch": epoch, "type": str(type_), "kind": "Event",
                  "object": record})]


def decode_event_record(frames: list[bytes]) -> tuple[str, dict[str, Any]] | None:
    """``(type, record)`` of a published Event record; None for a heartbeat or another
    message. Raises BadRequest when malformed."""
    if len(frames) != 2 or not frames[0].startswith(EVENT_RECORD_TOPIC):
        return None
    doc = unpack(frames[1])
    record = doc.get("object")
    if not isinstance(record, dict):
        raise BadRequest(f"malformed event record: object is {describe_input(record)}")
    return _typed(doc, "type", str, "event record"), record


def decode_published(frames: list[bytes]) -> Event | Heartbeat:
    """Decode a PUB message (event or heartbeat). Raises BadRequest."""
    if len(frames) != 2:
        raise BadRequest(f"expected 2 frames, got {len(frames)}")
    doc = unpack(frames[1])
    if frames[0] == HEARTBEAT_TOPIC:
        return _heartbeat_of(doc)
    return Event.from_wire(doc)


def decode_published_head(frames: list[bytes]) -> EventHead | Heartbeat:
    """As :func:`decode_published`, an event's object left undecoded: stepped over in
    the frame (its bytes checked to be well-formed msgpack, a map or nil), so none of
    its containers is built. Raises BadRequest."""
    if len(frames) != 2:
        raise BadRequest(f"expected 2 frames, got {len(frames)}")
    if frames[0] == HEARTBEAT_TOPIC:
        return _heartbeat_of(unpack(frames[1]))
    return EventHead.from_wire(_unpack_head(frames[1]))


def _heartbeat_of(doc: Mapping[str, Any]) -> Heartbeat:
    return Heartbeat(epoch=_typed(doc, "epoch", str, "heartbeat"),
                     seq=_typed(doc, "seq", int, "heartbeat"))


# The first byte of a map (fixmap, map 16, map 32) or of nil: what an event's object is.
_MAP_OR_NIL = frozenset((*range(0x80, 0x90), 0xDE, 0xDF, 0xC0))


def _unpack_head(frame: bytes) -> dict[str, Any]:
    """The map of an event's body as :func:`unpack` returns it, but for its ``object``,
    which is stepped over (``Unpacker.skip``: the C parser, nothing built, the same stack
    bound) once its first byte says it is a map or nil. An object is not looked into: one
    nested deeper than ``MAX_DEPTH``, with a key that is not a string or a string that is
    not UTF-8, which the whole decode refuses, goes by unseen (an informer never reads
    it); so does a field no event has nested that deep (up to msgpack's own stack bound;
    ignored). Every other frame is taken or refused as by the whole decode: a key that is
    bytes is taken (and ignored); of an ``object`` given twice, the last counts. Raises
    BadRequest."""
    unpacker = msgpack.Unpacker(None, raw=False, strict_map_key=True,
                                max_buffer_size=max(1, len(frame)))
    doc: dict[Any, Any] = {}
    try:
        unpacker.feed(frame)
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            if type(key) is not str and type(key) is not bytes:  # as strict_map_key
                raise BadRequest(f"malformed frame: map key {describe_input(key)}")
            if key != "object":
                doc[key] = unpacker.unpack()
            elif frame[unpacker.tell()] in _MAP_OR_NIL:
                unpacker.skip()
                doc["object"] = None
            else:  # no map: refused below unless a later object is one
                doc["object"] = unpacker.unpack()
    except msgpack.StackError as e:
        raise BadRequest(f"malformed frame: nested more than {MAX_DEPTH} levels "
                         "deep") from e
    except (ValueError, TypeError, IndexError, msgpack.OutOfData, msgpack.FormatError,
            msgpack.UnpackException) as e:
        raise BadRequest(f"malformed frame: {describe_error(e)}") from e
    if unpacker.tell() != len(frame):
        raise BadRequest("malformed frame: extra data after the map")
    v = doc.get("v")
    if v != VERSION:
        raise BadRequest(f"unsupported protocol version {describe_input(v)} "
                         f"(this side speaks {VERSION})")
    obj = doc.get("object")
    if obj is not None:
        raise BadRequest(f"malformed event: object is {describe_input(obj)}")
    return doc


# -- supervisor: liveness and control --------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Liveness:
    """A child's periodic report to the supervisor.

    ``oldest_inflight_age`` is the age in seconds of the oldest reconcile in progress
    (0 when idle); ``last_completed`` is the wall time of the last finished reconcile (0
    when none yet); ``stats`` carries the controller's counters for ``ecsm-operator stats``.
    """

    name: str
    pid: int
    ts: float
    queue_depth: int = 0
    oldest_inflight_age: float = 0.0
    last_completed: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)


def encode_liveness(report: Liveness) -> bytes:
    return pack(
        {
            "v": VERSION,
            "name": report.name,
            "pid": report.pid,
            "ts": report.ts,
            "queueDepth": report.queue_depth,
            "oldestInflightAge": report.oldest_inflight_age,
            "lastCompleted": report.last_completed,
            "stats": report.stats,
        }
    )


def decode_liveness(frame: bytes, max_bytes: int = 1 << 20) -> Liveness:
    """Decode a child's liveness report. Raises BadRequest."""
    doc = unpack(frame, max_bytes)
    what = "liveness report"
    stats = doc.get("stats")
    if stats is not None and not isinstance(stats, dict):
        raise BadRequest(f"malformed {what}: field 'stats' is {describe_input(stats)}")
    return Liveness(
        name=_typed(doc, "name", str, what),
        pid=_typed(doc, "pid", int, what),
        ts=_typed(doc, "ts", float, what),
        queue_depth=_typed(doc, "queueDepth", int, what, 0),
        oldest_inflight_age=_typed(doc, "oldestInflightAge", float, what, 0.0),
        last_completed=_typed(doc, "lastCompleted", float, what, 0.0),
        stats=dict(stats or {}),
    )


def encode_control(op: ControlOp, request_id: int | str, **fields: Any) -> bytes:
    return pack({"v": VERSION, "id": request_id, "op": str(op), **fields})


def decode_control(frame: bytes, max_bytes: int = 1 << 20) -> tuple[int | str, ControlOp, dict]:
    doc = unpack(frame, max_bytes)
    request_id = doc.get("id")
    if not isinstance(request_id, (int, str)) or isinstance(request_id, bool):
        raise BadRequest("request id must be an integer or a string")
    raw_op = doc.get("op", "")
    op = _CONTROL_OPS.get(raw_op) if isinstance(raw_op, str) else None
    if op is None:
        raise BadRequest(f"unknown control op {describe_input(raw_op)}")
    rest = {k: v for k, v in doc.items() if k not in ("v", "id", "op")}
    return request_id, op, rest


# -- stream framing: the registry's local stream endpoint (``unix://PATH``) -------------

#: The scheme of a stream endpoint: the same request and reply documents as the ROUTER's,
#: each preceded by its length (:func:`frame_head`), over an AF_UNIX stream socket.
STREAM_SCHEME = "unix://"
#: Bytes of a stream frame's length prefix (big-endian, unsigned).
FRAME_HEAD_BYTES = 4
_FRAME_HEAD = struct.Struct(">I")
frame_head = _FRAME_HEAD.pack
"""``frame_head(n)``: the 4-byte big-endian length that precedes a frame of ``n`` bytes."""
frame_size = _FRAME_HEAD.unpack_from
"""``frame_size(buffer, offset=0)``: ``(n,)``, the length in the head at ``offset``."""


def stream_frame_limit(max_frame: int) -> int:
    """The longest frame a stream peer may send: beyond ``max_frame`` a frame is still
    read and answered BadRequest, beyond this its connection is closed (the limit
    ZeroMQ's MAXMSGSIZE puts on the ROUTER)."""
    return 2 * max_frame + (64 << 10)


class FrameReader:
    """Splits a byte stream into its frames (each preceded by :func:`frame_head`): fed
    what the socket gave, it hands out each complete frame, in order. A head announcing
    more than ``limit`` bytes raises BadRequest (the stream cannot be read past it: its
    reader closes it). Holds at most what was fed and not yet taken: a frame is not
    read ahead of its bytes (a head alone costs 4 bytes, whatever it announces)."""

    __slots__ = ("_buf", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes fed and not yet taken."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def ready(self) -> bool:
        """Whether :meth:`next` has something to say: a complete frame, or a head beyond
        the limit."""
        buf = self._buf
        if len(buf) < FRAME_HEAD_BYTES:
            return False
        size = frame_size(buf)[0]
        return size > self.limit or len(buf) >= FRAME_HEAD_BYTES + size

    def next(self) -> bytes | None:
        """The next complete frame (taken out of the buffer), or None until it is
        complete. Raises BadRequest when its head announces more than ``limit``."""
        buf = self._buf
        if len(buf) < FRAME_HEAD_BYTES:
            return None
        size = frame_size(buf)[0]
        if size > self.limit:
            raise BadRequest(f"stream frame of {size} bytes exceeds the limit of "
                             f"{self.limit}")
        end = FRAME_HEAD_BYTES + size
        if len(buf) < end:
            return None
        with memoryview(buf) as view:
            frame = bytes(view[FRAME_HEAD_BYTES:end])
        del buf[:end]
        return frame


# -- stream events: the registry's local event endpoint (``unix://PATH``) ---------------
#
# After the registry's greeting (an empty frame), the subscriber sends one frame, its
# subscription (:func:`encode_subscription`); then every event and heartbeat it matches
# comes as one frame whose payload is the message's two parts: the topic, preceded by its
# own 4-byte length, then the body (:func:`frame_event`, :func:`split_event`).

#: The longest subscription frame the registry reads; longer closes the connection.
MAX_SUBSCRIPTION_BYTES = 4096
#: Topic prefixes one subscription may name at most.
MAX_SUBSCRIPTION_TOPICS = 64


def frame_event(topic: bytes, body: bytes) -> bytes:
    """One published message ``[topic, body]`` as a stream frame, its head included."""
    return b"".join((frame_head(FRAME_HEAD_BYTES + len(topic) + len(body)),
                     frame_head(len(topic)), topic, body))


def split_event(payload: bytes | memoryview) -> list[bytes]:
    """A stream event frame's payload (its head taken off) → ``[topic, body]``. Raises
    BadRequest when its topic's length runs past it."""
    if len(payload) < FRAME_HEAD_BYTES:
        raise BadRequest(f"stream event of {len(payload)} bytes has no topic length")
    end = FRAME_HEAD_BYTES + frame_size(payload)[0]
    if end > len(payload):
        raise BadRequest(f"stream event: a topic of {end - FRAME_HEAD_BYTES} bytes in a "
                         f"frame of {len(payload)}")
    return [bytes(payload[FRAME_HEAD_BYTES:end]), bytes(payload[end:])]


def encode_subscription(topics: list[bytes], hwm: int) -> bytes:
    """A stream subscriber's subscription: the topic prefixes of the events it wants (b""
    = all), as a SUB socket subscribes, and the most events the registry may queue for it
    before it drops some (its receive high-water mark)."""
    return pack({"v": VERSION, "topics": list(topics), "hwm": int(hwm)})


def decode_subscription(frame: bytes) -> tuple[tuple[bytes, ...], int]:
    """``(topic prefixes, hwm)`` of a subscription frame. Raises BadRequest."""
    doc = unpack(frame, MAX_SUBSCRIPTION_BYTES)
    topics, hwm = doc.get("topics"), doc.get("hwm")
    if (not isinstance(topics, list) or len(topics) > MAX_SUBSCRIPTION_TOPICS
            or not all(isinstance(t, bytes) for t in topics)):
        raise BadRequest(f"subscription: topics must be a list of at most "
                         f"{MAX_SUBSCRIPTION_TOPICS} byte strings")
    if type(hwm) is not int or hwm < 1:
        raise BadRequest(f"subscription: hwm must be a positive integer, not "
                         f"{describe_input(hwm)}")
    return tuple(topics), hwm
