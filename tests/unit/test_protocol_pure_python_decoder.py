"""With msgpack's pure-Python decoder (no C extension, or MSGPACK_PUREPYTHON set) a large
frame is still refused exactly when it nests more than MAX_DEPTH levels: that decoder's
depth bound is Python's recursion limit, which moves with the caller's stack, so it can
prove no depth (the wrapped decode is not used with it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack
import msgpack.fallback
import pytest

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest


@pytest.fixture
def pure_python_decoder(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(msgpack, "Unpacker", msgpack.fallback.Unpacker)
    monkeypatch.setattr(msgpack, "unpackb", msgpack.fallback.unpackb)
    protocol._decoder_levels.cache_clear()
    protocol._wrap.cache_clear()
    try:
        yield
    finally:
        protocol._decoder_levels.cache_clear()
        protocol._wrap.cache_clear()


def nested(levels: int) -> Any:
    doc: Any = 1
    for _ in range(levels):
        doc = [doc]
    return doc


def large_frame(levels: int) -> bytes:
    return msgpack.packb({"v": protocol.VERSION, "pad": "x" * (70 << 10),
                          "deep": nested(levels)})


def found_deep_in_the_stack(frames: int) -> None:
    """Look for the first large frame's bound from ``frames`` calls down."""
    if frames:
        found_deep_in_the_stack(frames - 1)
    else:
        protocol._wrap()


@pytest.mark.timeout(20)
def test_a_frame_too_deep_is_refused_wherever_the_first_large_frame_was_decoded(
        pure_python_decoder: None) -> None:
    found_deep_in_the_stack(300)
    with pytest.raises(BadRequest, match="nested more than 100 levels deep"):
        protocol.unpack(large_frame(150))


@pytest.mark.timeout(20)
def test_a_large_frame_within_the_limit_decodes_with_the_pure_python_decoder(
        pure_python_decoder: None) -> None:
    found_deep_in_the_stack(300)
    assert protocol.unpack(large_frame(97))["deep"] == nested(97)
