"""Which connections a stream endpoint serves: one local process cannot take them all.
The pid of a connection's process comes from the kernel (``SO_PEERCRED``) once, at accept;
past MAX_CONNECTIONS_PER_PROCESS from one process its next connection is closed at once,
one line naming the pid, while other processes still connect; the global cap stays."""

from __future__ import annotations

import logging
import os
import select
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.failures import FailureLog
from ecsm_actors.registry import stream as stream_module
from ecsm_actors.registry.stream import (
    GREETING,
    MAX_CONNECTIONS_PER_PROCESS,
    Admission,
    StreamEndpoint,
    peer_pid,
)
from ecsm_actors.registry.stream_events import StreamEventEndpoint

pytestmark = pytest.mark.timeout(30)

logger = logging.getLogger("test_stream_admission")


@pytest.fixture
def pairs() -> Iterator[list[socket.socket]]:
    """Every socket a test made, closed after it."""
    made: list[socket.socket] = []
    yield made
    for sock in made:
        sock.close()


def accepted(pairs: list[socket.socket]) -> socket.socket:
    """The registry's end of a fresh socketpair (the other end kept open)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pairs += [ours, theirs]
    return ours


def test_the_peer_pid_is_the_connecting_process_s(pairs: list[socket.socket]) -> None:
    assert peer_pid(accepted(pairs)) == os.getpid()


def test_one_process_past_its_cap_is_refused_while_others_still_connect(
        pairs: list[socket.socket], caplog: pytest.LogCaptureFixture) -> None:
    pids: dict[int, int] = {}
    failures = FailureLog(logger)
    admission = Admission("unix:///run/registry.stream", "stream connection", failures,
                          pid_of=lambda sock: pids[sock.fileno()])

    def from_process(pid: int) -> socket.socket:
        sock = accepted(pairs)
        pids[sock.fileno()] = pid
        return sock

    greedy = [from_process(4242) for _ in range(MAX_CONNECTIONS_PER_PROCESS)]
    assert all(admission.admit(sock) for sock in greedy)
    one_more = from_process(4242)
    with caplog.at_level(logging.WARNING, logger.name):
        assert not admission.admit(one_more)
    assert one_more.fileno() == -1  # closed at once
    assert failures.counts == {"streamRefused": 1}
    assert [r.getMessage() for r in caplog.records] == [
        f"stream connection refused (1 so far): process 4242 holds "
        f"{MAX_CONNECTIONS_PER_PROCESS} stream connections on unix:///run/registry.stream "
        "(the most one process may)"]
    assert admission.admit(from_process(77))  # another process still connects
    admission.release(greedy[0].fileno())  # one of the greedy one's closes
    assert admission.admit(from_process(4242))
    assert not admission.admit(from_process(4242))


def test_the_global_cap_still_holds(pairs: list[socket.socket],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_module, "MAX_CONNECTIONS", 3)
    pid = iter(range(100, 200))
    admission = Admission("unix:///s", "stream connection", FailureLog(logger),
                          pid_of=lambda sock: next(pid))
    assert [admission.admit(accepted(pairs)) for _ in range(4)] == [True] * 3 + [False]


def request_endpoint(path: Path, failures: FailureLog) -> StreamEndpoint:
    return StreamEndpoint(f"unix://{path}", max_frame=1 << 20, queue_bytes=1 << 20,
                          failures=failures)


def event_endpoint(path: Path, failures: FailureLog) -> StreamEventEndpoint:
    return StreamEventEndpoint(f"unix://{path}", hwm=10, queue_bytes=1 << 20,
                               failures=failures)


@pytest.mark.parametrize("make", [request_endpoint, event_endpoint], ids=["requests", "events"])
def test_each_stream_endpoint_refuses_a_process_past_its_cap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Callable[..., Any]) -> None:
    monkeypatch.setattr(stream_module, "MAX_CONNECTIONS_PER_PROCESS", 2)
    failures = FailureLog(logger)
    endpoint = make(tmp_path / "registry.stream", failures)
    clients: list[socket.socket] = []
    try:
        for _ in range(3):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.settimeout(5)
            client.connect(str(tmp_path / "registry.stream"))
            clients.append(client)
        endpoint.on_event(endpoint.fd, select.POLLIN)
        assert len(endpoint.connections) == 2
        assert failures.counts == {"streamRefused": 1}
        assert [c.recv(16) for c in clients] == [GREETING, GREETING, b""]
        endpoint.close(next(iter(endpoint.connections.values())), "")  # one closes
        again = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        clients.append(again)
        again.settimeout(5)
        again.connect(str(tmp_path / "registry.stream"))
        endpoint.on_event(endpoint.fd, select.POLLIN)
        assert again.recv(16) == GREETING and len(endpoint.connections) == 2
    finally:
        for client in clients:
            client.close()
        endpoint.shut()
