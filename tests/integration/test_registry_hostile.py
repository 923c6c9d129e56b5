"""The registry against hostile peers: every request is answered, whatever it contains and
whatever fails while serving it; the writes of the same batch are committed and
acknowledged; the registry keeps serving.

In-process tests drive :meth:`RegistryServer.serve_batch` over ``inproc://`` (a message
sent there is queued when ``send`` returns, so a batch holds exactly what the test sent);
live-process tests send the same frames to a real registry."""

from __future__ import annotations

import logging
import os
import signal
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest, Internal
from ecsm_actors.protocol import Op
from ecsm_actors.registry.client import RegistryClient
from tests.fuzz_harness import nested_list, with_raw
from tests.helpers import Processes, wait_until
from tests.registry_fixtures import (
    InProcessRegistry,
    StartRegistry,
    latest_stats,
    liveness_socket,
    registry_config,
)
from tests.registry_samples import service

pytestmark = pytest.mark.timeout(60)


FAST = {"ECSM_ACTORS_REGISTRY_HEARTBEAT_INTERVAL": "0.1"}

#: A ~1 KB request whose op is nested 1,000 deep: its repr() raised RecursionError.
NESTED_OP = with_raw({"v": 1, "id": 90}, "op", nested_list(1000))


@pytest.fixture
def registry_here(run_dir: Path) -> Iterator[InProcessRegistry]:
    here = InProcessRegistry(run_dir)
    yield here
    here.close()


def test_a_nested_frame_is_refused_and_the_writes_of_its_batch_are_acknowledged(
        registry_here: InProcessRegistry) -> None:
    registry_here.request(Op.CREATE, 1, object=service("before"))
    registry_here.send(NESTED_OP)
    registry_here.request(Op.CREATE, 2, object=service("after"))
    registry_here.request(Op.PING, 3)
    registry_here.server.serve_batch()
    replies = registry_here.replies(4)
    assert replies[90]["error"]["code"] == "BadRequest"
    assert len(replies[90]["error"]["message"]) < 200
    assert replies[1]["ok"] and replies[2]["ok"] and replies[3]["ok"]
    stats = registry_here.server.stats
    assert (stats["writes"], stats["commits"], stats["badRequests"]) == (2, 1, 1)


