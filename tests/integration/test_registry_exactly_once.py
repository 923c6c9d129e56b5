"""Exactly once through the registry: a request retried with its requestId — after its
reply was lost, after a kill -9 and restart of the registry, or twice in one group
commit — is answered with its first outcome, marked replayed, and applied once. BATCH and
LIST pages over the wire. Raw frames on a REQ socket: the wire contract itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from ecsm_actors import protocol
from ecsm_actors.protocol import Op
from tests.helpers import Processes
from tests.registry_fixtures import (
    InProcessRegistry,
    StartRegistry,
    registry_config,
)
from tests.registry_samples import service

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def registry_here(run_dir: Path) -> Iterator[InProcessRegistry]:
    here = InProcessRegistry(run_dir)
    yield here
    here.close()


class Wire:
    """A REQ socket speaking raw frames to the registry of a run dir."""

    def __init__(self, processes: Processes) -> None:
        self.endpoint = registry_config(processes).registry_endpoint
        self.sock = self._connect()

    def _connect(self) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        return sock

    def reconnect(self) -> None:
        self.sock.close()
        self.sock = self._connect()

    def send(self, frame: bytes) -> dict[str, Any]:
        self.sock.send(frame)
        assert self.sock.poll(10_000), "the registry did not answer"
        reply: dict[str, Any] = msgpack.unpackb(self.sock.recv())
        return reply

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def wire(processes: Processes) -> Iterator[Wire]:
    w = Wire(processes)
    yield w
    w.close()


def events_since(wire: Wire, rv: int) -> list[tuple[str, str]]:
    reply = wire.send(protocol.encode_request(Op.WATCH_SINCE, "w", resourceVersion=rv))
    return [(e["type"], e["key"]) for e in reply["result"]["events"]]


def test_writes_retried_after_a_kill_9_and_restart_of_the_registry_return_their_first_outcome(
        registry: StartRegistry, processes: Processes, wire: Wire) -> None:
    proc, _ = registry()
    create = protocol.encode_request(Op.CREATE, 1, object=service("web"), requestId="c-1")
    batch = protocol.encode_request(Op.BATCH, 2, requestId="b-1", writes=[
        {"op": "CREATE", "object": service("db")},
        {"op": "CREATE", "object": service("web")},
        {"op": "DELETE", "kind": "ECSMService", "namespace": "default", "name": "web"}])
    first, first_batch = wire.send(create), wire.send(batch)
    assert first["ok"] and "replayed" not in first
    assert [r["ok"] for r in first_batch["result"]["results"]] == [True, False, True]
    processes.kill(proc)
    proc.wait(timeout=10)
    registry()
    wire.reconnect()
    again, again_batch = wire.send(create), wire.send(batch)
    assert again["replayed"] is True and again["result"] == first["result"]
    assert again_batch["replayed"] is True and again_batch["result"] == first_batch["result"]
    assert events_since(wire, 0) == [("ADDED", "default/web"), ("ADDED", "default/db"),
                                     ("DELETED", "default/web")]


def test_a_refusal_retried_after_the_object_changed_is_replayed_not_reevaluated(
        registry: StartRegistry, wire: Wire) -> None:
    registry()
    delete = protocol.encode_request(Op.DELETE, 1, kind="ECSMService", namespace="default",
                                     name="web", requestId="d-1")
    first = wire.send(delete)
    wire.send(protocol.encode_request(Op.CREATE, 2, object=service("web")))
    again = wire.send(delete)
    assert first["error"]["code"] == again["error"]["code"] == "NotFound"
    assert again["replayed"] is True
    assert wire.send(protocol.encode_request(Op.GET, 3, kind="ECSMService",
                                             namespace="default", name="web"))["ok"]


def test_two_copies_of_a_request_in_one_group_commit_are_applied_once_and_published_once(
        registry_here: InProcessRegistry) -> None:
    events = registry_here.subscriber()
    for envelope_id in (1, 2):
        registry_here.request(Op.CREATE, envelope_id, object=service("web"), requestId="same")
    registry_here.server.serve_batch()
    replies = registry_here.replies(2)
    assert replies[1]["result"] == replies[2]["result"]
    assert "replayed" not in replies[1] and replies[2]["replayed"] is True
    assert events.poll(2000)
    assert events.recv_multipart()[0] == b"ECSMService.ADDED"
    assert not events.poll(100), "a second event for one write"
    assert registry_here.server.store.resource_version == 1


def test_an_atomic_batch_over_the_wire_applies_all_or_nothing(
        registry_here: InProcessRegistry) -> None:
    registry_here.request(Op.CREATE, 1, object=service("taken"))
    registry_here.request(Op.BATCH, 2, atomic=True, writes=[
        {"op": "CREATE", "object": service("a")}, {"op": "CREATE", "object": service("taken")}])
    registry_here.request(Op.BATCH, 3, atomic=True, writes=[
        {"op": "CREATE", "object": service("a")}, {"op": "CREATE", "object": service("b")}])
    registry_here.server.serve_batch()
    replies = registry_here.replies(3)
    failed = replies[2]["result"]["results"]
    assert [r["error"]["code"] for r in failed] == ["Aborted", "AlreadyExists"]
    applied = replies[3]["result"]
    assert [r["result"]["metadata"]["resourceVersion"] for r in applied["results"]] == [2, 3]
    assert applied["resourceVersion"] == 3


def test_a_list_read_in_pages_over_the_wire_returns_every_object_once(
        registry_here: InProcessRegistry) -> None:
    names = sorted(f"svc-{i:02d}" for i in range(23))
    registry_here.request(Op.BATCH, 0, writes=[{"op": "CREATE", "object": service(n)}
                                               for n in names])
    registry_here.server.serve_batch()
    registry_here.replies(1)
    seen: list[str] = []
    token, remaining = None, []
    for page in range(1, 10):
        fields: dict[str, Any] = {"kind": "ECSMService", "limit": 10}
        if token:
            fields["continue"] = token
        registry_here.request(Op.LIST, page, **fields)
        registry_here.server.serve_batch()
        result = registry_here.replies(1)[page]["result"]
        seen += [o["metadata"]["name"] for o in result["items"]]
        remaining.append(result["remainingItemCount"])
        token = result["continue"]
        if not token:
            break
    assert seen == names and remaining == [13, 3, 0]
