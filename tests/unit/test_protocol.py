"""The wire format: every message round-trips, and every kind of bad input is BadRequest."""

from __future__ import annotations

import msgpack
import pytest

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest, Cause, Conflict, Internal, Invalid
from ecsm_actors.protocol import Event, EventType, Heartbeat, Op


def frame(**doc: object) -> bytes:
    return msgpack.packb({"v": 1, "id": 7, **doc})


@pytest.mark.parametrize("op, fields", [
    (Op.PING, {}),
    (Op.GET, {"kind": "ECSMService", "namespace": "default", "name": "web"}),
    (Op.LIST, {"kind": "ECSMHpa", "namespace": None, "view": None}),
    (Op.LIST, {"kind": "ECSMHpa", "namespace": "d", "view": "versions"}),
    (Op.CREATE, {"object": {"kind": "ECSMService"}}),
    (Op.UPDATE, {"object": {"spec": {}}}),
    (Op.UPDATE_STATUS, {"object": {"status": {}}}),
    (Op.APPLY, {"object": {"metadata": {"name": "a"}}}),
    (Op.DELETE, {"kind": "ECSMService", "namespace": "d", "name": "n", "resourceVersion": 3}),
    (Op.WATCH_SINCE, {"resourceVersion": 0}),
])
def test_every_request_round_trips(op: Op, fields: dict) -> None:
    request = protocol.decode_request(protocol.encode_request(op, "abc", **fields))
    assert (request.id, request.op, request.fields) == ("abc", op, fields)


def test_optional_fields_default_to_none() -> None:
    request = protocol.decode_request(frame(op="LIST", kind="ECSMService"))
    assert request.fields == {"kind": "ECSMService", "namespace": None, "view": None}
    delete = protocol.decode_request(frame(op="DELETE", kind="K", namespace="d", name="n"))
    assert delete.fields["resourceVersion"] is None


def test_the_version_of_an_encoded_object_is_read_without_decoding_the_rest() -> None:
    obj = {"apiVersion": "ecsm.sh/v1", "kind": "ECSMService",
           "metadata": {"name": "a", "labels": {"resourceVersion": "x"}, "resourceVersion": 42},
           "spec": {"template": {"image": "app@1.0"}}}
    assert protocol.peek_resource_version(protocol.pack(obj)) == 42
    assert protocol.peek_resource_version(memoryview(protocol.pack(obj))) == 42


@pytest.mark.parametrize("data", [
    b"\xc1", b"\x82", msgpack.packb([1]), msgpack.packb({"spec": {}}),
    msgpack.packb({"metadata": {"name": "a"}}), msgpack.packb({"metadata": "x"}),
    msgpack.packb({"metadata": {"resourceVersion": "3"}}),
    msgpack.packb({"metadata": {"resourceVersion": True}}),
])
def test_an_object_frame_without_an_integer_version_is_bad_request(data: bytes) -> None:
    with pytest.raises(BadRequest):
        protocol.peek_resource_version(data)


@pytest.mark.parametrize("data, why", [
    (b"\xc1", "malformed"),                                     # never-used msgpack byte
    (b"\x92\x01", "malformed"),                                 # truncated array
    (b"", "malformed"),
    (msgpack.packb([1, 2]), "expected a map"),
    (msgpack.packb({"v": 1, "id": 1, "op": "PING"}) + b"\x00", "malformed"),  # extra data
    (msgpack.packb({1: 2}), "malformed"),                       # non-string map key
    (b"\x91" * 100_000, "malformed"),                           # nesting bomb
    (msgpack.packb({"id": 1, "op": "PING"}), "version"),
    (msgpack.packb({"v": 2, "id": 1, "op": "PING"}), "version"),
    (msgpack.packb({"v": "1", "id": 1, "op": "PING"}), "version"),
    (frame(op="DROP_TABLES"), "unknown op"),
    (frame(op=None), "unknown op"),
    (frame(op=["PING"]), "unknown op"),
    (msgpack.packb({"v": 1, "op": "PING"}), "id"),
    (msgpack.packb({"v": 1, "id": True, "op": "PING"}), "id"),
    (msgpack.packb({"v": 1, "id": 1.5, "op": "PING"}), "id"),
    (msgpack.packb({"v": 1, "id": [1], "op": "PING"}), "id"),
    (frame(op="GET", kind="ECSMService", namespace="default"), "missing field 'name'"),
    (frame(op="GET", kind=1, namespace="default", name="x"), "wrong type"),
    (frame(op="CREATE", object=[1, 2]), "wrong type"),
    (frame(op="CREATE", object="{}"), "wrong type"),
    (frame(op="WATCH_SINCE", resourceVersion="5"), "wrong type"),
    (frame(op="WATCH_SINCE", resourceVersion=True), "wrong type"),
    (frame(op="DELETE", kind="K", namespace="d", name="n", resourceVersion=1.0), "wrong type"),
    (frame(op="LIST", kind="K", namespace=3), "wrong type"),
])
def test_bad_input_is_a_bad_request(data: bytes, why: str) -> None:
    with pytest.raises(BadRequest, match=why):
        protocol.decode_request(data)


