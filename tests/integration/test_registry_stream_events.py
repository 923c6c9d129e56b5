"""The registry's local event stream (``registry/stream_events.py``, the subscriber's
``StreamEvents``): PUB's semantics on AF_UNIX stream connections — events in order, a
subscriber that does not read loses WHOLE events beyond its bound (the gap left for its
event chain to find), hostile peers cut off, a subscriber that comes back after the
registry restarts; and a real registry's informer subscriber on it."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecsm_actors import protocol
from ecsm_actors.failures import FailureLog
from ecsm_actors.protocol import Event, EventHead, Heartbeat
from ecsm_actors.registry import stream as stream_module
from ecsm_actors.registry import stream_events
from ecsm_actors.registry.stream import GREETING
from ecsm_actors.registry.stream_events import EventConnection, StreamEventEndpoint
from ecsm_actors.registry.subscriber import HeadSubscriber, StreamEvents, Subscriber
from tests.helpers import Processes, wait_until
from tests.registry_fixtures import registry_config, start_registry
from tests.registry_samples import service

pytestmark = pytest.mark.timeout(30)

HWM = 20


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[StreamEventEndpoint]:
    failures = FailureLog(stream_events.logger, counts={})
    ep = StreamEventEndpoint(f"unix://{tmp_path / 'events.stream'}", hwm=HWM,
                             queue_bytes=1 << 20, failures=failures)
    poller = select.poll()
    ep.watch(poller)
    ep.poll = poller  # type: ignore[attr-defined]
    ep.peers = []  # type: ignore[attr-defined]
    yield ep
    ep.shut()
    for sock in ep.peers:  # type: ignore[attr-defined]
        sock.close()


def serve(ep: StreamEventEndpoint, timeout_ms: int = 0) -> None:
    """One wait of the registry's loop, as far as the endpoint goes."""
    for fd, events in ep.poll.poll(timeout_ms):  # type: ignore[attr-defined]
        ep.on_event(fd, events)


