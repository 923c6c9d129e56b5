"""The key layout of the registry's store in etcd, and the object values' encoding.

Runs in the registry process (and in the tools that read an etcd store: ``store migrate``,
the event publisher). Pure functions, no I/O. Under the configured prefix (``/ecsm-actors/``
by default), one operator per prefix:

* ``<prefix>epoch`` → ``<epoch>/<cluster id>``: the epoch (16 hex digits), made when the
  key is absent, and the etcd cluster it was made on; a registry that finds the key gone
  (a wiped prefix) or made on another cluster (a replaced cluster) writes a new one, and
  every registry on the prefix adopts it (informers relist).
* ``<prefix>objects/<kind>/<namespace>/<name>`` → the object, msgpack, as the LMDB store
  keeps it; its ``metadata.resourceVersion`` is the key's ``mod_revision``, set on every
  read (:func:`object_frame`) — the value's own is not trusted (it is written as 0: the
  revision is known only once the txn has committed).
* ``<prefix>requests/<requestId>`` → the request window's record of a write that carried
  a ``requestId`` (:func:`pack_request_record`), written in the write's own txn and
  attached to an etcd lease that ends it once past ``registry.request_window_age``.
* ``<prefix>leases/<controller kind>`` → the leader of a controller kind (leader election).
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

from ecsm_actors import protocol
from ecsm_actors.errors import Internal

OBJECTS = b"objects/"
REQUESTS = b"requests/"
EPOCH = b"epoch"
LEASES = b"leases/"

_TIME = struct.Struct(">d")


def prefix_bytes(prefix: str | bytes) -> bytes:
    """The configured prefix as bytes, ending with ``/``."""
    raw = prefix.encode() if isinstance(prefix, str) else bytes(prefix)
    return raw if raw.endswith(b"/") else raw + b"/"


def objects_prefix(prefix: bytes, kind: str | None = None,
                   namespace: str | None = None) -> bytes:
    """The keys of every object (of a kind; of a kind in one namespace)."""
    if kind is None:
        return prefix + OBJECTS
    if namespace:
        return prefix + OBJECTS + f"{kind}/{namespace}/".encode()
    return prefix + OBJECTS + f"{kind}/".encode()


def object_key(prefix: bytes, store_key: bytes) -> bytes:
    """The etcd key of the object whose store key (``Kind/namespace/name``) is given."""
    return prefix + OBJECTS + store_key


def store_key_of(prefix: bytes, etcd_key: bytes) -> bytes:
    """The store key (``Kind/namespace/name``) of an object's etcd key."""
    return etcd_key[len(prefix) + len(OBJECTS):]


def request_key(prefix: bytes, request_id: str) -> bytes:
    return prefix + REQUESTS + request_id.encode()


def epoch_key(prefix: bytes) -> bytes:
    return prefix + EPOCH


def _rv_span(frame: bytes) -> tuple[int, int]:
    """Where ``metadata.resourceVersion``'s value lies in an encoded object."""
    try:
        unpacker = protocol.seek_resource_version(frame)
        if unpacker is not None:
            start = unpacker.tell()
            unpacker.skip()
            return start, unpacker.tell()
    except protocol.MSGPACK_ERRORS as e:
        raise Internal(f"stored object is unreadable: {e}") from e
    raise Internal("stored object without metadata.resourceVersion")


def object_frame(value: bytes, mod_revision: int) -> bytes:
    """The object stored in ``value`` with ``metadata.resourceVersion = mod_revision``,
    encoded, without decoding the rest (a LIST splices thousands this way)."""
    start, end = _rv_span(value)
    return value[:start] + msgpack.packb(mod_revision) + value[end:]


def decode_object(value: bytes, mod_revision: int) -> dict[str, Any]:
    """The object stored in ``value``, its resourceVersion the key's ``mod_revision``."""
    obj: dict[str, Any] = msgpack.unpackb(value, raw=False)
    obj["metadata"]["resourceVersion"] = mod_revision
    return obj


def pack_object(obj: dict[str, Any]) -> bytes:
    """The value stored for ``obj`` (its resourceVersion written as 0, see above)."""
    meta = {**obj["metadata"], "resourceVersion": 0}
    return msgpack.packb({**obj, "metadata": meta}, use_bin_type=True)


def pack_request_record(record: dict[str, Any], now: float) -> bytes:
    """A request window record: the wall time it was recorded, then the msgpack record."""
    return _TIME.pack(now) + msgpack.packb(record, use_bin_type=True)


def unpack_request_record(value: bytes) -> tuple[float, dict[str, Any]]:
    try:
        record: dict[str, Any] = msgpack.unpackb(value[_TIME.size:], raw=False)
        return _TIME.unpack_from(value)[0], record
    except (ValueError, struct.error, msgpack.UnpackException) as e:
        raise Internal(f"request window record is unreadable: {e}") from e


def pack_epoch(epoch: str, cluster_id: str) -> bytes:
    return f"{epoch}/{cluster_id}".encode()


def unpack_epoch(value: bytes) -> tuple[str, str]:
    """(epoch, cluster id it was made on) of the epoch key's value."""
    epoch, _, cluster = value.decode(errors="replace").partition("/")
    return epoch, cluster
