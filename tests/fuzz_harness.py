"""Hostile inputs for the protocol's decoders, reproducible from a seed: the fuzz test
(``tests/unit/test_protocol_fuzz.py``) and its longer run (``tests/bench/bench_fuzz.py``).

:func:`inputs` yields ``(target, input)`` pairs: a target names a decoder
(:data:`TARGETS`), an input is what a peer could send it — a mutation of a valid frame
(bit flips, truncation, splicing, chunks inserted, deleted or repeated, a value swapped
for one of another type, a value nested hundreds deep, length headers claiming gigabytes)
or random msgpack of a random structure, or random bytes. :func:`run_one` feeds one input
to its decoder and returns what came out: ``None`` when the decoder answered as it must
(a result, ``BadRequest``, or for ``reply`` any typed ``RegistryError``), else the
unexpected exception.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable, Iterator
from typing import Any

import msgpack

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest, RegistryError
from ecsm_actors.protocol import ControlOp, Event, EventType, Liveness, Op
from tests.registry_samples import hpa, service

#: Largest request the registry decodes (its default max_frame_bytes).
MAX_REQUEST = 4 << 20

Input = bytes | list[bytes]

DECODERS: dict[str, Callable[[Any], Any]] = {
    "request": lambda f: protocol.decode_request(f, MAX_REQUEST),
    "control": protocol.decode_control,
    "liveness": protocol.decode_liveness,
    "event": protocol.decode_published,
    "heartbeat": protocol.decode_published,
    "reply": protocol.decode_reply,
}
#: Decoders and their share of the inputs.
TARGETS: dict[str, float] = {"request": 0.34, "control": 0.12, "liveness": 0.12,
                             "event": 0.14, "heartbeat": 0.08, "reply": 0.20}

FIELD_NAMES = ["v", "id", "op", "kind", "namespace", "name", "object", "view",
               "resourceVersion", "epoch", "seq", "type", "key", "ok", "result", "error",
               "code", "message", "causes", "field", "stats", "pid", "ts", "queueDepth",
               "oldestInflightAge", "lastCompleted", "items", "events", "metadata", "spec",
               "requestId", "writes", "atomic", "limit", "continue", "replayed", "results",
               "remainingItemCount"]
NASTY_TEXT = "\x00\n\r\x07\x1b[2J\u202e\u200b\ufeff\U0010ffff'\"\\%s{}"


def seed_frames() -> dict[str, list[Input]]:
    """Valid inputs of every target, to be mutated."""
    obj = service("web", annotations={"note": "hello"})
    stored = {**obj, "metadata": {**obj["metadata"], "resourceVersion": 7, "uid": "u-1",
                                  "generation": 1}}
    requests = [
        protocol.encode_request(Op.PING, 1),
        protocol.encode_request(Op.GET, "a", kind="ECSMService", namespace="default",
                                name="web"),
        protocol.encode_request(Op.LIST, 3, kind="ECSMHpa", namespace=None, view="versions"),
        protocol.encode_request(Op.CREATE, 4, object=obj),
        protocol.encode_request(Op.UPDATE, 5, object=stored),
        protocol.encode_request(Op.UPDATE_STATUS, 6, object={**stored, "status": {"a": 1}}),
        protocol.encode_request(Op.APPLY, 7, object=hpa("web")),
        protocol.encode_request(Op.DELETE, 8, kind="ECSMService", namespace="d", name="n",
                                resourceVersion=3),
        protocol.encode_request(Op.WATCH_SINCE, 9, resourceVersion=0),
        protocol.encode_request(Op.CREATE, 10, object=obj, requestId="cli-1a2b.3:x/y_z-9"),
        protocol.encode_request(Op.DELETE, 11, kind="ECSMService", namespace="d", name="n",
                                requestId="r-2"),
        protocol.encode_request(Op.BATCH, 12, requestId="b-1", atomic=True, writes=[
            {"op": "CREATE", "object": obj}, {"op": "UPDATE", "object": stored},
            {"op": "DELETE", "kind": "ECSMService", "namespace": "d", "name": "n"}]),
        protocol.encode_request(Op.BATCH, 13, writes=[{"op": "APPLY", "object": hpa("web")}]),
        protocol.encode_request(Op.LIST, 14, kind="ECSMService", namespace="d", limit=50,
                                **{"continue": "1.RUNTTVNlcnZpY2UvZC9h"}),
    ]
    control = [protocol.encode_control(op, i, name="registry", signal=9)
               for i, op in enumerate(ControlOp)]
    liveness = [protocol.encode_liveness(Liveness(
        name="service-controller", pid=1234, ts=1.7e9, queue_depth=3,
        oldest_inflight_age=0.5, last_completed=1.7e9,
        stats={"reconciles": 10, "retry_budget": {"tokens": 9.5}}))]
    event = Event(epoch="e1", seq=7, type=EventType.MODIFIED, kind="ECSMService",
                  key="default/web", resource_version=7, object=stored)
    events: list[Input] = [protocol.encode_event(event),
                           [b"ECSMService.ADDED",
                            protocol.encode_event_body("e1", EventType.ADDED, "ECSMService",
                                                       "d/a", 1, protocol.pack(stored))]]
    heartbeats: list[Input] = [protocol.encode_heartbeat("e1", 7)]
    replies = [
        protocol.encode_reply(1, "e1", stored),
        protocol.encode_reply_with_raw_list(2, "e1", {"resourceVersion": 7}, "items", 1,
                                            protocol.pack(stored)),
        protocol.encode_error(3, "e1", RegistryError("boom")),
        protocol.encode_reply(4, "e1", {"epoch": "e1", "resourceVersion": 7, "pid": 9}),
        protocol.encode_reply_encoded(6, "e1", protocol.pack(stored), replayed=True),
        protocol.pack({"v": 1, "id": 7, "ok": False, "epoch": "e1", "replayed": True, "error": {
            "code": "Aborted", "message": "not applied", "causes": []}}),
        protocol.encode_reply(8, "e1", {"resourceVersion": 9, "results": [
            {"ok": True, "result": stored}, {"ok": False, "error": {
                "code": "Conflict", "message": "stale", "causes": []}}]}),
        protocol.encode_reply(9, "e1", {"resourceVersion": 9, "items": [stored],
                                        "continue": "1.abc", "remainingItemCount": 3}),
        protocol.pack({"v": 1, "id": 5, "ok": False, "epoch": "e1", "error": {
            "code": "Invalid", "message": "bad", "causes": [{"field": "spec", "message": "x"}]}}),
    ]
    return {"request": list(requests), "control": list(control), "liveness": list(liveness),
            "event": events, "heartbeat": heartbeats, "reply": list(replies)}


# -- random values ----------------------------------------------------------------------


_TEXT_POOL = NASTY_TEXT + "abcdefgh/.-_ECSMService"
_POOL_BITS = len(_TEXT_POOL).bit_length()


def random_text(rng: random.Random, longest: int = 40) -> str:
    n = rng.choice((0, 1, 3, 8, longest)) if rng.random() < 0.9 else rng.randrange(2000)
    # Each character drawn exactly as ``rng.choice(_TEXT_POOL)`` draws it (getrandbits of
    # the pool size's bit length, again while out of range): the same text for a seed,
    # without two Python calls a character (most of the fuzz test's time went there).
    bits, size, out = rng.getrandbits, len(_TEXT_POOL), []
    for _ in range(n):
        r = bits(_POOL_BITS)
        while r >= size:
            r = bits(_POOL_BITS)
        out.append(_TEXT_POOL[r])
    return "".join(out)


def random_scalar(rng: random.Random) -> Any:
    pick = rng.randrange(12)
    if pick == 0:
        return None
    if pick == 1:
        return rng.random() < 0.5
    if pick == 2:
        return rng.choice((0, 1, -1, 2 ** 63 - 1, -(2 ** 63), 2 ** 64 - 1, 2 ** 32, 7))
    if pick == 3:
        return rng.randrange(-1000, 1000)
    if pick == 4:
        return rng.choice((0.0, -0.0, 1.5, math.nan, math.inf, -math.inf, 1e308, 5e-324))
    if pick == 5:
        return rng.randbytes(rng.choice((0, 1, 8, 100)))
    if pick == 6:
        if rng.random() < 0.3:
            return msgpack.Timestamp(rng.randrange(-(2 ** 33), 2 ** 33), rng.randrange(10 ** 9))
        return msgpack.ExtType(rng.randrange(128), rng.randbytes(rng.randrange(9)))
    if pick == 7:
        return rng.choice(list(Op) + list(ControlOp) + list(EventType)).value
    return random_text(rng)


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """A random msgpack-able value: scalars, lists and maps (keys mostly strings)."""
    if depth > 4 or rng.random() < 0.6:
        return random_scalar(rng)
    if rng.random() < 0.5:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    doc: dict[Any, Any] = {}
    for _ in range(rng.randrange(6)):
        key = rng.choice(FIELD_NAMES) if rng.random() < 0.9 else random_scalar(rng)
        if isinstance(key, (list, dict)):
            continue
        doc[key] = random_value(rng, depth + 1)
    return doc


def random_doc(rng: random.Random) -> dict[Any, Any]:
    """A map that often looks like a message: ``v`` 1, a valid op, known field names."""
    doc: dict[Any, Any] = {}
    if rng.random() < 0.85:
        doc["v"] = 1
    if rng.random() < 0.6:
        doc["op"] = rng.choice(list(Op) + list(ControlOp)).value
    if rng.random() < 0.7:
        doc["id"] = rng.randrange(100)
    for _ in range(rng.randrange(8)):
        doc[rng.choice(FIELD_NAMES)] = random_value(rng, 1)
    return doc


def nested_list(depth: int) -> bytes:
    """The msgpack encoding of ``[[[...1...]]]``, ``depth`` lists deep (packb itself
    refuses to encode it)."""
    return b"\x91" * depth + b"\x01"


def with_raw(doc: dict[str, Any], field: str, raw: bytes) -> bytes:
    """``doc`` packed with ``raw`` (already msgpack) as the value of ``field``."""
    placeholder = "\x00placeholder\x00"
    return msgpack.packb({**doc, field: placeholder}).replace(msgpack.packb(placeholder), raw)


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def deep(rng: random.Random) -> bytes:
    """msgpack nested hundreds or thousands deep (arrays, maps or both)."""
    depth = rng.choice((64, 99, 100, 101, 500, 999, 1000, 1023, 1024, 1100, 5000))
    heads = rng.choice((b"\x91", b"\x81\xa1k", b"\x91\x81\xa1k"))
    return heads * (depth // (1 if len(heads) < 5 else 2)) + pack(random_scalar(rng))


def huge_header(rng: random.Random) -> bytes:
    """A length header claiming far more than follows (str, bin, array, map, ext)."""
    code = rng.choice((0xDB, 0xC6, 0xDD, 0xDF, 0xC9, 0xDA, 0xDC, 0xDE))
    size = rng.choice((0xFFFFFFFF, 1 << 30, 1 << 20, 65535))
    if code in (0xDA, 0xDC, 0xDE):
        body = struct.pack(">H", min(size, 0xFFFF))
    else:
        body = struct.pack(">I", size)
    if code == 0xC9:
        body += b"\x01"
    return bytes([code]) + body + rng.randbytes(rng.randrange(16))


# -- mutations ----------------------------------------------------------------------------


_PLACEHOLDER = "\x00fuzz-placeholder\x00"


def paths(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key-or-index) of ``doc``, without recursion."""
    out: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            out.append((node, key))
            if isinstance(value, (dict, list)):
                stack.append(value)
    return out


