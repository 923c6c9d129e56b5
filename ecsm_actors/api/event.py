"""The ``Event`` kind: a record of something that happened to an object (Kubernetes'
core/v1 Event), never a source of truth for a controller (DESIGN §11).

Owns the record's shape, its aggregation key and the checks the registry makes of an
occurrence a recorder sends (:func:`occurrence`). Pure; runs in the registry (checks,
merge), the controllers and the supervisor (the recorder builds occurrences) and the CLI.

An occurrence on the wire (``RECORD_EVENTS``): ``{involvedObject: {kind, namespace, name,
uid?}, type: Normal|Warning, reason, message, count, firstTimestamp, lastTimestamp,
source: {component, host?}}`` — ``count`` the occurrences since the recorder last sent
this series. The stored record adds ``apiVersion``, ``kind: Event``, ``metadata`` (name
``<involved name>.<digest>``, namespace that of the involved object, ``default`` when it
has none) and ``reportingComponent``; its ``count`` is the sum of the occurrences sent.

Invariants: a record's identity (its key) is (involved object, type, reason, message,
source component), so a flapping condition is one record whose ``count`` grows; the
message is cut to :data:`MAX_MESSAGE` characters; every string of a record is bounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# CPython's own BLAKE2, not hashlib's: hashlib maps libcrypto (3.8 MiB) into every
# process that imports it, the supervisor's included.
from _blake2 import blake2b

from ecsm_actors.api.kinds import API_VERSION
from ecsm_actors.api.names import format_timestamp, parse_timestamp
from ecsm_actors.errors import Cause, Invalid, describe_input

EVENT_KIND = "Event"
#: The words ``ecsm-cli get`` accepts for events.
EVENT_WORDS = ("events", "event", "ev")
NORMAL = "Normal"
WARNING = "Warning"
EVENT_TYPES = (NORMAL, WARNING)
#: Longest message kept, characters (Kubernetes' recorder cuts at 1,024 too).
MAX_MESSAGE = 1024
#: Longest reason, kind, namespace, name, uid or component, characters.
MAX_WORD = 253
#: Longest ``<namespace>/<kind>/<name>/`` of a record key, bytes (LMDB keys are at most
#: 511 bytes; the digest and the last-seen time need the rest).
MAX_KEY = 480
#: Largest count one occurrence may carry.
MAX_COUNT = 1 << 31
#: Namespace of the events of objects that have none (supervisor children).
DEFAULT_NAMESPACE = "default"


def clip_message(message: str) -> str:
    """``message`` cut to :data:`MAX_MESSAGE` characters (``...`` marks a cut)."""
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def record_key(occ: Mapping[str, Any]) -> bytes:
    """The store key of the record an occurrence aggregates into:
    ``<namespace>/<kind>/<name>/<digest>``, so one object's records share a prefix."""
    inv = occ["involvedObject"]
    digest = blake2b(
        "\0".join((occ["type"], occ["reason"], occ["message"],
                   occ["source"]["component"])).encode(), digest_size=8).hexdigest()
    return f"{namespace_of(inv)}/{inv['kind']}/{inv['name']}/{digest}".encode()


def object_prefix(namespace: str | None, kind: str | None = None,
                  name: str | None = None) -> bytes:
    """The key prefix of the records of a namespace (all: None), a kind, an object."""
    parts = [p for p in (namespace, kind, name) if p is not None]
    return "".join(f"{p}/" for p in parts).encode()


def namespace_of(involved: Mapping[str, Any]) -> str:
    return involved.get("namespace") or DEFAULT_NAMESPACE


def _word(doc: Mapping[str, Any], name: str, path: str, causes: list[Cause], *,
          optional: bool = False, slash: bool = False) -> str:
    value = doc.get(name)
    if value is None and optional:
        return ""
    if not isinstance(value, str) or (not value and not optional) or len(value) > MAX_WORD \
            or (not slash and "/" in value):
        causes.append(Cause(field=f"{path}{name}", message=f"expected a string of 1 to "
                            f"{MAX_WORD} characters without '/', got {describe_input(value)}"))
        return ""
    return value


