"""The stream client's reply buffer follows the bytes that came, not the length a reply's
head announces: a lying head costs what was sent, and the attempt ends as a lost
connection."""

from __future__ import annotations

import socket
import time
import tracemalloc
from collections.abc import Iterator

import pytest

from ecsm_actors import protocol
from ecsm_actors.protocol import Op
from ecsm_actors.registry import stream_socket
from ecsm_actors.registry.stream_socket import StreamRequestSocket

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def connected() -> Iterator[tuple[StreamRequestSocket, socket.socket]]:
    """A client whose connection (greeted) is one end of a socketpair; the registry's
    end, which never reads, is the other."""
    mine, registry = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    registry.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    mine.setblocking(False)
    client = StreamRequestSocket("unix:///nonexistent/registry.stream")
    client.sock = mine
    client._fds.register(mine.fileno(), stream_socket._IN)
    yield client, registry
    client.close()
    registry.close()


def exchange(client: StreamRequestSocket) -> stream_socket.Attempt:
    return client.exchange(protocol.encode_request(Op.PING, 1), rto=2.0,
                           until=time.monotonic() + 2.0)


def test_a_head_announcing_2_gib_costs_what_was_sent_and_the_attempt_is_lost(
        connected: tuple[StreamRequestSocket, socket.socket]) -> None:
    client, registry = connected
    registry.sendall(protocol.frame_head(2 << 30) + b"abc")
    registry.shutdown(socket.SHUT_WR)  # the registry's end of stream after those bytes
    tracemalloc.start()
    try:
        attempt = exchange(client)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert attempt.lost and attempt.reply is None
    assert peak < 1 << 20, f"{peak} bytes allocated for 7 received"


def test_a_reply_of_many_reads_comes_whole(
        connected: tuple[StreamRequestSocket, socket.socket]) -> None:
    client, registry = connected
    reply = bytes(range(256)) * 1200  # 300 KiB: several reads, the buffer grown each
    registry.sendall(protocol.frame_head(len(reply)) + reply)
    attempt = exchange(client)
    assert attempt.reply == reply and not attempt.lost


def test_a_reply_whose_head_comes_in_two_pieces_comes_whole(
        connected: tuple[StreamRequestSocket, socket.socket]) -> None:
    client, registry = connected
    reply = b"reply"
    data = protocol.frame_head(len(reply)) + reply
    registry.sendall(data[:2])
    assert client._receive() is None
    registry.sendall(data[2:])
    assert client._receive() == reply
