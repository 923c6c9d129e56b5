"""Frames of 64 KiB and more are proven shallow part by part (the container heads each
part holds) before any walk of the decoded document: a frame is still refused exactly
when it nests more than MAX_DEPTH levels, wherever the deep part sits."""

from __future__ import annotations

import random
from typing import Any

import msgpack
import pytest

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest


def depth(doc: Any) -> int:
    """Levels of maps and lists (a scalar: 0), counted independently of the protocol."""
    if isinstance(doc, dict):
        return 1 + max((depth(v) for v in doc.values()), default=0)
    if isinstance(doc, list):
        return 1 + max((depth(v) for v in doc), default=0)
    return 0


def nested(levels: int) -> Any:
    doc: Any = 1
    for _ in range(levels):
        doc = [doc]
    return doc


def list_reply(objects: list[Any]) -> bytes:
    data = b"".join(msgpack.packb(o, use_bin_type=True) for o in objects)
    return protocol.encode_reply_with_raw_list(1, "e", {"resourceVersion": 1}, "items",
                                               len(objects), data)


def accepted(frame: bytes) -> bool:
    try:
        protocol.unpack(frame)
    except BadRequest as e:
        assert "nested more than 100 levels deep" in str(e)
        return False
    return True


OBJECT = {"metadata": {"name": "web", "labels": {"a": "b"}},
          "spec": {"env": [{"name": f"V{i}", "value": "x" * 40} for i in range(8)]}}


@pytest.mark.parametrize(("levels", "ok"), [(97, True), (98, False)])
def test_one_deep_object_amid_a_large_list_reply_is_found(levels: int, ok: bool) -> None:
    # the object sits 3 levels down (reply map, result map, items list): 97 + 3 = 100
    frame = list_reply([OBJECT] * 500 + [nested(levels)] + [OBJECT] * 500)
    assert len(frame) >= 64 << 10
    assert accepted(frame) is ok


def test_random_nesting_is_refused_exactly_past_the_limit() -> None:
    rng = random.Random(16)
    # strings and bytes full of bytes that look like container heads
    scalars = [1, None, 2.5, "\x80\x90\xdc" * 3, b"\x81\x92\xde"]

    def spine(levels: int) -> Any:
        """A chain of ``levels`` maps and lists, each with scalars and small side
        containers around the next link, at a random place among them."""
        doc: Any = rng.choice(scalars)
        for _ in range(levels):
            around = [rng.choice(scalars) if rng.random() < 0.6 else [{"s": [1]}]
                      for _ in range(rng.randint(0, 3))]
            around.insert(rng.randint(0, len(around)), doc)
            doc = around if rng.random() < 0.5 else {f"k{i}": v for i, v in enumerate(around)}
        return doc

    seen = set()
    for _ in range(120):
        doc = {"v": protocol.VERSION, "pad": "p" * (64 << 10),
               "x": [spine(rng.randint(90, 102)) for _ in range(3)]}
        frame = msgpack.packb(doc, use_bin_type=True)
        ok = depth(doc) <= protocol.MAX_DEPTH
        seen.add(ok)
        assert accepted(frame) is ok, depth(doc)
    assert seen == {True, False}


# -- decoded part by part -------------------------------------------------------------


def levels(doc: Any) -> int:
    """:func:`depth` without recursion (a frame may nest 1,000 levels)."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            stack += [(v, level + 1) for v in (node.values() if isinstance(node, dict)
                                                else node)]
    return deepest


def decoded_whole(frame: bytes) -> dict[str, Any] | None:
    """What a frame must decode to, decided independently of the protocol: None for a
    frame refused (malformed, not a map, nested past MAX_DEPTH)."""
    try:
        doc = msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except Exception:  # noqa: BLE001 - any failure is a refusal
        return None
    return doc if isinstance(doc, dict) and levels(doc) <= protocol.MAX_DEPTH else None


def test_a_large_list_reply_is_decoded_part_by_part_as_a_whole_decode_would() -> None:
    frame = list_reply([{**OBJECT, "metadata": {"name": f"web-{i}"}} for i in range(400)])
    doc = protocol._unpack_by_parts(frame)
    assert doc is not None  # decided by the parts' counts, no fallback to the whole walk
    assert doc == msgpack.unpackb(frame, raw=False, strict_map_key=True)
    assert protocol.unpack(frame) == doc


@pytest.mark.timeout(60)
def test_decoding_part_by_part_accepts_only_what_the_whole_decode_does_and_alike() -> None:
    """Hostile large frames (values swapped for deep, lying or odd ones; bytes flipped,
    cut, spliced, repeated): the part-by-part decode gives exactly the whole decode's
    document, or leaves the frame to it (None); it never accepts a refused frame."""
    from tests.fuzz_harness import mutate_bytes, swap_value

    rng = random.Random(16)
    objects = [{**OBJECT, "metadata": {"name": f"web-{i}", "n": i}} for i in range(160)]
    watch = [{"v": 1, "seq": i, "type": "ADDED", "object": o} for i, o in enumerate(objects)]
    frames = [list_reply(objects),
              protocol.encode_reply_with_raw_list(
                  2, "e", {"resourceVersion": 9}, "events", len(watch),
                  b"".join(msgpack.packb(e) for e in watch)),
              msgpack.packb({"v": 1, "id": 3, "op": "BATCH",
                             "writes": [{"op": "CREATE", "object": o} for o in objects]})]
    assert all(len(f) >= 64 << 10 for f in frames)
    taken = refused = 0
    for _ in range(120):
        frame = rng.choice(frames)
        for _ in range(1 if rng.random() < 0.7 else 2):
            frame = (swap_value(rng, frame) if rng.random() < 0.6 and decoded_whole(frame)
                     else mutate_bytes(rng, frame, rng.choice(frames)))
        if len(frame) < 64 << 10:
            continue
        fast, whole = protocol._unpack_by_parts(frame), decoded_whole(frame)
        taken += fast is not None
        refused += whole is None
        if fast is not None:
            assert whole is not None, frame[:64].hex()
            assert msgpack.packb(fast) == msgpack.packb(whole)
    assert taken > 20 and refused > 20, (taken, refused)
