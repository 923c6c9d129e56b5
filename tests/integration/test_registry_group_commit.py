"""The registry's write path seen from its clients: optimistic concurrency refuses any
resourceVersion but the stored one, concurrent writes share transactions (group commit),
and every acknowledgement follows its commit and its event."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from ecsm_actors import protocol
from ecsm_actors.errors import Conflict
from ecsm_actors.protocol import Heartbeat, Op
from ecsm_actors.registry.client import RegistryClient, Subscriber
from tests.helpers import Processes, wait_until
from tests.registry_fixtures import (
    InProcessRegistry,
    StartRegistry,
    latest_stats,
    liveness_socket,
    registry_config,
)
from tests.registry_samples import service, with_changes

pytestmark = pytest.mark.timeout(90)

FAST = {"ECSM_ACTORS_REGISTRY_HEARTBEAT_INTERVAL": "0.1"}


@pytest.fixture
def liveness(processes: Processes) -> Iterator[zmq.Socket[Any]]:
    yield from liveness_socket(processes)


def test_the_registry_refuses_a_resource_version_newer_than_the_stored_one(
        registry: StartRegistry) -> None:
    _, client = registry()
    stored = client.create(service("web"))
    with pytest.raises(Conflict):
        client.update(with_changes(stored, metadata__resourceVersion=2, spec__priority=3))
    with pytest.raises(Conflict):
        client.update_status({**with_changes(stored, metadata__resourceVersion=9),
                              "status": {"replicas": 1}})
    with pytest.raises(Conflict):
        client.delete("ECSMService", "default", "web", resource_version=2)
    assert client.get("ECSMService", "default", "web") == stored


def test_concurrent_writers_share_commits_and_each_sees_its_write_committed_once_acked(
        processes: Processes, registry: StartRegistry, liveness: zmq.Socket[Any]) -> None:
    _, client = registry(FAST)
    endpoint = registry_config(processes).registry_endpoint
    writers, each = 8, 25
    acked: dict[int, dict[str, Any]] = {}
    failures: list[str] = []
    start = threading.Barrier(writers)

    def writer(n: int) -> None:
        with RegistryClient(endpoint, timeout=10) as own, \
                RegistryClient(endpoint, timeout=10) as other:
            start.wait(timeout=10)
            for i in range(each):
                created = own.create(service(f"w{n}-{i}"))
                rv = created["metadata"]["resourceVersion"]
                acked[rv] = created
                # Another connection, right after the acknowledgement: the write is
                # committed (readable) and its event is in the log.
                if other.get("ECSMService", "default", f"w{n}-{i}") != created:
                    failures.append(f"w{n}-{i}: not readable right after its ack")
                replay = other.watch_since(rv - 1).events
                if not replay or replay[0].seq != rv or replay[0].object != created:
                    failures.append(f"w{n}-{i}: event {rv} not logged at its ack")

    with Subscriber(registry_config(processes).events_endpoint,
                    kinds=["ECSMService"]) as sub:
        wait_until(lambda: isinstance(sub.recv(0.5), Heartbeat), timeout=10,
                   what="the subscription")
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not failures, failures[:5]
        total = writers * each
        assert sorted(acked) == list(range(1, total + 1))
        received = []
        while len(received) < total:
            msg = sub.recv(5.0)
            assert msg is not None, f"only {len(received)} of {total} events"
            if not isinstance(msg, Heartbeat):
                received.append(msg)
    assert [e.seq for e in received] == list(range(1, total + 1))
    assert all(e.object == acked[e.seq] for e in received)
    stats = wait_until(lambda: (s := latest_stats(liveness)).get("writes") == total and s,
                       timeout=10, what="a liveness report counting every write")
    assert stats["commits"] < stats["writes"], stats
    assert client.ping()["resourceVersion"] == total


def test_an_acknowledgement_is_sent_after_its_commit_and_after_its_event(
        run_dir: Path) -> None:
    here = InProcessRegistry(run_dir)
    sub = here.subscriber()
    server = here.server
    checked: list[int] = []
    send = server._send_on

    def checking_send(sock: zmq.Socket[Any], envelope: list[bytes], reply: bytes) -> None:
        doc = msgpack.unpackb(reply)
        if doc["ok"] and doc["result"] and "metadata" in doc["result"]:
            meta = doc["result"]["metadata"]
            assert server.store.get("ECSMService", "default", meta["name"]) == doc["result"]
            assert sub.poll(0), f"ack of {meta['name']} sent before its event"
            event = protocol.decode_published(sub.recv_multipart())
            assert event.seq == meta["resourceVersion"]
            checked.append(event.seq)
        send(sock, envelope, reply)

    try:
        # inproc delivers at once: wait until the subscription has reached the PUB side.
        def subscribed() -> bool:
            server._heartbeat()
            return bool(sub.poll(0)) and sub.recv_multipart()[0] == protocol.HEARTBEAT_TOPIC

        wait_until(subscribed, timeout=5, what="the subscription")
        server._send_on = checking_send  # type: ignore[method-assign]
        for i in range(5):
            here.request(Op.CREATE, i, object=service(f"s{i}"))
        server.serve_batch()
        assert all(r["ok"] for r in here.replies(5).values())
        assert checked == [1, 2, 3, 4, 5]
        assert (server.stats["writes"], server.stats["commits"]) == (5, 1)
    finally:
        here.close()