def test_an_unexpected_failure_answers_internal_and_the_batch_is_served(
        registry_here: InProcessRegistry, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    decode = protocol.decode_request

    def failing(frame: bytes, max_bytes: int | None = None, **options: int) -> protocol.Request:
        if b"poison" in frame:
            raise RecursionError("maximum recursion depth exceeded")
        return decode(frame, max_bytes, **options)

    monkeypatch.setattr(protocol, "decode_request", failing)
    registry_here.request(Op.CREATE, 1, object=service("before"))
    registry_here.request(Op.GET, 2, kind="ECSMService", namespace="default", name="poison")
    registry_here.request(Op.CREATE, 3, object=service("after"))
    registry_here.server.serve_batch()
    replies = registry_here.replies(3)
    assert replies[2]["error"]["code"] == "Internal"
    assert replies[2]["error"]["message"].startswith("internal error")
    assert replies[1]["ok"] and replies[3]["ok"]
    assert registry_here.server.stats["internalErrors"] == 1
    logged = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.ERROR and logged[0].exc_info
    registry_here.request(Op.GET, 4, kind="ECSMService", namespace="default", name="after")
    registry_here.server.serve_batch()
    assert registry_here.replies(1)[4]["result"]["metadata"]["name"] == "after"


def test_internal_errors_are_logged_ten_times_then_once_in_a_thousand(
        registry_here: InProcessRegistry, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def failing(frame: bytes, max_bytes: int | None = None) -> protocol.Request:
        raise ValueError("x" * (1 << 20))

    monkeypatch.setattr(protocol, "decode_request", failing)
    for turn in range(3):
        for i in range(500):
            registry_here.request(Op.PING, turn * 500 + i)
        registry_here.server.serve_batch()
        assert all(r["error"]["code"] == "Internal" for r in registry_here.replies(500).values())
    logged = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert len(logged) == 11
    assert max(len(r.getMessage()) for r in logged) < 1000


# -- the client shows what the registry answered ----------------------------------------


def test_a_bad_request_answered_by_the_registry_reaches_the_caller_with_its_message(
        registry: StartRegistry) -> None:
    _, client = registry({"ECSM_ACTORS_REGISTRY_MAX_FRAME_BYTES": "64Ki"})
    with pytest.raises(BadRequest) as oversized:
        client.create(service("big", annotations={"blob": "x" * (80 << 10)}))
    assert oversized.value.code == "BadRequest"
    assert "exceeds the limit of 65536" in str(oversized.value)
    assert "undecodable" not in str(oversized.value)
    with pytest.raises(BadRequest, match="^LIST: unknown view string \"everything\""):
        client.request(Op.LIST, kind="ECSMService", view="everything")
    assert client.ping()["resourceVersion"] == 0


def test_a_reply_that_does_not_decode_is_internal_undecodable_reply(run_dir: Path) -> None:
    endpoint = f"ipc://{run_dir}/fake-registry.sock"
    fake: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.ROUTER)
    fake.setsockopt(zmq.LINGER, 0)
    fake.bind(endpoint)

    def answer_garbage() -> None:
        if fake.poll(5000):
            identity, _, _ = fake.recv_multipart()
            fake.send_multipart([identity, b"", b"\xc1 not msgpack"])

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    try:
        with RegistryClient(endpoint, timeout=5) as client, pytest.raises(Internal) as info:
            client.ping()
        assert str(info.value).startswith("undecodable reply from the registry")
    finally:
        thread.join(timeout=5)
        fake.close()


# -- least privilege --------------------------------------------------------------------


def test_the_registry_creates_its_run_dir_0700_and_its_sockets_0600(
        processes: Processes, run_dir: Path, registry: StartRegistry) -> None:
    fresh = run_dir / "fresh"
    registry({"ECSM_ACTORS_RUN_DIR": str(fresh)})
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    for name in ("registry.sock", "events.sock"):
        mode = (fresh / name).stat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600, (name, oct(mode))


# -- memory bounded against peers -------------------------------------------------------


def test_a_turn_of_the_loop_stops_taking_requests_once_they_hold_max_batch_bytes(
        run_dir: Path) -> None:
    here = InProcessRegistry(run_dir, {"ECSM_ACTORS_REGISTRY_MAX_FRAME_BYTES": "256Ki",
                               "ECSM_ACTORS_REGISTRY_MAX_BATCH_BYTES": "512Ki"})
    try:
        for i in range(6):
            big = service(f"big-{i}", annotations={"blob": "x" * (200 << 10)})
            here.request(Op.CREATE, i, object=big)
        here.server.serve_batch()
        assert sorted(here.replies(3)) == [0, 1, 2]
        here.server.serve_batch()
        assert sorted(here.replies(3)) == [3, 4, 5]
        assert (here.server.stats["commits"], here.server.stats["maxBatch"]) == (2, 3)
    finally:
        here.close()


def test_what_is_queued_per_peer_is_bounded_by_peer_queue_bytes(run_dir: Path) -> None:
    here = InProcessRegistry(run_dir, {"ECSM_ACTORS_REGISTRY_PEER_QUEUE_BYTES": "64Mi"})
    try:
        assert here.server.router.getsockopt(zmq.SNDHWM) == 16  # 64 MiB of 4 MiB replies
        assert here.server.router.getsockopt(zmq.RCVHWM) == 8  # requests up to 8 MiB
        assert here.server.pub.getsockopt(zmq.SNDHWM) == 1000  # the floor for events
    finally:
        here.close()


def registry_memory(pid: int) -> int:
    """Resident bytes of ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) << 10
    raise AssertionError("no VmRSS")


def served_requests(liveness: zmq.Socket[Any]) -> int:
    """The registry's request count from its latest liveness report (0 if none came)."""
    return int(latest_stats(liveness).get("requests", 0))


@pytest.fixture
def liveness(processes: Processes) -> Iterator[zmq.Socket[Any]]:
    yield from liveness_socket(processes)


def test_a_client_that_never_reads_its_replies_does_not_grow_the_registry(
        processes: Processes, registry: StartRegistry, liveness: zmq.Socket[Any]) -> None:
    proc, client = registry(FAST)
    for i in range(300):
        client.create(service(f"s{i}", annotations={"blob": "x" * 1000}))
    reply_size = len(msgpack.packb(client.request(Op.LIST, kind="ECSMService")))
    start = registry_memory(proc.pid)
    greedy: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.DEALER)
    greedy.setsockopt(zmq.LINGER, 0)
    greedy.setsockopt(zmq.RCVHWM, 1)
    greedy.setsockopt(zmq.RCVBUF, 4096)
    greedy.connect(registry_config(processes).registry_endpoint)
    lists = 400
    try:
        before = wait_until(lambda: served_requests(liveness), timeout=10,
                            what="a liveness report of the registry")
        for i in range(lists):
            greedy.send_multipart([b"", protocol.encode_request(Op.LIST, i, kind="ECSMService")])
        wait_until(lambda: served_requests(liveness) >= before + lists, timeout=60,
                   what=f"the registry to serve {lists} LISTs")
        growth = registry_memory(proc.pid) - start
    finally:
        greedy.close()
    assert lists * reply_size > 120 << 20  # what an unbounded queue would hold
    assert growth < 48 << 20, f"RSS grew {growth >> 20} MiB"  # 180 MiB unbounded
    assert client.ping()["resourceVersion"] == 300