def subscribed_pair(ep: StreamEventEndpoint, topics: list[bytes],
                    hwm: int = HWM) -> tuple[socket.socket, EventConnection]:
    """A subscriber's socket and the registry's side of it, subscribed."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ep.peers.append(mine)  # type: ignore[attr-defined]
    theirs.setblocking(False)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    conn = EventConnection(ep, theirs)
    ep.connections[conn.fd] = conn
    subscription = protocol.encode_subscription(topics, hwm)
    mine.sendall(protocol.frame_head(len(subscription)) + subscription)
    conn.read()
    assert conn in ep.subscribed
    return mine, conn


def event(seq: int) -> tuple[bytes, bytes]:
    body = protocol.encode_event_body("e1", "ADDED", "ECSMService", f"default/s{seq}", seq,
                                      protocol.pack({"pad": "x" * 300}))
    return protocol.event_topic("ECSMService", "ADDED"), body


def read_all(sock: socket.socket) -> list[list[bytes]]:
    """Every frame the registry wrote, each split (raises on a frame cut short)."""
    sock.setblocking(False)
    data = b""
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    frames, at = [], 0
    while at < len(data):
        (size,) = protocol.frame_size(data, at)
        end = at + protocol.FRAME_HEAD_BYTES + size
        assert end <= len(data), "a frame cut short"
        frames.append(protocol.split_event(data[at + protocol.FRAME_HEAD_BYTES:end]))
        at = end
    return frames


def test_a_subscriber_that_does_not_read_loses_whole_events_beyond_its_bound(
        endpoint: StreamEventEndpoint) -> None:
    mine, conn = subscribed_pair(endpoint, [b"ECSMService."], hwm=5)
    for seq in range(1, 201):
        endpoint.publish(*event(seq))
        assert len(conn.out) <= 5 + 1  # its bound (and the rest of a frame begun)
    assert endpoint.dropped > 0
    got = []
    while True:  # it reads at last: what was queued follows, whole, in order
        frames = read_all(mine)
        got += [protocol.decode_published_head(f).seq for f in frames]
        serve(endpoint, 50)
        if not conn.out and not frames:
            break
    assert got == sorted(got) and got[0] == 1 and 200 not in got
    assert len(got) + endpoint.dropped == 200
    endpoint.publish(*event(201))  # read up: sent again, the gap for its chain to find
    assert [protocol.decode_published_head(f).seq for f in read_all(mine)] == [201]


def test_events_go_to_the_subscribers_of_their_topic_in_order(
        endpoint: StreamEventEndpoint) -> None:
    services, _ = subscribed_pair(endpoint, [b"ECSMService.", protocol.HEARTBEAT_TOPIC])
    hpas, _ = subscribed_pair(endpoint, [b"ECSMHpa."])
    everything, _ = subscribed_pair(endpoint, [b""])
    endpoint.publish(*event(1))
    endpoint.publish(*protocol.encode_heartbeat("e1", 1))
    endpoint.publish(*event(2))
    assert [f[0] for f in read_all(services)] == [b"ECSMService.ADDED", b"HEARTBEAT",
                                                  b"ECSMService.ADDED"]
    assert read_all(hpas) == []
    assert len(read_all(everything)) == 3


def test_hostile_subscribers_are_cut_off_and_capped(endpoint: StreamEventEndpoint,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(stream_module.stream_path(endpoint.endpoint))

    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(2)
        sock.connect(path)
        serve(endpoint, 100)
        return sock

    garbage, huge, chatty = connect(), connect(), connect()
    garbage.sendall(protocol.frame_head(3) + b"\xc1\xc1\xc1")
    huge.sendall(protocol.frame_head(1 << 30))
    ok = protocol.encode_subscription([b""], 5)
    chatty.sendall(protocol.frame_head(len(ok)) + ok + b"more")
    wait_until(lambda: serve(endpoint, 10) or not endpoint.connections, timeout=5,
               what="the three cut off")
    for sock in (garbage, huge, chatty):
        assert sock.recv(100) == GREETING and sock.recv(100) == b""
    assert endpoint.failures.counts["streamCut"] == 3  # type: ignore[attr-defined]

    monkeypatch.setattr(stream_module, "MAX_CONNECTIONS", 2)
    kept = [connect(), connect()]
    refused = connect()
    assert refused.recv(100) == b"" and len(endpoint.connections) == 2
    assert endpoint.failures.counts["streamRefused"] == 1  # type: ignore[attr-defined]
    for sock in (*kept, refused, garbage, huge, chatty):
        sock.close()


def test_a_subscriber_comes_back_when_the_registry_serves_again(tmp_path: Path) -> None:
    failures = FailureLog(stream_events.logger, counts={})
    url = f"unix://{tmp_path / 'events.stream'}"

    def start() -> StreamEventEndpoint:
        ep = StreamEventEndpoint(url, hwm=HWM, queue_bytes=1 << 20, failures=failures)
        ep.poll = select.poll()  # type: ignore[attr-defined]
        ep.watch(ep.poll)  # type: ignore[attr-defined]
        return ep

    ep = start()
    sub = StreamEvents(url, [b"ECSMService.", protocol.HEARTBEAT_TOPIC], 10)
    wait_until(lambda: serve(ep, 10) or ep.subscribed, timeout=5, what="subscribed")
    ep.publish(*event(1))
    assert protocol.decode_published_head(sub.next(None)).seq == 1  # type: ignore[arg-type]
    ep.shut()  # the registry stops: nothing to read, no error
    assert sub.next(deadline=_soon(0.05)) is None
    ep = start()  # and starts again
    try:
        wait_until(lambda: serve(ep, 10) or (sub.next(_soon(0.01)), ep.subscribed)[1],
                   timeout=5, what="subscribed again")
        ep.publish(*protocol.encode_heartbeat("e1", 3))
        frames = sub.next(_soon(2))
        assert frames is not None and frames[0] == protocol.HEARTBEAT_TOPIC
    finally:
        sub.close()
        ep.shut()


def _soon(seconds: float) -> float:
    import time
    return time.monotonic() + seconds


def test_a_real_registry_sends_its_events_on_the_stream(processes: Processes) -> None:
    proc, client = start_registry(processes)
    cfg = registry_config(processes)
    assert cfg.events_local_endpoint.startswith("unix://")
    with client, HeadSubscriber(cfg.events_local_endpoint, kinds=protocol.KINDS) as heads, \
            Subscriber(cfg.events_local_endpoint, kinds=["ECSMService"]) as whole:
        for i in range(20):  # until the registry took both subscriptions
            rv = client.create(service(f"web{i}"))["metadata"]["resourceVersion"]
            head, got = heads.recv(0.2), whole.recv(0.2)
            while isinstance(head, Heartbeat):
                head = heads.recv(0.2)
            while isinstance(got, Heartbeat):
                got = whole.recv(0.2)
            if head is not None and got is not None:
                break
        assert isinstance(head, EventHead) and head.seq == rv
        assert isinstance(got, Event) and got.object["metadata"]["name"] == f"web{i}"
    assert proc.poll() is None
