"""The registry's stream endpoint: the replies a peer has not read (in the test's process,
on a socketpair, no registry). Its bound is memory held, not bytes counted: a peer that
pipelines tiny requests and never reads is no longer served once its replies hold
``queue_bytes`` of the registry's memory; and what was queued comes out whole, in order."""

from __future__ import annotations

import logging
import socket
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from ecsm_actors import protocol
from ecsm_actors.failures import FailureLog
from ecsm_actors.registry.stream import StreamConnection, StreamEndpoint

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[StreamEndpoint]:
    ep = StreamEndpoint(f"unix://{tmp_path / 'registry.stream'}", max_frame=1 << 20,
                        queue_bytes=1 << 20,
                        failures=FailureLog(logging.getLogger(__name__), counts={}))
    yield ep
    ep.shut()


@pytest.fixture
def peer(endpoint: StreamEndpoint) -> Iterator[tuple[StreamConnection, socket.socket]]:
    """A served connection (the registry's side, closed with the endpoint) and its peer's
    socket, which never reads unless the test does."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours.setblocking(False)
    conn = StreamConnection(endpoint, ours, endpoint.limit)
    endpoint.connections[conn.fd] = conn
    yield conn, theirs
    theirs.close()


def small_reply(i: int) -> bytes:
    """A reply as the request path makes it: a fresh object each, about 90 bytes."""
    return msgpack.packb({"v": 1, "id": i, "ok": True, "epoch": "0123456789abcdef",
                          "result": {"epoch": "0123456789abcdef", "pid": 4242}})


def test_a_peer_that_never_reads_stops_being_served_once_its_replies_hold_the_bound(
        endpoint: StreamEndpoint, peer: tuple[StreamConnection, socket.socket]) -> None:
    conn = peer[0]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        sent = 0
        while not conn.blocked and sent < 100_000:
            conn.send(small_reply(sent))
            sent += 1
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert conn.blocked, f"{sent} replies queued and still served"
    assert held <= 2 * endpoint.queue_bytes, (
        f"{held / 2**20:.1f} MiB held for {conn.queued / 2**20:.1f} MiB of replies")


def test_replies_queued_behind_a_slow_reader_come_out_whole_and_in_order(
        peer: tuple[StreamConnection, socket.socket]) -> None:
    conn, sock = peer
    replies = [small_reply(i) for i in range(2000)]
    replies[700] = b"L" * (300 << 10)  # a large one among them (sent as two buffers)
    replies[701] = b""
    for reply in replies:
        conn.send(reply)
    assert conn.out, "the peer's socket took everything: nothing was queued"
    received = bytearray()
    sock.settimeout(5)
    expected = sum(protocol.FRAME_HEAD_BYTES + len(r) for r in replies)
    while len(received) < expected:
        conn.flush()
        received += sock.recv(1 << 16)
    assert not conn.out and conn.queued == 0
    reader = protocol.FrameReader(1 << 20)
    reader.feed(received)
    out = []
    while reader.ready():
        out.append(reader.next())
    assert out == replies
