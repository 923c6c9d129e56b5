"""etcd's v3 JSON gateway wire format: the typed values, their encoding, error mapping.

Pure functions and frozen dataclasses, no I/O (the unit tests exercise them with fakes).
The gateway is grpc-gateway over etcd's gRPC API: keys and values are base64, int64
fields travel as strings, fields at their default value (0, false, empty) are omitted,
and a gRPC error arrives as an HTTP 4xx/5xx whose JSON body holds ``code`` (the gRPC
status code) and ``message`` (``etcdserver: ...``). :func:`error_from_reply` maps that to
the project's error tree: no leader, quorum lost or a timeout → ``Unavailable``; database
space exceeded (NOSPACE) → ``StoreFull``; a compacted revision → ``Expired``; anything
else → ``Internal``. Every message names the store and the endpoint.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ecsm_actors.errors import (
    Expired,
    Internal,
    RegistryError,
    StoreFull,
    Unavailable,
    clip_text,
    describe_input,
)

#: gRPC status codes etcd answers with (google.golang.org/grpc/codes).
GRPC_DEADLINE_EXCEEDED = 4
GRPC_NOT_FOUND = 5
GRPC_RESOURCE_EXHAUSTED = 8
GRPC_OUT_OF_RANGE = 11
GRPC_UNAVAILABLE = 14

#: etcd messages that mean "the cluster cannot serve this now" (rpctypes.ErrGRPC*).
UNAVAILABLE_MESSAGES = ("no leader", "request timed out", "leader changed",
                        "timed out", "not capable", "too many requests", "stopped")

_OPS = {"=": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}


def b64(data: bytes | str) -> str:
    """``data`` (text is UTF-8 encoded) as the gateway's base64 text."""
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def unb64(text: Any) -> bytes:
    """The bytes of a base64 field (absent or empty: ``b""``)."""
    return base64.b64decode(text) if text else b""


def as_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def prefix_end(prefix: bytes | str) -> bytes:
    """The ``range_end`` that selects every key starting with ``prefix`` (etcd's
    ``clientv3.GetPrefixRangeEnd``): the prefix with its last byte below 0xff incremented,
    the bytes after it dropped; ``b"\\0"`` (every key) for an empty or all-0xff prefix."""
    raw = bytearray(as_bytes(prefix))
    for i in range(len(raw) - 1, -1, -1):
        if raw[i] < 0xFF:
            raw[i] += 1
            return bytes(raw[: i + 1])
    return b"\0"


def key_body(key: bytes | str, range_end: bytes | str | None = None,
             **fields: int | bool) -> dict[str, Any]:
    """A request naming the keys [key, range_end) (only ``key`` when range_end is None),
    with the ``fields`` not at their default: int64s as strings, flags as true (the
    gateway's encoding)."""
    body: dict[str, Any] = {"key": b64(key)}
    if range_end is not None:
        body["range_end"] = b64(range_end)
    for name, value in fields.items():
        if value:
            body[name] = True if value is True else str(value)
    return body


def _int(value: Any) -> int:
    return int(value) if value else 0


@dataclass(frozen=True, kw_only=True)
class KeyValue:
    """One key as etcd stores it (mvccpb.KeyValue)."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    @classmethod
    def from_wire(cls, kv: Mapping[str, Any]) -> KeyValue:
        return cls(key=unb64(kv.get("key")), value=unb64(kv.get("value")),
                   create_revision=_int(kv.get("create_revision")),
                   mod_revision=_int(kv.get("mod_revision")),
                   version=_int(kv.get("version")), lease=_int(kv.get("lease")))


@dataclass(frozen=True, kw_only=True)
class RangeResult:
    """The answer of a range: the keys, how many matched, whether ``limit`` cut them,
    and the store's revision and cluster id when it answered."""

    kvs: list[KeyValue]
    count: int
    more: bool
    revision: int
    cluster_id: str

    @classmethod
    def from_wire(cls, reply: Mapping[str, Any]) -> RangeResult:
        header = reply.get("header") or {}
        return cls(kvs=[KeyValue.from_wire(kv) for kv in reply.get("kvs") or ()],
                   count=_int(reply.get("count")), more=bool(reply.get("more")),
                   revision=_int(header.get("revision")),
                   cluster_id=str(header.get("cluster_id") or ""))


@dataclass(frozen=True, kw_only=True)
class TxnResult:
    """The answer of a txn: which branch ran, the revision after it, and one response
    per operation of that branch (range → :class:`RangeResult`, delete → keys deleted,
    put → ``None``)."""

    succeeded: bool
    revision: int
    responses: list[RangeResult | int | None]

    @classmethod
    def from_wire(cls, reply: Mapping[str, Any]) -> TxnResult:
        responses: list[RangeResult | int | None] = []
        for op in reply.get("responses") or ():
            if "response_range" in op:
                responses.append(RangeResult.from_wire(op["response_range"]))
            elif "response_delete_range" in op:
                responses.append(_int(op["response_delete_range"].get("deleted")))
            else:
                responses.append(None)
        return cls(succeeded=bool(reply.get("succeeded")),
                   revision=_int((reply.get("header") or {}).get("revision")),
                   responses=responses)


