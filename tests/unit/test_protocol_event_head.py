"""An event's head (protocol.decode_published_head, what an informer reads): the same
fields as the whole event's, its object stepped over without a container of it built, and
every malformed frame one short BadRequest, as the whole decode."""

from __future__ import annotations

import gc
from typing import Any

import msgpack
import pytest

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest
from ecsm_actors.protocol import EventHead, EventType, Heartbeat
from tests.fuzz_harness import nested_list, with_raw
from tests.registry_samples import service

SHORT = 300
TOPIC = b"ECSMService.ADDED"
EVENT = {"v": 1, "epoch": "e", "seq": 1, "type": "ADDED", "kind": "ECSMService", "key": "d/a",
         "resourceVersion": 1, "object": {}}


def body_of(obj: dict[str, Any] | None, seq: int = 7) -> bytes:
    return protocol.encode_event_body("ep", EventType.MODIFIED, "ECSMService", "d/a", seq,
                                      msgpack.packb(obj), prev=5, index=1, last=False)


def test_an_event_head_has_every_field_of_the_whole_event_but_its_object() -> None:
    frames = [TOPIC, body_of(service("a"))]
    whole = protocol.decode_published(frames)
    head = protocol.decode_published_head(frames)
    assert type(head) is EventHead
    assert head == EventHead(epoch="ep", seq=7, prev=5, index=1, last=False,
                             type=EventType.MODIFIED, kind="ECSMService", key="d/a",
                             resource_version=7)
    assert {f: getattr(whole, f) for f in EventHead.__dataclass_fields__} == vars(head)


def test_a_deleted_event_without_its_object_and_a_heartbeat_decode_as_heads() -> None:
    assert protocol.decode_published_head([TOPIC, body_of(None)]).seq == 7
    assert protocol.decode_published_head(protocol.encode_heartbeat("ep", 9)) == Heartbeat(
        epoch="ep", seq=9)


def test_the_objects_containers_are_never_built() -> None:
    obj = service("a")
    obj["spec"]["labels"] = {f"k{i}": [i] for i in range(2_000)}  # 4,000 containers
    frames = [TOPIC, body_of(obj)]
    gc.disable()
    try:
        before = gc.get_count()[0]
        head = protocol.decode_published_head(frames)
        built = gc.get_count()[0] - before
    finally:
        gc.enable()
    assert head.seq == 7
    assert built < 50


@pytest.mark.parametrize("change", [
    {"epoch": ["e"] * 100_000}, {"kind": {"a": 1}}, {"type": ["ADDED"]}, {"seq": 1.0},
    {"resourceVersion": "1"}, {"object": "x" * 1000}, {"object": [1, 2]}, {"key": None},
    {"v": 2}, {"prev": 1}, {"last": 1},
], ids=["list-epoch", "map-kind", "list-type", "float-seq", "string-rv", "string-object",
        "list-object", "null-key", "version", "prev-not-before-seq", "int-last"])
def test_an_event_of_the_wrong_types_is_a_short_bad_request_as_a_whole(change: dict) -> None:
    frames = [TOPIC, msgpack.packb({**EVENT, **change})]
    with pytest.raises(BadRequest) as whole:
        protocol.decode_published(frames)
    with pytest.raises(BadRequest) as head:
        protocol.decode_published_head(frames)
    assert str(head.value) == str(whole.value)
    assert len(str(head.value)) < SHORT


@pytest.mark.parametrize("frame", [
    b"", b"\x81", b"\x90", b"\xc1", msgpack.packb(EVENT)[:-1], msgpack.packb(EVENT) + b"\x00",
    msgpack.packb(EVENT)[:40], with_raw(EVENT, "object", b"\x81\xa1k" + nested_list(2000)),
    with_raw(EVENT, "seq", nested_list(1010)), msgpack.packb({**EVENT, 1: 2}),
    msgpack.packb([EVENT]),
], ids=["empty", "truncated-map", "array", "reserved-byte", "cut-short", "extra-byte",
        "cut-in-half", "object-past-the-stack", "deep-seq", "int-key", "not-a-map"])
def test_a_malformed_frame_is_one_short_bad_request(frame: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        protocol.decode_published_head([TOPIC, frame])
    assert len(str(info.value)) < SHORT


def test_two_frames_are_expected() -> None:
    with pytest.raises(BadRequest, match="expected 2 frames, got 1"):
        protocol.decode_published_head([TOPIC])


def pairs(*items: tuple[Any, Any]) -> bytes:
    """A map of ``items`` in their order, duplicated keys kept (as a peer may send)."""
    return msgpack.Packer(use_bin_type=True).pack_map_header(len(items)) + b"".join(
        msgpack.packb(k, use_bin_type=True) + msgpack.packb(v, use_bin_type=True)
        for k, v in items)


@pytest.mark.parametrize("frame", [
    pairs(*EVENT.items(), (b"extra", 1)),
    pairs(("object", 5), *EVENT.items()),
    pairs(("object", [1]), *{**EVENT, "object": None}.items()),
], ids=["bytes-key", "object-then-map", "object-then-nil"])
def test_a_frame_the_whole_decode_accepts_the_head_decode_accepts_alike(frame: bytes) -> None:
    frames = [TOPIC, frame]
    whole = protocol.decode_published(frames)
    head = protocol.decode_published_head(frames)
    assert {f: getattr(whole, f) for f in EventHead.__dataclass_fields__} == vars(head)


def test_an_object_that_is_no_map_after_one_that_is_is_refused_as_by_the_whole_decode() -> None:
    frames = [TOPIC, pairs(*EVENT.items(), ("object", "x"))]
    with pytest.raises(BadRequest) as whole:
        protocol.decode_published(frames)
    with pytest.raises(BadRequest) as head:
        protocol.decode_published_head(frames)
    assert str(head.value) == str(whole.value) == 'malformed event: object is string "x"'