def occurrence(doc: Any) -> tuple[dict[str, Any], float, float]:
    """Check one occurrence from the wire; return it normalised (message cut) with its
    first and last times as seconds. Raises Invalid with field causes."""
    if not isinstance(doc, Mapping):
        raise Invalid("event is invalid", [Cause(field="", message="expected a map")])
    causes: list[Cause] = []
    inv = doc.get("involvedObject")
    if not isinstance(inv, Mapping):
        causes.append(Cause(field="involvedObject", message="expected a map"))
        inv = {}
    involved = {"kind": _word(inv, "kind", "involvedObject.", causes),
                "namespace": _word(inv, "namespace", "involvedObject.", causes, optional=True),
                "name": _word(inv, "name", "involvedObject.", causes)}
    uid = _word(inv, "uid", "involvedObject.", causes, optional=True)
    if uid:
        involved["uid"] = uid
    src = doc.get("source")
    if not isinstance(src, Mapping):
        causes.append(Cause(field="source", message="expected a map"))
        src = {}
    source = {"component": _word(src, "component", "source.", causes)}
    host = _word(src, "host", "source.", causes, optional=True)
    if host:
        source["host"] = host
    type_ = doc.get("type")
    if type_ not in EVENT_TYPES:
        causes.append(Cause(field="type", message=f"expected Normal or Warning, got "
                            f"{describe_input(type_)}"))
    reason = _word(doc, "reason", "", causes)
    message = doc.get("message", "")
    if not isinstance(message, str):
        causes.append(Cause(field="message", message=f"expected a string, got "
                            f"{describe_input(message)}"))
        message = ""
    count = doc.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_COUNT:
        causes.append(Cause(field="count", message=f"expected an integer from 1 to "
                            f"{MAX_COUNT}, got {describe_input(count)}"))
    times = []
    for name in ("firstTimestamp", "lastTimestamp"):
        try:
            times.append(parse_timestamp(doc.get(name)))  # type: ignore[arg-type]
        except Invalid:
            causes.append(Cause(field=name, message=f"expected an RFC 3339 timestamp, got "
                                f"{describe_input(doc.get(name))}"))
    prefix = object_prefix(namespace_of(involved), involved["kind"], involved["name"])
    if not causes and len(prefix) > MAX_KEY:
        causes.append(Cause(field="involvedObject", message=f"namespace, kind and name "
                            f"take more than {MAX_KEY} bytes"))
    if causes:
        raise Invalid("event is invalid", causes)
    first, last = min(times), max(times)
    occ = {"involvedObject": involved, "type": type_, "reason": reason,
           "message": clip_message(message), "count": count,
           "firstTimestamp": format_timestamp(first), "lastTimestamp": format_timestamp(last),
           "source": source}
    return occ, first, last


def merge(current: Mapping[str, Any] | None, occ: Mapping[str, Any], key: bytes,
          first: float, last: float, current_first: float | None = None,
          current_last: float | None = None) -> dict[str, Any]:
    """The record after ``occ``: a new record, or ``current`` with its count grown and
    its timestamps widened (a retried occurrence moves neither timestamp)."""
    if current is None:
        inv = occ["involvedObject"]
        digest = key.decode().rsplit("/", 1)[1]
        return {"apiVersion": API_VERSION, "kind": EVENT_KIND,
                "metadata": {"name": f"{inv['name']}.{digest}",
                             "namespace": namespace_of(inv),
                             "creationTimestamp": occ["firstTimestamp"]},
                "involvedObject": dict(inv), "type": occ["type"], "reason": occ["reason"],
                "message": occ["message"], "count": occ["count"],
                "firstTimestamp": occ["firstTimestamp"], "lastTimestamp": occ["lastTimestamp"],
                "source": dict(occ["source"]),
                "reportingComponent": occ["source"]["component"]}
    record = dict(current)
    record["count"] = min(MAX_COUNT, int(current.get("count", 0)) + occ["count"])
    if current_first is None or first < current_first:
        record["firstTimestamp"] = occ["firstTimestamp"]
    if current_last is None or last > current_last:
        record["lastTimestamp"] = occ["lastTimestamp"]
    return record
