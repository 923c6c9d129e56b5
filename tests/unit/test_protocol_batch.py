"""The wire contract of exactly once, BATCH and LIST paging: requestId, writes, atomic,
limit and continue are decoded strictly (one clear BadRequest line for anything else),
and a replayed reply says so, ok or error."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest, Conflict, RegistryError
from ecsm_actors.protocol import Op


def frame(**doc: Any) -> bytes:
    return msgpack.packb({"v": 1, "id": 7, **doc})


def refusal(**doc: Any) -> str:
    with pytest.raises(BadRequest) as caught:
        protocol.decode_request(frame(**doc), max_writes=3)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 300
    return message


CREATE = {"op": "CREATE", "object": {"kind": "ECSMService"}}
DELETE = {"op": "DELETE", "kind": "ECSMService", "namespace": "d", "name": "n"}


@pytest.mark.parametrize("op, fields", [
    ("CREATE", {"object": {}}), ("UPDATE", {"object": {}}), ("UPDATE_STATUS", {"object": {}}),
    ("APPLY", {"object": {}}), ("DELETE", {"kind": "K", "namespace": "d", "name": "n"}),
])
def test_every_write_op_carries_a_request_id_kept_out_of_its_fields_when_absent(
        op: str, fields: dict[str, Any]) -> None:
    rid = "cli-7f3a.1:x/y_z-0"
    assert protocol.decode_request(frame(op=op, requestId=rid, **fields)).fields["requestId"] == rid
    assert "requestId" not in protocol.decode_request(frame(op=op, **fields)).fields


@pytest.mark.parametrize("rid, words", [
    ("", "1 to 64 characters"), ("x" * 65, "1 to 64 characters"),
    ("a b", "only letters, digits"), ("é", "only letters, digits"), ("a\nb", "only letters"),
    (7, "wrong type"), (True, "wrong type"), (None, "wrong type"),
])
def test_a_bad_request_id_is_refused_in_one_line(rid: Any, words: str) -> None:
    assert words in refusal(**CREATE, requestId=rid)


def test_a_batch_decodes_each_write_as_a_request_of_its_own() -> None:
    request = protocol.decode_request(frame(op="BATCH", writes=[CREATE, DELETE], atomic=True,
                                            requestId="b-1"))
    assert request.op is Op.BATCH
    assert request.fields["atomic"] is True and request.fields["requestId"] == "b-1"
    writes = request.fields["writes"]
    assert [(w.id, w.op) for w in writes] == [(0, Op.CREATE), (1, Op.DELETE)]
    assert writes[1].fields == {"kind": "ECSMService", "namespace": "d", "name": "n",
                                "resourceVersion": None}


@pytest.mark.parametrize("doc, words", [
    ({"writes": []}, "'writes' is empty"),
    ({"writes": [CREATE] * 4}, "4 writes, more than the limit of 3"),
    ({"writes": CREATE}, "wrong type"),
    ({}, "missing field 'writes'"),
    ({"writes": [CREATE, {"op": "BATCH", "writes": [CREATE]}]}, "writes[1]: op BATCH is not"),
    ({"writes": [{"op": "GET", "kind": "K", "namespace": "d", "name": "n"}]}, "not a write"),
    ({"writes": [{"op": "NOPE"}]}, "writes[0]: unknown op"),
    ({"writes": [CREATE, 5]}, "writes[1] has the wrong type"),
    ({"writes": [{"op": "CREATE"}]}, "writes[0]: missing field 'object'"),
    ({"writes": [{**CREATE, "requestId": "inner"}]}, "no requestId of its own"),
    ({"writes": [{**CREATE, "requestId": "x" * 100}]}, "no requestId of its own"),
    ({"writes": [CREATE], "atomic": 1}, "'atomic' has the wrong type"),
    ({"writes": [CREATE], "atomic": "yes"}, "'atomic' has the wrong type"),
])
def test_a_malformed_batch_is_refused_in_one_line(doc: dict[str, Any], words: str) -> None:
    assert words in refusal(op="BATCH", **doc)


def test_list_takes_a_limit_and_a_continue_token() -> None:
    fields = protocol.decode_request(frame(op="LIST", kind="K", limit=50,
                                           **{"continue": "1.abc"})).fields
    assert (fields["limit"], fields["continue"]) == (50, "1.abc")
    assert "limit" not in protocol.decode_request(frame(op="LIST", kind="K")).fields


@pytest.mark.parametrize("doc, words", [
    ({"limit": 0}, "at least 1"), ({"limit": -5}, "at least 1"),
    ({"limit": "10"}, "wrong type"), ({"limit": True}, "wrong type"), ({"limit": 1.5}, "wrong"),
    ({"continue": 3}, "wrong type"), ({"continue": "x" * 5000}, "longer than"),
])
def test_bad_paging_fields_are_refused_in_one_line(doc: dict[str, Any], words: str) -> None:
    assert words in refusal(op="LIST", kind="K", **doc)


def test_a_replayed_success_reply_says_so() -> None:
    reply = protocol.decode_reply(protocol.encode_reply_encoded(
        1, "e1", protocol.pack({"a": 1}), replayed=True))
    assert reply.replayed and reply.result == {"a": 1}
    assert not protocol.decode_reply(protocol.encode_reply(1, "e1", {"a": 1})).replayed


def test_a_replayed_error_reply_raises_the_typed_error_marked_replayed() -> None:
    error = Conflict("stale")
    error.replayed = True
    with pytest.raises(Conflict) as caught:
        protocol.decode_reply(protocol.encode_error(1, "e1", error))
    assert caught.value.replayed
    with pytest.raises(Conflict) as fresh:
        protocol.decode_reply(protocol.encode_error(1, "e1", Conflict("stale")))
    assert not fresh.value.replayed and RegistryError.replayed is False


def test_replayed_is_only_true_when_it_is_the_boolean_true() -> None:
    doc = {"v": 1, "id": 1, "ok": True, "epoch": "e", "result": None, "replayed": "yes"}
    assert not protocol.decode_reply(msgpack.packb(doc)).replayed
