"""The etcd client without etcd: wire encoding, error mapping, failover rules.

A fake ``requests`` transport adapter plays the gateway (no sockets): it records every
request and answers from a script per endpoint.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import urllib3
from requests.adapters import BaseAdapter

from ecsm_actors.config import load_config
from ecsm_actors.errors import (
    ConfigError,
    DeadlineExceeded,
    Expired,
    Internal,
    StoreFull,
    Unavailable,
)
from ecsm_actors.etcd import Compare, EtcdClient, KeyValue, RangeResult, TxnOp, prefix_end
from ecsm_actors.etcd import transport as client_module
from ecsm_actors.etcd.watch import Watch
from ecsm_actors.etcd.wire import error_from_reply

A, B, C = "http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379"

Answer = Callable[[requests.PreparedRequest], requests.Response]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def reply(status: int, body: dict[str, Any], text: str | None = None) -> Answer:
    def answer(request: requests.PreparedRequest) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response._content = (text if text is not None else json.dumps(body)).encode()
        response.url = request.url or ""
        response.request = request
        return response
    return answer


def refused(request: requests.PreparedRequest) -> requests.Response:
    reason = urllib3.exceptions.NewConnectionError(
        None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    raise requests.exceptions.ConnectionError(
        urllib3.exceptions.MaxRetryError(None, request.url or "", reason))  # type: ignore[arg-type]


def read_timeout(request: requests.PreparedRequest) -> requests.Response:
    raise requests.exceptions.ReadTimeout("read timed out")


OK_PUT = reply(200, {"header": {"revision": "7", "cluster_id": "42"}})


class FakeGateway(BaseAdapter):
    """Answers each endpoint from its script (the last answer repeats)."""

    def __init__(self, scripts: dict[str, list[Answer]]) -> None:
        super().__init__()
        self.scripts = scripts
        self.sent: list[tuple[str, dict[str, Any], dict[str, str]]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        endpoint = url[: url.index("/v3/")]
        body = request.body
        self.sent.append((url, json.loads(body or "{}"), dict(request.headers)))
        script = self.scripts[endpoint]
        return (script.pop(0) if len(script) > 1 else script[0])(request)

    def close(self) -> None:
        pass

    def endpoints_tried(self) -> list[str]:
        return [url[: url.index("/v3/")] for url, _, _ in self.sent]


def client_with(scripts: dict[str, list[Answer]]) -> tuple[EtcdClient, FakeGateway]:
    client = EtcdClient(list(scripts), request_timeout=5.0)
    gateway = FakeGateway(scripts)
    client._transport.http.mount("http://", gateway)
    return client, gateway


# -- encoding ---------------------------------------------------------------------------

def test_prefix_end_increments_the_last_byte_that_can_be() -> None:
    assert prefix_end(b"/t/") == b"/t0"
    assert prefix_end(b"a\xff\xff") == b"b"
    assert prefix_end(b"") == b"\0"
    assert prefix_end("/ecsm-actors/") == b"/ecsm-actors0"


def test_compares_and_ops_travel_as_the_gateway_expects() -> None:
    assert Compare.mod_revision(b"/k", "=", 0).to_wire() == {
        "key": b64("/k"), "result": "EQUAL", "target": "MOD", "mod_revision": "0"}
    assert Compare.value("/k", "!=", b"v").to_wire() == {
        "key": b64("/k"), "result": "NOT_EQUAL", "target": "VALUE", "value": b64("v")}
    assert Compare.create_revision("/k", ">", 3).to_wire()["result"] == "GREATER"
    assert Compare.version("/k", "<", 2).to_wire()["version"] == "2"
    assert TxnOp.put("/k", "v", lease=9).to_wire() == {
        "request_put": {"key": b64("/k"), "value": b64("v"), "lease": "9"}}
    assert TxnOp.delete("/a/", prefix_end("/a/")).to_wire() == {
        "request_delete_range": {"key": b64("/a/"), "range_end": b64("/a0")}}
    assert TxnOp.range("/k").to_wire() == {"request_range": {"key": b64("/k")}}
    with pytest.raises(ValueError, match="operator"):
        Compare.version("/k", "==", 1)


def test_fields_the_gateway_omits_read_as_their_defaults() -> None:
    result = RangeResult.from_wire({"header": {"revision": "12", "cluster_id": "9"},
                                    "kvs": [{"key": b64("/k"), "mod_revision": "4"}]})
    assert result == RangeResult(
        kvs=[KeyValue(key=b"/k", value=b"", create_revision=0, mod_revision=4, version=0,
                      lease=0)], count=0, more=False, revision=12, cluster_id="9")


def test_a_txn_answers_each_operation_of_the_branch_that_ran() -> None:
    client, gateway = client_with({A: [reply(200, {
        "header": {"revision": "5"}, "succeeded": True, "responses": [
            {"response_range": {"header": {"revision": "4"}, "count": "1",
                                "kvs": [{"key": b64("/k"), "value": b64("v")}]}},
            {"response_put": {"header": {"revision": "5"}}},
            {"response_delete_range": {"header": {"revision": "5"}, "deleted": "2"}}]})]})
    result = client.txn([Compare.mod_revision("/k", "=", 4)],
                        [TxnOp.range("/k"), TxnOp.put("/k", "w"), TxnOp.delete("/d/", "/d0")])
    assert result.succeeded and result.revision == 5
    first, put, deleted = result.responses
    assert isinstance(first, RangeResult) and first.kvs[0].value == b"v"
    assert put is None and deleted == 2
    assert gateway.sent[0][1]["compare"][0]["target"] == "MOD"


# -- error mapping ----------------------------------------------------------------------

@pytest.mark.parametrize(("status", "body", "expected"), [
    (429, {"code": 8, "message": "etcdserver: mvcc: database space exceeded"}, StoreFull),
    (400, {"code": 11, "message": "etcdserver: mvcc: required revision has been compacted"},
     Expired),
    (503, {"code": 14, "message": "etcdserver: no leader"}, Unavailable),
    (503, {"code": 14, "message": "etcdserver: request timed out"}, Unavailable),
    (504, {"code": 4, "message": "context deadline exceeded"}, Unavailable),
    (400, {"code": 11, "message": "etcdserver: mvcc: required revision is a future revision"},
     Internal),
    (400, {"code": 3, "message": "etcdserver: too many operations in txn request"}, Internal),
])
def test_etcd_errors_map_to_the_error_tree_naming_store_and_endpoint(
        status: int, body: dict[str, Any], expected: type[Exception]) -> None:
    error = error_from_reply(A, status, body)
    assert type(error) is expected
    assert A in str(error) and "etcd store" in str(error)


def test_a_full_database_answers_store_full() -> None:
    client, _ = client_with({A: [reply(429, {"code": 8, "message":
                                              "etcdserver: mvcc: database space exceeded"})]})
    with pytest.raises(StoreFull, match=r"etcd store full \(http://10.0.0.1:2379\)"):
        client.put("/k", "v")


def test_an_answer_that_is_not_json_is_internal() -> None:
    client, _ = client_with({A: [reply(200, {}, text="<html>proxy</html>")]})
    with pytest.raises(Internal, match="not etcd's JSON"):
        client.range("/k")


# -- failover ---------------------------------------------------------------------------

def test_a_refused_endpoint_fails_over_and_the_next_request_sticks_to_the_one_that_worked(
) -> None:
    client, gateway = client_with({A: [refused], B: [OK_PUT], C: [OK_PUT]})
    assert client.put("/k", "v") == 7
    assert client.put("/k", "w") == 7
    assert gateway.endpoints_tried() == [A, B, B]
    assert client.endpoint == B


def test_a_write_whose_answer_timed_out_is_never_sent_again() -> None:
    client, gateway = client_with({A: [read_timeout], B: [OK_PUT]})
    with pytest.raises(DeadlineExceeded, match="may or may not have been applied") as caught:
        client.put("/k", "v")
    assert caught.value.applied is None
    assert gateway.endpoints_tried() == [A]


def test_a_read_whose_answer_timed_out_is_asked_of_the_next_endpoint() -> None:
    client, gateway = client_with({A: [read_timeout], B: [reply(200, {"count": "1"})]})
    assert client.range("/k", count_only=True).count == 1
    assert gateway.endpoints_tried() == [A, B]


def test_a_member_without_leader_refuses_a_write_which_goes_to_the_next_member() -> None:
    no_leader = reply(503, {"code": 14, "message": "etcdserver: no leader"})
    client, gateway = client_with({A: [no_leader], B: [OK_PUT]})
    assert client.put("/k", "v") == 7
    assert gateway.endpoints_tried() == [A, B]


def test_a_write_that_timed_out_inside_etcd_is_not_sent_again() -> None:
    timed_out = reply(503, {"code": 14, "message": "etcdserver: request timed out"})
    client, gateway = client_with({A: [timed_out], B: [OK_PUT]})
    with pytest.raises(DeadlineExceeded, match="request timed out") as caught:
        client.put("/k", "v")
    assert caught.value.applied is None
    assert gateway.endpoints_tried() == [A]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(client_module, "time", fake)
    return fake


def test_while_an_election_runs_the_request_waits_for_the_new_leader(clock: FakeClock) -> None:
    no_leader = reply(503, {"code": 14, "message": "etcdserver: no leader"})
    client, gateway = client_with({A: [no_leader, OK_PUT], B: [no_leader]})
    assert client.put("/k", "v") == 7
    assert gateway.endpoints_tried() == [A, B, A]
    assert clock.slept == [client_module.ROUND_PAUSE]


def test_quorum_lost_answers_unavailable_when_the_request_deadline_passes(
        clock: FakeClock) -> None:
    no_leader = reply(503, {"code": 14, "message": "etcdserver: no leader"})
    client, _ = client_with({A: [refused], B: [no_leader]})
    start = clock.now
    with pytest.raises(Unavailable, match=r"http://10.0.0.2:2379: etcdserver: no leader") as e:
        client.put("/k", "v")
    assert not isinstance(e.value, DeadlineExceeded)  # surely not applied
    assert client.request_timeout - 0.1 <= clock.now - start <= client.request_timeout


def test_no_endpoint_reachable_is_unavailable_naming_every_endpoint() -> None:
    client, _ = client_with({A: [refused], B: [refused]})
    with pytest.raises(Unavailable) as caught:
        client.range("/k")
    assert str(caught.value).startswith("etcd store unavailable (http://10.0.0.1:2379, "
                                        "http://10.0.0.2:2379): no endpoint answered")
    assert "cannot connect: [Errno 111] Connection refused" in str(caught.value)


def test_linearizable_requests_require_a_leader_and_serializable_reads_do_not() -> None:
    client, gateway = client_with({A: [reply(200, {})]})
    client.range("/k")
    client.range("/k", serializable=True)
    (_, linear, h1), (_, serial, h2) = gateway.sent
    assert h1.get("Grpc-Metadata-hasleader") == "true" and "serializable" not in linear
    assert "Grpc-Metadata-hasleader" not in h2 and serial["serializable"] is True


def test_a_keepalive_of_an_expired_lease_answers_zero_seconds_left() -> None:
    client, _ = client_with({A: [
        reply(200, {}, text='{"result":{"header":{},"ID":"5","TTL":"3"}}\n'),
        reply(200, {}, text='{"result":{"header":{},"ID":"5"}}\n')]})
    assert client.lease_keepalive(5) == 3
    assert client.lease_keepalive(5) == 0


def test_an_error_line_in_a_streamed_answer_is_an_error() -> None:
    client, gateway = client_with({A: [reply(200, {}, text=(
        '{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader"}}\n'))],
        B: [reply(200, {}, text='{"result":{"header":{},"ID":"5","TTL":"4"}}\n')]})
    assert client.lease_keepalive(5) == 4
    assert gateway.endpoints_tried() == [A, B]


def test_endpoints_and_tls_files_are_checked_when_the_client_is_built() -> None:
    with pytest.raises(ConfigError, match="store.etcd_endpoints"):
        EtcdClient([])
    with pytest.raises(ConfigError, match="not an http"):
        EtcdClient(["10.0.0.1:2379"])
    with pytest.raises(ConfigError, match="both or neither"):
        EtcdClient([A], cert_file="/c.pem")
    with pytest.raises(ConfigError, match="store.etcd_ca_file: no such file: /nowhere/ca.pem"):
        EtcdClient([A], ca_file="/nowhere/ca.pem")


def test_the_client_is_built_from_the_store_settings() -> None:
    cfg = load_config(environ={"ECSM_ACTORS_STORE_ETCD_ENDPOINTS": f"{A},{B}/",
                               "ECSM_ACTORS_STORE_ETCD_REQUEST_TIMEOUT": "1.5"})
    client = EtcdClient.from_config(cfg)
    assert client.endpoints == (A, B) and client.request_timeout == 1.5
    assert client.dial_timeout == cfg.store.etcd_dial_timeout


# -- watch ------------------------------------------------------------------------------

class FakeStream:
    """A streaming response: the given lines, then the end of the stream."""

    def __init__(self, lines: list[dict[str, Any] | str]) -> None:
        self.lines = [(line if isinstance(line, str) else json.dumps(line)).encode()
                      for line in lines]
        self.raw = None
        self.closed = False

    def iter_lines(self, chunk_size: int = 512) -> Iterator[bytes]:
        yield from self.lines

    def close(self) -> None:
        self.closed = True


def watch_of(*lines: dict[str, Any] | str, start_revision: int = 0) -> tuple[Watch, FakeStream]:
    stream = FakeStream([{"result": {"header": {"revision": "9"}, "created": True}}, *lines])
    watch = Watch(endpoint=A, session=requests.Session(), reply=stream,  # type: ignore[arg-type]
                  start_revision=start_revision)
    watch.wait_created()
    return watch, stream


def event(kind: str | None, key: str, rev: int, prev: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kv": {"key": b64(key), "mod_revision": str(rev)}}
    if kind:
        body["type"] = kind
    if prev is not None:
        body["prev_kv"] = {"key": b64(key), "value": b64(prev)}
    return body


def test_a_watch_yields_events_and_progress_notifications_then_a_broken_stream_is_unavailable(
) -> None:
    watch, stream = watch_of(
        {"result": {"header": {"revision": "10"},
                    "events": [event(None, "/a", 10), event("DELETE", "/b", 10, prev="x")]}},
        {"result": {"header": {"revision": "12"}}})
    assert watch.created_revision == 9
    first = next(watch)
    assert [(e.type, e.kv.key, e.prev_kv and e.prev_kv.value) for e in first.events] == [
        ("PUT", b"/a", None), ("DELETE", b"/b", b"x")]
    progress = next(watch)
    assert progress.events == [] and progress.revision == 12
    with pytest.raises(Unavailable, match=r"\(http://10.0.0.1:2379\): the watch stream ended"):
        next(watch)
    assert watch.closed and stream.closed


def test_a_watch_canceled_for_compaction_is_expired_and_closed() -> None:
    watch, stream = watch_of({"result": {"header": {}, "canceled": True,
                                         "compact_revision": "7"}}, start_revision=3)
    with pytest.raises(Expired, match="watch from revision 3: .*compacted.*oldest kept: 7"):
        next(watch)
    assert stream.closed


def test_a_watch_canceled_because_its_member_lost_the_leader_is_unavailable() -> None:
    watch, _ = watch_of({"result": {"header": {}, "canceled": True,
                                    "cancel_reason": "etcdserver: no leader"}})
    with pytest.raises(Unavailable, match="watch canceled: etcdserver: no leader"):
        next(watch)


def test_an_error_line_in_a_watch_stream_maps_like_an_error_answer() -> None:
    watch, _ = watch_of({"error": {"grpc_code": 14, "http_code": 503,
                                   "message": "etcdserver: request timed out"}})
    with pytest.raises(Unavailable, match="request timed out"):
        next(watch)


def test_a_closed_watch_ends_its_iteration_and_releases_the_stream() -> None:
    watch, stream = watch_of({"result": {"header": {"revision": "10"}}})
    watch.close()
    assert list(watch) == [] and stream.closed
