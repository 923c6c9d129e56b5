"""The registry's local stream endpoint (``unix://``): length-prefixed frames over an
AF_UNIX stream socket. In the test's process (a registry served turn by turn, a bare
listener for the client's socket): group commit across connections, replies in order on
their own connection, the bounds against a peer that never reads, sends a huge head or too
many connections, and the client's outcomes (not sent, lost, timed out, reconnected). One
real registry process: a round trip, hostile frames beside a client that keeps being
served, and a retry after a connection dropped mid-request answered exactly once."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from ecsm_actors import protocol
from ecsm_actors.protocol import Op, frame_head
from ecsm_actors.registry import server as server_module
from ecsm_actors.registry import stream as stream_module
from ecsm_actors.registry.client import RegistryClient
from ecsm_actors.registry.stream import GREETING, StreamEndpoint
from ecsm_actors.registry.stream_socket import StreamRequestSocket
from tests.helpers import Processes, wait_until
from tests.registry_fixtures import InProcessRegistry, registry_config, start_registry
from tests.registry_samples import service

pytestmark = pytest.mark.timeout(60)


def framed(frame: bytes) -> bytes:
    return frame_head(len(frame)) + frame


def connect(path: Path | str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(path))
    return sock


def read_reply(sock: socket.socket) -> dict[str, Any]:
    """The next reply (the registry's greeting, an empty frame, skipped)."""
    while True:
        head = b""
        while len(head) < 4:
            head += sock.recv(4 - len(head))
        size, body = protocol.frame_size(head)[0], b""
        while len(body) < size:
            body += sock.recv(size - len(body))
        if body:
            return msgpack.unpackb(body)


def until_closed(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes the connection."""
    sock.settimeout(5)
    data = b""
    while chunk := sock.recv(1 << 16):
        data += chunk
    return data


@pytest.fixture
def here(run_dir: Path) -> Iterator[InProcessRegistry]:
    registry = InProcessRegistry(run_dir)
    yield registry
    registry.close()


def pump(here: InProcessRegistry, until: Any, timeout: float = 5.0) -> None:
    """Serve the stream endpoint's events (accepts, reads, writes) until ``until()``."""
    stream = here.server.stream
    assert stream is not None
    fds = select.poll()
    stream.watch(fds)
    deadline = time.monotonic() + timeout
    while True:  # at least one look
        for fd, events in fds.poll(20):
            stream.on_event(fd, events)
        if until():
            return
        assert time.monotonic() < deadline, "the stream endpoint saw nothing"


def test_writes_from_several_connections_and_the_router_commit_together(
        here: InProcessRegistry) -> None:
    stream = here.server.stream
    assert stream is not None
    path = stream_module.stream_path(here.server.cfg.registry_stream_endpoint)
    assert path.stat().st_mode & 0o777 == 0o600
    a, b = connect(path), connect(path)
    a.sendall(framed(protocol.encode_request(Op.CREATE, 1, object=service("a1")))
              + framed(protocol.encode_request(Op.CREATE, 2, object=service("a2"))))
    b.sendall(framed(protocol.encode_request(Op.CREATE, 1, object=service("b1"))))
    here.request(Op.CREATE, 7, object=service("r1"))
    pump(here, lambda: len(stream.pending) == 2)
    commits = here.server.stats["commits"]
    here.server.serve_batch()
    assert here.server.stats["commits"] == commits + 1  # one transaction for all four
    assert here.server.stats["writes"] == 4
    assert [read_reply(a)["result"]["metadata"]["name"] for _ in range(2)] == ["a1", "a2"]
    assert read_reply(b)["result"]["metadata"]["name"] == "b1"
    assert here.replies(1)[7]["ok"] is True
    a.close()
    b.close()


def create_on(sock: socket.socket, name: str) -> None:
    sock.sendall(framed(protocol.encode_request(Op.CREATE, 1, object=service(name))))


#: The registry's stream endpoint and two connections to it.
Writers = tuple[StreamEndpoint, socket.socket, socket.socket]


@pytest.fixture
def writers(here: InProcessRegistry) -> Iterator[Writers]:
    """The registry's stream endpoint and two connections to it (closed after)."""
    stream = here.server.stream
    assert stream is not None
    path = stream_module.stream_path(here.server.cfg.registry_stream_endpoint)
    a, b = connect(path), connect(path)
    yield stream, a, b
    a.close()
    b.close()


def both_write_once(here: InProcessRegistry, writers: Writers) -> None:
    """A turn in which both writers create (a1, b1), each answered."""
    stream, a, b = writers
    create_on(a, "a1")
    create_on(b, "b1")
    pump(here, lambda: len(stream.pending) == 2)
    here.server.serve_batch(router=False)
    assert read_reply(a)["ok"] and read_reply(b)["ok"]


def test_a_turn_waits_for_the_recent_writers_and_commits_them_together(
        here: InProcessRegistry, writers: Writers,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "RECENT_WRITERS", 60.0)  # a slow test is recent
    stream, a, b = writers
    both_write_once(here, writers)
    # Both wrote just before: a turn holding a's next write takes b's as well, which
    # came once the turn began (its bytes not read before the turn's wait).
    create_on(a, "a2")
    pump(here, lambda: len(stream.pending) == 1)
    create_on(b, "b2")
    commits = here.server.stats["commits"]
    here.server.serve_batch(router=False)
    assert here.server.stats["commits"] == commits + 1
    assert here.server.stats["writes"] == 4
    assert read_reply(a)["result"]["metadata"]["name"] == "a2"
    assert read_reply(b)["result"]["metadata"]["name"] == "b2"


def test_a_lone_writer_and_a_turn_of_every_recent_writer_never_wait(
        here: InProcessRegistry, writers: Writers,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "RECENT_WRITERS", 60.0)
    stream, a, b = writers
    waits: list[Any] = []
    monkeypatch.setattr(select, "select", lambda *args: waits.append(args) or ([], [], []))
    for i in range(3):
        create_on(a, f"a{i}")  # b connected, never writing
        pump(here, lambda: len(stream.pending) == 1)
        here.server.serve_batch(router=False)
        assert read_reply(a)["ok"]
    create_on(b, "b0")
    pump(here, lambda: len(stream.pending) == 1)
    here.server.serve_batch(router=False)  # one writer after one writer
    assert read_reply(b)["ok"]
    assert waits == []


def test_a_writer_not_seen_lately_is_not_waited_for(
        here: InProcessRegistry, writers: Writers,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "RECENT_WRITERS", 0.0)  # every writer is stale
    stream, a, b = writers
    both_write_once(here, writers)
    waits: list[Any] = []
    monkeypatch.setattr(select, "select", lambda *args: waits.append(args) or ([], [], []))
    create_on(a, "a2")
    pump(here, lambda: len(stream.pending) == 1)
    here.server.serve_batch(router=False)
    assert read_reply(a)["ok"]
    assert waits == []


def test_a_writer_closed_since_is_let_go_at_the_next_heartbeat(
        here: InProcessRegistry) -> None:
    # What it sent of a frame stays with its connection: up to max_frame_bytes each.
    stream = here.server.stream
    assert stream is not None
    path = stream_module.stream_path(here.server.cfg.registry_stream_endpoint)
    a = connect(path)
    create_on(a, "a1")
    pump(here, lambda: len(stream.pending) == 1)
    here.server.serve_batch(router=False)
    assert read_reply(a)["ok"]
    (conn,) = here.server._writers
    a.sendall(frame_head(1 << 20) + b"x" * (1 << 16))
    a.close()
    pump(here, lambda: not conn.open)
    here.server._heartbeat()
    assert conn not in here.server._writers


def test_a_peer_that_never_reads_is_no_longer_served_past_its_queue(
        here: InProcessRegistry) -> None:
    stream = here.server.stream
    assert stream is not None
    stream.queue_bytes = 64 << 10  # the peer_queue_bytes of this test
    slow = connect(stream_module.stream_path(here.server.cfg.registry_stream_endpoint))
    pump(here, lambda: bool(stream.connections))
    for conn in stream.connections.values():  # the kernel takes little of its replies
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ping = framed(protocol.encode_request(Op.PING, 0))
    slow.sendall(ping * 2000)  # ~70 KB of requests for ~200 KB of replies, none read
    pump(here, lambda: bool(stream.pending))
    for _ in range(100):  # turns until it is blocked
        pump(here, lambda: True)
        here.server.serve_batch(router=False)
        conn = next(iter(stream.connections.values()))
        if conn.blocked:
            break
    assert conn.blocked and not stream.has_frames
    served = here.server.stats["requests"]
    here.server.serve_batch(router=False)
    assert here.server.stats["requests"] == served  # nothing more taken meanwhile
    assert conn.queued <= stream.queue_bytes + 4096
    # once it reads, every request it sent is answered, in order
    replies = protocol.FrameReader(limit=1 << 20)
    got = 0
    slow.setblocking(False)
    deadline = time.monotonic() + 10
    while got < 2000 and time.monotonic() < deadline:
        try:
            replies.feed(slow.recv(1 << 16))
        except BlockingIOError:
            pump(here, lambda: True)
            if stream.has_frames:
                here.server.serve_batch(router=False)
        while replies.ready():
            frame = replies.next()
            if frame:  # not the greeting
                assert msgpack.unpackb(frame)["ok"] is True
                got += 1
    assert got == 2000
    slow.close()


def test_a_head_beyond_the_limit_closes_its_connection_and_others_are_served(
        here: InProcessRegistry) -> None:
    stream = here.server.stream
    assert stream is not None
    path = stream_module.stream_path(here.server.cfg.registry_stream_endpoint)
    hostile, fine = connect(path), connect(path)
    hostile.sendall(b"GET / HTTP/1.1\r\n\r\n")
    fine.sendall(framed(protocol.encode_request(Op.PING, 5)))
    pump(here, lambda: len(stream.pending) == 2)
    here.server.serve_batch(router=False)
    assert until_closed(hostile) == GREETING  # closed, no answer
    assert read_reply(fine)["id"] == 5
    assert here.server.stats["streamCut"] == 1
    assert len(stream.connections) == 1
    hostile.close()
    fine.close()


def test_connections_beyond_the_cap_are_refused(here: InProcessRegistry,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_module, "MAX_CONNECTIONS", 2)
    stream = here.server.stream
    assert stream is not None
    path = stream_module.stream_path(here.server.cfg.registry_stream_endpoint)
    socks = [connect(path) for _ in range(3)]
    pump(here, lambda: here.server.stats.get("streamRefused", 0) == 1)
    assert len(stream.connections) == 2
    assert until_closed(socks[2]) == b""  # not even greeted
    for s in socks:
        s.close()


# -- the client's socket, against a bare listener -------------------------------------


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "s.stream"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(8)
    sock.settimeout(5)
    yield sock, f"unix://{path}"
    sock.close()


def test_the_client_tells_not_sent_lost_answered_and_timed_out(
        tmp_path: Path, listener: tuple[socket.socket, str]) -> None:
    missing = StreamRequestSocket(f"unix://{tmp_path}/none")
    attempt = missing.exchange(b"req", rto=1, until=time.monotonic() + 1)
    assert attempt.sent_at is None and not attempt.lost and attempt.reply is None
    # a registry stopped (SIGSTOP): the kernel queues the connection, nobody greets it
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stopped:
        stopped.bind(str(tmp_path / "stopped"))
        stopped.listen(1)
        attempt = StreamRequestSocket(f"unix://{tmp_path}/stopped").exchange(
            b"req", rto=1, until=time.monotonic() + 0.2)
        assert attempt.sent_at is None and attempt.reply is None  # known not sent

    server, endpoint = listener
    client = StreamRequestSocket(endpoint)

    timed_out = threading.Event()

    def serve(answer: bool) -> None:
        peer, _ = server.accept()
        with peer:
            peer.settimeout(5)
            peer.sendall(GREETING)
            assert peer.recv(7) == framed(b"req")
            if answer:
                peer.sendall(framed(b"rep1"))
                assert peer.recv(7) == framed(b"req")
                peer.sendall(framed(b"rep2" * 70_000))  # in pieces
                assert peer.recv(7) == framed(b"req")  # then no answer: a timeout
                timed_out.wait(5)

    t = threading.Thread(target=serve, args=(True,))
    t.start()
    assert client.exchange(b"req", rto=2, until=time.monotonic() + 2).reply == b"rep1"
    assert client.exchange(b"req", rto=2, until=time.monotonic() + 2).reply == b"rep2" * 70_000
    attempt = client.exchange(b"req", rto=0.2, until=time.monotonic() + 5)
    timed_out.set()
    assert attempt.timed_out and attempt.sent_at is not None and attempt.reply is None
    t.join()
    client.close()

    # a connection dropped once the request is out: lost (it may have been applied)
    client = StreamRequestSocket(endpoint)
    t = threading.Thread(target=serve, args=(False,))
    t.start()
    attempt = client.exchange(b"req", rto=2, until=time.monotonic() + 2)
    t.join()
    assert attempt.lost and attempt.sent_at is not None and attempt.reply is None
    client.close()


def test_a_kept_connection_closed_by_the_registry_is_made_again_at_once(
        listener: tuple[socket.socket, str]) -> None:
    server, endpoint = listener
    client = StreamRequestSocket(endpoint)

    def serve() -> None:
        for i in range(2):
            peer, _ = server.accept()
            with peer:
                peer.settimeout(5)
                peer.sendall(GREETING)
                assert peer.recv(7) == framed(b"req")
                peer.sendall(framed(b"rep%d" % i))
                if i == 0:
                    peer.shutdown(socket.SHUT_RDWR)  # a registry restarted meanwhile

    t = threading.Thread(target=serve)
    t.start()
    assert client.exchange(b"req", rto=2, until=time.monotonic() + 2).reply == b"rep0"
    time.sleep(0.05)  # the close reaches the client's side
    assert client.exchange(b"req", rto=2, until=time.monotonic() + 2).reply == b"rep1"
    t.join()
    client.close()


# -- a real registry process ----------------------------------------------------------


class DropFirstReply:
    """A stream proxy in front of the registry that drops its client's connection
    instead of passing on the first reply (the request reached the registry)."""

    def __init__(self, path: Path, target: str) -> None:
        self.path, self.target = path, target
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(4)
        self.dropped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = connect(self.target)
            with client, upstream:
                client.sendall(upstream.recv(4))  # the registry's greeting
                while True:
                    try:
                        data = client.recv(1 << 20)
                    except OSError:
                        break
                    if not data:
                        break
                    upstream.sendall(data)
                    reply = upstream.recv(1 << 20)
                    if not self.dropped.is_set():
                        self.dropped.set()
                        break  # the reply goes nowhere: the client's connection drops
                    client.sendall(reply)

    def close(self) -> None:
        self.listener.close()


def test_a_real_registry_over_the_stream(processes: Processes, tmp_path: Path) -> None:
    proc, zmq_client = start_registry(processes)
    cfg = registry_config(processes)
    path = stream_module.stream_path(cfg.registry_stream_endpoint)
    with RegistryClient(cfg.registry_local_endpoint, timeout=2.0) as client:
        assert client.endpoint.startswith("unix://")
        created = client.create(service("web"))
        assert client.get("ECSMService", "default", "web") == created

        # hostile frames on other connections: answered or cut off, the client served
        oversized, garbage = connect(path), connect(path)
        oversized.sendall(framed(b"\x81\xa1v\x01" + b"\x00" * (cfg.registry.max_frame_bytes)))
        garbage.sendall(frame_head(0xFFFFFFF0) + b"junk")
        reply = read_reply(oversized)
        assert reply["ok"] is False and reply["error"]["code"] == "BadRequest"
        assert "exceeds the limit" in reply["error"]["message"]
        assert until_closed(garbage) == GREETING
        assert client.ping()["pid"] == proc.pid
        oversized.close()
        garbage.close()

    # the connection dropped once the write reached the registry: the client retries
    # with the same requestId on a fresh connection and gets the recorded outcome
    proxy = DropFirstReply(tmp_path / "proxy.stream", str(path))
    try:
        with RegistryClient(f"unix://{proxy.path}", timeout=2.0) as client:
            obj = client.create(service("once"))
            assert proxy.dropped.is_set()
            assert client.last_replayed
    finally:
        proxy.close()
    with zmq_client:
        items = zmq_client.list("ECSMService").items
        assert [o["metadata"]["name"] for o in items].count("once") == 1
        assert obj["metadata"]["uid"] == zmq_client.get("ECSMService", "default",
                                                        "once")["metadata"]["uid"]
    wait_until(lambda: proc.poll() is None, what="the registry still running")