def peak_memory(pid: int) -> int:
    """Peak resident bytes of ``pid`` so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) << 10
    raise AssertionError("no VmHWM")


def test_forty_writes_of_a_max_size_frame_at_once_keep_the_registry_small(
        processes: Processes, registry: StartRegistry) -> None:
    proc, client = registry({"ECSM_ACTORS_REGISTRY_MAX_FRAME_BYTES": "1Mi"})
    start = registry_memory(proc.pid)
    junk = {f"f{i:06d}": "v" * 16 for i in range(((1 << 20) - 4096) // 25)}
    context: zmq.Context[Any] = zmq.Context.instance()
    clients = [context.socket(zmq.DEALER) for _ in range(4)]
    try:
        for k, sock in enumerate(clients):
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(registry_config(processes).registry_endpoint)
            for i in range(10):
                obj = service(f"big-{k}-{i}")
                obj["spec"]["junk"] = junk  # ~40,000 unknown fields: ~8 MB decoded
                sock.send_multipart([b"", protocol.encode_request(Op.CREATE, i, object=obj)])
        for sock in clients:
            for _ in range(10):
                assert sock.poll(30_000), "a write was not answered"
                reply = msgpack.unpackb(sock.recv_multipart()[-1])
                assert reply["error"]["code"] == "Invalid"
    finally:
        for sock in clients:
            sock.close()
    growth = peak_memory(proc.pid) - start
    assert growth < 140 << 20, f"peak RSS grew {growth >> 20} MiB"  # 207 MiB unbounded
    assert client.ping()["resourceVersion"] == 0


# -- a live registry keeps serving ------------------------------------------------------


def test_a_live_registry_answers_hostile_frames_and_acknowledges_the_writes_queued_with_them(
        processes: Processes, registry: StartRegistry, liveness: zmq.Socket[Any]) -> None:
    proc, client = registry(FAST)
    peer: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.DEALER)
    peer.setsockopt(zmq.LINGER, 0)
    peer.connect(registry_config(processes).registry_endpoint)
    deep_object = with_raw({"v": 1, "id": 95, "op": "CREATE"}, "object",
                           b"\x81\xa4spec" * 1000 + b"\x80")
    batch = [
        [protocol.encode_request(Op.CREATE, 1, object=service("before"))],
        [NESTED_OP],
        [protocol.encode_request(Op.PING, 92), b"a second body frame"],
        [msgpack.packb({"v": 2, "id": 93, "op": "PING"})],
        [with_raw({"v": 1, "op": "PING"}, "id", nested_list(1000))],
        [deep_object],
        [protocol.encode_request(Op.CREATE, 2, object=service("after"))],
    ]
    # Stopped, the registry finds them all queued when it resumes: most likely one turn
    # (the in-process tests above prove the one-turn case without a race).
    proc.send_signal(signal.SIGSTOP)
    try:
        for frames in batch:
            peer.send_multipart([b"", *frames])
    finally:
        proc.send_signal(signal.SIGCONT)
    replies = []
    for _ in batch:
        assert peer.poll(10_000), f"only {len(replies)} of {len(batch)} answered"
        replies.append(msgpack.unpackb(peer.recv_multipart()[-1]))
    answers = {(r["id"], "ok" if r["ok"] else r["error"]["code"]) for r in replies}
    assert answers == {(1, "ok"), (2, "ok"), (90, "BadRequest"), (None, "BadRequest"),
                       (93, "BadRequest"), (95, "BadRequest")}
    stats = wait_until(lambda: (s := latest_stats(liveness)).get("writes") and s,
                       timeout=10, what="a liveness report counting the writes")
    assert (stats["writes"], stats["badRequests"], stats["internalErrors"]) == (2, 5, 0)

    peer.send_multipart([b"", os.urandom(2 << 20)])
    assert peer.poll(10_000), "2 MiB of garbage was not answered"
    assert msgpack.unpackb(peer.recv_multipart()[-1])["error"]["code"] == "BadRequest"
    peer.close()
    assert proc.poll() is None
    assert client.ping()["resourceVersion"] == 2
    client.create(service("still-serving"))
    assert client.get("ECSMService", "default", "before")["metadata"]["name"] == "before"
    assert client.get("ECSMService", "default", "still-serving")["metadata"][
        "resourceVersion"] == 3
