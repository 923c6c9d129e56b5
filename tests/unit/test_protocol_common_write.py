"""decode_request's common write ({v, id, op, object, requestId}, checked in fewer steps):
the same Request as the general checks give, and every other request left to them, so
the same frames are refused with the same messages."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest
from ecsm_actors.protocol import VERSION, Op

pytestmark = pytest.mark.timeout(30)

OBJ = {"kind": "ECSMService", "metadata": {"name": "web", "namespace": "default"},
       "spec": {"template": {"image": "app@1.0#sylixos"}}}


def frame(**doc: Any) -> bytes:
    return msgpack.packb({"v": VERSION, **doc}, use_bin_type=True)


def general(data: bytes) -> protocol.Request | str:
    """What the general checks make of ``data`` (the common write's path switched off),
    or the message they refuse it with."""
    writes = protocol._OBJECT_WRITES
    protocol._OBJECT_WRITES = {}
    try:
        return protocol.decode_request(data)
    except BadRequest as e:
        return e.message
    finally:
        protocol._OBJECT_WRITES = writes


def decoded(data: bytes) -> protocol.Request | str:
    try:
        return protocol.decode_request(data)
    except BadRequest as e:
        return e.message


def test_a_common_write_is_decoded_without_the_general_field_checks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def general_checks(*args: Any) -> None:
        raise AssertionError("the general field checks ran")

    monkeypatch.setattr(protocol, "_fields_of", general_checks)
    for op in (Op.CREATE, Op.UPDATE, Op.UPDATE_STATUS, Op.APPLY):
        request = protocol.decode_request(frame(id=7, op=str(op), object=OBJ,
                                                requestId="abc.1f"))
        assert (request.id, request.op, request.fields) == (
            7, op, {"object": OBJ, "requestId": "abc.1f"})
        assert list(request.fields) == ["object", "requestId"]


@pytest.mark.parametrize("doc", [
    {"id": 7, "op": "UPDATE", "object": OBJ, "requestId": "abc.1f"},
    {"id": "seven", "op": "CREATE", "object": OBJ, "requestId": "A-z_0.9:/x"},
    {"id": 7, "op": "APPLY", "object": OBJ, "requestId": "r" * 64},
    # near misses: each refused, or decoded, exactly as the general checks do
    {"id": 7, "op": "UPDATE", "object": OBJ, "requestId": "r" * 65},
    {"id": 7, "op": "UPDATE", "object": OBJ, "requestId": ""},
    {"id": 7, "op": "UPDATE", "object": OBJ, "requestId": "no spaces"},
    {"id": 7, "op": "UPDATE", "object": OBJ, "requestId": 12},
    {"id": 7, "op": "UPDATE", "object": OBJ, "requestId": None},
    {"id": 7, "op": "UPDATE", "object": [OBJ], "requestId": "abc"},
    {"id": 7, "op": "UPDATE", "object": None, "requestId": "abc"},
    {"id": True, "op": "UPDATE", "object": OBJ, "requestId": "abc"},
    {"id": 1.5, "op": "UPDATE", "object": OBJ, "requestId": "abc"},
    {"id": 7, "op": "DELETE", "object": OBJ, "requestId": "abc"},
    {"id": 7, "op": "BATCH", "object": OBJ, "requestId": "abc"},
    {"id": 7, "op": "update", "object": OBJ, "requestId": "abc"},
    {"id": 7, "op": ["UPDATE"], "object": OBJ, "requestId": "abc"},
    {"id": 7, "op": {"UPDATE": 1}, "object": OBJ, "requestId": "abc"},
    {"id": 7, "op": "UPDATE", "object": OBJ, "dryRun": True},
    {"id": 7, "op": "UPDATE", "object": OBJ, "requestId": "abc", "dryRun": True},
    {"id": 7, "op": "UPDATE", "object": OBJ, "requestId": "abc", "dryRun": "yes"},
    {"op": "UPDATE", "object": OBJ, "requestId": "abc", "other": 1},
    {"id": 7, "op": "UPDATE", "requestId": "abc", "other": OBJ},
])
def test_a_request_decodes_as_the_general_checks_decode_it(doc: dict[str, Any]) -> None:
    data = frame(**doc)
    assert decoded(data) == general(data)


def test_a_frame_of_another_version_is_refused_before_any_field_is_looked_at() -> None:
    data = msgpack.packb({"v": VERSION + 1, "id": 7, "op": "UPDATE", "object": OBJ,
                          "requestId": "abc"})
    assert decoded(data) == general(data)
    assert "unsupported protocol version" in str(decoded(data))
