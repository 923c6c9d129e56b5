"""A real registry process: typed requests, events to a subscriber in another process,
hostile input, heartbeats, timeouts, SIGTERM."""

from __future__ import annotations

import json
import signal
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from ecsm_actors.errors import AlreadyExists, Conflict, Expired, Invalid, NotFound, Unavailable
from ecsm_actors.protocol import EventType, Heartbeat, encode_heartbeat
from ecsm_actors.registry.client import RegistryClient, Subscriber
from tests.helpers import Processes, wait_until
from tests.registry_fixtures import StartRegistry, registry_config
from tests.registry_samples import hpa, service, with_changes

FAST = {"ECSM_ACTORS_REGISTRY_HEARTBEAT_INTERVAL": "0.1"}


def test_the_registry_serves_typed_requests_and_typed_errors(registry: StartRegistry) -> None:
    _, client = registry()
    created = client.create(service("web"))
    assert client.epoch and created["metadata"]["resourceVersion"] == 1
    with pytest.raises(AlreadyExists):
        client.create(service("web"))
    with pytest.raises(Invalid) as invalid:
        client.create(with_changes(service("bad"), spec__deploymentStrategy__replicas=-1))
    assert invalid.value.causes and "replicas" in invalid.value.causes[0].field
    updated = client.update(with_changes(created, spec__priority=5))
    with pytest.raises(Conflict):
        client.update(with_changes(created, spec__priority=6))
    status = client.update_status({**updated, "status": {"replicas": 2}})
    assert status["status"]["replicas"] == 2 and status["metadata"]["generation"] == 2
    assert client.apply(service("web", replicas=2)).action == "configured"
    assert client.apply(hpa("web")).action == "created"
    listed = client.list("ECSMService")
    assert [o["metadata"]["name"] for o in listed.items] == ["web"]
    assert listed.resource_version == 5 and listed.epoch == client.epoch
    versions = client.list_versions("ECSMService")
    assert versions.versions == [("default/web", 4)]
    assert versions.resource_version == 5 and versions.epoch == client.epoch
    assert client.get("ECSMHpa", "default", "web")["spec"]["maxReplicas"] == 5
    assert client.delete("ECSMHpa", "default", "web") is None
    with pytest.raises(NotFound):
        client.get("ECSMHpa", "default", "web")
    replay = client.watch_since(3)
    assert [e.seq for e in replay.events] == [4, 5, 6]
    assert replay.events[-1].type is EventType.DELETED
    with pytest.raises(Expired):
        client.watch_since(99)
    assert client.ping()["resourceVersion"] == 6


SUBSCRIBER = textwrap.dedent("""
    import json, sys
    from ecsm_actors.protocol import Heartbeat
    from ecsm_actors.registry.client import Subscriber
    endpoint, out, last = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sub = Subscriber(endpoint, kinds=["ECSMService", "ECSMHpa"])
    seen = []
    with open(out, "w") as f:
        while True:
            msg = sub.recv(10.0)
            if msg is None:
                break
            if isinstance(msg, Heartbeat):
                print(json.dumps({"heartbeat": msg.seq}), file=f, flush=True)
                continue
            print(json.dumps({"seq": msg.seq, "kind": msg.kind, "type": str(msg.type),
                              "epoch": msg.epoch}), file=f, flush=True)
            if msg.seq >= last:
                break
""")


