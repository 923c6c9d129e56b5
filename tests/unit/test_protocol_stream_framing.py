"""The stream endpoint's framing: each frame preceded by its 4-byte big-endian length, and a
reader that splits a byte stream back into frames whatever the reads' boundaries."""

from __future__ import annotations

import pytest

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest
from ecsm_actors.protocol import FrameReader, frame_head


def framed(*frames: bytes) -> bytes:
    return b"".join(frame_head(len(f)) + f for f in frames)


def test_a_frame_is_preceded_by_its_length_big_endian() -> None:
    assert frame_head(800) == b"\x00\x00\x03\x20"
    assert protocol.frame_size(b"\x00\x00\x03\x20")[0] == 800


def test_frames_fed_a_byte_at_a_time_come_out_whole_and_in_order() -> None:
    reader = FrameReader(limit=1 << 20)
    stream = framed(b"first", b"", b"x" * 300)
    out = []
    for i in range(len(stream)):
        reader.feed(stream[i:i + 1])
        while reader.ready():
            out.append(reader.next())
    assert out == [b"first", b"", b"x" * 300]
    assert reader.buffered == 0


def test_several_frames_in_one_read_are_taken_one_by_one() -> None:
    reader = FrameReader(limit=1 << 20)
    reader.feed(framed(b"a", b"bb", b"ccc") + frame_head(13) + b"half")
    assert [reader.next(), reader.next(), reader.next()] == [b"a", b"bb", b"ccc"]
    assert not reader.ready() and reader.next() is None
    assert reader.buffered == 4 + len(b"half")  # the half frame is kept, nothing more
    reader.feed(b"-the-rest")
    assert reader.next() == b"half-the-rest"


def test_a_frame_up_to_the_limit_is_read_and_a_longer_head_is_refused_at_once() -> None:
    reader = FrameReader(limit=100)
    reader.feed(framed(b"y" * 100))
    assert reader.next() == b"y" * 100
    reader.feed(frame_head(101))  # refused from its head alone: no body waited for
    assert reader.ready()
    with pytest.raises(BadRequest, match="stream frame of 101 bytes exceeds the limit of 100"):
        reader.next()


def test_garbage_reads_as_a_huge_head_and_is_refused() -> None:
    reader = FrameReader(limit=protocol.stream_frame_limit(4 << 20))
    reader.feed(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(BadRequest, match="exceeds the limit"):
        reader.next()


def test_the_hard_limit_is_zeromqs_on_the_router() -> None:
    assert protocol.stream_frame_limit(4 << 20) == 2 * (4 << 20) + (64 << 10)