def swap_value(rng: random.Random, frame: bytes) -> bytes:
    """Decode a valid frame, replace one value (or key) with one of another kind, repack.
    The new value may be raw msgpack: nested deep, or a lying length header."""
    doc = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    spots = paths(doc) if isinstance(doc, (dict, list)) else []
    if not spots:
        return frame
    node, key = rng.choice(spots)
    raw = None
    roll = rng.random()
    if roll < 0.2:
        raw = deep(rng)
    elif roll < 0.3:
        raw = huge_header(rng)
    elif roll < 0.35 and isinstance(node, dict):
        value = node.pop(key)
        new_key = random_scalar(rng)
        if not isinstance(new_key, (list, dict)):
            node[new_key] = value
        return pack(doc)
    elif roll < 0.4 and isinstance(node, dict):
        del node[key]
        return pack(doc)
    if raw is not None:
        node[key] = _PLACEHOLDER
        return pack(doc).replace(pack(_PLACEHOLDER), raw, 1)
    node[key] = random_value(rng)
    return pack(doc)


def mutate_bytes(rng: random.Random, frame: bytes, other: bytes) -> bytes:
    data = bytearray(frame)
    roll = rng.randrange(6)
    if roll == 0 and data:  # flip 1..8 bits
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif roll == 1:  # truncate
        del data[rng.randrange(len(data) + 1):]
    elif roll == 2:  # splice with another frame
        cut, cut2 = rng.randrange(len(data) + 1), rng.randrange(len(other) + 1)
        data = data[:cut] + other[cut2:]
    elif roll == 3:  # insert random bytes or a lying header
        i = rng.randrange(len(data) + 1)
        data[i:i] = huge_header(rng) if rng.random() < 0.5 else rng.randbytes(rng.randint(1, 9))
    elif roll == 4 and data:  # delete a chunk
        i = rng.randrange(len(data))
        del data[i:i + rng.randint(1, 16)]
    elif data:  # repeat a chunk
        i = rng.randrange(len(data))
        data[i:i] = data[i:i + rng.randint(1, 64)] * rng.randint(1, 50)
    return bytes(data)