def test_a_subscriber_in_another_process_receives_every_event_in_order(
        processes: Processes, run_dir: Path, registry: StartRegistry) -> None:
    _, client = registry(env=FAST)
    cfg = registry_config(processes)
    out = run_dir / "events.jsonl"
    total = 300
    sub = processes.spawn(sys.executable, "-c", SUBSCRIBER, cfg.events_endpoint, str(out),
                          str(total), module=False, log_name="subscriber")
    wait_until(lambda: out.exists() and "heartbeat" in out.read_text(), timeout=10,
               what="the subscriber to receive a heartbeat")

    def writer(prefix: str, count: int) -> None:
        with RegistryClient(cfg.registry_endpoint, timeout=5) as own:
            for i in range(count):
                own.create(service(f"{prefix}-{i}") if i % 3 else hpa(f"{prefix}-{i}"))

    threads = [threading.Thread(target=writer, args=(f"w{n}", total // 4)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sub.wait(timeout=20) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    events = [e for e in lines if "seq" in e]
    assert [e["seq"] for e in events] == list(range(1, total + 1))
    assert {e["epoch"] for e in events} == {client.ping()["epoch"]}
    assert {e["kind"] for e in events} == {"ECSMService", "ECSMHpa"}


def test_heartbeats_carry_the_latest_seq(processes: Processes,
                                         registry: StartRegistry) -> None:
    _, client = registry(env=FAST)
    client.create(service("a"))
    client.create(service("b"))
    with Subscriber(registry_config(processes).events_endpoint, kinds=["ECSMHpa"]) as sub:
        beat = wait_until(lambda: sub.recv(1.0), timeout=5, what="a heartbeat")
        assert beat == Heartbeat(epoch=client.epoch, seq=2)


def test_hostile_frames_get_bad_request_and_the_registry_keeps_serving(
        processes: Processes, registry: StartRegistry) -> None:
    _, client = registry(env={"ECSM_ACTORS_REGISTRY_MAX_FRAME_BYTES": "64Ki"})
    endpoint = registry_config(processes).registry_endpoint
    context: zmq.Context[Any] = zmq.Context.instance()

    def ask(*frames: bytes, dealer: bool = False) -> dict:
        sock = context.socket(zmq.DEALER if dealer else zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send_multipart(list(frames))
        assert sock.poll(5000), "no answer"
        reply = msgpack.unpackb(sock.recv_multipart()[-1])
        sock.close()
        return reply

    hostile = [
        (b"\xc1\xc1",),
        (msgpack.packb([1, 2, 3]),),
        (msgpack.packb({"v": 99, "id": 1, "op": "PING"}),),
        (msgpack.packb({"v": 1, "id": 2, "op": "FORMAT_DISK"}),),
        (msgpack.packb({"v": 1, "id": 3, "op": "GET", "kind": 5, "namespace": "d",
                        "name": "x"}),),
        (msgpack.packb({"v": 1, "id": 4, "op": "CREATE", "object": "x" * (70 << 10)}),),
        (msgpack.packb({"v": 1, "id": 5, "op": "PING"}), b"second frame"),
        (msgpack.packb({"v": 1, "id": 8, "op": "LIST", "kind": "ECSMService",
                        "view": "everything"}),),
    ]
    for frames in hostile:
        reply = ask(*frames)
        assert reply["ok"] is False and reply["error"]["code"] == "BadRequest", frames[0][:20]
    assert ask(msgpack.packb({"v": 1, "id": 2, "op": "NOPE"}))["id"] == 2
    dealer = ask(msgpack.packb({"v": 1, "id": 6, "op": "PING"}), dealer=True)
    assert dealer["ok"] is True
    unknown_kind = ask(msgpack.packb({"v": 1, "id": 7, "op": "LIST", "kind": "Pod"}))
    assert unknown_kind["error"]["code"] == "Invalid"
    assert client.ping()["resourceVersion"] == 0
    assert client.create(service("still-serving"))["metadata"]["resourceVersion"] == 1


def test_a_client_without_registry_times_out_then_recovers(
        processes: Processes, registry: StartRegistry) -> None:
    cfg = registry_config(processes)
    client = RegistryClient(cfg.registry_endpoint, timeout=0.2)
    with pytest.raises(Unavailable):
        client.ping()
    registry()
    try:
        assert client.ping()["resourceVersion"] == 0
    finally:
        client.close()


def test_sigterm_stops_the_registry_cleanly_and_a_restart_reuses_stale_sockets(
        processes: Processes, run_dir: Path, registry: StartRegistry) -> None:
    proc, client = registry()
    client.create(service("web"))
    epoch = client.epoch
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    (run_dir / "registry.sock").unlink(missing_ok=True)
    (run_dir / "registry.sock").write_text("stale")
    _, again = registry()
    assert again.ping() == {"epoch": epoch, "resourceVersion": 1, "pid": again.ping()["pid"]}
    assert again.get("ECSMService", "default", "web")["metadata"]["name"] == "web"


def test_a_subscriber_skips_malformed_messages(run_dir: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    endpoint = f"ipc://{run_dir}/fake-events.sock"
    pub: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(endpoint)
    with Subscriber(endpoint) as sub:
        def connected() -> bool:
            pub.send_multipart(encode_heartbeat("e", 0))
            return sub.recv(0.1) is not None

        wait_until(connected, timeout=10, what="the subscription")
        while sub.recv(0.05) is not None:
            pass
        pub.send_multipart([b"ECSMService.ADDED", b"\xc1 not msgpack"])
        pub.send_multipart([b"one frame only"])
        pub.send_multipart(encode_heartbeat("e", 7))
        assert sub.recv(5.0) == Heartbeat(epoch="e", seq=7)
    pub.close()
    assert sum("skipping a malformed message" in r.message for r in caplog.records) == 2