@dataclass(frozen=True, kw_only=True)
class Compare:
    """One condition of a txn: ``target`` of ``key`` compared with ``operand``."""

    key: bytes
    target: str
    op: str
    operand: int | bytes

    @classmethod
    def _make(cls, key: bytes | str, target: str, op: str, operand: int | bytes) -> Compare:
        if op not in _OPS:
            raise ValueError(f"compare operator must be one of {', '.join(_OPS)}, "
                             f"not {describe_input(op)}")
        return cls(key=as_bytes(key), target=target, op=op, operand=operand)

    @classmethod
    def mod_revision(cls, key: bytes | str, op: str, revision: int) -> Compare:
        """``mod_revision(key) op revision`` (0: the key does not exist)."""
        return cls._make(key, "MOD", op, revision)

    @classmethod
    def create_revision(cls, key: bytes | str, op: str, revision: int) -> Compare:
        return cls._make(key, "CREATE", op, revision)

    @classmethod
    def version(cls, key: bytes | str, op: str, version: int) -> Compare:
        return cls._make(key, "VERSION", op, version)

    @classmethod
    def value(cls, key: bytes | str, op: str, value: bytes | str) -> Compare:
        return cls._make(key, "VALUE", op, as_bytes(value))

    def to_wire(self) -> dict[str, Any]:
        field = {"MOD": "mod_revision", "CREATE": "create_revision", "VERSION": "version",
                 "VALUE": "value"}[self.target]
        operand = (b64(self.operand) if isinstance(self.operand, bytes)
                   else str(self.operand))
        return {"key": b64(self.key), "result": _OPS[self.op], "target": self.target,
                field: operand}


@dataclass(frozen=True, kw_only=True)
class TxnOp:
    """One operation of a txn branch."""

    kind: str
    key: bytes
    value: bytes = b""
    range_end: bytes | None = None
    lease: int = 0

    @classmethod
    def put(cls, key: bytes | str, value: bytes | str, lease: int = 0) -> TxnOp:
        return cls(kind="put", key=as_bytes(key), value=as_bytes(value), lease=lease)

    @classmethod
    def delete(cls, key: bytes | str, range_end: bytes | str | None = None) -> TxnOp:
        return cls(kind="delete", key=as_bytes(key),
                   range_end=None if range_end is None else as_bytes(range_end))

    @classmethod
    def range(cls, key: bytes | str, range_end: bytes | str | None = None) -> TxnOp:
        return cls(kind="range", key=as_bytes(key),
                   range_end=None if range_end is None else as_bytes(range_end))

    def to_wire(self) -> dict[str, Any]:
        if self.kind == "put":
            body: dict[str, Any] = {"key": b64(self.key), "value": b64(self.value)}
            if self.lease:
                body["lease"] = str(self.lease)
            return {"request_put": body}
        return {"request_delete_range" if self.kind == "delete" else "request_range":
                key_body(self.key, self.range_end)}


def txn_body(compare: Sequence[Compare], success: Sequence[TxnOp],
             failure: Sequence[TxnOp]) -> dict[str, Any]:
    return {"compare": [c.to_wire() for c in compare],
            "success": [op.to_wire() for op in success],
            "failure": [op.to_wire() for op in failure]}


def error_message(body: Any) -> tuple[int, str]:
    """The gRPC code and message of an error body (``{"code", "message"/"error"}``, or
    in a stream ``{"error": {"grpc_code", "message"}}``); ``(0, "")`` if none."""
    if not isinstance(body, Mapping):
        return 0, ""
    inner = body.get("error")
    if isinstance(inner, Mapping):
        body = inner
    code = body.get("code", body.get("grpc_code", 0))
    message = body.get("message") or body.get("error") or ""
    return (code if isinstance(code, int) else 0,
            message if isinstance(message, str) else describe_input(message))


def is_unavailable(code: int, message: str) -> bool:
    return (code in (GRPC_UNAVAILABLE, GRPC_DEADLINE_EXCEEDED)
            or any(m in message for m in UNAVAILABLE_MESSAGES))


def is_no_leader(message: str) -> bool:
    """The member refused before proposing anything: safe to send elsewhere."""
    return "no leader" in message or "not capable" in message


def error_from_reply(endpoint: str, status: int, body: Any) -> RegistryError:
    """The project error for an HTTP error answer of the gateway at ``endpoint``."""
    code, message = error_message(body)
    text = clip_text(message or f"HTTP {status}", 300)
    if code == GRPC_RESOURCE_EXHAUSTED or "space exceeded" in message or "NOSPACE" in message:
        return StoreFull(f"etcd store full ({endpoint}): {text}")
    if "compacted" in message:
        return Expired(f"etcd store ({endpoint}): {text}")
    if is_unavailable(code, message) or status in (502, 503, 504):
        return Unavailable(f"etcd store unavailable ({endpoint}): {text}")
    return Internal(f"etcd store error ({endpoint}): {text}")