def test_an_oversized_frame_is_refused_before_decoding() -> None:
    data = frame(op="CREATE", object={"blob": "x" * 2000})
    assert protocol.decode_request(data, max_bytes=len(data)).op is Op.CREATE
    with pytest.raises(BadRequest, match="exceeds the limit"):
        protocol.decode_request(data, max_bytes=len(data) - 1)


def test_the_id_of_a_bad_request_is_recovered_when_possible() -> None:
    assert protocol.request_id_of(frame(op="NOPE")) == 7
    assert protocol.request_id_of(b"\xc1") is None
    assert protocol.request_id_of(msgpack.packb({"id": True})) is None


def test_a_reply_carries_result_and_epoch() -> None:
    reply = protocol.decode_reply(protocol.encode_reply(3, "e1", {"a": [1, 2]}))
    assert (reply.id, reply.epoch, reply.result) == (3, "e1", {"a": [1, 2]})


def test_an_error_reply_raises_the_typed_error_with_its_causes() -> None:
    error = Invalid("bad", [Cause(field="spec.replicas", message="must be >= 0")])
    with pytest.raises(Invalid) as caught:
        protocol.decode_reply(protocol.encode_error(3, "e1", error))
    assert caught.value.causes == error.causes
    assert str(caught.value) == "bad: spec.replicas: must be >= 0"
    with pytest.raises(Conflict):
        protocol.decode_reply(protocol.encode_error(None, "e1", Conflict("stale")))


def test_an_unknown_error_code_becomes_internal() -> None:
    data = msgpack.packb({"v": 1, "id": 1, "ok": False, "error": {"code": "Weird"}})
    with pytest.raises(Internal):
        protocol.decode_reply(data)


def test_a_reply_with_a_raw_list_decodes_like_a_plain_reply() -> None:
    items = [{"metadata": {"name": f"n{i}"}} for i in range(3)]
    raw = b"".join(protocol.pack(i) for i in items)
    data = protocol.encode_reply_with_raw_list(9, "e", {"resourceVersion": 4}, "items", 3, raw)
    assert protocol.decode_reply(data).result == {"resourceVersion": 4, "items": items}
    empty = protocol.encode_reply_with_raw_list(9, "e", {"resourceVersion": 0}, "items", 0, b"")
    assert protocol.decode_reply(empty).result == {"resourceVersion": 0, "items": []}


def test_an_already_encoded_object_travels_as_if_packed_with_its_envelope() -> None:
    obj = {"metadata": {"name": "a", "resourceVersion": 7}, "spec": {"x": [1, None]}}
    frame_ = protocol.pack(obj)
    assert protocol.encode_reply_encoded(3, "e1", frame_) == protocol.pack(
        {"v": 1, "id": 3, "ok": True, "epoch": "e1", "result": obj})
    for rid in (0, 200, 70_000, 2**40, -3, "req.1f", "é" * 40, None):
        for epoch, replayed in (("e1", False), ("e1", True), ("", True), ("ü" * 40, False)):
            doc = {"v": 1, "id": rid, "ok": True, "epoch": epoch}
            doc.update({"replayed": True} if replayed else {})
            assert protocol.encode_reply_encoded(rid, epoch, frame_, replayed=replayed) == (
                protocol.pack({**doc, "result": obj}))
    body = protocol.encode_event_body("e1", EventType.ADDED, "ECSMService", "d/a", 7, frame_)
    assert body == protocol.pack(Event(epoch="e1", seq=7, type=EventType.ADDED,
                                       kind="ECSMService", key="d/a", resource_version=7,
                                       object=obj).to_wire())


def test_events_and_heartbeats_round_trip_on_their_topics() -> None:
    event = Event(epoch="e", seq=5, type=EventType.DELETED, kind="ECSMHpa", key="d/x",
                  resource_version=5, object={"metadata": {"name": "x"}})
    frames = protocol.encode_event(event)
    assert frames[0] == b"ECSMHpa.DELETED"
    assert frames[0].startswith(protocol.kind_topic("ECSMHpa"))
    assert protocol.decode_published(frames) == event
    beat = protocol.decode_published(protocol.encode_heartbeat("e", 5))
    assert beat == Heartbeat(epoch="e", seq=5)


@pytest.mark.parametrize("frames", [
    [b"ECSMService.ADDED"],
    [b"ECSMService.ADDED", b"\xc1"],
    [b"ECSMService.ADDED", msgpack.packb({"v": 1, "seq": "x"})],
    [b"ECSMService.ADDED", msgpack.packb({"v": 1, "epoch": "e", "seq": 1, "type": "EXPLODED",
                                          "kind": "K", "key": "k", "resourceVersion": 1})],
    [protocol.HEARTBEAT_TOPIC, msgpack.packb({"v": 1})],
    [b"a", b"b", b"c"],
])
def test_a_malformed_published_message_is_a_bad_request(frames: list[bytes]) -> None:
    with pytest.raises(BadRequest):
        protocol.decode_published(frames)