def one_input(rng: random.Random, target: str, seeds: dict[str, list[Input]]) -> Input:
    base = rng.choice(seeds[target])
    frame = base[-1] if isinstance(base, list) else base
    roll = rng.random()
    if roll < 0.40:
        body = swap_value(rng, frame)
    elif roll < 0.75:
        other = rng.choice(seeds[rng.choice(list(seeds))])
        body = mutate_bytes(rng, frame, other[-1] if isinstance(other, list) else other)
    elif roll < 0.93:
        body = pack(random_doc(rng))
    elif roll < 0.97:
        body = pack(random_value(rng))
    else:
        body = rng.randbytes(rng.choice((0, 1, 5, 64, 4096)))
    if target not in ("event", "heartbeat"):
        return body
    topic = protocol.HEARTBEAT_TOPIC if target == "heartbeat" else base[0]
    roll = rng.random()
    if roll < 0.05:
        return [body]
    if roll < 0.08:
        return [topic, body, b"extra"]
    if roll < 0.12:
        return [rng.randbytes(rng.randrange(20)), body]
    return [topic, body]


def inputs(seed: int, count: int) -> Iterator[tuple[str, Input]]:
    """``count`` hostile inputs, the same for the same seed."""
    rng = random.Random(seed)
    seeds = seed_frames()
    names, weights = list(TARGETS), list(TARGETS.values())
    for _ in range(count):
        target = rng.choices(names, weights)[0]
        yield target, one_input(rng, target, seeds)


def run_one(target: str, data: Input) -> BaseException | None:
    """Feed ``data`` to its decoder: ``None`` if it answered as it must, else the
    exception that escaped."""
    try:
        DECODERS[target](data)
    except BadRequest:
        return None
    except RegistryError as e:
        return None if target == "reply" else e
    except Exception as e:  # noqa: BLE001 - the finding
        return e
    return None
