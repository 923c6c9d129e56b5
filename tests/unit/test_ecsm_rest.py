"""The ECSM rest layer and decoding rules (ecsm-api.md §1, §1.7-§1.9, A-2/A-6/A-9/A-22),
checked with a fake transport: no sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ecsm_actors.ecsm import wire
from ecsm_actors.ecsm.clientset import Clientset
from ecsm_actors.ecsm.resources.paging import list_all
from ecsm_actors.ecsm.rest import HEADERS, RequestsTransport, RestClient, build_path
from ecsm_actors.ecsm.types import ContainerInfo, NodeInfo, NodeStatus, Page, ServiceRow
from ecsm_actors.errors import EcsmApiError, EcsmDecodeError, EcsmNotFound, EcsmUnavailable


class FakeTransport:
    """Answers each request with the next scripted (HTTP status, body)."""

    def __init__(self, *replies: tuple[int, bytes | dict[str, Any]]) -> None:
        self.replies = list(replies)
        self.sent: list[tuple[str, str, bytes | None]] = []

    def send(self, method: str, url: str, body: bytes | None,
             timeout: tuple[float | None, float | None]) -> tuple[int, bytes]:
        self.sent.append((method, url, body))
        status, reply = self.replies.pop(0)
        return status, reply if isinstance(reply, bytes) else json.dumps(reply).encode()

    def close(self) -> None:
        pass


def ok(data: Any) -> tuple[int, dict[str, Any]]:
    return 200, {"status": 200, "message": "success", "data": data, "fieldErrors": None}


def client(*replies: tuple[int, bytes | dict[str, Any]]) -> tuple[Clientset, FakeTransport]:
    transport = FakeTransport(*replies)
    return Clientset(RestClient("http://ecsm:3001", transport=transport)), transport


def page(items: list[Any], total: int, num: int = 1, size: int = 100) -> dict[str, Any]:
    return {"total": total, "pageNum": num, "pageSize": size, "list": items}


def test_the_query_string_sorts_keys_and_repeats_bracketed_array_keys() -> None:
    cs, transport = client(ok(page([], 0)))
    cs.containers.list_by_service(["a", "b"], 1, 100, key="web")
    assert transport.sent[0][1] == ("http://ecsm:3001/api/v1/container/service?key=web&pageNum=1"
                                    "&pageSize=100&serviceIds%5B%5D=a&serviceIds%5B%5D=b")


def test_reserved_characters_are_form_escaped_in_queries() -> None:
    cs, transport = client(ok({"config": {"hostname": "x"}}))
    cs.images.config("name@tag#os")
    assert transport.sent[0][1].endswith("/api/v1/image/config?ref=name%40tag%23os")


def test_paged_calls_always_send_page_numbers_even_zero() -> None:
    cs, transport = client(ok(page([], 0, 0, 0)))
    cs.services.list(0, 0)
    assert transport.sent[0][1] == "http://ecsm:3001/api/v1/service?pageNum=0&pageSize=0"


def test_path_segments_are_escaped_like_go_and_empty_ids_are_refused() -> None:
    assert build_path("registry", ("registry id", "local"), "image",
                      ("image id", "a b#c?d%e@f:g")) == \
        "/api/v1/registry/local/image/a%20b%23c%3Fd%25e@f:g"
    assert build_path("overview/platform/node-view", ("id", "x")) == \
        "/api/v1/overview/platform/node-view/x"
    for bad in ("", ".", "..", "a/b"):
        with pytest.raises(ValueError):
            build_path("service", ("service id", bad))


def test_every_request_carries_the_json_headers() -> None:
    transport = RequestsTransport()
    assert {k: transport.session.headers[k] for k in HEADERS} == HEADERS
    transport.close()


def test_success_needs_a_2xx_status_line_and_envelope_status_200() -> None:
    summary = {"status": 200, "message": "success", "data": {"local": 3, "remote": 0}}
    cs, _ = client((201, summary), (500, summary))
    assert cs.images.summary().local == 3
    with pytest.raises(EcsmUnavailable, match="HTTP 500 with a success envelope"):
        cs.images.summary()
    cs, _ = client((200, {"status": 404, "message": "service not found", "data": None}))
    with pytest.raises(EcsmNotFound) as e:
        cs.services.get("x")
    assert e.value.status == 404 and "service not found" in str(e.value)


def test_a_non_2xx_reply_is_an_error_whatever_its_body() -> None:
    cs, _ = client((503, b""), (502, b"<html>Bad Gateway</html>"),
                   (404, {"status": 404, "message": "service not found", "data": None}),
                   (500, {"status": 500, "message": "boom", "data": None}))
    with pytest.raises(EcsmUnavailable, match="HTTP 503 with an empty body") as un:
        cs.services.list_all()
    assert un.value.url.startswith("http://ecsm:3001/api/v1/service?")
    with pytest.raises(EcsmUnavailable, match="HTTP 502 with a body that is not an ECSM "
                                              "envelope .*Bad Gateway"):
        cs.services.delete("s1")
    with pytest.raises(EcsmNotFound):
        cs.services.delete("s1")
    with pytest.raises(EcsmApiError) as api:
        cs.services.list_all()
    assert api.value.status == 500 and not api.value.is_client_error


def test_an_error_envelope_carries_status_message_and_field_errors() -> None:
    cs, _ = client((400, {"status": 400, "message": "Bad Request", "data": None,
                          "fieldErrors": "Invalid parameters"}))
    with pytest.raises(EcsmApiError) as e:
        cs.services.create({"name": "x"})
    assert (e.value.status, e.value.message, e.value.field_errors) == \
        (400, "Bad Request", "Invalid parameters")
    assert str(e.value) == "ecsm api error (status 400): Bad Request (field: Invalid parameters)"
    assert not isinstance(e.value, EcsmNotFound) and e.value.is_client_error


def test_field_errors_sent_as_object_or_array_are_stringified_not_fatal() -> None:
    cs, _ = client((200, {"status": 400, "message": "Bad Request",
                          "fieldErrors": {"name": "required"}}),
                   (200, {"status": 400, "message": "Bad Request", "fieldErrors": ["a", "b"]}))
    with pytest.raises(EcsmApiError) as e:
        cs.services.create({})
    assert e.value.field_errors == '{"name":"required"}'
    with pytest.raises(EcsmApiError) as e:
        cs.services.create({})
    assert e.value.field_errors == '["a","b"]'


def test_an_empty_2xx_body_is_no_data_which_reads_of_an_object_or_a_list_refuse() -> None:
    cs, _ = client((200, b""), (200, b""), (204, b""))
    with pytest.raises(EcsmDecodeError, match="expected object, got null"):
        cs.services.get("x")
    with pytest.raises(EcsmDecodeError, match="expected object, got null"):
        cs.nodes.list_all()
    cs.nodes.refresh_types()  # a write whose answer carries nothing


@pytest.mark.parametrize("data", [
    None, {}, {"total": 2}, {"total": 2, "list": None}, {"list": [{"id": "a"}]},
    {"total": -1, "list": []}, {"total": 1, "list": [None]}, {"total": 1, "list": {}},
    {"total": "1", "list": []}, [], "success"])
def test_a_list_answer_that_cannot_be_complete_is_an_error_never_an_empty_list(
        data: Any) -> None:
    cs, _ = client(ok(data))
    with pytest.raises(EcsmDecodeError):
        cs.services.list_all()


def test_an_empty_page_may_carry_a_null_list_when_its_total_is_zero() -> None:
    cs, _ = client(ok({"total": 0, "pageNum": 1, "pageSize": 100, "list": None}))
    assert cs.services.list_all() == []


def test_get_service_refuses_an_answer_about_another_service() -> None:
    cs, _ = client(ok({"id": "other", "name": "n"}), ok({"id": "s1", "name": "n"}))
    with pytest.raises(EcsmDecodeError, match="answered with service id 'other'"):
        cs.services.get("s1")
    assert cs.services.get("s1").name == "n"


def test_a_body_that_is_not_the_envelope_is_a_decode_error_quoting_the_body() -> None:
    for body in (b"<html>502 Bad Gateway</html>", b'{"status":"200"}', b'{"status":200,'
                 b'"message":5}', b"[1,2]", b'{"status":200,"data":{"total":'):
        cs, _ = client((200, body))
        with pytest.raises(EcsmDecodeError) as e:
            cs.images.summary()
        assert "raw response" in str(e.value) and body[:5].decode() in str(e.value)


def test_null_data_of_a_write_or_check_gives_zero_values_unless_the_contract_says_error(
) -> None:
    cs, _ = client(ok(None), ok({"config": None}), ok(None), ok("weird"))
    assert cs.nodes.validate_name("n").is_valid
    with pytest.raises(EcsmDecodeError, match="'config' field is null"):
        cs.images.config("a@1")
    with pytest.raises(EcsmDecodeError, match="empty or null"):
        cs.nodes.delete(["n"])
    with pytest.raises(EcsmDecodeError, match="unexpected data format"):
        cs.nodes.delete(["n"])


def test_node_delete_returns_the_conflicts_or_nothing() -> None:
    conflict = {"id": "n1", "name": "node-1", "serves": [{"id": "s", "name": "svc"}]}
    cs, transport = client(ok("success"), ok([conflict]))
    assert cs.nodes.delete(["n1"]) == []
    assert cs.nodes.delete(["n1"])[0].serves[0].name == "svc"
    assert transport.sent[0][0] == "DELETE" and json.loads(transport.sent[0][2] or b"") == \
        {"ids": ["n1"]}


def test_types_are_strict_per_field() -> None:
    bad: dict[str, Any]
    for bad in ({"factor": 1.5}, {"factor": "1"}, {"factor": True}, {"name": 5},
                {"imageList": {}}, {"nodeList": [1]}):
        with pytest.raises(EcsmDecodeError, match="failed to unmarshal"):
            wire.decode(ServiceRow, bad)
    with pytest.raises(EcsmDecodeError):
        wire.decode(NodeInfo, {"tls": 0})
    assert wire.decode(NodeInfo, {"upTime": 3}).up_time == 3.0


def test_uptime_keys_match_case_insensitively() -> None:
    assert wire.decode(NodeInfo, {"uptime": 7.5}).up_time == 7.5
    assert wire.decode(NodeStatus, {"upTime": 2.0}).uptime == 2.0
    assert wire.decode(ContainerInfo, {"upTime": 9, "imageOs": "linux"}).uptime == 9
    assert wire.decode(NodeInfo, {"upTime": 1.0, "uptime": 2.0}).up_time == 1.0


def test_error_instance_status_may_be_a_bool_or_a_string() -> None:
    row = wire.decode(ServiceRow, {"errorInstance": [{"status": False}, {"status": "failed"}]})
    assert [e.status for e in row.error_instance] == [False, "failed"]
    with pytest.raises(EcsmDecodeError):
        wire.decode(ServiceRow, {"errorInstance": [{"status": 1}]})


def test_the_raw_wire_dict_is_kept() -> None:
    raw = {"id": "s", "name": "n", "extra": {"x": 1}}
    assert wire.decode(ServiceRow, raw).raw is raw


def _pages(pages: list[Page[int]]) -> tuple[list[tuple[int, int]], Any]:
    calls: list[tuple[int, int]] = []

    def fetch(n: int, size: int) -> Page[int]:
        calls.append((n, size))
        return pages[n - 1]
    return calls, fetch


def P(items: list[int], total: int) -> Page[int]:  # noqa: N802
    return Page(total=total, page_num=0, page_size=0, items=tuple(items))


def test_list_all_walks_pages_until_total_is_reached() -> None:
    calls, fetch = _pages([P([1, 2], 5), P([3, 4], 5), P([5], 5), P([], 5)])
    assert list_all(fetch, 2) == [1, 2, 3, 4, 5]
    assert calls == [(1, 2), (2, 2), (3, 2)]


def test_list_all_stops_at_an_empty_page_and_defaults_the_page_size() -> None:
    calls, fetch = _pages([P([1], 10), P([], 10)])
    assert list_all(fetch, 0) == [1]
    assert calls == [(1, 100), (2, 100)]


def test_list_all_trusts_total_even_when_it_understates() -> None:
    calls, fetch = _pages([P([1, 2], 0), P([3], 0)])
    assert list_all(fetch, 2) == [1, 2]
    assert len(calls) == 1


def test_update_refuses_a_body_whose_id_differs_from_the_argument() -> None:
    cs, transport = client()
    with pytest.raises(ValueError, match="does not match"):
        cs.services.update("a", {"id": "b"})
    with pytest.raises(ValueError, match="unknown container action"):
        cs.containers.action_by_name("c", "explode")
    assert transport.sent == []


def test_action_by_name_sends_the_name_under_the_key_id() -> None:
    cs, transport = client(ok({"id": "tx", "status": "success", "data": None,
                               "timestamp": 1}))
    tx = cs.containers.action_by_name("web-1", "stop")
    assert tx.id == "tx"
    method, url, body = transport.sent[0]
    assert (method, url) == ("PUT", "http://ecsm:3001/api/v1/container")
    assert json.loads(body or b"") == {"id": "web-1", "action": "stop"}


def test_refresh_node_types_sends_no_body() -> None:
    cs, transport = client(ok(None))
    cs.nodes.refresh_types()
    assert transport.sent[0] == ("PUT", "http://ecsm:3001/api/v1/node/type", None)


def test_json_nested_too_deep_is_a_decode_error_not_a_crash() -> None:
    deep = b'{"status":200,"message":"success","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    cs, _ = client((200, deep), (200, b'{"status":400,"message":"x","fieldErrors":'
                                      + b"[" * 100_000 + b"]" * 100_000 + b"}"))
    for _ in range(2):
        with pytest.raises(EcsmDecodeError, match="nested too deep") as e:
            cs.services.list_all()
        assert e.value.cause == "JSON nested too deep" and len(str(e.value)) < 400


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999"])
def test_numbers_that_are_not_json_or_not_a_double_are_decode_errors(number: bytes) -> None:
    body = (b'{"status":200,"message":"success","data":{"total":1,"list":[{"id":"c1",'
            b'"cpuUsage":{"total":' + number + b',"cores":[]}}]}}')
    cs, _ = client((200, body))
    with pytest.raises(EcsmDecodeError, match="raw response"):
        cs.containers.list_all_by_service(["s1"])


def test_integers_beyond_int64_are_type_mismatches() -> None:
    for factor in (1 << 63, -(1 << 63) - 1, 10 ** 40):
        with pytest.raises(EcsmDecodeError, match="factor: expected int64"):
            wire.decode(ServiceRow, {"factor": factor})
    assert wire.decode(ServiceRow, {"factor": (1 << 63) - 1}).factor == (1 << 63) - 1
