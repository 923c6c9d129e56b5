"""Frames of 64 KiB and more are proven shallow by their decode (wrapped so that the
decoder's own stack bound falls at MAX_DEPTH), else part by part (the container heads each
part holds) before any walk of the decoded document: a frame is still refused exactly
when it nests more than MAX_DEPTH levels, wherever the deep part sits."""

from __future__ import annotations

import random
import tracemalloc
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


# -- decoded wrapped ------------------------------------------------------------------


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


def test_the_decoders_own_bound_is_found_and_put_at_max_depth() -> None:
    levels = protocol._decoder_levels()
    chain = b"\x91" * (levels - 1)
    msgpack.unpackb(chain + b"\x90")  # levels nested containers decode
    with pytest.raises(msgpack.StackError):
        msgpack.unpackb(chain + b"\x91\x90")  # one more does not
    assert len(protocol._wrap()) + protocol.MAX_DEPTH == levels


@pytest.mark.parametrize("levels", [97, 98])
def test_a_large_frame_decoded_wrapped_is_refused_exactly_past_max_depth(levels: int) -> None:
    for at in (0, 500, 1000):
        objects = [OBJECT] * 1000
        objects.insert(at, nested(levels))
        doc = protocol._unpack_wrapped(list_reply(objects))
        assert (doc is not None) is (levels + 3 <= protocol.MAX_DEPTH)
        if doc is not None:
            assert depth(doc) == protocol.MAX_DEPTH


def test_a_large_frame_is_decoded_without_a_second_copy_of_it_or_a_walk(
        monkeypatch: pytest.MonkeyPatch) -> None:
    parts = [bytes([i]) * (64 << 10) for i in range(64)]  # 4 MiB in values of 64 KiB
    frame = msgpack.packb({"v": protocol.VERSION, "parts": parts})

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a second look at the frame")

    monkeypatch.setattr(protocol, "_shallow_by_parts", refused)
    monkeypatch.setattr(protocol, "_nests_within", refused)
    tracemalloc.start()
    try:
        doc = protocol.unpack(frame)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert doc["parts"] == parts
    # the document itself (the frame's bytes once) and a piece of the frame at a time
    assert peak < 1.25 * len(frame), peak / len(frame)


@pytest.mark.timeout(60)
def test_decoding_wrapped_accepts_exactly_what_the_whole_decode_does_and_alike() -> None:
    """Hostile large frames (values swapped for deep, lying or odd ones; bytes flipped,
    cut, spliced, repeated): the wrapped decode gives exactly the whole decode's
    document, and leaves every frame the whole decode refuses to it (None)."""
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
        fast, whole = protocol._unpack_wrapped(frame), decoded_whole(frame)
        taken += fast is not None
        refused += whole is None
        assert (fast is None) is (whole is None), frame[:64].hex()
        if fast is not None:
            assert msgpack.packb(fast) == msgpack.packb(whole)
    assert taken > 20 and refused > 20, (taken, refused)
