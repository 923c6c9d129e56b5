"""Hostile frames: whatever a peer sends, a decoder answers BadRequest in one short line —
never RecursionError, never an echo of the input beyond a bounded preview."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import pytest

from ecsm_actors import protocol
from ecsm_actors.api.schema import RAW_MAX_DEPTH
from ecsm_actors.cli.manifests import MAX_DEPTH as CLI_MAX_DEPTH
from ecsm_actors.errors import BadRequest, RegistryError
from ecsm_actors.protocol import MAX_DEPTH, Op
from ecsm_actors.store import Store
from tests.fuzz_harness import nested_list, with_raw
from tests.registry_samples import service

#: A message quoting a bounded preview of the input stays well under this.
SHORT = 300
GET = {"v": 1, "id": 1, "op": "GET", "kind": "ECSMService", "namespace": "d", "name": "x"}


@pytest.mark.parametrize("field", ["v", "id", "op", "kind", "name", "object", "extra"])
@pytest.mark.parametrize("depth", [1000, 1020])
def test_a_request_with_any_field_nested_a_thousand_deep_is_one_short_bad_request(
        field: str, depth: int) -> None:
    frame = with_raw(GET, field, nested_list(depth))
    assert len(frame) < 1100
    with pytest.raises(BadRequest) as info:
        protocol.decode_request(frame)
    assert len(str(info.value)) < SHORT


@pytest.mark.parametrize("decode", [
    lambda f: protocol.decode_request(f),
    lambda f: protocol.decode_control(f),
    lambda f: protocol.decode_liveness(f),
    lambda f: protocol.decode_published([b"ECSMService.ADDED", f]),
    lambda f: protocol.decode_published([protocol.HEARTBEAT_TOPIC, f]),
    lambda f: protocol.decode_reply(f),
])
@pytest.mark.parametrize("field", ["v", "id", "op", "epoch", "seq", "name", "error", "stats"])
def test_every_decoder_refuses_deep_nesting_with_a_short_registry_error(
        decode: Any, field: str) -> None:
    frame = with_raw({"v": 1, "id": 1, "op": "ps", "ok": False}, field, nested_list(1010))
    with pytest.raises(RegistryError) as info:
        decode(frame)
    assert len(str(info.value)) < SHORT


def test_a_frame_may_nest_max_depth_levels_and_not_one_more() -> None:
    ping = {"v": 1, "id": 1, "op": "PING"}
    assert protocol.decode_request(with_raw(ping, "extra", nested_list(MAX_DEPTH - 1))).op is Op.PING
    with pytest.raises(BadRequest, match=f"nested more than {MAX_DEPTH} levels deep"):
        protocol.decode_request(with_raw(ping, "extra", nested_list(MAX_DEPTH)))
    deep_map: Any = {}
    for _ in range(MAX_DEPTH):
        deep_map = {"k": deep_map}
    with pytest.raises(BadRequest, match="levels deep"):
        protocol.decode_request(msgpack.packb({**ping, "extra": deep_map}))


def test_the_deepest_manifest_the_cli_and_the_api_accept_is_decoded_and_written(
        tmp_path: Path) -> None:
    deepest = max(CLI_MAX_DEPTH, RAW_MAX_DEPTH)
    status: Any = {}
    for _ in range(deepest - 2):  # the manifest's own map and its status map count
        status = {"k": status}
    manifest = {**service("deep"), "status": status}
    request = protocol.encode_request(Op.CREATE, 1, object=manifest)
    fields = protocol.decode_request(request).fields
    store = Store(tmp_path, map_size=16 << 20)
    try:
        created = store.write(Op.CREATE, **fields)
        page = store.watch_since_raw(0)
    finally:
        store.close()
    reply = protocol.encode_reply_with_raw_list(1, "e", {"resourceVersion": 1}, "events",
                                                page.count, page.data)
    event = protocol.Event.from_wire(protocol.decode_reply(reply).result["events"][0])
    assert event.object == created


@pytest.mark.parametrize("value, shown", [
    ("x" * (4 << 20), 'string "xxx'),
    ("\u202eevil\nline\x07", 'string "\\u202eevil\\nline\\x07"'),
    (-(2 ** 63), "integer -9223372036854775808"),
    ([1] * 100_000, "list of 100000 items"),
    ({"a": 1}, "map of 1 entry"),
    (True, "boolean true"),
], ids=["4MiB-string", "bidi-and-controls", "integer", "long-list", "map", "bool"])
def test_an_unknown_op_is_quoted_bounded_and_escaped(value: Any, shown: str) -> None:
    with pytest.raises(BadRequest) as info:
        protocol.decode_request(msgpack.packb({"v": 1, "id": 1, "op": value}), 8 << 20)
    message = str(info.value)
    assert shown in message and len(message) < SHORT and "\n" not in message


@pytest.mark.parametrize("value", ["x" * (1 << 20), [[[]]], {"a": 1}, 2 ** 64 - 1],
                         ids=["1MiB-string", "lists", "map", "integer"])
def test_a_bad_version_or_control_op_is_quoted_bounded(value: Any) -> None:
    for frame, decode in [
        (msgpack.packb({"v": value, "id": 1, "op": "PING"}), protocol.decode_request),
        (msgpack.packb({"v": 1, "id": 1, "op": value}), protocol.decode_control),
    ]:
        with pytest.raises(BadRequest) as info:
            decode(frame, 4 << 20)
        assert len(str(info.value)) < SHORT


@pytest.mark.parametrize("doc", [
    {"name": "x" * (1 << 19), "pid": 1, "ts": "9" * (1 << 19)},
    {"name": ["a"] * 100_000, "pid": 1, "ts": 1.0},
    {"name": "w", "pid": 1, "ts": None},
    {"name": "w", "pid": True, "ts": 1.0},
    {"name": "w", "pid": 1, "ts": 1.0, "stats": "ab"},
    {"name": "w", "pid": 1, "ts": 1.0, "queueDepth": 1.5},
], ids=["huge-ts-string", "list-name", "null-ts", "bool-pid", "string-stats", "float-depth"])
def test_a_liveness_report_of_the_wrong_types_is_a_short_bad_request(doc: dict) -> None:
    with pytest.raises(BadRequest) as info:
        protocol.decode_liveness(msgpack.packb({"v": 1, **doc}))
    assert len(str(info.value)) < SHORT


@pytest.mark.parametrize("doc", [
    {"epoch": ["e"] * 100_000, "seq": 1},
    {"epoch": "e", "seq": "1"},
    {"epoch": "e", "seq": True},
], ids=["list-epoch", "string-seq", "bool-seq"])
def test_a_heartbeat_of_the_wrong_types_is_a_short_bad_request(doc: dict) -> None:
    with pytest.raises(BadRequest) as info:
        protocol.decode_published([protocol.HEARTBEAT_TOPIC, msgpack.packb({"v": 1, **doc})])
    assert len(str(info.value)) < SHORT


EVENT = {"v": 1, "epoch": "e", "seq": 1, "type": "ADDED", "kind": "ECSMService", "key": "d/a",
         "resourceVersion": 1, "object": {}}


@pytest.mark.parametrize("change", [
    {"epoch": ["e"] * 100_000}, {"kind": {"a": 1}}, {"type": ["ADDED"]}, {"seq": 1.0},
    {"resourceVersion": "1"}, {"object": "x" * 1000}, {"key": None},
], ids=["list-epoch", "map-kind", "list-type", "float-seq", "string-rv", "string-object",
        "null-key"])
def test_an_event_of_the_wrong_types_is_a_short_bad_request(change: dict) -> None:
    with pytest.raises(BadRequest) as info:
        protocol.decode_published([b"ECSMService.ADDED", msgpack.packb({**EVENT, **change})])
    assert len(str(info.value)) < SHORT


@pytest.mark.parametrize("doc", [
    {"ok": True, "id": [[1]], "epoch": "e"},
    {"ok": True, "id": 1, "epoch": ["e"] * 100_000},
], ids=["list-id", "list-epoch"])
def test_a_reply_of_the_wrong_types_is_a_bad_request(doc: dict) -> None:
    with pytest.raises(BadRequest):
        protocol.decode_reply(msgpack.packb({"v": 1, **doc}))


def test_an_error_reply_with_huge_fields_is_rebuilt_bounded() -> None:
    error = {"code": ["Conflict"], "message": "m" * (4 << 20),
             "causes": [{"field": "f" * 5000, "message": "x"}] * 100_000}
    with pytest.raises(RegistryError) as info:
        protocol.decode_reply(msgpack.packb({"v": 1, "ok": False, "id": 1, "error": error}))
    assert info.value.code == "Internal"
    assert len(info.value.message) <= 1024 and len(info.value.causes) == 21
    assert info.value.causes[-1].message == "... and 99980 more"
    assert len(str(info.value)) < 30 * 1024
