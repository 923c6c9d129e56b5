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
